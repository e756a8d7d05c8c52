"""Realistic ~2 KB ingest events for the benchmark, deterministic given a seed.

Pure: no I/O. `make_event` builds one documented-shape event; `EventSource` pre-renders a pool of
them so the load generator can produce request bodies for almost no client CPU.
"""

import hashlib
import json
import random
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
_ID_PLACEHOLDER = '@@EVENT_ID@@'

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


def make_event(rng, *, api_key, event_id, now):
    """One documented-shape JS TypeError event (~2 KB as JSON) drawn from `rng`."""
    fingerprint = rng.randrange(FINGERPRINT_COUNT)
    prop = _PROPERTIES[fingerprint % len(_PROPERTIES)]
    message = f"Cannot read properties of undefined (reading '{prop}')"
    frames = top_frames(fingerprint) + _FRAMEWORK_FRAMES
    stack = '\n'.join(
        [f'TypeError: {message}']
        + [
            f'    at {function} (https://app.example.com/js/{file}:1:{rng.randrange(1000, 99999)})'
            for function, file in frames
        ]
    )
    user = rng.randrange(USER_COUNT)
    account = user % ACCOUNT_COUNT
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
        'release': rng.choice(_RELEASES),
        'url': f'https://app.example.com{page}?tab=overview',
        'user_agent': rng.choice(_USER_AGENTS),
        'exception': {'type': 'TypeError', 'message': message, 'stack': stack},
        'user': {'id': f'user_{user:05d}', 'email': f'user{user:05d}@cust{account:03d}.example'},
        'account': {'id': f'acct_{account:04d}', 'name': f'Customer {account:03d} Ltd'},
        'session_id': f'sess_{rng.getrandbits(64):016x}',
        'window_id': f'win_{rng.getrandbits(48):012x}',
        'breadcrumbs': breadcrumbs,
        'extra': {
            'component': frames[0][0],
            'props': {'view': 'overview', 'page': rng.randrange(1, 20)},
        },
    }


class EventSource:
    """Request bodies for events 0, 1, 2, ... of one seed, cheap enough to make in the load loop.

    Event `i` is template `hash(seed, i) % POOL_SIZE` with its own uuid4 `event_id(seed, i)`; the
    templates are rendered to JSON once, split around the id, and reused. The same seed and `now`
    (the events' timestamps fall in the minute before it) give the same bytes.
    """

    def __init__(self, *, seed, api_key, now=None, pool_size=POOL_SIZE):
        now = now or datetime.now(UTC)
        rng = random.Random(seed)
        self.seed = seed
        self._parts = []
        for _ in range(pool_size):
            event = make_event(rng, api_key=api_key, event_id=_ID_PLACEHOLDER, now=now)
            text = json.dumps(event, separators=(',', ':'))
            prefix, suffix = text.split(_ID_PLACEHOLDER)
            self._parts.append((prefix.encode(), suffix.encode()))

    def event(self, index):
        """(event_id, JSON bytes) of event `index`."""
        eid = event_id(self.seed, index)
        prefix, suffix = self._parts[int(eid[:8], 16) % len(self._parts)]
        return eid, prefix + eid.encode() + suffix

    def body(self, indexes, *, batch):
        """(event_ids, request body) for these events: one object, or an array."""
        pairs = [self.event(index) for index in indexes]
        ids = [eid for eid, _ in pairs]
        if not batch:
            return ids, pairs[0][1]
        return ids, b'[' + b','.join(raw for _, raw in pairs) + b']'
