"""Backups of the SQLite database: a consistent online copy (SQLite's backup API) while the
server runs, verified with PRAGMA integrity_check; restore; the scheduled daily backup.

SQLite-only by nature (PostgreSQL has pg_dump); it uses its own sqlite3 connections so that it
never holds the server's write lock.
"""

import os
import re
import sqlite3
import time
from pathlib import Path

from proliferate import db
from proliferate.times import utcnow

NAME_FORMAT = 'proliferate-%Y%m%dT%H%M%SZ.db'
NAME_PATTERN = re.compile(r'^proliferate-\d{8}T\d{6}Z\.db$')
# How long restore waits for a lock before it decides that a server holds the database.
LOCK_PROBE_SECONDS = 1.0


class BackupError(Exception):
    """A message for the user: the backup or restore did not happen."""


def sqlite_path(database_url):
    """The file of a sqlite:/// URL (three slashes: relative, four: absolute)."""
    if not database_url.startswith('sqlite:///'):
        raise BackupError('backup and restore work on SQLite databases; for PostgreSQL use '
                          'pg_dump and pg_restore')
    return Path(database_url[len('sqlite:///'):])


def integrity(path):
    """PRAGMA integrity_check of the file at path: 'ok' or the first problems found."""
    try:
        connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
        try:
            rows = connection.execute('PRAGMA integrity_check(20)').fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:  # not a database at all, or unreadable
        return str(error)
    return '; '.join(row[0] for row in rows)


def fsync_directory(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_database(source_path, target_path):
    """A consistent copy of source_path at target_path (written beside it, then renamed) in
    rollback-journal mode, so the copy is one self-contained file. -> pages copied."""
    target_path = Path(target_path)
    partial = target_path.with_name(target_path.name + '.partial')
    if partial.exists():
        partial.unlink()
    # A plain connection, not mode=ro: a read-only one cannot open a WAL database whose -shm
    # file is missing (the server is stopped). It only reads.
    try:
        source = sqlite3.connect(source_path, timeout=30)
        try:
            target = sqlite3.connect(partial)
            try:
                # One step (pages=-1): the copy is of one read snapshot. In WAL mode a reader
                # never blocks the writer, so ingest goes on while the copy is made.
                source.backup(target, pages=-1)
                target.execute('PRAGMA journal_mode=DELETE')
                pages = target.execute('PRAGMA page_count').fetchone()[0]
            finally:
                target.close()
        finally:
            source.close()
        with open(partial, 'rb') as handle:
            os.fsync(handle.fileno())
    except (sqlite3.Error, OSError) as error:
        # A full backup directory (or any failed write there) leaves no partial copy behind;
        # the database was only read.
        partial.unlink(missing_ok=True)
        if db.classify_error(error) == db.DISK_FULL:
            raise BackupError(f'no space left in {target_path.parent} for the backup ({error}); '
                              'the database is untouched: free space there or set another '
                              'backup directory') from error
        raise BackupError(f'the backup to {target_path} failed ({error}); the database is '
                          'untouched') from error
    result = integrity(partial)
    if result != 'ok':
        partial.unlink()
        raise BackupError(f'the copy failed its integrity check: {result}')
    os.replace(partial, target_path)
    fsync_directory(target_path.parent)
    return pages


def backup(database_url, target, *, clock=time.monotonic):
    """`proliferate backup PATH`: a verified copy of the live database -> figures.

    PATH may be a directory: the copy gets a dated name inside it.
    """
    source_path = sqlite_path(database_url)
    if not source_path.exists():
        raise BackupError(f'no database at {source_path}')
    target = Path(target)
    if target.is_dir():
        target = target / utcnow().strftime(NAME_FORMAT)
    if target.resolve() == source_path.resolve():
        raise BackupError('the backup would overwrite the database itself')
    if not target.parent.is_dir():
        raise BackupError(f'no directory {target.parent}')
    started = clock()
    pages = copy_database(source_path, target)
    return {'path': str(target), 'bytes': target.stat().st_size, 'pages': pages,
            'integrity': 'ok', 'seconds': round(clock() - started, 3)}



def hold_exclusive(path):
    """A connection holding an exclusive lock on the database at path, or BackupError when
    another process (a running server) has it open: its writer keeps a connection open for its
    whole life, and in WAL mode an open connection keeps others from locking the file."""
    connection = sqlite3.connect(path, timeout=LOCK_PROBE_SECONDS)
    try:
        connection.execute('PRAGMA locking_mode=EXCLUSIVE')
        connection.execute('BEGIN EXCLUSIVE')
        connection.execute('COMMIT')
    except sqlite3.OperationalError as error:
        connection.close()
        raise BackupError(f'the database {path} is in use ({error}): stop the server '
                          '(`proliferate serve`) first, then restore') from error
    return connection


def restore(database_url, source, *, keep_current=True):
    """`proliferate restore PATH`: put a backup back as the database -> figures.

    Refuses while a server holds the database: the server's caches (keys, rate limits) and
    in-flight events would no longer match the file, and events it acknowledged after the backup
    would vanish without a word. Stop the server, restore, start it again. The database being
    replaced is first saved beside it as <name>.before-restore-<time>.
    """
    source = Path(source)
    if not source.is_file():
        raise BackupError(f'no backup file {source}')
    result = integrity(source)
    if result != 'ok':
        raise BackupError(f'{source} failed its integrity check: {result}')
    check = sqlite3.connect(f'file:{source}?mode=ro', uri=True)
    try:
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        check.close()
    if not {'schema_migration', 'event', 'project'} <= tables:
        raise BackupError(f'{source} is not a Proliferate database')
    target_path = sqlite_path(database_url)
    if target_path.exists() and source.resolve() == target_path.resolve():
        raise BackupError('the backup is the database itself')
    saved = None
    target = hold_exclusive(target_path)
    try:
        if keep_current and target_path.stat().st_size > 0 and target.execute(
                "SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            saved = target_path.with_name(
                f'{target_path.name}.before-restore-{utcnow():%Y%m%dT%H%M%SZ}')
            copy = sqlite3.connect(saved)
            try:
                target.backup(copy)
            finally:
                copy.close()
        reader = sqlite3.connect(f'file:{source}?mode=ro', uri=True)
        try:
            # Through SQLite, not a file copy: a stale -wal file beside the database can never
            # be replayed over the restored pages.
            reader.backup(target, pages=-1)
        finally:
            reader.close()
        result = target.execute('PRAGMA integrity_check(20)').fetchall()
    finally:
        target.close()
    result = '; '.join(row[0] for row in result)
    if result != 'ok':
        raise BackupError(f'the restored database failed its integrity check: {result}')
    return {'path': str(target_path), 'from': str(source), 'saved_previous': saved and str(saved),
            'bytes': target_path.stat().st_size, 'integrity': 'ok'}


def prune(directory, keep):
    """Delete all but the newest `keep` dated backups in directory -> the deleted paths."""
    names = sorted(p.name for p in Path(directory).iterdir() if NAME_PATTERN.match(p.name))
    doomed = names[:-keep] if keep > 0 else names
    for name in doomed:
        (Path(directory) / name).unlink()
    return [str(Path(directory) / name) for name in doomed]


def scheduled_backup(database_url, directory, keep):
    """The daily job: a dated, verified copy in directory, then only the newest `keep` kept."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = backup(database_url, directory)
    figures['pruned'] = prune(directory, keep)
    return figures
