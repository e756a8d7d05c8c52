"""Counts that follow the filters: what the writer keeps per environment, release and hour
(issue_slice, issue_slice_person) on the injected clock, through merges, unmerges, deletion and
the upgrade that fills them; the list's rows and sparklines, the menus that write their terms
into the search box, and the read API's slices on the real server."""

import datetime
import importlib
import re

import pytest
from factories import FakeClock
from factories import event
from factories import iso
from factories import make_token
from pageclient import HttpClient
from pageclient import send

from proliferate import db
from proliferate import issues
from proliferate import search
from proliferate import slices
from proliferate import times
from proliferate.ingest import slice_keys
from proliferate.models import Issue
from proliferate.models import IssueSlice
from proliferate.models import IssueSlicePerson
from proliferate.web import urls

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def clock():
    """The test clock at half past the wall clock's hour (the session made at sign-in is
    checked against it; the hour's middle keeps the windows' arithmetic plain)."""
    return FakeClock(times.utcnow().replace(minute=30, second=0, microsecond=0))


def on_the_hour(value):
    return value.replace(minute=0, second=0, microsecond=0)


def one(key, kind, at, environment, release, user=None, account=None):
    fields = {'timestamp': iso(at), 'environment': environment, 'release': release,
              'exception': {'type': kind, 'message': 'boom',
                            'stack': f'{kind}: boom\n    at f{kind} (https://x.example/a.js:1:1)'}}
    if user:
        fields['user'] = {'id': user}
    if account:
        fields['account'] = {'id': account, 'name': f'{account.title()} Holdings'}
    return event(key, **fields)


def seed(client, project, clock):
    """TypeError: 5 production v1 events two days ago (u1 x3, u2 x2; account a1), 3 staging v1
    an hour ago (u1, u3, u3; a2), 2 staging v2 now (u3; a2). RangeError: 4 production v2 three
    hours ago (u9). -> {type: Issue}"""
    now = clock()
    old, recent, newer = now - 48 * HOUR, now - HOUR, now
    events = [one(project.key, 'TypeError', old, 'production', 'v1', u, 'a1')
              for u in ('u1', 'u1', 'u1', 'u2', 'u2')]
    events += [one(project.key, 'TypeError', recent, 'staging', 'v1', u, 'a2')
               for u in ('u1', 'u3', 'u3')]
    events += [one(project.key, 'TypeError', newer, 'staging', 'v2', 'u3', 'a2')
               for _ in range(2)]
    events += [one(project.key, 'RangeError', now - 3 * HOUR, 'production', 'v2', 'u9')
               for _ in range(4)]
    send(client, *events)
    with db.database.connection_context():
        return {i.type: i for i in Issue.select()}


def counted(issue_ids, query, now):
    with db.database.connection_context():
        piece = search.slice_of(query, now)
        rows = list(Issue.select().where(Issue.id.in_(issue_ids)))
        return {i: (c['events'], c['users'], c['accounts'])
                for i, c in slices.counts(rows, piece).items()}


# -- the query's slice (pure) ---------------------------------------------------------------------


def test_menus_write_terms_and_read_them_back():
    assert search.set_term('TypeError env:staging !env:dev', 'environment', 'production') == (
        'TypeError !env:dev environment:production')
    assert search.set_term('environment:staging boom', 'environment', '') == 'boom'
    assert search.set_term('', 'release', 'my app 1.0') == 'release:"my app 1.0"'
    assert search.set_term('last_seen:-7d', 'last_seen', '-24h') == 'last_seen:-24h'
    assert search.term_value('!env:a ENV:b env:c', 'environment') == 'b'
    assert search.period_of('last_seen:-24h') == '24h'
    assert search.period_of('last_seen:-3h') == '-3h'
    assert search.period_of('first_seen:-24h') == ''
    assert search.without_status('is:ignored env:a IS:resolved is:assigned !is:resolved b') == (
        'env:a is:assigned !is:resolved b')


def test_slice_of_a_query():
    now = datetime.datetime(2025, 1, 15, 10, 30)
    assert search.slice_of('TypeError level:error', now) is None
    assert search.slice_of('!env:staging last_seen:+7d', now) is None
    piece = search.slice_of('env:staging release:"v 1" last_seen:-24h', now)
    assert piece == search.Slice('staging', 'v 1', datetime.datetime(2025, 1, 14, 10), '-24h')
    # The period starts on the hour: the writer counts events by the hour.
    assert search.slice_of('last_seen:-90m', now).since == datetime.datetime(2025, 1, 15, 9)


def test_slice_keys_are_stable_and_exact():
    # A stored person is this number forever: the upgrade, the writer and a merge must agree,
    # so it is pinned (BLAKE2b, never Python's per-process hash()).
    assert slice_keys.person_hash('user', 'alice@example.com') == 716058745438408423
    assert slice_keys.person_hash('account', 'alice@example.com') == -4787618465343840025
    assert all(-2 ** 63 <= slice_keys.person_hash('user', str(n)) < 2 ** 63 for n in range(100))
    hour = slice_keys.hour_number('2025-01-15 10:59:59.999')
    assert hour == datetime.datetime(2025, 1, 15, 10, tzinfo=datetime.UTC).timestamp() // 3600
    assert slice_keys.hour_number('1970-01-01 00:30:00') == 0
    # A period starting on the hour takes that hour; one a moment after it, from the next.
    assert slice_keys.first_hour_from(datetime.datetime(2025, 1, 15, 10)) == hour
    assert slice_keys.first_hour_from(datetime.datetime(2025, 1, 15, 10, 0, 0, 1)) == hour + 1
    assert slice_keys.first_hour_from(datetime.datetime(2025, 1, 15, 9, 0, 1)) == hour


# -- what the writer keeps ----------------------------------------------------------------------------


def test_writer_counts_each_slice(client, project, clock):
    found = seed(client, project, clock)
    a, b = found['TypeError'].id, found['RangeError'].id
    now = clock()
    assert counted([a, b], 'env:staging', now) == {a: (5, 2, 1), b: (0, 0, 0)}
    assert counted([a, b], 'env:production', now) == {a: (5, 2, 1), b: (4, 1, 0)}
    assert counted([a], 'release:v1', now) == {a: (8, 3, 2)}
    assert counted([a], 'env:staging release:v2', now) == {a: (2, 1, 1)}
    assert counted([a, b], 'last_seen:-24h', now) == {a: (5, 2, 1), b: (4, 1, 0)}
    assert counted([a, b], 'last_seen:-1h', now) == {a: (5, 2, 1), b: (0, 0, 0)}
    assert counted([a], 'env:production last_seen:-24h', now) == {a: (0, 0, 0)}
    # A slice holding every event of an issue has all of its people: its own counts.
    assert counted([a], 'last_seen:-30d', now) == {a: (10, 3, 2)}
    # An hour later the window has moved past the events of an hour ago.
    clock.advance(hours=1)
    assert counted([a], 'last_seen:-1h', clock()) == {a: (2, 1, 1)}
    # More than the cap: counted up to it, and said so.
    with db.database.connection_context():
        piece = search.slice_of('env:staging', now)
        assert slices.people_count(a, 'user', piece, cap=1) == (1, True)
        assert slices.people_count(a, 'user', piece, cap=2) == (2, False)
        assert slices.hourly([a], piece, now - 24 * HOUR) == [
            (a, on_the_hour(now - HOUR), 3), (a, on_the_hour(now), 2)]


def test_merge_unmerge_and_deletion_keep_slices_right(client, project, clock, services):
    found = seed(client, project, clock)
    a, b = found['TypeError'], found['RangeError']
    now = clock()
    with db.database.connection_context():
        services.writer.call(lambda: issues.merge_issues(a.id, [b.id], now=now))
    assert counted([a.id], 'env:production', now) == {a.id: (9, 3, 1)}
    assert counted([a.id], 'release:v2', now) == {a.id: (6, 2, 1)}
    with db.database.connection_context():
        fingerprint = b.fingerprint
        new = services.writer.call(lambda: issues.unmerge(a.id, fingerprint, now=now))
    assert counted([a.id, new.id], 'env:production', now) == {a.id: (5, 2, 1),
                                                              new.id: (4, 1, 0)}
    # Deleting an issue takes its slices with it.
    with db.database.connection_context():
        services.writer.call(lambda: Issue.delete().where(Issue.id == new.id).execute())
        assert not IssueSlice.select().where(IssueSlice.issue == new.id).exists()
        assert not IssueSlicePerson.select().where(IssueSlicePerson.issue == new.id).exists()


def test_the_upgrade_fills_the_slices_as_the_writer_does(client, project, clock):
    seed(client, project, clock)
    upgrade = importlib.import_module('proliferate.migrations.0010_slices')

    def rows():
        return (sorted(IssueSlice.select(IssueSlice.issue, IssueSlice.environment,
                                         IssueSlice.release, IssueSlice.hour,
                                         IssueSlice.event_count).tuples()),
                sorted(IssueSlicePerson.select(
                    IssueSlicePerson.issue, IssueSlicePerson.kind, IssueSlicePerson.environment,
                    IssueSlicePerson.release, IssueSlicePerson.person,
                    IssueSlicePerson.last_hour).tuples()))

    with db.database.connection_context():
        written = rows()
        assert len(written[0]) == 4 and len(written[1]) == 9
        with db.database.atomic():
            IssueSlice.delete().execute()
            IssueSlicePerson.delete().execute()
            upgrade.fill(db.database)
        assert rows() == written


# -- the list -------------------------------------------------------------------------------------


def cell(page, issue_id, label):
    row = page[page.index(f'href="/issues/{issue_id}"'):]
    row = row[:row.index('</tr>')]
    found = re.search(rf'<td class="num[^"]*" data-label="{label}" title="([^"]*)">(.*?)</td>',
                      row)
    return found.group(1), re.sub(r'<[^>]+>', '|', found.group(2))


def test_list_rows_show_the_slice_and_the_total(client, browser, web, clock):
    found = seed(client, web, clock)
    a = found['TypeError'].id
    page = browser.get(urls.project_issues(web.id, query='env:staging')).text
    assert 'Events, users and accounts in staging' in page
    assert cell(page, a, 'events') == ('5 events in staging, 10 in all', '5| of 10|')
    assert cell(page, a, 'users') == ('2 users in staging, 3 in all', '2| of 3|')
    assert 'events in staging in the last 24 hours' in page  # the sparkline follows the slice
    totals = urls.project_issues(web.id, query='env:staging', counts='total')
    assert f'href="{totals}"'.replace('&', '&amp;') in page
    page = browser.get(totals).text
    assert cell(page, a, 'events') == ('10 events', '10')
    assert 'Totals over every event' in page
    page = browser.get(urls.project_issues(web.id, period='24h')).text
    assert cell(page, a, 'events')[0] == '5 events in the last 24 hours, 10 in all'
    assert 'Events, users and accounts in the last 24 hours' in page
    page = browser.get(urls.project_issues(web.id, query='last_seen:-90m')).text
    since = on_the_hour(clock() - datetime.timedelta(minutes=90))
    assert cell(page, a, 'events')[0] == (f'5 events since {since:%Y-%m-%d %H:00} UTC, '
                                          '10 in all')
    page = browser.get(urls.project_issues(web.id, query='release:v2 env:staging')).text
    assert cell(page, a, 'events')[0] == '2 events in staging, in release v2, 10 in all'
    # Without a slice, the totals as before.
    assert cell(browser.get(urls.project_issues(web.id)).text, a, 'events') == ('10 events', '10')


def search_box(page):
    return re.search(r'<input type="search" name="query" value="([^"]*)"', page).group(1)


def chosen(page, name):
    menu = re.search(rf'<select name="{name}">(.*?)</select>', page, re.S).group(1)
    return re.findall(r'<option value="([^"]*)"[^>]* selected>', menu)


def test_menus_and_the_search_box_are_one_filter(client, browser, web, clock):
    seed(client, web, clock)
    base = f'/projects/{web.id}/issues'
    # A menu's choice (a link, or the form without script) writes its term into the box.
    page = browser.get(f'{base}?environment=staging').text
    assert search_box(page) == 'environment:staging' and chosen(page, 'environment') == ['staging']
    # A term typed in the box picks the menu's choice.
    page = browser.get(f'{base}?query=TypeError+env:production&environment=&was_environment=').text
    assert search_box(page) == 'TypeError env:production'
    assert chosen(page, 'environment') == ['production']
    # Changing the menu replaces the term; deleting the term leaves the menu's old choice unsent.
    page = browser.get(f'{base}?query=env:production&environment=staging'
                       '&was_environment=production').text
    assert search_box(page) == 'environment:staging'
    page = browser.get(f'{base}?query=&environment=staging&was_environment=staging').text
    assert search_box(page) == '' and chosen(page, 'environment') == []
    # The period menu is last_seen:-<period>; the level menu level:.
    page = browser.get(f'{base}?query=boom&period=24h&was_period=&level=error&was_level=').text
    assert search_box(page) == 'boom level:error last_seen:-24h'
    assert chosen(page, 'period') == ['24h'] and chosen(page, 'level') == ['error']
    page = browser.get(f'{base}?query=last_seen:-24h&period=&was_period=24h').text
    assert search_box(page) == ''
    # The list's links carry the search text only.
    page = browser.get(f'{base}?environment=staging').text
    assert 'sort=events&amp;query=environment%3Astaging' in page or (
        'query=environment%3Astaging&amp;sort=events' in page)
    assert not [link for link in re.findall(r'href="([^"]*)"', page)
                if 'environment=' in link]
    assert '<input type="hidden" name="environment"' not in page  # a saved search: the text
    # The status tabs are one filter with is: too: is:ignored in the box marks Ignored, and the
    # other tabs' links drop it (else the box would choose the status again).
    page = browser.get(f'{base}?query=is:ignored+env:staging').text
    tabs = re.search(r'<nav class="tabs status-tabs".*?</nav>', page, re.S).group(0)
    assert re.findall(r'aria-current="page">(\w+)</a>', tabs) == ['Ignored']
    resolved = re.search(r'<a href="([^"]*status=resolved[^"]*)"', page).group(1)
    assert 'is%3Aignored' not in resolved and 'env%3Astaging' in resolved


def test_account_term_takes_an_id_or_the_start_of_a_name(client, browser, web, clock):
    found = seed(client, web, clock)
    a = found['TypeError'].id

    def shown(query):
        page = browser.get(urls.project_issues(web.id, query=query)).text
        return [int(i) for i in re.findall(r'class="issue-title" href="/issues/(\d+)"', page)]

    assert shown('account:a2') == [a]
    assert shown('account:A2') == [a]  # no such id: the start of a name, in any case
    assert shown('account:"a1 hold"') == [a]
    assert shown('account:Holdings') == []  # inside a name, not its start
    assert shown('account:nobody') == []


# -- the read API on the real server ------------------------------------------------------------------


@pytest.fixture
def api(live_server, project):
    return HttpClient(live_server, make_token(project.org_id))


def test_api_counts_the_slice_beside_the_totals(live_server, project, api, clock):
    now = clock()
    ingest = HttpClient(live_server)
    for body in ([one(project.key, 'TypeError', now - 48 * HOUR, 'production', 'v1', 'u1')] * 1
                 + [one(project.key, 'TypeError', now - 48 * HOUR, 'production', 'v1', 'u2'),
                    one(project.key, 'TypeError', now, 'staging', 'v2', 'u3', 'a1'),
                    one(project.key, 'TypeError', now, 'staging', 'v2', 'u3', 'a1'),
                    one(project.key, 'RangeError', now, 'production', 'v1', 'u1')]):
        status, _headers, reply = ingest.post('/api/v1/errors', body)
        assert status == 202, reply
    path = f'/api/v1/projects/{project.id}/issues'

    def listed(params):
        reply = api.get(f'{path}?{params}')
        return reply, {i['type']: (i['event_count'], i['user_count'], i['account_count'],
                                   i['total_event_count']) for i in reply['issues']}

    reply, rows = listed('environment=staging')
    assert rows == {'TypeError': (2, 1, 1, 4)} and reply['total'] == 1
    assert reply['slice'] == {'environment': 'staging', 'release': None, 'since': None}
    assert listed('release=v1')[1] == {'TypeError': (2, 2, 0, 4), 'RangeError': (1, 1, 0, 1)}
    reply, rows = listed('period=24h')
    assert rows == {'TypeError': (2, 1, 1, 4), 'RangeError': (1, 1, 0, 1)}
    assert reply['slice']['since'] == times.iso(on_the_hour(now - 24 * HOUR))
    assert listed('query=env:production%20release:v1')[1] == {'TypeError': (2, 2, 0, 4),
                                                              'RangeError': (1, 1, 0, 1)}
    reply, rows = listed('period=30d&environment=production&sort=events')
    assert rows == {'TypeError': (2, 2, 0, 4), 'RangeError': (1, 1, 0, 1)}
    # No slice: the totals, twice.
    reply, rows = listed('')
    assert rows == {'TypeError': (4, 3, 1, 4), 'RangeError': (1, 1, 0, 1)} and not reply['slice']
    status, _headers, reply = api.request('GET', f'{path}?period=1y')
    assert status == 400 and reply['detail'].startswith('period:')


def test_a_hostile_environment_is_escaped_in_the_label_and_the_sparkline(client, browser, web,
                                                                         clock):
    send(client, one(web.key, 'TypeError', clock(), '<b>x</b>', 'v1', 'u1'))
    page = browser.get(urls.project_issues(web.id, query='env:<b>x</b>')).text
    assert 'Events, users and accounts in &lt;b&gt;x&lt;/b&gt;' in page
    assert 'events in &lt;b&gt;x&lt;/b&gt; in the last 24 hours' in page
    assert '<b>x</b>' not in page
