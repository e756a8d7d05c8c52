"""What every JSON route shares (the read API, ingest, uploads): the response helper, the
{"detail": ...} error shape the published API documents, the bearer-token check and the record
of each token's last use."""

import logging
import threading

import falcon
import orjson

from proliferate import auth
from proliferate.times import utcnow

log = logging.getLogger('proliferate')


def send(resp, body, status=falcon.HTTP_200, headers=None):
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(body)
    if headers:
        resp.set_headers(headers)


def serialize_error(req, resp, exception):
    """Errors as {"detail": ...}."""
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps({'detail': exception.description or exception.title})


def bearer_token(req):
    header = req.get_header('Authorization') or ''
    scheme, _, value = header.partition(' ')
    if scheme.lower() != 'bearer' or not value.strip():
        return None
    return value.strip()


def require_token(req, kind='read'):
    """The ApiToken of this request, or 401; its organization bounds everything it may see."""
    row = auth.find_token(bearer_token(req), kind)
    if row is None:
        raise falcon.HTTPUnauthorized(
            description='a valid token is required: Authorization: Bearer <token>',
            headers={'WWW-Authenticate': 'Bearer'})
    req.context.api_token = row
    return row


class TokenUse:
    """Middleware: the last use of each token a request authenticated with (require_token
    leaves it on req.context). A token's time is written at most once per auth.TOKEN_USE_EVERY,
    judged by the row the request already read and by what this process handed over last;
    the write goes to the writer from a short-lived thread, so no read waits for it."""

    def __init__(self, writer, clock=utcnow):
        self.writer = writer
        self.clock = clock
        self._handed = {}  # token id -> the use last handed to the writer
        self._pending = {}  # token id -> a use not yet written
        self._flushing = False
        self._lock = threading.Lock()

    def process_response(self, req, resp, resource, req_succeeded):
        token = getattr(req.context, 'api_token', None)
        if token is None:
            return
        now = self.clock()
        if not auth.token_use_due(token.last_used_at, now):
            return
        with self._lock:
            handed = self._handed.get(token.id)
            if handed is not None and not auth.token_use_due(handed, now):
                return
            if len(self._handed) > 10000:
                self._handed.clear()
            self._handed[token.id] = now
            self._pending[token.id] = now
            if self._flushing:
                return
            self._flushing = True
        threading.Thread(target=self._flush, name='proliferate-token-use', daemon=True).start()

    def _flush(self):
        while True:
            with self._lock:
                pending, self._pending = self._pending, {}
                if not pending:
                    self._flushing = False
                    return
            try:
                self.writer.call(lambda pending=pending: [
                    auth.record_token_use(token_id, when)
                    for token_id, when in sorted(pending.items())])
            except Exception as error:  # best effort: the next use a minute on writes it again
                log.warning('api: last use of tokens not recorded (%s)', error)
                with self._lock:
                    for token_id in pending:
                        self._handed.pop(token_id, None)
