"""The issue browser through the real app (falcon's test client, the real writer and SQLite):
first-run setup and its snippets (the curl one run by a real shell against the real server),
the issue list's filters, search, sorting, pages and bulk actions, the issue page, regressions,
hostile events, headers, access between organizations, and the settings pages."""

import datetime
import html
import json
import logging
import random
import re
import subprocess
import urllib.request
from html.parser import HTMLParser

import pytest
from factories import PASSWORD
from factories import event
from factories import make_project
from factories import make_user
from pageclient import PageClient
from pageclient import send

from proliferate import db
from proliferate import times
from proliferate.ingest.payload import encode_event
from proliferate.models import ApiToken
from proliferate.models import DroppedCount
from proliferate.models import Event
from proliferate.models import Invite
from proliferate.models import Issue
from proliferate.models import IssueActivity
from proliferate.models import Membership
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.web import guard
from proliferate.web import routes
from proliferate.web import templating
from proliferate.web import urls

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'&'


def iso(value):
    return value.isoformat(timespec='milliseconds') + 'Z'


def query(model, *where):
    with db.database.connection_context():
        return list(model.select().where(*where)) if where else list(model.select())


def members():
    """{email: Membership} with the user loaded."""
    from proliferate.models import User
    with db.database.connection_context():
        return {m.user.email: m for m in Membership.select(Membership, User).join(User)}


def issue_ids(page_html):
    """Issue ids in the order the list shows them."""
    return [int(i) for i in re.findall(r'class="issue-title" href="/issues/(\d+)"', page_html)]


def snippet(page_html, element_id):
    found = re.search(rf'<pre id="{element_id}" class="code">(.*?)</pre>', page_html, re.S)
    assert found, element_id
    return html.unescape(found.group(1))


# -- first run -------------------------------------------------------------------------------


def test_setup_creates_admin_org_project_and_shows_the_snippets(client, services):
    anonymous = PageClient(client)
    assert anonymous.get('/', expect=303).headers['location'] == '/setup'
    assert anonymous.get('/login', expect=303).headers['location'] == '/setup'
    anonymous.get('/setup')
    fields = {'email': 'Ada@Example.com', 'name': 'Ada', 'password': 'short',
              'password_confirm': 'short', 'org_name': 'Analytical Engines',
              'project_name': 'Difference <Engine>'}
    result = anonymous.post('/setup', fields)
    assert result.status_code == 400
    assert 'at least 8 characters' in result.text
    assert 'value="Analytical Engines"' in result.text  # what was typed is kept
    fields.update(password='long enough pass', password_confirm='long enough pass')
    result = anonymous.post('/setup', fields)
    assert result.status_code == 303
    assert result.headers['location'].endswith('/settings?welcome=1')
    assert guard.SESSION_COOKIE in anonymous.cookies  # signed in as the new admin

    page = anonymous.get(result.headers['location']).text
    assert 'Your project is ready' in page
    assert 'Difference &lt;Engine&gt;' in page
    (project,) = query(Project)
    assert project.slug == 'difference-engine'
    (key,) = query(ProjectKey)
    base = 'http://falconframework.org'  # falcon.testing's host; a real server's URL otherwise
    curl = snippet(page, 'snippet-curl')
    assert curl.startswith(f'curl -X POST {base}/api/v1/errors \\')
    assert f'"api_key": "{key.key}"' in curl
    assert '"message": "Cannot read property \'\\\'\'foo\'\\\'\' of undefined"' in curl
    python = snippet(page, 'snippet-python')
    assert f"api_key='{key.key}'" in python and f"endpoint='{base}/api'" in python
    assert snippet(page, 'snippet-python-01') == (
        f"proliferate.init(endpoint='{base}/api/v1/errors', api_key='{key.key}')\n")
    browser_sdk = snippet(page, 'snippet-browser')
    assert f'<script src="{base}/static/proliferate.js"></script>' in browser_sdk
    assert f"Proliferate.init({{ apiKey: '{key.key}'" in browser_sdk

    (email, membership), = members().items()
    assert membership.role == 'owner' and email == 'ada@example.com'
    assert membership.user.is_admin
    # Setup happens once.
    assert anonymous.get('/setup', expect=303).headers['location'] == '/'
    other = PageClient(client)
    assert other.get('/', expect=303).headers['location'] == '/login'


def test_the_curl_snippet_runs_in_a_shell_against_the_server(config, services, live_server):
    """The snippet on the page, pasted into bash as a user would, stores an event."""
    project = make_project('web')
    owner = make_user('owner@example.com')
    with urllib.request.urlopen(live_server + '/login') as response:
        assert response.status == 200
    import falcon.testing

    from proliferate.app import create_app
    # The page as the live server renders it: base URL from the request's Host header.
    app = create_app(config, writer=services.writer, drops=services.drops)
    page = PageClient(falcon.testing.TestClient(app))
    page.login(owner.email)
    host = live_server.split('://', 1)[1]
    text = page.get(f'/projects/{project.id}/settings', headers={'Host': host}).text
    curl = snippet(text, 'snippet-curl')
    assert f'curl -X POST {live_server}/api/v1/errors' in curl
    for _ in range(2):  # twice: the shell makes a new event_id each time
        done = subprocess.run(['bash', '-c', curl], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)['event_id'].startswith('evt_')
    (issue,) = query(Issue)
    assert issue.title == "TypeError: Cannot read property 'foo' of undefined"
    assert issue.event_count == 2
    listing = page.get(f'/projects/{project.id}/issues').text
    assert 'Cannot read property &#39;foo&#39; of undefined' in listing
    # The Python SDK's endpoint from the snippet: it posts to {endpoint}/v1/errors.
    python = snippet(text, 'snippet-python')
    endpoint = re.search(r"endpoint='([^']+)'", python).group(1)
    body = json.dumps(event(project.key)).encode()
    request = urllib.request.Request(endpoint + '/v1/errors', data=body,
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request) as response:
        assert response.status == 202
    # And the browser SDK's script is where the snippet says.
    src = re.search(r'<script src="([^"]+)"', snippet(text, 'snippet-browser')).group(1)
    with urllib.request.urlopen(src) as response:
        assert b'win.Proliferate' in response.read()


# -- the issue list --------------------------------------------------------------------------


def seed_list(client, project):
    """Five issues with known counts, levels, environments, releases, users and accounts."""
    now = times.utcnow()
    specs = [
        # (type, function, count, level, environment, release, users, minutes ago)
        ('TypeError', 'renderCart', 5, 'error', 'production', 'v1.0.0', 3, 1),
        ('RangeError', 'walkTree', 3, 'warning', 'staging', 'v1.1.0', 1, 30),
        ('SyntaxError', 'parseJSON', 8, 'error', 'production', 'v1.1.0', 5, 90),
        ('ReferenceError', 'drawChart', 1, 'info', 'production', 'v1.0.0', 1, 60 * 24 * 3),
        ('EvalError', 'oldCode', 2, 'error', 'production', 'v0.9.0', 0, 60 * 24 * 20),
    ]
    events = []
    for kind, function, count, level, env, release, users, ago in specs:
        for n in range(count):
            fields = dict(
                level=level, environment=env, release=release,
                timestamp=iso(now - datetime.timedelta(minutes=ago + n)),
                exception={'type': kind, 'message': f'{function} failed',
                           'stack': f'{kind}: {function} failed\n'
                                    f'    at {function} (https://x.example/{function}.js:1:{n})'})
            if users:
                fields['user'] = {'id': f'{function}-user-{n % users}',
                                  'email': f'{function}{n % users}@customer.example'}
                fields['account'] = {'id': f'acct-{function}', 'name': f'{function} Corp'}
            events.append(event(project.key, **fields))
    send(client, *events)
    with db.database.connection_context():
        return {i.type: i for i in Issue.select()}


def test_issue_list_rows_filters_search_and_sort(client, browser, web):
    issues = seed_list(client, web)
    base = f'/projects/{web.id}/issues'
    page = browser.get(base).text
    # Default: unresolved, newest first.
    assert issue_ids(page) == [issues[t].id for t in
                               ('TypeError', 'RangeError', 'SyntaxError', 'ReferenceError',
                                'EvalError')]
    row = page[page.index(f'href="/issues/{issues["SyntaxError"].id}"'):]
    row = row[:row.index('</tr>')]
    assert '<strong>SyntaxError</strong>: parseJSON failed' in row
    assert 'parseJSON in parseJSON.js' in row  # culprit
    assert 'title="8 events">8<' in row and 'title="5 users">5<' in row
    assert 'title="1 accounts">1<' in row
    assert 'badge-new' in row  # first seen within a day
    assert '<svg class="spark"' in page and '<time datetime=' in page

    def shown(**params):
        return issue_ids(browser.get(urls.project_issues(web.id, **params)).text)

    assert shown(environment='staging') == [issues['RangeError'].id]
    assert set(shown(release='v1.0.0')) == {issues['TypeError'].id, issues['ReferenceError'].id}
    assert shown(level='info') == [issues['ReferenceError'].id]
    assert set(shown(period='24h')) == {issues[t].id for t in
                                        ('TypeError', 'RangeError', 'SyntaxError')}
    assert shown(period='7d')[-1] == issues['ReferenceError'].id
    assert shown(query='walkTree') == [issues['RangeError'].id]
    assert shown(query='syntaxerror') == [issues['SyntaxError'].id]  # case-insensitive title
    assert shown(query='user:renderCart-user-1') == [issues['TypeError'].id]
    assert shown(query='user:parseJSON2@customer.example') == [issues['SyntaxError'].id]
    assert shown(query='account:"walkTree Corp"') == [issues['RangeError'].id]
    assert shown(query='account:acct-drawChart') == [issues['ReferenceError'].id]
    assert shown(query='release:v0.9.0') == [issues['EvalError'].id]
    assert shown(query='env:staging level:warning') == [issues['RangeError'].id]
    assert shown(query='nothing-like-this') == []
    assert shown(sort='events')[:3] == [issues[t].id for t in
                                        ('SyntaxError', 'TypeError', 'RangeError')]
    assert shown(sort='users')[:2] == [issues['SyntaxError'].id, issues['TypeError'].id]
    assert shown(sort='first_seen')[0] == issues['TypeError'].id
    assert shown(sort='accounts')[-1] == issues['EvalError'].id
    # The filter menus offer what the project has.
    page = browser.get(base).text
    for value in ('production', 'staging', 'v1.0.0', 'v1.1.0', 'v0.9.0'):
        assert f'<option value="{value}">{value}</option>' in page
    assert '14 days' in browser.get(urls.project_issues(web.id, stats='14d')).text
    # Unknown values fall back to defaults instead of failing.
    assert len(shown(sort='bogus', status='bogus', period='1y', level='fatal')) == 5


def test_pasting_an_event_id_jumps_to_the_event(client, browser, web):
    (first, second) = send(client, event(web.key), event(web.key))
    with db.database.connection_context():
        row = Event.get(Event.event_id == second)
    result = browser.get(urls.project_issues(web.id, query=f'  {second} '), expect=303)
    assert result.headers['location'] == f'/issues/{row.issue_id}/events/{row.id}'
    page = browser.get(result.headers['location']).text
    assert second in page
    # From the organization-wide list too; an id of another organization's project is not found.
    result = browser.get(urls.org_issues('acme', query=first), expect=303)
    assert result.headers['location'].startswith(f'/issues/{row.issue_id}/events/')
    stranger = make_project('theirs', org_slug='other')
    (theirs,) = send(client, event(stranger.key))
    assert issue_ids(browser.get(urls.org_issues('acme', query=theirs)).text) == []


def test_keyset_pages_cover_every_issue_once(client, browser, web):
    now = times.utcnow()
    events = [event(web.key, timestamp=iso(now - datetime.timedelta(minutes=n)),
                    exception={'type': f'Error{n}', 'message': 'x',
                               'stack': f'Error{n}: x\n    at f{n} (https://x.example/f.js:1:1)'})
              for n in range(60)]
    send(client, *events[:30])
    send(client, *events[30:])
    seen = []
    path = f'/projects/{web.id}/issues?sort=last_seen'
    for _page in range(5):
        page = browser.get(path).text
        seen.extend(issue_ids(page))
        found = re.search(r'<a href="([^"]+)" rel="next">', page)
        if not found:
            break
        path = html.unescape(found.group(1))
        assert 'cursor=' in path and 'sort=' not in path  # default sort left out of the URL
    assert len(seen) == 60 and len(set(seen)) == 60
    assert 'First page' in browser.get(path).text


def test_bulk_actions_resolve_ignore_and_reopen(client, browser, web, owner):
    issues = seed_list(client, web)
    chosen = [issues['TypeError'].id, issues['RangeError'].id]
    listing = f'/projects/{web.id}/issues'
    browser.get(listing)
    result = browser.post('/issues/bulk', {'issue': chosen, 'action': 'resolve',
                                           'next': listing})
    assert result.status_code == 303
    assert result.headers['location'] == listing + '?notice=bulk'
    page = browser.get(result.headers['location']).text
    assert 'Issues updated.' in page
    assert set(issue_ids(page)) == {issues[t].id for t in
                                    ('SyntaxError', 'ReferenceError', 'EvalError')}
    resolved = issue_ids(browser.get(urls.project_issues(web.id, status='resolved')).text)
    assert set(resolved) == set(chosen)
    activity = query(IssueActivity, IssueActivity.kind == 'resolved')
    assert {a.issue_id for a in activity} == set(chosen)
    assert {a.user_id for a in activity} == {owner.id}
    browser.post('/issues/bulk', {'issue': [issues['EvalError'].id], 'action': 'ignore',
                                  'next': listing})
    assert issue_ids(browser.get(urls.project_issues(web.id, status='ignored')).text) == [
        issues['EvalError'].id]
    browser.post('/issues/bulk', {'issue': chosen, 'action': 'reopen', 'next': listing})
    assert len(issue_ids(browser.get(urls.project_issues(web.id, status='all')).text)) == 5
    assert len(issue_ids(browser.get(listing).text)) == 4
    # Another organization's issue in the form is left alone; a foreign next goes home.
    stranger = make_project('theirs', org_slug='other')
    send(client, event(stranger.key))
    (theirs,) = query(Issue, Issue.project == stranger.id)
    result = browser.post('/issues/bulk', {'issue': [theirs.id], 'action': 'resolve',
                                           'next': 'https://evil.example/'})
    assert result.headers['location'] == '/?notice=bulk'
    assert query(Issue, Issue.id == theirs.id)[0].status == 'unresolved'


def test_org_list_spans_projects_and_filters_by_one(client, browser, web):
    api = make_project('api')
    send(client, event(web.key), event(api.key, exception={
        'type': 'KeyError', 'message': 'x', 'stack': 'KeyError: x\n    at k (https://a/k.js:1:1)'}))
    page = browser.get('/orgs/acme/issues').text
    assert len(issue_ids(page)) == 2
    assert '<span class="project-name">web</span>' in page
    assert '<span class="project-name">api</span>' in page
    only = browser.get(urls.org_issues('acme', project=api.id)).text
    assert len(issue_ids(only)) == 1 and 'KeyError' in only
    assert browser.get('/', expect=303).headers['location'] == '/orgs/acme/issues'


# -- the issue page --------------------------------------------------------------------------


def seed_detail(client, project):
    now = times.utcnow()
    stack = ('TypeError: Cannot read properties of undefined (reading \'id\')\n'
             '    at renderInvoice (https://app.example/static/app.min.js:1:4242)\n'
             '    at Array.map (<anonymous>)\n'
             '    at InvoiceList (https://app.example/static/app.min.js:1:999)')
    events = []
    for n, (release, env, user) in enumerate([('v1.0.0', 'production', 'u1'),
                                              ('v1.0.0', 'staging', 'u2'),
                                              ('v1.1.0', 'production', 'u1')]):
        events.append(event(
            project.key, release=release, environment=env,
            timestamp=iso(now - datetime.timedelta(minutes=10 - n)),
            url='https://app.example/invoices?page=2',
            user_agent='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
                       'Chrome/124.0.0.0 Safari/537.36',
            exception={'type': 'TypeError', 'message': "Cannot read properties of undefined "
                       "(reading 'id')", 'stack': stack},
            user={'id': user, 'email': f'{user}@customer.example'},
            account={'id': 'acct_1', 'name': 'Customer One'},
            session_id=f'sess_{n}', window_id=f'win_{n}',
            breadcrumbs=[{'timestamp': 1736938195000, 'category': 'navigation',
                          'message': 'Navigated to /invoices', 'level': 'info'},
                         {'timestamp': 1736938198000, 'category': 'xhr',
                          'message': f'GET /api/invoices [500] #{n}', 'level': 'error',
                          'data': {'status_code': 500}}],
            extra={'component': 'InvoiceList', 'attempt': n},
            tags={'feature': 'billing'}))
    ids = send(client, *events)
    with db.database.connection_context():
        issue = Issue.get()
        rows = list(Event.select().order_by(Event.id))
    return issue, rows, ids


def test_issue_page_shows_the_latest_event_and_its_aggregates(client, browser, web):
    issue, rows, ids = seed_detail(client, web)
    page = browser.get(f'/issues/{issue.id}').text
    assert '<strong>TypeError</strong>: Cannot read properties of undefined' in page
    assert 'renderInvoice in app.min.js' in page
    assert 'Latest event' in page and ids[-1] in page
    # Stack: function, file, line:column, frame by frame, top first.
    frames = re.findall(r'<span class="fn">([^<]+)</span>', page)
    assert frames == ['renderInvoice', 'Array.map', 'InvoiceList']
    assert 'https://app.example/static/app.min.js</span>' in page and 'line 1:4242' in page
    # Breadcrumbs as a timeline, with data.
    assert 'Navigated to /invoices' in page and 'GET /api/invoices [500] #2' in page
    assert '10:49:55.000' in page  # 1736938195000 ms
    assert '&#34;status_code&#34;: 500' in page
    # Context: user, account, url (an http link), agent parsed, ids, extra as JSON.
    assert 'u1@customer.example' in page and 'Customer One' in page
    assert ('<a href="https://app.example/invoices?page=2" rel="noopener noreferrer nofollow"'
            in page)
    assert 'Chrome 124 on Linux' in page
    assert 'sess_2' in page and 'win_2' in page
    assert '&#34;component&#34;: &#34;InvoiceList&#34;' in page
    # Header counts, releases, chart and distributions from the aggregates.
    assert re.search(r'<dt>Events</dt><dd>3</dd>', page)
    assert re.search(r'<dt>Users</dt><dd>2</dd>', page)
    assert re.search(r'<dt>Accounts</dt><dd>1</dd>', page)
    assert 'v1.0.0</span></dd></div>' in page and 'v1.1.0</span></dd></div>' in page
    assert page.count('<rect') >= 24  # 24 hourly bars
    assert re.search(r'title="production">production</span><span class="share-pct">66.7%', page)
    assert re.search(r'title="staging">staging</span><span class="share-pct">33.3%', page)
    assert '<h3>Browser</h3>' in page and '<h3>OS</h3>' in page and '<h3>URL</h3>' in page
    assert '<h3>feature</h3>' in page and 'title="billing"' in page  # the SDK's own tag
    assert 'Created' in page or 'created' in page
    # Older/newer navigation between the events of the issue.
    older = re.search(r'<a href="(/issues/\d+/events/(\d+))" rel="prev">', page)
    assert int(older.group(2)) == rows[1].id
    middle = browser.get(older.group(1)).text
    assert ids[1] in middle and 'sess_1' in middle and 'staging' in middle
    assert f'/issues/{issue.id}/events/{rows[2].id}" rel="next"' in middle
    assert f'/issues/{issue.id}/events/{rows[0].id}" title="oldest event"' in middle
    # The raw JSON of the event.
    result = browser.get(f'/issues/{issue.id}/events/{rows[0].id}/json')
    assert result.headers['content-type'].startswith('application/json')
    assert result.json['event_id'] == ids[0] and result.json['extra']['attempt'] == 0
    # An event of another issue is not shown under this one.
    browser.get(f'/issues/{issue.id + 1}/events/{rows[0].id}', expect=404)
    # 30-day chart
    assert browser.get(f'/issues/{issue.id}?chart=30d').text.count('<rect') >= 30


def test_issue_tabs_events_users_accounts(client, browser, web):
    issue, rows, ids = seed_detail(client, web)
    events = browser.get(f'/issues/{issue.id}/events').text
    assert [m for m in re.findall(r'/issues/\d+/events/(\d+)"', events)] == [
        str(r.id) for r in reversed(rows)]
    assert "Cannot read properties of undefined (reading &#39;id&#39;)" in events
    users = browser.get(f'/issues/{issue.id}/users').text
    assert '<td>u1</td><td>u1@customer.example</td>' in users
    assert re.search(r'<td>u1</td><td>u1@customer.example</td>\s*<td class="num">2</td>', users)
    accounts = browser.get(f'/issues/{issue.id}/accounts').text
    assert re.search(r'<td>acct_1</td><td>Customer One</td>\s*<td class="num">3</td>', accounts)


def test_issues_with_many_people_rank_those_of_their_newest_events(client, browser, web,
                                                                     monkeypatch):
    """Past RANK_LIMIT users an issue's page ranks the users of its newest events (by their
    counts) instead of reading every user row."""
    from proliferate.web import issues
    issue, _rows, _ids = seed_detail(client, web)
    send(client, event(web.key, user={'id': 'u3'}, exception={
        'type': 'TypeError', 'message': "Cannot read properties of undefined (reading 'id')",
        'stack': 'TypeError: x\n    at renderInvoice (https://app.example/static/app.min.js:1:1)\n'
                 '    at Array.map (<anonymous>)\n'
                 '    at InvoiceList (https://app.example/static/app.min.js:1:2)'}))
    monkeypatch.setattr(issues, 'RANK_LIMIT', 2)
    monkeypatch.setattr(issues, 'RECENT_SIDE', 2)  # the newest two: u3, then u1
    page = browser.get(f'/issues/{issue.id}').text
    assert 'Most affected among the latest 2 events:' in page
    side = page[page.index('<h3>Users'):page.index('<h3>Accounts')]
    assert re.findall(r'<td class="ellipsis"[^>]*>(u\d)', side) == ['u1', 'u3']  # by events
    users = browser.get(f'/issues/{issue.id}/users').text
    assert '3 users: too many to rank on every view' in users
    # The newest 300 events cover all three here: u1 has two events, then u2 and u3 in order.
    assert re.findall(r'<tr>\s*<td>(u\d)</td>', users) == ['u1', 'u2', 'u3']
    accounts = browser.get(f'/issues/{issue.id}/accounts').text  # 1 account: ranked
    assert 'too many to rank' not in accounts and 'Customer One' in accounts


def test_events_tab_pages_by_id(client, browser, web):
    ids = send(client, *[event(web.key) for _ in range(30)])
    (issue,) = query(Issue)
    first = browser.get(f'/issues/{issue.id}/events').text
    shown = re.findall(r'<code>([0-9a-f]{17})…</code>', first)
    assert len(shown) == 25
    older = html.unescape(re.search(r'<a href="([^"]+)" rel="next">Older', first).group(1))
    second = browser.get(older).text
    assert len(re.findall(r'<code>([0-9a-f]{17})…</code>', second)) == 5
    assert 'Older ›' not in second and 'rel="prev">‹ Newer' in second
    newer = html.unescape(re.search(r'<a href="([^"]+)" rel="prev">', second).group(1))
    assert re.findall(r'<code>([0-9a-f]{17})…</code>', browser.get(newer).text) == shown
    assert len(ids) == 30


def test_status_actions_and_regression(client, browser, web, owner):
    issue, _rows, _ids = seed_detail(client, web)
    page = browser.get(f'/issues/{issue.id}').text
    result = browser.post(f'/issues/{issue.id}/status', {'status': 'resolved',
                                                         'next': f'/issues/{issue.id}'})
    assert result.headers['location'] == f'/issues/{issue.id}?notice=resolved'
    page = browser.get(result.headers['location']).text
    assert 'Issue resolved.' in page and 'status-resolved' in page
    assert 'Reopen' in page and '>Resolve<' not in page
    assert issue_ids(browser.get(f'/projects/{web.id}/issues').text) == []
    # A new event of a resolved issue: it comes back, regressed in the release that sent it.
    send(client, event(web.key, release='v2.0.0', exception={
        'type': 'TypeError', 'message': "Cannot read properties of undefined (reading 'id')",
        'stack': 'TypeError: x\n    at renderInvoice (https://app.example/static/app.min.js:1:1)\n'
                 '    at Array.map (<anonymous>)\n'
                 '    at InvoiceList (https://app.example/static/app.min.js:1:2)'}))
    listing = browser.get(f'/projects/{web.id}/issues').text
    assert issue_ids(listing) == [issue.id]
    assert 'regressed in v2.0.0' in listing
    page = browser.get(f'/issues/{issue.id}').text
    assert 'regressed in v2.0.0' in page
    assert re.search(r'activity-regressed">regressed</span>\s*<span class="muted">in</span> '
                     r'<span class="release">v2.0.0</span>', page)
    assert re.search(r'activity-resolved">resolved</span>\s*by owner@example.com', page)
    assert browser.get(urls.project_issues(web.id, query='is:regressed')).text.count(
        'class="issue-title"') == 1
    browser.post(f'/issues/{issue.id}/status', {'status': 'ignored'})
    assert query(Issue)[0].status == 'ignored'
    browser.get(f'/issues/{issue.id}')
    assert browser.post(f'/issues/{issue.id}/status', {'status': 'bogus'}).status_code == 400


def test_source_mapped_frames_render_with_a_raw_toggle(client, browser, web):
    """Frames the source-map resolver rewrote: original file, line, context; raw on demand."""
    send(client, event(web.key))
    (issue,) = query(Issue)
    raw_frame = {'function': 'a', 'abs_path': 'https://x.example/app.min.js', 'filename':
                 'app.min.js', 'lineno': 1, 'colno': 4242, 'raw': 'at a (app.min.js:1:4242)'}
    frames = [
        {'function': 'renderInvoice', 'abs_path': 'webpack:///src/Invoice.tsx',
         'filename': 'Invoice.tsx', 'lineno': 41, 'colno': 17, 'resolved': True,
         'pre_context': ['function renderInvoice(invoice) {', '  const total = sum(invoice);'],
         'context_line': '  return invoice.customer.id;',
         'post_context': ['}'], 'raw_frame': raw_frame},
        {'function': 'b', 'abs_path': 'https://cdn.example/vendor.js', 'filename': 'vendor.js',
         'lineno': 3, 'colno': 9, 'resolved': False, 'unresolved_reason': 'no_match'},
    ]
    stored = {'event_id': 'mapped-1', 'timestamp': '2026-01-01T00:00:00.000000Z',
              'type': 'exception', 'level': 'error', 'exception': {
                  'type': 'TypeError', 'message': 'x', 'stack': 'TypeError: x'},
              'frames': frames, 'breadcrumbs': []}
    with db.database.connection_context():
        with db.database.atomic():
            row = Event.create(project=web.id, issue=issue.id, event_id='mapped-1',
                               timestamp=times.utcnow(), received_at=times.utcnow(),
                               data=encode_event(stored))
    page = browser.get(f'/issues/{issue.id}/events/{row.id}').text
    assert 'webpack:///src/Invoice.tsx' in page and 'line 41:17' in page
    assert '<ol class="context" start="39">' in page
    assert '<li class="current"><code>  return invoice.customer.id;</code></li>' in page
    assert 'badge-mapped' in page and 'no source map for this file' in page
    assert 'data-frames="raw" hidden' in page  # raw frames present, shown on demand
    raw = browser.get(f'/issues/{issue.id}/events/{row.id}?frames=raw').text
    original = raw[raw.index('data-frames="original"'):raw.index('data-frames="raw"')]
    shown_raw = raw[raw.index('data-frames="raw"'):]
    assert 'hidden' in original[:40]
    assert 'app.min.js' in shown_raw and 'line 1:4242' in shown_raw
    assert 'Invoice.tsx' not in shown_raw.split('</ol>')[0]
    assert f'href="/issues/{issue.id}/events/{row.id}?frames=raw"' in page


# -- safety ----------------------------------------------------------------------------------


def hostile_event(key):
    h = HOSTILE
    return event(
        key, environment=h, release=h, url='javascript:alert(3)//' + h, user_agent=h,
        level='error', session_id=h, window_id=h, platform=h, trace_id=h,
        exception={'type': h, 'message': h, 'stack': h + '\n    at ' + h + ' (' + h + ':1:2)',
                   'mechanism': {h: h}},
        user={'id': h, 'email': h, 'username': h, 'name': h, 'ip_address': h, h: h},
        account={'id': h, 'name': h, h: h},
        breadcrumbs=[{'timestamp': h, 'category': h, 'message': h, 'level': h, 'type': h,
                      'data': {h: h}}],
        extra={h: h, 'nested': {h: [h]}}, tags={'t': h, h: 'x'})


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer sees them."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.script_text = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == 'script'

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text.append(data)


def assert_safe(page_html):
    """No markup from an event: no tag, event handler, javascript: URL or inline script that
    our templates did not write."""
    parsed = Tags(page_html)
    names = {tag for tag, _attrs in parsed.tags}
    assert 'img' not in names and 'iframe' not in names and 'object' not in names
    for tag, attrs in parsed.tags:
        assert not [a for a in attrs if a.startswith('on')], (tag, attrs)
        assert 'style' not in attrs, (tag, attrs)  # inline styles: blocked by the CSP anyway
        for name in ('href', 'src', 'action', 'formaction'):
            value = (attrs.get(name) or '').strip().lower()
            assert not value.startswith(('javascript:', 'data:', 'vbscript:')), (tag, attrs)
        if tag == 'script':
            assert attrs.get('src', '').startswith('/static/'), attrs
    assert ''.join(parsed.script_text).strip() == ''  # no inline script (CSP: script-src 'self')
    assert '<script>alert' not in page_html


def test_a_hostile_event_is_escaped_everywhere(client, browser, web):
    send(client, hostile_event(web.key))
    (issue,) = query(Issue)
    (row,) = query(Event)
    pages = [f'/projects/{web.id}/issues', '/orgs/acme/issues', f'/issues/{issue.id}',
             f'/issues/{issue.id}/events/{row.id}', f'/issues/{issue.id}/events',
             f'/issues/{issue.id}/users', f'/issues/{issue.id}/accounts',
             f'/issues/{issue.id}?frames=raw', f'/projects/{web.id}/issues?environment='
             + urllib.request.quote(HOSTILE)]
    for path in pages:
        page = browser.get(path).text
        assert_safe(page)
    detail = browser.get(f'/issues/{issue.id}').text
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in detail
    assert detail.count('&lt;script&gt;alert(1)&lt;/script&gt;') > 15
    # The javascript: URL is shown as text, never linked.
    assert '<dt>URL</dt><dd class="break">javascript:alert(3)//&lt;script&gt;' in detail
    listing = browser.get(f'/projects/{web.id}/issues').text
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in listing
    # Served raw as JSON, with nosniff: the browser will not run it as a page.
    result = browser.get(f'/issues/{issue.id}/events/{row.id}/json')
    assert result.headers['x-content-type-options'] == 'nosniff'
    assert result.headers['content-type'].startswith('application/json')


def test_url_linking_allows_only_http():
    assert templating.http_url('https://example.com/a?b=1') == 'https://example.com/a?b=1'
    assert templating.http_url('HTTP://EXAMPLE.COM') == 'HTTP://EXAMPLE.COM'
    for bad in ('javascript:alert(1)', ' javascript:alert(1)', 'JaVaScRiPt:x', 'data:text/html,x',
                'vbscript:x', '//example.com', '/relative', 'https://', 'http://a b',
                'https://x.example/\x00', 'java\tscript:x', None, 42):
        assert templating.http_url(bad) == '', bad


def test_every_page_sends_csp_and_has_no_inline_script(client, browser, web):
    issue, rows, _ids = seed_detail(client, web)
    paths = ['/orgs/acme/issues', f'/projects/{web.id}/issues', f'/issues/{issue.id}',
             f'/issues/{issue.id}/events', f'/issues/{issue.id}/users',
             f'/issues/{issue.id}/accounts', '/orgs/acme/projects', '/orgs/acme/members',
             f'/projects/{web.id}/settings', f'/projects/{web.id}/delete', '/tokens', '/account']
    for path in paths:
        result = browser.get(path)
        csp = result.headers['content-security-policy']
        assert "script-src 'self'" in csp and "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert result.headers['x-content-type-options'] == 'nosniff'
        assert result.headers['cache-control'] == 'no-store'
        assert_safe(result.text)
        assert '<script src="/static/app.js?v=' in result.text
    anonymous = PageClient(client)
    for path in ('/login', '/nope', f'/issues/{issue.id}'):
        result = anonymous.get(path, expect=None)
        assert "script-src 'self'" in result.headers['content-security-policy'], path


def test_pages_read_aggregates_and_never_count_events(client, browser, web, caplog):
    """The list reads issue rows and hourly buckets only; the issue page reads events by primary
    key or through the (issue_id, id) index, one row at a time. Checked on the SQL they run."""
    issue, _rows, _ids = seed_detail(client, web)
    caplog.set_level(logging.DEBUG, logger='peewee')

    def statements(path):
        caplog.clear()
        browser.get(path)
        return [str(r.msg[0]) if isinstance(r.msg, tuple) else str(r.msg) for r in caplog.records
                if r.name == 'peewee']

    for path in (f'/projects/{web.id}/issues', '/orgs/acme/issues?sort=events',
                 f'/projects/{web.id}/issues?query=user:u1&environment=production'):
        sql = statements(path)
        assert sql, 'no SQL captured'
        assert not [s for s in sql if '"event"' in s], path
        # The one count: the people of a filtered row, over the writer's issue_slice_person
        # index and bounded by its LIMIT.
        assert not [s for s in sql if 'COUNT(' in s.upper()
                    and not ('issue_slice_person' in s and 'LIMIT' in s.upper())], path
    # A one-word search may be a pasted event id: one probe of the unique (project, event_id)
    # index, and nothing else on events.
    sql = statements(f'/projects/{web.id}/issues?query=renderInvoice')
    (probe,) = [s for s in sql if '"event"' in s]
    param = db.database.param  # '?' on SQLite, '%s' on PostgreSQL
    assert f'"event_id" = {param}' in probe and 'LIMIT' in probe.upper()
    for path in (f'/issues/{issue.id}', f'/issues/{issue.id}/events'):
        sql = statements(path)
        on_events = [s for s in sql if 'FROM "event"' in s]
        assert on_events, path
        for statement in on_events:
            assert 'COUNT(' not in statement.upper()
            assert 'LIMIT' in statement.upper()
            assert f'"issue_id" = {param}' in statement or f'"id" = {param}' in statement, statement


# -- access ----------------------------------------------------------------------------------


def test_signed_out_visitors_go_to_login(client, owner, web):
    send(client, event(web.key))
    (issue,) = query(Issue)
    anonymous = PageClient(client)
    for path in ('/orgs/acme/issues', f'/issues/{issue.id}', f'/projects/{web.id}/settings',
                 '/tokens', f'/issues/{issue.id}/events/1/json'):
        location = anonymous.get(path, expect=303).headers['location']
        assert location.startswith('/login?next='), path


def test_other_organizations_stay_invisible(client, browser, web):
    stranger = make_project('theirs', org_slug='other')
    send(client, event(stranger.key, environment='their-secret-env', release='their-v9'))
    send(client, event(web.key, environment='ours'))
    listing = browser.get('/orgs/acme/issues').text
    assert '>ours</option>' in listing
    assert 'their-secret-env' not in listing and 'their-v9' not in listing
    (issue,) = query(Issue, Issue.project == stranger.id)
    (row,) = query(Event, Event.project == stranger.id)
    for path in (f'/issues/{issue.id}', f'/issues/{issue.id}/events',
                 f'/issues/{issue.id}/events/{row.id}/json', f'/projects/{stranger.id}/issues',
                 f'/projects/{stranger.id}/settings', '/orgs/other/issues',
                 '/orgs/other/members'):
        browser.get(path, expect=404)
    browser.get('/orgs/acme/projects')
    assert browser.post(f'/issues/{issue.id}/status', {'status': 'resolved'}).status_code == 404
    assert browser.post(f'/projects/{stranger.id}/keys', {'label': 'x'}).status_code == 404
    assert query(Issue, Issue.id == issue.id)[0].status == 'unresolved'


def test_errors_are_html_for_pages_and_json_for_the_api(client, browser):
    result = browser.get('/no/such/page', expect=404)
    assert result.headers['content-type'].startswith('text/html')
    assert '<h1>404 Not Found</h1>' in result.text
    result = client.simulate_get('/api/v1/no/such/thing')
    assert result.status_code == 404 and result.headers['content-type'] == 'application/json'
    assert 'detail' in result.json
    result = client.simulate_post('/api/v1/errors', json=event('pk_wrong'))
    assert result.status_code == 401 and result.json == {'detail': 'Invalid API key'}
    result = client.simulate_post('/v1/errors', json=event('pk_wrong'))
    assert result.json == {'detail': 'Invalid API key'}


def test_url_functions_build_paths_their_routes_accept(client, browser, web):
    """urls.py is the one place page URLs are made: every row of the one route table has a
    builder of its name, and the path it builds matches the row's template."""
    samples = {'token_revoke': (3,), 'invite': ('inv_x',), 'org_issues': ('acme',),
               'org_projects': ('acme',), 'org_members': ('acme',), 'member': ('acme', 2),
               'org_invites': ('acme',), 'invite_revoke': ('acme', 4),
               'project_issues': (5,), 'project_settings': (5,), 'project_delete': (5,),
               'project_keys': (5,), 'key_revoke': (5, 6), 'upload_tokens': (5,),
               'upload_token_revoke': (5, 6), 'issue': (7,), 'issue_status': (7,),
               'issue_merge': (7,), 'issue_unmerge': (7,), 'issues_bulk_undo': (7,), 'saved_searches': ('acme',),
               'saved_search_delete': (7,),
               'issue_events': (7,), 'issue_event': (7, 8), 'event_json': (7, 8),
               'issue_users': (7,), 'issue_accounts': (7,), 'org_notifications': ('acme',),
               'notifications_me': ('acme',), 'notifications_test': ('acme',),
               'webhooks': ('acme',), 'webhook': ('acme', 9), 'deliveries': ('acme',),
               'project_releases': (5,), 'release': (5, 10), 'release_version': (5, 'a/b'), 'issue_assign': (7,),
               'issue_comments': (7,), 'comment_edit': (11,), 'comment_delete': (11,)}
    for name, template, _resource, _suffix in routes.ROUTES:
        built = getattr(urls, name)(*samples.get(name, ()))
        pattern = re.sub(r'\{[a-z_]+:int\}', r'\\d+', re.sub(r'\{[a-z_]+\}', '[^/]+', template))
        assert re.fullmatch(pattern, built.split('?')[0]), (name, built)
    assert urls.with_notice('/a?notice=x&b=1', 'bulk') == '/a?b=1&notice=bulk'
    assert urls.project_issues(1, status=None, query='a b') == '/projects/1/issues?query=a+b'


# -- settings --------------------------------------------------------------------------------


def test_projects_create_rename_and_delete(client, browser, web):
    browser.get('/orgs/acme/projects')
    result = browser.post('/orgs/acme/projects', {'name': 'Checkout Service'})
    assert result.status_code == 303
    (project,) = query(Project, Project.name == 'Checkout Service')
    assert result.headers['location'] == f'/projects/{project.id}/settings?welcome=1'
    assert project.slug == 'checkout-service'
    assert browser.post('/orgs/acme/projects', {'name': ''}).status_code == 400
    page = browser.get(f'/projects/{project.id}/settings').text
    key = re.search(r'id="ingest-key">(pk_[0-9a-f]+)<', page).group(1)
    send(client, event(key), event(key))
    listing = browser.get('/orgs/acme/projects').text
    assert 'Checkout Service' in listing and re.search(r'<td class="num">1</td>', listing)

    result = browser.post(f'/projects/{project.id}/settings',
                          {'name': 'Checkout', 'rate_limit_per_minute': '120'})
    assert result.headers['location'] == f'/projects/{project.id}/settings?notice=project_saved'
    saved = query(Project, Project.id == project.id)[0]
    assert (saved.name, saved.rate_limit_per_minute) == ('Checkout', 120)
    browser.get(f'/projects/{project.id}/settings')
    assert browser.post(f'/projects/{project.id}/settings',
                        {'name': 'x', 'rate_limit_per_minute': '-3'}).status_code == 400
    browser.post(f'/projects/{project.id}/settings', {'name': 'Checkout',
                                                      'rate_limit_per_minute': ''})
    assert query(Project, Project.id == project.id)[0].rate_limit_per_minute is None

    page = browser.get(f'/projects/{project.id}/delete').text
    assert 'Type <strong>Checkout</strong> to confirm' in page
    assert browser.post(f'/projects/{project.id}/delete', {'confirm': 'checkout'}
                        ).status_code == 400
    result = browser.post(f'/projects/{project.id}/delete', {'confirm': 'Checkout'})
    assert result.headers['location'] == '/orgs/acme/projects?notice=project_deleted'
    assert query(Project, Project.id == project.id) == []
    assert query(Issue, Issue.project == project.id) == []
    assert query(Event, Event.project == project.id) == []
    assert client.simulate_post('/api/v1/errors', json=event(key)).status_code == 401
    assert len(query(Issue)) == 0 and len(query(Project)) == 1  # web is untouched


def test_keys_create_revoke_and_stop_working_at_once(client, browser, web):
    page = browser.get(f'/projects/{web.id}/settings').text
    assert web.key in page
    browser.post(f'/projects/{web.id}/keys', {'label': 'mobile <app>'})
    keys = query(ProjectKey, ProjectKey.project == web.id)
    new = [k for k in keys if k.key != web.key][0]
    page = browser.get(f'/projects/{web.id}/settings?key={new.id}').text
    assert new.key in snippet(page, 'snippet-curl') and 'mobile &lt;app&gt;' in page
    # The key works (and is now in the ingest key cache)...
    assert client.simulate_post('/api/v1/errors', json=event(new.key)).status_code == 202
    result = browser.post(f'/projects/{web.id}/keys/{new.id}/revoke')
    assert result.headers['location'] == f'/projects/{web.id}/settings?notice=key_revoked'
    # ...and is refused right after the revoke, cache or not.
    result = client.simulate_post('/api/v1/errors', json=event(new.key))
    assert result.status_code == 401
    page = browser.get(f'/projects/{web.id}/settings').text
    assert 'class="revoked"' in page
    assert client.simulate_post('/api/v1/errors', json=event(web.key)).status_code == 202


def test_dropped_counts_show_on_the_project_page(client, browser, web):
    duplicate = event(web.key)
    send(client, duplicate)
    result = client.simulate_post('/api/v1/errors/batch', json=[duplicate, duplicate])
    assert [r['status'] for r in result.json['results']] == ['duplicate', 'duplicate']
    with db.database.connection_context():
        assert DroppedCount.get(DroppedCount.reason == 'duplicate').count == 2
    page = browser.get(f'/projects/{web.id}/settings').text
    assert re.search(r'<code>duplicate</code> <span class="muted small">[^<]*</span></td>'
                     r'<td class="num">2</td>', page)


def test_read_tokens_are_shown_once_and_revocable(client, browser, owner, web):
    browser.get('/tokens')
    result = browser.post('/tokens', {'name': 'weekly <report>'})
    assert result.status_code == 200
    token = re.search(r'id="new-token" class="key">(prt_[^<]+)<', result.text).group(1)
    assert 'weekly &lt;report&gt;' in result.text
    assert result.headers['cache-control'] == 'no-store'
    bearer = {'Authorization': f'Bearer {token}'}
    assert client.simulate_get('/api/v1/projects', headers=bearer).json['projects'][0]['id'] == \
        web.id
    again = browser.get('/tokens').text
    assert token not in again and token[:10] + '…' in again  # only the prefix from now on
    (row,) = query(ApiToken)
    assert row.token_hash != token and row.user_id == owner.id
    result = browser.post(f'/tokens/{row.id}/revoke')
    assert result.headers['location'] == '/tokens?notice=token_revoked'
    assert client.simulate_get('/api/v1/projects', headers=bearer).status_code == 401
    browser.get('/tokens')
    assert browser.post(f'/tokens/{row.id}/revoke').status_code == 404


def test_invites_roles_and_the_last_owner(client, browser, owner, web):
    browser.get('/orgs/acme/members')
    result = browser.post('/orgs/acme/invites', {'role': 'member', 'email': 'bo@example.com'})
    link = re.search(r'id="invite-link" class="key">([^<]+)<', result.text).group(1)
    path = link.split('falconframework.org', 1)[1]
    assert path.startswith('/invite/inv_')
    newcomer = PageClient(client)
    page = newcomer.get(path).text
    assert 'Join Acme' in page and 'value="bo@example.com"' in page
    result = newcomer.post(path, {'email': 'bo@example.com', 'name': 'Bo',
                                  'password': PASSWORD, 'password_confirm': PASSWORD})
    assert result.headers['location'] == '/orgs/acme/issues?notice=joined'
    assert 'Welcome! You are now a member.' in newcomer.get(result.headers['location']).text
    newcomer.get(path, expect=404)  # used up
    bo = members()['bo@example.com']
    assert bo.role == 'member'
    # A member triages but does not manage.
    newcomer.get('/orgs/acme/projects')
    assert newcomer.post('/orgs/acme/projects', {'name': 'nope'}).status_code == 403
    assert newcomer.post('/orgs/acme/invites', {'role': 'owner'}).status_code == 403
    assert newcomer.post(f'/projects/{web.id}/keys', {'label': 'x'}).status_code == 403
    assert 'Create invite link' not in newcomer.get('/orgs/acme/members').text
    # The owner makes Bo an admin; an admin may not create owners.
    browser.get('/orgs/acme/members')
    browser.post(f'/orgs/acme/members/{bo.id}', {'action': 'role', 'role': 'admin'})
    assert query(Membership, Membership.id == bo.id)[0].role == 'admin'
    newcomer.get('/orgs/acme/members')
    result = newcomer.post('/orgs/acme/invites', {'role': 'owner'})
    assert result.status_code == 400 and 'Choose a role you may give' in result.text
    me = members()[owner.email]
    result = newcomer.post(f'/orgs/acme/members/{me.id}', {'action': 'remove'})
    assert result.status_code == 400 and 'Only an owner' in result.text
    # Nobody demotes or removes the last owner, not even the owner.
    browser.get('/orgs/acme/members')
    result = browser.post(f'/orgs/acme/members/{me.id}', {'action': 'role', 'role': 'member'})
    assert result.status_code == 400 and 'at least one owner' in result.text
    # An existing user joins while signed in; a revoked invite stops working.
    result = browser.post('/orgs/acme/invites', {'role': 'member'})
    second = re.search(r'/invite/(inv_[^<"]+)', result.text).group(0)
    (invite_row,) = query(Invite, Invite.accepted_at.is_null())
    browser.post(f'/orgs/acme/invites/{invite_row.id}/revoke')
    newcomer.get(second, expect=404)
    # Removing a member ends their access.
    browser.post(f'/orgs/acme/members/{bo.id}', {'action': 'remove'})
    newcomer.get('/orgs/acme/issues', expect=404)


def test_account_name_password_and_other_sessions(client, browser, owner):
    elsewhere = PageClient(client)
    elsewhere.login(owner.email)
    browser.get('/account')
    browser.post('/account', {'action': 'profile', 'name': 'Olivia <O>'})
    assert 'Olivia &lt;O&gt;' in browser.get('/account').text
    result = browser.post('/account', {'action': 'password', 'current_password': 'wrong',
                                       'password': 'new password 1',
                                       'password_confirm': 'new password 1'})
    assert result.status_code == 400 and 'current password is wrong' in result.text
    result = browser.post('/account', {'action': 'password', 'current_password': PASSWORD,
                                       'password': 'new password 1',
                                       'password_confirm': 'new password 1'})
    assert result.headers['location'] == '/account?notice=password_changed'
    browser.get('/orgs/acme/issues')  # this session lives on
    elsewhere.get('/orgs/acme/issues', expect=303)  # the other one was signed out
    fresh = PageClient(client)
    fresh.login(owner.email, 'new password 1')


@pytest.mark.slow
def test_the_page_benchmark_builds_a_consistent_database(tmp_path):
    """bench/pages_bench.py at a small size: the aggregates it writes agree with its events, and
    every page it times answers 200 (the timing itself is the benchmark's business)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'bench'))
    import pages_bench
    from peewee import fn

    from proliferate.models import IssueHourly
    from proliferate.models import IssueTag
    from proliferate.models import IssueUser

    path = tmp_path / 'bench.db'
    pages_bench.build(path, events_total=3000, issues_total=60, log=lambda *a: None)
    facts, results = pages_bench.measure(path, requests=2, log=lambda *a: None)
    assert facts['events'] == 3000 and len(facts['issues']) == 60
    assert len(results) == len(pages_bench.scenarios(facts, random.Random(1)))
    with db.database.connection_context():
        assert Issue.select(fn.SUM(Issue.event_count)).scalar() == 3000
        assert IssueHourly.select(fn.SUM(IssueHourly.event_count)).scalar() == 3000
        for key in ('environment', 'release', 'browser', 'os', 'url'):
            assert IssueTag.select(fn.SUM(IssueTag.event_count)).where(
                IssueTag.key == key).scalar() == 3000
        biggest = Issue.get_by_id(facts['biggest'])
        assert biggest.user_count == IssueUser.select().where(
            IssueUser.issue == biggest.id).count()
        assert Event.select().where(Event.issue == biggest.id).count() == biggest.event_count
        assert Event.get_by_id(biggest.last_event).issue_id == biggest.id
    db.database.close()
    assert pages_bench.zipf_counts(1000, 10)[0] > 300 and sum(pages_bench.zipf_counts(
        1000, 10)) == 1000
    assert pages_bench.percentile([5, 1, 4, 2, 3], 95) == 5
