"""The release pages: every release a project's events named or that has source maps, newest
first, with events, new issues, regressions, issues resolved in it and maps; only for members,
hostile versions escaped; the read API's list; the issue page's "seen in releases" chart and
its resolved source."""

import datetime
import html
import re

import markupsafe
import pytest
from factories import FakeClock
from factories import event
from factories import iso
from factories import make_token
from factories import make_user
from pageclient import PageClient
from pageclient import send
from sourcemap_helpers import CDN
from sourcemap_helpers import make_upload_token
from sourcemap_helpers import map_bytes
from sourcemap_helpers import multipart
from sourcemap_helpers import source_line
from sourcemap_helpers import stacks
from test_pages_triage import status_post

from proliferate import db
from proliferate import times
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import Release
from proliferate.web import urls


def upload(client, token, release, url, data):
    body, headers = multipart({'release': release, 'url': url}, {'sourcemap': ('a.map', data)})
    result = client.simulate_post('/api/v1/sourcemaps', body=body,
                                  headers={**headers, 'Authorization': f'Bearer {token}'})
    assert result.status_code == 201, result.text
    return result.json


def ingest(client, key, stack, release):
    header, _, message = stack.split('\n', 1)[0].partition(': ')
    result = client.simulate_post('/api/v1/errors', json=event(
        key, event_id=f'{release}-{len(stack)}', release=release,
        exception={'type': header, 'message': message, 'stack': stack}))
    assert result.status_code == 202, result.text


def test_release_pages(client, project):
    make_user('dev@example.com')
    token = make_upload_token(project)
    upload(client, token, 'shop@1', CDN + 'app1.min.js', map_bytes(1))
    upload(client, token, 'shop@1', '~/static/js/other.min.js', map_bytes(2))
    hostile = '<script>alert(1)</script>'
    upload(client, token, hostile, '~/x.js', map_bytes(2))
    ingest(client, project.key, stacks(1)['checkout'], 'shop@1')

    browser = PageClient(client)
    # Signed out: the login page, not the list.
    assert browser.get(urls.project_releases(project.id), expect=303).headers[
        'location'].startswith('/login')
    browser.login('dev@example.com')
    page = browser.get(urls.project_releases(project.id)).text
    assert 'aria-current="page">Releases</a>' in page  # the project's tabs
    assert 'shop@1' in page
    assert hostile not in page and html.escape(hostile) in page
    with db.database.connection_context():
        release = Release.get(Release.version == 'shop@1')
    assert f'href="{html.escape(urls.release_version(project.id, "shop@1"))}"' in page
    detail = browser.get(urls.release_version(project.id, 'shop@1')).text
    # The older address of an uploaded release shows the same page.
    assert browser.get(urls.release(project.id, release.id)).text == detail
    assert html.escape(CDN + 'app1.min.js') in detail and '~/static/js/other.min.js' in detail
    # Build 1's checkout stack resolves 7 frames, all through app1's map.
    assert '<td class="num">7</td>' in detail and '<td class="num">0</td>' in detail
    assert '1 first seen in this release' in detail

    # Another organization's member sees neither page.
    make_user('stranger@example.com', org_slug='globex')
    stranger = PageClient(client)
    stranger.login('stranger@example.com')
    stranger.get(f'/projects/{project.id}/releases', expect=404)
    stranger.get(f'/projects/{project.id}/releases/{release.id}', expect=404)
    browser.get(f'/projects/{project.id}/releases/{release.id + 100}', expect=404)


def test_issue_page_shows_the_original_source(client, project):
    make_user('dev@example.com')
    token = make_upload_token(project)
    upload(client, token, 'shop@1', CDN + 'app1.min.js', map_bytes(1))
    ingest(client, project.key, stacks(1)['checkout'], 'shop@1')
    with db.database.connection_context():
        issue_id = Event.get().issue_id
    browser = PageClient(client)
    browser.login('dev@example.com')
    page = browser.get(f'/issues/{issue_id}').text
    _line, text = source_line('cart.js', "throw new RangeError('quantity for '")
    assert 'validateQuantity' in page and '../src/cart.js' in page
    assert str(markupsafe.escape(text.strip())) in page  # the context line, escaped by Jinja


# -- every release events named, with its figures ---------------------------------------------------

HOSTILE = '<script>alert(1)</script>'


@pytest.fixture
def clock():
    """The test clock, started at the wall clock's time: the session made at sign-in is
    checked against it."""
    return FakeClock(times.utcnow())


def table_rows(page, table_class):
    """[(the row header's text, [each cell's text])] of the table of that class, tags stripped."""
    table = re.search(rf'<table class="{table_class}">(.*?)</table>', page, re.S).group(1)
    body = table.split('<tbody>', 1)[1]
    rows = []
    for row in re.findall(r'<tr>(.*?)</tr>', body, re.S):
        head = re.search(r'<th scope="row"[^>]*>(.*?)</th>', row, re.S).group(1)
        cells = re.findall(r'<td[^>]*>(.*?)</td>', row, re.S)
        rows.append((html.unescape(strip(head)), [html.unescape(strip(c)) for c in cells]))
    return rows


def strip(fragment):
    return ' '.join(re.sub(r'<[^>]+>', ' ', fragment).split())


def issue_of(kind):
    with db.database.connection_context():
        return Issue.get(Issue.type == kind)


def at(clock, key, kind, release, environment='production'):
    """An event of the issue `kind` in release, one minute after the last."""
    clock.advance(minutes=1)
    return event(key, release=release, environment=environment, timestamp=iso(clock()),
                 exception={'type': kind, 'message': 'boom', 'stack': f'{kind}: boom\n    at a (a.js:1:1)'})


def test_releases_page_lists_every_release_with_its_figures(clock, client, browser, web):
    start = clock()
    send(client, at(clock, web.key, 'TypeError', '1.0'))
    # 1.1: TypeError again (in two environments, counted together) and RangeError, new in it.
    send(client, at(clock, web.key, 'TypeError', '1.1'),
         at(clock, web.key, 'TypeError', '1.1', 'staging'),
         at(clock, web.key, 'RangeError', '1.1', 'staging'))
    type_error, range_error = issue_of('TypeError'), issue_of('RangeError')
    status_post(browser, type_error.id, {'status': 'resolved'})
    send(client, at(clock, web.key, 'TypeError', '1.2'))  # it comes back in 1.2
    status_post(browser, range_error.id, {'status': 'resolved', 'resolve': 'release',
                                          'release': '1.3'})
    send(client, at(clock, web.key, 'SyntaxError', '1.3'),
         at(clock, web.key, 'SyntaxError', '2.9'), at(clock, web.key, 'SyntaxError', '2.10'),
         at(clock, web.key, 'SyntaxError', HOSTILE))
    token = make_upload_token(web)
    upload(client, token, '1.3', CDN + 'app1.min.js', map_bytes(1))
    upload(client, token, '1.3', '~/static/js/other.min.js', map_bytes(2))

    page = browser.get(urls.project_releases(web.id)).text
    # How to upload maps points at the page that makes upload tokens, not at the shell.
    assert f'href="{urls.project_settings(web.id)}#source-maps"' in page
    assert f'--project {web.slug} dist/' in page and 'token create' not in page
    rows = table_rows(page, 'releases')
    # Newest first: 2.10 after 2.9, the name that is no version by when it was first seen.
    assert [version for version, _cells in rows] == [HOSTILE, '2.10', '2.9', '1.3', '1.2', '1.1',
                                                      '1.0']
    figures = {version: cells[1:] for version, cells in rows}
    # events, new issues, regressions, resolved in it, source maps
    assert figures['1.0'] == ['1', '1', '0', '0', 'none']
    assert figures['1.1'] == ['3', '1', '0', '0', 'none']
    assert figures['1.2'] == ['1', '0', '1', '0', 'none']
    assert figures['1.3'] == ['1', '1', '0', '1', '2']
    assert figures['2.10'] == ['1', '0', '0', '0', 'none']
    # First seen: its first event, relative to now (nine events a minute apart), exact on hover.
    assert dict(rows)['1.0'][0] == '8 min ago'
    exact = (start + datetime.timedelta(minutes=1)).strftime('%Y-%m-%d %H:%M:%S UTC')
    assert f'title="{exact}">8 min ago</time>' in page
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert 'href="#upload"' in page and 'id="upload"' in page
    assert '<th scope="col">Release</th>' in page

    # A release seen only in events has its own page: its issues, no maps, how to upload them.
    detail = browser.get(urls.release_version(web.id, '1.1')).text
    assert [v for v, _c in table_rows(detail, 'release-issues')] == ['RangeError: boom']
    assert 'No source maps for this release' in detail and 'id="upload"' in detail
    assert '1 first seen in this release' in detail and '3 in 2 issues' in detail
    regressed = browser.get(urls.release_version(web.id, '1.2')).text
    assert 'TypeError: boom' in regressed and 'No issue was first seen in this release' in regressed
    assert re.search(r'<dt>Regressions</dt><dd>1</dd>', regressed)
    with_maps = browser.get(urls.release_version(web.id, '1.3')).text
    assert re.search(r'<dt>Source maps</dt><dd>2</dd>', with_maps)
    assert re.search(r'<dt>Resolved in it</dt><dd>1</dd>', with_maps)
    assert '~/static/js/other.min.js' in with_maps and 'id="upload"' not in with_maps
    hostile = browser.get(urls.release_version(web.id, HOSTILE)).text
    assert HOSTILE not in hostile and html.escape(HOSTILE) in hostile
    browser.get(urls.release_version(web.id, '9.9'), expect=404)
    browser.get(f'/projects/{web.id}/releases/show', expect=400)
    browser.get(urls.release_version(web.id, 'x' * 201), expect=400)

    # The read API lists the same figures.
    token = make_token(web.org_id)
    reply = client.simulate_get(f'/api/v1/projects/{web.id}/releases', params={'limit': '4'},
                                headers={'Authorization': f'Bearer {token}'}).json
    assert [r['version'] for r in reply['releases']] == [HOSTILE, '2.10', '2.9', '1.3']
    assert reply['total'] == 7 and reply['next'] == '4'
    three = reply['releases'][3]
    assert (three['event_count'], three['new_issues'], three['resolved_issues'],
            three['sourcemap_count'], len(three['sourcemaps'])) == (1, 1, 1, 2, 2)
    assert three['id'] is not None and reply['releases'][1]['id'] is None
    rest = client.simulate_get(f'/api/v1/projects/{web.id}/releases',
                               params={'limit': '4', 'cursor': reply['next']},
                               headers={'Authorization': f'Bearer {token}'}).json
    assert [r['version'] for r in rest['releases']] == ['1.2', '1.1', '1.0']
    assert rest['next'] is None and rest['releases'][0]['regressions'] == 1
    assert rest['releases'][2]['first_seen'] == iso(start + datetime.timedelta(minutes=1))
    for bad in ({'cursor': 'x'}, {'limit': '0'}, {'limit': '²'}):
        result = client.simulate_get(f'/api/v1/projects/{web.id}/releases', params=bad,
                                     headers={'Authorization': f'Bearer {token}'})
        assert result.status_code == 400, bad

    # The issue page: its events in each release, in release order, each bar labelled.
    issue_page = browser.get(urls.issue(type_error.id)).text
    assert re.findall(r'<a href="[^"]*" aria-label="([^"]+)">', issue_page) == [
        '1.0: 1 event', '1.1: 2 events', '1.2: 1 event']
    assert '<title>1.1: 2 events</title>' in issue_page
    assert f'href="{html.escape(urls.release_version(web.id, "1.0"))}"' in issue_page
    syntax_page = browser.get(urls.issue(issue_of('SyntaxError').id)).text
    labels = re.findall(r'<a href="[^"]*" aria-label="([^"]+)">', syntax_page)
    assert labels == ['1.3: 1 event', '2.9: 1 event', '2.10: 1 event',
                      html.escape(HOSTILE) + ': 1 event']
    assert HOSTILE not in syntax_page


def test_releases_page_pages_and_the_chart_shows_the_newest_ten(clock, client, browser, web):
    send(client, *[at(clock, web.key, 'TypeError', f'1.{n}') for n in range(55)])
    first = browser.get(urls.project_releases(web.id)).text
    versions = [v for v, _c in table_rows(first, 'releases')]
    assert versions == [f'1.{n}' for n in range(54, 4, -1)]
    assert 'page 1 of 2' in first and 'rel="next"' in first and 'rel="prev"' not in first
    second = browser.get(urls.project_releases(web.id, page=2)).text
    assert [v for v, _c in table_rows(second, 'releases')] == ['1.4', '1.3', '1.2', '1.1', '1.0']
    assert 'rel="prev"' in second
    assert 'No releases on this page' in browser.get(urls.project_releases(web.id, page=9)).text
    assert 'rel="next"' in browser.get(urls.project_releases(web.id, page='x')).text
    page = browser.get(urls.issue(issue_of('TypeError').id)).text
    labels = re.findall(r'<a href="[^"]*" aria-label="([^"]+)">', page)
    assert labels == [f'1.{n}: 1 event' for n in range(45, 55)]


def test_a_project_without_releases(client, browser, web):
    send(client, event(web.key, release=None))
    page = browser.get(urls.project_releases(web.id)).text
    assert 'No releases yet' in page and 'id="upload"' in page
    issue_page = browser.get(urls.issue(issue_of('TypeError').id)).text
    assert 'No event of this issue named a release.' in issue_page
