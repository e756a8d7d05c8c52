"""Leadership: of the processes sharing one database, exactly one runs the scheduled jobs.

PostgreSQL: a session advisory lock held on a dedicated connection; SQLite: an exclusive lock on
a file beside the database. Must not run jobs itself: server.serve() wraps each job in guard().
"""

import fcntl
import logging
import os
import threading
from pathlib import Path

from playhouse import db_url

from proliferate import db

log = logging.getLogger(__name__)

# The advisory lock's id: the bytes of 'prolifer' as a bigint. Advisory locks are per database,
# so servers of other applications (or other Proliferate databases) on one cluster never clash.
LOCK_KEY = int.from_bytes(b'prolifer', 'big')
# A follower tries to take the lock this often, and the leader checks its session as often: a
# dead leader is replaced within this (plus the server noticing the dead session, see below).
RETRY_SECONDS = 15.0
# Server settings of the lock's session: the server probes an idle client after 10 s and drops
# it after 3 unanswered probes 5 s apart, so a leader whose machine vanished (no TCP reset) loses
# the lock within ~25 s instead of the kernel's two hours; idle_session_timeout (PostgreSQL 14+)
# must never end the session that holds the lock.
SESSION_SETTINGS = (('tcp_keepalives_idle', 10), ('tcp_keepalives_interval', 5),
                    ('tcp_keepalives_count', 3), ('idle_session_timeout', 0))
# The same on our side (libpq keepalives): a leader cut off from the server stops within ~25 s.
CLIENT_KEEPALIVES = {'keepalives': 1, 'keepalives_idle': 10, 'keepalives_interval': 5,
                     'keepalives_count': 3}


class PostgresLock:
    """pg_try_advisory_lock on a connection of its own. The lock lives exactly as long as the
    session: a process that dies (kill -9 included) closes its socket and the server releases it
    at once. Not for PgBouncer in transaction mode: the lock needs a session of its own."""

    def __init__(self, url, key=LOCK_KEY):
        self.url = url
        self.key = key
        self._db = None

    def acquire(self):
        if self._db is None:
            self._db = db.open_session(self.url)
            self._db.connect_params.update(CLIENT_KEEPALIVES)
            self._db.connect()
            for name, value in SESSION_SETTINGS:
                try:
                    self._db.execute_sql(f"SELECT set_config('{name}', '{int(value)}', false)")
                except Exception:  # an older server without the setting
                    log.debug('leader: server setting %s not available', name)
        held, = self._db.execute_sql('SELECT pg_try_advisory_lock(%s)', (self.key,)).fetchone()
        if not held:
            self.reset()
        return bool(held)

    def check(self):
        """Still leading: the session that holds the lock answers."""
        self._db.execute_sql('SELECT 1').fetchone()
        return True

    def release(self):
        if self._db is not None and not self._db.is_closed():
            try:
                self._db.execute_sql('SELECT pg_advisory_unlock(%s)', (self.key,))
            except Exception:
                log.debug('leader: unlock failed; closing the session releases it', exc_info=True)
        self.reset()

    def reset(self):
        if self._db is not None:
            try:
                self._db.close()
            except Exception:
                log.debug('leader: closing the lock session failed', exc_info=True)
        self._db = None


class FileLock:
    """flock() on <database file>.leader: one SQLite process is always the leader; a second one
    on the same file (a restart overlapping the old process) waits. The kernel releases the lock
    when the holder's process ends, however it ends."""

    def __init__(self, path):
        self.path = Path(str(path) + '.leader')
        self._fd = None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()}\n'.encode())
        self._fd = fd
        return True

    def check(self):
        return True  # the kernel holds it for us until release() or the process ends

    def release(self):
        self.reset()

    def reset(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def lock_for(url):
    if db.is_postgresql(url):
        return PostgresLock(url)
    if url.startswith('sqlite'):
        return FileLock(Path(db_url.parse(url)['database']).resolve())
    raise ValueError(f'no leader lock for {url!r}')


class Leader:
    """A thread that takes the lock when it is free and keeps checking it while held.
    is_leader is what /healthz shows; guard(job) runs a job only in the leading process."""

    def __init__(self, lock, *, retry_seconds=RETRY_SECONDS, name='proliferate-leader'):
        self.lock = lock
        self.retry_seconds = retry_seconds
        self.name = name
        self.is_leader = False
        self.elections = 0
        self._mutex = threading.Lock()  # one user of the lock's session at a time
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._step()  # a lone process leads from its first second
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._mutex:
            if self.is_leader:
                log.info('leader: stepping down (stopping)')
            self.is_leader = False
            self.lock.release()

    def confirm(self):
        """True when this process leads now; a lost session is noticed here, before a job runs,
        not up to retry_seconds later."""
        with self._mutex:
            if not self.is_leader:
                return False
            return self._check()

    def guard(self, job):
        """job wrapped to run only while leading (the scheduler runs in every process)."""
        def guarded(*args, **kwargs):
            if not self.confirm():
                return None
            return job(*args, **kwargs)
        guarded.__name__ = getattr(job, '__name__', 'job')
        guarded.__wrapped__ = job
        return guarded

    def _run(self):
        while not self._stop.wait(self.retry_seconds):
            self._step()

    def _step(self):
        with self._mutex:
            if self.is_leader:
                self._check()
                return
            try:
                taken = self.lock.acquire()
            except Exception as error:
                log.warning('leader: could not try the lock (%s); trying again in %.0f s',
                            ' '.join(str(error).split())[:300], self.retry_seconds)
                self.lock.reset()
                return
            if taken:
                self.is_leader = True
                self.elections += 1
                log.info('leader: this process (pid %d) now runs the scheduled jobs', os.getpid())

    def _check(self):
        try:
            self.lock.check()
        except Exception as error:
            log.warning('leader: lost the lock session (%s); stepping down',
                        ' '.join(str(error).split())[:300])
            self.is_leader = False
            self.lock.reset()
            return False
        return True
