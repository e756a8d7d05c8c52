"""The Sentry front door without a real SDK: the envelope parser (the spec's examples, what
sentry_sdk and the JavaScript SDK serialise), the event mapping, and the routes on a live server
(keys, encodings, limits, rate limits, CORS, duplicates, dropped item types)."""

import gzip
import json
import zlib

import orjson
import pytest

from proliferate import orgs
from proliferate import paths
from proliferate.ingest.envelope import EnvelopeError
from proliferate.ingest.envelope import parse_envelope
from proliferate.ingest.prepare import prepare_event
from proliferate.ingest.sentry import sentry_event
from proliferate.ingest.sentry_api import public_key
from proliferate.models import ProjectKey
from proliferate.times import utcnow

EVENT_ID = '9ec79c33ec9942ab8353589fcb2e04dc'


def test_envelope_spec_examples():
    # An envelope with two items, lengths given, the final newline present.
    body = (b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://e12d836b15bb49d7bbf99e64'
            b'295d995b:@sentry.io/42"}\n'
            b'{"type":"attachment","length":10,"content_type":"text/plain","filename":"hello.txt"}\n'
            b'\xef\xbb\xbfHello\r\n\n'
            b'{"type":"event","length":41,"content_type":"application/json","filename":"app.log"}\n'
            b'{"message":"hello world","level":"error"}\n')
    header, items = parse_envelope(body)
    assert header['event_id'] == EVENT_ID
    assert [(h['type'], p) for h, p in items] == [
        ('attachment', b'\xef\xbb\xbfHello\r\n'),
        ('event', b'{"message":"hello world","level":"error"}')]
    # Without lengths: each payload runs to the next newline; no final newline.
    header, items = parse_envelope(b'{}\n{"type":"session"}\n{"started":"2020-02-07T14:16:00Z"}'
                                   b'\n{"type":"attachment","length":0}\n')
    assert [(h['type'], p) for h, p in items] == [
        ('session', b'{"started":"2020-02-07T14:16:00Z"}'), ('attachment', b'')]
    # An item header with nothing after it; only a header.
    assert parse_envelope(b'{"event_id":"x"}\n{"type":"attachment","length":0}')[1][0][1] == b''
    assert parse_envelope(b'{"event_id":"x"}') == ({'event_id': 'x'}, [])


def test_envelope_sentry_sdk_bytes():
    event = {'event_id': EVENT_ID, 'message': 'line one\nline two', 'level': 'warning'}
    payload = orjson.dumps(event)
    # sentry_sdk writes every item with its length and a newline after it.
    body = (orjson.dumps({'event_id': EVENT_ID, 'sent_at': '2026-01-01T00:00:00Z'}) + b'\n'
            + orjson.dumps({'type': 'event', 'length': len(payload)}) + b'\n' + payload + b'\n')
    _header, items = parse_envelope(body)
    assert orjson.loads(items[0][1]) == event


def test_envelope_javascript_shape():
    # The JavaScript SDK: no length, no final newline.
    body = (json.dumps({'event_id': EVENT_ID, 'sdk': {'name': 'sentry.javascript.browser'}})
            + '\n' + json.dumps({'type': 'event'}) + '\n'
            + json.dumps({'exception': {'values': [{'type': 'Error', 'value': 'boom'}]}}))
    _header, items = parse_envelope(body.encode())
    assert items[0][0] == {'type': 'event'}
    assert orjson.loads(items[0][1])['exception']['values'][0]['value'] == 'boom'


@pytest.mark.parametrize('body, problem', [
    (b'', 'envelope header: empty'),
    (b'not json\n', 'envelope header: not valid JSON'),
    (b'[1]\n', 'must be a JSON object'),
    (b'{}\n{"length":2}\nab', '"type" is required'),
    (b'{}\n{"type":"event","length":99}\n{}', 'only 2 bytes follow'),
    (b'{}\n{"type":"event","length":-1}\n{}', 'non-negative'),
    (b'{}\n{"type":"event","length":1}\nab', 'no newline'),
])
def test_malformed_envelopes(body, problem):
    with pytest.raises(EnvelopeError, match=problem):
        parse_envelope(body)


def python_payload():
    return {
        'event_id': EVENT_ID, 'timestamp': 1767225600.25, 'level': 'fatal', 'platform': 'python',
        'release': 'shop@1.0', 'environment': 'staging', 'server_name': 'web-1',
        'logger': 'shop', 'transaction': '/checkout',
        'sdk': {'name': 'sentry.python', 'version': '2.0.0'},
        'user': {'id': 'u1', 'email': 'jane@example.com', 'ip_address': '{{auto}}'},
        'tags': [['checkout_step', 'payment'], ['retry', True]],
        'contexts': {'account': {'id': 'acct-7', 'name': 'Acme'},
                     'browser': {'name': 'Firefox', 'version': '120.0.1'},
                     'os': {'name': 'Linux'}, 'trace': {'trace_id': 'ab' * 16}},
        'breadcrumbs': {'values': [{'timestamp': 1767225599.5, 'category': 'auth',
                                    'message': 'login', 'level': 'info'}]},
        'request': {'url': 'https://shop.example.com/pay?token=s3cret', 'method': 'POST',
                    'headers': {'Cookie': 'a=b', 'Authorization': 'Bearer x',
                                'User-Agent': 'curl/8'}},
        'fingerprint': ['{{ default }}', 'payments'],
        'exception': {'values': [
            {'type': 'ValueError', 'value': 'bad digit', 'stacktrace': {'frames': [
                {'function': 'parse', 'filename': 'shop/util.py', 'abs_path': '/app/shop/util.py',
                 'lineno': 3, 'in_app': True}]}},
            {'type': 'PaymentError', 'value': 'card declined', 'module': 'shop.errors',
             'mechanism': {'type': 'generic', 'handled': False},
             'stacktrace': {'frames': [
                 {'function': 'main', 'filename': 'shop/app.py', 'abs_path': '/app/shop/app.py',
                  'lineno': 40, 'in_app': True},
                 {'function': 'authorize', 'filename': 'shop/pay.py',
                  'abs_path': '/app/shop/pay.py', 'lineno': 12, 'in_app': True,
                  'context_line': '    raise PaymentError()', 'pre_context': ['def f():'],
                  'vars': {'amount': 3, 'password': 'hunter2'}}]}},
        ]},
    }


def test_sentry_event_mapping():
    received = utcnow()
    timestamp, event = sentry_event(python_payload(), received_at=received, client_ip='10.0.0.9')
    assert event['event_id'] == EVENT_ID
    assert timestamp.year == 2026
    assert (event['type'], event['level'], event['sentry_level']) == ('exception', 'error', 'fatal')
    assert event['exception']['type'] == 'PaymentError'
    assert event['exception']['mechanism']['handled'] is False
    # Top first: the frame nearest to the raise leads.
    assert [f['function'] for f in event['frames']] == ['authorize', 'main']
    assert event['frames'][0]['in_app'] is True
    assert [c['type'] for c in event['causes']] == ['ValueError']
    assert event['user']['ip_address'] == '10.0.0.9'
    assert event['account'] == {'id': 'acct-7', 'name': 'Acme'}
    assert event['tags'] == {'checkout_step': 'payment', 'retry': 'true'}
    assert event['breadcrumbs'][0]['message'] == 'login'
    assert 'Cookie' not in event['request']['headers']
    assert 'Authorization' not in event['request']['headers']
    assert event['user_agent'] == 'curl/8'
    item = prepare_event(event, 1, timestamp, received)
    assert item['title'] == 'PaymentError: card declined'
    assert item['culprit'] == 'authorize in pay.py'
    assert item['custom_fingerprint'] == ['{{ default }}', 'payments']
    assert item['account'] == ('acct-7', 'Acme')
    assert ('checkout_step', 'payment') in item['tags']
    assert ('os', 'Linux') in item['tags'] or any(k == 'os' for k, _v in item['tags'])
    assert item['event']['frames'][0]['vars']['password'] == '[Filtered]'
    assert 's3cret' not in item['event']['url']
    # The header's id wins; dashes do not make another id.
    dashed = '9ec79c33-ec99-42ab-8353-589fcb2e04dd'
    assert sentry_event(python_payload(), received_at=received,
                        event_id=dashed)[1]['event_id'] == dashed.replace('-', '')


def test_message_and_synthetic_exception():
    received = utcnow()
    _ts, event = sentry_event({'logentry': {'message': 'low stock: %s', 'params': ['sku-1']},
                               'level': 'warning'}, received_at=received)
    assert (event['type'], event['message'], event['level']) == ('message', 'low stock: sku-1',
                                                                  'warning')
    # captureMessage with a stack in the JavaScript SDK: an exception without a type.
    _ts, event = sentry_event({'message': 'hello', 'exception': {'values': [
        {'value': 'hello', 'stacktrace': {'frames': [{'function': 'f', 'filename': 'a.js'}]}}]}},
        received_at=received)
    item = prepare_event(event, 1, received, received)
    assert (item['event_type'], item['title']) == ('message', 'hello')


def test_same_bug_same_fingerprint_as_documented_rule():
    received = utcnow()
    first = prepare_event(sentry_event(python_payload(), received_at=received)[1], 1, received,
                          received)
    payload = python_payload()
    payload['exception']['values'][1]['stacktrace']['frames'][1]['lineno'] = 99
    payload['exception']['values'][1]['value'] = 'card declined again'
    second = prepare_event(sentry_event(payload, received_at=received)[1], 1, received, received)
    assert first['fingerprint'] == second['fingerprint']


def test_dsn_and_paths():
    assert orgs.dsn('https://errors.example.com:8443/sub/', 'pk_' + 'a' * 32, 7) == (
        'https://' + 'a' * 32 + '@errors.example.com:8443/sub/7')
    for path in ('/api/3/envelope', '/api/3/envelope/', '/sub/api/3/store/', '/api/x/store'):
        assert paths.kind(path) == paths.INGEST
    assert paths.kind('/projects/3/store') == paths.PAGE


class FakeRequest:
    def __init__(self, params=None, headers=None):
        self.params = params or {}
        self.headers = headers or {}

    def get_param(self, name):
        return self.params.get(name)

    def get_header(self, name):
        return self.headers.get(name)


def test_public_key_sources():
    assert public_key(FakeRequest({'sentry_key': 'k1'})) == 'k1'
    auth = 'Sentry sentry_version=7, sentry_client=sentry.python/2.0, sentry_key=k2'
    assert public_key(FakeRequest(headers={'X-Sentry-Auth': auth})) == 'k2'
    assert public_key(FakeRequest(), {'dsn': 'https://k3@host/1'}) == 'k3'
    assert public_key(FakeRequest()) is None


# -- the routes on a live server -----------------------------------------------------------------


def envelope(event, *, dsn=None, extra=b''):
    payload = orjson.dumps(event)
    header = {'event_id': event.get('event_id')}
    if dsn:
        header['dsn'] = dsn
    return (orjson.dumps(header) + b'\n' + orjson.dumps({'type': 'event', 'length': len(payload)})
            + b'\n' + payload + b'\n' + extra)


def send(http, project, body, *, key=None, headers=None, path='envelope', project_id=None):
    query = f'?sentry_key={key}' if key else ''
    return http.request('POST', f'/api/{project_id or project.id}/{path}/{query}', raw=body,
                        headers={'Content-Type': 'application/x-sentry-envelope',
                                 **(headers or {})})


def test_envelope_stored_once_with_cors_and_rate_limit_header(http, project, read_api):
    key = project.key[3:]
    body = envelope(python_payload())
    status, headers, reply = send(http, project, body, key=key)
    assert (status, reply) == (200, {'id': EVENT_ID})
    assert headers['Access-Control-Allow-Origin'] == '*'
    assert 'X-Sentry-Rate-Limits' in headers['Access-Control-Expose-Headers']
    limits = headers['X-Sentry-Rate-Limits']
    assert 'transaction' in limits and 'session' in limits
    assert 'error' not in limits.split(':')[1].split(';')
    assert 'default' not in limits.split(':')[1].split(';')
    assert 'Retry-After' not in headers
    # The same event again, gzip, key in X-Sentry-Auth: a duplicate, answered 200.
    auth = f'Sentry sentry_version=7, sentry_key={key}'
    status, _h, reply = send(http, project, gzip.compress(body),
                             headers={'Content-Encoding': 'gzip', 'X-Sentry-Auth': auth})
    assert (status, reply) == (200, {'id': EVENT_ID})
    issues = read_api.get(f'/api/v1/projects/{project.id}/issues')['issues']
    assert [(i['title'], i['event_count']) for i in issues] == [('PaymentError: card declined', 1)]
    event = read_api.get(f'/api/v1/issues/{issues[0]["id"]}/events')['events'][0]
    assert event['causes'][0]['type'] == 'ValueError'
    detail = read_api.get(f'/api/v1/projects/{project.id}')
    assert detail['dsn'].endswith(f'/{project.id}') and key in detail['dsn']
    assert detail['dropped'].get('duplicate') == 1


def test_store_and_dsn_in_envelope_header_and_raw_deflate(http, project, read_api):
    key = project.key[3:]
    payload = python_payload()
    payload['event_id'] = 'a' * 32
    status, _h, reply = send(http, project, orjson.dumps(payload), key=key, path='store')
    assert (status, reply) == (200, {'id': 'a' * 32})
    payload['event_id'] = 'b' * 32
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = raw.compress(envelope(payload, dsn=f'http://{key}@host/{project.id}')) + raw.flush()
    status, _h, reply = send(http, project, body, headers={'Content-Encoding': 'deflate'})
    assert (status, reply) == (200, {'id': 'b' * 32})


def test_non_event_items_are_accepted_and_counted(http, project, read_api):
    key = project.key[3:]
    body = (b'{"sent_at":"2026-01-01T00:00:00Z"}\n{"type":"session"}\n{"sid":"x"}\n'
            b'{"type":"transaction"}\n{"type":"transaction"}\n{"type":"made_up"}\n{}')
    status, headers, _reply = send(http, project, body, key=key)
    assert status == 200 and 'Retry-After' not in headers
    assert read_api.get(f'/api/v1/projects/{project.id}/issues')['issues'] == []
    http.request('GET', '/healthz')
    dropped = wait_dropped(read_api, project, 'sentry_transaction')
    assert dropped['sentry_session'] == 1 and dropped['sentry_other'] == 1


def wait_dropped(read_api, project, reason):
    import time
    deadline = time.monotonic() + 5
    while True:
        dropped = read_api.get(f'/api/v1/projects/{project.id}')['dropped']
        if reason in dropped or time.monotonic() > deadline:
            return dropped
        time.sleep(0.1)


@pytest.mark.parametrize('key, status', [(None, 401), ('f' * 32, 401), ('pk_nothex', 401)])
def test_wrong_keys_store_nothing(http, project, read_api, key, status):
    reply = send(http, project, envelope(python_payload()), key=key)
    assert reply[0] == status and 'detail' in reply[2]
    assert reply[1]['Access-Control-Allow-Origin'] == '*'
    assert read_api.get(f'/api/v1/projects/{project.id}/issues')['issues'] == []


def test_key_of_another_project_is_forbidden(http, project):
    from factories import make_project
    other = make_project('api')
    status, _h, reply = send(http, project, envelope(python_payload()), key=other.key[3:])
    assert status == 403 and 'detail' in reply


@pytest.mark.parametrize('body, headers, status', [
    (b'{}\n{"type":"event","length":5}\n{}', {}, 400),
    (b'garbage', {'Content-Encoding': 'gzip'}, 400),
    (b'garbage', {'Content-Encoding': 'compress'}, 400),
    (gzip.compress(b'{}\n{"type":"event"}\n' + b' ' * (20 * 1024 * 1024)),
     {'Content-Encoding': 'gzip'}, 413),
])
def test_bad_bodies(http, project, body, headers, status):
    reply = send(http, project, body, key=project.key[3:], headers=headers)
    assert reply[0] == status, reply
    assert 'detail' in reply[2]


def test_event_item_over_the_limit(http, project, read_api):
    payload = python_payload()
    payload['extra'] = {'blob': 'x' * (1024 * 1024 + 10)}
    status, _h, reply = send(http, project, envelope(payload), key=project.key[3:])
    assert status == 413 and 'event item' in reply['detail']
    assert wait_dropped(read_api, project, 'too_large')['too_large'] == 1


def test_rate_limited_answers_429_with_sentry_header(http, project, services):
    from proliferate import db
    from proliferate.models import Project
    with db.database.connection_context():
        Project.update(rate_limit_per_minute=1).where(Project.id == project.id).execute()
    key = project.key[3:]
    assert send(http, project, envelope(python_payload()), key=key)[0] == 200
    payload = python_payload()
    payload['event_id'] = 'c' * 32
    status, headers, _reply = send(http, project, envelope(payload), key=key)
    assert status == 429
    assert int(headers['Retry-After']) >= 1
    assert headers['X-Sentry-Rate-Limits'] == f'{headers["Retry-After"]}::key'


def test_preflight(http, project):
    status, headers, _body = http.request('OPTIONS', f'/api/{project.id}/envelope/', headers={
        'Origin': 'https://other.example', 'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type, x-sentry-auth'})
    assert status in (200, 204)
    assert headers['Access-Control-Allow-Origin'] == '*'
    assert 'POST' in headers['Access-Control-Allow-Methods']
    assert headers['Access-Control-Allow-Headers'] == 'content-type, x-sentry-auth'
    assert int(headers['Access-Control-Max-Age']) > 0


def test_last_used_is_written_once_a_minute(http, project, services):
    import time

    from proliferate import db
    send(http, project, envelope(python_payload()), key=project.key[3:])
    deadline = time.monotonic() + 5
    while True:
        with db.database.connection_context():
            used = ProjectKey.get(ProjectKey.key == project.key).last_used_at
        if used is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert used is not None


def test_issue_page_shows_causes_request_and_contexts(client, services):
    from factories import make_project as make_page_project
    from factories import make_user
    from pageclient import PageClient

    from proliferate import db
    from proliferate.models import Issue
    owner = make_user('owner@example.com')
    web = make_page_project('web')
    browser = PageClient(client)
    browser.login(owner.email)
    payload = python_payload()
    payload['exception']['values'][0]['value'] = '<script>alert(1)</script>'
    payload['contexts']['runtime'] = {'name': 'CPython', 'version': '3.11.7'}
    key = web.key[3:]
    result = client.simulate_post(f'/api/{web.id}/envelope/', params={'sentry_key': key},
                                  body=envelope(payload))
    assert result.status_code == 200, result.text
    with db.database.connection_context():
        issue = Issue.get()
    page = browser.get(f'/issues/{issue.id}').text
    assert 'Caused by' in page and 'ValueError' in page
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in page and '<script>alert(1)' not in page
    assert 'https://shop.example.com/pay' in page and 'CPython' in page
    assert 'sentry.python 2.0.0' in page and 'Bearer x' not in page
    settings = browser.get(f'/projects/{web.id}/settings').text
    assert f'{key}@' in settings and 'sentry_sdk.init' in settings
