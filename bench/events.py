"""Realistic ~2 KB ingest events for the benchmark, deterministic given a seed, in two mixes.

Pure: no I/O. `make_event` builds one documented-shape event; `EventSource` pre-renders a pool of
them so the load generator can produce request bodies for almost no client CPU.

Mixes: 'realistic' as real error streams are: 90 % of events are one of 50 errors x 3 releases,
each (error, release) with one fixed stack text, as an SDK sends the same bug in the same build;
10 % have a stack seen once (the long tail). 'unique', the worst case: every event's stack is
new (its column numbers come from its event id). In both, the event id, user, account, session
and window vary on every event.
"""

import hashlib
import json
import random
import re
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

FINGERPRINT_COUNT = 50
USER_COUNT = 1000
ACCOUNT_COUNT = 100
# Every template is one rendered event; 4096 of them cover ~98 % of the 1,000 users while costing
# well under a second to build.
POOL_SIZE = 4096
MIXES = ('realistic', 'unique')
# The share of a realistic mix's events whose stack is seen once.
TAIL_SHARE = 0.10
FRAME_COUNT = 10
_SLOT = re.compile(r'@@(\w+)@@')

_VERBS = (
    'load', 'render', 'handle', 'parse', 'update', 'fetch', 'build', 'apply', 'select', 'sync',
)
_NOUNS = (
    'Dashboard', 'Invoice', 'Chart', 'Profile', 'Settings', 'Report', 'Filter', 'Cart', 'Session',
    'Widget', 'Table', 'Comment', 'Upload', 'Billing', 'Search',
)
_PROPERTIES = ('id', 'name', 'length', 'map', 'items', 'value', 'data', 'status', 'total', 'then')
_PAGES = ('/dashboard', '/reports/weekly', '/settings/billing', '/invoices', '/search', '/team')
_FILES = ('main.3f9a1c7e.js', 'vendor.8b21d04f.js', 'dashboard.c0ffee12.chunk.js')
# The bottom of a React app's V8 stack: identical in every event, as in real traces.
_FRAMEWORK_FRAMES = (
    ('callCallback', 'vendor.8b21d04f.js'),
    ('invokeGuardedCallbackDev', 'vendor.8b21d04f.js'),
    ('invokeGuardedCallback', 'vendor.8b21d04f.js'),
    ('commitRootImpl', 'vendor.8b21d04f.js'),
    ('performSyncWorkOnRoot', 'vendor.8b21d04f.js'),
    ('flushSyncCallbacks', 'vendor.8b21d04f.js'),
    ('batchedUpdates$1', 'vendor.8b21d04f.js'),
)
_USER_AGENTS = (
    ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
     'Chrome/124.0.0.0 Safari/537.36'),
    ('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) '
     'Chrome/123.0.0.0 Safari/537.36'),
    ('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
     'Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51'),
)
_RELEASES = ('v2.14.0', 'v2.14.1', 'v2.15.0')


def event_id(seed, index):
    """The uuid4 hex of event `index` under `seed`: random-looking, reproducible, unique."""
    digest = hashlib.blake2b(f'{seed}:{index}'.encode(), digest_size=16).digest()
    return uuid.UUID(bytes=digest, version=4).hex


def top_frames(fingerprint):
    """The three app frames (function, file) that make fingerprint number `fingerprint` distinct."""
    # A stride coprime with the 150 (verb, noun) pairs walks 50 distinct pairs.
    pair = (fingerprint * 31) % (len(_VERBS) * len(_NOUNS))
    verb = _VERBS[pair % len(_VERBS)]
    noun = _NOUNS[pair // len(_VERBS)]
    return (
        (f'{verb}{noun}', _FILES[fingerprint % len(_FILES)]),
        (f'on{noun}Change', _FILES[0]),
        (f'use{noun}Query', _FILES[0]),
    )


def stack_columns(fingerprint, release):
    """The column numbers of the one stack an (error, release) sends: fixed per build."""
    rng = random.Random(f'{fingerprint}:{release}')
    return [str(rng.randrange(1000, 99999)) for _ in range(FRAME_COUNT)]


def event_slots(eid, columns=True):
    """What varies on every event, derived from its id: {slot: text} for a template's slots;
    the stack's column numbers only when `columns`."""
    user = int(eid[8:12], 16) % USER_COUNT
    slots = {
        'EVENT_ID': eid,
        'USER': f'{user:05d}',
        'ACCOUNT': f'{user % ACCOUNT_COUNT:03d}',
        'SESSION': eid[16:32],
        'WINDOW': eid[4:16],
    }
    if not columns:
        return slots
    # Ten column numbers of 1000..99999 from 30 hex digits: a stack no other event has.
    digits = eid[:12] + eid[13:16] + eid[17:32]
    for frame in range(FRAME_COUNT):
        slots[f'C{frame}'] = str(1000 + int(digits[frame * 3:frame * 3 + 3], 16) * 24)
    return slots


def make_event(rng, *, api_key, event_id, now, unique_stack=True):
    """One documented-shape JS TypeError event (~2 KB as JSON) drawn from `rng`.

    With event_id '@@EVENT_ID@@' the per-event parts are slots ('@@USER@@', ...; see
    event_slots), and so are the stack's column numbers when unique_stack; without it the stack
    is the fixed one of its (error, release)."""
    fingerprint = rng.randrange(FINGERPRINT_COUNT)
    release = rng.choice(_RELEASES)
    prop = _PROPERTIES[fingerprint % len(_PROPERTIES)]
    message = f"Cannot read properties of undefined (reading '{prop}')"
    frames = top_frames(fingerprint) + _FRAMEWORK_FRAMES
    templated = event_id == '@@EVENT_ID@@'
    if not unique_stack:
        columns = stack_columns(fingerprint, release)
    elif templated:
        columns = [f'@@C{frame}@@' for frame in range(FRAME_COUNT)]
    else:
        columns = [str(rng.randrange(1000, 99999)) for _ in range(FRAME_COUNT)]
    stack = '\n'.join(
        [f'TypeError: {message}']
        + [
            f'    at {function} (https://app.example.com/js/{file}:1:{column})'
            for (function, file), column in zip(frames, columns, strict=True)
        ]
    )
    user = rng.randrange(USER_COUNT)
    account = user % ACCOUNT_COUNT
    user_text, account_text = f'{user:05d}', f'{account:03d}'
    session, window = f'{rng.getrandbits(64):016x}', f'{rng.getrandbits(48):012x}'
    if templated:
        user_text, account_text = '@@USER@@', '@@ACCOUNT@@'
        session, window = '@@SESSION@@', '@@WINDOW@@'
    occurred = now - timedelta(milliseconds=rng.randrange(60_000))
    page = rng.choice(_PAGES)
    start_ms = int(occurred.timestamp() * 1000) - 30_000
    breadcrumbs = [
        {
            'timestamp': start_ms + step * 4_000,
            'category': category,
            'message': text,
            'level': 'info',
            **({'data': data} if data else {}),
        }
        for step, (category, text, data) in enumerate((
            ('navigation', f'Navigated to {page}', None),
            ('xhr', f'GET /api/v2{page}?page=1 [200]', {'status_code': 200}),
            ('console', f'Warning: Each child in a list should have a unique "key". {prop}', None),
            ('xhr', f'POST /api/v2{page}/state [500]', {'status_code': 500}),
        ))
    ]
    return {
        'api_key': api_key,
        'event_id': event_id,
        'timestamp': occurred.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z',
        'type': 'exception',
        'level': 'error',
        'environment': 'production',
        'release': release,
        'url': f'https://app.example.com{page}?tab=overview&user={user_text}',
        'user_agent': rng.choice(_USER_AGENTS),
        'exception': {'type': 'TypeError', 'message': message, 'stack': stack},
        'user': {'id': f'user_{user_text}', 'email': f'user{user_text}@cust{account_text}.example'},
        'account': {'id': f'acct_0{account_text}', 'name': f'Customer {account_text} Ltd'},
        'session_id': f'sess_{session}',
        'window_id': f'win_{window}',
        'breadcrumbs': breadcrumbs,
        'extra': {
            'component': frames[0][0],
            'props': {'view': 'overview', 'page': rng.randrange(1, 20)},
        },
    }


class EventSource:
    """Request bodies for events 0, 1, 2, ... of one seed and mix, cheap enough to make in the
    load loop.

    Event `i` is template `hash(seed, i) % POOL_SIZE` with its own uuid4 `event_id(seed, i)` and
    the other per-event values (event_slots) spliced in; the templates are rendered to JSON once,
    split around their slots, and reused. The same seed, mix and `now` (the events' timestamps
    fall in the minute before it) give the same bytes.
    """

    def __init__(self, *, seed, api_key, now=None, pool_size=POOL_SIZE, mix='unique'):
        if mix not in MIXES:
            raise ValueError(f'mix must be one of {", ".join(MIXES)}, not {mix!r}')
        now = now or datetime.now(UTC)
        rng = random.Random(seed)
        self.seed = seed
        self.mix = mix
        self._templates = []
        for _ in range(pool_size):
            unique = mix == 'unique' or rng.random() < TAIL_SHARE
            event = make_event(rng, api_key=api_key, event_id='@@EVENT_ID@@', now=now,
                               unique_stack=unique)
            pieces = _SLOT.split(json.dumps(event, separators=(',', ':')))
            # Literal text at even positions, slot names at odd ones.
            self._templates.append(([piece.encode() for piece in pieces[::2]], pieces[1::2], unique))

    def event(self, index):
        """(event_id, JSON bytes) of event `index`."""
        eid = event_id(self.seed, index)
        literals, names, unique = self._templates[int(eid[:8], 16) % len(self._templates)]
        slots = event_slots(eid, columns=unique)
        out = [literals[0]]
        for name, literal in zip(names, literals[1:], strict=True):
            out.append(slots[name].encode())
            out.append(literal)
        return eid, b''.join(out)

    def body(self, indexes, *, batch):
        """(event_ids, request body) for these events: one object, or an array."""
        pairs = [self.event(index) for index in indexes]
        ids = [eid for eid, _ in pairs]
        if not batch:
            return ids, pairs[0][1]
        return ids, b'[' + b','.join(raw for _, raw in pairs) + b']'
