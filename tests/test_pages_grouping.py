"""The issue pages and grouping version 2: library frames folded (without JavaScript), every
exception of a chain, why the events are together, merge and unmerge from the list and the
issue page, and a project's own in-app and library patterns in its settings."""

import re

from factories import event
from factories import make_project
from pageclient import send

from proliferate import db
from proliferate.models import Issue
from proliferate.models import IssueActivity
from proliferate.models import Project

CHAINED = '''Traceback (most recent call last):
  File "/srv/shop/app/prices.py", line 12, in fetch_prices
    response = requests.get(PRICES_URL, timeout=5)
  File "/srv/shop/venv/lib/python3.11/site-packages/requests/api.py", line 73, in get
    return request('get', url, params=params, **kwargs)
  File "/srv/shop/venv/lib/python3.11/site-packages/requests/adapters.py", line 519, in send
    raise ConnectionError(e, request=request)
requests.exceptions.ConnectionError: Max retries exceeded with url: /prices

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/shop/app/jobs.py", line 30, in nightly
    prices = load_prices(ids)
  File "/srv/shop/app/prices.py", line 20, in load_prices
    raise PricesUnavailable('price service down') from error
app.errors.PricesUnavailable: price service down
'''


def issues_of(project_id):
    with db.database.connection_context():
        return list(Issue.select().where(Issue.project == project_id).order_by(Issue.id))


def text_of(page_html):
    return re.sub(r'\s+', ' ', re.sub(r'<[^>]+>', ' ', page_html))


def test_chained_exceptions_folded_library_frames_and_the_reason(client, browser, web):
    send(client, event(web.key, exception={'stack': CHAINED}))
    [issue] = issues_of(web.id)
    assert issue.culprit == 'load_prices in prices.py'
    page = browser.get(f'/issues/{issue.id}').text
    # The raised exception, then its cause with its frames; the cause's two library frames
    # fold behind a <details> toggle.
    assert page.index('app.errors.PricesUnavailable') < page.index('Caused by')
    cause = page[page.index('Caused by'):]
    assert 'requests.exceptions.ConnectionError' in cause and 'fetch_prices' in cause
    assert re.search(r'<details><summary[^>]*>2 library frames</summary>', cause)
    # Why these events are together: the type and the frames of the key.
    reason = text_of(page[page.index('id="grouping"'):])
    assert 'The exception type PricesUnavailable and the top 2 frames' in reason
    assert 'load_prices in prices.py' in reason and 'nightly in jobs.py' in reason
    assert issue.fingerprint[:16] in reason


def test_a_stack_without_application_frames_is_shown_whole(client, browser, web):
    stack = ('TypeError: x is not a function\n'
             '    at f (https://x.example/node_modules/lib/index.js:1:10)\n'
             '    at g (https://x.example/node_modules/lib/index.js:2:20)')
    send(client, event(web.key, exception={'type': 'TypeError', 'stack': stack}))
    [issue] = issues_of(web.id)
    page = browser.get(f'/issues/{issue.id}').text
    assert 'library frame' not in page and 'node_modules/lib/index.js' in page


def test_merge_from_the_list_and_unmerge_from_the_issue_page(client, browser, web, owner):
    first = event(web.key, exception={'type': 'TypeError', 'message': 'a', 'stack':
                                      'TypeError: a\n    at one (https://x.example/a.js:1:1)'},
                  timestamp='2025-01-01T00:00:00Z')
    second = event(web.key, exception={'type': 'RangeError', 'message': 'b', 'stack':
                                       'RangeError: b\n    at two (https://x.example/b.js:1:1)'},
                   timestamp='2025-01-02T00:00:00Z')
    send(client, first, second)
    older, newer = issues_of(web.id)
    listing = f'/projects/{web.id}/issues'
    browser.get(listing)
    result = browser.post('/issues/bulk', {'issue': [older.id, newer.id], 'action': 'merge',
                                           'next': listing})
    assert result.status_code == 303 and result.headers['location'] == f'/issues/{older.id}'
    [merged] = issues_of(web.id)
    assert merged.id == older.id and merged.event_count == 2
    page = browser.get(f'/issues/{older.id}').text
    assert 'merged' in page and f'#{newer.id} RangeError: b' in page
    assert newer.fingerprint[:16] in page and 'Unmerge' in page
    # Unmerge from the page: the fingerprint leaves with its event; the new issue opens.
    result = browser.post(f'/issues/{older.id}/unmerge', {'fingerprint': newer.fingerprint})
    assert result.status_code == 303
    left, new = issues_of(web.id)
    assert result.headers['location'] == f'/issues/{new.id}'
    assert (left.event_count, new.event_count) == (1, 1)
    assert new.title == 'RangeError: b'
    # Merge again from the issue page, by number; a number of another project is refused.
    result = browser.post(f'/issues/{older.id}/merge', {'issues': f'#{new.id}'})
    assert result.status_code == 303
    assert [i.id for i in issues_of(web.id)] == [older.id]
    stranger = make_project('theirs', org_slug='other')
    send(client, event(stranger.key))
    [theirs] = issues_of(stranger.id)
    assert browser.post(f'/issues/{older.id}/merge', {'issues': str(theirs.id)}).status_code == 400
    with db.database.connection_context():
        kinds = [a.kind for a in IssueActivity.select().where(IssueActivity.issue == older.id)
                 .order_by(IssueActivity.id)]
        users = {a.user_id for a in IssueActivity.select().where(
            IssueActivity.issue == older.id, IssueActivity.kind != 'created')}
    # The merged issue's own log moves with it.
    assert kinds == ['created', 'created', 'merged', 'unmerged', 'unmerged', 'merged']
    assert users == {owner.id}


def widget_event(key, function):
    stack = (f'TypeError: bad\n    at {function} (https://cdn.example.com/widget.js:1:10)\n'
             '    at mount (https://shop.example.com/app.js:2:20)\n'
             '    at main (https://shop.example.com/app.js:9:1)')
    return event(key, exception={'type': 'TypeError', 'message': 'bad', 'stack': stack})


def test_project_patterns_are_previewed_then_saved_and_regroup(client, browser, web):
    send(client, widget_event(web.key, 'w1'), widget_event(web.key, 'w2'))
    assert len(issues_of(web.id)) == 2  # the CDN's frames count as application code
    settings = f'/projects/{web.id}/settings'
    browser.get(settings)
    fields = {'name': 'web', 'rate_limit_per_minute': '', 'in_app_patterns': '',
              'library_patterns': ' https://cdn.example.com/ ,, '}
    page = browser.post(settings, fields)
    assert page.status_code == 200
    text = text_of(page.text)
    assert 'newest 2 events (now in 2 issues)' in text
    assert '2 issues would merge into 1' in text and 'no issue would split' in text
    with db.database.connection_context():
        assert Project.get_by_id(web.id).library_patterns == ''  # not saved yet
    result = browser.post(settings, {**fields, 'confirm': 'grouping'})
    assert result.status_code == 303
    with db.database.connection_context():
        assert Project.get_by_id(web.id).library_patterns == 'https://cdn.example.com/'
    [issue] = issues_of(web.id)
    assert issue.event_count == 2
    # New events follow the patterns: into the same issue, blamed on the application.
    send(client, widget_event(web.key, 'w3'))
    [issue] = issues_of(web.id)
    assert issue.event_count == 3
    assert browser.get(f'/issues/{issue.id}').text.count('1 library frame<') == 1
