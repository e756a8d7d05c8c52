"""Grouping: stack-trace parsing (V8, Gecko/Safari, Python), build-hash stripping, in-app frames,
fingerprint (and what makes it), title and culprit. The rules are written up in docs/grouping.md.

Pure: no I/O and no imports from the rest of proliferate. Every function is total: any
input returns a bounded result in linear time, so a hostile payload cannot stall the writer.
"""

import collections
import functools
import hashlib
import itertools
import json
import re

# Bump when the fingerprint of an existing event would change; stored issues keep the old one.
# Version 2: in-app frames first, build hashes out of file names, custom fingerprints. Version 1
# stays available, frozen, as compute_fingerprint_v1, so an upgrade can find the issues it made.
FINGERPRINT_VERSION = 2

# The issue: exception type + the top 3 frames (function + file); line numbers never count.
TOP_FRAMES = 3
TITLE_LIMIT = 128
CULPRIT_LIMIT = 256
# A frame line longer than this is not a frame (minified bundles, data: URLs in messages).
MAX_FRAME_LINE = 8192
MAX_MESSAGE = 8192
MAX_TYPE = 256
MAX_FUNCTION = 512
MAX_PATH = 2048
MAX_NAME = 512
MAX_RAW = 1024
# Only the start of a message takes part in grouping; it also bounds the regex work.
MESSAGE_SCAN = 2048
# int() refuses more than 4300 digits; no real line number has more than 9.
MAX_DIGITS = 9

_PY_HEADER = 'Traceback (most recent call last):'
_PY_GROUP_HEADER = '+ Exception Group Traceback (most recent call last):'
_PY_CHAIN = (
    'During handling of the above exception, another exception occurred:',
    'The above exception was the direct cause of the following exception:',
)
# Locations that are not files: frames keep them as abs_path but get no filename.
_PSEUDO_LOCATIONS = frozenset(
    (
        '<anonymous>',
        'native',
        'native code',
        '[native code]',
        'unknown location',
        '<unknown>',
    )
)
_TYPE_NAME = re.compile(r'[A-Za-z_$][\w$.]*')
_V8_CODE = re.compile(r'\[[\w-]{1,100}\]')
_CARET_CHARS = frozenset('^~ \t')

_URL = re.compile(r'\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\'"<>]*')
_EMAIL = re.compile(r'[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}')
_UUID = re.compile(
    r'\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b'
)
_HEX_PREFIXED = re.compile(r'\b0[xX][0-9a-fA-F]+\b')
# Hashes, ObjectIds, request ids: 8+ hex characters with at least one digit.
_HEX_RUN = re.compile(r'\b(?=[0-9a-fA-F]{8,}\b)[a-fA-F]*[0-9][0-9a-fA-F]*\b')
# A quote not glued to a word, so the apostrophe of "can't" opens nothing.
_QUOTED = re.compile(r"""(?<!\w)(?:'[^'\n]{0,256}'|"[^"\n]{0,256}"|`[^`\n]{0,256}`)(?!\w)""")
_NUMBER = re.compile(r'\d+')
_SPACE = re.compile(r'\s+')
_CONTROL = re.compile(r'[\x00-\x1f\x7f\ud800-\udfff]')

# Frame lines repeat across events (framework and library frames, the same bug over and over);
# the line parsers are pure, so their results are cached (callers copy what they keep).
LINE_CACHE = 8192

# Chained Python tracebacks: the raised exception and at most this many causes in all.
MAX_CHAIN = 16
# An event's own fingerprint: its first 50 values count, each cut to 200 characters.
MAX_CUSTOM_VALUES = 50
MAX_CUSTOM_CHARS = 200
DEFAULT_VALUE = '{{ default }}'
_DEFAULT_VALUE = re.compile(r'\{\{\s*default\s*\}\}')
# A project's own in-app and library path patterns: at most this many of each, this long.
MAX_RULE_PATTERNS = 50
MAX_RULE_CHARS = 200


def parse_stack(stack, *, max_frames=250):
    """{'engine': 'v8' | 'gecko' | 'python' | None, 'frames': [frame, ...],
        'exception_type': str | None, 'message': str | None, 'chain': [exception, ...]}

    frames are ordered TOP FIRST (frames[0] is nearest to where the error was raised),
    whatever the engine; at most max_frames of them, the top ones. The top-level keys describe
    the exception finally raised. chain lists every exception of the text as
    {'exception_type', 'message', 'frames'}: the raised one first (its frames are the same list
    as the top-level frames), then, for Python's chained tracebacks ('raise ... from ...',
    'During handling of the above exception ...'), its causes in order, at most MAX_CHAIN.
    A JavaScript stack holds one exception; text that is no stack has an empty chain.

    Frames carry no 'in_app' mark: which frames are the application's depends on the
    project's rules and, for bundles, on source maps resolved later; see mark_in_app.
    """
    result = {
        'engine': None,
        'frames': [],
        'exception_type': None,
        'message': None,
        'chain': [],
    }
    if not isinstance(stack, str) or not stack:
        return result
    try:
        max_frames = max(0, int(max_frames))
    except (TypeError, ValueError, OverflowError):
        max_frames = 250
    lines = stack.splitlines()
    engine = _detect_engine(lines)
    if engine == 'python':
        chain = _parse_python(lines, max_frames)
    elif engine == 'v8':
        frames, exception_type, message = _parse_v8(lines, max_frames)
        chain = [_exception(exception_type, message, frames)]
    elif engine == 'gecko':
        chain = [_exception(None, None, _parse_gecko(lines, max_frames))]
    else:
        return result
    raised = chain[0]
    result.update(
        engine=engine,
        frames=raised['frames'],
        exception_type=raised['exception_type'],
        message=raised['message'],
        chain=chain,
    )
    return result


def normalize_message(message):
    """The message with its volatile parts (URLs, emails, UUIDs, hex ids, quoted values,
    numbers) replaced by placeholders and whitespace collapsed; '' for no message."""
    if not isinstance(message, str):
        return ''
    text = message.strip()[:MESSAGE_SCAN]
    text = _URL.sub('<url>', text)
    text = _EMAIL.sub('<email>', text)
    text = _UUID.sub('<uuid>', text)
    text = _HEX_PREFIXED.sub('<hex>', text)
    text = _HEX_RUN.sub('<hex>', text)
    text = _QUOTED.sub('<str>', text)
    text = _NUMBER.sub('<n>', text)
    return _SPACE.sub(' ', text).strip()


def grouping_key(*, event_type, exception_type, message, frames, rules=None, custom=None):
    """What the fingerprint is made of, in a form a page can show (JSON-serialisable):

    {'kind': 'custom', 'values': [str, ...], 'default': key | None} when the event brings its
        own fingerprint (see custom_fingerprint); 'default' is our own key when a value is
        '{{ default }}', else None;
    {'kind': 'frames', 'type': str, 'frames': [(function, file name), ...]} for exceptions
        with frames: the type's last dotted component and the top 3 in-app frames (all frames
        when none is in-app), file names without build hashes, never line numbers;
    {'kind': 'message', 'type': str | None, 'message': str}: the normalised message, for
        message events (type None) and exceptions without usable frames (type str).
    """
    values = custom_fingerprint(custom)
    if values:
        default = None
        if DEFAULT_VALUE in values:
            default = _default_key(event_type, exception_type, message, frames, rules)
        return {'kind': 'custom', 'values': values, 'default': default}
    return _default_key(event_type, exception_type, message, frames, rules)


def compute_fingerprint(*, event_type, exception_type, message, frames, rules=None, custom=None):
    """Hex sha256 of grouping_key(...) (exactly that), salted with FINGERPRINT_VERSION.

    rules: the project's in-app rules (see in_app_rules), None for the built-in ones.
    custom: the event's own fingerprint, a list of strings (see custom_fingerprint).
    """
    key = grouping_key(
        event_type=event_type,
        exception_type=exception_type,
        message=message,
        frames=frames,
        rules=rules,
        custom=custom,
    )
    salted = f'proliferate-grouping-v{FINGERPRINT_VERSION}\n' + json.dumps(key, sort_keys=True)
    return hashlib.sha256(salted.encode('ascii')).hexdigest()


def compute_fingerprint_v1(*, event_type, exception_type, message, frames):
    """The version-1 fingerprint, frozen: what issues stored before version 2 carry, so an
    upgrade can find an event's old issue. Never change it: it shares normalize_message and
    the frame helpers with version 2, and golden values in the tests hold them still."""
    if event_type == 'message':
        key = ['message', normalize_message(message)]
    else:
        top = _frame_keys_v1(frames)
        type_key = _type_key(exception_type)
        if top:
            key = ['exception', type_key, 'frames', top]
        else:
            key = ['exception', type_key, 'message', normalize_message(message)]
    salted = 'proliferate-grouping-v1\n' + json.dumps(key)
    return hashlib.sha256(salted.encode('ascii')).hexdigest()


def custom_fingerprint(custom):
    """The event's own fingerprint as the list of values that replace our key, [] for none.

    custom is a list (or tuple) of strings, as Sentry SDKs and our API send 'fingerprint'.
    Only its first MAX_CUSTOM_VALUES elements count; strings longer than MAX_CUSTOM_CHARS are
    cut; numbers and booleans become their JSON text (3 -> '3', 1.0 -> '1', True -> 'true');
    empty strings and anything else (None, lists, dicts) are ignored. '{{ default }}' (any
    spacing inside the braces) comes back as DEFAULT_VALUE and stands for our own key.
    """
    if not isinstance(custom, (list, tuple)):
        return []
    values = []
    for value in custom[:MAX_CUSTOM_VALUES]:
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, int):
            # JSON numbers beyond 64 bits are not a fingerprint (and str() of a huge
            # int is slow or refused).
            value = str(value) if -(2**63) <= value < 2**64 else ''
        elif isinstance(value, float):
            value = _float_text(value)
        elif not isinstance(value, str):
            continue
        if not value:
            continue
        value = value[:MAX_CUSTOM_CHARS]
        values.append(DEFAULT_VALUE if _DEFAULT_VALUE.fullmatch(value) else value)
    return values


def get_title(event_type, exception_type, message):
    """type + ': ' + first line of the message, at most 128 characters; the message alone
    for message events, the type alone when there is no message."""
    first = _first_line(message)
    kind = _clean(exception_type) if event_type != 'message' else ''
    if kind and first:
        title = f'{kind}: {first}'
    else:
        title = kind or first or '(no message)'
    return _trim(title, TITLE_LIMIT)


def get_culprit(frames, rules=None):
    """The top in-app frame (the top frame when none is in-app) as 'function in file', with
    the file name as the frame shows it; '' when no frame has a function or a file."""
    usable = _usable_frames(frames)
    chosen = next(_in_app_frames(usable, rules), None) or next(_usable_frames(frames), None)
    if chosen is None:
        return ''
    function = _clean(chosen.get('function'))
    filename = _clean(_frame_filename(chosen))
    if function and filename:
        return _trim(f'{function} in {filename}', CULPRIT_LIMIT)
    return _trim(function or filename, CULPRIT_LIMIT)


# -- engine detection ---------------------------------------------------------------------


def _detect_engine(lines):
    # The engine with the most frame lines wins; a message may contain a line or two that
    # look like another engine's frames, a real trace has more of its own.
    python = v8 = gecko = 0
    for line in lines:
        if len(line) > MAX_FRAME_LINE:
            continue
        text = line.strip()
        if text.startswith('|'):
            # Exception groups indent their tracebacks behind '|'.
            text = text.lstrip('| \t')
        if not text:
            continue
        # Each parser is asked only about lines that start like its frames: a miss would put
        # the line into that parser's cache too and push out lines that recur.
        if text.startswith('File "'):
            python += _parse_python_file_line(text) is not None
        elif text.startswith('at '):
            v8 += _parse_v8_line(text) is not None
        elif text == _PY_HEADER:
            python += 1
        elif _parse_gecko_line(text) is not None:
            gecko += 1
    best = max(python, v8, gecko)
    if best == 0:
        return None
    if python == best:
        return 'python'
    return 'v8' if v8 == best else 'gecko'


# -- V8 (Chrome, Node, Edge) --------------------------------------------------------------


def _parse_v8(lines, max_frames):
    frames = []
    header = []
    header_size = 0
    for line in lines:
        text = line.strip() if len(line) <= MAX_FRAME_LINE else ''
        frame = _parse_v8_line(text) if text else None
        frame = dict(frame) if frame is not None else None
        if frame is None:
            # Lines before the first frame are the 'Type: message' header.
            if not frames and header_size < MAX_MESSAGE:
                header.append(line[:MAX_MESSAGE])
                header_size += len(header[-1]) + 1
            continue
        if len(frames) >= max_frames:
            break
        frames.append(frame)
    exception_type, message = _parse_v8_header('\n'.join(header).strip())
    return frames, exception_type, message


@functools.lru_cache(maxsize=LINE_CACHE)
def _parse_v8_line(text):
    if not text.startswith('at '):
        return None
    rest = text[3:].strip()
    if rest.startswith('async '):
        rest = rest[6:].lstrip()
    function = None
    location = rest
    if rest.endswith(')'):
        # 'fn (location)'; the first ' (' ends the name: paths may hold parentheses,
        # names such as 'I.e.fn.(anonymous function) [as index]' hold no ' ('.
        cut = rest.find(' (')
        if cut <= 0:
            cut = rest.find('(')  # webpack eval: 'at Foo.eval(webpack:///a.jsx?:1:2)'
            width = 1
        else:
            width = 2
        if cut > 0 and '/' not in rest[:cut]:
            function = rest[:cut].strip()
            location = rest[cut + width : -1].strip()
    if location.startswith('async '):
        location = location[6:].lstrip()
    if location.startswith('eval at '):
        # 'eval at foo (eval at bar (file.js:1:2)), <anonymous>:1:1': the innermost
        # parenthesised location is the real file, as Sentry's parser does.
        close = location.find(')')
        opened = location.rfind('(', 0, close) if close > 0 else -1
        if opened >= 0:
            location = location[opened + 1 : close]
    path, lineno, colno = _split_location(location)
    if not path or (lineno is None and _file_name(path) is not None):
        # A location has a line number or is one of V8's placeholders ('<anonymous>',
        # 'native', 'index 0'); 'at least one item is required (got 0)' is message text.
        return None
    return _make_frame(function, path, lineno, colno, text)


def _parse_v8_header(header):
    if not header:
        return None, None
    first, _, more = header.partition('\n')
    first = first.strip()
    if first.startswith('Uncaught '):
        first = first[9:]
    name, colon, rest = first.partition(':')
    name = name.strip()
    # Node: 'TypeError [ERR_INVALID_ARG_TYPE]: ...' -> the type is 'TypeError'.
    base, _, code = name.partition(' ')
    if code and _V8_CODE.fullmatch(code):
        name = base
    if len(name) > MAX_TYPE or not _TYPE_NAME.fullmatch(name):
        return None, _cap(header, MAX_MESSAGE)
    message = rest.strip() if colon else ''
    if more:
        message = f'{message}\n{more}' if message else more
    return name, (_cap(message, MAX_MESSAGE) or None)


# -- Gecko (Firefox) and JavaScriptCore (Safari) ------------------------------------------


def _parse_gecko(lines, max_frames):
    frames = []
    for line in lines:
        if len(frames) >= max_frames:
            break
        if len(line) > MAX_FRAME_LINE:
            continue
        text = line.strip()
        frame = _parse_gecko_line(text) if text else None
        frame = dict(frame) if frame is not None else None
        if frame is not None:
            frames.append(frame)
    return frames


@functools.lru_cache(maxsize=LINE_CACHE)
def _parse_gecko_line(text):
    if text == '[native code]':
        return _make_frame(None, text, None, None, text)
    if '"' in text:
        # 'obj["@fn"]@file.js:1:2': the name runs past its last quote.
        at = text.find('@', text.rfind('"'))
    else:
        at = text.find('@')
    if at < 0:
        # Safari's anonymous frame is a bare 'http://host/file.js:48:22'.
        if ' ' in text or '/' not in text:
            return None
        path, lineno, colno = _split_location(text)
        if lineno is None:
            return None
        return _make_frame(None, path, lineno, colno, text)
    function = text[:at].strip()
    location = text[at + 1 :].strip()
    if function.endswith(')') and '(' in function:
        # Firefox < 30 printed arguments: 'bar(1)@...', '(null)@...'.
        function = function[: function.find('(')].strip()
    if location in _PSEUDO_LOCATIONS:
        return _make_frame(function or None, location, None, None, text)
    eval_at = location.find(' line ')
    if eval_at > 0 and location.endswith(tuple('0123456789')) and '> ' in location:
        # 'file.js line 26 > eval line 2 > eval:1:30': the frame is the eval inside
        # file.js at line 26, as Sentry reports it.
        digits = location[eval_at + 6 :].split(' ', 1)[0]
        lineno = _to_int(digits)
        return _make_frame(function or 'eval', location[:eval_at], lineno, None, text)
    path, lineno, colno = _split_location(location)
    if lineno is None or not path:
        return None
    return _make_frame(function or None, path, lineno, colno, text)


# -- Python --------------------------------------------------------------------------------


def _parse_python(lines, max_frames):
    # The exception finally raised is printed last: the chain lists it first, then its causes.
    chain = []
    for block in reversed(_python_blocks(lines)):
        frames, exception_type, message = _parse_python_block(block, max_frames)
        if chain and not frames and exception_type is None and message is None:
            continue  # the blank lines between a chain's text and the next traceback
        chain.append(_exception(exception_type, message, frames))
        if len(chain) == MAX_CHAIN:
            break
    return chain


def _parse_python_block(block, max_frames):
    # Tracebacks list the top frame last: keep a sliding window of the newest ones.
    frames = collections.deque(maxlen=max_frames)
    seen = 0
    file_indent = 0
    expect_context = False
    exception_at = None
    for index, line in enumerate(block):
        if exception_at is not None and seen:
            # Everything after the exception line is its message, even text that looks
            # like a frame (a message quoting another traceback).
            continue
        text = line.strip() if len(line) <= MAX_FRAME_LINE else ''
        frame = _parse_python_file_line(text) if text else None
        frame = dict(frame) if frame is not None else None
        if frame is not None:
            seen += 1
            frames.append(frame)
            file_indent = len(line) - len(line.lstrip())
            expect_context = bool(frames)
            exception_at = None
            continue
        if exception_at is not None:
            continue
        if not text or text.startswith('[Previous line repeated '):
            continue
        indent = len(line) - len(line.lstrip())
        if seen and indent > file_indent:
            # The source line, then (Python 3.11+) a line of ^ and ~ under it.
            if expect_context and not set(text) <= _CARET_CHARS:
                frames[-1]['context_line'] = _cap(text, MAX_RAW)
            expect_context = False
            continue
        if text == _PY_HEADER:
            continue
        exception_at = index
    exception_type = message = None
    if exception_at is not None:
        exception_type, message = _parse_python_exception(block, exception_at)
    return list(reversed(frames)), exception_type, message


def _python_blocks(lines):
    # A chained traceback prints the cause first, each block after a 'Traceback' header or a
    # chain line; the text before the first of them is not part of any. An exception group's
    # block is its lines prefixed with '|' under its header (its sub-exceptions are not causes,
    # they stay out). Only the last blocks are kept: the raised exception and its near causes.
    starts = collections.deque(maxlen=2 * MAX_CHAIN + 1)
    first_is_chain = False
    for index, line in enumerate(lines):
        if len(line) > MAX_FRAME_LINE:
            continue
        text = line.strip()
        if text in _PY_CHAIN:
            first_is_chain = first_is_chain or not starts
            starts.append((index + 1, None))
        elif text == _PY_HEADER:
            starts.append((index + 1, None))
        elif text == _PY_GROUP_HEADER:
            starts.append((index + 1, line[: line.find('+')] + '|'))
    if not starts:
        return [lines]
    starts = list(starts)
    if first_is_chain and starts[0][0] == 1 + _first_chain_line(lines):
        # A cause that was never raised has no traceback: its 'Type: message' line comes
        # first, before the chain line.
        starts.insert(0, (0, None))
    blocks = []
    ends = [start - 1 for start, _ in starts][1:] + [len(lines)]
    for (start, group_prefix), end in zip(starts, ends, strict=False):
        if group_prefix is None:
            blocks.append(lines[start:end])
            continue
        block = []
        for line in lines[start:end]:
            if not line.startswith(group_prefix):
                break
            block.append(line[len(group_prefix) :])
        blocks.append(block)
    return blocks


def _first_chain_line(lines):
    for index, line in enumerate(lines):
        if len(line) <= MAX_FRAME_LINE and line.strip() in _PY_CHAIN:
            return index
    return -1


@functools.lru_cache(maxsize=LINE_CACHE)
def _parse_python_file_line(text):
    # 'File "/srv/app/views.py", line 12, in checkout' (', in ...' absent for SyntaxError).
    if not text.startswith('File "'):
        return None
    end = text.find('", line ', 6)
    if end < 0:
        return None
    path = text[6:end]
    rest = text[end + 8 :]
    digits, _, function = rest.partition(', in ')
    lineno = _to_int(digits.strip())
    if lineno is None or not path:
        return None
    return _make_frame(function.strip() or None, path, lineno, None, text, python=True)


def _parse_python_exception(block, start):
    lines = []
    size = 0
    for line in block[start:]:
        if size >= MAX_MESSAGE:
            break
        lines.append(line[:MAX_MESSAGE])
        size += len(lines[-1]) + 1
    text = '\n'.join(lines).strip()
    if not text:
        return None, None
    first, _, more = text.partition('\n')
    name, colon, rest = first.partition(':')
    name = name.strip()
    if len(name) > MAX_TYPE or not _TYPE_NAME.fullmatch(name) or '$' in name:
        return None, _cap(text, MAX_MESSAGE)
    message = rest.strip() if colon else ''
    if more:
        message = f'{message}\n{more}' if message else more
    return name, (_cap(message, MAX_MESSAGE) or None)


# -- frames ------------------------------------------------------------------------------


def _make_frame(function, path, lineno, colno, raw, python=False):
    path = _cap(path, MAX_PATH)
    filename = _base_name(path) if python else _file_name(path)
    return {
        'function': _cap(function, MAX_FUNCTION) if function else None,
        'abs_path': path or None,
        'filename': filename,
        'lineno': lineno,
        'colno': colno,
        'context_line': None,
        'raw': _cap(raw, MAX_RAW),
    }


def _split_location(location):
    """'http://x/a.js:10:5' -> ('http://x/a.js', 10, 5); without line numbers, (loc, None, None)."""
    head, sep, tail = location.rpartition(':')
    last = _to_int(tail) if sep else None
    if last is None:
        return location, None, None
    head2, sep2, tail2 = head.rpartition(':')
    first = _to_int(tail2) if sep2 else None
    if first is None:
        return head, last, None
    return head2, first, last


def _to_int(digits):
    if 0 < len(digits) <= MAX_DIGITS and digits.isascii() and digits.isdigit():
        return int(digits)
    return None


def _file_name(path):
    if path in _PSEUDO_LOCATIONS or path.startswith('index '):
        # 'at async Promise.all (index 0)', 'at JSON.parse (<anonymous>)': no file.
        return None
    return _base_name(path)


def _base_name(path):
    """Base name without directories, query string or fragment, for paths and URLs alike:
    'https://x.com/static/app.3f9a.js?v=2#x' -> 'app.3f9a.js', 'webpack:///./src/a.ts' -> 'a.ts'."""
    if not path:
        return None
    for mark in ('?', '#'):
        cut = path.find(mark)
        if cut >= 0:
            path = path[:cut]
    path = path.replace('\\', '/').rstrip('/')
    name = path.rpartition('/')[2].strip()
    return _cap(name, MAX_NAME) or None


def _usable_frames(frames):
    if not isinstance(frames, (list, tuple)):
        return
    for frame in frames:
        if isinstance(frame, dict) and (_text(frame.get('function')) or _frame_filename(frame)):
            yield frame


def _frame_filename(frame):
    # Frames may come back from source-map resolution with only abs_path, or with a path
    # in filename; the base name is what groups.
    return _file_name(_text(frame.get('filename'))) or _file_name(_text(frame.get('abs_path')))


def _frame_keys_v1(frames):
    # Version 1, frozen with compute_fingerprint_v1: the top 3 frames, file names as they are.
    keys = []
    for frame in _usable_frames(frames):
        function = _text(frame.get('function'))
        # 'Object.load [as fetch]': the alias names the call site's property, not the code.
        alias = function.find(' [as ')
        if alias > 0 and function.endswith(']'):
            function = function[:alias]
        keys.append([function.strip()[:MAX_FUNCTION], (_frame_filename(frame) or '')])
        if len(keys) == TOP_FRAMES:
            break
    return keys


def _frame_keys(frames, rules):
    # The top 3 in-app frames, or the top 3 frames when the stack has no in-app frame (an
    # error entirely inside a library, or a stack of builtins), as (function, file name).
    chosen = list(itertools.islice(_in_app_frames(_usable_frames(frames), rules), TOP_FRAMES))
    if not chosen:
        chosen = list(itertools.islice(_usable_frames(frames), TOP_FRAMES))
    keys = []
    for frame in chosen:
        function = _text(frame.get('function'))
        alias = function.find(' [as ')
        if alias > 0 and function.endswith(']'):
            function = function[:alias]
        keys.append((function.strip()[:MAX_FUNCTION], stable_file_name(_frame_filename(frame))))
    return keys


def _default_key(event_type, exception_type, message, frames, rules):
    if event_type == 'message':
        return {'kind': 'message', 'type': None, 'message': normalize_message(message)}
    type_key = _type_key(exception_type)
    top = _frame_keys(frames, rules)
    if top:
        return {'kind': 'frames', 'type': type_key, 'frames': top}
    return {'kind': 'message', 'type': type_key, 'message': normalize_message(message)}


def _exception(exception_type, message, frames):
    return {'exception_type': exception_type, 'message': message, 'frames': frames}


def _float_text(value):
    if value != value or value in (float('inf'), float('-inf')):
        return ''
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # as JavaScript prints it: 1.0 -> '1'
    return repr(value)


def _type_key(exception_type):
    # The Python SDK 0.1.x sends 'myapp.errors.PaymentError', 0.2.x 'PaymentError'.
    text = _text(exception_type).strip()[:MAX_TYPE]
    return text.rpartition('.')[2]


# -- build hashes in file names ------------------------------------------------------------

# webpack '[name].[contenthash].js', '[id].[hash].chunk.js', Parcel 'index.8e3f1a2b.js', Vite 2:
# a dot-separated segment of 8 to 64 hex characters with a digit (a build stamp of digits too).
_HEX_SEGMENT = re.compile(r'(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,64}')
# Rollup/Vite/Rolldown '[name]-[hash]': 8 characters of base64url (letters of both cases,
# digits, '_' and '-'); esbuild '[name]-[hash]': 8 of base32 upper case (A-Z, 2-7).
_BASE64URL_8 = re.compile(r'[A-Za-z0-9_-]{8}')
_BASE32_8 = re.compile(r'[A-Z2-7]{8}')
# Words that look like an 8-character mixed-case token: 'Settings', 'useState'.
_WORDLIKE_8 = re.compile(r'[A-Z][a-z]{7}|[a-z]+[A-Z][a-z]+')
# webpack '[contenthash].js' and Next.js's nameless chunks: the whole name is a long hash.
_HASH_NAME = re.compile(r'(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{16,64}')
HASH_PLACEHOLDER = '<hash>'


def stable_file_name(name):
    """The file name without the build hash a bundler put in it, so a redeploy keeps its
    issues: 'main.3f1c2a9b.js' -> 'main.js', 'index-BxnVBI-l.js' -> 'index.js',
    'app-5XJ2KQ7M.js' -> 'app.js', '873-3f1c2a9b8d7e6f5a.js' -> '873.js',
    '842.3f1c2a9b.chunk.js' -> '842.chunk.js'. Real names stay whole ('vendor.js',
    'jquery-3.7.1.min.js', 'polyfills-es2015.js', 'chunk-vendors.js'); docs/grouping.md has
    the rules and their trade-offs. Any value returns a string ('' for a non-string)."""
    if not isinstance(name, str) or not name:
        return ''
    return _stable_file_name(name[:MAX_NAME])


@functools.lru_cache(maxsize=LINE_CACHE)
def _stable_file_name(name):
    stem, dot, extension = name.rpartition('.')
    if not dot or not stem or not extension.isalnum():
        return name
    segments = stem.split('.')
    if len(segments) == 1 and _HASH_NAME.fullmatch(stem):
        return f'{HASH_PLACEHOLDER}.{extension}'
    kept = [_without_dash_hash(segments[0])]
    for segment in segments[1:]:
        if not _HEX_SEGMENT.fullmatch(segment):
            kept.append(_without_dash_hash(segment))
    if not kept[0]:
        return name
    return '.'.join(kept) + '.' + extension


def _without_dash_hash(segment):
    # '[name]-[hash]': the 8 characters after the last-but-eight '-' when they are a short
    # hash, else a hex hash after the last '-' (Vite 3 and 4, Next.js's 16 hex characters).
    if len(segment) > 9 and segment[-9] == '-' and _is_short_hash(segment[-8:]):
        return segment[:-9]
    head, dash, tail = segment.rpartition('-')
    if dash and head and _HEX_SEGMENT.fullmatch(tail):
        return head
    return segment


def _is_short_hash(token):
    if _BASE32_8.fullmatch(token):
        # esbuild: upper case only; 8-letter upper-case words are rare in file names, while
        # a fifth of esbuild's hashes hold no digit.
        return True
    if not _BASE64URL_8.fullmatch(token):
        return False
    if _HEX_SEGMENT.fullmatch(token):
        return True
    # Rollup: a quarter of its hashes hold no digit but nearly all mix cases; a word with
    # one capital ('Settings', 'useState') is a name.
    mixed = not token.islower() and not token.isupper()
    return mixed and not _WORDLIKE_8.fullmatch(token)


# -- in-app frames ---------------------------------------------------------------------------

InAppRules = collections.namedtuple('InAppRules', ('in_app', 'library'))
BUILTIN_RULES = InAppRules((), ())

# Library code by path (matched on the path with '\' as '/'): Python packages and the
# interpreter's standard library (the version segment is required: an application's own lib/
# folder is application code), Node's dependencies and internals, vendored scripts, browser
# extensions and frames without a file (native code, builtins).
_LIBRARY_PATH = re.compile(
    r'/(?:site|dist)-packages/'
    r'|(?:^|/)lib(?:64)?/python[23]\.\d{1,2}t?/'
    r'|(?:^|/)python[23]\d{0,2}t?/lib/(?!site-packages/)'
    r'|^<frozen |^node:|^internal/'
    r'|(?:^|/)node_modules/'
    r'|(?:^|/)vendors?/'
    r'|/_next/static/chunks/(?:framework|webpack|main|main-app|polyfills)-'
    r'|^(?:chrome-extension|moz-extension|safari-web-extension|safari-extension'
    r'|webkit-masked-url)://',
    re.IGNORECASE,
)
# Vendor chunks by file name: 'vendor.js', 'vendor.3f1c2a9b.js', 'vendors~main.js',
# 'vendors-node_modules_react_index_js.js' (webpack 5), 'chunk-vendors.5d6e7f8a.js' (Vue CLI).
_VENDOR_FILE = re.compile(r'(?:vendors?(?:[.~-].*)?|chunk-vendors.*)\.[cm]?js', re.IGNORECASE)


def in_app_rules(rules=None):
    """A project's rules as InAppRules(in_app=(pattern, ...), library=(pattern, ...)).

    rules: None, a dict {'in_app': [pattern, ...], 'library': [...]} as a project stores it,
    or an InAppRules made here (used as it is). A pattern is a plain substring of the frame's
    path (abs_path, else the file name; '\\' read as '/'), case-sensitive: '/src/myapp/',
    'node_modules/@acme/', 'https://cdn.example.com/'. No globs or regexes, so matching stays
    linear and needs no escaping. Only the first MAX_RULE_PATTERNS non-empty strings of each
    list count, each cut to MAX_RULE_CHARS; anything else is ignored.
    """
    if isinstance(rules, InAppRules):
        return rules
    if not isinstance(rules, dict):
        return BUILTIN_RULES
    return InAppRules(_patterns(rules.get('in_app')), _patterns(rules.get('library')))


def is_in_app(frame, rules=None):
    """Whether the frame is the application's own code (True) or a library's (False).

    A frame carrying 'in_app' True or False (Sentry SDKs send it) keeps it. Otherwise the
    project's in-app patterns win over its library patterns, and both over the built-in rules
    (docs/grouping.md): Python packages and standard library, node_modules, Node internals,
    vendor directories and chunks, browser extensions and frames without a file are library
    code; everything else is the application's.
    """
    if not isinstance(frame, dict):
        return False
    flag = frame.get('in_app')
    if isinstance(flag, bool):
        return flag
    path = _text(frame.get('abs_path')) or _text(frame.get('filename'))
    path = path[:MAX_PATH].replace('\\', '/')
    rules = in_app_rules(rules)
    if any(pattern in path for pattern in rules.in_app):
        return True
    if any(pattern in path for pattern in rules.library):
        return False
    return not _builtin_library(path)


def mark_in_app(frames, rules=None):
    """Copies of the frames (dicts only; anything else is dropped), each with 'in_app' set by
    is_in_app. For pages and stored frames; grouping asks is_in_app itself, so frames need not
    be marked before compute_fingerprint (and a mark made with other rules would win there)."""
    if not isinstance(frames, (list, tuple)):
        return []
    rules = in_app_rules(rules)
    return [dict(f, in_app=is_in_app(f, rules)) for f in frames if isinstance(f, dict)]


@functools.lru_cache(maxsize=LINE_CACHE)
def _builtin_library(path):
    if not path or path in _PSEUDO_LOCATIONS or path.startswith('index '):
        return True  # native code, '<anonymous>', 'Promise.all (index 0)': no file of ours
    if _LIBRARY_PATH.search(path):
        return True
    return bool(_VENDOR_FILE.fullmatch(_base_name(path) or ''))


def _patterns(values):
    if not isinstance(values, (list, tuple)):
        return ()
    patterns = []
    for value in values[:MAX_RULE_PATTERNS]:
        if isinstance(value, str) and value:
            patterns.append(value[:MAX_RULE_CHARS].replace('\\', '/'))
    return tuple(patterns)


def _in_app_frames(frames, rules):
    rules = in_app_rules(rules)
    return (frame for frame in frames if is_in_app(frame, rules))


# -- text helpers ----------------------------------------------------------------------------


def _text(value):
    return value if isinstance(value, str) else ''


def _cap(text, limit):
    return text[:limit] if text else text


def _clean(value):
    # Titles and culprits are stored and shown: no control characters, no lone surrogates
    # (SQLite and PostgreSQL both refuse to encode them).
    text = _text(value)[: 4 * TITLE_LIMIT + CULPRIT_LIMIT]
    return _SPACE.sub(' ', _CONTROL.sub(' ', text)).strip()


def _first_line(message):
    text = _text(message).lstrip()[:MESSAGE_SCAN]
    for line in text.splitlines():
        return _clean(line)
    return ''


def _trim(text, limit):
    return text if len(text) <= limit else text[: limit - 1].rstrip() + '…'
