"""The numbers an operator watches: in-process counters (the writer's commit times, the scheduled
jobs' runs and failures) and /metrics in the Prometheus text format, read from them and from the
database. It never serves HTTP itself: app.py's route calls render().

Written by hand rather than with prometheus_client: the text format is a few lines, most figures
are read from the database at scrape time (a client library's registry would only wrap them), and
one fewer dependency ships in the single file.
"""

import bisect
import os
import threading
import time

import peewee

from proliferate import db
from proliferate import times
from proliferate.models import Delivery
from proliferate.models import DroppedCount
from proliferate.models import Issue
from proliferate.models import Project

# Commit times in seconds: a group commit on SQLite with synchronous=FULL takes 1-20 ms; the
# upper buckets catch a disk or a PostgreSQL server that stalls.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Cumulative-at-render buckets, a count and a sum. observe() is called by one thread (the
    writer), so it takes no lock; a scrape may see one observation half-recorded, which the next
    scrape corrects."""

    def __init__(self, buckets=COMMIT_BUCKETS):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, value):
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self):
        """[(upper bound as text, cumulative count)], ending with +Inf."""
        total = 0
        rows = []
        for bound, count in zip((*self.buckets, float('inf')), self.counts, strict=True):
            total += count
            rows.append(('+Inf' if bound == float('inf') else repr(bound), total))
        return rows


class JobStats:
    """Runs and failures of each scheduled job in this process (only the leading process runs
    them). tracked(name, fn) is what the scheduler calls; the exception still reaches the
    scheduler, which logs it."""

    def __init__(self, clock=times.utcnow):
        self.clock = clock
        self._lock = threading.Lock()
        self._jobs = {}

    def tracked(self, name, fn):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                self.record(name, time.perf_counter() - started, error)
                raise
            self.record(name, time.perf_counter() - started, None)
            return result
        run.__name__ = getattr(fn, '__name__', name)
        run.__wrapped__ = fn
        return run

    def record(self, name, seconds, error):
        with self._lock:
            job = self._jobs.setdefault(name, {'runs': 0, 'failures': 0})
            job['runs'] += 1
            job['seconds'] = seconds
            job['last_run_at'] = self.clock()
            job['last_error'] = None if error is None else (
                f'{type(error).__name__}: {error}'[:300])
            if error is not None:
                job['failures'] += 1

    def snapshot(self):
        """{name: {runs, failures, seconds, last_run_at, last_error}} (copies)."""
        with self._lock:
            return {name: dict(job) for name, job in self._jobs.items()}


# -- reading ------------------------------------------------------------------------------------

def database_bytes(url):
    """The database's size on disk: the SQLite file and its WAL, or pg_database_size."""
    if db.is_sqlite():
        path = db.database.obj.database
        total = 0
        for name in (path, path + '-wal'):
            try:
                total += os.stat(name).st_size
            except OSError:
                pass
        return total
    row = db.database.execute_sql('SELECT pg_database_size(current_database())').fetchone()
    return int(row[0])


def project_labels():
    return {p.id: p.slug for p in Project.select(Project.id, Project.slug)}


def accepted_by_project():
    """Events stored per project: the writer keeps each issue's count, so this is a sum over
    issues, never a count of events (and it survives restarts, as a counter should)."""
    query = (Issue.select(Issue.project, peewee.fn.SUM(Issue.event_count).alias('n'))
             .group_by(Issue.project).tuples())
    return {project_id: int(n or 0) for project_id, n in query}


def dropped_by_project():
    query = DroppedCount.select(DroppedCount.project, DroppedCount.reason, DroppedCount.count).tuples()
    return list(query)


def deliveries_by_status():
    query = (Delivery.select(Delivery.status, peewee.fn.COUNT(Delivery.id))
             .group_by(Delivery.status).tuples())
    return dict(query)


# -- the text format ----------------------------------------------------------------------------

def escape(value):
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def labels(**pairs):
    if not pairs:
        return ''
    return '{' + ','.join(f'{name}="{escape(value)}"' for name, value in pairs.items()) + '}'


class Text:
    """Builds one exposition: each metric's HELP and TYPE once, then its samples."""

    def __init__(self):
        self.lines = []

    def metric(self, name, kind, help_text, samples):
        self.lines.append(f'# HELP {name} {help_text}')
        self.lines.append(f'# TYPE {name} {kind}')
        for suffix, pairs, value in samples:
            self.lines.append(f'{name}{suffix}{labels(**pairs)} {format_value(value)}')

    def render(self):
        return '\n'.join(self.lines) + '\n'


def format_value(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def render(*, writer, job_stats, database_url, leader=None):
    """The whole exposition; the caller holds a database connection."""
    out = Text()
    slugs = project_labels()

    def project(project_id):
        return {'project_id': project_id, 'project': slugs.get(project_id, '')}

    out.metric('proliferate_events_accepted_total', 'counter',
               'Events stored, per project (duplicates are refused, not stored).',
               [('', project(pid), n) for pid, n in sorted(accepted_by_project().items())])
    out.metric('proliferate_events_refused_total', 'counter',
               'Events refused per project and reason (reaches the database within a second).',
               [('', {**project(pid), 'reason': reason}, n)
                for pid, reason, n in sorted(dropped_by_project())])
    out.metric('proliferate_writer_queue_events', 'gauge',
               'Events waiting for the writer in this process.', [('', {}, writer.pending)])
    out.metric('proliferate_writer_queue_limit_events', 'gauge',
               'The writer queue bound (writer_queue_size); at it ingest answers 429.',
               [('', {}, writer.queue_size)])
    out.metric('proliferate_writer_committed_events_total', 'counter',
               'Events committed by this process\'s writer since it started.',
               [('', {}, writer.committed_items)])
    fault = writer.fault()
    out.metric('proliferate_writer_fault', 'gauge',
               '1 while writes fail for this reason (disk_full, database_unavailable): ingest '
               'answers 503 until they succeed again.',
               [('', {'kind': kind}, bool(fault) and fault['kind'] == kind)
                for kind in ('disk_full', 'database_unavailable')])
    out.metric('proliferate_writer_fault_seconds', 'gauge',
               'How long the current write fault has lasted (0 when there is none).',
               [('', {}, round(fault['seconds'], 3) if fault else 0)])
    histogram = writer.commit_seconds
    samples = [('_bucket', {'le': bound}, count) for bound, count in histogram.cumulative()]
    samples += [('_sum', {}, histogram.sum), ('_count', {}, histogram.count)]
    out.metric('proliferate_writer_commit_seconds', 'histogram',
               'Time of each group commit of the writer (the transaction and its fsync).', samples)
    jobs = job_stats.snapshot()
    out.metric('proliferate_job_runs_total', 'counter',
               'Runs of each scheduled job in this process (only the leading process runs them).',
               [('', {'job': name}, job['runs']) for name, job in sorted(jobs.items())])
    out.metric('proliferate_job_failures_total', 'counter', 'Runs that raised an error.',
               [('', {'job': name}, job['failures']) for name, job in sorted(jobs.items())])
    out.metric('proliferate_job_last_run_failed', 'gauge', '1 when the job\'s last run failed.',
               [('', {'job': name}, job['last_error'] is not None)
                for name, job in sorted(jobs.items())])
    statuses = deliveries_by_status()
    out.metric('proliferate_notification_deliveries', 'gauge',
               'Rows of the delivery log (kept 30 days) by status: sent, failed, pending...',
               [('', {'status': status}, statuses.get(status, 0))
                for status in sorted({'sent', 'failed', 'pending', *statuses})])
    out.metric('proliferate_database_bytes', 'gauge',
               'Size of the database: the SQLite file and its WAL, or pg_database_size.',
               [('', {}, database_bytes(database_url))])
    if leader is not None:
        out.metric('proliferate_leader', 'gauge', '1 when this process runs the scheduled jobs.',
                   [('', {}, leader.is_leader)])
    return out.render()
