"""build_scheduler(): the APScheduler BackgroundScheduler with every job added, not started.
Only server.serve() starts it."""

from apscheduler.schedulers.background import BackgroundScheduler

from proliferate import jobs

JOB_DEFAULTS = {'coalesce': True, 'max_instances': 1, 'misfire_grace_time': 60}


def build_scheduler(config, *, writer=None):
    scheduler = BackgroundScheduler(timezone='UTC', job_defaults=JOB_DEFAULTS)
    scheduler.add_job(jobs.checkpoint_wal, 'interval', minutes=5, id='checkpoint_wal',
                      replace_existing=True)
    if writer is not None:
        # Hourly, in chunks through the writer: ingest interleaves with the deletes.
        scheduler.add_job(jobs.enforce_retention, 'interval', hours=1, id='enforce_retention',
                          kwargs={'writer': writer, 'config': config}, replace_existing=True)
    if config.backup_dir:
        scheduler.add_job(jobs.backup_database, 'cron', hour=3, minute=17, id='backup_database',
                          kwargs={'config': config}, replace_existing=True)
    # A fixed time of day rather than an interval, so a server restarted daily still runs it.
    scheduler.add_job(jobs.cleanup_sourcemaps, 'cron', hour=4, minute=10, id='cleanup_sourcemaps',
                      kwargs={'config': config, 'writer': writer}, replace_existing=True)
    # Notifications (issue 5): sending never runs on a request or the writer's ingest path.
    scheduler.add_job(jobs.send_outbox, 'interval', seconds=10, id='send_outbox',
                      kwargs={'config': config, 'writer': writer}, replace_existing=True)
    scheduler.add_job(jobs.send_digests, 'interval', minutes=5, id='send_digests',
                      kwargs={'config': config, 'writer': writer}, replace_existing=True)
    return scheduler
