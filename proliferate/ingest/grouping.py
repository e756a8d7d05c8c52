"""Grouping: stack-trace parsing (V8, Gecko/Safari, Python), fingerprint, title and culprit.

Pure: no I/O and no imports from the rest of proliferate. Every function is total: any
text returns a bounded result in linear time, so a hostile payload cannot stall the writer.
"""

import collections
import functools
import hashlib
import json
import re

# Bump when the fingerprint of an existing event would change; stored issues keep the old one.
FINGERPRINT_VERSION = 1

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


def parse_stack(stack, *, max_frames=250):
    """{'engine': 'v8' | 'gecko' | 'python' | None, 'frames': [frame, ...],
        'exception_type': str | None, 'message': str | None}

    frames are ordered TOP FIRST (frames[0] is nearest to where the error was raised),
    whatever the engine; at most max_frames of them, the top ones.
    """
    result = {'engine': None, 'frames': [], 'exception_type': None, 'message': None}
    if not isinstance(stack, str) or not stack:
        return result
    try:
        max_frames = max(0, int(max_frames))
    except (TypeError, ValueError, OverflowError):
        max_frames = 250
    lines = stack.splitlines()
    engine = _detect_engine(lines)
    if engine == 'python':
        frames, exception_type, message = _parse_python(lines, max_frames)
    elif engine == 'v8':
        frames, exception_type, message = _parse_v8(lines, max_frames)
    elif engine == 'gecko':
        frames, exception_type, message = _parse_gecko(lines, max_frames), None, None
    else:
        return result
    result.update(engine=engine, frames=frames, exception_type=exception_type, message=message)
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


def compute_fingerprint(*, event_type, exception_type, message, frames):
    """Hex sha256 of the grouping key, salted with FINGERPRINT_VERSION.

    Message events group on the normalised message; exceptions on the type's last dotted
    component plus the top 3 frames (function + file name), or the normalised message
    when no frame has a function or a file.
    """
    if event_type == 'message':
        key = ['message', normalize_message(message)]
    else:
        top = _frame_keys(frames)
        type_key = _type_key(exception_type)
        if top:
            key = ['exception', type_key, 'frames', top]
        else:
            key = ['exception', type_key, 'message', normalize_message(message)]
    salted = f'proliferate-grouping-v{FINGERPRINT_VERSION}\n' + json.dumps(key)
    return hashlib.sha256(salted.encode('ascii')).hexdigest()


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


def get_culprit(frames):
    """The top frame as 'function in file' ('' when no frame has a function or a file)."""
    for frame in _usable_frames(frames):
        function = _clean(frame.get('function'))
        filename = _clean(_frame_filename(frame))
        if function and filename:
            return _trim(f'{function} in {filename}', CULPRIT_LIMIT)
        return _trim(function or filename, CULPRIT_LIMIT)
    return ''


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
    block = _last_python_block(lines)
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


def _last_python_block(lines):
    # A chained traceback prints the cause first; the exception finally raised is the
    # last block. An exception group's block is prefixed with '|' under its header.
    start = 0
    group_prefix = None
    for index, line in enumerate(lines):
        if len(line) > MAX_FRAME_LINE:
            continue
        text = line.strip()
        if text == _PY_HEADER or text in _PY_CHAIN:
            start = index + 1
            group_prefix = None
        elif text == _PY_GROUP_HEADER:
            start = index + 1
            group_prefix = line[: line.find('+')] + '|'
    if group_prefix is None:
        return lines[start:]
    block = []
    for line in lines[start:]:
        if not line.startswith(group_prefix):
            break
        block.append(line[len(group_prefix) :])
    return block


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


def _frame_keys(frames):
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


def _type_key(exception_type):
    # The Python SDK 0.1.x sends 'myapp.errors.PaymentError', 0.2.x 'PaymentError'.
    text = _text(exception_type).strip()[:MAX_TYPE]
    return text.rpartition('.')[2]


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
