"""Pure: a Sentry SDK's event payload -> the internal event dict that normalize_event produces, with
the Sentry extras (structured frames top first, the exception's causes, request, contexts, sdk).

Lenient by design: an SDK field of an unexpected shape is left out, never a reason to lose the
event. Bounded like normalize (strings trimmed, free-form JSON through bound_json). No I/O.
"""

import uuid

from proliferate.ingest.normalize import MAX_BREADCRUMBS
from proliferate.ingest.normalize import MAX_MESSAGE
from proliferate.ingest.normalize import MAX_SHORT
from proliferate.ingest.normalize import MAX_TYPE
from proliferate.ingest.normalize import MAX_URL
from proliferate.ingest.normalize import MAX_USER_AGENT
from proliferate.ingest.normalize import MAX_VALUE_CHARS
from proliferate.ingest.normalize import ValidationError
from proliferate.ingest.normalize import bound_json
from proliferate.ingest.normalize import json_type
from proliferate.ingest.normalize import normalize_breadcrumbs
from proliferate.ingest.normalize import normalize_user
from proliferate.ingest.normalize import parse_timestamp
from proliferate.ingest.normalize import trim

# Sentry's levels onto ours; the original is kept as sentry_level.
LEVELS = {'fatal': 'error', 'error': 'error', 'warning': 'warning', 'info': 'info',
          'debug': 'info', 'critical': 'error', 'warn': 'warning', 'log': 'info'}
MAX_FRAMES = 250
MAX_CAUSES = 10
MAX_CONTEXT_LINES = 10
MAX_PATH = 2048
MAX_TAGS = 50
# Request headers that carry credentials: never stored, whatever the project's scrubbing says.
SECRET_HEADERS = frozenset(('cookie', 'authorization', 'proxy-authorization', 'set-cookie',
                            'x-api-key', 'x-sentry-auth'))
AUTO_IP = '{{auto}}'


def sentry_event(payload, *, received_at, event_id=None, client_ip=None):
    """-> (timestamp, event). event_id from the envelope header wins over the payload's; the same
    id with or without dashes is one id. Raises ValidationError only for a payload that is not
    an object."""
    if not isinstance(payload, dict):
        raise ValidationError('event', f'must be an object, not {json_type(payload)}')
    event_id = clean_event_id(event_id) or clean_event_id(payload.get('event_id')) or (
        uuid.uuid4().hex)
    stamp = payload.get('timestamp')
    try:
        timestamp = received_at if stamp is None else parse_timestamp(stamp, received_at)
    except ValidationError:
        timestamp = received_at
    request = sentry_request(payload.get('request'))
    contexts = _object(payload.get('contexts'))
    raised, causes = sentry_exceptions(payload.get('exception'))
    message = sentry_message(payload.get('logentry')) or sentry_message(payload.get('message'))
    frames = None
    exception = None
    if raised is not None:
        frames = raised.pop('frames')
        if raised.get('type'):
            exception = raised
        else:
            # The JavaScript SDK's synthetic exception of captureMessage: a message with a stack.
            message = message or raised.get('message')
    if frames is None:
        frames = sentry_frames(_object(payload.get('stacktrace')).get('frames'))
    level_text = payload.get('level')
    level_text = level_text.strip().lower() if isinstance(level_text, str) else 'error'
    user = sentry_user(payload.get('user'), client_ip)
    account = sentry_account(contexts.get('account'))
    sdk = _object(payload.get('sdk'))
    headers = request.get('headers') or {}
    event = {
        'event_id': event_id,
        'timestamp': timestamp.isoformat(timespec='microseconds') + 'Z',
        'type': 'exception' if exception else 'message',
        'level': LEVELS.get(level_text, 'error'),
        'environment': _string(payload.get('environment'), MAX_SHORT),
        'release': _string(payload.get('release'), MAX_SHORT),
        'url': _string(request.get('url'), MAX_URL),
        'user_agent': _string(_header(headers, 'user-agent'), MAX_USER_AGENT),
        'exception': exception,
        'message': message or (None if exception else '(no message)'),
        'user': user,
        'account': account,
        'session_id': None,
        'window_id': None,
        'breadcrumbs': sentry_breadcrumbs(payload.get('breadcrumbs')),
        'extra': _bounded(payload.get('extra')),
        'tags': sentry_tags(payload.get('tags')),
        'platform': _string(payload.get('platform'), MAX_SHORT),
        'trace_id': _string(_object(contexts.get('trace')).get('trace_id'), MAX_SHORT),
        # Sentry's own fields, shown on the issue page.
        'frames': frames,
        'causes': causes,
        'sentry_level': _string(payload.get('level'), MAX_SHORT),
        'logger': _string(payload.get('logger'), MAX_SHORT),
        'server_name': _string(payload.get('server_name'), MAX_SHORT),
        'transaction': _string(payload.get('transaction'), MAX_SHORT),
        'sdk': ({'name': _string(sdk.get('name'), MAX_SHORT),
                 'version': _string(sdk.get('version'), MAX_SHORT)} if sdk else None),
        'request': request or None,
        'contexts': _bounded({k: v for k, v in contexts.items() if k != 'account'}),
        'fingerprint': sentry_fingerprint(payload.get('fingerprint')),
    }
    return timestamp, event


def clean_event_id(value):
    """32 lowercase hex characters (a UUID with or without dashes), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace('-', '').lower()
    if len(text) != 32 or any(c not in '0123456789abcdef' for c in text):
        return None
    return text


def sentry_message(value):
    """message / logentry: a string, or {formatted} or {message, params} (the template with its
    params filled in, when they fit)."""
    if isinstance(value, str):
        return trim(value, MAX_MESSAGE) if value else None
    if not isinstance(value, dict):
        return None
    formatted = value.get('formatted')
    if isinstance(formatted, str) and formatted:
        return trim(formatted, MAX_MESSAGE)
    template = value.get('message')
    if not isinstance(template, str) or not template:
        return None
    params = value.get('params')
    if params:
        try:
            if isinstance(params, list):
                template = template % tuple(params)
            elif isinstance(params, dict):
                template = template % params
        except (TypeError, ValueError, KeyError, OverflowError):
            pass  # keep the template as sent
    return trim(template, MAX_MESSAGE)


def sentry_exceptions(value):
    """exception (a list or {values}) -> (the raised one, its causes nearest first). The LAST
    value is the one finally raised; each carries its frames top first."""
    if isinstance(value, dict):
        value = value.get('values')
    if not isinstance(value, list):
        return None, []
    values = [v for v in value if isinstance(v, dict)]
    if not values:
        return None, []
    parsed = [sentry_exception(v) for v in values[-(MAX_CAUSES + 1):]]
    raised = parsed[-1]
    return raised, parsed[-2::-1]


def sentry_exception(value):
    message = value.get('value')
    if message is not None and not isinstance(message, str):
        message = str(message) if isinstance(message, (int, float)) else None
    exc_type = _string(value.get('type'), MAX_TYPE)
    module = _string(value.get('module'), MAX_SHORT)
    out = {
        'type': exc_type,
        'message': trim(message, MAX_MESSAGE) if message else None,
        'stack': None,
        'frames': sentry_frames(_object(value.get('stacktrace')).get('frames')),
    }
    if module:
        out['module'] = module
    mechanism = value.get('mechanism')
    if isinstance(mechanism, dict):
        out['mechanism'] = bound_json(mechanism)
    return out


def sentry_frames(frames):
    """Sentry's frames (oldest first) -> ours, TOP FIRST like grouping.parse_stack's."""
    if not isinstance(frames, list):
        return []
    out = []
    for frame in reversed(frames[-MAX_FRAMES:]):
        if isinstance(frame, dict):
            out.append(sentry_frame(frame))
    return out


def sentry_frame(frame):
    function = _string(frame.get('function'), 512)
    abs_path = _string(frame.get('abs_path'), MAX_PATH)
    filename = _string(frame.get('filename'), MAX_PATH)
    lineno = _int(frame.get('lineno'))
    colno = _int(frame.get('colno'))
    where = abs_path or filename or '?'
    if lineno is not None:
        where += f':{lineno}' + (f':{colno}' if colno is not None else '')
    out = {
        'function': function,
        'abs_path': abs_path or filename,
        'filename': filename or abs_path,
        'lineno': lineno,
        'colno': colno,
        'context_line': _string(frame.get('context_line'), MAX_VALUE_CHARS),
        'raw': trim(f'at {function or "?"} ({where})', 1024),
        'module': _string(frame.get('module'), MAX_SHORT),
        'in_app': frame.get('in_app') if isinstance(frame.get('in_app'), bool) else None,
    }
    for key in ('pre_context', 'post_context'):
        lines = frame.get(key)
        if isinstance(lines, list):
            out[key] = [trim(line, MAX_VALUE_CHARS) if isinstance(line, str) else ''
                        for line in lines[-MAX_CONTEXT_LINES:]]
    if isinstance(frame.get('vars'), dict) and frame['vars']:
        out['vars'] = bound_json(frame['vars'])
    return out


def sentry_user(value, client_ip):
    if not isinstance(value, dict):
        return None
    value = dict(value)
    if value.get('ip_address') == AUTO_IP:
        value['ip_address'] = client_ip
    try:
        return normalize_user(value, 'user')
    except ValidationError:
        return None


def sentry_account(value):
    """contexts.account {id, name}: a Sentry SDK has no account field of its own."""
    if not isinstance(value, dict):
        return None
    account = {}
    for key in ('id', 'name'):
        item = value.get(key)
        if isinstance(item, (str, int)) and not isinstance(item, bool) and item != '':
            account[key] = trim(str(item), MAX_SHORT)
    rest = {k: v for k, v in value.items() if k not in ('id', 'name', 'type') and v is not None}
    if rest and account:
        account['data'] = bound_json(rest)
    return account if account.get('id') else None


def sentry_tags(value):
    """tags as an object or [key, value] pairs -> an object of strings."""
    if isinstance(value, list):
        pairs = [p for p in value if isinstance(p, list) and len(p) == 2]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        return None
    tags = {}
    for key, item in pairs[:MAX_TAGS]:
        if not isinstance(key, str) or item is None or isinstance(item, (dict, list)):
            continue
        tags[trim(key, MAX_SHORT)] = trim(str(item).lower() if isinstance(item, bool) else
                                          str(item), MAX_SHORT)
    return tags or None


def sentry_breadcrumbs(value):
    if isinstance(value, dict):
        value = value.get('values')
    if not isinstance(value, list):
        return []
    crumbs = [c for c in value[-MAX_BREADCRUMBS:] if isinstance(c, dict)]
    try:
        return normalize_breadcrumbs(crumbs)
    except ValidationError:
        return []


def sentry_request(value):
    """url, method, query string, headers (without credentials), data."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for key, limit in (('url', MAX_URL), ('method', 16)):
        text = _string(value.get(key), limit)
        if text:
            out[key] = text
    query = value.get('query_string')
    if isinstance(query, str) and query:
        out['query_string'] = trim(query, MAX_URL)
    headers = value.get('headers')
    if isinstance(headers, list):
        headers = dict(p for p in headers if isinstance(p, list) and len(p) == 2
                       and isinstance(p[0], str))
    if isinstance(headers, dict):
        kept = {}
        for name, item in list(headers.items())[:100]:
            if not isinstance(name, str) or name.lower() in SECRET_HEADERS:
                continue
            if isinstance(item, str):
                kept[trim(name, MAX_SHORT)] = trim(item, MAX_VALUE_CHARS)
        if kept:
            out['headers'] = kept
    if value.get('data') is not None:
        out['data'] = bound_json(value['data'])
    return out


def sentry_fingerprint(value):
    """A custom fingerprint: a list of strings ('{{ default }}' stands for ours), or None."""
    if not isinstance(value, list) or not value:
        return None
    parts = [trim(str(p), MAX_SHORT) for p in value[:20]
             if isinstance(p, (str, int, float)) and not isinstance(p, bool)]
    return parts or None


def _header(headers, name):
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _object(value):
    return value if isinstance(value, dict) else {}


def _bounded(value):
    return bound_json(value) if isinstance(value, dict) and value else None


def _string(value, limit):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value)
    return trim(text, limit) if text else None


def _int(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10 ** 9:
        return None
    return value
