"""The grouping memo and the user-agent cache: a hit gives exactly what a miss gives, callers
cannot change what is kept, and the memo stays within its bounds.
"""

import copy
import datetime

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from proliferate.ingest import grouping
from proliferate.ingest import prepare
from proliferate.ingest import useragent
from proliferate.ingest.normalize import normalize_event

RECEIVED = datetime.datetime(2025, 1, 15, 10, 30)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAME = st.text('abcXYZ_$.', min_size=1, max_size=12)
PATH = st.sampled_from((
    'https://app.example.com/js/main.3f9a1c7e.js', 'https://app.example.com/js/vendor.8b21d04f.js',
    'webpack:///./src/app.ts', '/srv/app/node_modules/react/index.js', '<anonymous>',
    '/home/app/myapp/views.py', '/usr/lib/python3.11/json/decoder.py',
))
NUMBER = st.integers(0, 99999)


def v8_stack(header, frames):
    return '\n'.join([header] + [f'    at {f} ({p}:{line}:{col})' for f, p, line, col in frames])


def gecko_stack(header, frames):
    return '\n'.join([f'{f}@{p}:{line}:{col}' for f, p, line, col in frames] or [header])


def python_stack(header, frames):
    lines = ['Traceback (most recent call last):']
    for function, path, line, _col in frames:
        lines += [f'  File "{path}", line {line}, in {function}', '    call()']
    return '\n'.join(lines + [header])


STACK = st.builds(
    lambda render, header, frames: render(header, frames),
    st.sampled_from((v8_stack, gecko_stack, python_stack)),
    st.sampled_from(('TypeError: x is undefined', 'ValueError: bad id 42', 'Error', 'x')),
    st.lists(st.tuples(NAME, PATH, NUMBER, NUMBER), max_size=6),
)
RULES = st.sampled_from((
    None, grouping.in_app_rules({'in_app': ['node_modules/react/']}),
    grouping.in_app_rules({'library': ['/src/', 'main.']}),
))


def raw_event(stack, exc_type, message, extra):
    exception = {'type': exc_type, 'message': message, 'stack': stack}
    return {'event_id': 'a' * 32, 'timestamp': '2025-01-15T10:29:00Z', 'type': 'exception',
            'release': 'v1', 'user_agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0',
            'exception': {k: v for k, v in exception.items() if v is not None}, **extra}


def prepared(raw, rules):
    _key, timestamp, event = normalize_event(copy.deepcopy(raw), received_at=RECEIVED)
    return prepare.prepare_event(event, 1, timestamp, RECEIVED, rules=rules)


@pytest.fixture(autouse=True)
def empty_memo():
    prepare.GROUPING_MEMO.clear()
    prepare.SEEN_ONCE.clear()
    yield
    prepare.GROUPING_MEMO.clear()
    prepare.SEEN_ONCE.clear()


@SETTINGS
@given(stack=STACK, exc_type=st.sampled_from((None, 'TypeError', 'myapp.PaymentError')),
       message=st.sampled_from((None, 'x is undefined', 'bad id 42')), rules=RULES,
       extra=st.sampled_from(({}, {'fingerprint': ['{{ default }}', 'checkout']},
                              {'user': {'id': 'u1'}})))
def test_a_memo_hit_gives_exactly_what_a_miss_gives(stack, exc_type, message, rules, extra):
    prepare.GROUPING_MEMO.clear()
    prepare.SEEN_ONCE.clear()
    raw = raw_event(stack, exc_type, message, extra)
    miss = prepared(raw, rules)
    assert len(prepare.GROUPING_MEMO) == 0  # a stack is kept the second time it comes
    assert prepared(raw, rules) == miss
    assert len(prepare.GROUPING_MEMO) == (0 if extra.get('fingerprint') else 1)
    hit = prepared(raw, rules)
    assert hit == miss
    # And both are what grouping gives without any memo.
    prepare.GROUPING_MEMO.clear()
    prepare.GROUPING_MEMO.max_entries = 0
    try:
        assert prepared(raw, rules) == miss
    finally:
        prepare.GROUPING_MEMO.max_entries = prepare.MEMO_ENTRIES


def test_a_repeated_stack_is_parsed_twice_at_most(monkeypatch):
    raw = raw_event(v8_stack('TypeError: boom', [('load', 'https://x.example/a.js', 1, 2)]),
                    'TypeError', 'boom', {})
    calls = []
    real = grouping.parse_stack
    monkeypatch.setattr(grouping, 'parse_stack', lambda *a, **k: calls.append(1) or real(*a, **k))
    first = prepared(raw, None)
    for _ in range(5):
        assert prepared(raw, None) == first
    # Parsed when first seen and when kept (its second time), never again.
    assert len(calls) == 2
    # Other rules group differently, so they are another entry.
    prepared(raw, grouping.in_app_rules({'library': ['a.js']}))
    assert len(calls) == 3


def test_callers_cannot_change_the_kept_frames():
    raw = raw_event(v8_stack('TypeError: boom', [('load', 'https://x.example/a.js', 1, 2),
                                                 ('run', 'https://x.example/b.js', 3, 4)]),
                    'TypeError', 'boom', {})
    first = prepared(raw, None)
    expected = copy.deepcopy(first['frames'])
    # The first is not kept, the second is kept, the third is a hit.
    for item in (first, prepared(raw, None), prepared(raw, None)):
        # What the source-map resolver does to an item's frames.
        item['frames'][0]['function'] = 'rewritten'
        item['frames'][0]['abs_path'] = 'src/app.ts'
        item['frames'].pop()
    assert prepared(raw, None)['frames'] == expected


def test_events_the_memo_does_not_keep():
    long_stack = v8_stack('TypeError: boom', [('load', 'https://x.example/a.js', 1, 2)] * 2000)
    for raw in (raw_event(long_stack[:prepare.MAX_MEMO_STACK + 10], 'TypeError', 'boom', {}),
                raw_event('TypeError: boom\n    at f (a.js:1:2)', 'TypeError', 'boom',
                          {'fingerprint': ['mine']}),
                {'event_id': 'b' * 32, 'timestamp': '2025-01-15T10:29:00Z', 'type': 'message',
                 'message': 'hello'}):
        prepared(raw, None)
        prepared(raw, None)
    # A Sentry SDK's structured frames: no stack text to key them by.
    _key, timestamp, event = normalize_event(raw_event('TypeError: boom', 'TypeError', 'boom', {}),
                                             received_at=RECEIVED)
    event['frames'] = [{'function': 'f', 'filename': 'a.py', 'abs_path': 'a.py', 'lineno': 1}]
    for _ in range(2):
        item = prepare.prepare_event(copy.deepcopy(event), 1, timestamp, RECEIVED)
        assert item['culprit'] == 'f in a.py'
    assert len(prepare.GROUPING_MEMO) == 0


def test_the_memo_is_bounded_in_entries_and_size_and_drops_the_least_recent():
    memo = prepare.BoundedMemo(max_entries=3, max_size=100)
    for key in 'abc':
        memo.put(key, key.upper(), 10)
    assert memo.get('a') == 'A'  # now the most recent
    memo.put('d', 'D', 10)
    assert memo.get('b') is None and memo.get('a') == 'A' and len(memo) == 3
    memo.put('e', 'E', 85)
    assert memo.size <= 100 and memo.get('e') == 'E'
    assert memo.get('c') is None and memo.get('d') is None
    memo.put('huge', 'H', 101)
    assert memo.get('huge') is None
    memo.put('e', 'E2', 5)
    assert memo.get('e') == 'E2' and memo.size == sum(s for _v, s in memo._entries.values())


@pytest.mark.parametrize('agent', [
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0.0.0 Safari/537.36',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Version/17.4 Mobile/15E148 Safari/6',
    'curl/8.5.0', 'x' * 600 + ' Firefox/3', '',
])
def test_user_agents_answer_the_same_from_the_cache(agent):
    uncached = useragent._parse.__wrapped__(agent[:512]) if agent else (None, None)
    assert useragent.parse_user_agent(agent) == uncached
    assert useragent.parse_user_agent(agent) == uncached
