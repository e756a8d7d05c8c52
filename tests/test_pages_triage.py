"""Triage through the pages (falcon's test client over the real app, writer and SQLite): the
assignee control and "Assign to me", comments (hostile text escaped, links made clickable, edit
and delete by their author only), the Ignore menu's snoozes and the Resolve menu's releases as
plain form posts, the header's triage badges, and the list's assignee, bulk assign and the
assigned-to-me view."""

import re

from factories import event
from factories import make_user
from markupsafe import escape
from pageclient import PageClient
from pageclient import send

from proliferate import db
from proliferate.models import Issue
from proliferate.models import IssueComment
from proliferate.web import base
from proliferate.web import urls

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'&'


def one_issue(client, web, **fields):
    send(client, event(web.key, **fields))
    with db.database.connection_context():
        return Issue.select().order_by(Issue.id.desc()).first()


def stored(issue_id):
    with db.database.connection_context():
        return Issue.get_by_id(issue_id)


def status_post(browser, issue_id, fields):
    browser.get(urls.issue(issue_id))
    return browser.post(urls.issue_status(issue_id), {'next': urls.issue(issue_id), **fields})


def test_assign_to_a_member_to_me_and_to_nobody(client, browser, web, owner):
    bob = make_user('bob@example.com', role='member')
    issue = one_issue(client, web)
    page = browser.get(urls.issue(issue.id)).text
    assert f'<option value="{bob.id}">bob@example.com</option>' in page
    assert 'unassigned' in page and 'Assign to me' in page
    result = browser.post(urls.issue_assign(issue.id), {'assignee': str(bob.id),
                                                        'next': urls.issue(issue.id)})
    assert result.headers['location'] == f'/issues/{issue.id}?notice=assigned'
    assert stored(issue.id).assignee_id == bob.id
    page = browser.get(result.headers['location']).text
    assert 'Assignee changed.' in page
    assert re.search(r'assigned to <strong>bob@example.com</strong>', page)
    assert re.search(r'activity-assigned">assigned</span>\s*by owner@example.com\s*'
                     r'<span class="activity-detail small">to bob@example.com</span>', page)
    browser.post(urls.issue_assign(issue.id), {'assignee': 'me'})
    assert stored(issue.id).assignee_id == owner.id
    assert 'Assign to me' not in browser.get(urls.issue(issue.id)).text
    browser.post(urls.issue_assign(issue.id), {'assignee': ''})
    assert stored(issue.id).assignee_id is None
    # Someone outside the organization is no assignee.
    stranger = make_user('eve@example.com', org_slug='other')
    result = browser.post(urls.issue_assign(issue.id), {'assignee': str(stranger.id)})
    assert result.status_code == 400 and 'assignee:' in result.text
    assert stored(issue.id).assignee_id is None


def test_comments_are_escaped_linked_and_only_their_author_changes_them(client, browser, web,
                                                                          owner):
    make_user('bob@example.com', role='member')
    issue = one_issue(client, web)
    browser.get(urls.issue(issue.id))
    text = f'{HOSTILE}\nsee https://example.com/a?b=1&c=2 now'
    result = browser.post(urls.issue_comments(issue.id), {'text': text})
    assert result.headers['location'] == f'/issues/{issue.id}?notice=commented'
    page = browser.get(result.headers['location']).text
    assert '<script>alert(1)' not in page and '<img src=x' not in page
    assert '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;' in page
    assert ('<a href="https://example.com/a?b=1&amp;c=2" rel="nofollow noopener noreferrer">'
            in page)
    with db.database.connection_context():
        (comment,) = IssueComment.select()
    assert comment.text == text and comment.user_id == owner.id
    # The edit form holds the text escaped too.
    assert f'>{escape(text)}</textarea>' in page
    assert browser.post(urls.issue_comments(issue.id), {'text': '   '}).status_code == 400

    other = PageClient(client)
    other.login('bob@example.com')
    other.get(urls.issue(issue.id))
    assert 'Delete' not in re.search(r'<ol class="activity">(.*?)</ol>', other.get(
        urls.issue(issue.id)).text, re.S).group(1)
    assert other.post(urls.comment_edit(comment.id), {'text': 'mine now'}).status_code == 403
    assert other.post(urls.comment_delete(comment.id)).status_code == 403

    result = browser.post(urls.comment_edit(comment.id), {'text': 'fixed, see #2'})
    assert result.headers['location'] == f'/issues/{issue.id}?notice=comment_saved'
    page = browser.get(result.headers['location']).text
    assert 'fixed, see #2' in page and '· edited' in page
    browser.post(urls.comment_delete(comment.id))
    with db.database.connection_context():
        assert IssueComment.select().count() == 0
    assert browser.post(urls.comment_delete(comment.id)).status_code == 404


def test_snooze_until_n_more_events_through_the_form(client, browser, web):
    issue = one_issue(client, web)
    page = browser.get(urls.issue(issue.id)).text
    assert 'name="snooze" value="minutes"' in page and '<input type="date" name="until"' in page
    result = status_post(browser, issue.id, {'status': 'ignored', 'snooze': 'events',
                                             'count': '2'})
    assert result.headers['location'] == f'/issues/{issue.id}?notice=ignored'
    row = stored(issue.id)
    assert (row.status, row.snooze_kind, row.snooze_target) == ('ignored', 'events', 3)
    page = browser.get(urls.issue(issue.id)).text
    assert 'ignored until 2 more events' in page
    assert 'activity-detail small">until 2 more events<' in page
    send(client, event(web.key))
    assert 'ignored until 1 more events' in browser.get(urls.issue(issue.id)).text
    send(client, event(web.key))
    row = stored(issue.id)
    assert (row.status, row.escalating) == ('unresolved', True)
    page = browser.get(urls.issue(issue.id)).text
    assert 'badge-regressed" title="came back by itself from a snooze' in page
    assert 'back from its snooze: the events passed the mark' in page
    # Bad snoozes are refused, naming the field; nothing changes.
    for fields, field in (({'snooze': 'events', 'count': 'x'}, 'count:'),
                          ({'snooze': 'until', 'until': '2001-01-01'}, 'ignore_until:'),
                          ({'snooze': 'weeks'}, 'snooze:')):
        result = status_post(browser, issue.id, {'status': 'ignored', **fields})
        assert result.status_code == 400 and field in result.text, fields
    assert stored(issue.id).status == 'unresolved'


def test_snooze_for_a_preset_time_and_until_a_date(client, browser, web):
    issue = one_issue(client, web)
    status_post(browser, issue.id, {'status': 'ignored', 'snooze': 'minutes', 'minutes': '1440'})
    row = stored(issue.id)
    assert row.status == 'ignored' and row.snooze_until is not None
    assert 'ignored until ' in browser.get(urls.issue(issue.id)).text
    status_post(browser, issue.id, {'status': 'unresolved'})
    status_post(browser, issue.id, {'status': 'ignored', 'snooze': 'until', 'until': '2999-01-02'})
    assert str(stored(issue.id).snooze_until).startswith('2999-01-02')


def test_until_the_day_begins_in_the_readers_zone(client, browser, web):
    # Kolkata is 5:30 ahead of UTC: its 2 January begins at 18:30 UTC on the 1st.
    issue = one_issue(client, web)
    browser.cookies[base.ZONE_COOKIE] = 'Asia/Kolkata'
    status_post(browser, issue.id, {'status': 'ignored', 'snooze': 'until', 'until': '2999-01-02'})
    assert str(stored(issue.id).snooze_until).startswith('2999-01-01 18:30')


def test_resolve_in_the_next_and_in_a_named_release_through_the_form(client, browser, web):
    issue = one_issue(client, web, release='v1.0.0')
    result = status_post(browser, issue.id, {'status': 'resolved', 'resolve': 'next'})
    assert result.headers['location'] == f'/issues/{issue.id}?notice=resolved'
    row = stored(issue.id)
    assert (row.status, row.resolved_in, row.resolved_in_next) == ('resolved', 'v1.0.0', True)
    page = browser.get(urls.issue(issue.id)).text
    assert 'resolved in the next release (after v1.0.0)' in page
    assert 'activity-detail small">in the next release<' in page
    send(client, event(web.key, release='v1.0.0'))  # an old release: it stays resolved
    assert stored(issue.id).status == 'resolved'
    send(client, event(web.key, release='v1.1.0'))
    assert stored(issue.id).status == 'unresolved'

    result = status_post(browser, issue.id, {'status': 'resolved', 'resolve': 'release',
                                             'release': ' v2.0.0 '})
    row = stored(issue.id)
    assert (row.status, row.resolved_in, row.resolved_in_next) == ('resolved', 'v2.0.0', False)
    assert 'resolved in v2.0.0' in browser.get(urls.issue(issue.id)).text
    send(client, event(web.key, release='v1.1.0'))
    assert stored(issue.id).status == 'resolved'
    result = status_post(browser, issue.id, {'status': 'resolved', 'resolve': 'release',
                                             'release': ''})
    assert result.status_code == 400 and 'release:' in result.text


def issue_ids(page_html):
    return [int(i) for i in re.findall(r'class="issue-title" href="/issues/(\d+)"', page_html)]


def test_list_shows_assignees_bulk_assigns_and_the_assigned_to_me_view(client, browser, web,
                                                                       owner):
    bob = make_user('bob@example.com', role='member')
    ids = [one_issue(client, web, message=f'm{n}', exception={
        'type': f'E{n}', 'message': f'm{n}', 'stack': f'E{n}: m{n}\n    at f{n} (a.js:1:1)'}).id
        for n in range(3)]
    listing = browser.get(urls.project_issues(web.id)).text
    assert 'value="assign_me"' in listing and 'value="unassign"' in listing
    assert 'href="/orgs/acme/issues?query=assigned%3Ame">Assigned to me</a>' in listing
    result = browser.post(urls.issues_bulk(), {'action': 'assign_me', 'issue': ids[:2],
                                               'next': urls.project_issues(web.id)})
    assert result.headers['location'] == f'/projects/{web.id}/issues?notice=bulk'
    assert [stored(i).assignee_id for i in ids] == [owner.id, owner.id, None]
    browser.get(urls.issue(ids[2]))
    browser.post(urls.issue_assign(ids[2]), {'assignee': str(bob.id)})
    listing = browser.get(urls.project_issues(web.id)).text
    assert listing.count('→ owner@example.com') == 2 and listing.count('→ bob@example.com') == 1

    mine = browser.get(urls.assigned_to_me('acme')).text
    assert sorted(issue_ids(mine)) == ids[:2]
    assert 'aria-current="page">Assigned to me</a>' in mine
    assert issue_ids(browser.get(urls.org_issues('acme', query='assigned:bob@example.com')).text
                     ) == [ids[2]]
    assert issue_ids(browser.get(urls.org_issues('acme', query='is:unassigned')).text) == []

    browser.post(urls.issues_bulk(), {'action': 'unassign', 'issue': ids,
                                      'next': urls.project_issues(web.id)})
    assert [stored(i).assignee_id for i in ids] == [None, None, None]
    assert issue_ids(browser.get(urls.assigned_to_me('acme')).text) == []
    assert browser.post(urls.issues_bulk(), {'action': 'assign_bob', 'issue': ids}
                        ).status_code == 400


def test_project_settings_set_and_clear_auto_resolve_days(client, browser, web):
    from proliferate.models import Project
    page = browser.get(urls.project_settings(web.id)).text
    assert 'name="auto_resolve_days"' in page and 'placeholder="never"' in page
    fields = {'name': 'web', 'rate_limit_per_minute': ''}
    result = browser.post(urls.project_settings(web.id), {**fields, 'auto_resolve_days': '14'})
    assert result.headers['location'] == f'/projects/{web.id}/settings?notice=project_saved'
    with db.database.connection_context():
        assert Project.get_by_id(web.id).auto_resolve_days == 14
    assert 'name="auto_resolve_days" inputmode="numeric" pattern="[0-9]*" maxlength="4" value="14"' in (
        browser.get(urls.project_settings(web.id)).text)
    for bad in ('0', 'x', '99999'):
        result = browser.post(urls.project_settings(web.id), {**fields, 'auto_resolve_days': bad})
        assert result.status_code == 400 and 'auto_resolve_days: a whole number of days' in (
            result.text), bad
    browser.post(urls.project_settings(web.id), {**fields, 'auto_resolve_days': ''})
    with db.database.connection_context():
        assert Project.get_by_id(web.id).auto_resolve_days is None
