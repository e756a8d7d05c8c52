"""End to end: the real Sentry SDKs, unchanged, report to the real server by DSN: sentry-sdk from
PyPI (gzip and brotli bodies) in its own process and install target, @sentry/node from npm, and
@sentry/browser bundled with esbuild on a page of another origin in Debian's Chromium. Installs
are cached under ~/.cache/proliferate-tests (never in the repository)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.network

SCRIPTS = Path(__file__).parent / 'data' / 'sentry_scripts'
# The last 2.x (the line most applications run) and the first 3.x.
SENTRY_VERSIONS = ('2.76.0', '3.0.1')
NPM_PACKAGES = ('@sentry/node@10', '@sentry/browser@10', 'esbuild@0.25')
COMPLETE = '.complete'
WAIT_SECONDS = 10


def cache_root():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    return Path(base) / 'proliferate-tests'


def cached_install(name, install):
    """A directory built once by install(staging dir) and kept under the cache root."""
    target = cache_root() / name
    if (target / COMPLETE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    staging = Path(tempfile.mkdtemp(prefix=f'.{name}-', dir=target.parent))
    try:
        install(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / COMPLETE).write_text(name + '\n')
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    if done.returncode != 0:
        pytest.fail(f'{command} failed:\n{done.stdout}\n{done.stderr}')
    return done


def python_sdk(version):
    tag = f'py{sys.version_info.major}{sys.version_info.minor}'
    return cached_install(f'sentry-python-{version}-{tag}', lambda staging: run(
        [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-input', '--target',
         str(staging), f'sentry-sdk=={version}', 'brotli>=1.2']))


def node_sdks():
    if not shutil.which('npm') or not shutil.which('node'):
        pytest.skip('node and npm are needed (.ci/run installs them from Debian)')

    def install(staging):
        (staging / 'package.json').write_text('{"private": true}')
        run(['npm', 'install', '--no-audit', '--no-fund', '--silent', *NPM_PACKAGES], cwd=staging)
    return cached_install('sentry-js-10', install)


def dsn_for(live_server, project):
    return f'http://{project.key[3:]}@{live_server.split("://", 1)[1]}/{project.id}'


def issues_of(read_api, project, count):
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        issues = read_api.get(f'/api/v1/projects/{project.id}/issues?status=all')['issues']
        if len(issues) >= count or time.monotonic() > deadline:
            return issues
        time.sleep(0.1)


def events_of(read_api, issue):
    return read_api.get(f'/api/v1/issues/{issue["id"]}/events')['events']


def by_title(issues, start):
    found = [i for i in issues if i['title'].startswith(start)]
    assert len(found) == 1, (start, [i['title'] for i in issues])
    return found[0]


def dropped_of(read_api, project, reason):
    """The project's dropped counts once `reason` is among them (the writer adds them to the
    database on its next commit or idle second)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        dropped = read_api.get(f'/api/v1/projects/{project.id}')['dropped']
        if reason in dropped or time.monotonic() > deadline:
            return dropped
        time.sleep(0.1)


def run_python(version, live_server, project, mode, compression, workdir):
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(workdir),
           'PYTHONPATH': str(python_sdk(version)), 'PYTHONDONTWRITEBYTECODE': '1'}
    done = subprocess.run(
        [sys.executable, '-S', str(SCRIPTS / 'python_report.py'), dsn_for(live_server, project),
         mode, compression], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.parametrize('compression', ['gzip', 'br'])
@pytest.mark.parametrize('version', SENTRY_VERSIONS)
def test_python_sdk(version, compression, live_server, project, read_api, tmp_path):
    if compression == 'br':
        pytest.importorskip('brotli', reason='the server needs brotli to read br bodies')
    sent, stderr = run_python(version, live_server, project, 'all', compression, tmp_path)
    issues = issues_of(read_api, project, 3)
    assert len(issues) == 3, [i['title'] for i in issues]
    # The same error twice: one issue, two events, the ids the SDK returned.
    error = by_title(issues, 'PaymentError: card declined')
    assert error['event_count'] == 2 and error['user_count'] == 1
    assert error['account_count'] == 1 and error['last_release'] == 'shop@2.0.0'
    assert error['culprit'] == 'authorize in python_report.py'
    events = events_of(read_api, error)
    assert {e['event_id'] for e in events} == {sent['first'], sent['second']}
    event = events[0]
    assert (event['level'], event['environment'], event['release']) == (
        'error', 'staging', 'shop@2.0.0')
    assert event['user']['id'] == 'user-42' and event['user']['email'] == 'jane@example.com'
    assert event['tags']['checkout_step'] == 'payment'
    assert any(c.get('message') == 'signed in' for c in event['breadcrumbs'])
    assert [f['function'] for f in event['frames']][:1] == ['authorize']
    assert event['frames'][0]['context_line'].strip().startswith('raise PaymentError')
    assert event['causes'][0]['type'] == 'ValueError'
    assert event['causes'][0]['frames'][0]['function'] == 'parse'
    assert event['sdk']['name'] == 'sentry.python'
    detail = read_api.get(f'/api/v1/issues/{error["id"]}')
    assert detail['tags']['checkout_step'] == [{'value': 'payment', 'count': 2}]

    message = by_title(issues, 'stock is low')
    assert message['level'] == 'warning'
    assert events_of(read_api, message)[0]['event_id'] == sent['message']
    logged = by_title(issues, 'order 1042 failed')
    assert events_of(read_api, logged)[0]['logger'] == 'shop.orders'
    # The transaction and the session were accepted and counted, not stored (3.0 sends
    # neither from a plain script: no issue either way).
    if version.startswith('2.'):
        # The session is switched off by the first answer's X-Sentry-Rate-Limits when it has
        # not left before it: counted or never sent, it opens no issue.
        dropped = dropped_of(read_api, project, 'sentry_transaction')
        assert 'sentry_transaction' in dropped, dropped
    assert 'Unexpected status code' not in stderr


@pytest.mark.parametrize('version', SENTRY_VERSIONS)
def test_python_sdk_stops_after_a_429(version, live_server, project, read_api, tmp_path):
    from proliferate import db
    from proliferate.models import Project
    with db.database.connection_context():
        Project.update(rate_limit_per_minute=2).where(Project.id == project.id).execute()
    sent, _stderr = run_python(version, live_server, project, 'flood', 'gzip', tmp_path)
    issues = issues_of(read_api, project, 1)
    assert len(issues) == 1
    issue = issues[0]
    assert issue['event_count'] == 2
    dropped = dropped_of(read_api, project, 'rate_limited')
    # The third send got the 429; the SDK sent nothing more (two were never sent at all).
    assert dropped.get('rate_limited') == 1, dropped
    assert len(sent['flood']) == 5


NODE_SCRIPT = r'''
const Sentry = require('@sentry/node');
const dsn = process.argv[2];
Sentry.init({ dsn, release: 'api@3.1.0', environment: 'production', tracesSampleRate: 0 });
Sentry.setUser({ id: 'node-user', email: 'node@example.com' });
Sentry.setTag('region', 'eu');
Sentry.setContext('account', { id: 'acct-9', name: 'Node Co' });
Sentry.addBreadcrumb({ category: 'db', message: 'query users', level: 'info' });
function loadUser(id) { throw new TypeError('user ' + id + ' has no profile'); }
const ids = {};
for (const key of ['first', 'second']) {
  try { loadUser(7); } catch (error) { ids[key] = Sentry.captureException(error); }
}
for (let i = 0; i < 12; i++) Sentry.setExtra('part' + i, 'x'.repeat(3000));
try { loadUser(8); } catch (error) { ids.big = Sentry.captureException(error); }
Sentry.flush(10000).then((ok) => { console.log(JSON.stringify({ ok, ...ids })); });
'''


def test_node_sdk(live_server, project, read_api, tmp_path):
    modules = node_sdks()
    script = tmp_path / 'report.js'
    script.write_text(NODE_SCRIPT)
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(tmp_path),
           'NODE_PATH': str(modules / 'node_modules')}
    done = subprocess.run(['node', str(script), dsn_for(live_server, project)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout.strip().splitlines()[-1])
    assert sent['ok'] is True
    issues = issues_of(read_api, project, 1)
    # user 7 and user 8: one bug (numbers in a message do not split an issue).
    issue = by_title(issues, 'TypeError: user ')
    assert issue['event_count'] == 3 and issue['account_count'] == 1
    events = events_of(read_api, issue)
    assert {e['event_id'] for e in events} == {sent['first'], sent['second'], sent['big']}
    big = [e for e in events if e['event_id'] == sent['big']][0]
    # Over 32 KiB the Node SDK gzips and streams the body (chunked).
    assert sum(len(big['extra'][f'part{i}']) for i in range(12)) == 12 * 3000
    assert big['user']['id'] == 'node-user' and big['tags']['region'] == 'eu'
    assert big['frames'][0]['function'] == 'loadUser'
    assert any(c.get('message') == 'query users' for c in big['breadcrumbs'])
    assert (big['release'], big['environment']) == ('api@3.1.0', 'production')
