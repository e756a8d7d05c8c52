"""The ingest API end to end against the real Waitress server: the documented examples,
validation, duplicates, limits, the SDK shapes, CORS and gzip."""

import gzip
import json
import time
import uuid

import factories
import pytest
from factories import make_project
from seed import SEED_BATCH
from seed import SEED_EVENT


def event(project, **fields):
    return factories.event(project.key, **{'timestamp': factories.TIMESTAMP, **fields})


def dropped(read_api, project, expected):
    """Refusal counters reach the database on the writer's next commit or idle second."""
    deadline = time.monotonic() + 5
    while True:
        counts = read_api.get(f'/api/v1/projects/{project.id}')['dropped']
        if counts == expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def issues_of(read_api, project, **params):
    query = '&'.join(f'{k}={v}' for k, v in {'status': 'all', **params}.items())
    return read_api.get(f'/api/v1/projects/{project.id}/issues?{query}')['issues']


def test_seed_single_example_is_stored_grouped_and_counted(http, read_api, project):
    status, _headers, body = http.post('/api/v1/errors', {'api_key': project.key, **SEED_EVENT})
    assert (status, body) == (202, {'event_id': 'evt_1234567890abcdef'})

    [issue] = issues_of(read_api, project)
    assert issue['type'] == 'TypeError'
    assert issue['title'] == "TypeError: Cannot read property 'foo' of undefined"
    assert issue['culprit'] == 'processData in app.js'
    assert (issue['event_count'], issue['user_count'], issue['account_count']) == (1, 1, 1)
    assert issue['status'] == 'unresolved' and issue['level'] == 'error'
    assert issue['first_seen'] == issue['last_seen'] == '2025-01-15T10:30:00.123000Z'

    [stored] = read_api.get(f'/api/v1/issues/{issue["id"]}/events')['events']
    for field in ('event_id', 'type', 'level', 'environment', 'release', 'url', 'user_agent',
                  'session_id', 'window_id', 'breadcrumbs', 'extra', 'account'):
        assert stored[field] == SEED_EVENT[field], field
    assert stored['exception'] == SEED_EVENT['exception']
    assert stored['user'] == SEED_EVENT['user']
    assert [f['function'] for f in stored['frames']] == ['processData', 'handleClick']
    assert read_api.get(f'/api/v1/projects/{project.id}/events/evt_1234567890abcdef')['id'] == stored['id']

    users = read_api.get(f'/api/v1/issues/{issue["id"]}/users')['users']
    assert users == [{'id': 'user_abc123', 'email': 'jane@example.com', 'key': 'user_abc123',
                      'event_count': 1, 'first_seen': users[0]['first_seen'],
                      'last_seen': users[0]['last_seen']}]
    accounts = read_api.get(f'/api/v1/issues/{issue["id"]}/accounts')['accounts']
    assert [(a['id'], a['name'], a['event_count']) for a in accounts] == [('acct_xyz789', 'Acme Corp', 1)]
    detail = read_api.get(f'/api/v1/issues/{issue["id"]}')
    assert detail['tags']['environment'] == [{'value': 'production', 'count': 1}]
    assert detail['tags']['release'] == [{'value': 'v1.2.3', 'count': 1}]


def test_seed_batch_example_and_partial_success(http, read_api, project):
    batch = [{'api_key': project.key, **e} for e in SEED_BATCH]
    status, _headers, body = http.post('/api/v1/errors/batch', batch)
    assert status == 202
    assert body == {'processed': 2, 'results': [{'event_id': 'evt_001', 'status': 'ok'},
                                                {'event_id': 'evt_002', 'status': 'ok'}]}
    assert sorted(i['type'] for i in issues_of(read_api, project)) == ['ReferenceError', 'TypeError']

    mixed = [event(project, event_id='evt_003'), {**event(project), 'api_key': 'pk_wrong'}]
    status, _headers, body = http.post('/api/v1/errors/batch', mixed)
    assert status == 202
    assert body['processed'] == 2
    assert body['results'][0] == {'event_id': 'evt_003', 'status': 'ok'}
    assert body['results'][1]['status'] == 'rejected'
    assert body['results'][1]['reason'] == 'Invalid API key'


def test_invalid_key_gets_the_documented_401(http, project):
    status, _headers, body = http.post('/api/v1/errors', event(project, api_key='pk_abc123def456ghi789'))
    assert (status, body) == (401, {'detail': 'Invalid API key'})
    status, _headers, body = http.post('/api/v1/errors', {k: v for k, v in event(project).items()
                                                         if k != 'api_key'})
    assert status == 401 and 'api_key' in body['detail']


@pytest.mark.parametrize('change, field', [
    ({'event_id': None}, 'event_id'),
    ({'event_id': 42}, 'event_id'),
    ({'event_id': 'x' * 201}, 'event_id'),
    ({'timestamp': None}, 'timestamp'),
    ({'timestamp': 'yesterday'}, 'timestamp'),
    ({'timestamp': [2025]}, 'timestamp'),
    ({'type': 'crash'}, 'type'),
    ({'type': 'exception', 'exception': None}, 'exception'),
    ({'type': 'message', 'exception': None}, 'message'),
    ({'level': 'loud'}, 'level'),
    ({'level': 3}, 'level'),
    ({'exception': 'TypeError'}, 'exception'),
    ({'exception': {'type': 'E', 'stack': ['a']}}, 'exception.stack'),
    ({'exception': {}}, 'exception'),
    ({'user': 'jane'}, 'user'),
    ({'user': {'id': {'nested': 1}}}, 'user.id'),
    ({'account': []}, 'account'),
    ({'breadcrumbs': {}}, 'breadcrumbs'),
    ({'breadcrumbs': ['x']}, 'breadcrumbs[0]'),
    ({'extra': 'text'}, 'extra'),
    ({'environment': {'a': 1}}, 'environment'),
    ({'release': True}, 'release'),
])
def test_invalid_event_gets_400_naming_the_field(http, project, change, field):
    payload = {k: v for k, v in {**event(project), **change}.items() if v is not None}
    status, _headers, body = http.post('/api/v1/errors', payload)
    assert status == 400, body
    assert body['detail'].startswith(field + ':'), body


def test_message_events_and_the_sdk_init_ping(http, read_api, project):
    status, _h, _b = http.post('/api/v1/errors', event(
        project, type='message', exception=None, message='Cache miss rate 93% on node 7', level='warning'))
    assert status == 202
    status, _h, _b = http.post('/api/v1/errors', event(
        project, type='message', exception=None, message='Cache miss rate 12% on node 2', level='warning'))
    assert status == 202
    # 0.1.0 of the Python SDK announces itself: acknowledged, no issue.
    status, _h, body = http.post('/api/v1/errors', event(
        project, type='message', exception=None, message='proliferate-sdk-init', level='info'))
    assert status == 202 and 'event_id' in body
    [issue] = issues_of(read_api, project)
    assert issue['event_count'] == 2 and issue['level'] == 'warning'
    assert issue['title'] == 'Cache miss rate 93% on node 7'
    assert dropped(read_api, project, {'sdk_init': 1}) == {'sdk_init': 1}


def test_duplicates_are_acknowledged_but_never_counted_twice(http, read_api, project):
    payload = event(project, event_id='evt_retry')
    assert http.post('/api/v1/errors', payload)[0] == 202
    assert http.post('/api/v1/errors', payload)[0] == 202
    status, _h, body = http.post('/api/v1/errors/batch', [payload, event(project, event_id='evt_new'),
                                                          event(project, event_id='evt_new')])
    assert status == 202
    assert [r['status'] for r in body['results']] == ['duplicate', 'ok', 'duplicate']
    [issue] = issues_of(read_api, project)
    assert issue['event_count'] == 2
    assert dropped(read_api, project, {'duplicate': 3}) == {'duplicate': 3}


def test_the_same_event_id_in_two_projects_is_two_events(http, read_api, project):
    other = make_project('api')
    assert http.post('/api/v1/errors', event(project, event_id='same'))[0] == 202
    assert http.post('/api/v1/errors', event(other, event_id='same'))[0] == 202
    assert issues_of(read_api, other)[0]['event_count'] == 1


def test_grouping_ignores_lines_and_splits_on_frames(http, read_api, project):
    def stack(fn, line):
        return f'TypeError: boom\n    at {fn} (https://x.com/js/app.js?v=1:{line}:3)\n    at b (y.js:2:2)'
    for fn, line in (('a', 10), ('a', 99), ('c', 10)):
        exc = {'type': 'TypeError', 'message': 'boom', 'stack': stack(fn, line)}
        assert http.post('/api/v1/errors', event(project, exception=exc))[0] == 202
    counts = sorted((i['culprit'], i['event_count']) for i in issues_of(read_api, project))
    assert counts == [('a in app.js', 2), ('c in app.js', 1)]


def test_users_accounts_and_hourly_counts_accumulate(http, read_api, project):
    for n in range(6):
        user = {'id': f'u{n % 3}'} if n < 5 else {'email': 'anon@example.com'}
        payload = event(project, user=user, account={'id': f'a{n % 2}', 'name': f'Org {n % 2}'},
                        timestamp=f'2025-01-15T1{n % 2}:30:00Z')
        assert http.post('/api/v1/errors', payload)[0] == 202
    [issue] = issues_of(read_api, project)
    assert (issue['event_count'], issue['user_count'], issue['account_count']) == (6, 4, 2)
    users = read_api.get(f'/api/v1/issues/{issue["id"]}/users')['users']
    assert sorted((u['key'], u['event_count']) for u in users) == [
        ('anon@example.com', 1), ('u0', 2), ('u1', 2), ('u2', 1)]
    assert issue['first_seen'].startswith('2025-01-15T10:30') and issue['last_seen'].startswith('2025-01-15T11:30')


def test_resolved_issue_regresses_on_a_new_event(http, read_api, project):
    assert http.post('/api/v1/errors', event(project, release='1.0'))[0] == 202
    [issue] = issues_of(read_api, project)
    status, _h, body = read_api.request('PATCH', f'/api/v1/issues/{issue["id"]}', {'status': 'resolved'})
    assert status == 200 and body['status'] == 'resolved'
    assert issues_of(read_api, project, status='unresolved') == []
    assert http.post('/api/v1/errors', event(project, release='1.1'))[0] == 202
    again = read_api.get(f'/api/v1/issues/{issue["id"]}')
    assert again['status'] == 'unresolved' and again['is_regressed'] is True
    assert again['regressed_release'] == '1.1' and again['event_count'] == 2
    status, _h, body = read_api.request('PATCH', f'/api/v1/issues/{issue["id"]}', {'status': 'closed'})
    assert status == 400 and 'status' in body['detail']


def test_python_sdk_shape_on_the_v1_alias_with_header_key(http, read_api, project):
    payload = {
        'event_id': uuid.uuid4().hex, 'timestamp': '2025-01-15T10:30:00.123456+00:00',
        'platform': 'python', 'release': None, 'environment': 'production',
        'session_id': uuid.uuid4().hex, 'window_id': None, 'trace_id': uuid.uuid4().hex,
        'exception': {'type': 'ValueError', 'value': 'bad input 42',
                      'stacktrace': 'Traceback (most recent call last):\n'
                                    '  File "/srv/app/main.py", line 10, in <module>\n    run()\n'
                                    '  File "/srv/app/jobs.py", line 5, in run\n    parse()\n'
                                    'ValueError: bad input 42\n',
                      'mechanism': {'handled': True}},
        'context': {'user': {'id': '7', 'email': 'a@b.c', 'username': None, 'ip_address': None},
                    'tags': {'feature': 'checkout'}},
    }
    status, _h, body = http.post('/v1/errors', payload, headers={'X-API-Key': project.key})
    assert (status, body) == (202, {'event_id': payload['event_id']})
    [issue] = issues_of(read_api, project)
    assert issue['title'] == 'ValueError: bad input 42'
    assert issue['culprit'] == 'run in jobs.py' and issue['user_count'] == 1
    [stored] = read_api.get(f'/api/v1/issues/{issue["id"]}/events')['events']
    assert stored['tags'] == {'feature': 'checkout'} and stored['type'] == 'exception'
    assert stored['exception']['message'] == 'bad input 42'
    assert read_api.get(f'/api/v1/issues/{issue["id"]}')['tags']['feature'] == [
        {'value': 'checkout', 'count': 1}]


def test_text_plain_gzip_and_cors(http, read_api, project):
    body = json.dumps(event(project, event_id='beacon')).encode()
    status, headers, reply = http.request('POST', '/api/v1/errors/batch', raw=json.dumps(
        [event(project, event_id='beacon')]).encode(), headers={'Content-Type': 'text/plain;charset=UTF-8'})
    assert status == 202 and reply['results'][0]['status'] == 'ok'
    assert headers['Access-Control-Allow-Origin'] == '*'
    status, _h, reply = http.request('POST', '/api/v1/errors', raw=gzip.compress(
        json.dumps(event(project, event_id='zipped')).encode()),
        headers={'Content-Type': 'application/json', 'Content-Encoding': 'gzip'})
    assert (status, reply) == (202, {'event_id': 'zipped'})
    status, headers, _r = http.request('OPTIONS', '/api/v1/errors', headers={
        'Origin': 'https://shop.example', 'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type'})
    assert status == 204 and 'POST' in headers['Access-Control-Allow-Methods']
    assert 'Content-Type' in headers['Access-Control-Allow-Headers']
    status, _h, reply = http.request('POST', '/api/v1/errors', raw=body,
                                     headers={'Content-Type': 'application/xml'})
    assert status == 415 and 'Content-Type' in reply['detail']


def test_limits(http, read_api, project):
    big = event(project, extra={'blob': 'x' * (1024 * 1024)})
    status, _h, reply = http.post('/api/v1/errors', big)
    assert status == 413 and 'bytes' in reply['detail']
    status, _h, reply = http.post('/api/v1/errors/batch', [event(project) for _ in range(101)])
    assert status == 400 and '101' in reply['detail'] and '100' in reply['detail']
    bomb = gzip.compress(b'[' + b' ' * (12 * 1024 * 1024) + b']')
    status, _h, reply = http.request('POST', '/api/v1/errors/batch', raw=bomb, headers={
        'Content-Type': 'application/json', 'Content-Encoding': 'gzip'})
    assert status == 413
    long_message = 'm' * 50_000
    status, _h, _r = http.post('/api/v1/errors', event(
        project, exception={'type': 'E', 'message': long_message}, event_id='long'))
    assert status == 202
    stored = read_api.get(f'/api/v1/projects/{project.id}/events/long')
    assert 1000 < len(stored['exception']['message']) <= 10_000
    for raw in (b'{"event_id": "x", ', b'not json', b'{"a": NaN}', b'{"a": "\\ud800"}', b'{"a": "\xff"}',
                b'[' * 100_000 + b']' * 100_000, b'{"event_id": 1' + b'1' * 5000 + b'}', b'', b'[1]'):
        status, _h, reply = http.request('POST', '/api/v1/errors', raw=raw)
        assert status == 400, (raw[:20], status, reply)
        assert reply['detail']


def test_refusals_are_counted_against_the_senders_project(http, read_api, project):
    # The key first in the body (the 0.1.0 SDK), the body over the limit: never parsed, still counted.
    big = {'api_key': project.key, **event(project, extra={'blob': 'x' * (1024 * 1024)})}
    assert http.post('/api/v1/errors', big)[0] == 413
    # The key in the header, a gzipped batch that is only too large once decompressed.
    bomb = gzip.compress(json.dumps([event(project, extra={'blob': 'y' * (11 * 1024 * 1024)})]).encode())
    status, _h, _r = http.request('POST', '/api/v1/errors/batch', raw=bomb, headers={
        'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'X-API-Key': project.key})
    assert status == 413
    # A stranger's key, or none, counts against nobody.
    assert http.post('/api/v1/errors', {**big, 'api_key': 'pk_unknown'})[0] == 413
    # One invalid event in a batch: rejected and counted; the others stored.
    status, _h, body = http.post('/api/v1/errors/batch', [event(project), event(project, level='loud')])
    assert status == 202 and [r['status'] for r in body['results']] == ['ok', 'rejected']
    assert dropped(read_api, project, {'too_large': 2, 'invalid': 1}) == {'too_large': 2, 'invalid': 1}


def test_revoked_key_and_unknown_routes(http, project, live_server):
    from proliferate import db
    from proliferate import times
    from proliferate.models import ProjectKey
    with db.database.connection_context():
        ProjectKey.update(revoked_at=times.utcnow()).where(ProjectKey.key == project.key).execute()
    # A fresh key cache would see it at once; the running server trusts a looked-up key for
    # key_cache_seconds, so look it up for the first time only now.
    status, _h, body = http.post('/api/v1/errors', event(project))
    assert (status, body) == (401, {'detail': 'Invalid API key'})
    assert http.request('GET', '/api/v1/nothing')[0] == 404
    assert http.request('GET', '/healthz')[2]['status'] == 'ok'


def test_read_api_requires_a_token_and_sees_only_its_org(http, read_api, project, live_server):
    from factories import make_token
    from pageclient import HttpClient
    assert http.request('GET', '/api/v1/projects')[0] == 401
    assert HttpClient(live_server, 'prt_wrong').request('GET', '/api/v1/projects')[0] == 401
    other = make_project('secret', org_slug='rival')
    assert http.post('/api/v1/errors', event(other))[0] == 202
    assert [p['slug'] for p in read_api.get('/api/v1/projects')['projects']] == ['web']
    assert read_api.request('GET', f'/api/v1/projects/{other.id}/issues')[0] == 404
    rival = HttpClient(live_server, make_token(other.org_id, 'rival@example.com'))
    [issue] = rival.get(f'/api/v1/projects/{other.id}/issues')['issues']
    assert read_api.request('GET', f'/api/v1/issues/{issue["id"]}')[0] == 404
    assert read_api.request('PATCH', f'/api/v1/issues/{issue["id"]}', {'status': 'resolved'})[0] == 404


def test_issue_list_filters_sorts_and_pages(http, read_api, project):
    for n in range(7):
        exc = {'type': f'Error{n}', 'message': 'x', 'stack': f'Error{n}: x\n    at f{n} (a.js:1:1)'}
        for _ in range(n + 1):
            payload = event(project, exception=exc, environment='staging' if n % 2 else 'production',
                            release=f'r{n}', level='warning' if n == 3 else 'error')
            assert http.post('/api/v1/errors', payload)[0] == 202
    by_events = issues_of(read_api, project, sort='events', limit=3)
    assert [i['event_count'] for i in by_events] == [7, 6, 5]
    seen = []
    cursor = None
    while True:
        page = read_api.get(f'/api/v1/projects/{project.id}/issues?sort=events&limit=3'
                            + (f'&cursor={cursor}' if cursor else ''))
        seen += [i['event_count'] for i in page['issues']]
        cursor = page['next']
        if not cursor:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert {i['type'] for i in issues_of(read_api, project, environment='staging')} == {'Error1', 'Error3', 'Error5'}
    assert [i['type'] for i in issues_of(read_api, project, release='r4')] == ['Error4']
    assert [i['type'] for i in issues_of(read_api, project, level='warning')] == ['Error3']
    assert [i['type'] for i in issues_of(read_api, project, query='Error6')] == ['Error6']
    assert read_api.request('GET', f'/api/v1/projects/{project.id}/issues?sort=nope')[0] == 400
