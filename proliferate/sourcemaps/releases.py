"""Releases and their source maps: creating a release, storing an uploaded map (on the writer),
the counts of frames each map resolved, and the daily clean-up of old maps. No HTTP (upload_api.py
is the front door)."""

import datetime
import hashlib
import logging

from peewee import JOIN
from peewee import IntegrityError
from peewee import fn

from proliferate import auth
from proliferate.db import database
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.models import SourceMapCount
from proliferate.sourcemaps import resolver
from proliferate.times import utcnow

log = logging.getLogger(__name__)



def ensure_release(project_id, version, now):
    """-> (release, created); runs on the writer."""
    release = Release.get_or_none(Release.project == project_id, Release.version == version)
    if release is not None:
        return release, False
    try:
        # A savepoint: another server process on the same PostgreSQL database may create this
        # release at the same moment; then the unique index refuses ours, and it is read.
        with database.atomic():
            return Release.create(project=project_id, version=version, created_at=now), True
    except IntegrityError:
        return Release.get(Release.project == project_id, Release.version == version), False



def touch_token(token, now):
    """The upload token's last use, inside the upload's own write (at most once a minute)."""
    if auth.token_use_due(token.last_used_at, now):
        auth.record_token_use(token.id, now)



def store_sourcemap(project_id, version, url, map_data, minified_data, now):
    """Insert or replace the map of (release, url); -> (map id, release id, created). Runs on the
    writer."""
    release, _ = ensure_release(project_id, version, now)
    digest = hashlib.sha256(map_data).hexdigest()
    size = len(map_data) + len(minified_data or b'')
    # Only the id: the row's map_data may be tens of megabytes.
    row = (SourceMap.select(SourceMap.id)
           .where(SourceMap.release == release.id, SourceMap.url == url).first())
    created = False
    if row is None:
        try:
            with database.atomic():  # another process may store this url at once (see above)
                row = SourceMap.create(release=release.id, url=url, map_data=map_data,
                                       minified_data=minified_data, size=size, sha256=digest,
                                       created_at=now)
                created = True
        except IntegrityError:
            row = (SourceMap.select(SourceMap.id)
                   .where(SourceMap.release == release.id, SourceMap.url == url).first())
    if not created:
        (SourceMap.update(map_data=map_data, minified_data=minified_data, size=size,
                          sha256=digest, created_at=now)
         .where(SourceMap.id == row.id).execute())
        # A replaced map starts counting again: the old count was for other content.
        SourceMapCount.delete().where(SourceMapCount.sourcemap == row.id).execute()
    # The writer resolves with these maps from its next transaction on (same thread).
    resolver.maps_changed()
    return row.id, release.id, created



def maps_with_counts():
    """SourceMap rows without their data, with resolved_count from source_map_count (the column
    on source_map itself is not used: see migration 0005) and has_minified."""
    return (SourceMap.select(SourceMap.id, SourceMap.release, SourceMap.url, SourceMap.size,
                             SourceMap.sha256, SourceMap.created_at,
                             SourceMap.minified_data.is_null(False).alias('has_minified'),
                             fn.COALESCE(SourceMapCount.resolved_count, 0).alias('resolved_count'))
            .join(SourceMapCount, JOIN.LEFT_OUTER,
                  on=(SourceMapCount.sourcemap == SourceMap.id))
            .order_by(SourceMap.url))



def releases_to_clean(now, retention_days, keep_releases):
    """The releases whose maps the clean-up deletes: created before now - retention_days and not
    among the newest keep_releases of their project. retention_days 0 deletes nothing."""
    if retention_days <= 0:
        return []
    cutoff = now - datetime.timedelta(days=retention_days)
    keep_releases = max(0, keep_releases)
    with_maps = (SourceMap.select(SourceMap.release).distinct())
    candidates = (Release.select(Release.id, Release.project, Release.version, Release.created_at)
                  .where(Release.created_at < cutoff, Release.id.in_(with_maps)))
    doomed = []
    newest = {}
    for release in candidates:
        project_id = release.project_id
        if project_id not in newest:
            newest[project_id] = {
                row[0] for row in Release.select(Release.id).where(Release.project == project_id)
                .order_by(Release.created_at.desc(), Release.id.desc())
                .limit(keep_releases).tuples()} if keep_releases else set()
        if release.id not in newest[project_id]:
            doomed.append(release)
    return doomed



def delete_old_sourcemaps(now, retention_days, keep_releases):
    """Delete the maps of releases_to_clean(); -> [(project_id, version, maps, bytes)].
    Runs in one transaction (on the writer when the server runs). Release rows stay, so the
    release page still lists the version, without maps."""
    removed = []
    for release in releases_to_clean(now, retention_days, keep_releases):
        stats = (SourceMap.select(SourceMap.id, SourceMap.size)
                 .where(SourceMap.release == release.id).tuples())
        rows = list(stats)
        if not rows:
            continue
        SourceMap.delete().where(SourceMap.release == release.id).execute()
        removed.append((release.project_id, release.version, len(rows), sum(r[1] for r in rows)))
    if removed:
        resolver.maps_changed()
    return removed



def cleanup_sourcemaps(config, *, writer=None, clock=utcnow):
    """The daily job: delete old maps (see delete_old_sourcemaps) and log what went."""
    now = clock()

    def work():
        return delete_old_sourcemaps(now, config.sourcemap_retention_days,
                                     config.sourcemap_keep_releases)

    if writer is not None:
        removed = writer.call(work, timeout=300)
    else:
        with database.connection_context():
            with database.atomic():
                removed = work()
    for project_id, version, count, size in removed:
        log.info('source-map clean-up: project %s release %r: removed %d map(s), %d bytes',
                 project_id, version, count, size)
    log.info('source-map clean-up: %d release(s) cleaned, %d map(s), %d bytes '
             '(older than %d days, newest %d releases per project kept)',
             len(removed), sum(r[2] for r in removed), sum(r[3] for r in removed),
             config.sourcemap_retention_days, config.sourcemap_keep_releases)
    return removed
