"""Property tests (hypothesis): normalisation and grouping raise nothing but ValidationError and
keep their output bounded; scrubbing leaves no secret value and no card number behind.
"""

import copy
import datetime
import re

import orjson
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from proliferate.ingest import grouping
from proliferate.ingest import normalize
from proliferate.ingest import scrub
from proliferate.ingest.normalize import ValidationError
from proliferate.ingest.normalize import normalize_event
from proliferate.ingest.payload import encode_event

RECEIVED = datetime.datetime(2025, 1, 15, 10, 30)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The two that build whole events: fewer examples keep the module near 15 s on a shared machine.
HEAVY = settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What orjson.loads can produce: 64-bit integers, finite floats, any text without lone
# surrogates (orjson refuses them), nested lists and string-keyed objects.
TEXT = st.text(st.characters(blacklist_categories=('Cs',)), max_size=60)
LONG_TEXT = st.one_of(TEXT, st.builds(lambda c, n: c * n, st.sampled_from('a\n ~'), st.integers(0, 120_000)))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=6),
                               st.dictionaries(TEXT, children, max_size=6)),
    max_leaves=40)

FIELDS = ('api_key', 'event_id', 'timestamp', 'type', 'level', 'environment', 'release', 'url',
          'user_agent', 'exception', 'message', 'user', 'account', 'session_id', 'window_id',
          'breadcrumbs', 'extra', 'tags', 'context', 'platform', 'trace_id')
TIMESTAMPS = st.one_of(
    st.datetimes(min_value=datetime.datetime(1960, 1, 1)).map(lambda d: d.isoformat() + 'Z'),
    st.integers(-2 ** 63, 2 ** 63), st.floats(), TEXT)
FIELD_VALUES = {
    'event_id': st.one_of(TEXT, st.uuids().map(lambda u: u.hex), JSON),
    'timestamp': TIMESTAMPS,
    'type': st.one_of(st.sampled_from(['exception', 'message']), JSON),
    'level': st.one_of(st.sampled_from(['error', 'warn', 'FATAL', 'info', 'x']), JSON),
    'exception': st.one_of(JSON, st.fixed_dictionaries({}, optional={
        'type': st.one_of(TEXT, JSON), 'message': st.one_of(LONG_TEXT, JSON),
        'value': LONG_TEXT, 'stack': st.one_of(LONG_TEXT, JSON), 'stacktrace': LONG_TEXT,
        'mechanism': JSON})),
    'message': st.one_of(LONG_TEXT, JSON),
    'breadcrumbs': st.one_of(JSON, st.lists(st.dictionaries(
        st.sampled_from(['timestamp', 'category', 'message', 'level', 'type', 'data']), JSON),
        max_size=120)),
    'user': st.one_of(JSON, st.dictionaries(st.sampled_from(['id', 'email', 'name', 'x']), JSON)),
}


def event_strategy():
    values = {name: FIELD_VALUES.get(name, JSON) for name in FIELDS}
    return st.fixed_dictionaries({}, optional=values)


def walk(value, depth=0):
    """(max depth, max items in one container, longest string) of a JSON value."""
    if isinstance(value, str):
        return depth, 0, len(value)
    if isinstance(value, dict):
        parts = [walk(v, depth + 1) for v in value.values()] + [(depth, 0, len(str(k))) for k in value]
        items = len(value)
    elif isinstance(value, list):
        parts = [walk(v, depth + 1) for v in value]
        items = len(value)
    else:
        return depth, 0, 0
    parts.append((depth, items, 0))
    return max(p[0] for p in parts), max(max(p[1] for p in parts), items), max(p[2] for p in parts)


@pytest.mark.slow
@HEAVY
@given(event_strategy())
def test_normalize_raises_only_validation_error_and_bounds_the_event(payload):
    try:
        _key, timestamp, event = normalize_event(payload, received_at=RECEIVED)
    except ValidationError as error:
        assert error.field
        return
    assert isinstance(timestamp, datetime.datetime)
    assert timestamp <= RECEIVED + normalize.MAX_FUTURE
    depth, items, longest = walk(event)
    assert depth <= normalize.MAX_DEPTH + 4
    assert items <= max(normalize.MAX_ITEMS + 1, normalize.MAX_BREADCRUMBS, 30)
    assert longest <= normalize.MAX_STACK
    for part in ('extra', 'tags'):
        if event[part] is not None:
            assert len(orjson.dumps(event[part])) < 2 * normalize.MAX_FREE_FORM_CHARS + 64_000
    # What the writer stores must always encode (no lone surrogates, no >64-bit integers).
    assert isinstance(encode_event(event), bytes)


@pytest.mark.slow
@FAST
@given(JSON)
def test_normalize_refuses_any_json_that_is_not_an_event(payload):
    try:
        normalize_event(payload, received_at=RECEIVED)
    except ValidationError:
        pass


@FAST
@given(st.one_of(LONG_TEXT, JSON), st.integers(-5, 1000))
def test_parse_stack_is_total_and_bounded(stack, max_frames):
    result = grouping.parse_stack(stack, max_frames=max_frames)
    assert len(result['frames']) <= max(0, max_frames)
    for frame in result['frames']:
        assert len(orjson.dumps(frame)) < 20_000


@FAST
@given(st.sampled_from(['exception', 'message']), st.one_of(st.none(), TEXT, LONG_TEXT),
       st.one_of(st.none(), LONG_TEXT), LONG_TEXT)
def test_fingerprint_title_culprit_are_total_and_bounded(event_type, exc_type, message, stack):
    frames = grouping.parse_stack(stack)['frames']
    fingerprint = grouping.compute_fingerprint(
        event_type=event_type, exception_type=exc_type, message=message, frames=frames)
    assert isinstance(fingerprint, str) and 0 < len(fingerprint) <= 255
    # The same input groups the same way.
    assert fingerprint == grouping.compute_fingerprint(
        event_type=event_type, exception_type=exc_type, message=message, frames=frames)
    title = grouping.get_title(event_type, exc_type, message)
    assert isinstance(title, str) and len(title) <= grouping.TITLE_LIMIT + 1
    culprit = grouping.get_culprit(frames)
    assert isinstance(culprit, str) and len(culprit) <= grouping.CULPRIT_LIMIT + 1


# -- scrubbing ---------------------------------------------------------------------------------

def luhn_complete(body):
    """body + the check digit that makes it Luhn-valid."""
    for digit in '0123456789':
        if scrub.luhn_ok(body + digit):
            return body + digit
    raise AssertionError('unreachable')


CARDS = st.builds(
    lambda first, rest: luhn_complete(first + rest),
    st.sampled_from('23456'), st.integers(11, 17).flatmap(
        lambda n: st.text('0123456789', min_size=n, max_size=n)))
GROUPED_CARDS = st.builds(
    lambda card, sep: sep.join(card[i:i + 4] for i in range(0, len(card), 4)),
    CARDS, st.sampled_from(['', ' ', '-']))
SECRET_KEYS = st.builds(
    lambda pre, key, post, upper: (pre + (key.upper() if upper else key) + post),
    st.sampled_from(['', 'x_', 'db-', 'My']), st.sampled_from(scrub.DEFAULT_KEYS),
    st.sampled_from(['', '_id', 'Value', '-2']), st.booleans())
SECRET_VALUES = st.one_of(TEXT.filter(bool), st.integers(-2 ** 63, 2 ** 63 - 1), st.lists(TEXT, min_size=1),
                          st.dictionaries(TEXT, TEXT, min_size=1))
PLAIN_KEYS = st.sampled_from(['id', 'name', 'count', 'path', 'plan', 'color', 'version'])


@st.composite
def tree_with_secrets(draw):
    """Free-form JSON with secret keys and card numbers planted at random places."""
    secrets_planted = []
    cards = []

    def plant(value, depth):
        if depth > 4:
            return value
        if isinstance(value, dict):
            for key in list(value):
                value[key] = plant(value[key], depth + 1)
            if draw(st.booleans()):
                value[draw(SECRET_KEYS)] = draw(SECRET_VALUES)
                secrets_planted.append(True)
            if draw(st.booleans()):
                card = draw(GROUPED_CARDS)
                cards.append(card)
                value[draw(PLAIN_KEYS)] = f'card {card} here'
            return value
        if isinstance(value, list):
            return [plant(item, depth + 1) for item in value]
        return value

    base = draw(st.dictionaries(st.one_of(PLAIN_KEYS, TEXT), JSON, max_size=5))
    return plant(base, 0), cards


def looks_secret(key):
    """The test's own reading of the rule, independent of Scrubber.is_secret_key."""
    flat = ''.join(c for c in str(key).lower() if c not in '-_. ')
    return any(word.replace('_', '') in flat for word in scrub.DEFAULT_KEYS)


def secret_values_left(value, scrubber):
    """Secret-keyed values and card numbers still in value."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if looks_secret(key) and item not in (None, '', scrub.FILTERED):
                found.append((key, item))
            found.extend(secret_values_left(item, scrubber))
    elif isinstance(value, list):
        for item in value:
            found.extend(secret_values_left(item, scrubber))
    elif isinstance(value, str):
        for match in scrub._CARD.finditer(value):
            digits = match.group(0).replace(' ', '').replace('-', '')
            if scrub.luhn_ok(digits):
                found.append(('card', match.group(0)))
    return found


def bounded(tree):
    return normalize.bound_json(tree)


@pytest.mark.slow
@HEAVY
@given(tree_with_secrets(), tree_with_secrets(), tree_with_secrets(), tree_with_secrets())
def test_scrub_leaves_no_secret_and_no_card(extra, tags, user_data, crumb_data):
    planted = extra[1] + tags[1] + user_data[1] + crumb_data[1]
    extra, tags, user_data, crumb_data = extra[0], tags[0], user_data[0], crumb_data[0]
    event = {
        'url': 'https://shop.test/pay?session=abc123&q=1&api_key=k',
        'extra': bounded(extra), 'tags': bounded(tags),
        'user': {'id': 'u-1', 'email': 'ada@example.com', 'data': bounded(user_data)},
        'account': {'id': 'acct-1', 'name': 'Acme', 'data': bounded(user_data)},
        'breadcrumbs': [{'message': 'GET /login?password=hunter2&next=/', 'data': bounded(crumb_data)}],
    }
    before = copy.deepcopy(event)
    scrubber = scrub.scrubber_for(True, '')
    scrub.scrub_event(event, scrubber)
    for part in (event['extra'], event['tags'], event['user'], event['account'], event['breadcrumbs']):
        assert secret_values_left(part, scrubber) == []
    stored = orjson.dumps(event).decode()
    assert not [card for card in planted if card in stored]
    assert event['url'] == 'https://shop.test/pay?session=[Filtered]&q=1&api_key=[Filtered]'
    assert event['breadcrumbs'][0]['message'] == 'GET /login?password=[Filtered]&next=/'
    # The ids that group users and accounts stay; the shape stays (same keys everywhere).
    assert event['user']['id'] == 'u-1' and event['user']['email'] == 'ada@example.com'
    assert event['account']['id'] == 'acct-1' and event['account']['name'] == 'Acme'
    assert same_keys(before['extra'], event['extra']) and same_keys(before['tags'], event['tags'])
    # Idempotent: scrubbing twice changes nothing more.
    again = copy.deepcopy(event)
    assert scrub.scrub_event(again, scrubber) == event
    # Never larger than a few characters per filtered value.
    assert len(orjson.dumps(event)) <= len(orjson.dumps(before)) + 16 * count_leaves(before)


def same_keys(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(
            same_keys(a[k], b[k]) for k in a if isinstance(b[k], (dict, list)))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b)
    return True


def count_leaves(value):
    if isinstance(value, dict):
        return sum(count_leaves(v) for v in value.values()) + 1
    if isinstance(value, list):
        return sum(count_leaves(v) for v in value) + 1
    return 1


@pytest.mark.slow
@FAST
@given(JSON)
def test_scrub_off_changes_nothing_and_on_changes_only_secrets(tree):
    event = {'extra': {'data': copy.deepcopy(tree)}, 'url': None}
    assert scrub.scrubber_for(False, '') is None
    assert scrub.scrub_event(copy.deepcopy(event), None) == event
    scrubbed = scrub.scrub_event(copy.deepcopy(event), scrub.DEFAULT)
    text = orjson.dumps(event).decode()
    digits = re.sub(r'(?<=\d)[ -](?=\d)', '', text)
    if not secret_values_left(event, scrub.DEFAULT) and '=' not in text and not re.search(r'\d{13}', digits):
        assert scrubbed == event


@FAST
@given(CARDS, st.integers(0, 10 ** 12))
def test_cards_go_and_ordinary_numbers_stay(card, number):
    scrubber = scrub.DEFAULT
    assert scrubber.scrub_value({'n': int(card)}) == {'n': scrub.FILTERED}
    assert scrubber.scrub_string(f'paid with {card}.') == f'paid with {scrub.FILTERED}.'
    # Epoch milliseconds (13 digits starting with 1) and small numbers are not cards.
    millis = 1_700_000_000_000 + number % 10 ** 11
    assert scrubber.scrub_value({'at': millis, 'n': number}) == {'at': millis, 'n': number}


@pytest.mark.slow
@FAST
@given(st.lists(st.text('abcdefghijklmnopqrstuvwxyz_-', min_size=1, max_size=12), max_size=5),
       JSON)
def test_extra_keys_of_a_project_are_scrubbed_too(keys, value):
    scrubber = scrub.scrubber_for(True, ', '.join(keys))
    tree = {key: value for key in keys}
    scrubbed = scrubber.scrub_value(copy.deepcopy(tree))
    for key in keys:
        if scrub.normalize_key(key) and value not in (None, ''):
            assert scrubbed[key] == scrub.FILTERED
