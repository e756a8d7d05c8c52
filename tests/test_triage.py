"""Triage end to end on the live server: assignment through the API with the assignee's mail in
a real SMTP server, comments and mentions, snoozes (N more events; a time on the test clock),
resolving in the next or a named release (older releases stay resolved, newer ones regress),
auto-resolve, the 400s naming the field; and the comment markup."""

import datetime

import pytest
from factories import event
from factories import iso
from factories import make_token
from factories import make_user
from pageclient import HttpClient

from proliferate import db
from proliferate import jobs
from proliferate import triage
from proliferate.config import Config
from proliferate.models import Outbox
from proliferate.models import Project


@pytest.fixture
def config(config, inbox):
    return Config.from_env({
        'PROLIFERATE_DATABASE_URL': config.database_url,
        'PROLIFERATE_BASE_URL': 'http://errors.example.test',
        'PROLIFERATE_SMTP_HOST': '127.0.0.1', 'PROLIFERATE_SMTP_PORT': str(inbox.port),
        'PROLIFERATE_SMTP_STARTTLS': 'false', 'PROLIFERATE_SMTP_FROM': 'alerts@errors.example.test',
    })


@pytest.fixture
def api(live_server, project):
    return HttpClient(live_server, make_token(project.org_id, 'lead@example.com'))


@pytest.fixture
def dev(project):
    return make_user('dev@example.com', role='member')



class Flow:
    def __init__(self, live_server, project, api, clock, config, services):
        self.ingest_client = HttpClient(live_server)
        self.project, self.api, self.clock = project, api, clock
        self.config, self.services = config, services

    def ingest(self, release='1.0.0', **fields):
        body = event(self.project.key, timestamp=iso(self.clock()), release=release, **fields)
        status, _headers, reply = self.ingest_client.post('/api/v1/errors', body)
        assert status == 202, reply

    def issue(self):
        issues = self.api.get(f'/api/v1/projects/{self.project.id}/issues?status=all')['issues']
        assert len(issues) == 1
        return self.api.get(f'/api/v1/issues/{issues[0]["id"]}')

    def patch(self, issue_id, body, expect=200):
        status, _headers, reply = self.api.request('PATCH', f'/api/v1/issues/{issue_id}', body)
        assert status == expect, reply
        return reply

    def outbox(self):
        return jobs.send_outbox(self.config, writer=self.services.writer, clock=self.clock)


@pytest.fixture
def flow(live_server, project, api, clock, config, services):
    return Flow(live_server, project, api, clock, config, services)


def test_assignment_emails_the_assignee_and_their_regression(flow, dev, inbox):
    flow.ingest()
    issue = flow.issue()
    assert issue['assignee'] is None and issue['escalating'] is False
    issue = flow.patch(issue['id'], {'assignee': 'DEV@example.com'})
    assert issue['assignee'] == 'dev@example.com'
    flow.outbox()
    mail = [m for m in inbox.take()
            if m.to == ['dev@example.com'] and 'Assigned' in m.subject]
    assert len(mail) == 1
    assert mail[0].subject == '[Proliferate] Assigned to you by lead@example.com: TypeError: boom'
    assert f'http://errors.example.test/issues/{issue["id"]}' in mail[0].text
    activity = flow.api.get(f'/api/v1/issues/{issue["id"]}/activity')['activity']
    assert activity[0]['kind'] == 'assigned' and activity[0]['user'] == 'lead@example.com'
    assert activity[0]['detail'] == {'assignee': 'dev@example.com'}
    # A resolved issue assigned to dev regresses: dev hears of it personally.
    flow.patch(issue['id'], {'status': 'resolved'})
    flow.clock.advance(minutes=5)
    flow.ingest()
    assert flow.issue()['status'] == 'unresolved'
    flow.outbox()
    personal = [m.subject for m in inbox.take() if m.to == ['dev@example.com']]
    assert '[Proliferate] Your issue regressed in 1.0.0: TypeError: boom' in personal
    # Not a member, not an email: 400 naming the field; null unassigns.
    for bad in ('stranger@example.com', 42, ''):
        reply = flow.patch(issue['id'], {'assignee': bad}, expect=400)
        assert 'assignee' in reply['detail']
    assert flow.patch(issue['id'], {'assignee': None})['assignee'] is None


def test_comments_edit_delete_and_mentions(flow, dev, live_server, project):
    flow.ingest()
    issue_id = flow.issue()['id']
    status, _h, comment = flow.api.post(
        f'/api/v1/issues/{issue_id}/comments',
        {'text': 'Looks like <script>alert(1)</script> https://x.example/?a=1&b=2 @dev@example.com'})
    assert status == 201 and comment['author'] == 'lead@example.com'
    listed = flow.api.get(f'/api/v1/issues/{issue_id}/comments')['comments']
    assert [c['id'] for c in listed] == [comment['id']]
    with db.database.connection_context():
        mention = Outbox.get(Outbox.kind == 'mention')
    assert '"to":["dev@example.com"]' in mention.data
    # Only the author may change it; another member gets 403, another organization 404.
    other = HttpClient(live_server, make_token(project.org_id, 'other@example.com'))
    status, _h, reply = other.request('PATCH', f'/api/v1/comments/{comment["id"]}', {'text': 'x'})
    assert status == 403
    status, _h, edited = flow.api.request('PATCH', f'/api/v1/comments/{comment["id"]}',
                                          {'text': 'fixed in 1.2'})
    assert status == 200 and edited['text'] == 'fixed in 1.2' and edited['updated_at']
    status, _h, reply = flow.api.request('PATCH', f'/api/v1/comments/{comment["id"]}', {'text': ' '})
    assert status == 400 and 'text' in reply['detail']
    kinds = [a['kind'] for a in flow.api.get(f'/api/v1/issues/{issue_id}/activity')['activity']]
    assert kinds == ['comment', 'created']
    status, _h, _reply = flow.api.request('DELETE', f'/api/v1/comments/{comment["id"]}')
    assert status == 204
    assert flow.api.get(f'/api/v1/issues/{issue_id}/comments')['comments'] == []


def test_snooze_until_n_more_events_escalates(flow, dev):
    flow.ingest()
    issue = flow.issue()
    flow.patch(issue['id'], {'assignee': 'dev@example.com'})
    issue = flow.patch(issue['id'], {'status': 'ignored', 'ignore_until': {'events': 3}})
    assert issue['ignore_until'] == {'events': 3, 'remaining': 3}
    flow.ingest()
    flow.ingest()
    issue = flow.issue()
    assert issue['status'] == 'ignored' and issue['ignore_until']['remaining'] == 1
    flow.ingest()
    issue = flow.issue()
    assert issue['status'] == 'unresolved' and issue['escalating'] is True
    assert issue['ignore_until'] is None
    activity = flow.api.get(f'/api/v1/issues/{issue["id"]}/activity')['activity']
    assert activity[0]['kind'] == 'escalating' and activity[0]['detail'] == {'reason': 'events'}
    with db.database.connection_context():
        assert Outbox.select().where(Outbox.kind == 'escalating').count() == 1
    # Resolving ends the mark.
    assert flow.patch(issue['id'], {'status': 'resolved'})['escalating'] is False


def test_snooze_for_a_time_on_the_test_clock(flow, services):
    flow.ingest()
    issue = flow.issue()
    issue = flow.patch(issue['id'], {'status': 'ignored', 'ignore_until': {'minutes': 60}})
    assert issue['ignore_until']['until'] == '2025-01-15T11:30:00.000000Z' or \
        issue['ignore_until']['until'].startswith('2025-01-15T11:30')
    flow.clock.advance(minutes=59)
    assert jobs.wake_snoozes(services.writer, flow.clock) == 0
    assert flow.issue()['status'] == 'ignored'
    flow.clock.advance(minutes=2)
    assert jobs.wake_snoozes(services.writer, flow.clock) == 1
    issue = flow.issue()
    assert issue['status'] == 'unresolved' and issue['escalating'] is True
    # Ignored for ever stays ignored, however long and however many events.
    flow.patch(issue['id'], {'status': 'ignored'})
    flow.clock.advance(days=400)
    flow.ingest()
    assert jobs.wake_snoozes(services.writer, flow.clock) == 0
    assert flow.issue()['status'] == 'ignored'


def test_resolve_in_next_release(flow):
    flow.ingest(release='1.0.0')
    flow.ingest(release='0.9.0')
    issue = flow.issue()
    issue = flow.patch(issue['id'], {'status': 'resolved', 'resolved_in': 'next'})
    assert issue['resolved_in'] == 'next'
    flow.ingest(release='1.0.0')
    flow.ingest(release='0.9.0')
    issue = flow.issue()
    assert issue['status'] == 'resolved' and issue['event_count'] == 4
    flow.ingest(release='1.1.0')
    issue = flow.issue()
    assert issue['status'] == 'unresolved' and issue['is_regressed'] is True
    assert issue['regressed_release'] == '1.1.0' and issue['resolved_in'] is None


def test_resolve_in_a_named_release_with_a_backport(flow):
    flow.ingest(release='2.4.0')
    issue = flow.issue()
    # The fix ships in 2.3.5 (a backport) and in no event yet.
    issue = flow.patch(issue['id'], {'status': 'resolved', 'resolved_in': '2.3.5'})
    assert issue['resolved_in'] == '2.3.5'
    flow.ingest(release='2.3.4')
    flow.ingest(release='2.3.5')
    assert flow.issue()['status'] == 'resolved'
    flow.ingest(release='2.4.0')
    assert flow.issue()['status'] == 'unresolved'


@pytest.mark.parametrize(('body', 'field'), [
    ({}, 'body'),
    ({'status': 'gone'}, 'status'),
    ({'colour': 'red'}, 'colour'),
    ({'status': 'unresolved', 'resolved_in': '1.0'}, 'resolved_in'),
    ({'status': 'resolved', 'resolved_in': 7}, 'resolved_in'),
    ({'status': 'resolved', 'ignore_until': {'events': 3}}, 'ignore_until'),
    ({'status': 'ignored', 'ignore_until': {'events': 0}}, 'ignore_until'),
    ({'status': 'ignored', 'ignore_until': {'events': True}}, 'ignore_until'),
    ({'status': 'ignored', 'ignore_until': {'hours': 3}}, 'ignore_until'),
    ({'status': 'ignored', 'ignore_until': {'until': 'soon'}}, 'ignore_until'),
    ({'status': 'ignored', 'ignore_until': {'until': '2020-01-01'}}, 'ignore_until'),
    ({'status': 'ignored', 'ignore_until': {'minutes': 5, 'events': 3}}, 'ignore_until'),
])
def test_bad_changes_are_400_naming_the_field(flow, body, field):
    flow.ingest()
    reply = flow.patch(flow.issue()['id'], body, expect=400)
    assert reply['detail'].startswith(field + ':'), reply


def test_auto_resolve_after_n_quiet_days(flow, services):
    flow.ingest()
    assert jobs.auto_resolve(services.writer, flow.clock) == 0  # off by default
    with db.database.connection_context():
        Project.update(auto_resolve_days=7).where(Project.id == flow.project.id).execute()
    flow.clock.advance(days=6)
    assert jobs.auto_resolve(services.writer, flow.clock) == 0
    flow.clock.advance(days=2)
    assert jobs.auto_resolve(services.writer, flow.clock) == 1
    issue = flow.issue()
    assert issue['status'] == 'resolved'
    activity = flow.api.get(f'/api/v1/issues/{issue["id"]}/activity')['activity']
    assert activity[0]['kind'] == 'resolved' and activity[0]['detail'] == {'auto': 7}


def test_comment_markup_escapes_everything():
    text = 'see <b>x</b> https://a.example/p?q=1&r="><script> and javascript:alert(1)\nnext'
    out = triage.comment_html(text)
    assert '<b>' not in out and '<script>' not in out and '"><' not in out
    assert '<a href="https://a.example/p?q=1&amp;r=" rel="nofollow noopener noreferrer">' in out
    assert 'javascript:alert(1)<br>' in out
    assert triage.mentions('hi @a@example.com, @B@Example.com. mail x@example.com') == [
        'a@example.com', 'b@example.com']


def test_parse_ignore_until_on_the_clock():
    now = datetime.datetime(2025, 1, 15, 10, 30)
    spec, until, kind, count = triage.parse_ignore_until({'minutes': 1440}, now)
    assert until == now + datetime.timedelta(days=1) and kind is None
    _spec, until, _kind, _count = triage.parse_ignore_until({'until': '2025-01-20T12:00:00+01:00'}, now)
    assert until == datetime.datetime(2025, 1, 20, 11, 0)
    assert triage.parse_ignore_until({'users': 5}, now)[2:] == ('users', 5)


def test_search_terms(flow, dev):
    flow.ingest()
    flow.ingest(exception={'type': 'KeyError', 'message': 'nope', 'stack': 'KeyError: nope'})
    issues = flow.api.get(f'/api/v1/projects/{flow.project.id}/issues')['issues']
    assert len(issues) == 2
    mine, theirs = issues
    flow.patch(mine['id'], {'assignee': 'lead@example.com'})
    flow.patch(theirs['id'], {'assignee': 'dev@example.com'})

    def found(query):
        path = f'/api/v1/projects/{flow.project.id}/issues?status=all&query={query}'
        return {i['id'] for i in flow.api.get(path)['issues']}

    assert found('assigned:me') == {mine['id']}
    assert found('assigned:Dev@example.com') == {theirs['id']}
    assert found('assigned:nobody@example.com') == set()
    assert found('is:assigned') == {mine['id'], theirs['id']}
    assert found('is:unassigned') == set()
    flow.patch(theirs['id'], {'assignee': None})
    assert found('is:unassigned') == {theirs['id']}
    assert found('is:escalating') == set()
