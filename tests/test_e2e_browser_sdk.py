"""End to end: static/proliferate.js in headless Chromium reports to the real server.

Pages from tests/data/sdk_pages are served from a second loopback port (cross-origin to the
ingest server, as on a real site) and load the SDK from the server's /static/.
"""
import http.server
import json
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


PAGES = Path(__file__).parent / 'data' / 'sdk_pages'
APP_JS = (PAGES / 'app.js').read_text()
INGEST = '**/api/v1/errors/batch'
UUID_LENGTH = 36
WAIT_SECONDS = 15


class PageHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the test pages, filling {{server}} and {{key}} into the HTML."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(PAGES), **kwargs)

    def log_message(self, format, *args):
        pass  # keep pytest output readable

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if not path.endswith('.html'):
            return super().do_GET()
        file = PAGES / path.lstrip('/')
        if not file.is_file():
            return self.send_error(404)
        html = file.read_text()
        for name, value in self.server.substitutions.items():
            html = html.replace('{{' + name + '}}', value)
        body = html.encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def pages(live_server, project):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), PageHandler)
    server.substitutions = {'server': live_server, 'key': project.key}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def page(chromium_browser, pages):
    # Depends on `pages` (and so on the server) to close first: the browser's keep-alive
    # connections would otherwise hold the server's shutdown for its full timeout.
    context = chromium_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def wait_until(page, probe, what):
    """Poll `probe` until it returns something truthy, letting Playwright serve its routes
    meanwhile (a plain sleep would starve route handlers)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        page.wait_for_timeout(100)
    raise AssertionError(f'timed out after {WAIT_SECONDS}s waiting for {what}')


def all_issues(read_api, project):
    return read_api.get(f'/api/v1/projects/{project.id}/issues?status=all')['issues']


def issue_events(read_api, issue):
    events = read_api.get(f'/api/v1/issues/{issue["id"]}/events')['events']
    return sorted(events, key=lambda event: event['id'])


def wait_for_issue(page, read_api, project, title_part, events=1):
    """The one issue whose title contains `title_part`, once it holds `events` events."""
    def probe():
        matching = [i for i in all_issues(read_api, project) if title_part in i['title']]
        assert len(matching) <= 1, matching
        if matching and matching[0]['event_count'] >= events:
            return matching[0]
    return wait_until(page, probe, f'issue {title_part!r} with {events} event(s)')


def stored_ids(page):
    """session_id and window_id as the SDK keeps them in the tab's sessionStorage."""
    return page.evaluate("""() => ({
        session_id: JSON.parse(sessionStorage.getItem('proliferate.session')).id,
        window_id: JSON.parse(sessionStorage.getItem('proliferate.window')),
    })""")


def record_sent_events(page):
    """Every event the page puts on the wire to the ingest endpoint, as sent."""
    sent = []

    def on_request(request):
        if request.url.endswith('/api/v1/errors/batch') and request.post_data:
            sent.extend(json.loads(request.post_data))

    page.on('request', on_request)
    return sent


def crumb_messages(event):
    return [(c['category'], c['message']) for c in event['breadcrumbs']]


def assert_context(event, page, pages):
    assert event['level'] in ('error', 'warning', 'info')
    assert len(event['event_id']) == UUID_LENGTH
    assert event['environment'] == 'e2e'
    assert event['release'] == 'shop@1.4.0'
    assert event['user']['id'] == 'user_42'
    assert event['user']['email'] == 'ada@example.com'
    assert event['account'] == {'id': 'acct_7', 'name': 'Acme Corp'}
    assert event['url'].startswith(pages + '/')
    assert 'HeadlessChrome' in event['user_agent']
    assert event['extra']['page'] == 'index'
    ids = stored_ids(page)
    assert event['session_id'] == ids['session_id'] and len(ids['session_id']) == UUID_LENGTH
    assert event['window_id'] == ids['window_id'] and len(ids['window_id']) == UUID_LENGTH


def line_of(snippet):
    """1-based line of app.js that holds `snippet` (exactly once)."""
    lines = [n for n, line in enumerate(APP_JS.splitlines(), 1) if snippet in line]
    assert len(lines) == 1, (snippet, lines)
    return lines[0]


def frames(event):
    """(function, file, line) of each frame the server parsed from the stack, innermost first."""
    return [(f['function'], f['filename'], f['lineno']) for f in event['frames']]


def test_synchronous_throw(page, pages, read_api, project):
    page.goto(pages + '/index.html?window=200')
    page.click('#sync')
    issue = wait_for_issue(page, read_api, project, 'reading \'length\'')
    assert issue['type'] == 'TypeError'
    assert issue['title'] == "TypeError: Cannot read properties of undefined (reading 'length')"
    assert issue['culprit'] == 'processData in app.js'
    assert (issue['user_count'], issue['account_count']) == (1, 1)
    [event] = issue_events(read_api, issue)
    assert event['type'] == 'exception'
    assert event['level'] == 'error'
    assert event['exception']['type'] == 'TypeError'
    assert event['exception']['message'] == "Cannot read properties of undefined (reading 'length')"
    assert event['exception']['stack'].startswith('TypeError: Cannot read properties of undefined')
    assert frames(event) == [
        ('processData', 'app.js', line_of('return data.items.length')),
        ('HTMLButtonElement.onSyncClick', 'app.js', line_of('processData({});')),
    ]
    assert event['frames'][0]['abs_path'] == f'{pages}/app.js'
    assert crumb_messages(event) == [('click', 'Clicked button#sync "Throw now"')]
    assert event['breadcrumbs'][0]['data'] == {'element': 'button#sync', 'text': 'Throw now'}
    assert_context(event, page, pages)


def test_throw_in_async_function(page, pages, read_api, project):
    page.goto(pages + '/index.html?window=200')
    page.click('#async')
    issue = wait_for_issue(page, read_api, project, 'report page 7 out of range')
    assert issue['type'] == 'RangeError'
    assert issue['culprit'] == 'loadReport in app.js'
    [event] = issue_events(read_api, issue)
    assert event['exception']['type'] == 'RangeError'
    assert event['exception']['message'] == 'report page 7 out of range'
    assert frames(event)[0] == ('loadReport', 'app.js', line_of("throw new RangeError("))
    assert crumb_messages(event) == [('click', 'Clicked button#async "Load report"')]
    assert_context(event, page, pages)


def test_rejected_promise_with_a_non_error_value(page, pages, read_api, project):
    page.goto(pages + '/index.html?window=200')
    page.click('#reject')
    issue = wait_for_issue(page, read_api, project, 'Non-Error promise rejection')
    assert issue['type'] == 'UnhandledRejection'
    [event] = issue_events(read_api, issue)
    assert event['exception']['type'] == 'UnhandledRejection'
    assert event['frames'] == []  # a plain object carries no stack
    assert event['exception']['message'] == (
        'Non-Error promise rejection: {"code":42,"reason":"quota exceeded"}')
    assert crumb_messages(event) == [('click', 'Clicked button#reject "Reject"')]
    assert_context(event, page, pages)


def test_error_after_clicks_and_a_navigation(page, pages, read_api, project):
    page.goto(pages + '/index.html?window=200')
    # A first error goes out, so the SDK's own request precedes the breadcrumbs checked below.
    page.click('#sync')
    wait_for_issue(page, read_api, project, 'reading \'length\'')
    page.click('#settings')
    page.click('#save .icon')  # the icon inside the button: the crumb names the button
    issue = wait_for_issue(page, read_api, project, 'reading \'first\'')
    [event] = issue_events(read_api, issue)
    assert event['exception']['type'] == 'TypeError'
    assert frames(event)[0] == ('renderProfile', 'app.js', line_of('profile.name.first'))
    crumbs = crumb_messages(event)
    assert crumbs[0] == ('click', 'Clicked button#sync "Throw now"')
    assert crumbs[1:5] == [
        ('click', 'Clicked a#settings "Settings"'),
        ('navigation', 'Navigated to /settings?api_token=[Filtered]&tab=profile'),
        ('click', 'Clicked button#save "✓ Save changes"'),
        ('console', 'saving profile {"draft":true}'),
    ]
    assert len(crumbs) == 6
    assert crumbs[5][0] == 'fetch'
    assert crumbs[5][1].startswith(f'GET {pages}/profile.json?access_token=[Filtered]&v=2 [200] ')
    assert event['breadcrumbs'][4]['level'] == 'warning'
    fetch = event['breadcrumbs'][5]
    assert fetch['level'] == 'info'
    assert fetch['data']['method'] == 'GET'
    assert fetch['data']['url'] == f'{pages}/profile.json?access_token=[Filtered]&v=2'
    assert fetch['data']['status_code'] == 200
    assert 0 <= fetch['data']['duration_ms'] < 5000
    assert event['breadcrumbs'][2]['data'] == {
        'from': f'{pages}/index.html?window=200',
        'to': f'{pages}/settings?api_token=[Filtered]&tab=profile',
    }
    stamps = [crumb['timestamp'] for crumb in event['breadcrumbs']]
    assert stamps == sorted(stamps) and stamps[0] > 1.6e12  # epoch milliseconds, in order
    assert event['url'] == f'{pages}/settings?api_token=[Filtered]&tab=profile'
    payload = json.dumps(event)
    assert 's3cr3t' not in payload
    assert 'secret@example.com' not in payload  # form values are never read
    assert '/api/v1/errors' not in payload  # the SDK's own requests are no breadcrumbs
    assert_context(event, page, pages)


def test_capture_message(page, pages, read_api, project):
    page.goto(pages + '/index.html?window=200')
    event_id = page.evaluate("""() => {
        for (let i = 0; i < 150; i++) {
            Proliferate.addBreadcrumb({category: 'step', message: 'step ' + i});
        }
        return Proliferate.captureMessage('Checkout is slow', 'warning');
    }""")
    issue = wait_for_issue(page, read_api, project, 'Checkout is slow')
    [event] = issue_events(read_api, issue)
    assert event['event_id'] == event_id
    assert event['type'] == 'message'
    assert event['level'] == 'warning'
    assert event['message'] == 'Checkout is slow'
    # The last 100 breadcrumbs, oldest first.
    assert [c['message'] for c in event['breadcrumbs']] == [f'step {i}' for i in range(50, 150)]
    assert_context(event, page, pages)


def test_error_right_before_unload_arrives_by_beacon(page, pages, read_api, project):
    fetches = []
    page.on('request', lambda r: fetches.append(r.url) if r.resource_type == 'fetch' else None)
    page.goto(pages + '/index.html')  # default 2 s batch window: only pagehide can send in time
    page.click('#leave')
    page.wait_for_url(pages + '/other.html')
    issue = wait_for_issue(page, read_api, project, 'checkout interrupted by navigation')
    [event] = issue_events(read_api, issue)
    assert event['exception']['type'] == 'Error'
    assert frames(event)[:2] == [
        ('checkout', 'app.js', line_of("throw new Error('checkout interrupted")),
        ('HTMLButtonElement.onLeaveClick', 'app.js', line_of('checkout();')),
    ]
    assert crumb_messages(event) == [('click', 'Clicked button#leave "Check out"')]
    assert event['url'] == f'{pages}/index.html'
    assert fetches == []  # nothing went by fetch: the beacon delivered it


def test_same_error_from_two_lines_is_one_issue(page, pages, read_api, project):
    page.goto(pages + '/index.html?window=200')
    page.click('#validate-a')
    page.click('#validate-b')
    issue = wait_for_issue(page, read_api, project, 'order is invalid', events=2)
    assert [i['title'] for i in all_issues(read_api, project)] == [issue['title']]
    assert issue['event_count'] == 2
    first, second = issue_events(read_api, issue)
    assert issue['culprit'] == 'validateOrder in app.js'
    assert frames(first)[0] == ('validateOrder', 'app.js', line_of('if (!order.id)'))
    assert frames(second)[0] == ('validateOrder', 'app.js', line_of('if (!order.total)'))
    assert frames(first)[1:] == frames(second)[1:]


def test_identical_errors_in_a_tight_loop_are_counted_not_sent(page, pages, read_api, project):
    sent = record_sent_events(page)
    page.goto(pages + '/index.html?window=200')
    page.evaluate('spin(300)')
    issue = wait_for_issue(page, read_api, project, 'tight loop failure', events=2)
    events = issue_events(read_api, issue)
    assert len(sent) == 2 and issue['event_count'] == 2
    assert 'repeat_count' not in events[0]['extra']
    assert events[0]['extra']['iteration'] == 0
    assert events[1]['extra']['repeat_count'] == 299


def test_queued_events_arrive_once_after_the_endpoint_was_blocked(page, pages, read_api, project):
    state = {'blocked': True, 'aborted': 0, 'delivered': []}

    def ingest(route):
        if state['blocked']:
            state['aborted'] += 1
            route.abort('connectionrefused')
        else:
            state['delivered'].append([e['event_id'] for e in json.loads(route.request.post_data)])
            route.continue_()

    page.route(INGEST, ingest)
    page.goto(pages + '/index.html?window=100&retry=200')
    words = ('alpha', 'bravo', 'charlie')
    ids = [page.evaluate(f"Proliferate.captureMessage('offline {w}', 'info')") for w in words]
    page.click('#sync')
    wait_until(page, lambda: state['aborted'] >= 3, 'three refused attempts (backoff)')
    state['blocked'] = False
    for word in words:
        wait_for_issue(page, read_api, project, f'offline {word}')
    wait_for_issue(page, read_api, project, 'reading \'length\'')
    page.wait_for_timeout(500)  # room for a stray duplicate send to show up
    delivered = [event_id for batch in state['delivered'] for event_id in batch]
    assert len(delivered) == 4 and len(set(delivered)) == 4
    assert set(ids) <= set(delivered)
    for event_id in delivered:
        event = read_api.get(f'/api/v1/projects/{project.id}/events/{event_id}')
        assert event['event_id'] == event_id


def test_429_is_honoured_with_its_retry_after(page, pages, read_api, project):
    attempts = []

    def ingest(route):
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            route.fulfill(status=429, body='{"detail": "slow down"}', headers={
                'Retry-After': '1',
                'Access-Control-Allow-Origin': '*',
                'Access-Control-Expose-Headers': 'Retry-After',
            })
        else:
            route.continue_()

    page.route(INGEST, ingest)
    page.goto(pages + '/index.html?window=100&retry=100')
    page.evaluate("Proliferate.captureMessage('after a 429', 'info')")
    wait_for_issue(page, read_api, project, 'after a 429')
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.9  # Retry-After, not the 100 ms backoff


def test_session_renews_after_30_idle_minutes_and_window_id_holds(page, pages, read_api, project):
    sent = record_sent_events(page)
    page.goto(pages + '/index.html?window=100')
    page.evaluate("Proliferate.captureMessage('first visit', 'info')")
    wait_until(page, lambda: len(sent) == 1, 'the first message')
    first = stored_ids(page)
    page.reload()
    page.evaluate("Proliferate.captureMessage('after reload', 'info')")
    wait_until(page, lambda: len(sent) == 2, 'the second message')
    # 31 minutes without activity: the next event opens a new session in the same tab.
    page.evaluate("""() => {
        const s = JSON.parse(sessionStorage.getItem('proliferate.session'));
        s.at -= 31 * 60 * 1000;
        sessionStorage.setItem('proliferate.session', JSON.stringify(s));
        Proliferate.captureMessage('after a break', 'info');
    }""")
    wait_until(page, lambda: len(sent) == 3, 'the third message')
    assert [e['message'] for e in sent] == ['first visit', 'after reload', 'after a break']
    assert sent[0]['session_id'] == sent[1]['session_id'] == first['session_id']
    assert sent[2]['session_id'] != first['session_id']
    assert sent[2]['session_id'] == stored_ids(page)['session_id']
    assert {e['window_id'] for e in sent} == {first['window_id']}
    assert len({e['event_id'] for e in sent}) == 3
    for event in sent:
        assert event['api_key'] == project.key
        assert event['timestamp'].endswith('Z') and 'T' in event['timestamp']
    wait_for_issue(page, read_api, project, 'after a break')


def test_the_sdk_never_throws_into_the_page(page, pages, read_api, project):
    page_errors = []
    page.on('pageerror', lambda error: page_errors.append(str(error)))
    sent = record_sent_events(page)
    page.goto(pages + '/index.html?window=100')
    delivered = page.evaluate("""async () => {
        const circular = {name: 'loop'};
        circular.self = circular;
        Proliferate.init({sampleRate: 0});
        Proliferate.captureMessage('sampled out');
        Proliferate.init({sampleRate: 1, beforeSend: (event) => {
            if (event.message === 'hook throws') throw new Error('broken hook');
            if (event.message === 'dropped by hook') return null;
            event.extra.seen_by_hook = true;
            return event;
        }});
        Proliferate.init(null);
        Proliferate.captureException(null);
        Proliferate.captureException(undefined, null);
        Proliferate.addBreadcrumb(null);
        Proliferate.addBreadcrumb({category: 'odd', message: 12n, data: circular});
        Proliferate.setExtra('loop', circular);
        Proliferate.setExtra('big', 10n);
        Proliferate.captureMessage('dropped by hook');
        Proliferate.captureMessage('hook throws');
        Proliferate.captureMessage('still reporting', 'bogus-level');
        return Proliferate.flush();
    }""")
    assert delivered is True
    assert page_errors == []
    by_message = {event.get('message') or event['exception']['message']: event for event in sent}
    assert set(by_message) == {'null', 'undefined', 'hook throws', 'still reporting'}
    event = by_message['still reporting']
    assert event['level'] == 'info'
    assert event['extra'] == {'page': 'index', 'loop': {'name': 'loop', 'self': '[Circular]'},
                              'big': '10', 'seen_by_hook': True}
    assert event['breadcrumbs'][-1] == {
        'timestamp': event['breadcrumbs'][-1]['timestamp'], 'category': 'odd', 'message': '"12"',
        'level': 'info', 'data': {'name': 'loop', 'self': '[Circular]'}}
    assert 'seen_by_hook' not in by_message['hook throws']['extra']
    wait_for_issue(page, read_api, project, 'still reporting')
