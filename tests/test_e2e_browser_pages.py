"""End to end in headless Debian Chromium against the real server, as a new user tries it: setup,
the install snippets, sign out and in, events sent with the documented curl examples, finding
them with filters and search, reading an issue's stack and breadcrumbs, resolving it and
watching it regress, bulk actions, and the browser SDK snippet. Takes the README screenshots.

PROLIFERATE_SCREENSHOTS=docs/screenshots writes them into the repository; by default they go
to the test's temporary directory (and are checked there).
"""
import datetime
import json
import os
import random
import re
import struct
import time
import uuid
from pathlib import Path

import pytest
from browser import post
from seed import SEED_BATCH
from seed import SEED_EVENT

pytestmark = pytest.mark.browser


PASSWORD = 'a long enough password'
WAIT_SECONDS = 15

# The documented examples (shared/api/error-ingestion.md): the single event and the batch.
SINGLE = SEED_EVENT
BATCH = SEED_BATCH


def now_iso(delta=datetime.timedelta()):
    stamp = datetime.datetime.now(datetime.UTC) - delta
    return stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def as_sent(example, key, **changes):
    """A documented example with this project's key, a fresh event_id and the current time, as
    the curl snippet on the project page makes them."""
    event = json.loads(json.dumps(example))
    event.update(api_key=key, event_id=f'evt_{uuid.uuid4().hex[:16]}', timestamp=now_iso())
    event.update(changes)
    return event


def realistic_day(key):
    """A team's last day: a few JavaScript errors with users, accounts and releases, spread over
    the hours so the sparklines have something to draw (for the README screenshots)."""
    rng = random.Random(7)
    kinds = [
        ('TypeError', "Cannot read properties of undefined (reading 'total')", 'renderInvoice',
         'invoices', 40),
        ('ChunkLoadError', 'Loading chunk 214 failed.', 'requireEnsure', 'reports', 14),
        ('RangeError', 'Invalid time value', 'formatDueDate', 'invoices', 9),
        ('Error', 'Request failed with status code 502', 'fetchReport', 'reports', 22),
        ('SyntaxError', "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON",
         'parseResponse', 'search', 6),
    ]
    agents = ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
              'Chrome/124.0.0.0 Safari/537.36',
              'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like '
              'Gecko) Version/17.4 Safari/605.1.15',
              'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0']
    events = []
    for kind, message, function, page, count in kinds:
        for _ in range(count):
            user = rng.randrange(60)
            ago = datetime.timedelta(minutes=int(rng.triangular(2, 60 * 23, 60 * 4)))
            events.append({
                'api_key': key, 'event_id': uuid.uuid4().hex, 'timestamp': now_iso(ago),
                'type': 'exception', 'level': 'error' if kind != 'ChunkLoadError' else 'warning',
                'environment': rng.choice(['production'] * 4 + ['staging']),
                'release': rng.choice(['v2.14.0', 'v2.14.1', 'v2.15.0']),
                'url': f'https://app.example.com/{page}', 'user_agent': rng.choice(agents),
                'exception': {'type': kind, 'message': message,
                              'stack': f'{kind}: {message}\n'
                                       f'    at {function} (https://app.example.com/static/js/'
                                       f'{page}.3f9a1c7e.js:1:{rng.randrange(900, 99999)})\n'
                                       '    at commitRoot (https://app.example.com/static/js/'
                                       'vendor.8b21d04f.js:2:48121)'},
                'user': {'id': f'user_{user:04d}', 'email': f'user{user:04d}@customer.example'},
                'account': {'id': f'acct_{user % 9:03d}', 'name': f'Customer {user % 9} Ltd'},
                'breadcrumbs': crumbs(page, function, rng),
            })
    return events


def crumbs(page, function, rng):
    start = int(time.time() * 1000) - 9000
    return [
        {'timestamp': start, 'category': 'navigation', 'message': f'Navigated to /{page}',
         'level': 'info', 'data': {'from': '/dashboard', 'to': f'/{page}'}},
        {'timestamp': start + 1800, 'category': 'fetch', 'level': 'info',
         'message': f'GET /api/v2/{page}?page=1 [200]', 'data': {'status_code': 200,
                                                                   'duration_ms': 182}},
        {'timestamp': start + 5200, 'category': 'ui.click', 'level': 'info',
         'message': 'button#download-pdf'},
        {'timestamp': start + 5400, 'category': 'fetch', 'level': 'error',
         'message': f'POST /api/v2/{page}/{rng.randrange(1000, 9999)}/pdf [500]',
         'data': {'status_code': 500, 'duration_ms': 2411}},
        {'timestamp': start + 5600, 'category': 'console', 'level': 'warning',
         'message': f'{function}: falling back to the cached document'},
    ]


def png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    return struct.unpack('>II', data[16:24])


@pytest.fixture
def page(chromium_browser):
    context = chromium_browser.new_context(viewport={'width': 1280, 'height': 860})
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems = []
    # Script errors and CSP violations; a page answering 400 or 404 on purpose (a wrong password)
    # logs "Failed to load resource", so statuses are checked on subresources only.
    page.on('console', lambda message: problems.append(message.text)
            if message.type == 'error' and not message.text.startswith('Failed to load resource')
            else None)
    page.on('pageerror', lambda error: problems.append(str(error)))
    page.on('response', lambda response: problems.append(f'{response.status} {response.url}')
            if response.status >= 400 and response.request.resource_type != 'document'
            else None)
    page.problems = problems
    yield page
    context.close()


def test_a_new_user_sets_up_sends_finds_resolves_and_sees_a_regression(
        page, live_server, tmp_path):
    base = live_server
    shots = Path(os.environ.get('PROLIFERATE_SCREENSHOTS') or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    # First run: / leads to the setup form.
    page.goto(base + '/')
    assert page.url == base + '/setup'
    page.fill('input[name=email]', 'ada@example.com')
    page.fill('input[name=name]', 'Ada')
    page.fill('input[name=password]', PASSWORD)
    page.fill('input[name=password_confirm]', PASSWORD)
    page.fill('input[name=org_name]', 'Acme')
    page.fill('input[name=project_name]', 'web-app')
    page.click('button[type=submit]')
    page.wait_for_url('**/projects/*/settings?welcome=1')
    assert page.is_visible('text=Your project is ready')
    key = page.text_content('#ingest-key')
    assert re.fullmatch(r'pk_[0-9a-f]{32}', key)
    curl = page.text_content('#snippet-curl')
    assert curl.startswith(f'curl -X POST {base}/api/v1/errors')
    assert f"endpoint='{base}/api'" in page.text_content('#snippet-python')
    assert page.is_visible('button.copy[data-copy=snippet-curl]')  # app.js ran under the CSP

    # Sign out and back in through the forms.
    page.click('.menu-right summary')
    page.click('text=Sign out')
    page.wait_for_url('**/login')
    page.fill('input[name=email]', 'ada@example.com')
    page.fill('input[name=password]', 'not the password')
    page.click('button[type=submit]')
    assert page.is_visible('text=Wrong email or password.')
    page.fill('input[name=password]', PASSWORD)
    page.click('button[type=submit]')
    page.wait_for_url('**/orgs/acme/issues')
    assert page.is_visible('text=No unresolved issues.')

    # Events from the documented curl examples (sent with urllib, as curl would).
    single = as_sent(SINGLE, key)
    assert post(base + '/api/v1/errors', single) == {'event_id': single['event_id']}
    batch = [as_sent(e, key) for e in BATCH]
    result = post(base + '/api/v1/errors/batch', batch)
    assert [r['status'] for r in result['results']] == ['ok', 'ok']
    staging = as_sent(SINGLE, key, environment='staging')
    post(base + '/api/v1/errors', staging)

    page.reload()
    titles = page.locator('a.issue-title')
    assert titles.count() == 3
    assert "TypeError: Cannot read property 'foo' of undefined" in titles.all_text_contents()
    foo_row = page.locator('tr', has_text="property 'foo'")
    assert foo_row.locator('td.num').first.text_content().strip() == '2'  # events

    # Filter (the select submits itself) and search.
    page.select_option('select[name=environment]', 'staging')
    page.wait_for_url('**environment=staging**')
    assert page.locator('a.issue-title').all_text_contents() == [
        "TypeError: Cannot read property 'foo' of undefined"]
    # The menu wrote its term into the search box, and the row counts staging's events.
    assert page.input_value('input[type=search][name=query]') == 'environment:staging'
    foo_row = page.locator('tr', has_text="property 'foo'")
    assert foo_row.locator('td.num').first.text_content().split() == ['1', 'of', '2']
    page.goto(base + '/orgs/acme/issues')
    page.fill('input[type=search][name=query]', 'ReferenceError')
    page.press('input[type=search][name=query]', 'Enter')
    page.wait_for_url('**query=ReferenceError**')
    assert page.locator('a.issue-title').all_text_contents() == [
        'ReferenceError: foo is not defined']
    page.fill('input[type=search][name=query]', 'user:jane@example.com')
    page.press('input[type=search][name=query]', 'Enter')
    page.wait_for_url('**query=user**')
    assert page.locator('a.issue-title').count() == 1
    # Pasting an event id opens that event.
    page.fill('input[type=search][name=query]', single['event_id'])
    page.press('input[type=search][name=query]', 'Enter')
    page.wait_for_url('**/issues/*/events/*')
    assert page.is_visible(f'text={single["event_id"]}')

    # The issue: stack frame by frame, breadcrumbs, who was affected.
    page.click('text=Details')
    frames = page.locator('.frame .fn').all_text_contents()
    assert frames == ['processData', 'handleClick']
    assert page.locator('.frame .loc').first.text_content().strip() == 'line 42:15'
    crumbs = page.locator('tr.crumb .crumb-msg').all_text_contents()
    assert crumbs == ['Navigated to /dashboard', 'Clicked button#submit']
    assert page.is_visible('dd:has-text("jane@example.com")')
    assert page.is_visible('dd:has-text("Acme Corp")')
    assert page.locator('.issue-stats dd').first.text_content().strip() == '2'
    issue_url = page.url.split('/events/')[0]
    page.click('text=Raw JSON')
    raw = json.loads(page.text_content('body'))
    assert raw['event_id'] == staging['event_id'] and raw['environment'] == 'staging'
    assert raw['user']['email'] == 'jane@example.com'

    # Resolve it; it leaves the unresolved list.
    page.goto(issue_url)
    page.click('.issue-actions button:has-text("Resolve")')
    page.wait_for_url('**notice=resolved')
    assert page.is_visible('text=Issue resolved.')
    assert page.locator('.status').text_content().strip() == 'resolved'
    page.goto(base + '/orgs/acme/issues')
    assert "property 'foo'" not in ' '.join(page.locator('a.issue-title').all_text_contents())

    # It happens again in a new release: back in the list, marked as regressed.
    post(base + '/api/v1/errors', as_sent(SINGLE, key, release='v1.2.4'))
    page.reload()
    regressed = page.locator('tr', has_text="property 'foo'")
    assert regressed.locator('.badge-regressed').text_content().strip() == 'regressed in v1.2.4'
    regressed.locator('a.issue-title').click()
    assert page.is_visible('.activity-regressed')
    assert page.locator('.activity li').first.text_content().split()[:3] == [
        'regressed', 'in', 'v1.2.4']

    # Bulk: select all (app.js) and ignore; then bring them back.
    page.goto(base + '/orgs/acme/issues')
    assert page.locator('button[value=ignore]').is_disabled()
    page.check('[data-select-all]')
    assert page.text_content('[data-selected-count]') == '3 selected'
    page.click('button[value=ignore]')
    page.wait_for_url('**notice=bulk')
    assert page.locator('a.issue-title').count() == 0
    page.goto(base + '/orgs/acme/issues?status=ignored')
    page.check('[data-select-all]')
    page.click('button[value=reopen]')
    page.wait_for_url('**notice=bulk')
    page.goto(base + '/orgs/acme/issues')
    assert page.locator('a.issue-title').count() == 3

    # The browser SDK snippet, pasted into a page elsewhere, reports to this server.
    snippet_page = page.context.new_page()
    page.goto(base + '/orgs/acme/projects')
    page.click('text=Keys & settings')
    sdk_snippet = page.text_content('#snippet-browser')
    snippet_page.set_content('<!doctype html><title>customer site</title>' + sdk_snippet)
    snippet_page.wait_for_function('window.Proliferate !== undefined')
    snippet_page.evaluate("""() => {
        Proliferate.captureException(new Error('sent from the pasted browser snippet'));
        return Proliferate.flush();
    }""")
    snippet_page.close()
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        page.goto(base + '/orgs/acme/issues?query=pasted')
        if page.locator('a.issue-title').count():
            break
        time.sleep(0.2)
    assert page.locator('a.issue-title').all_text_contents() == [
        'Error: sent from the pasted browser snippet']

    # A day of a team's errors, then the two README screenshots.
    events = realistic_day(key)
    for start in range(0, len(events), 100):
        post(base + '/api/v1/errors/batch', events[start:start + 100])
    page.goto(base + '/orgs/acme/issues')
    page.screenshot(path=str(shots / 'issue-list.png'))
    page.click('a.issue-title:has-text("reading \'total\'")')
    page.wait_for_selector('.frames')
    page.screenshot(path=str(shots / 'issue-detail.png'), full_page=True)
    width, height = png_size(shots / 'issue-list.png')
    assert (width, height) == (1280, 860)
    assert png_size(shots / 'issue-detail.png')[1] > 860
    assert page.problems == [], page.problems  # no script error, no CSP violation


def test_the_pages_work_without_javascript(chromium_browser, live_server):
    """Scripts only enhance: with JavaScript off, filters apply with their button, bulk actions
    and status changes are plain forms, and the enhancements stay out of sight."""
    from factories import make_project
    from factories import make_user

    user = make_user('nojs@example.com', password=PASSWORD)
    project = make_project('no-script')
    post(live_server + '/api/v1/errors/batch', [
        as_sent(SINGLE, project.key),
        as_sent(SINGLE, project.key, environment='staging', exception={
            'type': 'RangeError', 'message': 'Invalid time value',
            'stack': 'RangeError: Invalid time value\n    at formatDate (dates.js:3:9)'})])
    context = chromium_browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(live_server + '/login')
        page.fill('input[name=email]', user.email)
        page.fill('input[name=password]', PASSWORD)
        page.click('button[type=submit]')
        page.wait_for_url('**/orgs/acme/issues')
        assert page.locator('a.issue-title').count() == 2
        assert not page.is_visible('[data-select-all]')  # needs the script: hidden without it
        # A filter applies with the Apply button.
        page.select_option('select[name=environment]', 'staging')
        page.click('form.filters button[type=submit]')
        page.wait_for_url('**environment=staging**')
        assert page.locator('a.issue-title').all_text_contents() == [
            'RangeError: Invalid time value']
        # Bulk: tick a row, press Resolve.
        page.goto(live_server + '/orgs/acme/issues')
        page.locator('tr', has_text='RangeError').locator('input[name=issue]').check()
        page.click('button[value=resolve]')
        page.wait_for_url('**notice=bulk')
        assert page.locator('a.issue-title').all_text_contents() == [
            "TypeError: Cannot read property 'foo' of undefined"]
        # The issue page's status buttons, and its snippets' copy buttons stay hidden.
        page.click('a.issue-title')
        page.click('.issue-actions button:has-text("Ignore")')
        page.wait_for_url('**notice=ignored')
        assert page.locator('.status').text_content().strip() == 'ignored'
        page.goto(live_server + f'/projects/{project.id}/settings')
        assert page.is_visible('#snippet-curl') and not page.is_visible('button.copy')
    finally:
        context.close()
