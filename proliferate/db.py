"""The database handle, its connection settings and migrations.

The only module that knows which backend it runs on: SQLite pragmas and SQLite-only SQL live here.
"""

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path

import peewee
from playhouse import db_url
from playhouse import migrations
from playhouse import pool

log = logging.getLogger(__name__)

database = peewee.DatabaseProxy()

MIGRATIONS_DIR = Path(__file__).resolve().parent / 'migrations'

# WAL lets the issue browser read while the writer writes. synchronous comes from the config:
# FULL by default, because 202 promises "committed" and group commit makes the fsync cheap.
PRAGMAS = (
    ('journal_mode', 'wal'),
    ('foreign_keys', 1),
    # 16 MB of page cache per connection (SQLite's is per connection: the writer's and every
    # request thread's). 64 MB made the server's RSS climb from 104 to 182 MB as the database
    # grew under load; 16 MB holds it at 130 MB at the same ingest speed, and the issue
    # browser's pages at 1,000,000 events stay under 30 ms at p95 (bench/pages_bench.py). Pages
    # it misses come from the OS's file cache, not the disk.
    ('cache_size', -16000),
)



# PostgreSQL. Each process keeps a pool: a request takes a connection and gives it
# back instead of starting a server backend per request (~3 ms each). The pool pings a
# connection when handing it out and drops dead ones, and replaces connections older than
# POOL_RECYCLE seconds, so a restarted server, a failover or a proxy's idle timeout does not
# fail requests; the writer's long-lived connection is replaced by heal_connection().
POOL_RECYCLE = 300
POOL_WAIT = 30
# libpq settings a postgresql:// URL may override with its query string (?sslmode=require&...).
PG_DEFAULTS = {'application_name': 'proliferate', 'connect_timeout': 10}
# SQLSTATEs after which a transaction can simply be tried again: deadlock_detected and
# serialization_failure (two processes' writes crossed; one of them is rolled back).
RETRYABLE_SQLSTATES = frozenset(('40P01', '40001'))


def is_sqlite():
    return isinstance(database.obj, peewee.SqliteDatabase)


def is_postgresql(url):
    return url.startswith(('postgres://', 'postgresql://', 'postgresext://', 'postgresqlext://'))


def open_database(url, *, synchronous='FULL', pool_size=32):
    """Bind the proxy to the database at url and return it (not connected). pool_size bounds a
    process's PostgreSQL connections (the server passes its threads plus the writer, the leader
    and the jobs)."""
    if url.startswith('sqlite'):
        db = db_url.connect(
            url,
            pragmas=PRAGMAS + (('synchronous', synchronous.upper()),),
            timeout=5,
            # Writes are BEGIN IMMEDIATE so a transaction never upgrades its lock half-way.
            lock_type='IMMEDIATE',
            autoconnect=False,
        )
    elif is_postgresql(url):
        db = pool.PooledPostgresqlDatabase(
            max_connections=pool_size, stale_timeout=POOL_RECYCLE, timeout=POOL_WAIT,
            autoconnect=False, **postgres_params(url))
    else:
        db = db_url.connect(url, autoconnect=False)
    database.initialize(db)
    return db


def postgres_params(url):
    """The connection arguments of a postgresql:// URL: playhouse.db_url's reading of it (query
    string included) over PG_DEFAULTS. psycopg 3 (setup.cfg extra [postgres]) is the driver
    tested here; Peewee falls back to psycopg2 when it is the only one installed (untested)."""
    params = dict(PG_DEFAULTS)
    params.update(db_url.parse(url, unquote_password=True, unquote_user=True))
    params.setdefault('prefer_psycopg3', True)
    return params


def open_session(url):
    """A database of its own, outside the pool and the proxy, for one long-lived session (the
    leader's lock): never handed to another thread or recycled. Not connected."""
    params = postgres_params(url)
    # thread_safe=False: one connection shared by whoever holds this object, not one per thread.
    return peewee.PostgresqlDatabase(autoconnect=False, thread_safe=False, **params)


def expand_list(sql, values):
    """sql holding 'IN ({list})' for values -> (sql, its parameters for the list). SQLite: a
    placeholder a value; PostgreSQL: one array, '= ANY(%s)' (psycopg parses a query of hundreds
    of placeholders anew every time: 12 ms a 1,000-event batch)."""
    if is_sqlite():
        return sql.replace('{list}', ', '.join(['?'] * len(values))), list(values)
    return sql.replace('IN ({list})', '= ANY(%s)'), [list(values)]


def insert_rows(cursor, table, columns, rows, *, conflict='', returning=''):
    """INSERT rows (tuples in the order of columns, [(name, PostgreSQL type)]) followed by the
    conflict clause -> the RETURNING rows when returning names columns, else how many rows were
    inserted. SQLite: executemany (or VALUES lists of 100 rows for RETURNING), in process and
    cheap. PostgreSQL: ONE statement whatever the number of rows, an array per column unnested:
    row-by-row statements cost ~150 us each there, a 1,000-event batch 0.15 s."""
    names = ', '.join(name for name, _kind in columns)
    tail = f' {conflict}' if conflict else ''
    if is_sqlite():
        one = '(' + ', '.join(['?'] * len(columns)) + ')'
        if not returning:
            cursor.executemany(f'INSERT INTO {table} ({names}) VALUES {one}{tail}', rows)  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
            return cursor.rowcount
        found = []
        for start in range(0, len(rows), 100):
            part = rows[start:start + 100]
            cursor.execute(f'INSERT INTO {table} ({names}) VALUES {", ".join([one] * len(part))}'  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
                           f'{tail} RETURNING {returning}', [value for row in part for value in row])
            found.extend(cursor.fetchall())
        return found
    arrays = ', '.join(f'%s::{kind}[]' for _name, kind in columns)
    cursor.execute(f'INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}){tail}'  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
                   + (f' RETURNING {returning}' if returning else ''),
                   [list(column) for column in zip(*rows, strict=False)] if rows else [[] for _ in columns])
    return cursor.fetchall() if returning else cursor.rowcount


def heal_connection():
    """After a failed transaction on this thread's long-lived connection (the writer's): one the
    server dropped (a PostgreSQL restart or failover) is replaced, so the writer recovers by
    itself instead of failing every commit. Never raises; a no-op when the connection is fine."""
    global _heal_logged
    try:
        if not database.is_closed() and database.is_connection_usable():
            return False
        if not database.is_closed():
            database.close()
        database.connect()
        log.warning('database: the connection was lost; a new one is open')
        _heal_logged = 0.0
        return True
    except Exception as error:  # the server is still away: the next failure tries again
        # One line every HEAL_LOG_SECONDS, not one per failed commit of the outage.
        if time.monotonic() - _heal_logged >= HEAL_LOG_SECONDS:
            _heal_logged = time.monotonic()
            log.warning('database: reconnecting failed (%s); trying again with each write',
                        ' '.join(str(error).split())[:300])
        return False


HEAL_LOG_SECONDS = 10.0
_heal_logged = 0.0


def describe(url):
    """The URL for logs and the start-up line: a password in it is replaced by ***."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.rpartition('@')
    user = netloc[0].partition(':')[0]
    return urllib.parse.urlunsplit(parsed._replace(netloc=f'{user}:***@{netloc[2]}'))


def is_retryable(error):
    """True when error (or what it wraps) is a deadlock or serialization failure on PostgreSQL:
    the transaction was rolled back by the server and may be tried again as it is."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        code = getattr(error, 'sqlstate', None) or getattr(error, 'pgcode', None)
        if code in RETRYABLE_SQLSTATES:
            return True
        error = error.__cause__ or error.__context__ or (
            error.args[0] if error.args and isinstance(error.args[0], BaseException) else None)
    return False


def migrate():
    """Apply every migration that this database has not seen; safe to run on every start, by
    several processes at once (the first migrates, the others wait and find nothing to do)."""
    # SQLite: the lock is taken before connecting, because connecting is already a write on a
    # new file (the journal_mode=wal pragma), and two processes switching one new file at once
    # failed with "database is locked" in the second.
    with sqlite_migration_lock():
        with database.connection_context():
            with postgres_migration_lock():
                applied = migrations.run(database.obj, str(MIGRATIONS_DIR))
    return applied


# The advisory lock that serializes migrations on PostgreSQL ('migrate!' as a bigint).
MIGRATE_LOCK_KEY = int.from_bytes(b'migrate!', 'big')


@contextlib.contextmanager
def sqlite_migration_lock(path=None):
    """Processes started together on one SQLite file take turns to connect and migrate:
    flock() on a lock file beside the database. Not on the database file itself: closing any
    descriptor of that file would drop the fcntl locks SQLite holds on it in this process."""
    if path is None:
        path = database.obj.database if is_sqlite() else ''
    path = str(path)
    if not path or path == ':memory:' or path.startswith('file:'):
        yield
        return
    fd = os.open(f'{path}-migrate-lock', os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def postgres_migration_lock():
    """Processes started together on one PostgreSQL database would otherwise both see a
    migration as pending and both apply it: a session advisory lock on this connection."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        database.execute_sql('SELECT pg_advisory_lock(%s)', (MIGRATE_LOCK_KEY,))
        try:
            yield
        finally:
            database.execute_sql('SELECT pg_advisory_unlock(%s)', (MIGRATE_LOCK_KEY,))
    else:
        yield


def schema_version():
    with database.connection_context():
        runner = migrations.Runner(database.obj, str(MIGRATIONS_DIR))
        return sorted(runner.applied())


# How long the TRUNCATE checkpoint may hold new writers back while it waits for old readers.
CHECKPOINT_WAIT_MS = 50


def checkpoint_wal():
    """Keep the WAL file bounded while readers hold snapshots (no-op on PostgreSQL)."""
    if not is_sqlite():
        return None
    with database.connection_context():
        # PASSIVE never waits: it copies what no reader still needs. TRUNCATE then gets only a
        # short wait, because while it waits for a reader's old snapshot (a page being rendered)
        # it blocks new writers: with the 5 s busy timeout ingest stalled 5 s.
        database.execute_sql('PRAGMA wal_checkpoint(PASSIVE)')
        database.execute_sql(f'PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}')
        try:
            return database.execute_sql('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()
        finally:
            database.execute_sql('PRAGMA busy_timeout = 5000')


class ConnectionPerRequest:
    """Falcon middleware: a read connection opened for each request and closed after it."""

    def process_request(self, req, resp):
        database.connect(reuse_if_open=True)

    def process_response(self, req, resp, resource, req_succeeded):
        if not database.is_closed():
            database.close()


def chunks(values, size):
    """values in lists of at most size: SQL statements bound their parameter count (SQLite's
    limit is 32,766 variables; PostgreSQL's 65,535)."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


# What a failed database call means for the operator: the writer's fault state, /healthz and the
# 503 answers name these. Any other error is a bug, answered 500 and logged with its traceback.
DISK_FULL = 'disk_full'
UNAVAILABLE = 'database_unavailable'
# SQLSTATEs: disk_full, and the server going away (admin or crash shutdown, starting up).
DISK_FULL_SQLSTATES = frozenset(('53100',))
GONE_SQLSTATES = frozenset(('57P01', '57P02', '57P03'))


def classify_error(error):
    """DISK_FULL, UNAVAILABLE or None for an exception (or what it wraps): a full disk under
    SQLite or PostgreSQL, or a PostgreSQL server that cannot be reached or is restarting."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        code = getattr(error, 'sqlstate', None) or getattr(error, 'pgcode', None) or ''
        text = str(error).lower()
        if code in DISK_FULL_SQLSTATES or 'database or disk is full' in text or (
                isinstance(error, OSError) and error.errno == 28):
            return DISK_FULL
        if code in GONE_SQLSTATES or code.startswith('08'):
            return UNAVAILABLE
        # A long-lived connection whose reconnection failed (heal_connection) stays closed
        # until the next try: the database is away.
        if isinstance(error, peewee.InterfaceError) and 'connection not opened' in text:
            return UNAVAILABLE
        # psycopg's OperationalError without a SQLSTATE: the connection failed or was lost.
        if type(error).__module__.startswith('psycopg') and not code and type(error).__name__ in (
                'OperationalError', 'InterfaceError'):
            return UNAVAILABLE
        # Peewee keeps the driver's exception as .orig.
        error = getattr(error, 'orig', None) or error.__cause__ or error.__context__ or (
            error.args[0] if error.args and isinstance(error.args[0], BaseException) else None)
    return None


def probe_write():
    """A write that changes nothing, committed (on this thread's connection): it fails while the
    disk is full or the server is away, and succeeds once the database can take writes again.
    SQLite: the header's user_version set to its own value (a page written to the WAL)."""
    with database.atomic():
        if is_sqlite():
            version, = database.execute_sql('PRAGMA user_version').fetchone()
            database.execute_sql(f'PRAGMA user_version = {int(version)}')
        else:
            database.execute_sql('SELECT txid_current()')


class FaultState:
    """The last write failure of a known kind (DISK_FULL, UNAVAILABLE) and since when, for
    /healthz, `proliferate check`, metrics and the admin banner. Thread-safe; cleared by the next
    successful write."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._fault = None  # (kind, message, since, last)
        self.faults = 0  # how many faults began (a counter for metrics)

    def failed(self, kind, error):
        """-> True when this failure begins a fault (the caller logs it once)."""
        now = self.clock()
        with self._lock:
            began = self._fault is None or self._fault[0] != kind
            since = now if began else self._fault[2]
            self._fault = (kind, str(error).strip().splitlines()[0][:300] if str(error) else kind,
                           since, now)
            self.faults += began
        return began

    def cleared(self):
        """-> seconds the fault lasted, or None when there was none."""
        now = self.clock()
        with self._lock:
            fault, self._fault = self._fault, None
        return None if fault is None else now - fault[2]

    def current(self):
        """None, or {'kind', 'error', 'since' (Unix time), 'seconds'} of the fault under way."""
        with self._lock:
            fault = self._fault
        if fault is None:
            return None
        kind, message, since, _last = fault
        return {'kind': kind, 'error': message, 'since': since,
                'seconds': round(max(0.0, self.clock() - since), 3)}


# The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b'SQLite format 3\x00'
RESTORE_HINT = ('restore a backup (`proliferate restore PATH`) or point PROLIFERATE_DATABASE_URL '
                'at the Proliferate database')


# The tables of a SQLite database, its own (sqlite_sequence...) left out.
SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"


def applied_migrations(execute, tables):
    """The migration names schema_migration records, or None when tables (the database's) has no
    schema_migration. execute: a sqlite3 connection's execute or a peewee database's
    execute_sql."""
    if 'schema_migration' not in tables:
        return None
    return [row[0] for row in execute('SELECT name FROM schema_migration')]


def known_migrations():
    return {path.stem for path in MIGRATIONS_DIR.glob('[0-9]*.py')}


def judge_schema(tables, applied):
    """Pure: the tables of a database and its applied migrations -> (ok, message)."""
    if not tables:
        return True, 'empty: the schema will be created'
    if 'schema_migration' not in tables:
        shown = ', '.join(sorted(tables)[:5]) + (', ...' if len(tables) > 5 else '')
        return False, (f'it holds another application\'s tables ({shown}), not Proliferate\'s; '
                       f'{RESTORE_HINT}')
    unknown = sorted(set(applied) - known_migrations())
    if unknown:
        return False, (f'its schema is newer than this release (migrations {", ".join(unknown)} '
                       'are unknown here): upgrade Proliferate to the release that wrote it, or '
                       'restore a backup taken with this release')
    pending = len(known_migrations() - set(applied))
    return True, f'Proliferate schema, {len(applied)} migrations applied, {pending} to apply'


def inspect_database(url):
    """-> (ok, one line): whether `serve` and `migrate` may open the database at url, and if not
    what is wrong and what to do. Reads only: a file that is refused is left exactly as it was.
    SQLite: the file's header, its structure (PRAGMA quick_check: every page is read, about a
    second per GB) and its tables; PostgreSQL: that it answers and its tables."""
    if url.startswith('sqlite'):
        return _inspect_sqlite(url)
    if is_postgresql(url):
        return _inspect_postgresql(url)
    return False, f'{describe(url)}: only sqlite:// and postgresql:// databases are supported'


def _inspect_sqlite(url):
    path = Path(db_url.parse(url)['database'])
    where = f'the database {path}'
    try:
        with open(path, 'rb') as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        if not path.parent.is_dir():
            return False, f'{where} cannot be created: there is no directory {path.parent}'
        return True, f'{where} does not exist yet: it will be created'
    except OSError as error:
        return False, f'{where} cannot be read ({error.strerror}): check its permissions'
    if not header:
        return True, f'{where} is empty: the schema will be created'
    if header != SQLITE_HEADER:
        return False, f'{where} is not a SQLite database (it starts with {header[:8]!r}); {RESTORE_HINT}'
    # Under the migration lock: a server migrating this file at this moment is waited for.
    with sqlite_migration_lock(path):
        try:
            connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True, timeout=30)
            try:
                problems = [row[0] for row in connection.execute('PRAGMA quick_check(5)')]
                tables = {row[0] for row in connection.execute(SQLITE_TABLES)}
                applied = set()
                if problems == ['ok']:
                    applied = set(applied_migrations(connection.execute, tables) or ())
            finally:
                connection.close()
        except sqlite3.DatabaseError as error:
            return False, f'{where} is damaged ({error}); {RESTORE_HINT}'
    if problems != ['ok']:
        # One line: quick_check's report spans lines and opens with a banner.
        detail = '; '.join(' '.join(problem.replace('*** in database main ***', '').split())
                           for problem in problems)
        return False, f'{where} is damaged ({detail[:300]}); {RESTORE_HINT}'
    ok, message = judge_schema(tables, applied)
    return ok, f'{where}: {message}' if ok else f'{where} is refused: {message}'


def _inspect_postgresql(url):
    where = f'the database {describe(url)}'
    session = open_session(url)
    try:
        session.connect()
        tables = set(session.get_tables())
        applied = set(applied_migrations(session.execute_sql, tables) or ())
    except peewee.DatabaseError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return False, f'{where} cannot be reached ({first}): start PostgreSQL or fix the URL'
    finally:
        if not session.is_closed():
            session.close()
    ok, message = judge_schema(tables, applied)
    return ok, f'{where}: {message}' if ok else f'{where} is refused: {message}'
