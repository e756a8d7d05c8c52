"""The database handle, its connection settings and migrations.

The only module that knows which backend it runs on: SQLite pragmas and SQLite-only SQL live here.
"""

import datetime
import logging
from pathlib import Path

import peewee
from playhouse import db_url
from playhouse import migrations

log = logging.getLogger(__name__)

database = peewee.DatabaseProxy()

MIGRATIONS_DIR = Path(__file__).resolve().parent / 'migrations'

# WAL lets the issue browser read while the writer writes. synchronous comes from the config:
# FULL by default, because 202 promises "committed" and group commit makes the fsync cheap.
PRAGMAS = (
    ('journal_mode', 'wal'),
    ('foreign_keys', 1),
    ('cache_size', -64000),
)


def utcnow():
    """Naive UTC: the one kind of datetime the database holds."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def is_sqlite():
    return isinstance(database.obj, peewee.SqliteDatabase)


def open_database(url, *, synchronous='FULL'):
    """Bind the proxy to the database at url and return it (not connected)."""
    if url.startswith('sqlite'):
        db = db_url.connect(
            url,
            pragmas=PRAGMAS + (('synchronous', synchronous.upper()),),
            timeout=5,
            # Writes are BEGIN IMMEDIATE so a transaction never upgrades its lock half-way.
            lock_type='IMMEDIATE',
            autoconnect=False,
        )
    else:
        db = db_url.connect(url, autoconnect=False)
    database.initialize(db)
    return db


def migrate():
    """Apply every migration that this database has not seen; safe to run on every start."""
    with database.connection_context():
        applied = migrations.run(database.obj, str(MIGRATIONS_DIR))
    return applied


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
        # it blocks new writers: with the 5 s busy timeout ingest stalled 5 s (issue 7).
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
