"""What kind of route a request path is: the one answer every middleware and error serializer
uses (ingest is kept lean, pages get cookies, CSRF checks and HTML errors). Pure: no I/O."""

import re

INGEST = 'ingest'
API = 'api'
STATIC = 'static'
PAGE = 'page'

# The documented API's front door, and /v1/errors where the Python SDK 0.1.1+ posts.
INGEST_PREFIXES = ('/api/v1/errors', '/v1/errors')
# A Sentry SDK's front door: /api/<project id>/envelope/ and /store/, under the DSN's path
# prefix when the server is mounted under one. Checked only for paths ending that way.
SENTRY_ENDINGS = ('/envelope', '/envelope/', '/store', '/store/')
SENTRY_PATH = re.compile(r'(/[^?#]*)?/api/([^/]+)/(envelope|store)/?')
# JSON with bearer tokens (or nothing): no cookies, so no CSRF; errors as {"detail": ...}.
API_PREFIXES = ('/api/', '/v1/', '/healthz', '/metrics')


def kind(path):
    if path.startswith(INGEST_PREFIXES) or is_sentry(path):
        return INGEST
    if path.startswith('/static/'):
        return STATIC
    if path.startswith(API_PREFIXES):
        return API
    return PAGE


def is_sentry(path):
    return path.endswith(SENTRY_ENDINGS) and SENTRY_PATH.fullmatch(path) is not None


def is_page(path):
    return kind(path) == PAGE
