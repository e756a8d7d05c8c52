"""Table-driven tests of proliferate.grouping over real stack traces in tests/data/stacks."""

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
    assert grouping.FINGERPRINT_VERSION == 1
    # A literal, so it is the same in every process and any change to the algorithm shows
    # here: such a change must bump FINGERPRINT_VERSION (and then update this value).
    assert value == GOLDEN_SEED_FINGERPRINT


GOLDEN_SEED_FINGERPRINT = 'd682dbdf908c8b2876d8c5bc7065df3aa7d863186fdeac4b42ea46a8b62fac2a'


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
