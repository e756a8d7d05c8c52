"""The published API's own examples (shared/api/error-ingestion.md), without a key: each test
adds its project's."""

SEED_EVENT = {
    'event_id': 'evt_1234567890abcdef',
    'timestamp': '2025-01-15T10:30:00.123Z',
    'type': 'exception',
    'level': 'error',
    'environment': 'production',
    'release': 'v1.2.3',
    'url': 'https://example.com/dashboard',
    'user_agent': 'Mozilla/5.0...',
    'exception': {
        'type': 'TypeError',
        'message': "Cannot read property 'foo' of undefined",
        'stack': "TypeError: Cannot read property 'foo' of undefined\n"
                 '    at processData (app.js:42:15)\n    at handleClick (app.js:120:5)',
    },
    'user': {'id': 'user_abc123', 'email': 'jane@example.com'},
    'account': {'id': 'acct_xyz789', 'name': 'Acme Corp'},
    'session_id': 'sess_abcdef123456',
    'window_id': 'win_ghijkl789012',
    'breadcrumbs': [
        {'timestamp': 1736938195000, 'category': 'navigation',
         'message': 'Navigated to /dashboard', 'level': 'info'},
        {'timestamp': 1736938198000, 'category': 'click', 'message': 'Clicked button#submit',
         'level': 'info', 'data': {'element': 'button#submit'}},
    ],
    'extra': {'component': 'Dashboard', 'props': {'view': 'overview'}},
}

SEED_BATCH = [
    {'event_id': 'evt_001', 'timestamp': '2025-01-15T10:30:00Z', 'type': 'exception',
     'exception': {'type': 'TypeError', 'message': "Cannot read property 'x' of undefined",
                   'stack': '...'}},
    {'event_id': 'evt_002', 'timestamp': '2025-01-15T10:30:05Z', 'type': 'exception',
     'exception': {'type': 'ReferenceError', 'message': 'foo is not defined', 'stack': '...'}},
]
