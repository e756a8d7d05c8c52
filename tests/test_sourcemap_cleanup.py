"""The daily source-map clean-up with an injected clock: maps of releases older than the retention
go, the newest N releases of each project always keep theirs, release rows stay, the writer's
cached view forgets them, and the job is scheduled daily."""

import datetime
import logging

from apscheduler.triggers.cron import CronTrigger
from factories import make_project
from sourcemap_helpers import map_bytes

from proliferate import db
from proliferate import jobs
from proliferate.config import Config
from proliferate.jobs import build_scheduler
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.models import SourceMapCount
from proliferate.sourcemaps.resolver import Resolver

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0)


def add_releases(project, ages_in_days):
    """One release per age (days before NOW), each with one map; -> [version]."""
    data = map_bytes(1)
    versions = []
    with db.database.connection_context():
        with db.database.atomic():
            for i, age in enumerate(ages_in_days):
                version = f'{project.slug}@{i}'
                release = Release.create(project=project.id, version=version,
                                         created_at=NOW - datetime.timedelta(days=age))
                SourceMap.create(release=release, url=f'~/static/js/app.{i}.min.js',
                                 map_data=data, size=len(data), sha256=f'{i:064x}',
                                 created_at=release.created_at)
                versions.append(version)
    return versions


def versions_with_maps():
    with db.database.connection_context():
        query = (Release.select(Release.version).join(SourceMap).distinct().tuples())
        return {row[0] for row in query}


def config_for(config, **values):
    return Config(database_url=config.database_url, **values)


def test_old_maps_go_newest_releases_stay(config, services, caplog):
    web = make_project('web', 'acme')
    admin = make_project('admin', 'acme')
    # web: 13 releases, all older than 90 days: only the newest 10 keep their maps.
    web_versions = add_releases(web, [200 - i for i in range(13)])
    # admin: 11 recent releases and one old one: the old one is not among the newest 10, the
    # recent ones are younger than the retention and stay although they are more than 10.
    admin_versions = add_releases(admin, [120] + [30 - i for i in range(11)])
    cfg = config_for(config, sourcemap_retention_days=90, sourcemap_keep_releases=10)

    with caplog.at_level(logging.INFO, logger='proliferate.sourcemaps.releases'):
        removed = jobs.cleanup_sourcemaps(cfg, writer=services.writer, clock=lambda: NOW)

    gone = {version for _project, version, _count, _size in removed}
    assert gone == {web_versions[0], web_versions[1], web_versions[2], admin_versions[0]}
    assert versions_with_maps() == (set(web_versions) | set(admin_versions)) - gone
    assert all(count == 1 and size == len(map_bytes(1)) for _p, _v, count, size in removed)
    with db.database.connection_context():
        # The releases themselves stay: the release page still lists them, without maps.
        assert Release.select().count() == 25
    assert "release 'web@0': removed 1 map(s)" in caplog.text
    assert '4 release(s) cleaned, 4 map(s)' in caplog.text

    # Idempotent: a second run the same day finds nothing.
    assert jobs.cleanup_sourcemaps(cfg, writer=services.writer, clock=lambda: NOW) == []


def test_the_clock_decides(config, services):
    web = make_project('web', 'acme')
    versions = add_releases(web, [95, 85, 40])
    with db.database.connection_context():
        with db.database.atomic():
            for source_map in SourceMap.select(SourceMap.id):
                SourceMapCount.create(sourcemap=source_map.id, resolved_count=5)
    cfg = config_for(config, sourcemap_retention_days=90, sourcemap_keep_releases=1)
    assert [r[1] for r in jobs.cleanup_sourcemaps(cfg, writer=services.writer,
                                                  clock=lambda: NOW)] == [versions[0]]
    with db.database.connection_context():
        assert SourceMapCount.select().count() == 2  # the deleted map's count went with it
    later = NOW + datetime.timedelta(days=10)
    assert [r[1] for r in jobs.cleanup_sourcemaps(cfg, writer=services.writer,
                                                  clock=lambda: later)] == [versions[1]]
    # The newest release keeps its maps however old it gets.
    much_later = NOW + datetime.timedelta(days=3650)
    assert jobs.cleanup_sourcemaps(cfg, writer=services.writer, clock=lambda: much_later) == []
    assert versions_with_maps() == {versions[2]}


def test_zero_retention_keeps_everything(config, services):
    web = make_project('web', 'acme')
    versions = add_releases(web, [400, 300, 200])
    cfg = config_for(config, sourcemap_retention_days=0, sourcemap_keep_releases=0)
    assert jobs.cleanup_sourcemaps(cfg, writer=services.writer, clock=lambda: NOW) == []
    assert versions_with_maps() == set(versions)


def test_without_a_writer_and_the_resolver_forgets(config, services):
    web = make_project('web', 'acme')
    versions = add_releases(web, [100, 1])
    resolver = Resolver(ttl=3600)
    with db.database.connection_context():
        assert list(resolver.release_maps(web.id, versions[0])[0]) == ['~/static/js/app.0.min.js']
    services.writer.stop()  # the CLI path: no server, a transaction of its own
    cfg = config_for(config, sourcemap_retention_days=30, sourcemap_keep_releases=1)
    assert [r[1] for r in jobs.cleanup_sourcemaps(cfg, clock=lambda: NOW)] == [versions[0]]
    with db.database.connection_context():
        # Within its hour-long ttl, yet it reads again: the clean-up told it maps changed.
        assert resolver.release_maps(web.id, versions[0])[0] == {}


def test_scheduled_daily(config, services):
    scheduler = build_scheduler(config, writer=services.writer)
    job = scheduler.get_job('cleanup_sourcemaps')
    assert isinstance(job.trigger, CronTrigger)
    assert str(job.trigger) == "cron[hour='4', minute='10']"
    assert job.kwargs == {'config': config, 'writer': services.writer}
