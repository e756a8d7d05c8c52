"""Logging: setup() (handlers, levels, text or JSON lines) and AccessLog, the middleware that
writes one line per request on `proliferate.access`. It reads no settings of its own: serve()
hands them in, and it never logs a request's body or a query value that may be a secret.
"""

import datetime
import logging
import re
import sys
import time
import urllib.parse

import orjson

ACCESS = logging.getLogger('proliferate.access')

TEXT_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'
# What an access line carries besides its message (the JSON format writes them as fields).
ACCESS_FIELDS = ('method', 'path', 'status', 'duration_ms', 'client')

# Query parameters whose value is never written: Sentry SDKs put their key in `sentry_key`, and
# anything named like a key, token, secret, password, signature or session may be one.
SECRET_NAME = re.compile(r'key|token|secret|pass|sig|auth|session|code', re.IGNORECASE)
# Characters of a path written as they are; anything else (spaces, control characters, a
# newline that would forge a log line) is percent-encoded again.
PATH_SAFE = "/:@!$&'()*+,;=-._~"


def quiet_levels(level):
    """Loggers held above the chosen level unless it is DEBUG.

    APScheduler logs "Adding job tentatively" at start and "Running job ... executed
    successfully" every 10 s at INFO: routine, and it would bury everything else. Its warnings
    and errors (a job that raised, a missed run) still show.

    Waitress warns "Task queue depth is N" whenever a request waits for a free worker thread,
    which under normal load is almost every request once connections outnumber threads (each
    ingest request holds its thread until its events are committed, by design). It says nothing
    an operator can act on: the writer queue and the 429s are the signal of real overload, in
    /metrics and the admin banner."""
    if level <= logging.DEBUG:
        return {'apscheduler': logging.NOTSET, 'waitress.queue': logging.NOTSET}
    return {'apscheduler': logging.WARNING, 'waitress.queue': logging.ERROR}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the access fields
    when the record has them, and the traceback of an exception."""

    def format(self, record):
        body = {
            'time': datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec='milliseconds').replace('+00:00', 'Z'),
            'level': record.levelname,
            'logger': record.name,
            'message': record.getMessage(),
        }
        for field in ACCESS_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                body[field] = value
        if record.exc_info:
            body['exception'] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


def setup(level='INFO', fmt='text', stream=None):
    """Replace the root logger's handlers with one on stream (stderr), in the chosen format."""
    level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == 'json' else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in quiet_levels(level).items():
        logging.getLogger(name).setLevel(quiet)
    return handler


def clean_query(query):
    """The query string with the value of every secret-looking parameter replaced."""
    if not query:
        return ''
    parts = []
    for pair in query.split('&'):
        name, sep, _value = pair.partition('=')
        if sep and SECRET_NAME.search(urllib.parse.unquote_plus(name)):
            pair = f'{name}=[redacted]'
        parts.append(pair)
    return '&'.join(parts)


def request_line_path(path, query):
    path = urllib.parse.quote(path, safe=PATH_SAFE)
    query = clean_query(query)
    return f'{path}?{urllib.parse.quote(query, safe=PATH_SAFE + "%?[]")}' if query else path


class AccessLog:
    """Falcon middleware (it needs no Falcon import: the hooks are plain methods): the time from
    the request's arrival to its answer, written after the answer is built. Added first, so it
    sees every request, errors included. Costs one clock read and one log record per request."""

    def __init__(self, logger=ACCESS):
        self.logger = logger

    def process_request(self, req, resp):
        req.context.access_started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        if not self.logger.isEnabledFor(logging.INFO):
            return
        started = getattr(req.context, 'access_started', None)
        ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else 0.0
        path = request_line_path(req.path, req.query_string)
        status = resp.status_code
        client = req.remote_addr or '-'
        self.logger.info('%s %s %d %.1fms %s', req.method, path, status, ms, client,
                         extra={'method': req.method, 'path': path, 'status': status,
                                'duration_ms': ms, 'client': client})
