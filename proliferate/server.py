"""serve(config): open the database, migrate, start the writer and the scheduler, run Waitress,
and stop in order (listener, in-flight requests, scheduler, writer drain, database).
"""

import ctypes
import logging
import resource
import signal
import sys
import threading
import time

import waitress
from waitress import wasyncore

from proliferate import db
from proliferate import logs
from proliferate import regroup
from proliferate import times
from proliferate import triage
from proliferate.app import create_app
from proliferate.ingest.admission import DropCounter
from proliferate.ingest.store import Store
from proliferate.ingest.writer import Writer
from proliferate.leader import Leader
from proliferate.leader import lock_for
from proliferate.metrics import JobStats
from proliferate.sourcemaps.resolver import Resolver
from proliferate.sourcemaps.upload_api import MAX_UPLOAD_BODY

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter number from glibc's malloc.h


def build_services(config, clock=times.utcnow):
    """The database, migrated, and a started writer: what serve() and the tests share."""
    # PostgreSQL pool: a connection for each Waitress thread, the writer, the leader's checks
    # and the jobs (SQLite ignores it).
    db.open_database(config.database_url, synchronous=config.sqlite_synchronous,
                     pool_size=config.threads + 8)
    db.migrate()
    drops = DropCounter()
    store = Store(clock=clock, drops=drops,
                  resolver=Resolver(cache_bytes=config.sourcemap_cache_mb * 1024 * 1024),
                  lifecycle=triage)
    writer = Writer(store, queue_size=config.writer_queue_size,
                    batch_size=config.writer_batch_size, idle=store.flush_idle).start()
    # Issues of a database written by grouping version 1 answer to their version-2 key too
    # (once; chunked through the writer, before any request is served).
    regroup.upgrade(writer)
    return writer, drops, store


# Waitress keeps a connection's unread request in memory up to this many bytes, then in a
# temporary file: with 4,000 connections each holding a slowly sent body, 64 KiB bounds that to
# 256 MB (its default, 512 KiB, would allow 2 GB).
INBUF_OVERFLOW = 64 * 1024
# Bytes read from a connection at a time (Waitress's default).
RECV_BYTES = 8192
# Descriptors besides the connections: the database, its WAL, the pool, logs, spooled bodies.
SPARE_DESCRIPTORS = 256


def create_server(config, app):
    # Limits set on purpose: a body a little over the largest upload (a 50 MiB source map with
    # its minified file; ingest routes answer 413 with a reason at their own smaller limits, and
    # waitress spools large bodies to disk), bounded headers and connections. poll() instead of
    # select(): select() cannot watch a descriptor above 1023, and the connection limit is above
    # that.
    proxy = {}
    if config.trusted_proxy:
        proxy = {'trusted_proxy': config.trusted_proxy, 'trusted_proxy_count': 1,
                 'trusted_proxy_headers': config.trusted_proxy_headers}
    raise_descriptor_limit(config.connection_limit + config.threads + SPARE_DESCRIPTORS)
    return waitress.create_server(
        app, host=config.host, port=config.port, threads=config.threads, **proxy,
        connection_limit=config.connection_limit, channel_timeout=config.channel_timeout,
        asyncore_use_poll=True, inbuf_overflow=INBUF_OVERFLOW, recv_bytes=RECV_BYTES,
        max_request_body_size=max(config.max_batch_bytes, MAX_UPLOAD_BODY) + 1024 * 1024,
        max_request_header_size=64 * 1024, clear_untrusted_proxy_headers=True,
        ident='proliferate')


def raise_descriptor_limit(wanted):
    """The process's open-file limit raised to wanted (as far as the hard limit allows): a
    connection is a descriptor, and systemd's and many shells' soft limit is 1,024. -> the
    limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as error:
        log.warning('could not raise the open-file limit from %d to %d (%s)', soft, target, error)
        return soft
    if target < wanted:
        log.warning('the open-file limit is %d (hard limit), below the %d that connection_limit '
                    'needs: raise it (LimitNOFILE= in systemd) or lower connection_limit',
                    target, wanted)
    return target


def finish_requests(server, timeout=10):
    """Stop accepting, keep the loop turning until the worker threads have answered what they
    took and those answers are sent, and only then close the connections and the loop's trigger.
    Closing the trigger first made a finishing worker's wake-up write to a closed descriptor
    (EBADF), and its answer was never sent."""
    wasyncore.dispatcher.close(server)  # the listening socket only
    dispatcher = server.task_dispatcher
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sending = any(getattr(channel, 'total_outbufs_len', 0)
                      for channel in list(server._map.values()))
        if not (dispatcher.active_count or dispatcher.queue or sending):
            break
        # poll(), as the server's own loop: select() fails on a descriptor above 1,023.
        wasyncore.loop(timeout=0.05, use_poll=True, map=server._map, count=1)
    dispatcher.shutdown(cancel_pending=False, timeout=max(0.0, deadline - time.monotonic()))
    server.close()


def limit_malloc_arenas(arenas=2):
    """glibc gives each thread that allocates its own malloc arena and rarely returns their
    memory; with 16 request threads that alone added tens of MB of RSS under batch load.
    (The same as MALLOC_ARENA_MAX=2, set from inside because `proliferate serve` is the one
    command.)"""
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:  # not glibc
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def serve(config, *, on_ready=None):
    from proliferate.jobs import build_scheduler

    logs.setup(config.log_level, config.log_format)
    limit_malloc_arenas()
    # A file that is not ours, too new or damaged is refused before anything opens it for
    # writing: migrating another application's database would change it.
    usable, message = db.inspect_database(config.database_url)
    if not usable:
        print(f'proliferate: not starting: {message}', file=sys.stderr, flush=True)
        return 3
    writer, drops, _store = build_services(config)
    # Of the processes sharing the database, the one holding this lock runs the scheduled jobs.
    leader = Leader(lock_for(config.database_url), retry_seconds=config.leader_retry_seconds)
    job_stats = JobStats()  # the jobs' runs and failures, for /metrics and the admin banner
    app = create_app(config, writer=writer, drops=drops, leader=leader, job_stats=job_stats)
    server = create_server(config, app)
    scheduler = build_scheduler(config, writer=writer, job_stats=job_stats)
    # Every process runs the scheduler; each job runs only while its process leads, and checks
    # the lock's session just before it runs, so a process that lost the lock stops at once
    # rather than at its next check (pausing and resuming the scheduler would leave that gap).
    for job in scheduler.get_jobs():
        job.modify(func=leader.guard(job.func))

    def stop(signum, frame):
        raise SystemExit(0)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    leader.start()
    scheduler.start()
    url = f'http://{server.effective_host}:{server.effective_port}'
    role = 'runs the scheduled jobs' if leader.is_leader else 'standing by for the scheduled jobs'
    print(f'Proliferate listening on {url} (database: {db.describe(config.database_url)}; '
          f'{role})', flush=True)
    if on_ready:
        on_ready(server)
    try:
        server.run()
    except SystemExit:
        pass
    finally:
        log.info('stopping: closing the listener, finishing requests, draining the writer')
        finish_requests(server)
        scheduler.shutdown(wait=False)
        # Released at once: a waiting process takes over at its next try, not after a timeout.
        leader.stop()
        writer.stop()
        if not db.database.is_closed():
            db.database.close()
        print('Proliferate stopped', flush=True)
    return 0
