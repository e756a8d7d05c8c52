"""The issue list's "Select all N matching" through the pages: the bulk bar carries the search
instead of ids and changes every match, the notice counts them and offers Undo, which restores
the issues nobody changed since and expires after ten minutes on the test clock."""

import html
import re

import pytest
from factories import STACK
from factories import FakeClock
from factories import event
from factories import iso
from pageclient import send

from proliferate import db
from proliferate import times
from proliferate.models import Issue
from proliferate.web import issues as issue_pages
from proliferate.web import urls


@pytest.fixture
def clock():
    """The test clock, started at the wall clock's time: the session made at sign-in is
    checked against it."""
    return FakeClock(times.utcnow())


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(issue_pages, 'PAGE_SIZE', 2)


def ingest(client, web, clock, types, environment):
    send(client, *[event(web.key, timestamp=iso(clock()), environment=environment,
                         exception={'type': t, 'message': 'boom', 'stack': STACK}) for t in types])


def statuses():
    with db.database.connection_context():
        return {row.type: row.status for row in Issue.select()}


def hidden(page, name):
    return html.unescape(re.search(rf'name="{name}" value="([^"]*)"', page).group(1))


def matching_form(page):
    fields = {f'match_{n}': hidden(page, f'match_{n}') for n in
              ('org', 'project', 'status', 'environment', 'release', 'level', 'query', 'period')}
    return {**fields, 'all_matching': '1', 'next': hidden(page, 'next')}


def test_select_all_matching_then_undo(clock, client, browser, web, small_pages):
    ingest(client, web, clock, ['A', 'B', 'C', 'D'], 'staging')
    ingest(client, web, clock, ['E'], 'production')
    listing = urls.project_issues(web.id, query='env:staging')
    page = browser.get(listing).text
    assert 'Select all 4 matching' in page
    assert hidden(page, 'match_query') == 'env:staging'
    # A page that holds every match has nothing more to select.
    assert 'all_matching' not in browser.get(urls.project_issues(web.id, query='env:production')).text
    result = browser.post(urls.issues_bulk(), {**matching_form(page), 'action': 'resolve'})
    assert result.status_code == 303
    location = result.headers['location']
    assert location == listing + '&notice=bulk'
    assert statuses() == {'A': 'resolved', 'B': 'resolved', 'C': 'resolved', 'D': 'resolved',
                          'E': 'unresolved'}
    page = browser.get(location).text
    assert '4 issues changed.' in page and 'Undo' in page
    undo_url = re.search(r'action="(/issues/bulk/\d+/undo)"', page).group(1)
    # Someone ignores D meanwhile: Undo leaves D as it is and reopens the other three.
    with db.database.connection_context():
        d = Issue.get(Issue.type == 'D').id
    browser.post(urls.issue_status(d), {'status': 'ignored'})
    result = browser.post(undo_url, {'next': listing})
    assert 'notice=bulk_undone' in result.headers['location']
    assert statuses() == {'A': 'unresolved', 'B': 'unresolved', 'C': 'unresolved',
                          'D': 'ignored', 'E': 'unresolved'}
    with db.database.connection_context():
        a = Issue.get(Issue.type == 'A').id
    activity = browser.get(urls.issue(a)).text
    assert re.search(r'activity-reopened">reopened</span>\s*by owner@example.com', activity)
    # Once is all: a second Undo changes nothing.
    result = browser.post(undo_url, {'next': listing})
    assert 'notice=undo_expired' in result.headers['location']
    assert statuses()['A'] == 'unresolved'


def test_undo_expires_after_ten_minutes(clock, client, browser, web, small_pages):
    ingest(client, web, clock, ['A', 'B', 'C'], 'staging')
    listing = urls.project_issues(web.id)
    page = browser.get(listing).text
    result = browser.post(urls.issues_bulk(), {**matching_form(page), 'action': 'assign_me'})
    page = browser.get(result.headers['location']).text
    assert '3 issues changed.' in page
    undo_url = re.search(r'action="(/issues/bulk/\d+/undo)"', page).group(1)
    clock.advance(minutes=11)
    assert 'issues changed.' not in browser.get(result.headers['location']).text
    result = browser.post(undo_url, {'next': listing})
    assert 'notice=undo_expired' in result.headers['location']
    with db.database.connection_context():
        assert Issue.select().where(Issue.assignee.is_null()).count() == 0


def test_all_matching_is_bounded_by_the_users_organizations(clock, client, browser, web,
                                                            small_pages):
    ingest(client, web, clock, ['A', 'B', 'C'], 'staging')
    page = browser.get(urls.project_issues(web.id)).text
    form = {**matching_form(page), 'action': 'resolve'}
    assert browser.post(urls.issues_bulk(), {**form, 'match_org': 'other'}).status_code == 404
    reply = browser.post(urls.issues_bulk(), {**form, 'match_project': '999'})
    assert reply.status_code == 400 and 'match_project' in reply.text
    reply = browser.post(urls.issues_bulk(), {**form, 'action': 'merge'})
    assert reply.status_code == 400
    assert set(statuses().values()) == {'unresolved'}
    # Without all_matching, only the selected rows change; no change at all is no undo.
    result = browser.post(urls.issues_bulk(), {'action': 'reopen', 'issue': ['1'],
                                               'next': urls.project_issues(web.id)})
    assert result.headers['location'] == urls.project_issues(web.id) + '?notice=bulk_none'
