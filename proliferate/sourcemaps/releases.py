"""Releases and source-map uploads: POST /api/v1/releases, POST /api/v1/sourcemaps (upload
tokens only, never the public pk_ key), the read-API list of a project's releases, and the
clean-up of old maps. Writes go through the writer; parsing a map happens on the request thread.
"""

import datetime
import hashlib
import logging

import falcon
import orjson
from peewee import JOIN
from peewee import IntegrityError
from peewee import fn

from proliferate import auth
from proliferate import jsonapi
from proliferate.sourcemaps import resolver
from proliferate.db import database
from proliferate.times import iso
from proliferate.times import utcnow
from proliferate.models import ApiToken
from proliferate.models import Project
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.models import SourceMapCount
from proliferate.sourcemaps.decode import InvalidSourceMap
from proliferate.sourcemaps.decode import parse_sourcemap

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# The limit for one map; the minified file gets the same. A request carries one of each
# plus a few short fields, so the body bound is both and a little more.
MAX_SOURCEMAP_BYTES = 50 * MiB
MAX_MINIFIED_BYTES = 50 * MiB
MAX_UPLOAD_BODY = MAX_SOURCEMAP_BYTES + MAX_MINIFIED_BYTES + MiB
MAX_FIELD_BYTES = 4096
# Events carry release trimmed to 200 characters (normalize.MAX_SHORT): a longer version could
# never match an event, so it is refused rather than stored.
MAX_VERSION = 200
MAX_URL = 2048
FILE_FIELDS = {'sourcemap': MAX_SOURCEMAP_BYTES, 'minified': MAX_MINIFIED_BYTES}
TEXT_FIELDS = ('release', 'url', 'url_prefix', 'project')
UPLOAD_TOKEN_REQUIRED = ('an upload token is required: Authorization: Bearer pru_... '  # noqa: S105 (a message, not a password)
                         '(proliferate token create EMAIL --upload PROJECT)')


def require_upload_token(req):
    """The upload ApiToken of this request, or 401 saying what to send instead."""
    presented = jsonapi.bearer_token(req) or req.get_header('X-API-Key')
    if presented and presented.startswith('pk_'):
        # pk_ keys ship inside browsers: anyone could read one and replace the maps.
        raise falcon.HTTPUnauthorized(
            description='pk_ keys are public ingest keys and cannot upload; '
                        + UPLOAD_TOKEN_REQUIRED,
            headers={'WWW-Authenticate': 'Bearer'})
    row = auth.find_token(jsonapi.bearer_token(req), 'upload')
    if row is None or row.project_id is None:
        raise falcon.HTTPUnauthorized(description=UPLOAD_TOKEN_REQUIRED,
                                      headers={'WWW-Authenticate': 'Bearer'})
    return row


def token_project(token, ref):
    """The token's project; ref (id or slug), when sent, must name that same project."""
    project = Project.get_by_id(token.project_id)
    if ref in (None, ''):
        return project
    ref = str(ref)
    if ref != str(project.id) and ref != project.slug:
        raise falcon.HTTPForbidden(
            description=f'this upload token is for project {project.slug!r}, not {ref!r}')
    return project


def check_version(version):
    if not isinstance(version, str) or not version.strip():
        raise falcon.HTTPBadRequest(description='release: required (the version events send)')
    if len(version) > MAX_VERSION:
        raise falcon.HTTPBadRequest(
            description=f'release: longer than {MAX_VERSION} characters (events trim it there)')
    if version != version.strip():
        raise falcon.HTTPBadRequest(description='release: leading or trailing spaces')
    return version


def join_url(url, url_prefix):
    """The URL a map is stored under: url_prefix + '/' + url for a relative url, '~/path' for a
    path without a host (matches that path on any host)."""
    url = (url or '').strip()
    url_prefix = (url_prefix or '').strip()
    if not url:
        raise falcon.HTTPBadRequest(
            description='url: required (the minified file\'s URL or ~/path)')
    absolute = '://' in url or url.startswith('~/')
    if url_prefix and not absolute:
        url = url_prefix.rstrip('/') + '/' + url.lstrip('/')
    if url.startswith('/'):
        url = '~' + url
    elif '://' not in url and not url.startswith('~/'):
        url = '~/' + url
    if len(url) > MAX_URL:
        raise falcon.HTTPBadRequest(description=f'url: longer than {MAX_URL} characters')
    return url


def ensure_release(project_id, version, now):
    """-> (release, created); runs on the writer."""
    release = Release.get_or_none(Release.project == project_id, Release.version == version)
    if release is not None:
        return release, False
    try:
        # A savepoint: another server process on the same PostgreSQL database may create this
        # release at the same moment (issue 9); then the unique index refuses ours, and it is read.
        with database.atomic():
            return Release.create(project=project_id, version=version, created_at=now), True
    except IntegrityError:
        return Release.get(Release.project == project_id, Release.version == version), False


def touch_token(token_id, now):
    ApiToken.update(last_used_at=now).where(ApiToken.id == token_id).execute()


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


def release_json(release, maps=None):
    body = {'id': release.id, 'project_id': release.project_id, 'version': release.version,
            'created_at': iso(release.created_at)}
    if maps is not None:
        body['sourcemaps'] = [sourcemap_json(m) for m in maps]
    return body


def sourcemap_json(row):
    return {'id': row.id, 'url': row.url, 'size': row.size, 'sha256': row.sha256,
            'resolved_count': row.resolved_count, 'created_at': iso(row.created_at)}


def project_releases(project_id, limit=100):
    """[(release, [maps without their data])] newest first, for the read API and the pages."""
    releases = list(Release.select().where(Release.project == project_id)
                    .order_by(Release.created_at.desc(), Release.id.desc()).limit(limit))
    maps = {}
    if releases:
        query = maps_with_counts().where(SourceMap.release.in_([r.id for r in releases]))
        for row in query:
            maps.setdefault(row.release_id, []).append(row)
    return [(release, maps.get(release.id, [])) for release in releases]


class Releases:
    """POST /api/v1/releases {"version": ..., "project": optional id or slug}: 201 when created,
    200 when it existed (idempotent per version)."""

    def __init__(self, writer, clock=utcnow):
        self.writer = writer
        self.clock = clock

    def on_post(self, req, resp):
        token = require_upload_token(req)
        body = req.bounded_stream.read(MAX_FIELD_BYTES * 4 + 1)
        try:
            media = orjson.loads(body or b'null')
        except orjson.JSONDecodeError as error:
            raise falcon.HTTPBadRequest(description=f'body is not valid JSON: {error}')
        if not isinstance(media, dict):
            raise falcon.HTTPBadRequest(description='body must be a JSON object: {"version": ...}')
        project = token_project(token, media.get('project'))
        version = check_version(media.get('version', media.get('release')))
        now = self.clock()

        def write():
            touch_token(token.id, now)
            return ensure_release(project.id, version, now)

        release, created = self.writer.call(write)
        maps = list(maps_with_counts().where(SourceMap.release == release.id))
        jsonapi.send(resp, {**release_json(release, maps), 'created': created},
             falcon.HTTP_201 if created else falcon.HTTP_200)


def read_form(req):
    """The upload's fields: text ones as str, files as (bytes, filename). 413 past the limits."""
    content_type = (req.content_type or '').lower()
    if not content_type.startswith('multipart/form-data'):
        raise falcon.HTTPUnsupportedMediaType(
            description='send multipart/form-data with release, url and the sourcemap file')
    length = req.content_length
    if length is not None and length > MAX_UPLOAD_BODY:
        raise falcon.HTTPContentTooLarge(
            description=f'upload is {length} bytes; at most {MAX_UPLOAD_BODY} are accepted')
    fields = {}
    for part in req.get_media():
        name = part.name
        if name in FILE_FIELDS:
            limit = FILE_FIELDS[name]
            # Read the stream, not part.data: get_data() stops at Falcon's 1 MiB buffer option.
            data = part.stream.read(limit + 1)
            if len(data) > limit:
                raise falcon.HTTPContentTooLarge(
                    description=f'{name}: over {limit // MiB} MiB; split the bundle or drop '
                                'sourcesContent of vendored code')
            fields[name] = (data, part.filename)
        elif name in TEXT_FIELDS:
            data = part.stream.read(MAX_FIELD_BYTES + 1)
            if len(data) > MAX_FIELD_BYTES:
                raise falcon.HTTPBadRequest(
                    description=f'{name}: longer than {MAX_FIELD_BYTES} bytes')
            try:
                fields[name] = data.decode('utf-8')
            except UnicodeDecodeError:
                raise falcon.HTTPBadRequest(description=f'{name}: not UTF-8')
        else:
            part.stream.read()  # skipped: unknown parts are ignored, not an error
    return fields


class SourceMaps:
    """POST /api/v1/sourcemaps, multipart: release, url (or url_prefix + the file's name), the
    sourcemap file, optionally the minified file. 201 created, 200 replaced; 400 with the
    decoder's reason for a bad map, 413 over 50 MiB. The release is created when missing."""

    def __init__(self, writer, clock=utcnow):
        self.writer = writer
        self.clock = clock

    def on_post(self, req, resp):
        token = require_upload_token(req)
        fields = read_form(req)
        project = token_project(token, fields.get('project'))
        version = check_version(fields.get('release'))
        if 'sourcemap' not in fields:
            raise falcon.HTTPBadRequest(description='sourcemap: required (the .map file)')
        map_data, map_name = fields['sourcemap']
        minified_data, minified_name = fields.get('minified', (None, None))
        url = fields.get('url')
        if not url and fields.get('url_prefix'):
            # With only a prefix, the minified file's own name completes the URL.
            without_suffix = map_name[:-4] if map_name and map_name.endswith('.map') else None
            url = minified_name or without_suffix
        url = join_url(url, fields.get('url_prefix'))
        try:
            index = parse_sourcemap(map_data)
        except InvalidSourceMap as error:
            raise falcon.HTTPBadRequest(description=f'sourcemap: {error}')
        sources = len(index.sources)
        with_content = sum(1 for i in range(sources) if index.context(i, 1)[1] is not None)
        del index
        now = self.clock()

        def write():
            touch_token(token.id, now)
            return store_sourcemap(project.id, version, url, map_data, minified_data, now)

        map_id, release_id, created = self.writer.call(write)
        jsonapi.send(resp, {
            'id': map_id, 'release_id': release_id, 'release': version, 'url': url,
            'size': len(map_data) + len(minified_data or b''),
            'sha256': hashlib.sha256(map_data).hexdigest(),
            'sources': sources, 'sources_with_content': with_content, 'created': created,
        }, falcon.HTTP_201 if created else falcon.HTTP_200)


class ProjectReleases:
    """GET /api/v1/projects/{id}/releases (read token): releases newest first, with their maps
    and how many frames each resolved."""

    def on_get(self, req, resp, project_id):
        token = jsonapi.require_token(req)
        project = Project.get_or_none(Project.id == project_id,
                                      Project.organization == token.organization_id)
        if project is None:
            raise falcon.HTTPNotFound(description=f'no project {project_id}')
        jsonapi.send(resp, {'releases': [release_json(release, maps)
                                 for release, maps in project_releases(project.id)]})


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
