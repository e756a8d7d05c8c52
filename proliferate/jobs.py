"""Scheduled jobs: module-level, idempotent functions that the scheduler runs and tests call
directly, and build_scheduler() that adds them (not started: only server.serve() starts it).
Jobs that write hand their writes to the writer. Each job's runs and failures are counted in a
metrics.JobStats (for /metrics and the admin banner)."""

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from proliferate import backup
from proliferate import db
from proliferate import metrics
from proliferate import retention
from proliferate import times
from proliferate import triage
from proliferate.notifications import digests
from proliferate.notifications import outbox
from proliferate.notifications.transactions import write
from proliferate.sourcemaps import releases

log = logging.getLogger(__name__)


def checkpoint_wal():
    """Keep the WAL file bounded while the issue browser holds read snapshots."""
    result = db.checkpoint_wal()
    if result is not None:
        log.debug('wal checkpoint: %s', result)
    return result


def enforce_retention(writer, config, clock=times.utcnow):
    """Delete events past event_retention_days or a project's max_events, in writer chunks."""
    return retention.enforce_retention(writer, days=config.event_retention_days, clock=clock)


def backup_database(config):
    """The daily verified copy into backup_dir, keeping the newest backup_keep."""
    if not config.backup_dir or not db.is_sqlite():
        return None
    try:
        figures = backup.scheduled_backup(config.database_url, config.backup_dir, config.backup_keep)
    except backup.BackupError as error:  # the reason is the whole story: no traceback
        log.error('backup failed: %s', error)
        return None
    log.info('backup: %(path)s, %(bytes)d bytes, integrity %(integrity)s', figures)
    return figures


def cleanup_sourcemaps(config, writer=None, clock=times.utcnow):
    """Daily: delete the maps of releases older than sourcemap_retention_days, keeping the
    newest sourcemap_keep_releases releases of each project."""
    return releases.cleanup_sourcemaps(config, writer=writer, clock=clock)


def send_outbox(config, writer=None, clock=times.utcnow, ssl_context=None):
    """Every few seconds: spikes and account thresholds, outbox rows into alerts (cooldown,
    hourly cap, summaries of the rest), and sending what is due with retries."""
    stats = outbox.run_outbox(config, clock(), writer=writer, ssl_context=ssl_context)
    if stats:
        log.info('notifications: %s', dict(stats))
    return stats


def send_digests(config, writer=None, clock=times.utcnow, ssl_context=None):
    """Every few minutes: the hourly, daily and weekly digests that are due."""
    stats = digests.run_digests(config, clock(), writer=writer, ssl_context=ssl_context)
    if stats:
        log.info('digests: %s', dict(stats))
    return stats


def wake_snoozes(writer=None, clock=times.utcnow):
    """Every minute: ignored issues whose snooze time is over open again, marked escalating
    (the writer's store wakes one at once when an event arrives after its time)."""
    now = clock()
    return write(writer, lambda: triage.wake_expired(now))


def auto_resolve(writer=None, clock=times.utcnow):
    """Hourly: resolve the issues of projects with auto-resolve set that have had no event for
    that many days."""
    now = clock()
    done = write(writer, lambda: triage.auto_resolve(now))
    if done:
        log.info('auto-resolve: %d issues resolved', done)
    return done


JOB_DEFAULTS = {'coalesce': True, 'max_instances': 1, 'misfire_grace_time': 60}


def build_scheduler(config, *, writer=None, job_stats=None):
    """job_stats: where each run and failure is counted (a fresh one if not given)."""
    stats = job_stats if job_stats is not None else metrics.JobStats()
    scheduler = BackgroundScheduler(timezone='UTC', job_defaults=JOB_DEFAULTS)

    def add(func, *trigger, id, **options):  # noqa: A002 (APScheduler's name)
        scheduler.add_job(stats.tracked(id, func), *trigger, id=id, replace_existing=True,
                          **options)

    add(checkpoint_wal, 'interval', minutes=5, id='checkpoint_wal')
    if writer is not None:
        # Hourly, in chunks through the writer: ingest interleaves with the deletes.
        add(enforce_retention, 'interval', hours=1, id='enforce_retention',
            kwargs={'writer': writer, 'config': config})
    if config.backup_dir:
        add(backup_database, 'cron', hour=3, minute=17, id='backup_database',
            kwargs={'config': config})
    # A fixed time of day rather than an interval, so a server restarted daily still runs it.
    add(cleanup_sourcemaps, 'cron', hour=4, minute=10, id='cleanup_sourcemaps',
        kwargs={'config': config, 'writer': writer})
    # Notifications: sending never runs on a request or the writer's ingest path.
    add(send_outbox, 'interval', seconds=10, id='send_outbox',
        kwargs={'config': config, 'writer': writer})
    add(send_digests, 'interval', minutes=5, id='send_digests',
        kwargs={'config': config, 'writer': writer})
    # Triage: snoozes that end by time, and auto-resolve (both through the writer).
    add(wake_snoozes, 'interval', minutes=1, id='wake_snoozes', kwargs={'writer': writer})
    add(auto_resolve, 'interval', hours=1, id='auto_resolve', kwargs={'writer': writer})
    return scheduler
