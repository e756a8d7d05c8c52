"""The API's bulk triage change on the real server: every issue a query matches changes, in
chunks through the writer, the answer counts what changed, and bad input is a 400 naming the
field."""

import pytest
from factories import STACK
from factories import event
from factories import iso
from factories import make_token
from factories import make_user
from pageclient import HttpClient

from proliferate import triage


@pytest.fixture
def api(live_server, project):
    return HttpClient(live_server, make_token(project.org_id, 'lead@example.com'))


def ingest(live_server, project, clock, count, first=0, **fields):
    client = HttpClient(live_server)
    for n in range(first, first + count):
        body = event(project.key, timestamp=iso(clock()),
                     exception={'type': f'Error{n}', 'message': 'boom', 'stack': STACK}, **fields)
        status, _headers, reply = client.post('/api/v1/errors', body)
        assert status == 202, reply


def bulk(api, project, body, params='', expect=200):
    status, _headers, reply = api.request(
        'POST', f'/api/v1/projects/{project.id}/issues/bulk{params}', body)
    assert status == expect, reply
    return reply


def listed(api, project, params):
    return api.get(f'/api/v1/projects/{project.id}/issues?{params}')


def test_bulk_changes_every_match_in_chunks(live_server, project, api, clock, monkeypatch):
    calls = []
    monkeypatch.setattr(triage, 'BULK_CHUNK', 3)  # seven matches: three writer calls
    real = triage.bulk_change
    monkeypatch.setattr(triage, 'bulk_change', lambda ids, **kw: calls.append(ids) or real(ids, **kw))
    ingest(live_server, project, clock, 7, environment='staging')
    ingest(live_server, project, clock, 2, first=7, environment='production', level='warning')
    reply = bulk(api, project, {'query': 'env:staging', 'status': 'resolved'})
    assert reply == {'changed': 7}
    assert [len(c) for c in calls] == [3, 3, 1]
    assert listed(api, project, 'status=resolved')['total'] == 7
    assert listed(api, project, 'status=unresolved')['total'] == 2
    # The same change again changes nothing; the list's filters are parameters.
    assert bulk(api, project, {'query': 'env:staging', 'status': 'resolved'},
                '?status=resolved') == {'changed': 0}
    dev = make_user('dev@example.com', role='member')
    assert bulk(api, project, {'assignee': dev.email}, '?status=all&level=warning') == {
        'changed': 2}
    assert listed(api, project, 'query=assigned:dev@example.com')['total'] == 2
    reply = bulk(api, project, {'query': 'is:unresolved', 'status': 'ignored',
                                'ignore_until': {'events': 10}})
    assert reply == {'changed': 2}
    issue = listed(api, project, 'status=ignored')['issues'][0]
    assert issue['ignore_until']['events'] == 10
    activity = api.get(f'/api/v1/issues/{issue["id"]}/activity')['activity']
    assert activity[0]['kind'] == 'ignored' and activity[0]['user'] == 'lead@example.com'


@pytest.mark.parametrize(('body', 'params', 'field'), [
    ({'query': 'env:staging'}, '', 'body'),
    ({'query': 42, 'status': 'resolved'}, '', 'query'),
    ({'query': 'foo:bar', 'status': 'resolved'}, '', 'query'),
    ({'status': 'gone'}, '', 'status'),
    ({'status': 'resolved'}, '?status=gone', 'status'),
    ({'status': 'unresolved', 'resolved_in': 'next'}, '', 'resolved_in'),
    ({'status': 'ignored', 'ignore_until': {'hours': 2}}, '', 'ignore_until'),
    ({'assignee': 'stranger@example.com'}, '', 'assignee'),
    ({'colour': 'red'}, '', 'colour'),
])
def test_bad_bulk_changes_are_400_naming_the_field(live_server, project, api, clock, body, params,
                                                   field):
    ingest(live_server, project, clock, 1)
    reply = bulk(api, project, body, params, expect=400)
    assert reply['detail'].startswith(f'{field}:'), reply
    assert listed(api, project, 'status=unresolved')['total'] == 1


def test_bulk_of_another_organization_is_404(live_server, project, api):
    status, _headers, _reply = api.request('POST', f'/api/v1/projects/{project.id + 999}'
                                           '/issues/bulk', {'status': 'resolved'})
    assert status == 404
