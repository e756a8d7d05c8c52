"""What is wrong or risky with an installation: the checks of `proliferate check` (settings,
database and schema, base URL, SMTP login, disk, backups) and Attention, the cached summary behind
the admin banner. No HTTP server code; a check reads and never changes anything.
"""

import datetime
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import peewee
from playhouse import db_url

from proliferate import backup
from proliferate import db
from proliferate import times
from proliferate.models import Delivery
from proliferate.notifications import send

OK, WARN, FAIL = 'ok', 'warn', 'FAIL'
# Below this share of free space where the database lives, say so (SQLite needs room for its
# WAL and a backup needs the database's size again).
DISK_WARN_FRACTION = 0.10
BACKUP_MAX_AGE = datetime.timedelta(days=2)
HEALTHZ_TIMEOUT = 3.0
SMTP_TIMEOUT = 10.0


class Finding(tuple):
    """(level, subject, message): one line of the report."""

    def __new__(cls, level, subject, message):
        return super().__new__(cls, (level, subject, message))

    level = property(lambda self: self[0])
    subject = property(lambda self: self[1])
    message = property(lambda self: self[2])


# -- pure decisions -----------------------------------------------------------------------------

def release_migrations():
    """The migration names this release carries, in order."""
    return sorted(path.stem for path in db.MIGRATIONS_DIR.glob('[0-9]*.py'))


def schema_finding(applied, tables, release):
    """applied: migration names the database records (None: no schema_migration table);
    tables: its table names; release: this release's migration names."""
    if applied is None:
        if tables:
            return Finding(FAIL, 'database', f'not a Proliferate database: it has {len(tables)} '
                           'table(s) but no schema_migration (another application\'s database?)')
        return Finding(WARN, 'database', 'empty: `proliferate serve` or `migrate` creates the schema')
    unknown = sorted(set(applied) - set(release))
    if unknown:
        return Finding(FAIL, 'database', f'schema is newer than this release ({", ".join(unknown)} '
                       'unknown): run the release that migrated it, or restore a backup')
    pending = [name for name in release if name not in applied]
    latest = max(applied) if applied else 'none'
    if pending:
        return Finding(WARN, 'database', f'schema at {latest}; {len(pending)} migration(s) pending '
                       f'({", ".join(pending)}), applied at the next start: back up first')
    return Finding(OK, 'database', f'schema up to date ({latest}, {len(release)} migrations)')


def disk_finding(path, total, free):
    share = free / total if total else 0.0
    text = f'{free / 2 ** 30:.1f} GiB free of {total / 2 ** 30:.1f} GiB ({share:.0%}) at {path}'
    if share < DISK_WARN_FRACTION:
        return Finding(WARN, 'disk', f'{text}: under {DISK_WARN_FRACTION:.0%}')
    return Finding(OK, 'disk', text)


def backup_overdue(latest, since, now):
    """True when no backup is younger than BACKUP_MAX_AGE, counting from `since` (when the
    database was first migrated) so a new installation is not warned before its first night."""
    reference = latest if latest is not None else since
    return reference is not None and now - reference > BACKUP_MAX_AGE


# -- reading the world --------------------------------------------------------------------------

def sqlite_path(url):
    return Path(db_url.parse(url)['database']).resolve()


def database_dir(url):
    """The directory that holds a SQLite database; None for PostgreSQL (maybe another host)."""
    return sqlite_path(url).parent if url.startswith('sqlite') else None


def inspect_schema(url):
    """(applied migration names or None, table names) read without writing anything: a missing
    SQLite file is not created. Raises on an unreachable or unreadable database."""
    if url.startswith('sqlite'):
        path = sqlite_path(url)
        connection = sqlite3.connect(f'{path.as_uri()}?mode=ro', uri=True, timeout=5)
        try:
            tables = [row[0] for row in connection.execute(db.SQLITE_TABLES)]
            return db.applied_migrations(connection.execute, tables), tables
        finally:
            connection.close()
    database = db.open_session(url)
    database.connect_params['connect_timeout'] = 5
    database.connect()
    try:
        tables = database.get_tables()
        return db.applied_migrations(database.execute_sql, tables), tables
    finally:
        database.close()


def check_database(config):
    url = config.database_url
    if url.startswith('sqlite'):
        path = sqlite_path(url)
        if not path.exists():
            if not os.access(path.parent, os.W_OK):
                return Finding(FAIL, 'database', f'{path} does not exist and {path.parent} is not '
                               'writable')
            return Finding(WARN, 'database', f'{path} does not exist yet: `proliferate serve` or '
                           '`migrate` creates it')
    # What serve and migrate refuse (not a SQLite file, another application's tables, a newer
    # schema, a damaged file) is refused here in the same words.
    usable, message = db.inspect_database(url)
    if not usable:
        return Finding(FAIL, 'database', message)
    try:
        applied, tables = inspect_schema(url)
    except (sqlite3.Error, peewee.PeeweeException, OSError) as error:
        return Finding(FAIL, 'database', f'{db.describe(url)}: {error}')
    except Exception as error:  # a driver's own errors (psycopg's OperationalError)
        return Finding(FAIL, 'database', f'{db.describe(url)}: {type(error).__name__}: {error}')
    return schema_finding(applied, tables, release_migrations())


def check_base_url(config):
    if not config.base_url:
        return Finding(WARN, 'base_url', 'not set: links in email and webhooks are missing and '
                       'DSNs name whatever host a page was opened with')
    url = config.base_url.rstrip('/') + '/healthz'
    if urllib.parse.urlsplit(url).scheme not in ('http', 'https'):
        return Finding(FAIL, 'base_url', f'{config.base_url!r} is not an http(s) URL')
    try:
        with urllib.request.urlopen(url, timeout=HEALTHZ_TIMEOUT) as answer:  # noqa: S310 (http(s) only, checked above)
            body = orjson.loads(answer.read(64 * 1024))
    except urllib.error.HTTPError as error:
        return Finding(FAIL, 'base_url', f'GET {url}: {error.code} {error.reason}')
    except (OSError, ValueError) as error:
        return Finding(FAIL, 'base_url', f'GET {url}: {getattr(error, "reason", error)} '
                       '(is the server running and the address right?)')
    if not isinstance(body, dict) or body.get('status') != 'ok':
        return Finding(FAIL, 'base_url', f'GET {url} answered, but not as Proliferate\'s /healthz')
    return Finding(OK, 'base_url', f'{url} answers (writer queue {body.get("writer_queue")})')


def check_smtp(config, ssl_context=None):
    if not config.smtp_host:
        return Finding(WARN, 'smtp', 'not configured: no notification email is sent')
    where = f'{config.smtp_host}:{config.smtp_port}'
    try:
        with send.SmtpSender(config, ssl_context=ssl_context, timeout=SMTP_TIMEOUT):
            pass
    except send.SendError as error:
        return Finding(FAIL, 'smtp', str(error))
    login = f'logged in as {config.smtp_username}' if config.smtp_username else 'no login'
    tls = 'SSL' if config.smtp_ssl else 'STARTTLS' if config.smtp_starttls else 'no TLS'
    return Finding(OK, 'smtp', f'{where} answers ({tls}, {login})')


def check_disk(config):
    directory = database_dir(config.database_url)
    if directory is None:
        return Finding(OK, 'disk', 'PostgreSQL: watch the disk of its server')
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    usage = shutil.disk_usage(directory)
    return disk_finding(directory, usage.total, usage.free)


def latest_backup(directory):
    """The time of the newest dated backup in directory, or None."""
    try:
        names = [entry for entry in os.scandir(directory)
                 if backup.NAME_PATTERN.match(entry.name) and entry.is_file()]
    except OSError:
        return None
    if not names:
        return None
    newest = max(entry.stat().st_mtime for entry in names)
    return datetime.datetime.fromtimestamp(newest, datetime.UTC).replace(tzinfo=None)


def check_backups(config, now=None):
    if not config.backup_dir:
        return Finding(WARN, 'backups', 'PROLIFERATE_BACKUP_DIR is empty: no scheduled backup')
    if not config.database_url.startswith('sqlite'):
        return Finding(WARN, 'backups', 'the scheduled backup copies SQLite only: back up '
                       'PostgreSQL with pg_dump')
    directory = Path(config.backup_dir)
    target = directory
    while not target.exists() and target != target.parent:
        target = target.parent  # the job creates missing directories below a writable one
    if not target.is_dir():
        return Finding(FAIL, 'backups', f'{directory}: {target} is not a directory')
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix='.proliferate-check-'):
            pass
    except OSError as error:
        return Finding(FAIL, 'backups', f'{directory} is not writable: {error.strerror}')
    latest = latest_backup(directory)
    now = now or times.utcnow()
    if latest is None:
        return Finding(OK, 'backups', f'{directory} is writable; no backup yet (daily at 03:17 UTC)')
    age = now - latest
    text = f'{directory} is writable; the newest backup is {age.total_seconds() / 3600:.0f} h old'
    if age > BACKUP_MAX_AGE:
        return Finding(WARN, 'backups', text + ': older than two days')
    return Finding(OK, 'backups', text)


def run_checks(config, *, ssl_context=None):
    """Every finding, in the order of the report."""
    return [check_database(config), check_base_url(config), check_smtp(config, ssl_context),
            check_disk(config), check_backups(config)]


# -- the admin banner ---------------------------------------------------------------------------

QUEUE_WARN_SHARE = 0.8
DELIVERY_WINDOW = datetime.timedelta(hours=1)


def failing_deliveries(now):
    """Deliveries that failed in the last hour, and those still being retried after failing."""
    return (Delivery.select()
            .where(((Delivery.status == 'failed') & (Delivery.created_at >= now - DELIVERY_WINDOW))
                   | ((Delivery.status == 'pending') & (Delivery.attempts > 0)))
            .count())


def first_migrated_at():
    """When the database was first migrated (the runner records local time; servers run UTC)."""
    row = db.database.execute_sql('SELECT MIN(applied) FROM schema_migration').fetchone()
    return times.from_sql(row[0] if row else None)


class Attention:
    """What an admin should look at, computed at most every `ttl` seconds and shared by every
    page: one thread computes while the others keep showing the previous answer."""

    def __init__(self, *, config, writer, job_stats, clock=times.utcnow, ttl=5.0):
        self.config = config
        self.writer = writer
        self.job_stats = job_stats
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._messages = []
        self._at = None
        self._since = None

    def messages(self):
        now = time.monotonic()
        if self._at is not None and now - self._at < self.ttl:
            return self._messages
        if not self._lock.acquire(blocking=False):
            return self._messages
        try:
            self._messages = self.compute()
            self._at = time.monotonic()
        finally:
            self._lock.release()
        return self._messages

    def compute(self):
        found = []
        now = self.clock()
        writer = self.writer
        fault = writer.fault() if hasattr(writer, 'fault') else None
        if fault is not None:
            what = ('The disk is full' if fault['kind'] == 'disk_full'
                    else 'The database is unavailable')
            found.append(f'{what}: events are refused with 503 for {fault["seconds"]:.0f} s '
                         f'({fault["error"]}); writes resume by themselves when it is fixed.')
        if writer.pending >= QUEUE_WARN_SHARE * writer.queue_size:
            found.append(f'The writer queue is {writer.pending / writer.queue_size:.0%} full: ingest '
                         'answers 429 when it fills.')
        for name, job in sorted(self.job_stats.snapshot().items()):
            if job.get('last_error'):
                found.append(f'The scheduled job {name} failed on its last run '
                             f'({job["last_run_at"]:%Y-%m-%d %H:%M} UTC): {job["last_error"]}')
        failing = failing_deliveries(now)
        if failing:
            found.append(f'{failing} notification deliveries failed in the last hour or are being '
                         'retried: see the delivery log.')
        disk = check_disk(self.config)
        if disk.level != OK:
            found.append(f'Low disk space: {disk.message}.')
        if self.config.backup_dir and self.config.database_url.startswith('sqlite'):
            if self._since is None:
                self._since = first_migrated_at()
            latest = latest_backup(self.config.backup_dir)
            if backup_overdue(latest, self._since, now):
                found.append(f'No backup in two days in {self.config.backup_dir}.')
        return found
