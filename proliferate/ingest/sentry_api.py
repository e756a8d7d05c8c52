"""The Sentry front door: POST /api/<project id>/envelope/ and /store/ (and OPTIONS), so every Sentry
SDK reports here unchanged by DSN. HTTP only: the envelope is parsed by envelope.py, the event
mapped by sentry.py, and from there it is the documented API's pipeline (prepare, writer).

The DSN's public key is the hex part of one of the project's pk_ ingest keys: the same key row,
cache and revocation serve both doors.
"""

import re
import urllib.parse

import falcon

from proliferate import jsonapi
from proliferate.ingest.envelope import EnvelopeError
from proliferate.ingest.envelope import item_json
from proliferate.ingest.envelope import parse_envelope
from proliferate.ingest.normalize import ValidationError
from proliferate.ingest.prepare import prepare_event
from proliferate.ingest.resources import SENTRY_ENCODINGS
from proliferate.ingest.resources import BadEncoding
from proliferate.ingest.resources import BodyTooLarge
from proliferate.ingest.resources import Ingest
from proliferate.ingest.resources import read_body
from proliferate.ingest.sentry import clean_event_id
from proliferate.ingest.sentry import sentry_event

PUBLIC_KEY = re.compile(r'[0-9a-f]{32}')
AUTH_PAIR = re.compile(r'([a-z_]+)\s*=\s*([^,\s]*)')
PROJECT_ID = re.compile(r'[0-9]{1,18}')
# Item types an SDK may send that are accepted and counted but not stored. Other types are
# counted as 'sentry_other', so a hostile sender cannot add a count row per invented name.
DROPPED_TYPES = frozenset((
    'transaction', 'span', 'session', 'sessions', 'client_report', 'attachment', 'check_in',
    'profile', 'profile_chunk', 'replay_event', 'replay_recording', 'replay_video', 'log',
    'otel_log', 'statsd', 'metric_buckets', 'trace_metric', 'feedback', 'user_report',
))
# X-Sentry-Rate-Limits on every answer: the rate-limit categories of what is not stored, switched
# off for an hour so SDKs stop sending them. Never 'error' or 'default' (errors, messages).
OFF_SECONDS = 3600
OFF_CATEGORIES = ('transaction', 'span', 'session', 'attachment', 'profile', 'profile_chunk',
                  'replay', 'monitor', 'log_item', 'feedback', 'internal', 'statsd',
                  'metric_bucket', 'trace_metric', 'metric')
OFF_HEADER = f'{OFF_SECONDS}:{";".join(OFF_CATEGORIES)}:organization'
PREFLIGHT_HEADERS = 'x-sentry-auth, content-type, content-encoding, sentry-trace, baggage'
CORS_HEADERS = {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Expose-Headers': 'X-Sentry-Rate-Limits, Retry-After',
}
MISSING_KEY = ('Missing DSN key: send sentry_key in the query string, an X-Sentry-Auth header or '
               'the envelope header dsn')
INVALID_KEY = 'Invalid DSN key'


def route_prefixes(base_url):
    """'' and the path prefix of the public base URL (a DSN under it posts below it)."""
    path = urllib.parse.urlsplit(base_url or '').path.rstrip('/')
    return ('',) if not path else ('', path)


def public_key(req, header=None):
    """The DSN key sent with a request: sentry_key in the query string, X-Sentry-Auth, or the
    envelope header's dsn; None when none is sent."""
    key = req.get_param('sentry_key')
    if key:
        return key
    auth = req.get_header('X-Sentry-Auth') or ''
    if auth[:7].lower() == 'sentry ':
        for name, value in AUTH_PAIR.findall(auth[7:2000]):
            if name == 'sentry_key' and value:
                return value
    dsn = (header or {}).get('dsn')
    if isinstance(dsn, str) and '@' in dsn:
        try:
            user = urllib.parse.urlsplit(dsn[:2000]).username
        except ValueError:
            return None
        return user or None
    return None


class SentryIngest(Ingest):
    """What both Sentry routes share: CORS, the key of the project in the URL, rate limits."""

    def on_options(self, req, resp, project_id):
        resp.set_headers(CORS_HEADERS)
        if not PROJECT_ID.fullmatch(project_id):
            raise falcon.HTTPNotFound(description=f'no project {project_id[:40]!r}')
        resp.status = falcon.HTTP_204
        requested = req.get_header('Access-Control-Request-Headers') or ''
        if not re.fullmatch(r'[A-Za-z0-9\-_, ]{1,1000}', requested):
            requested = PREFLIGHT_HEADERS
        resp.set_headers({'Access-Control-Allow-Methods': 'POST, OPTIONS',
                          'Access-Control-Allow-Headers': requested,
                          'Access-Control-Max-Age': '86400'})

    def on_post(self, req, resp, project_id):
        resp.set_headers(CORS_HEADERS)
        resp.set_header('X-Sentry-Rate-Limits', OFF_HEADER)
        if not PROJECT_ID.fullmatch(project_id):
            raise falcon.HTTPNotFound(description=f'no project {project_id[:40]!r}')
        self.handle(req, resp, int(project_id))

    def read(self, req, limit, project_id):
        try:
            return read_body(req, limit, SENTRY_ENCODINGS, BadEncoding)
        except BodyTooLarge as error:
            key = public_key(req, _head_header(error.head))
            self.count_key_refusal(project_id, key, 'too_large')
            raise

    def count_key_refusal(self, project_id, key, reason):
        found, _problem = self.find(project_id, key)
        if found:
            self.drops.add(project_id, reason)

    def find(self, project_id, key):
        """-> ((project_id, rate limit, scrubber, rules), None) or (None, (status, why))."""
        if not key:
            return None, (falcon.HTTPUnauthorized, MISSING_KEY)
        if not isinstance(key, str) or not PUBLIC_KEY.fullmatch(key):
            return None, (falcon.HTTPUnauthorized, f'{INVALID_KEY}: 32 lowercase hex characters '
                                                   'are expected')
        found, _problem = self.authenticate('pk_' + key)
        if found is None:
            return None, (falcon.HTTPUnauthorized, INVALID_KEY)
        if found[0] != project_id:
            return None, (falcon.HTTPForbidden, f'this key is not a key of project {project_id}')
        return found, None

    def admit(self, project_id, key):
        found, problem = self.find(project_id, key)
        if found is None:
            raise problem[0](description=problem[1])
        return found

    def store(self, req, resp, project_id, key, found, payload, event_id):
        """One Sentry event -> stored; answers 200 {"id"} after the commit."""
        received_at = self.clock()
        try:
            timestamp, event = sentry_event(payload, received_at=received_at, event_id=event_id,
                                            client_ip=(req.remote_addr or None))
        except ValidationError as error:
            self.drops.add(project_id, 'invalid')
            raise falcon.HTTPBadRequest(description=str(error)) from error
        _project, project_limit, scrubber, rules = found
        granted, limit, _remaining, wait = self.limiter.take(project_id, project_limit, 1)
        if not granted:
            self.drops.add(project_id, 'rate_limited')
            seconds = str(max(1, int(wait + 0.999)))
            raise falcon.HTTPTooManyRequests(
                description=f'rate limit of {limit} events per minute for this project reached',
                headers={'Retry-After': seconds, 'X-Sentry-Rate-Limits': f'{seconds}::key'})
        item = prepare_event(event, project_id, timestamp, received_at, scrubber, rules)
        try:
            self.commit([item])
        except falcon.HTTPTooManyRequests as error:
            seconds = (error.headers or {}).get('Retry-After', '1')
            raise falcon.HTTPTooManyRequests(
                description=error.description,
                headers={'Retry-After': seconds, 'X-Sentry-Rate-Limits': f'{seconds}::key'}) from error
        self.touch('pk_' + key)
        jsonapi.send(resp, {'id': event['event_id']}, falcon.HTTP_200)


class Envelope(SentryIngest):
    """POST /api/{project_id}/envelope/: an envelope; its event item is stored, the rest counted."""

    def handle(self, req, resp, project_id):
        body = self.read(req, self.config.max_batch_bytes, project_id)
        try:
            header, items = parse_envelope(body)
        except EnvelopeError as error:
            self.count_key_refusal(project_id, public_key(req), 'invalid')
            raise falcon.HTTPBadRequest(description=f'malformed envelope: {error}') from error
        body = None
        key = public_key(req, header)
        found = self.admit(project_id, key)
        events = []
        for index, (item_header, payload) in enumerate(items):
            kind = item_header['type']
            if kind != 'event':
                self.drops.add(project_id, 'sentry_' + (kind if kind in DROPPED_TYPES else 'other'))
                continue
            if len(payload) > self.config.max_event_bytes:
                self.drops.add(project_id, 'too_large')
                raise falcon.HTTPContentTooLarge(
                    description=f'event item is {len(payload)} bytes; at most '
                                f'{self.config.max_event_bytes} are accepted')
            try:
                events.append(item_json(payload, f'item {index + 1} (event)'))
            except EnvelopeError as error:
                self.drops.add(project_id, 'invalid')
                raise falcon.HTTPBadRequest(description=f'malformed envelope: {error}') from error
        header_id = clean_event_id(header.get('event_id'))
        if not events:
            # Sessions, transactions, client reports...: accepted, not stored.
            self.touch('pk_' + key)
            jsonapi.send(resp, {'id': header_id}, falcon.HTTP_200)
            return
        # One event per envelope is what SDKs send; more are stored one after another.
        for position, payload in enumerate(events):
            self.store(req, resp, project_id, key, found, payload,
                       header_id if position == 0 else None)


class Store(SentryIngest):
    """POST /api/{project_id}/store/: one JSON event (older SDKs)."""

    def handle(self, req, resp, project_id):
        body = self.read(req, self.config.max_event_bytes, project_id)
        key = public_key(req)
        found = self.admit(project_id, key)
        try:
            payload = item_json(body, 'body')
        except EnvelopeError as error:
            self.drops.add(project_id, 'invalid')
            raise falcon.HTTPBadRequest(description=f'not a JSON event: {error}') from error
        self.store(req, resp, project_id, key, found, payload, None)


def _head_header(head):
    """The envelope header of a refused body's first bytes (for its dsn), or None."""
    line = head.split(b'\n', 1)[0]
    try:
        header, _items = parse_envelope(line)
    except EnvelopeError:
        return None
    return header
