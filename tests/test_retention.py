"""Retention: events older than the age limit and beyond a project's maximum count go,
in chunks through the real writer; issues and their aggregates stay. The clock is injected.
"""

import datetime
import time
import types
import uuid

import pytest
from factories import make_project

from proliferate import db
from proliferate import jobs
from proliferate import retention
from proliferate.config import Config
from proliferate.ingest.normalize import normalize_event
from proliferate.ingest.prepare import prepare_event
from proliferate.jobs import build_scheduler
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import IssueHourly
from proliferate.models import IssueUser
from proliferate.models import Project
from proliferate.server import build_services

NOW = datetime.datetime(2025, 6, 1, 12, 0)


def days_ago(days):
    return NOW - datetime.timedelta(days=days)


def store(writer, project_id, received_at, count, *, kind='A', user='u1', random_pad=False):
    """count events of issue `kind`, received at received_at, through prepare_event and the writer."""
    items = []
    for _ in range(count):
        payload = {'event_id': uuid.uuid4().hex, 'timestamp': received_at.isoformat() + 'Z',
                   'type': 'exception', 'user': {'id': user}, 'extra': {'pad': uuid.uuid4().hex * 40 if random_pad else 'x' * 1500},
                   'exception': {'type': f'Error{kind}', 'message': 'boom',
                                 'stack': f'Error{kind}: boom\n    at f{kind} (https://a.test/app.js:1:1)'}}
        _key, timestamp, event = normalize_event(payload, received_at=received_at)
        items.append(prepare_event(event, project_id, timestamp, received_at))
    statuses = writer.submit(items).wait(30)
    assert statuses == ['ok'] * count


class CountingWriter:
    """The real writer, with each call's duration recorded."""

    def __init__(self, writer):
        self.writer = writer
        self.durations = []

    def call(self, fn):
        started = time.monotonic()
        try:
            return self.writer.call(fn)
        finally:
            self.durations.append(time.monotonic() - started)


def snapshot(project_id):
    with db.database.connection_context():
        issues = {i.type: (i.event_count, i.user_count, i.last_event)
                  for i in Issue.select().where(Issue.project == project_id)}
        hourly = IssueHourly.select().count()
        users = IssueUser.select().count()
        events = [e.id for e in Event.select(Event.id).where(Event.project == project_id)
                  .order_by(Event.id)]
    return issues, hourly, users, events


def test_old_events_go_in_chunks_and_issues_keep_their_counts(services):
    project = make_project()
    store(services.writer, project.id, days_ago(120), 30, kind='Old')
    store(services.writer, project.id, days_ago(100), 15, kind='Both')
    store(services.writer, project.id, days_ago(10), 20, kind='Both')
    before_issues, before_hourly, before_users, before_events = snapshot(project.id)
    writer = CountingWriter(services.writer)

    stats = retention.enforce_retention(writer, days=90, clock=lambda: NOW, chunk=7)

    assert stats == {'expired': 45, 'surplus': 0, 'done': True}
    # 45 expired events in chunks of at most 7: seven writer transactions, each short.
    assert len(writer.durations) == 7
    assert max(writer.durations) < 1.0
    issues, hourly, users, events = snapshot(project.id)
    assert events == before_events[45:]
    # Issues and their aggregates are history: unchanged.
    assert {k: v[:2] for k, v in issues.items()} == {k: v[:2] for k, v in before_issues.items()}
    assert issues['ErrorOld'][:2] == (30, 1)
    assert (hourly, users) == (before_hourly, before_users)
    # The issue whose events all went lost its pointer; the other still points at its newest.
    assert issues['ErrorOld'][2] is None
    assert issues['ErrorBoth'][2] == before_issues['ErrorBoth'][2] == events[-1]
    # A second run finds nothing more.
    assert retention.enforce_retention(writer, days=90, clock=lambda: NOW)['expired'] == 0


def test_a_project_keeps_at_most_its_max_events(services):
    capped = make_project('capped')
    other = make_project('other')
    with db.database.connection_context():
        Project.update(max_events=10).where(Project.id == capped.id).execute()
    store(services.writer, capped.id, days_ago(3), 15, kind='A')
    store(services.writer, capped.id, days_ago(1), 10, kind='B')
    store(services.writer, other.id, days_ago(3), 25, kind='A')
    _issues, _hourly, _users, before = snapshot(capped.id)

    stats = retention.enforce_retention(services.writer, days=90, clock=lambda: NOW, chunk=4)

    assert stats == {'expired': 0, 'surplus': 15, 'done': True}
    issues, _hourly, _users, after = snapshot(capped.id)
    assert after == before[15:]  # the newest ten
    assert issues['ErrorA'][:2] == (15, 1) and issues['ErrorA'][2] is None
    assert len(snapshot(other.id)[3]) == 25


def test_zero_days_keeps_everything_and_a_run_stops_at_its_deadline(services):
    project = make_project()
    store(services.writer, project.id, days_ago(400), 12)
    assert retention.enforce_retention(services.writer, days=0, clock=lambda: NOW)['expired'] == 0
    ticks = iter(range(0, 1000, 10))
    stats = retention.enforce_retention(services.writer, days=90, clock=lambda: NOW, chunk=5,
                                        run_seconds=15, monotonic=lambda: next(ticks))
    # Deadline at t=15: the checks at t=10 and t=20 allow one chunk; the rest waits for the next run.
    assert stats == {'expired': 5, 'surplus': 0, 'done': False}
    assert retention.enforce_retention(services.writer, days=90, clock=lambda: NOW)['expired'] == 7


@pytest.fixture
def sqlite_services(tmp_path):
    """The SQLite file's pages are what the next test measures: SQLite even when the suite runs
    on PostgreSQL (PROLIFERATE_TEST_DATABASE_URL)."""
    writer, _drops, _store = build_services(Config(database_url=f'sqlite:///{tmp_path}/p.db'))
    yield types.SimpleNamespace(writer=writer)
    writer.stop()
    if not db.database.is_closed():
        db.database.close()


def test_the_database_file_stops_growing_at_a_steady_rate(sqlite_services):
    services = sqlite_services
    project = make_project()
    pages = []
    for cycle in range(6):
        # 300 events every 30 days with a 61-day limit: three cycles' events live at once.
        received = NOW + datetime.timedelta(days=30 * cycle)
        store(services.writer, project.id, received, 300, random_pad=True)
        retention.enforce_retention(services.writer, days=61,
                                    clock=lambda received=received: received)
        with db.database.connection_context():
            db.database.execute_sql('PRAGMA wal_checkpoint(TRUNCATE)')
            pages.append(db.database.execute_sql('PRAGMA page_count').fetchone()[0])
    with db.database.connection_context():
        assert Event.select().count() == 3 * 300
    # From the fourth cycle on, each insert reuses the pages the last delete freed.
    assert pages[5] <= pages[3] * 1.05, pages
    assert pages[3] > pages[1], pages


def test_the_job_uses_the_setting_and_the_scheduler_has_it(services, tmp_path):
    project = make_project()
    store(services.writer, project.id, days_ago(40), 3)
    config = Config(database_url=f'sqlite:///{tmp_path}/p.db', event_retention_days=30)
    assert jobs.enforce_retention(services.writer, config, clock=lambda: NOW)['expired'] == 3
    ids = {job.id for job in build_scheduler(config, writer=services.writer).get_jobs()}
    assert {'checkpoint_wal', 'enforce_retention'} <= ids
    assert 'backup_database' not in ids
    with_backups = Config(database_url=config.database_url, backup_dir=str(tmp_path / 'b'))
    assert 'backup_database' in {job.id for job in build_scheduler(with_backups).get_jobs()}


@pytest.mark.parametrize('days', [-1])
def test_negative_retention_is_refused(days, tmp_path):
    with pytest.raises(ValueError):
        Config(database_url=f'sqlite:///{tmp_path}/p.db', event_retention_days=days)
