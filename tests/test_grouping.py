"""Table-driven tests of proliferate.ingest.grouping over real stack traces in tests/data/stacks and
real bundler file names in tests/data/bundlers."""

import json
import pathlib
import random
import re

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from proliferate.ingest import grouping
from proliferate.ingest.grouping import compute_fingerprint
from proliferate.ingest.grouping import get_culprit
from proliferate.ingest.grouping import get_title
from proliferate.ingest.grouping import normalize_message
from proliferate.ingest.grouping import parse_stack

STACKS = pathlib.Path(__file__).parent / 'data' / 'stacks'
EXPECTED = json.loads((STACKS / 'expected.json').read_text())
CASES = EXPECTED['cases']
FRAME_KEYS = {'function', 'abs_path', 'filename', 'lineno', 'colno', 'context_line', 'raw'}
HEX64 = re.compile(r'[0-9a-f]{64}')


def read_stack(name):
    return (STACKS / f'{name}.txt').read_text()


def fingerprint_of(name, exception_type=None):
    parsed = parse_stack(read_stack(name))
    return compute_fingerprint(
        event_type='exception',
        exception_type=exception_type or parsed['exception_type'],
        message=parsed['message'],
        frames=parsed['frames'],
    )


def frame(function, filename, lineno=1, colno=None):
    return {
        'function': function,
        'abs_path': f'/srv/app/{filename}',
        'filename': filename,
        'lineno': lineno,
        'colno': colno,
        'context_line': None,
        'raw': '',
    }


def exception_fingerprint(frames, exception_type='TypeError', message='boom'):
    return compute_fingerprint(
        event_type='exception', exception_type=exception_type, message=message, frames=frames
    )


def test_every_trace_file_has_an_expectation():
    files = {path.stem for path in STACKS.glob('*.txt')}
    assert files == set(CASES)
    assert len(files) >= 60


# -- parsing real traces ---------------------------------------------------------------------


@pytest.mark.parametrize('name', sorted(CASES))
def test_parse_real_trace(name):
    expected = CASES[name]
    parsed = parse_stack(read_stack(name))
    assert parsed['engine'] == expected['engine']
    assert parsed['exception_type'] == expected['exception_type']
    assert parsed['message'] == expected['message']
    assert len(parsed['frames']) == expected['frame_count']
    top = [
        [f['function'], f['filename'], f['lineno']]
        for f in parsed['frames'][: len(expected['top'])]
    ]
    assert top == expected['top']
    for f in parsed['frames']:
        assert set(f) == FRAME_KEYS
        assert f['raw']
        if f['filename']:
            assert f['filename'] in f['abs_path']


@pytest.mark.parametrize('name, line', sorted(EXPECTED['context_lines'].items()))
def test_python_frames_keep_their_source_line(name, line):
    assert parse_stack(read_stack(name))['frames'][0]['context_line'] == line


def test_python_caret_lines_are_not_source_lines():
    for f in parse_stack(read_stack('python_zero_division'))['frames']:
        assert f['context_line'] and '^' not in f['context_line'] and '~' not in f['context_line']


# -- grouping over real traces -------------------------------------------------------------


@pytest.mark.parametrize('left, right, why', EXPECTED['same_group'])
def test_same_group(left, right, why):
    assert fingerprint_of(left) == fingerprint_of(right), why


@pytest.mark.parametrize('left, right, why', EXPECTED['different_group'])
def test_different_group(left, right, why):
    assert fingerprint_of(left) != fingerprint_of(right), why


def test_seed_example_from_the_issue():
    # TypeError at processData (utils.js) -> handleClick (app.js) -> onClick (index.js)
    seed = [
        frame('processData', 'utils.js', 42),
        frame('handleClick', 'app.js', 120),
        frame('onClick', 'index.js', 7),
    ]
    node = parse_stack(read_stack('v8_seed'))
    assert exception_fingerprint(seed, 'TypeError') == exception_fingerprint(
        node['frames'], 'TypeError'
    )
    moved = [
        frame('processData', 'utils.js', 99, 3),
        frame('handleClick', 'app.js', 1, 1),
        frame('onClick', 'index.js', 500, 80),
    ]
    assert exception_fingerprint(moved, 'TypeError') == exception_fingerprint(seed, 'TypeError')
    assert exception_fingerprint(seed, 'RangeError') != exception_fingerprint(seed, 'TypeError')
    assert get_culprit(node['frames']) == 'processData in utils.js'


def test_published_api_example():
    stack = (
        "TypeError: Cannot read property 'foo' of undefined\n"
        '    at processData (app.js:42:15)\n'
        '    at handleClick (app.js:120:5)'
    )
    parsed = parse_stack(stack)
    assert parsed['engine'] == 'v8'
    assert [(f['function'], f['filename'], f['lineno'], f['colno']) for f in parsed['frames']] == [
        ('processData', 'app.js', 42, 15),
        ('handleClick', 'app.js', 120, 5),
    ]
    assert get_culprit(parsed['frames']) == 'processData in app.js'
    assert get_title('exception', 'TypeError', "Cannot read property 'foo' of undefined") == (
        "TypeError: Cannot read property 'foo' of undefined"
    )
    curl = parse_stack('TestError: This is a test\n    at test.js:1:1')
    assert curl['exception_type'] == 'TestError'
    assert [(f['function'], f['filename']) for f in curl['frames']] == [(None, 'test.js')]
    assert get_culprit(curl['frames']) == 'test.js'


@pytest.mark.parametrize(
    'name', ['v8_seed', 'python_zero_division', 'gecko_firefox_3', 'chromium_seed']
)
def test_line_and_column_numbers_never_count(name):
    frames = parse_stack(read_stack(name))['frames']
    shifted = [dict(f, lineno=(f['lineno'] or 0) + 1000, colno=7, raw='x') for f in frames]
    assert exception_fingerprint(shifted) == exception_fingerprint(frames)


@pytest.mark.parametrize(
    'name', ['v8_seed', 'python_zero_division', 'gecko_firefox_60_url_with_at_sign']
)
def test_only_the_top_three_frames_count(name):
    frames = parse_stack(read_stack(name))['frames']
    base = exception_fingerprint(frames)
    below = [dict(f) for f in frames]
    below[3]['function'] = 'somethingElse'
    below[3]['filename'] = 'elsewhere.js'
    assert exception_fingerprint(below) == base
    assert exception_fingerprint(frames[:3]) == base
    for index in range(3):
        renamed = [dict(f) for f in frames]
        renamed[index]['function'] = 'renamed'
        assert exception_fingerprint(renamed) != base, index
        moved = [dict(f) for f in frames]
        moved[index]['filename'] = 'moved.js'
        assert exception_fingerprint(moved) != base, index


def test_message_does_not_count_when_there_are_frames():
    frames = parse_stack(read_stack('v8_node_fs'))['frames']
    assert exception_fingerprint(frames, 'Error', 'ENOENT: open /a') == exception_fingerprint(
        frames, 'Error', 'EACCES: permission denied'
    )


def test_alias_of_a_method_does_not_count():
    aliased = [frame('Object.loadOrders [as fetch]', 'api.js'), frame('main', 'api.js')]
    plain = [frame('Object.loadOrders', 'api.js'), frame('main', 'api.js')]
    assert exception_fingerprint(aliased) == exception_fingerprint(plain)


def test_frames_without_function_or_file_are_skipped():
    frames = parse_stack(read_stack('gecko_safari_6'))['frames']
    assert frames[-1]['function'] is None and frames[-1]['filename'] is None  # [native code]
    padded = [{'function': None, 'filename': None, 'abs_path': '<anonymous>'}, *frames]
    assert exception_fingerprint(padded) == exception_fingerprint(frames)


def test_filename_is_derived_from_abs_path_when_missing():
    # Frames rewritten by source-map resolution may carry only abs_path, or a path as filename.
    resolved = [
        {'function': 'processData', 'abs_path': 'webpack:///./src/utils.js'},
        {'function': 'handleClick', 'filename': 'src/app.js'},
        {'function': 'onClick', 'abs_path': 'https://x.com/static/index.js?v=3'},
    ]
    seed = [
        frame('processData', 'utils.js'),
        frame('handleClick', 'app.js'),
        frame('onClick', 'index.js'),
    ]
    assert exception_fingerprint(resolved) == exception_fingerprint(seed)
    assert get_culprit(resolved) == 'processData in utils.js'


def test_python_sdk_qualified_and_bare_types_group_together():
    # SDK 0.1.x sends 'myapp.errors.PaymentError', 0.2.x 'PaymentError'.
    qualified = fingerprint_of('python_chained_from', 'myapp.errors.PaymentError')
    assert qualified == fingerprint_of('python_chained_from', 'PaymentError')
    assert qualified != fingerprint_of('python_chained_from', 'RefundError')
    assert fingerprint_of('python_json_decode', 'json.decoder.JSONDecodeError') == fingerprint_of(
        'python_json_decode', 'JSONDecodeError'
    )
    assert get_title('exception', 'myapp.errors.PaymentError', 'card declined') == (
        'myapp.errors.PaymentError: card declined'
    )
    assert compute_fingerprint(
        event_type='exception', exception_type='app.Boom', message='x 1', frames=[]
    ) == compute_fingerprint(
        event_type='exception', exception_type='Boom', message='x 2', frames=[]
    )


@pytest.mark.parametrize(
    'left, right',
    [
        ('Order 1234 failed', 'Order 98 failed'),
        ('Timeout after 30.5s on worker 3', 'Timeout after 12.0s on worker 11'),
        ('object at 0x7f3a2c1b9e80 is gone', 'object at 0x10ab is gone'),
        ('session 5f8d0d55b54764421b7156c3 expired', 'session 64b7a1e2c3d4e5f60718293a expired'),
        (
            'job 123e4567-e89b-12d3-a456-426614174000 died',
            'job 9b2c3d4e-0000-4f00-8a00-00000000abcd died',
        ),
        ("KeyError 'user_42'", "KeyError 'account'"),
        ('no user "jane" here', 'no user "bob" here'),
        ('mail to jane.doe+x@example.com bounced', 'mail to bob@mail.example.org bounced'),
        (
            'GET https://api.example.com/v1/users/42?x=1 failed',
            'GET http://localhost:8080/health failed',
        ),
        ('  spaced\n\tout  ', 'spaced out'),
    ],
)
def test_no_frames_volatile_message_parts_do_not_split(left, right):
    assert exception_fingerprint([], 'Error', left) == exception_fingerprint([], 'Error', right)


@pytest.mark.parametrize(
    'left, right',
    [
        ('Order failed', 'Order shipped'),
        ("Cannot read properties of undefined (reading 'x')", 'Cannot read properties of null'),
        ('', 'something'),
    ],
)
def test_no_frames_different_messages_split(left, right):
    assert exception_fingerprint([], 'Error', left) != exception_fingerprint([], 'Error', right)


def test_no_frames_the_type_still_counts():
    assert exception_fingerprint([], 'TypeError', 'x') != exception_fingerprint(
        [], 'RangeError', 'x'
    )


def test_message_events_group_on_the_normalised_message():
    def message_fp(message, **kw):
        return compute_fingerprint(
            event_type='message',
            exception_type=kw.get('exception_type'),
            message=message,
            frames=kw.get('frames', []),
        )

    assert message_fp('Checkout took 5012 ms for order 77') == message_fp(
        'Checkout took 87 ms for order 1'
    )
    assert message_fp('Checkout slow') != message_fp('Login slow')
    assert message_fp('x', frames=[frame('a', 'b.py')]) == message_fp('x')
    # A message event never shares an issue with an exception of the same text.
    assert message_fp('boom') != exception_fingerprint([], None, 'boom')


def test_fingerprint_is_versioned_hex_and_stable():
    seed = [
        frame('processData', 'utils.js'),
        frame('handleClick', 'app.js'),
        frame('onClick', 'index.js'),
    ]
    value = exception_fingerprint(seed, 'TypeError')
    assert HEX64.fullmatch(value)
    assert grouping.FINGERPRINT_VERSION == 2
    # Literals, so they are the same in every process and any change to the algorithm shows
    # here: such a change must bump FINGERPRINT_VERSION (and then update GOLDEN_SEED_V2).
    assert value == GOLDEN_SEED_V2
    # Version 1 is frozen: issues stored before version 2 carry it.
    v1 = grouping.compute_fingerprint_v1(
        event_type='exception', exception_type='TypeError', message='boom', frames=seed
    )
    assert v1 == GOLDEN_SEED_V1 != value


GOLDEN_SEED_V1 = 'd682dbdf908c8b2876d8c5bc7065df3aa7d863186fdeac4b42ea46a8b62fac2a'
GOLDEN_SEED_V2 = '9a7d93d63fbaa2e3ea12db0381d3f454cda09a548483e2bff2e002836635a6e1'


# -- message normalisation, title, culprit, file names ---------------------------------------


@pytest.mark.parametrize(
    'message, expected',
    [
        (None, ''),
        ('', ''),
        ('Order 1234 failed', 'Order <n> failed'),
        ('at 0xDEADbeef1', 'at <hex>'),
        ('id 5f8d0d55b54764421b7156c3', 'id <hex>'),
        ('deadline exceeded', 'deadline exceeded'),
        ('req 123e4567-e89b-12d3-a456-426614174000 x', 'req <uuid> x'),
        ('to jane.doe+tag@example.co.uk now', 'to <email> now'),
        ('GET https://x.com/a/b?c=1#f: 500', 'GET <url> <n>'),
        ("Can't find variable: foo", "Can't find variable: foo"),
        ("reading 'map' of 'x y'", 'reading <str> of <str>'),
        ('key "a b" and `c`', 'key <str> and <str>'),
        ('  a \n\n b\t', 'a b'),
    ],
)
def test_normalize_message(message, expected):
    assert normalize_message(message) == expected


@pytest.mark.parametrize(
    'event_type, exception_type, message, expected',
    [
        (
            'exception',
            'TypeError',
            "Cannot read property 'foo' of undefined",
            "TypeError: Cannot read property 'foo' of undefined",
        ),
        ('exception', 'ValueError', 'first line\nsecond line', 'ValueError: first line'),
        ('exception', 'ValueError', '\n\n  padded first\nrest', 'ValueError: padded first'),
        ('exception', 'KeyboardInterrupt', None, 'KeyboardInterrupt'),
        ('exception', 'KeyboardInterrupt', '', 'KeyboardInterrupt'),
        ('exception', None, 'just a message', 'just a message'),
        ('exception', None, None, '(no message)'),
        (
            'exception',
            'myapp.errors.PaymentError',
            'declined',
            'myapp.errors.PaymentError: declined',
        ),
        ('message', None, 'User signed up', 'User signed up'),
        ('message', 'Ignored', 'Deploy finished\nlog follows', 'Deploy finished'),
        ('message', None, '', '(no message)'),
        ('exception', 'Error', 'tab\there\x00nul', 'Error: tab here nul'),
        ('exception', 'Error', 'lone \ud800 surrogate', 'Error: lone surrogate'),
    ],
)
def test_get_title(event_type, exception_type, message, expected):
    assert get_title(event_type, exception_type, message) == expected


def test_get_title_trims_to_128_characters():
    title = get_title('exception', 'TypeError', 'x' * 500)
    assert len(title) == 128
    assert title.startswith('TypeError: xxx') and title.endswith('…')
    assert len(get_title('message', None, 'y' * 128)) == 128
    assert len(get_title('exception', 'T' * 1000, None)) == 128


@pytest.mark.parametrize(
    'frames, expected',
    [
        ([frame('processData', 'app.js'), frame('handleClick', 'app.js')], 'processData in app.js'),
        ([{'function': None, 'filename': 'report.js'}], 'report.js'),
        ([{'function': 'JSON.parse', 'filename': None, 'abs_path': '<anonymous>'}], 'JSON.parse'),
        (
            [{'function': None, 'filename': None}, frame('onClick', 'index.js')],
            'onClick in index.js',
        ),
        ([], ''),
        (None, ''),
        (['garbage', 3, None], ''),
    ],
)
def test_get_culprit(frames, expected):
    assert get_culprit(frames) == expected


@pytest.mark.parametrize(
    'name, culprit',
    [
        ('v8_seed', 'processData in utils.js'),
        ('chromium_seed', 'processData in app.3f9a.js'),
        ('python_zero_division', 'unit_price in pricing.py'),
        ('python_chained_from', 'charge in payments.py'),
        ('gecko_firefox_14', 'file.js'),
        ('v8_method_alias', 'Object.loadOrders [as fetch] in api.js'),
    ],
)
def test_culprit_of_real_traces(name, culprit):
    assert get_culprit(parse_stack(read_stack(name))['frames']) == culprit


@pytest.mark.parametrize(
    'stack, abs_path, filename',
    [
        (
            'Error: x\n    at f (https://x.com/static/app.3f9a.js?v=2#x:3:5)',
            'https://x.com/static/app.3f9a.js?v=2#x',
            'app.3f9a.js',
        ),
        ('Error: x\n    at f (webpack:///./src/a.ts:3:5)', 'webpack:///./src/a.ts', 'a.ts'),
        ('Error: x\n    at f (C:\\app\\src\\main.js:3:5)', 'C:\\app\\src\\main.js', 'main.js'),
        (
            'Error: x\n    at f (node:internal/modules/cjs/loader:1256:14)',
            'node:internal/modules/cjs/loader',
            'loader',
        ),
        ('f@https://x.com/js/app.js?v=1:10:2\n', 'https://x.com/js/app.js?v=1', 'app.js'),
        (
            'Traceback (most recent call last):\n  File "/srv/app/views.py", line 3, in v\nE: x',
            '/srv/app/views.py',
            'views.py',
        ),
        (
            'Traceback (most recent call last):\n'
            '  File "C:\\srv\\app\\views.py", line 3, in v\nE: x',
            'C:\\srv\\app\\views.py',
            'views.py',
        ),
        (
            'Traceback (most recent call last):\n'
            '  File "<frozen runpy>", line 88, in _run_code\nE: x',
            '<frozen runpy>',
            '<frozen runpy>',
        ),
    ],
)
def test_file_names(stack, abs_path, filename):
    first = parse_stack(stack)['frames'][0]
    assert (first['abs_path'], first['filename']) == (abs_path, filename)


# -- headers and odd shapes ------------------------------------------------------------------


@pytest.mark.parametrize(
    'stack, exception_type, message',
    [
        ('Uncaught TypeError: x is undefined\n    at f (a.js:1:1)', 'TypeError', 'x is undefined'),
        (
            'TypeError [ERR_INVALID_ARG_TYPE]: bad path\n    at f (a.js:1:1)',
            'TypeError',
            'bad path',
        ),
        (
            'Cannot read things of nothing\n    at f (a.js:1:1)',
            None,
            'Cannot read things of nothing',
        ),
        (
            'AggregateError: All promises were rejected\n    at f (a.js:1:1)',
            'AggregateError',
            'All promises were rejected',
        ),
        (
            'Traceback (most recent call last):\n  File "a.py", line 1, in f\nKeyboardInterrupt',
            'KeyboardInterrupt',
            None,
        ),
        (
            'Traceback (most recent call last):\n  File "a.py", line 1, in f\n    g()\n'
            'OSError: [Errno 2] No such file',
            'OSError',
            '[Errno 2] No such file',
        ),
    ],
)
def test_headers(stack, exception_type, message):
    parsed = parse_stack(stack)
    assert (parsed['exception_type'], parsed['message']) == (exception_type, message)


def test_v8_message_lines_that_start_with_at_are_not_frames():
    parsed = parse_stack(
        'Error: bad input\nat least one item is required (got 0)\nat position 5\n'
        '    at validate (/srv/app/forms.js:10:5)'
    )
    assert parsed['message'] == 'bad input\nat least one item is required (got 0)\nat position 5'
    assert [(f['function'], f['filename']) for f in parsed['frames']] == [('validate', 'forms.js')]


def test_python_frames_without_header_and_chain_without_headers():
    tb_only = (
        '  File "/a/x.py", line 1, in outer\n    inner()\n'
        '  File "/a/y.py", line 2, in inner\n    1/0\n'
    )
    parsed = parse_stack(tb_only)
    assert parsed['engine'] == 'python'
    assert [f['function'] for f in parsed['frames']] == ['inner', 'outer']
    assert parsed['exception_type'] is None
    chained = parse_stack(read_stack('python_chained_implicit'))
    # The KeyError of the first block does not leak into the frames of the final ValueError.
    assert all(f['function'] != 'find_card' for f in chained['frames'])


def test_python_message_quoting_a_traceback_adds_no_frames():
    stack = (
        'Traceback (most recent call last):\n  File "/a/x.py", line 1, in run\n    go()\n'
        'RuntimeError: child failed:\n  File "/child.py", line 9, in child\n'
    )
    parsed = parse_stack(stack)
    assert [f['function'] for f in parsed['frames']] == ['run']
    assert parsed['message'].startswith('child failed:\n')


@pytest.mark.parametrize(
    'stack',
    [
        None,
        '',
        '   \n\n',
        'just some words',
        'TypeError: no frames at all',
        12,
        b'at f (a.js:1:1)',
        ['at f (a.js:1:1)'],
    ],
)
def test_no_frames(stack):
    assert parse_stack(stack) == {
        'engine': None,
        'frames': [],
        'exception_type': None,
        'message': None,
        'chain': [],
    }


# -- limits ------------------------------------------------------------------------------------


def test_v8_frames_are_capped_keeping_the_top():
    stack = 'Error: deep\n' + ''.join(
        f'    at f{i} (/app/m{i}.js:{i + 1}:1)\n' for i in range(10_000)
    )
    parsed = parse_stack(stack)
    assert len(parsed['frames']) == 250
    assert parsed['frames'][0]['function'] == 'f0' and parsed['frames'][-1]['function'] == 'f249'
    assert [f['function'] for f in parse_stack(stack, max_frames=3)['frames']] == ['f0', 'f1', 'f2']
    assert parse_stack(stack, max_frames=0)['frames'] == []


def test_python_frames_are_capped_keeping_the_top():
    body = ''.join(
        f'  File "/app/m{i}.py", line {i + 1}, in f{i}\n    f{i + 1}()\n' for i in range(10_000)
    )
    parsed = parse_stack('Traceback (most recent call last):\n' + body + 'RecursionError: deep\n')
    assert len(parsed['frames']) == 250
    assert (
        parsed['frames'][0]['function'] == 'f9999' and parsed['frames'][-1]['function'] == 'f9750'
    )
    assert parsed['exception_type'] == 'RecursionError'
    assert [f['function'] for f in parse_stack(body, max_frames=2)['frames']] == ['f9999', 'f9998']


def test_gecko_frames_are_capped_keeping_the_top():
    stack = ''.join(f'f{i}@https://x.com/a{i}.js:{i + 1}:1\n' for i in range(10_000))
    frames = parse_stack(stack)['frames']
    assert len(frames) == 250 and frames[0]['function'] == 'f0'


def pathological_inputs():
    # Shapes that make naive regexes backtrack: long runs of the characters each parser
    # and each normalisation pattern keys on.
    n = 200_000
    return {
        'parens': 'Error: x\n    at ' + '(' * n + ')',
        'at_signs': '@' * n + ':1:2',
        'colons': 'at f (' + ':1' * (n // 2) + ')',
        'digits_line': 'Error: x\n    at f (a.js:' + '9' * n + ':1)',
        'python_lines': 'Traceback (most recent call last):\n  File "'
        + '", line 1' * (n // 9)
        + '\nE: x',
        'quotes': "'" + 'a' * n,
        'email_like': 'a.' * (n // 2) + '@',
        'hex_run': 'f' * n + 'g',
        'url_like': 'a://' * (n // 4),
        'mixed_frames': ('    at f (x.js:1:2)\nf@y.js:1:2\n  File "z.py", line 1, in g\n') * 3000,
        'huge_line': 'TypeError: ' + 'x' * 900_000 + '\n    at f (a.js:1:1)',
        'huge_message_line': 'x' * 900_000,
        'many_newlines': '\n' * n,
        'spaces': ' ' * n + 'at',
    }


@pytest.mark.parametrize('name', sorted(pathological_inputs()))
def test_pathological_inputs_are_bounded(name):
    text = pathological_inputs()[name]
    assert_bounded(text)


def test_binary_garbage_and_surrogates():
    rng = random.Random(20250115)
    for _ in range(50):
        assert_bounded(bytes(rng.randrange(256) for _ in range(4000)).decode('latin-1'))
    assert_bounded('at f (\ud800.js:1:2)\n\udfff@\ud83d:1:1\n  File "\ud800", line 1, in \udc00\n')


def assert_bounded(text):
    parsed = parse_stack(text)
    assert len(parsed['frames']) <= 250
    for f in parsed['frames']:
        assert set(f) == FRAME_KEYS
        assert len(f['raw']) <= 1024
        assert f['abs_path'] is None or len(f['abs_path']) <= 2048
        assert f['function'] is None or len(f['function']) <= 512
    assert parsed['message'] is None or len(parsed['message']) <= 9000
    assert parsed['exception_type'] is None or len(parsed['exception_type']) <= 256
    assert len(normalize_message(text)) <= 8000
    for event_type in ('exception', 'message'):
        assert HEX64.fullmatch(
            compute_fingerprint(
                event_type=event_type, exception_type=text, message=text, frames=parsed['frames']
            )
        )
        title = get_title(event_type, text, text)
        assert len(title) <= 128
        title.encode('utf-8')
    culprit = get_culprit(parsed['frames'])
    assert len(culprit) <= 256
    culprit.encode('utf-8')


STACKISH = st.lists(
    st.sampled_from(
        [
            '\n',
            ' ',
            '    at ',
            'async ',
            'new ',
            '(',
            ')',
            ' (',
            ':',
            '1',
            '42',
            '@',
            '/',
            '.js',
            '?v=2',
            '#x',
            'eval at ',
            ', <anonymous>',
            '[as x]',
            '[native code]',
            'File "',
            '", line ',
            ', in ',
            'f',
            'Traceback (most recent call last):',
            '+ Exception Group Traceback (most recent call last):',
            '| ',
            'During handling of the above exception, another exception occurred:',
            'TypeError: ',
            '^^^',
            ' line ',
            ' > eval',
            '"',
            "'",
            '0x1f',
            '\ud800',
            '\x00',
        ]
    ),
    max_size=80,
).map(''.join)


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(text=st.one_of(st.text(max_size=2000), STACKISH), max_frames=st.integers(-5, 300))
def test_property_never_raises_and_stays_bounded(text, max_frames):
    parsed = parse_stack(text, max_frames=max_frames)
    assert parsed['engine'] in (None, 'v8', 'gecko', 'python')
    assert len(parsed['frames']) <= max(0, max_frames)
    for f in parsed['frames']:
        assert set(f) == FRAME_KEYS
        assert f['lineno'] is None or isinstance(f['lineno'], int)
        assert f['filename'] is None or ('/' not in f['filename'] and '?' not in f['filename'])
    assert_bounded(text)
    fp = compute_fingerprint(
        event_type='exception',
        exception_type=parsed['exception_type'],
        message=parsed['message'],
        frames=parsed['frames'],
    )
    assert fp == compute_fingerprint(
        event_type='exception',
        exception_type=parsed['exception_type'],
        message=parsed['message'],
        frames=parse_stack(text, max_frames=max_frames)['frames'],
    )


# -- version 2: library frames, build hashes, custom fingerprints, chains ---------------------

BUNDLERS = json.loads((STACKS.parent / 'bundlers' / 'names.json').read_text())
# Published npm files that are themselves Rolldown output with '[name]-[hash]' names.
PUBLISHED_HASHED = {
    'filter-DvHMSB82.mjs': 'filter.mjs',
    'binding-Dv--ZLtl.mjs': 'binding.mjs',
    'bundle-CKxU1wPS.mjs': 'bundle.mjs',
    'constructors-Cns1f2JN.mjs': 'constructors.mjs',
    'create-bundler-option-BsAwgu1u.mjs': 'create-bundler-option.mjs',
    'define-config-BQBrxnNZ.mjs': 'define-config.mjs',
    'dist-C-GMLZnX.mjs': 'dist.mjs',
    'error-z4CTM_u3.mjs': 'error.mjs',
    'load-config-BlS56-EL.mjs': 'load-config.mjs',
    'logger-Boq60GmA.mjs': 'logger.mjs',
    'logs-BZ4h6bri.mjs': 'logs.mjs',
    'misc-Dz208wMN.mjs': 'misc.mjs',
    'normalize-string-or-regex-kfN4G66d.mjs': 'normalize-string-or-regex.mjs',
    'parse-CKFHq3Qc.mjs': 'parse.mjs',
    'prompt-C8pEKJl9.mjs': 'prompt.mjs',
    'resolve-tsconfig-CsamUth5.mjs': 'resolve-tsconfig.mjs',
    'rolldown-CiTwiklC.mjs': 'rolldown.mjs',
    'rolldown-runtime-BuRBZLzk.mjs': 'rolldown-runtime.mjs',
    'validator-D_17ElVY.mjs': 'validator.mjs',
    'watch-tgMwrGvA.mjs': 'watch.mjs',
}


@pytest.mark.parametrize('build', sorted(BUNDLERS['builds']))
def test_real_bundler_names_lose_their_hash(build):
    pairs = BUNDLERS['builds'][build]
    assert pairs
    for emitted, stable in pairs:
        assert grouping.stable_file_name(emitted) == stable, (build, emitted)
        assert grouping.stable_file_name(stable) == stable, (build, stable)


def test_published_package_file_names_stay_whole():
    published = BUNDLERS['published']
    assert len(published) > 1000
    changed = {
        name: grouping.stable_file_name(name)
        for name in published
        if grouping.stable_file_name(name) != name
    }
    assert changed == {name: PUBLISHED_HASHED[name] for name in changed}
    assert set(PUBLISHED_HASHED) <= set(published)


@pytest.mark.parametrize(
    'name, stable',
    [
        # Hand-written from each tool's documented patterns (the real builds are in names.json).
        ('_app-3f1c2a9b8d7e6f5a.js', '_app.js'),
        ('webpack-8fa1640cc84ba8fe.js', 'webpack.js'),
        ('framework-2c79e2a64abdb08b.js', 'framework.js'),
        ('873-3f1c2a9b8d7e6f5a.js', '873.js'),
        ('main-app-0d3f1e2c3b4a5f6e.js', 'main-app.js'),
        ('fd9d1056-2821b0f0cabcd8bd.js', 'fd9d1056.js'),
        ('index-4e8d2c5a.js', 'index.js'),
        ('index.3f1c2a9b.js', 'index.js'),
        ('app-5XJ2KQ7M.js', 'app.js'),
        ('chunk-XUCGB6KL.js', 'chunk.js'),
        ('index-CQUopVr-.js', 'index.js'),
        ('vendor.ogcAuNyg.js', 'vendor.ogcAuNyg.js'),
        ('842.3f1c2a9b.chunk.js', '842.chunk.js'),
        ('main.8f2c1a3b4d5e6f70.js', 'main.js'),
        ('3f1c2a9b8d7e6f5a.js', '<hash>.js'),
        ('bundle.1700000000.js', 'bundle.js'),
        ('main.js', 'main.js'),
        ('react-dom.production.min.js', 'react-dom.production.min.js'),
        ('jquery-3.7.1.min.js', 'jquery-3.7.1.min.js'),
        ('2024-report.js', '2024-report.js'),
        ('i18n.js', 'i18n.js'),
        ('vendor.js', 'vendor.js'),
        ('vendors.js', 'vendors.js'),
        ('chunk-vendors.js', 'chunk-vendors.js'),
        ('app.bundle.js', 'app.bundle.js'),
        ('polyfills-es2015.js', 'polyfills-es2015.js'),
        ('main-es2015.js', 'main-es2015.js'),
        ('runtime.js', 'runtime.js'),
        ('moment-with-locales.js', 'moment-with-locales.js'),
        ('hooks-useState.js', 'hooks-useState.js'),
        ('form-Settings.js', 'form-Settings.js'),
        ('client-v1alpha1.js', 'client-v1alpha1.js'),
        ('deadbeef.js', 'deadbeef.js'),
        ('report.js', 'report.js'),
        ('views.py', 'views.py'),
        ('<frozen runpy>', '<frozen runpy>'),
        ('Makefile', 'Makefile'),
        ('-3f1c2a9b.js', '-3f1c2a9b.js'),
        ('', ''),
        (None, ''),
        (12, ''),
    ],
)
def test_stable_file_name(name, stable):
    assert grouping.stable_file_name(name) == stable


def test_a_redeploy_keeps_the_issue():
    # The same bug in two real Vite builds and two real esbuild builds.
    vite = ('index-D-sb5my8.js', 'index-GxdEN8B4.js')
    esbuild = ('index-GLMTOECP.js', 'index-O3SPLBWN.js')
    for old, new in (vite, esbuild):
        before = [frame('processData', old), frame('handleClick', old)]
        after = [frame('processData', new), frame('handleClick', new)]
        assert exception_fingerprint(before) == exception_fingerprint(after)
        assert get_culprit(before) == f'processData in {old}'
    assert fingerprint_of('hand_nextjs_deploy_1') == fingerprint_of('hand_nextjs_deploy_2')


def lib(function, path, **extra):
    return {'function': function, 'abs_path': path, 'filename': path.rpartition('/')[2], **extra}


@pytest.mark.parametrize(
    'path, in_app',
    [
        ('/srv/app/orders/views.py', True),
        ('/srv/app/lib/payments.py', True),
        ('/home/app/blog/libs/auth.py', True),
        ('/opt/app/lib/python/helpers.py', True),
        ('/srv/venv/lib/python3.12/site-packages/django/db/models/query.py', False),
        ('/usr/lib/python3/dist-packages/stripe/_api_requestor.py', False),
        ('/usr/lib/python3.11/json/decoder.py', False),
        ('/root/.pyenv/versions/3.11.7/lib/python3.11/_strptime.py', False),
        ('/usr/local/lib/python3.13t/asyncio/base_events.py', False),
        ('C:\\Python311\\Lib\\json\\decoder.py', False),
        ('C:\\Users\\ann\\app\\.venv\\Lib\\site-packages\\flask\\app.py', False),
        ('<frozen runpy>', False),
        ('<frozen importlib._bootstrap>', False),
        ('<string>', True),
        ('/srv/app/node_modules/express/lib/router/index.js', False),
        ('webpack:///./node_modules/react-dom/cjs/react-dom.development.js', False),
        ('http://localhost:5173/node_modules/.vite/deps/react-dom_client.js?v=5d2a91f4', False),
        ('https://x.com/static/vendor/jquery-3.7.1.min.js', False),
        ('https://x.com/assets/vendors/lodash.js', False),
        ('https://x.com/static/js/vendor.93ede590.js', False),
        ('https://x.com/static/js/vendors~main.chunk.js', False),
        ('https://x.com/js/chunk-vendors.5d6e7f8a.js', False),
        ('https://x.com/js/vendors-node_modules_nanoid_index_js.js', False),
        ('https://x.com/js/vendor.js', False),
        ('https://x.com/_next/static/chunks/framework-2c79e2a64abdb08b.js', False),
        ('https://x.com/_next/static/chunks/pages/checkout-3f1c2a9b8d7e6f5a.js', True),
        ('https://x.com/js/vendorsettings.js', True),
        ('https://x.com/js/advendor.js', True),
        ('node:internal/modules/cjs/loader', False),
        ('node:events', False),
        ('internal/process/task_queues.js', False),
        ('chrome-extension://abcdefghijklmnop/content.js', False),
        ('moz-extension://2c127fa4-62c7-7e4f-90e5-472b45eecfdc/inject.js', False),
        ('safari-web-extension://E8E0A5A1-0000/script.js', False),
        ('safari-extension://com.adblock-0000/content.js', False),
        ('<anonymous>', False),
        ('[native code]', False),
        ('native', False),
        ('index 0', False),
        ('https://x.com/static/app.3f9a.js', True),
        ('/srv/app/src/utils.js', True),
    ],
)
def test_built_in_in_app_rules(path, in_app):
    assert grouping.is_in_app(lib('f', path)) is in_app


def test_in_app_flag_rules_and_their_precedence():
    django = lib('get', '/srv/venv/lib/python3.12/site-packages/django/db/models/query.py')
    mine = lib('charge', '/srv/app/payments.py')
    assert grouping.is_in_app(dict(django, in_app=True)) is True  # an SDK's flag wins
    assert grouping.is_in_app(dict(mine, in_app=False)) is False
    assert grouping.is_in_app(dict(mine, in_app='yes')) is True  # not a bool: ignored
    # Project patterns beat the built-in rules; in-app patterns beat library patterns.
    ours = {'in_app': ['/site-packages/acme_'], 'library': ['/srv/app/generated/']}
    acme = lib('pay', '/srv/venv/lib/python3.12/site-packages/acme_billing/pay.py')
    generated = lib('pb', '/srv/app/generated/orders_pb2.py')
    assert grouping.is_in_app(acme) is False and grouping.is_in_app(acme, ours) is True
    assert grouping.is_in_app(generated) is True and grouping.is_in_app(generated, ours) is False
    both = {'in_app': ['/srv/app/'], 'library': ['/srv/app/']}
    assert grouping.is_in_app(generated, both) is True
    cdn = lib('ce', 'https://code.jquery.com/jquery-3.7.1.min.js')
    assert grouping.is_in_app(cdn) is True
    assert grouping.is_in_app(cdn, {'library': ['https://code.jquery.com/']}) is False
    windows = lib('run', 'C:\\srv\\app\\gen\\x.py')
    assert grouping.is_in_app(windows, {'library': ['\\app\\gen\\']}) is False
    # Garbage rules and frames are ignored, never raised on.
    for rules in (None, 'x', 3, {'in_app': 'abc'}, {'library': [None, 3, '', ['x']]}):
        assert grouping.is_in_app(mine, rules) is True
    assert grouping.is_in_app(None) is False and grouping.is_in_app('x') is False
    assert grouping.is_in_app({'function': 'f'}) is False  # no file: a builtin


def test_rules_are_bounded():
    rules = grouping.in_app_rules({'in_app': ['x' * 500] * 80, 'library': ('/lib/',)})
    assert len(rules.in_app) == 50 and all(len(p) == 200 for p in rules.in_app)
    assert rules.library == ('/lib/',)
    assert grouping.in_app_rules(rules) is rules
    assert grouping.in_app_rules(None) == grouping.BUILTIN_RULES == ((), ())


def test_mark_in_app():
    frames = parse_stack(read_stack('v8_lib_money_cart'))['frames']
    marked = grouping.mark_in_app(frames)
    assert [f['in_app'] for f in marked] == [False] * 3 + [True] * 3 + [False] * 4
    assert all('in_app' not in f for f in frames)  # copies: the parsed frames are untouched
    assert grouping.mark_in_app([None, 'x', frames[0]]) == [dict(frames[0], in_app=False)]
    assert grouping.mark_in_app(None) == []
    assert [f['in_app'] for f in grouping.mark_in_app(frames, {'in_app': ['tiny-money']})] == [
        True
    ] * 6 + [False] * 4


@pytest.mark.parametrize('name, culprit', sorted(EXPECTED['in_app_culprits'].items()))
def test_culprit_is_the_applications_function(name, culprit):
    frames = parse_stack(read_stack(name))['frames']
    assert get_culprit(frames) == culprit


@pytest.mark.parametrize(
    'left, right',
    [
        ('python_lib_requests_prices', 'python_lib_requests_inventory'),
        ('v8_lib_money_cart', 'v8_lib_money_refunds'),
        ('python_json_decode', 'python_lib_json_webhook'),
    ],
)
def test_version_1_merged_different_bugs_in_one_library_call(left, right):
    # What version 2 fixes: with 3 library frames on top, version 1 keyed on them alone.
    why = f'{left} vs {right}'
    def v1(name):
        parsed = parse_stack(read_stack(name))
        return grouping.compute_fingerprint_v1(
            event_type='exception',
            exception_type=parsed['exception_type'],
            message=parsed['message'],
            frames=parsed['frames'],
        )

    assert v1(left) == v1(right), why
    assert fingerprint_of(left) != fingerprint_of(right), why


def test_grouping_key_shows_the_in_app_frames():
    parsed = parse_stack(read_stack('python_lib_requests_prices'))
    key = grouping.grouping_key(
        event_type='exception',
        exception_type=parsed['exception_type'],
        message=parsed['message'],
        frames=parsed['frames'],
    )
    assert key == {
        'kind': 'frames',
        'type': 'ConnectionError',
        'frames': [('fetch_prices', 'prices.py'), ('<module>', 'prices.py')],
    }
    # Nothing in-app: the top 3 frames, as version 1 did.
    assert grouping.grouping_key(
        event_type='exception',
        exception_type='Error',
        message='x',
        frames=parsed['frames'],
        rules={'library': ['/tmp/']},
    )['frames'] == [('send', 'adapters.py'), ('send', 'sessions.py'), ('request', 'sessions.py')]
    chunks = [frame('a', 'index-D-sb5my8.js'), frame('b', 'vendor.93ede590.js')]
    assert grouping.grouping_key(
        event_type='exception', exception_type='E', message=None, frames=chunks
    )['frames'] == [('a', 'index.js')]
    assert grouping.grouping_key(
        event_type='exception', exception_type='a.b.Boom', message='x 12', frames=[]
    ) == {'kind': 'message', 'type': 'Boom', 'message': 'x <n>'}
    assert grouping.grouping_key(
        event_type='message', exception_type=None, message='took 5 ms', frames=chunks
    ) == {'kind': 'message', 'type': None, 'message': 'took <n> ms'}


def test_fingerprint_is_the_hash_of_the_grouping_key():
    import hashlib

    frames = parse_stack(read_stack('hand_django_does_not_exist'))['frames']
    for custom in (None, ['tenant-a', '{{ default }}'], ['checkout']):
        kwargs = dict(
            event_type='exception', exception_type='DoesNotExist', message='m', frames=frames
        )
        key = grouping.grouping_key(custom=custom, **kwargs)
        salted = 'proliferate-grouping-v2\n' + json.dumps(key, sort_keys=True)
        expected = hashlib.sha256(salted.encode('ascii')).hexdigest()
        assert grouping.compute_fingerprint(custom=custom, **kwargs) == expected


def test_custom_fingerprints():
    frames = parse_stack(read_stack('v8_seed'))['frames']

    def fp(custom, **kw):
        return compute_fingerprint(
            event_type=kw.get('event_type', 'exception'),
            exception_type=kw.get('exception_type', 'TypeError'),
            message=kw.get('message', 'boom'),
            frames=kw.get('frames', frames),
            custom=custom,
        )

    ours = fp(None)
    # Replaces our key: other frames, types and messages no longer count.
    assert fp(['checkout-timeout']) == fp(['checkout-timeout'], frames=[], exception_type='X')
    assert fp(['checkout-timeout']) != ours != fp(['other'])
    # '{{ default }}' stands for our key: it splits our issue by the extra values.
    assert fp(['{{ default }}', 'tenant-a']) == fp(['{{default}}', 'tenant-a'])
    assert fp(['{{ default }}', 'tenant-a']) != fp(['{{ default }}', 'tenant-b'])
    assert fp(['{{ default }}', 'tenant-a']) != fp(
        ['{{ default }}', 'tenant-a'], frames=parse_stack(read_stack('v8_eval'))['frames']
    )
    assert fp(['{{ default }}']) != ours  # a different key kind, a different hash
    # Nothing usable: our key.
    for custom in ([], None, 'abc', [None, {}, [], ''], 7):
        assert fp(custom) == ours, custom
    key = grouping.grouping_key(
        event_type='exception',
        exception_type='TypeError',
        message='boom',
        frames=frames,
        custom=['{{default}}', 3, 1.0, 2.5, True, None, 'x' * 300, float('nan'), 2**80],
    )
    assert key['kind'] == 'custom'
    assert key['values'] == ['{{ default }}', '3', '1', '2.5', 'true', 'x' * 200]
    assert key['default']['kind'] == 'frames'
    assert grouping.grouping_key(
        event_type='message', exception_type=None, message='m', frames=[], custom=['a']
    ) == {'kind': 'custom', 'values': ['a'], 'default': None}
    # Bounded: only the first 50 elements count.
    assert len(grouping.custom_fingerprint([str(i) for i in range(10_000)])) == 50
    assert fp([str(i) for i in range(50)] + ['x']) == fp([str(i) for i in range(50)] + ['y'])


def test_python_chains():
    parsed = parse_stack(read_stack('python_lib_requests_prices'))
    chain = parsed['chain']
    assert [c['exception_type'] for c in chain] == [
        'requests.exceptions.ConnectionError',
        'urllib3.exceptions.MaxRetryError',
        'urllib3.exceptions.NewConnectionError',
        'ConnectionRefusedError',
    ]
    assert chain[0]['frames'] is parsed['frames']
    assert chain[0]['message'] == parsed['message']
    assert chain[-1]['message'] == '[Errno 111] Connection refused'
    assert [f['function'] for f in chain[1]['frames']] == ['increment', 'urlopen', 'send']
    assert [f['function'] for f in chain[3]['frames']] == [
        'create_connection',
        'create_connection',
        '_new_conn',
    ]
    cause = parse_stack(read_stack('python_chained_from'))['chain']
    assert [(c['exception_type'], c['message']) for c in cause] == [
        ('myapp.errors.PaymentError', 'card tok_4000000000000002 was declined for 1250 EUR'),
        ('KeyError', "'tok_4000000000000002'"),
    ]
    assert [f['function'] for f in cause[1]['frames']] == ['find_card', 'charge']
    implicit = parse_stack(read_stack('python_chained_implicit'))['chain']
    assert [c['exception_type'] for c in implicit] == ['ValueError', 'KeyError']
    single = parse_stack(read_stack('python_zero_division'))
    assert len(single['chain']) == 1 and single['chain'][0]['frames'] is single['frames']
    group = parse_stack(read_stack('python_exception_group'))['chain']
    assert [c['exception_type'] for c in group] == ['ExceptionGroup']
    js = parse_stack(read_stack('v8_seed'))
    assert js['chain'] == [
        {'exception_type': 'TypeError', 'message': js['message'], 'frames': js['frames']}
    ]
    gecko = parse_stack(read_stack('gecko_firefox_3'))
    assert gecko['chain'] == [{'exception_type': None, 'message': None, 'frames': gecko['frames']}]


def test_python_chain_with_a_cause_that_was_never_raised():
    stack = (
        "ValueError: bad input\n\n"
        'The above exception was the direct cause of the following exception:\n\n'
        'Traceback (most recent call last):\n'
        '  File "/srv/app/jobs.py", line 4, in run\n'
        "    raise JobError('failed') from ValueError('bad input')\n"
        'JobError: failed\n'
    )
    chain = parse_stack(stack)['chain']
    assert [(c['exception_type'], c['message'], len(c['frames'])) for c in chain] == [
        ('JobError', 'failed', 1),
        ('ValueError', 'bad input', 0),
    ]


def test_python_chain_is_bounded():
    block = (
        'Traceback (most recent call last):\n  File "/a/x{i}.py", line 1, in f{i}\n    g()\n'
        'E{i}: m\n\nDuring handling of the above exception, another exception occurred:\n\n'
    )
    stack = ''.join(block.format(i=i) for i in range(5000)) + (
        'Traceback (most recent call last):\n  File "/a/last.py", line 1, in last\nBoom: x\n'
    )
    parsed = parse_stack(stack)
    assert parsed['exception_type'] == 'Boom'
    assert len(parsed['chain']) == grouping.MAX_CHAIN
    assert [c['exception_type'] for c in parsed['chain'][:3]] == ['Boom', 'E4999', 'E4998']


FRAMEISH = st.fixed_dictionaries(
    {},
    optional={
        'function': st.one_of(st.none(), st.integers(), st.text(max_size=40)),
        'abs_path': st.one_of(st.none(), STACKISH, st.text(max_size=300)),
        'filename': st.one_of(st.none(), st.text(max_size=60)),
        'in_app': st.one_of(st.none(), st.booleans(), st.text(max_size=3)),
    },
)
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner)
    ),
    max_leaves=20,
)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    frames=st.one_of(st.lists(st.one_of(FRAMEISH, JSONISH), max_size=12), JSONISH),
    rules=st.one_of(
        JSONISH,
        st.fixed_dictionaries(
            {'in_app': st.lists(st.text(max_size=6)), 'library': st.lists(st.text(max_size=6))}
        ),
    ),
    custom=JSONISH,
    name=st.one_of(st.text(max_size=80), STACKISH, JSONISH),
)
def test_property_version_2_is_total_and_bounded(frames, rules, custom, name):
    for event_type in ('exception', 'message'):
        key = grouping.grouping_key(
            event_type=event_type,
            exception_type='E',
            message='m',
            frames=frames,
            rules=rules,
            custom=custom,
        )
        assert key['kind'] in ('frames', 'message', 'custom')
        json.dumps(key)
        if key['kind'] == 'frames':
            assert 1 <= len(key['frames']) <= 3
        if key['kind'] == 'custom':
            assert 1 <= len(key['values']) <= 50 and all(len(v) <= 200 for v in key['values'])
        assert HEX64.fullmatch(
            compute_fingerprint(
                event_type=event_type,
                exception_type='E',
                message='m',
                frames=frames,
                rules=rules,
                custom=custom,
            )
        )
    assert len(get_culprit(frames, rules)) <= 256
    marked = grouping.mark_in_app(frames, rules)
    assert all(isinstance(f['in_app'], bool) for f in marked)
    stable = grouping.stable_file_name(name)
    assert isinstance(stable, str) and len(stable) <= 512
