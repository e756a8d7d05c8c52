"""normalize_event: every accepted shape -> one internal event; table-driven."""

import datetime

import pytest

from proliferate.ingest.normalize import ValidationError
from proliferate.ingest.normalize import bound_json
from proliferate.ingest.normalize import normalize_event
from proliferate.ingest.normalize import parse_timestamp

NOW = datetime.datetime(2025, 1, 15, 12, 0, 0)


def base(**fields):
    event = {'api_key': 'pk_x', 'event_id': 'e1', 'timestamp': '2025-01-15T10:30:00Z',
             'type': 'exception', 'exception': {'type': 'TypeError', 'message': 'm', 'stack': 's'}}
    event.update(fields)
    return event


@pytest.mark.parametrize('raw, expected', [
    ('2025-01-15T10:30:00Z', datetime.datetime(2025, 1, 15, 10, 30)),
    ('2025-01-15T10:30:00.123Z', datetime.datetime(2025, 1, 15, 10, 30, 0, 123000)),
    ('2025-01-15T10:30:00.123456789Z', datetime.datetime(2025, 1, 15, 10, 30, 0, 123456)),
    ('2025-01-15T12:30:00+02:00', datetime.datetime(2025, 1, 15, 10, 30)),
    ('2025-01-15T10:30:00.5-01:00', datetime.datetime(2025, 1, 15, 11, 30, 0, 500000)),
    ('2025-01-15T10:30:00.123456+00:00', datetime.datetime(2025, 1, 15, 10, 30, 0, 123456)),
    ('2025-01-15 10:30:00', datetime.datetime(2025, 1, 15, 10, 30)),
    ('2025-01-15T10:30:00z', datetime.datetime(2025, 1, 15, 10, 30)),
    (1736937000, datetime.datetime(2025, 1, 15, 10, 30)),
    (1736937000000, datetime.datetime(2025, 1, 15, 10, 30)),
    ('2030-01-01T00:00:00Z', NOW),  # a clock running ahead: the time it was received
])
def test_timestamps(raw, expected):
    assert parse_timestamp(raw, NOW) == expected


@pytest.mark.parametrize('raw', ['', 'yesterday', '2025-13-01T00:00:00Z', '1969-12-31T23:59:59Z',
                                 '9' * 100, None, True, [], {}, float('nan')])
def test_bad_timestamps(raw):
    with pytest.raises(ValidationError) as error:
        parse_timestamp(raw, NOW)
    assert error.value.field == 'timestamp'


def test_documented_shape_keeps_every_field():
    payload = base(level='warning', environment='prod', release='1.0', url='https://x/y?q=1',
                   user_agent='UA', user={'id': 42, 'email': 'a@b.c'},
                   account={'id': 'acct', 'name': 'Acme'}, session_id='s', window_id='w',
                   breadcrumbs=[{'timestamp': 1, 'category': 'c', 'message': 'm', 'level': 'info',
                                 'data': {'k': 'v'}}],
                   extra={'a': [1, 2, {'b': None}]})
    api_key, timestamp, event = normalize_event(payload, received_at=NOW)
    assert api_key == 'pk_x' and timestamp == datetime.datetime(2025, 1, 15, 10, 30)
    assert event['timestamp'] == '2025-01-15T10:30:00.000000Z'
    assert event['user'] == {'id': '42', 'email': 'a@b.c'}
    assert event['account'] == {'id': 'acct', 'name': 'Acme'}
    assert event['breadcrumbs'] == payload['breadcrumbs']
    assert event['extra'] == payload['extra']
    for field in ('level', 'environment', 'release', 'url', 'user_agent', 'session_id', 'window_id'):
        assert event[field] == payload[field]


def test_sdk_shape_is_renamed_here():
    payload = {'event_id': 'abc', 'timestamp': '2025-01-15T10:30:00+00:00', 'platform': 'python',
               'release': None, 'environment': 'production', 'window_id': None, 'trace_id': 't',
               'exception': {'type': 'ValueError', 'value': 'v', 'stacktrace': 'tb',
                             'mechanism': {'handled': False}},
               'context': {'user': {'id': '1', 'email': None, 'username': 'u', 'ip_address': None},
                           'tags': {'k': 'v'}}}
    api_key, _ts, event = normalize_event(payload, received_at=NOW, header_key='pk_header')
    assert api_key == 'pk_header'
    assert event['type'] == 'exception' and event['level'] == 'error'
    assert event['exception'] == {'type': 'ValueError', 'message': 'v', 'stack': 'tb',
                                  'mechanism': {'handled': False}}
    assert event['user'] == {'id': '1', 'username': 'u'}
    assert event['tags'] == {'k': 'v'} and event['platform'] == 'python'
    assert event['release'] is None and event['window_id'] is None


@pytest.mark.parametrize('level, expected', [
    (None, 'error'), ('ERROR', 'error'), ('warn', 'warning'), ('fatal', 'error'),
    ('debug', 'info'), ('info', 'info')])
def test_levels(level, expected):
    assert normalize_event(base(level=level), received_at=NOW)[2]['level'] == expected


def test_message_event_without_type():
    payload = base(type=None, exception=None, message='hello')
    assert normalize_event(payload, received_at=NOW)[2]['type'] == 'message'


def test_over_long_strings_are_trimmed_and_free_form_json_bounded():
    payload = base(exception={'type': 'E' * 1000, 'message': 'm' * 20000, 'stack': 's' * 200000},
                   environment='e' * 500, breadcrumbs=[{'message': str(i)} for i in range(150)])
    event = normalize_event(payload, received_at=NOW)[2]
    assert len(event['exception']['type']) == 256
    assert len(event['exception']['message']) == 10000
    assert len(event['exception']['stack']) == 100000
    assert len(event['environment']) == 200
    assert [c['message'] for c in event['breadcrumbs']][:2] == ['50', '51']
    assert len(event['breadcrumbs']) == 100

    deep = current = {}
    for _ in range(50):
        current['x'] = current = {}
    wide = {str(i): i for i in range(1000)}
    bounded = bound_json({'deep': deep, 'wide': wide, 'long': 'z' * 100000})
    assert len(bounded['wide']) == 201 and len(bounded['long']) == 4096
    depth = 0
    node = bounded['deep']
    while isinstance(node, dict):
        node = node.get('x')
        depth += 1
    assert depth <= 10


@pytest.mark.parametrize('payload, field', [
    ([], 'event'), ('x', 'event'), (base(event_id=''), 'event_id'), (base(api_key=5), 'api_key'),
    (base(context=[]), 'context'), (base(tags='x'), 'tags'),
    (base(exception={'type': 'E', 'message': {'a': 1}}), 'exception.message'),
    (base(type='message', exception=None, message=None), 'message'),
    (base(message=5), 'message'),
])
def test_validation_errors_name_the_field(payload, field):
    with pytest.raises(ValidationError) as error:
        normalize_event(payload, received_at=NOW)
    assert error.value.field == field


def test_stored_payload_round_trips_and_reads_older_rows():
    import zlib

    import orjson

    from proliferate.ingest.payload import decode_event
    from proliferate.ingest.payload import encode_event
    event = normalize_event(base(user_agent='Mozilla/5.0 (X11; Linux x86_64)'), received_at=NOW)[2]
    stored = encode_event(event)
    assert stored[0] == 1 and len(stored) < len(orjson.dumps(event))
    assert {k: v for k, v in decode_event(stored).items() if k != 'frames'} == event
    legacy = zlib.compress(orjson.dumps(event))
    assert {k: v for k, v in decode_event(legacy).items() if k != 'frames'} == event
