"""A database file that is not ours, too new or damaged: `serve` refuses with one line saying
what is wrong and what to do, exits non-zero (3) and leaves the file byte for byte as it was.
db.inspect_database() is the check (`proliferate check` can call it too)."""

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from proliferate import db

ROOT = Path(__file__).resolve().parent.parent


def migrated(path):
    db.open_database(f'sqlite:///{path}')
    db.migrate()
    return path


def text_file(path):
    path.write_text('name,count\nalpha,1\n')


def foreign(path):
    connection = sqlite3.connect(path)
    connection.executescript('CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);'
                             "INSERT INTO customers (name) VALUES ('Ada'), ('Grace');")
    connection.close()


def newer(path):
    migrated(path)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("INSERT INTO schema_migration (name, applied) "
                           "VALUES ('9999_from_the_future', '2030-01-01 00:00:00')")
    connection.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    connection.close()


def damaged(path):
    """A few bytes overwritten at the start of a page in the middle of the file (a b-tree
    page's header)."""
    migrated(path)
    connection = sqlite3.connect(path)
    connection.execute('PRAGMA journal_mode=DELETE')
    page_size = connection.execute('PRAGMA page_size').fetchone()[0]
    pages = connection.execute('PRAGMA page_count').fetchone()[0]
    connection.close()
    with open(path, 'r+b') as handle:
        handle.seek(page_size * (pages // 2))
        handle.write(b'\xde\xad\xbe\xef\x00\x17')


CASES = {
    'text': (text_file, 'is not a SQLite database'),
    'foreign': (foreign, "another application's tables (customers)"),
    'newer': (newer, 'newer than this release (migrations 9999_from_the_future'),
    'damaged': (damaged, 'is damaged'),
}


def file_hash(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize('case', sorted(CASES))
def test_serve_refuses_a_database_it_must_not_open_and_changes_nothing(case, tmp_path):
    make, expected = CASES[case]
    path = tmp_path / 'p.db'
    make(path)
    if db.database.obj is not None and not db.database.is_closed():
        db.database.close()
    assert not Path(f'{path}-wal').exists() or Path(f'{path}-wal').stat().st_size == 0
    before = file_hash(path)
    ok, message = db.inspect_database(f'sqlite:///{path}')
    assert not ok and expected in message, message
    env = {**os.environ, 'PROLIFERATE_DATABASE_URL': f'sqlite:///{path}'}
    env.pop('PROLIFERATE_TEST_DATABASE_URL', None)
    done = subprocess.run([sys.executable, '-m', 'proliferate', 'serve', '--port', '0'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    print(f'{case}: exit {done.returncode}: {lines}')
    assert done.returncode == 3, done.stderr[-2000:]
    assert lines == [f'proliferate: not starting: {message}'], done.stderr[-2000:]
    assert 'restore a backup' in message or 'upgrade Proliferate' in message
    assert 'Traceback' not in done.stderr and 'listening' not in done.stdout
    assert file_hash(path) == before


def test_inspect_accepts_ours_a_new_file_and_an_empty_one(tmp_path):
    assert db.inspect_database(f'sqlite:///{tmp_path}/absent.db') == (
        True, f'the database {tmp_path}/absent.db does not exist yet: it will be created')
    assert db.inspect_database(f'sqlite:///{tmp_path}/nowhere/p.db') == (
        False, f'the database {tmp_path}/nowhere/p.db cannot be created: there is no directory '
               f'{tmp_path}/nowhere')
    (tmp_path / 'empty.db').write_bytes(b'')
    assert db.inspect_database(f'sqlite:///{tmp_path}/empty.db')[0] is True
    path = migrated(tmp_path / 'ours.db')
    db.database.close() if not db.database.is_closed() else None
    ok, message = db.inspect_database(f'sqlite:///{path}')
    assert ok and 'Proliferate schema' in message and '0 to apply' in message, message


def test_judge_schema_is_pure():
    known = db.known_migrations()
    assert db.judge_schema(set(), set())[0] is True
    assert db.judge_schema({'schema_migration', 'event'}, known) == (
        True, f'Proliferate schema, {len(known)} migrations applied, 0 to apply')
    ok, message = db.judge_schema({'users', 'orders'}, set())
    assert not ok and '(orders, users)' in message
    ok, message = db.judge_schema({'schema_migration'}, known | {'0999_later'})
    assert not ok and '0999_later' in message and 'upgrade Proliferate' in message
