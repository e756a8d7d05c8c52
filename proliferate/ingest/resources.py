"""The ingest resources: body limits, gzip, key auth, rate limits, grouping, and handing events to
the writer; 202 only after the writer's commit.

Request threads do the CPU work (parsing, grouping, compression) so the writer's transaction
stays short. Ingest routes open no database connection unless a key is not cached.
"""

import logging
import re
import threading
import time
import zlib

import falcon
import orjson

from proliferate import jsonapi
from proliferate.ingest import grouping
from proliferate.ingest import scrub
from proliferate.db import database
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.ingest.normalize import ValidationError
from proliferate.ingest.normalize import normalize_event
from proliferate.ingest.payload import encode_event
from proliferate.ingest.useragent import parse_user_agent
from proliferate.ingest.writer import QueueFull
from proliferate.ingest.writer import WriterStopped

log = logging.getLogger(__name__)

INVALID_KEY = 'Invalid API key'
MISSING_KEY = 'Missing API key: send api_key in the body or an X-API-Key header'
# The 0.1.0 Python SDK announces itself with this message on start-up: a connection check, not
# an error, so it is acknowledged and counted but opens no issue.
SDK_INIT_MESSAGE = 'proliferate-sdk-init'
JSON_TYPES = ('application/json', 'text/plain', '')
COMMIT_TIMEOUT = 30

CORS_HEADERS = {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Methods': 'POST, OPTIONS',
    'Access-Control-Allow-Headers': 'Content-Type, Content-Encoding, X-API-Key',
    'Access-Control-Expose-Headers':
        'Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset',
    'Access-Control-Max-Age': '86400',
}


class KeyCache:
    """pk_ key -> (project_id, rate limit per minute, scrubber), trusted for ttl seconds. Misses
    are cached too, so a flood with a bad key costs one query per ttl."""

    def __init__(self, ttl, clock=time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._entries = {}
        self._loading = set()
        self._lock = threading.Lock()

    def lookup(self, key):
        if not isinstance(key, str):
            return None  # an api_key sent as a list or object: unhashable, and no key anyway
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        with self._lock:
            if entry is not None and key in self._loading:
                # Another thread is reading it again: when a busy key expires, the 16 request
                # threads would otherwise all open a connection for the same row at once.
                return entry[1]
            self._loading.add(key)
        try:
            value = self._load(key)
        finally:
            with self._lock:
                self._loading.discard(key)
        with self._lock:
            if len(self._entries) > 10000:
                self._entries.clear()
            self._entries[key] = (now + self.ttl, value)
        return value

    def forget(self, key=None):
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def _load(self, key):
        if not isinstance(key, str) or not key or len(key) > 200:
            return None
        with database.connection_context():
            row = (ProjectKey.select(ProjectKey.project, Project.rate_limit_per_minute,
                                     Project.scrub_enabled, Project.scrub_extra_keys)
                   .join(Project)
                   .where(ProjectKey.key == key, ProjectKey.revoked_at.is_null())
                   .tuples().first())
        if row is None:
            return None
        return row[0], row[1], scrub.scrubber_for(row[2], row[3])


class RateLimiter:
    """A token bucket per project: capacity = the per-minute limit, refilled continuously."""

    def __init__(self, default_per_minute, clock=time.monotonic):
        self.default = default_per_minute
        self.clock = clock
        self._buckets = {}
        self._lock = threading.Lock()

    def limit_for(self, project_limit):
        return self.default if project_limit is None else project_limit

    def take(self, project_id, project_limit, wanted):
        """-> (granted, limit, remaining, seconds until one more token); limit 0 = unlimited."""
        limit = self.limit_for(project_limit)
        if not limit:
            return wanted, 0, 0, 0
        rate = limit / 60.0
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.get(project_id, (float(limit), now))
            tokens = min(float(limit), tokens + (now - stamp) * rate)
            granted = min(wanted, int(tokens))
            tokens -= granted
            self._buckets[project_id] = (tokens, now)
        wait = 0 if tokens >= 1 else (1 - tokens) / rate
        return granted, limit, int(tokens), wait


# How much of a refused body is read to find the sender's api_key, so the refusal is counted
# against its project (the 0.1.0 SDK sends the key first in the body, not in a header).
HEAD_BYTES = 64 * 1024
KEY_IN_BODY = re.compile(rb'"api_key"\s*:\s*"([A-Za-z0-9_\-]{1,200})"')


class BodyTooLarge(falcon.HTTPContentTooLarge):
    """413, carrying the first bytes of the (decompressed) body: where the sender's key is."""

    def __init__(self, description, head):
        super().__init__(description=description)
        self.head = head


def key_in(head):
    match = KEY_IN_BODY.search(head)
    return match.group(1).decode() if match else None


def sender_key(raw, header_key):
    """The key a refused event was sent with, read as normalize_event reads it: the event's own
    api_key first, then the X-API-Key header."""
    key = raw.get('api_key') if isinstance(raw, dict) else None
    return key or header_key


def read_body(req, limit):
    """The request body, gunzipped, at most limit bytes; 413 beyond it."""
    encoding = (req.get_header('Content-Encoding') or '').strip().lower()
    if encoding not in ('', 'identity', 'gzip', 'deflate'):
        raise falcon.HTTPUnsupportedMediaType(description=f'Content-Encoding {encoding!r} is not supported (gzip, deflate)')
    wbits = 16 + zlib.MAX_WBITS if encoding == 'gzip' else zlib.MAX_WBITS
    length = req.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f'body is {length} bytes; at most {limit} are accepted',
                           _head(req.bounded_stream.read(HEAD_BYTES), encoding, wbits))
    body = req.bounded_stream.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(f'body is over {limit} bytes', _head(body[:HEAD_BYTES], encoding, wbits))
    if encoding in ('', 'identity'):
        return body
    try:
        inflater = zlib.decompressobj(wbits)
        # max_length bounds the output: a small gzip bomb cannot grow past the limit.
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise falcon.HTTPBadRequest(description=f'body is not valid {encoding}: {error}')
    if len(data) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f'decompressed body is over {limit} bytes', data[:HEAD_BYTES])
    return data


def _head(raw, encoding, wbits):
    """The first HEAD_BYTES of a body, decompressed when it is compressed (bounded either way)."""
    if encoding in ('', 'identity'):
        return raw
    try:
        return zlib.decompressobj(wbits).decompress(raw, HEAD_BYTES)
    except zlib.error:
        return b''


def parse_json(req, limit):
    content_type = (req.content_type or '').split(';')[0].strip().lower()
    if content_type not in JSON_TYPES and not content_type.endswith('+json'):
        raise falcon.HTTPUnsupportedMediaType(
            description=f'Content-Type {content_type!r} is not accepted; send application/json')
    body = read_body(req, limit)
    if not body.strip():
        raise falcon.HTTPBadRequest(description='body is empty; send a JSON event')
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise falcon.HTTPBadRequest(description=f'body is not valid JSON: {error}')


def prepare(event, project_id, timestamp, received_at, scrubber=scrub.DEFAULT):
    """The normalised event -> what the writer stores (grouping done here, off the writer)."""
    event = scrub.scrub_event(event, scrubber)  # before anything is stored (issue 7)
    exception = event['exception'] or {}
    parsed = grouping.parse_stack(exception.get('stack'))
    if event['type'] == 'exception':
        exc_type = exception.get('type') or parsed['exception_type'] or 'Error'
        message = exception.get('message') or parsed['message']
    else:
        exc_type = None
        message = event['message']
    frames = parsed['frames']
    user = event['user'] or {}
    account = event['account'] or {}
    user_key = user.get('id') or user.get('email')
    tags = []
    for key in ('environment', 'release'):
        if event[key]:
            tags.append((key, event[key]))
    if event['user_agent']:
        browser, system = parse_user_agent(event['user_agent'])
        if browser:
            tags.append(('browser', browser))
        if system:
            tags.append(('os', system))
    if event['url']:
        tags.append(('url', event['url'].split('?', 1)[0].split('#', 1)[0][:200]))
    tags.extend(custom_tags(event))
    item = {
        'project_id': project_id,
        'event_id': event['event_id'],
        'timestamp': timestamp,
        'received_at': received_at,
        'type': exc_type or '',
        'level': event['level'],
        'release': event['release'],
        'environment': event['environment'],
        'message': message,
        'event_type': event['type'],
        'frames': frames,
        'user': (user_key, user.get('id'), user.get('email')) if user_key else None,
        'account': (account['id'], account.get('name')) if account.get('id') else None,
        'tags': tags,
        'event': event,
    }
    regroup(item)
    return item


RESERVED_TAGS = frozenset(('environment', 'release', 'browser', 'os', 'url', 'level'))
MAX_CUSTOM_TAGS = 10


def custom_tags(event):
    """The SDK's tags (context.tags of 0.2.x, extra.tags of 0.1.0) as issue distributions:
    string and number values only, bounded, so a hostile event cannot add thousands of rows."""
    tags = event.get('tags')
    if not isinstance(tags, dict):
        tags = (event.get('extra') or {}).get('tags')
    if not isinstance(tags, dict):
        return []
    out = []
    for key, value in tags.items():
        if len(out) >= MAX_CUSTOM_TAGS:
            break
        if (isinstance(value, (str, int, float)) and not isinstance(value, bool)
                and 0 < len(key) <= 32 and key not in RESERVED_TAGS):
            out.append((key, str(value)[:200]))
    return out


def regroup(item):
    """Fingerprint, title and culprit from the item's (possibly source-mapped) frames, and the
    stored payload. Called again by the source-map resolver after it rewrote the frames."""
    frames = item['frames']
    item['fingerprint'] = grouping.compute_fingerprint(
        event_type=item['event_type'], exception_type=item['type'] or None,
        message=item['message'], frames=frames)
    item['title'] = grouping.get_title(item['event_type'], item['type'] or None, item['message'])
    item['culprit'] = grouping.get_culprit(frames)
    item['data'] = encode_event(item['event'])


class Ingest:
    """What both ingest resources share: collaborators, auth, limits and the writer hand-off."""

    def __init__(self, writer, config, keys, limiter, drops, clock):
        self.writer = writer
        self.config = config
        self.keys = keys
        self.limiter = limiter
        self.drops = drops
        self.clock = clock

    def on_options(self, req, resp):
        resp.status = falcon.HTTP_204
        resp.set_headers(CORS_HEADERS)

    def commit(self, items):
        """Hand items to the writer and wait for their commit -> statuses."""
        try:
            ticket = self.writer.submit(items)
        except QueueFull as error:
            for item in items:
                self.drops.add(item['project_id'], 'backpressure')
            raise falcon.HTTPTooManyRequests(
                description=f'the server is busy ({error}); retry later',
                headers={'Retry-After': '1'})
        except WriterStopped:
            raise falcon.HTTPServiceUnavailable(description='the server is shutting down; retry',
                                                headers={'Retry-After': '5'})
        try:
            return ticket.wait(COMMIT_TIMEOUT)
        except (TimeoutError, RuntimeError) as error:
            raise falcon.HTTPServiceUnavailable(
                description=f'the event was not stored ({error}); retry it',
                headers={'Retry-After': '5'})

    def read_json(self, req, limit):
        """The parsed body; a 413 is counted as too_large against the sender's project."""
        try:
            return parse_json(req, limit)
        except BodyTooLarge as error:
            self.count_refusal(key_in(error.head) or req.get_header('X-API-Key'), 'too_large')
            raise

    def count_refusal(self, api_key, reason):
        """Count a refused event against its project, when its key is a good one."""
        found, _problem = self.authenticate(api_key)
        if found:
            self.drops.add(found[0], reason)

    def authenticate(self, api_key):
        if not api_key:
            return None, MISSING_KEY
        found = self.keys.lookup(api_key)
        if found is None:
            return None, INVALID_KEY
        return found, None


def rate_headers(limit, remaining, wait):
    if not limit:
        return {}
    return {
        'X-RateLimit-Limit': str(limit),
        'X-RateLimit-Remaining': str(max(0, remaining)),
        'X-RateLimit-Reset': str(max(1, int(wait + 0.999))),
    }


class Errors(Ingest):
    """POST /api/v1/errors: one event."""

    def on_post(self, req, resp):
        resp.set_headers(CORS_HEADERS)
        payload = self.read_json(req, self.config.max_event_bytes)
        received_at = self.clock()
        header_key = req.get_header('X-API-Key')
        try:
            api_key, timestamp, event = normalize_event(
                payload, received_at=received_at, header_key=header_key)
        except ValidationError as error:
            self.count_refusal(sender_key(payload, header_key), 'invalid')
            raise falcon.HTTPBadRequest(description=str(error))
        found, problem = self.authenticate(api_key)
        if found is None:
            raise falcon.HTTPUnauthorized(description=problem)
        project_id, project_limit, scrubber = found
        granted, limit, remaining, wait = self.limiter.take(project_id, project_limit, 1)
        headers = rate_headers(limit, remaining, wait)
        if not granted:
            self.drops.add(project_id, 'rate_limited')
            raise falcon.HTTPTooManyRequests(
                description=f'rate limit of {limit} events per minute for this project reached',
                headers={**headers, 'Retry-After': str(max(1, int(wait + 0.999)))})
        if event['type'] == 'message' and event['message'] == SDK_INIT_MESSAGE:
            self.drops.add(project_id, 'sdk_init')
            jsonapi.send(resp, {'event_id': event['event_id']}, falcon.HTTP_202, headers)
            return
        item = prepare(event, project_id, timestamp, received_at, scrubber)
        self.commit([item])
        jsonapi.send(resp, {'event_id': event['event_id']}, falcon.HTTP_202, headers)


class ErrorBatch(Ingest):
    """POST /api/v1/errors/batch: a JSON array of events, each accepted or rejected on its own."""

    def on_post(self, req, resp):
        resp.set_headers(CORS_HEADERS)
        payload = self.read_json(req, self.config.max_batch_bytes)
        if not isinstance(payload, list):
            raise falcon.HTTPBadRequest(description='body must be a JSON array of events')
        most = self.config.max_batch_events
        if len(payload) > most:
            raise falcon.HTTPBadRequest(
                description=f'batch has {len(payload)} events; at most {most} are accepted per request')
        received_at = self.clock()
        header_key = req.get_header('X-API-Key')
        results = []
        accepted = []  # (result index, item)
        per_project = {}
        for index, raw in enumerate(payload):
            event_id = raw.get('event_id') if isinstance(raw, dict) else None
            result = {'event_id': event_id if isinstance(event_id, str) else None, 'status': 'ok'}
            results.append(result)
            try:
                api_key, timestamp, event = normalize_event(
                    raw, received_at=received_at, header_key=header_key)
            except ValidationError as error:
                result.update(status='rejected', reason=str(error))
                self.count_refusal(sender_key(raw, header_key), 'invalid')
                continue
            found, problem = self.authenticate(api_key)
            if found is None:
                result.update(status='rejected', reason=problem)
                continue
            project_id = found[0]
            if event['type'] == 'message' and event['message'] == SDK_INIT_MESSAGE:
                self.drops.add(project_id, 'sdk_init')
                continue
            per_project.setdefault(project_id, (found[1], [], found[2]))[1].append(
                (index, event, timestamp))
        # The parsed body is no longer needed: free it before waiting for the commit, so that
        # 16 threads each holding a batch do not also hold its raw copy (peak RSS).
        payload = raw = None
        headers = {}
        for project_id, (project_limit, events, scrubber) in per_project.items():
            granted, limit, remaining, wait = self.limiter.take(project_id, project_limit, len(events))
            headers = rate_headers(limit, remaining, wait) or headers
            for position, (index, event, timestamp) in enumerate(events):
                if position >= granted:
                    results[index].update(status='rate_limited',
                                          reason=f'rate limit of {limit} events per minute reached')
                    self.drops.add(project_id, 'rate_limited')
                    continue
                accepted.append((index, prepare(event, project_id, timestamp, received_at,
                                                scrubber)))
        per_project = events = None
        if accepted:
            statuses = self.commit([item for _index, item in accepted])
            for (index, _item), status in zip(accepted, statuses):
                results[index]['status'] = status
        if any(r['status'] == 'rate_limited' for r in results):
            headers = {**headers, 'Retry-After': headers.get('X-RateLimit-Reset', '1')}
        jsonapi.send(resp, {'processed': len(results), 'results': results}, falcon.HTTP_202,
                     headers)
