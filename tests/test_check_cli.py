"""`proliferate check` end to end: the command in a subprocess against a live server, a real
SMTP server with a login (aiosmtpd) and a backup directory, clean and broken; and the systemd
unit in contrib/ checked by `systemd-analyze verify`."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from proliferate import check
from proliferate import db

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / 'contrib' / 'proliferate.service'

pytestmark = pytest.mark.slow


class Accept:
    async def handle_DATA(self, server, session, envelope):
        return '250 accepted'


def authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login, auth_data.password) == (b'alerts', b'pa55'),
                      handled=False)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp():
    controller = Controller(Accept(), hostname='127.0.0.1', port=free_port(),
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    yield controller.port
    controller.stop()


def run_check(tmp_path, **settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith('PROLIFERATE_')}
    env.update({'PYTHONPATH': str(ROOT)})
    env.update({f'PROLIFERATE_{name.upper()}': str(value) for name, value in settings.items()})
    done = subprocess.run([sys.executable, '-m', 'proliferate', 'check'], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    lines = {line.split()[1]: line for line in done.stdout.splitlines()[:-1]}
    return done.returncode, lines, done.stdout + done.stderr


def test_clean(tmp_path, config, services, live_server, smtp):
    backups = tmp_path / 'backups'
    code, lines, output = run_check(
        tmp_path, database_url=config.database_url, base_url=live_server, smtp_host='127.0.0.1',
        smtp_port=smtp, smtp_username='alerts', smtp_password='pa55', backup_dir=backups)
    assert code == 0, output
    assert lines['database'].startswith('ok') and 'schema up to date' in lines['database'], output
    assert lines['base_url'].startswith('ok') and '/healthz answers' in lines['base_url']
    assert lines['smtp'].startswith('ok') and 'logged in as alerts' in lines['smtp']
    assert lines['disk'].split()[0] in ('ok', 'warn')  # this machine's disk, whatever it is
    if config.database_url.startswith('sqlite'):
        assert lines['backups'].startswith('ok') and 'writable' in lines['backups']
    assert '0 failed' in output
    assert not backups.exists()  # a check changes nothing


def test_broken(tmp_path, config, services, smtp):
    # A database migrated by a newer release, a base URL nobody answers, a refused SMTP login,
    # and a backup directory that is a file.
    with db.database.connection_context():
        # An explicit id: the migrator writes its rows with ids, so PostgreSQL's sequence
        # behind the column may still stand at 1.
        db.database.execute_sql("INSERT INTO schema_migration (id, name, applied) "
                                "SELECT COALESCE(MAX(id), 0) + 1, '9999_from_the_future', "
                                "CURRENT_TIMESTAMP FROM schema_migration")
    not_a_dir = tmp_path / 'backups'
    not_a_dir.write_text('a file')
    code, lines, output = run_check(
        tmp_path, database_url=config.database_url, base_url=f'http://127.0.0.1:{free_port()}',
        smtp_host='127.0.0.1', smtp_port=smtp, smtp_username='alerts', smtp_password='wrong',
        backup_dir=not_a_dir)
    assert code == 1, output
    assert lines['database'].startswith('FAIL') and '9999_from_the_future' in lines['database']
    assert lines['base_url'].startswith('FAIL') and 'refused' in lines['base_url'].lower()
    assert lines['smtp'].startswith('FAIL') and '535' in lines['smtp']
    if config.database_url.startswith('sqlite'):
        assert lines['backups'].startswith('FAIL') and 'not a directory' in lines['backups']


def test_foreign_and_missing_databases(tmp_path):
    foreign = tmp_path / 'other.db'
    import sqlite3
    with sqlite3.connect(foreign) as connection:
        connection.execute('CREATE TABLE customers (id INTEGER PRIMARY KEY)')
    code, lines, output = run_check(tmp_path, database_url=f'sqlite:///{foreign}')
    assert code == 1 and "another application's tables" in lines['database'], output
    (tmp_path / 'junk.db').write_bytes(b'this is no database file' * 100)
    code, lines, output = run_check(tmp_path, database_url='sqlite:///junk.db')
    assert code == 1 and lines['database'].startswith('FAIL'), output
    code, lines, output = run_check(tmp_path, database_url='sqlite:///new.db')
    assert code == 0 and 'does not exist yet' in lines['database'], output
    assert not (tmp_path / 'new.db').exists()
    # --strict turns the warnings (no base URL, no SMTP, no backups) into a failure.
    done = subprocess.run([sys.executable, '-m', 'proliferate', 'check', '--strict',
                           '--database-url', 'sqlite:///new.db'], cwd=tmp_path, timeout=60,
                          env={**os.environ, 'PYTHONPATH': str(ROOT)}, capture_output=True)
    assert done.returncode == 1


def test_disk_and_backup_decisions():
    assert check.disk_finding('/x', 100, 9).level == check.WARN
    assert check.disk_finding('/x', 100, 10).level == check.OK
    import datetime
    now = datetime.datetime(2025, 1, 15, 12)
    assert check.backup_overdue(None, now - datetime.timedelta(days=1), now) is False
    assert check.backup_overdue(None, now - datetime.timedelta(days=3), now) is True
    assert check.backup_overdue(now - datetime.timedelta(hours=47), None, now) is False


def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze verify reads the unit as systemd would (unknown keys, bad values, a
    missing executable); it needs no running systemd. The unit's ExecStart names the installed
    command, so the check runs on a copy pointing at this interpreter's."""
    analyze = shutil.which('systemd-analyze')
    if analyze is None:
        if os.environ.get('CI'):
            pytest.fail('systemd-analyze is missing: .ci/run installs Debian\'s systemd')
        pytest.skip('systemd-analyze is not installed (apt-get install systemd)')
    text = UNIT.read_text()
    assert 'KillMode=mixed' in text and 'PrivateTmp=true' in text and 'User=proliferate' in text
    copy = tmp_path / 'proliferate.service'
    copy.write_text(text.replace('/usr/local/bin/proliferate', f'{sys.executable} -m proliferate'))
    done = subprocess.run([analyze, 'verify', str(copy)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if 'proliferate.service' in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
