"""The command line as a user runs it: real subprocesses on a temporary database."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from proliferate import db

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_unused_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path):
    environ = dict(os.environ)
    environ['PROLIFERATE_DATABASE_URL'] = f'sqlite:///{tmp_path}/cli.db'
    environ.pop('PROLIFERATE_TEST_DATABASE_URL', None)
    return environ


def run(env, *args, check=True):
    result = subprocess.run([sys.executable, '-m', 'proliferate', *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def last_line(result):
    return result.stdout.strip().splitlines()[-1]


def post(url, body, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST',
                                     headers={'Content-Type': 'application/json', **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url, token):
    request = urllib.request.Request(url, headers={'Authorization': f'Bearer {token}'})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_admin_commands_then_serve_ingest_and_sigterm(env):
    run(env, 'migrate')  # the admin commands never create the database
    key = last_line(run(env, 'project', 'create', 'Web Shop', '--org', 'acme'))
    assert key.startswith('pk_') and len(key) == 35
    run(env, 'user', 'create', 'ops@example.com', '--admin', '--password', 'pw-long-enough', '--org', 'acme')
    token = last_line(run(env, 'token', 'create', 'ops@example.com'))
    assert token.startswith('prt_')
    second = last_line(run(env, 'key', 'create', 'web-shop'))
    assert second.startswith('pk_') and second != key
    assert 'revoked' not in run(env, 'key', 'list', 'web-shop').stdout
    run(env, 'key', 'revoke', second)
    assert run(env, 'key', 'revoke', second, check=False).returncode == 1
    failed = run(env, 'token', 'create', 'nobody@example.com', check=False)
    assert failed.returncode == 1 and 'no user' in failed.stderr

    port = get_unused_port()
    server = subprocess.Popen([sys.executable, '-m', 'proliferate', 'serve', '--port', str(port)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(base + '/healthz', timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline, 'server did not answer'
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.1)
        event = {'api_key': key, 'event_id': 'evt_cli', 'timestamp': '2025-01-15T10:30:00Z',
                 'type': 'exception', 'exception': {'type': 'TypeError', 'message': 'x'}}
        assert post(base + '/api/v1/errors', event) == (202, {'event_id': 'evt_cli'})
        assert post(base + '/api/v1/errors', {**event, 'api_key': second})[0] == 401
        [project] = get(base + '/api/v1/projects', token)['projects']
        assert (project['name'], project['slug'], project['org']) == ('Web Shop', 'web-shop', 'acme')
        issues = get(f'{base}/api/v1/projects/{project["id"]}/issues', token)['issues']
        assert [i['title'] for i in issues] == ['TypeError: x']
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
    assert 'Proliferate stopped' in output


def test_settings_are_validated(env):
    env['PROLIFERATE_DATABASE_URL'] = 'sqlite://'
    result = run(env, 'migrate', check=False)
    assert result.returncode == 2 and 'in-memory' in result.stderr
    env['PROLIFERATE_DATABASE_URL'] = 'sqlite:///ok.db'
    env['PROLIFERATE_PORT'] = 'eighty'
    result = run(env, 'migrate', check=False)
    assert result.returncode == 2 and 'PROLIFERATE_PORT' in result.stderr


def test_migrate_records_the_schema_and_upgrades_an_older_file(env, tmp_path):
    """A database created by an older server (only the first migration applied) is upgraded
    in place by a newer one, keeping its data."""
    from playhouse import migrations

    path = tmp_path / 'old.db'
    db.open_database(f'sqlite:///{path}')
    with db.database.connection_context():
        runner = migrations.Runner(db.database.obj, str(db.MIGRATIONS_DIR))
        runner.up(target='0001_initial')
        db.database.execute_sql("INSERT INTO organization (name, slug, created_at) "
                                "VALUES ('Old', 'old', '2024-01-01 00:00:00')")
    db.database.close()
    env['PROLIFERATE_DATABASE_URL'] = f'sqlite:///{path}'
    result = run(env, 'migrate')
    names = sorted(os.path.basename(p)[:-3] for p in os.listdir(db.MIGRATIONS_DIR)
                   if p[:4].isdigit() and p.endswith('.py'))
    assert result.stdout.strip() == 'Schema up to date: ' + ', '.join(names)
    key = last_line(run(env, 'project', 'create', 'after-upgrade', '--org', 'old'))
    assert key.startswith('pk_')


def test_admin_commands_refuse_to_create_a_database(tmp_path):
    """Run in another directory than the server, `project create` would make an empty
    proliferate.db and print a key the server refuses: it says where it looked instead."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith('PROLIFERATE_')}
    environ['PYTHONPATH'] = ROOT
    command = [sys.executable, '-m', 'proliferate']
    refused = subprocess.run(command + ['project', 'create', 'web'], env=environ, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert refused.stdout == ''
    assert refused.stderr.strip() == (
        f'proliferate: no database at {tmp_path.resolve()}/proliferate.db: run this in the directory '
        'where `proliferate serve` runs, or set PROLIFERATE_DATABASE_URL')
    assert not (tmp_path / 'proliferate.db').exists()
    assert subprocess.run(command + ['migrate'], env=environ, cwd=tmp_path, capture_output=True,
                          timeout=60).returncode == 0
    created = subprocess.run(command + ['project', 'create', 'web'], env=environ, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert last_line(created).startswith('pk_')


@pytest.mark.slow
def test_a_forgotten_password_is_reset_from_the_command_line(env):
    run(env, 'migrate')
    run(env, 'user', 'create', 'ops@example.com', '--password', 'old-password-1')
    result = subprocess.run([sys.executable, '-m', 'proliferate', 'user', 'password', 'ops@example.com'],
                            env=env, cwd=ROOT, input='new-password-2\n', capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    from proliferate import auth
    from proliferate.models import User
    db.open_database(env['PROLIFERATE_DATABASE_URL'])
    with db.database.connection_context():
        stored = User.get(User.email == 'ops@example.com').password_hash
    db.database.close()
    assert auth.verify_password(stored, 'new-password-2')
    assert not auth.verify_password(stored, 'old-password-1')
    short = run(env, 'user', 'password', 'ops@example.com', '--password', 'short', check=False)
    assert short.returncode == 1 and '8 characters' in short.stderr
