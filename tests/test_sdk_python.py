"""End to end: every published Python SDK (proliferate-ai on PyPI), unchanged, reports to the
real server. Each version runs in its own process with its own pip --target install, because
its import name, proliferate, is also ours.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.network

SCRIPTS = Path(__file__).parent / 'data' / 'sdk_scripts'
VERSIONS = ('0.1.0', '0.1.1', '0.2.0', '0.2.1', '0.2.2')
# 0.1.0 has its own API (full endpoint URL, set_account, capture_message, tags in extra.tags,
# synchronous urllib); 0.1.1 onwards share one code base (hub and scope, httpx thread).
LEGACY = ('0.1.0',)
# These import their FastAPI middleware from proliferate/__init__.py, so they need starlette
# even in a plain script (0.2.2 made that import lazy).
NEEDS_STARLETTE = ('0.1.1', '0.2.0', '0.2.1')
COMPLETE = '.complete'
WAIT_SECONDS = 5
RUN_SECONDS = 30

ENVIRONMENT = 'staging'
RELEASE = 'shop@1.4.2'
MESSAGE = 'card declined for order 1042'
CULPRIT = 'authorize in shop.py'
TAGS = {'checkout_step': 'payment'}
HEX32 = re.compile(r'[0-9a-f]{32}')
UUID4 = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}')


def cache_root():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    return Path(base) / 'proliferate-tests'


def requirement_for(version):
    return f'proliferate-ai[fastapi]=={version}' if version in NEEDS_STARLETTE else (
        f'proliferate-ai=={version}')


def sdk_target(version):
    """The directory holding proliferate-ai==version and its dependencies, installed from PyPI
    on first use and kept under ~/.cache so later runs do not reinstall."""
    tag = f'py{sys.version_info.major}{sys.version_info.minor}'
    target = cache_root() / f'sdk-{version}-{tag}'
    if (target / COMPLETE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)  # an install that did not finish
    # Install beside the target and rename, so an interrupted run never leaves half a target.
    staging = Path(tempfile.mkdtemp(prefix=f'.sdk-{version}-', dir=target.parent))
    requirement = requirement_for(version)
    done = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-input', '--target',
         str(staging), requirement],
        capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f'pip install {requirement} failed:\n{done.stdout}\n{done.stderr}')
    (staging / COMPLETE).write_text(requirement + '\n')
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # a parallel run got there first
    return target


def run_sdk(version, endpoint, api_key, mode, workdir):
    """Run report.py under the SDK `version`: (exit code, parsed report line, stderr).

    -S leaves site-packages (where our own package is installed) off sys.path, so only the
    target and the standard library are importable; the script also checks where
    proliferate came from. The environment is minimal, so no PROLIFERATE_*/CI variables or
    proxies reach the SDK."""
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(workdir),
           'PYTHONPATH': str(sdk_target(version)), 'PYTHONDONTWRITEBYTECODE': '1'}
    done = subprocess.run(
        [sys.executable, '-S', str(SCRIPTS / 'report.py'), version, endpoint, api_key, mode],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_SECONDS)
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else None
    return done.returncode, report, done.stderr


def wait_for_issues(read_api, project, count):
    """The project's issues once there are `count` of them (the hub SDKs send from a thread)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        issues = read_api.get(f'/api/v1/projects/{project.id}/issues?status=all')['issues']
        if len(issues) >= count or time.monotonic() > deadline:
            return issues
        time.sleep(0.05)


def one(items, what):
    assert len(items) == 1, (what, items)
    return items[0]


def exception_issue(issues):
    return one([i for i in issues if i['culprit'] == CULPRIT], 'PaymentError issues')


def expected_type(version):
    # 0.1.0 names the type module.QualName, later versions the bare class name.
    return 'shop.PaymentError' if version in LEGACY else 'PaymentError'


def endpoint_for(base, version, form):
    """Where the SDK is pointed: 0.1.0 takes the full URL, later versions a base they append
    /v1/errors to. We serve both /api/v1/errors and /v1/errors, so both forms must work."""
    if version in LEGACY:
        return base + ('/api/v1/errors' if form == 'api' else '/v1/errors')
    return base + ('/api' if form == 'api' else '')


def check_common_event(event, version, mode):
    assert event['type'] == 'exception'
    assert event['level'] == 'error'
    assert event['environment'] == ENVIRONMENT
    assert event['release'] == RELEASE
    assert event['exception']['type'] == expected_type(version)
    assert event['exception']['message'] == MESSAGE
    stack = event['exception']['stack']
    assert stack.startswith('Traceback (most recent call last):'), stack
    assert 'in authorize' in stack and stack.rstrip().endswith(f'PaymentError: {MESSAGE}')
    user = event['user']
    assert (user['id'], user['email']) == ('user-42', 'jane@example.com')
    tags = {**TAGS, 'sdk_version': version, 'mode': mode}
    if version in LEGACY:
        assert event['extra']['tags'] == tags
        assert event['account'] == {'id': 'acct-7', 'name': 'Acme Corp'}
        assert event['platform'] is None
    else:
        assert event['tags'] == tags
        assert user['username'] == 'jane'
        assert event['account'] is None
        assert event['platform'] == 'python'
        assert HEX32.fullmatch(event['trace_id'])
        assert HEX32.fullmatch(event['session_id'])
        assert event['window_id'] is None
        assert event['exception']['mechanism'] == {'handled': mode == 'handled'}


@pytest.mark.parametrize('form', ['api', 'bare'])
@pytest.mark.parametrize('version', VERSIONS)
def test_handled_exception_with_context(version, form, live_server, project, read_api,
                                        tmp_path):
    code, report, stderr = run_sdk(version, endpoint_for(live_server, version, form),
                                   project.key, 'handled', tmp_path)
    assert code == 0, stderr
    legacy = version in LEGACY
    assert report['api'] == ('legacy' if legacy else 'hub')
    sent = report['sent']
    assert (UUID4 if legacy else HEX32).fullmatch(sent['exception']), sent

    issues = wait_for_issues(read_api, project, 2 if legacy else 1)
    assert len(issues) == (2 if legacy else 1), issues
    # 0.1.0's init ping reached the server (counted) but opened no issue.
    assert all('proliferate-sdk-init' not in i['title'] for i in issues)
    issue = exception_issue(issues)
    assert issue['type'] == expected_type(version)
    assert issue['title'] == f'{expected_type(version)}: {MESSAGE}'
    assert issue['level'] == 'error'
    assert issue['status'] == 'unresolved'
    assert issue['event_count'] == 1
    assert issue['user_count'] == 1
    assert issue['account_count'] == (1 if legacy else 0)
    assert issue['last_release'] == RELEASE

    issue_id = issue['id']
    event = one(read_api.get(f'/api/v1/issues/{issue_id}/events')['events'], 'events')
    event_id = sent['exception']
    assert event['event_id'] == event_id
    check_common_event(event, version, 'handled')
    if legacy:
        assert event['extra']['order_id'] == 1042
    else:
        # SDK behaviour: the hub versions keep set_extra() on the scope but never send it.
        assert event['extra'] is None
    by_id = read_api.get(f'/api/v1/projects/{project.id}/events/{event_id}')
    assert by_id['issue_id'] == issue['id']

    users = read_api.get(f'/api/v1/issues/{issue_id}/users')['users']
    assert [(u['id'], u['email'], u['event_count']) for u in users] == [
        ('user-42', 'jane@example.com', 1)]
    accounts = read_api.get(f'/api/v1/issues/{issue_id}/accounts')['accounts']
    assert [(a['id'], a['name']) for a in accounts] == (
        [('acct-7', 'Acme Corp')] if legacy else [])
    detail = read_api.get(f'/api/v1/issues/{issue_id}')
    assert detail['tags']['environment'] == [{'value': ENVIRONMENT, 'count': 1}]
    assert detail['tags']['release'] == [{'value': RELEASE, 'count': 1}]

    if legacy:
        check_legacy_message(read_api, project, issues, sent['message'])


def check_legacy_message(read_api, project, issues, event_id):
    """0.1.0's capture_message(level='warning') is a message event with its own issue, and its
    init ping was acknowledged and counted as sdk_init without opening one."""
    assert UUID4.fullmatch(event_id), event_id
    issue = one([i for i in issues if i['culprit'] != CULPRIT], 'message issues')
    assert issue['title'] == 'checkout retried with another card'
    assert issue['level'] == 'warning'
    assert issue['user_count'] == 1 and issue['account_count'] == 1
    issue_id = issue['id']
    event = one(read_api.get(f'/api/v1/issues/{issue_id}/events')['events'], 'events')
    assert event['event_id'] == event_id
    assert (event['type'], event['level']) == ('message', 'warning')
    assert event['message'] == 'checkout retried with another card'
    assert event['exception'] is None
    assert event['extra'] == {'tags': {**TAGS, 'sdk_version': '0.1.0', 'mode': 'handled'},
                              'attempt': 2}
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        dropped = read_api.get(f'/api/v1/projects/{project.id}')['dropped']
        if dropped.get('sdk_init') or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert dropped == {'sdk_init': 1}


def test_both_sdk_families_group_into_one_issue(live_server, project, read_api, tmp_path):
    """0.1.0 sends shop.PaymentError, 0.2.2 PaymentError: the same code raising it is one issue."""
    for version in ('0.1.0', '0.2.2'):
        code, _report, stderr = run_sdk(version, endpoint_for(live_server, version, 'api'),
                                        project.key, 'handled', tmp_path)
        assert code == 0, stderr
    issues = wait_for_issues(read_api, project, 2)
    issue = exception_issue(issues)
    issue_id = issue['id']
    deadline = time.monotonic() + WAIT_SECONDS
    while issue['event_count'] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        issue = read_api.get(f'/api/v1/issues/{issue_id}')
    assert issue['event_count'] == 2
    assert issue['culprit'] == CULPRIT
    # The same user id from both processes is one affected user.
    assert issue['user_count'] == 1
    events = read_api.get(f'/api/v1/issues/{issue_id}/events')['events']
    assert sorted(e['exception']['type'] for e in events) == ['PaymentError', 'shop.PaymentError']


@pytest.mark.parametrize('version, mode', [
    ('0.1.0', 'uncaught'),
    ('0.1.1', 'uncaught-close'),
    ('0.2.2', 'uncaught-close'),
])
def test_uncaught_exception_reaches_the_server(version, mode, live_server, project, read_api,
                                               tmp_path):
    """sys.excepthook reports an exception nobody caught, and still prints the traceback.

    0.1.0 sends from the hook itself. Later versions only queue the event for their daemon
    thread and register nothing at exit, so the script calls atexit.register(proliferate.close)
    as their docs ask ("call this before your application exits")."""
    code, report, stderr = run_sdk(version, endpoint_for(live_server, version, 'api'),
                                   project.key, mode, tmp_path)
    assert code == 1, stderr
    assert report['version'] == version
    # The SDK chains to the original hook, so the traceback is still printed.
    assert stderr.rstrip().endswith(f'shop.PaymentError: {MESSAGE}'), stderr
    assert 'Traceback (most recent call last):' in stderr
    issue = exception_issue(wait_for_issues(read_api, project, 1))
    assert issue['type'] == expected_type(version)
    assert issue['title'] == f'{expected_type(version)}: {MESSAGE}'
    assert (issue['event_count'], issue['user_count']) == (1, 1)
    issue_id = issue['id']
    event = one(read_api.get(f'/api/v1/issues/{issue_id}/events')['events'], 'events')
    check_common_event(event, version, mode)
    # The traceback runs from the script's top level down to the raise.
    assert 'report.py' in event['exception']['stack']
