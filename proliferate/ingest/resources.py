"""The ingest HTTP resources: body limits, gzip, status codes and headers, handing events to the
writer; 202 only after the writer's commit.

Request threads do the CPU work (parsing, grouping, compression) so the writer's transaction
stays short. Ingest routes open no database connection unless a key is not cached. Who may send
and how much lives in admission; what an event becomes, in prepare.
"""

import logging
import threading
import zlib

import falcon
import orjson

try:
    import brotli
except ImportError:  # a declared dependency; without it only br bodies are refused
    brotli = None

from proliferate import jsonapi
from proliferate.ingest.admission import authenticate
from proliferate.ingest.admission import key_in
from proliferate.ingest.admission import sender_key
from proliferate.ingest.normalize import ValidationError
from proliferate.ingest.normalize import normalize_event
from proliferate.ingest.prepare import is_sdk_init
from proliferate.ingest.prepare import prepare_event
from proliferate.ingest.writer import QueueFull
from proliferate.ingest.writer import WriterStopped

log = logging.getLogger(__name__)

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


# How much of a refused body is read to find the sender's api_key, so the refusal is counted
# against its project (the 0.1.0 SDK sends the key first in the body, not in a header).
HEAD_BYTES = 64 * 1024


class BodyTooLarge(falcon.HTTPContentTooLarge):
    """413, carrying the first bytes of the (decompressed) body: where the sender's key is."""

    def __init__(self, description, head):
        super().__init__(description=description)
        self.head = head


# The documented API's encodings, and what Sentry SDKs may send besides (brotli).
ENCODINGS = ('gzip', 'deflate')
SENTRY_ENCODINGS = ('gzip', 'x-gzip', 'deflate', 'br')
# Brotli input is fed in steps this small where the installed brotli cannot bound its output.
BROTLI_STEP = 256


class BadEncoding(falcon.HTTPBadRequest):
    """A Content-Encoding that is not supported (by a route answering 400 for it)."""


def read_body(req, limit, encodings=ENCODINGS, unsupported=falcon.HTTPUnsupportedMediaType):
    """The request body, decompressed, at most limit bytes (compressed and decompressed); 413
    beyond it. A chunked body (no Content-Length) is read the same way, bounded."""
    encoding = (req.get_header('Content-Encoding') or '').strip().lower()
    if encoding not in ('', 'identity') + encodings:
        raise unsupported(description=f'Content-Encoding {encoding!r} is not supported '
                                      f'({", ".join(encodings)})')
    length = req.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f'body is {length} bytes; at most {limit} are accepted',
                           _head(req.bounded_stream.read(HEAD_BYTES), encoding))
    body = req.bounded_stream.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(f'body is over {limit} bytes', _head(body[:HEAD_BYTES], encoding))
    if encoding in ('', 'identity'):
        return body
    try:
        data, complete = decompress(body, encoding, limit + 1)
    except ValueError as error:
        raise falcon.HTTPBadRequest(description=f'body is not valid {encoding}: {error}') from error
    if len(data) > limit or not complete:
        raise BodyTooLarge(f'decompressed body is over {limit} bytes', data[:HEAD_BYTES])
    return data


def decompress(body, encoding, most):
    """-> (at most `most` bytes of the decoded body, whether that is all of it); ValueError for
    a corrupt stream. The output is bounded while decoding, so a small bomb cannot grow."""
    if encoding == 'br':
        return _unbrotli(body, most)
    if encoding in ('gzip', 'x-gzip'):
        wbits = 16 + zlib.MAX_WBITS
    elif len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] * 256 + body[1]) % 31 == 0:
        wbits = zlib.MAX_WBITS  # deflate as HTTP names it: a zlib stream
    else:
        wbits = -zlib.MAX_WBITS  # the raw deflate some clients send instead
    try:
        inflater = zlib.decompressobj(wbits)
        data = inflater.decompress(body, most)
    except zlib.error as error:
        raise ValueError(str(error)) from None
    return data, not inflater.unconsumed_tail


def _unbrotli(body, most):
    if brotli is None:
        raise ValueError('brotli is not installed on this server (pip install brotli)')
    decoder = brotli.Decompressor()
    try:
        try:
            data = decoder.process(body, output_buffer_limit=most)
            if len(data) >= most:
                return data[:most], False
            while not decoder.is_finished() and len(data) < most:
                more = decoder.process(b'', output_buffer_limit=most - len(data))
                if not more:
                    break
                data += more
        except TypeError:  # brotli before 1.2: no output bound, so small input steps
            data = b''
            for start in range(0, len(body), BROTLI_STEP):
                data += decoder.process(body[start:start + BROTLI_STEP])
                if len(data) >= most:
                    return data[:most], False
    except brotli.error as error:
        raise ValueError(str(error) or 'corrupt stream') from None
    if len(data) >= most:
        return data[:most], False
    if not decoder.is_finished():
        raise ValueError('the stream is truncated')
    return data, True


def _head(raw, encoding):
    """The first HEAD_BYTES of a body, decompressed when it is compressed (bounded either way)."""
    if encoding in ('', 'identity'):
        return raw
    try:
        return decompress(raw, encoding, HEAD_BYTES)[0]
    except ValueError:
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
        raise falcon.HTTPBadRequest(description=f'body is not valid JSON: {error}') from error


class Ingest:
    """What both ingest resources share: collaborators, auth, limits and the writer hand-off."""

    def __init__(self, writer, config, keys, limiter, drops, clock, usage=None):
        self.writer = writer
        self.config = config
        self.keys = keys
        self.limiter = limiter
        self.drops = drops
        self.clock = clock
        self.usage = usage

    def touch(self, api_key):
        """Note a key's use. Its last_used_at reaches the database through the writer at most
        once a minute, from a short-lived thread: no request waits for it."""
        if self.usage is not None and self.usage.note(api_key):
            threading.Thread(target=self._write_usage, name='proliferate-key-usage',
                             daemon=True).start()

    def _write_usage(self):
        while True:
            pending = self.usage.take()
            if pending:
                try:
                    self.writer.call(lambda pending=pending: self.usage.write(pending))
                except Exception as error:  # best effort: the next use writes it again
                    log.warning('ingest: last use of keys not recorded (%s)', error)
            if self.usage.done():
                return

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
                headers={'Retry-After': '1'}) from error
        except WriterStopped:
            raise falcon.HTTPServiceUnavailable(description='the server is shutting down; retry',
                                                headers={'Retry-After': '5'}) from None
        try:
            return ticket.wait(COMMIT_TIMEOUT)
        except (TimeoutError, RuntimeError) as error:
            raise falcon.HTTPServiceUnavailable(
                description=f'the event was not stored ({error}); retry it',
                headers={'Retry-After': '5'}) from error

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
        return authenticate(self.keys, api_key)


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
            raise falcon.HTTPBadRequest(description=str(error)) from error
        found, problem = self.authenticate(api_key)
        if found is None:
            raise falcon.HTTPUnauthorized(description=problem)
        project_id, project_limit, scrubber, rules = found
        granted, limit, remaining, wait = self.limiter.take(project_id, project_limit, 1)
        headers = rate_headers(limit, remaining, wait)
        if not granted:
            self.drops.add(project_id, 'rate_limited')
            raise falcon.HTTPTooManyRequests(
                description=f'rate limit of {limit} events per minute for this project reached',
                headers={**headers, 'Retry-After': str(max(1, int(wait + 0.999)))})
        if is_sdk_init(event):
            self.drops.add(project_id, 'sdk_init')
            jsonapi.send(resp, {'event_id': event['event_id']}, falcon.HTTP_202, headers)
            return
        item = prepare_event(event, project_id, timestamp, received_at, scrubber, rules)
        self.commit([item])
        self.touch(api_key)
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
        used = set()
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
            used.add(api_key)
            if is_sdk_init(event):
                self.drops.add(project_id, 'sdk_init')
                continue
            per_project.setdefault(project_id, (found[1], [], found[2], found[3]))[1].append(
                (index, event, timestamp))
        # The parsed body is no longer needed: free it before waiting for the commit, so that
        # 16 threads each holding a batch do not also hold its raw copy (peak RSS).
        payload = raw = None
        headers = {}
        for project_id, (project_limit, events, scrubber, rules) in per_project.items():
            granted, limit, remaining, wait = self.limiter.take(project_id, project_limit, len(events))
            headers = rate_headers(limit, remaining, wait) or headers
            for position, (index, event, timestamp) in enumerate(events):
                if position >= granted:
                    results[index].update(status='rate_limited',
                                          reason=f'rate limit of {limit} events per minute reached')
                    self.drops.add(project_id, 'rate_limited')
                    continue
                accepted.append((index, prepare_event(event, project_id, timestamp, received_at,
                                                      scrubber, rules)))
        per_project = events = None
        if accepted:
            statuses = self.commit([item for _index, item in accepted])
            for (index, _item), status in zip(accepted, statuses, strict=False):
                results[index]['status'] = status
        for api_key in used:
            self.touch(api_key)
        if any(r['status'] == 'rate_limited' for r in results):
            headers = {**headers, 'Retry-After': headers.get('X-RateLimit-Reset', '1')}
        jsonapi.send(resp, {'processed': len(results), 'results': results}, falcon.HTTP_202,
                     headers)
