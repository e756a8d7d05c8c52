"""Backups: `proliferate backup PATH` copies the live database while the server ingests,
verified with integrity_check; `proliferate restore PATH` refuses while a server holds the
database and puts the copy back once it is stopped; the daily job keeps the newest N.
"""

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from factories import message_event

from proliferate import backup
from proliferate import db
from proliferate import jobs
from proliferate.config import Config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config(tmp_path):
    """Backups copy a SQLite file (PostgreSQL has pg_dump): SQLite even when the suite runs on
    PostgreSQL (PROLIFERATE_TEST_DATABASE_URL)."""
    return Config(database_url=f'sqlite:///{tmp_path}/p.db')


def cli(config, *args):
    env = {**os.environ, 'PROLIFERATE_DATABASE_URL': config.database_url}
    return subprocess.run([sys.executable, '-m', 'proliferate', *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def event(key):
    """A message event padded to a few kilobytes, so the backups copy real pages."""
    return message_event(key, extra={'pad': uuid.uuid4().hex * 50})


def stored_ids(path):
    connection = sqlite3.connect(path)
    try:
        return {row[0] for row in connection.execute('SELECT event_id FROM event')}
    finally:
        connection.close()


@pytest.mark.slow
def test_backup_while_ingesting_then_restore_once_stopped(config, services, http, project, tmp_path):
    before = [event(project.key) for _ in range(200)]
    status, _headers, _body = http.post('/api/v1/errors/batch', before[:100])
    assert status == 202
    assert http.post('/api/v1/errors/batch', before[100:])[0] == 202

    # Ingest goes on in a thread while the CLI (another process) makes the copy.
    stop = threading.Event()
    during = []
    failures = []

    def ingest():
        while not stop.is_set():
            body = event(project.key)
            status, _headers, answer = http.post('/api/v1/errors', body)
            (during if status == 202 else failures).append((body['event_id'], status, answer))

    thread = threading.Thread(target=ingest)
    thread.start()
    try:
        copy = tmp_path / 'copy.db'
        done = cli(config, 'backup', str(copy))
    finally:
        stop.set()
        thread.join(30)
    assert done.returncode == 0, done.stderr
    assert 'integrity_check ok' in done.stdout
    assert failures == []
    assert len(during) > 0
    assert backup.integrity(copy) == 'ok'
    copied = stored_ids(copy)
    # A consistent snapshot: everything acknowledged before it started, nothing half-written.
    assert {e['event_id'] for e in before} <= copied
    assert copied <= {e['event_id'] for e in before} | {eid for eid, _s, _a in during}
    # The copy is one self-contained file (rollback journal), not a WAL database.
    connection = sqlite3.connect(copy)
    assert connection.execute('PRAGMA journal_mode').fetchone()[0] == 'delete'
    connection.close()

    # While the server holds the database, restore refuses and changes nothing.
    live_path = config.database_url[len('sqlite:///'):]
    refused = cli(config, 'restore', str(copy))
    assert refused.returncode == 1
    assert 'in use' in refused.stderr and 'stop the server' in refused.stderr
    assert http.post('/api/v1/errors', event(project.key))[0] == 202

    # Stop the writer (the server's last connection), then restore.
    services.writer.stop()
    if not db.database.is_closed():
        db.database.close()
    after_backup = stored_ids(live_path) - copied
    assert after_backup
    restored = cli(config, 'restore', str(copy))
    assert restored.returncode == 0, restored.stderr
    assert stored_ids(live_path) == copied
    saved = [p for p in Path(live_path).parent.iterdir() if '.before-restore-' in p.name]
    assert len(saved) == 1 and after_backup <= stored_ids(saved[0])
    # The restored database migrates and opens like any other.
    assert cli(config, 'migrate').returncode == 0
    assert backup.integrity(live_path) == 'ok'


def test_backup_into_a_directory_and_the_daily_job_keeps_the_newest(services, project, tmp_path):
    directory = tmp_path / 'backups'
    directory.mkdir()
    for day in ('20250101', '20250102', '20250103'):
        (directory / f'proliferate-{day}T031700Z.db').write_bytes(b'old')
    (directory / 'notes.txt').write_text('not a backup')
    config = Config(database_url=services_url(services, tmp_path), backup_dir=str(directory),
                    backup_keep=2)
    figures = jobs.backup_database(config)
    assert figures['integrity'] == 'ok'
    names = sorted(p.name for p in directory.iterdir())
    assert names == ['notes.txt', 'proliferate-20250103T031700Z.db', Path(figures['path']).name]
    assert len(figures['pruned']) == 2
    assert backup.integrity(figures['path']) == 'ok'
    assert jobs.backup_database(Config(database_url=config.database_url)) is None


def services_url(_services, _tmp_path):
    return f'sqlite:///{db.database.obj.database}'


def test_backup_and_restore_refuse_what_they_cannot_do(config, services, tmp_path):
    live = config.database_url
    with pytest.raises(backup.BackupError, match='pg_dump'):
        backup.backup('postgresql://localhost/proliferate', tmp_path / 'x.db')
    with pytest.raises(backup.BackupError, match='overwrite the database'):
        backup.backup(live, live[len('sqlite:///'):])
    with pytest.raises(backup.BackupError, match='no directory'):
        backup.backup(live, tmp_path / 'missing' / 'x.db')
    garbage = tmp_path / 'garbage.db'
    garbage.write_bytes(b'SQLite format 3\x00' + os.urandom(5000))
    with pytest.raises(backup.BackupError):
        backup.restore(f'sqlite:///{tmp_path}/new.db', garbage)
    other = tmp_path / 'other.db'
    sqlite3.connect(other).execute('CREATE TABLE t (x)').connection.close()
    with pytest.raises(backup.BackupError, match='not a Proliferate database'):
        backup.restore(f'sqlite:///{tmp_path}/new.db', other)
    assert not (tmp_path / 'new.db').exists()


def test_the_checkpoint_job_keeps_the_wal_bounded_around_readers(config, services, http, project):
    path = config.database_url[len('sqlite:///'):]
    wal = Path(path + '-wal')

    def ingest(batches):
        for _ in range(batches):
            status, _headers, _body = http.post('/api/v1/errors/batch',
                                                [event(project.key) for _ in range(100)])
            assert status == 202

    ingest(3)
    assert wal.stat().st_size > 0
    busy, _log, _done = jobs.checkpoint_wal()
    assert busy == 0 and wal.stat().st_size == 0
    # A page reader holding its snapshot keeps the WAL from being reset, and the job cannot
    # truncate it while the snapshot lives...
    reader = sqlite3.connect(path)
    reader.execute('BEGIN')
    reader.execute('SELECT COUNT(*) FROM event').fetchone()
    ingest(3)
    assert wal.stat().st_size > 0
    # Busy: it could not finish, and it gave up at once: while it waits it holds new writers
    # back, so a long wait would stall ingest (it did, 5 s, with the busy timeout).
    started = time.monotonic()
    assert jobs.checkpoint_wal()[0] == 1
    assert time.monotonic() - started < 1.0
    writing = time.monotonic()
    ingest(1)
    assert time.monotonic() - writing < 2.0
    # ...and the first run after the reader is done truncates it.
    reader.execute('COMMIT')
    reader.close()
    busy, _log, _done = jobs.checkpoint_wal()
    assert busy == 0 and wal.stat().st_size == 0
