"""End to end: @sentry/browser from npm, bundled with esbuild, on a page served from another origin,
in Debian's Chromium, reports to the real server by DSN: an uncaught error, captureException and
captureMessage, with no console or CORS error on the page."""

import http.server
import json
import subprocess
import threading
import time

import pytest
from test_sdk_sentry import dsn_for
from test_sdk_sentry import node_sdks

pytestmark = [pytest.mark.network, pytest.mark.browser]
WAIT_SECONDS = 15

ENTRY = r'''
import * as Sentry from '@sentry/browser';
window.Sentry = Sentry;
Sentry.init({ dsn: window.DSN, release: 'web@5.0.0', environment: 'e2e',
              integrations: [], tracesSampleRate: 0 });
Sentry.setUser({ id: 'browser-user', email: 'ada@example.com' });
Sentry.setTag('page', 'checkout');
Sentry.setContext('account', { id: 'acct-b', name: 'Browser Co' });
Sentry.addBreadcrumb({ category: 'cart', message: 'cart loaded', level: 'info' });
'''

PAGE = '''<!doctype html><html><head><meta charset="utf-8"><title>shop</title>
<script>window.DSN = {dsn};</script><script src="/sentry.js"></script></head>
<body><button id="pay" onclick="payNow()">Pay</button>
<script>
function payNow() {{ throw new RangeError('amount out of range'); }}
function handled() {{
  try {{ JSON.parse('{{oops'); }} catch (error) {{ window.sentIds.push(Sentry.captureException(error)); }}
  window.sentIds.push(Sentry.captureMessage('checkout opened', 'info'));
}}
window.sentIds = [];
</script></body></html>'''


@pytest.fixture(scope='module')
def bundle(tmp_path_factory):
    modules = node_sdks()
    entry = modules / 'entry.mjs'
    entry.write_text(ENTRY)
    out = tmp_path_factory.mktemp('bundle') / 'sentry.js'
    done = subprocess.run([str(modules / 'node_modules' / '.bin' / 'esbuild'), str(entry),
                           '--bundle', '--format=iife', f'--outfile={out}'],
                          cwd=modules, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


@pytest.fixture
def site(live_server, project, bundle):
    html = PAGE.format(dsn=json.dumps(dsn_for(live_server, project))).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body, kind = (bundle, 'text/javascript') if self.path == '/sentry.js' else (
                html, 'text/html; charset=utf-8')
            self.send_response(200)
            self.send_header('Content-Type', kind)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_browser_sdk(chromium_browser, site, project, read_api):
    context = chromium_browser.new_context()
    page = context.new_page()
    problems = []
    page.on('console', lambda m: problems.append(m.text) if m.type in ('error', 'warning')
            and 'amount out of range' not in m.text else None)
    page.on('requestfailed', lambda r: problems.append(f'{r.url}: {r.failure}'))
    answers = []
    page.on('response', lambda r: answers.append((r.status, r.headers.get('x-sentry-rate-limits')))
            if '/envelope' in r.url else None)
    try:
        page.goto(site + '/')
        page.click('#pay')
        page.evaluate('handled()')
        sent_ids = page.evaluate('window.sentIds')
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            issues = read_api.get(f'/api/v1/projects/{project.id}/issues?status=all')['issues']
            if len(issues) >= 3:
                break
            page.wait_for_timeout(100)
    finally:
        context.close()
    titles = {i['title']: i for i in issues}
    assert set(titles) == {'RangeError: amount out of range', 'checkout opened'} | {
        t for t in titles if t.startswith('SyntaxError')}, titles
    assert len(issues) == 3
    uncaught = titles['RangeError: amount out of range']
    event = read_api.get(f'/api/v1/issues/{uncaught["id"]}/events')['events'][0]
    assert event['exception']['mechanism']['handled'] is False
    assert event['frames'][0]['function'] == 'payNow'
    assert event['frames'][0]['abs_path'].startswith(site)
    assert event['user']['id'] == 'browser-user' and event['tags']['page'] == 'checkout'
    assert event['account'] == {'id': 'acct-b', 'name': 'Browser Co'}
    assert (event['release'], event['environment']) == ('web@5.0.0', 'e2e')
    assert event['url'].startswith(site)
    assert any(c.get('message') == 'cart loaded' for c in event['breadcrumbs'])
    detail = read_api.get(f'/api/v1/issues/{uncaught["id"]}')
    assert detail['tags']['browser'][0]['value'].startswith('Chrome')
    message = titles['checkout opened']
    assert message['level'] == 'info'
    stored = {e['event_id'] for i in issues
              for e in read_api.get(f'/api/v1/issues/{i["id"]}/events')['events']}
    assert set(sent_ids) <= stored
    assert all(status == 200 for status, _limits in answers), answers
    assert problems == []
