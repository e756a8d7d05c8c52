"""Pure: every accepted payload shape -> one internal event dict, validated and trimmed.

Shapes: the documented ingest API (README, "Ingest API"), and what the published Python
SDK sends (proliferate-ai 0.1.1+/0.2.x: no type or level, exception.value / exception.stacktrace,
context.user and context.tags, platform, trace_id). Renaming from wire names happens only here.
No I/O; the one exception raised is ValidationError.
"""

import datetime
import math

LEVELS = ('error', 'warning', 'info')
LEVEL_ALIASES = {
    'fatal': 'error', 'critical': 'error', 'exception': 'error', 'err': 'error',
    'warn': 'warning', 'debug': 'info', 'log': 'info', 'notice': 'info', 'trace': 'info',
}
TYPES = ('exception', 'message')
USER_FIELDS = ('id', 'email', 'username', 'name', 'ip_address')

# Over-long strings are trimmed, not rejected (an SDK should not lose an event for a long message).
MAX_SHORT = 200          # ids, environment, release, names
MAX_TYPE = 256
MAX_MESSAGE = 10_000
MAX_STACK = 100_000
MAX_URL = 2_048
MAX_USER_AGENT = 1_024
MAX_BREADCRUMBS = 100
MAX_EVENT_ID = 200
# A custom fingerprint (an extension of the documented event; Sentry SDKs send the same field):
# grouping reads at most 50 values of at most 200 characters (grouping.custom_fingerprint).
MAX_FINGERPRINT_VALUES = 50
# Free-form JSON (extra, breadcrumb data, tags): bounded so that a hostile event cannot make a
# page or a stored row explode.
MAX_DEPTH = 10
MAX_ITEMS = 200
MAX_VALUE_CHARS = 4_096
MAX_FREE_FORM_CHARS = 64_000
# A client clock may run ahead; a timestamp further than this in the future is replaced by the
# time it was received, so issue "last seen" values stay honest.
MAX_FUTURE = datetime.timedelta(minutes=5)

TRIMMED = '…'


class ValidationError(ValueError):
    """The event is not acceptable; str(error) names the field and the problem."""

    def __init__(self, field, problem):
        super().__init__(f'{field}: {problem}')
        self.field = field
        self.problem = problem


def get_path(data, *keys, default=None):
    """data['a']['b'] for nested dicts, default where any level is missing or not a dict."""
    for key in keys:
        if not isinstance(data, dict):
            return default
        data = data.get(key)
        if data is None:
            return default
    return data


def trim(value, limit):
    if len(value) <= limit:
        return value
    return value[:limit - 1] + TRIMMED


def optional_string(data, field, limit, *, name=None):
    """A string field that may be missing or null; numbers are accepted for id-like fields."""
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(name or field, f'must be a string, not {json_type(value)}')
    value = str(value)
    return trim(value, limit) if value else None


def json_type(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, (int, float)):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, list):
        return 'array'
    if isinstance(value, dict):
        return 'object'
    return type(value).__name__


def optional_object(data, field, *, name=None):
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(name or field, f'must be an object, not {json_type(value)}')
    return value


def parse_timestamp(value, received_at):
    """ISO 8601 (Z, offsets, any fraction) or epoch seconds/milliseconds -> naive UTC."""
    if isinstance(value, bool) or value is None:
        raise ValidationError('timestamp', 'required (ISO 8601, e.g. 2025-01-15T10:30:00.123Z)')
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValidationError('timestamp', 'must be a finite number')
        seconds = value / 1000 if value > 1e11 else value
        try:
            parsed = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise ValidationError('timestamp', 'out of range') from None
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise ValidationError('timestamp', 'not an ISO 8601 date-time')
        if text.endswith(('z', 'Z')):
            text = text[:-1] + '+00:00'
        # fromisoformat takes at most 6 fractional digits; browsers and SDKs may send 7 or 9.
        text = _limit_fraction(text)
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError('timestamp', f'not an ISO 8601 date-time: {trim(value, 40)!r}') from None
    else:
        raise ValidationError('timestamp', f'must be a string, not {json_type(value)}')
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(datetime.UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValidationError('timestamp', 'out of range') from None
    if parsed.year < 1970:
        raise ValidationError('timestamp', 'before 1970')
    if parsed > received_at + MAX_FUTURE:
        parsed = received_at
    return parsed


def _limit_fraction(text):
    dot = text.find('.')
    if dot == -1:
        return text
    end = dot + 1
    while end < len(text) and text[end].isdigit():
        end += 1
    digits = text[dot + 1:end]
    if len(digits) > 6:
        return text[:dot + 7] + text[end:]
    return text


def parse_level(value):
    if value is None:
        return 'error'
    if not isinstance(value, str):
        raise ValidationError('level', f'must be a string, not {json_type(value)}')
    level = value.strip().lower()
    level = LEVEL_ALIASES.get(level, level)
    if level not in LEVELS:
        raise ValidationError('level', f'must be one of error, warning, info (got {trim(value, 40)!r})')
    return level


def bound_json(value, depth=0, budget=None):
    """A copy of free-form JSON with depth, item counts and string sizes bounded."""
    if budget is None:
        budget = [MAX_FREE_FORM_CHARS]
    if budget[0] <= 0:
        return TRIMMED
    if isinstance(value, str):
        value = trim(value, MAX_VALUE_CHARS)
        budget[0] -= len(value)
        return value
    if value is None or isinstance(value, (bool, int)):
        budget[0] -= 8
        return value
    if isinstance(value, float):
        budget[0] -= 8
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        budget[0] -= 1
        return TRIMMED
    if isinstance(value, dict):
        out = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= MAX_ITEMS or budget[0] <= 0:
                out[TRIMMED] = f'{len(value) - i} more keys'
                break
            key = trim(str(key), MAX_SHORT)
            budget[0] -= len(key)
            out[key] = bound_json(item, depth + 1, budget)
        return out
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            if i >= MAX_ITEMS or budget[0] <= 0:
                out.append(f'{TRIMMED} {len(value) - i} more items')
                break
            out.append(bound_json(item, depth + 1, budget))
        return out
    return trim(str(value), MAX_VALUE_CHARS)


def normalize_user(value, field):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(field, f'must be an object, not {json_type(value)}')
    user = {}
    for key in USER_FIELDS:
        item = optional_string(value, key, MAX_SHORT, name=f'{field}.{key}')
        if item is not None:
            user[key] = item
    rest = {k: v for k, v in value.items() if k not in USER_FIELDS and v is not None}
    if rest:
        user['data'] = bound_json(rest)
    return user or None


def normalize_account(value):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError('account', f'must be an object, not {json_type(value)}')
    account = {}
    for key in ('id', 'name'):
        item = optional_string(value, key, MAX_SHORT, name=f'account.{key}')
        if item is not None:
            account[key] = item
    rest = {k: v for k, v in value.items() if k not in ('id', 'name') and v is not None}
    if rest:
        account['data'] = bound_json(rest)
    return account or None


def normalize_breadcrumbs(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError('breadcrumbs', f'must be an array, not {json_type(value)}')
    crumbs = []
    # The newest ones matter most: keep the last MAX_BREADCRUMBS.
    for index, crumb in enumerate(value[-MAX_BREADCRUMBS:]):
        if not isinstance(crumb, dict):
            raise ValidationError(f'breadcrumbs[{index}]', f'must be an object, not {json_type(crumb)}')
        out = {}
        stamp = crumb.get('timestamp')
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and math.isfinite(stamp):
            out['timestamp'] = stamp
        elif isinstance(stamp, str):
            out['timestamp'] = trim(stamp, 64)
        for key in ('category', 'message', 'level', 'type'):
            item = crumb.get(key)
            if item is not None:
                out[key] = trim(str(item), MAX_VALUE_CHARS if key == 'message' else MAX_SHORT)
        if crumb.get('data') is not None:
            out['data'] = bound_json(crumb['data'])
        crumbs.append(out)
    return crumbs


def normalize_fingerprint(value):
    """fingerprint: an array of strings (numbers and booleans are taken as their text) that
    replaces our grouping key; '{{ default }}' stands for it. -> a bounded list, or None."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationError('fingerprint', f'must be an array of strings, not {json_type(value)}')
    parts = []
    for index, part in enumerate(value[:MAX_FINGERPRINT_VALUES]):
        if isinstance(part, float) and not math.isfinite(part):
            part = None
        if part is None or isinstance(part, (dict, list)):
            raise ValidationError(f'fingerprint[{index}]', f'must be a string, not {json_type(part)}')
        parts.append(trim(part, MAX_SHORT) if isinstance(part, str) else part)
    return parts or None


def normalize_exception(value):
    """{type, message, stack} from the documented shape or {type, value, stacktrace} of the SDK."""
    if not isinstance(value, dict):
        raise ValidationError('exception', f'must be an object, not {json_type(value)}')
    exc_type = optional_string(value, 'type', MAX_TYPE, name='exception.type')
    message = value.get('message')
    if message is None:
        message = value.get('value')
    if message is not None and not isinstance(message, str):
        if isinstance(message, (dict, list)):
            raise ValidationError('exception.message', f'must be a string, not {json_type(message)}')
        message = str(message)
    stack = value.get('stack')
    if stack is None:
        stack = value.get('stacktrace')
    if stack is not None and not isinstance(stack, str):
        raise ValidationError('exception.stack', f'must be a string, not {json_type(stack)}')
    exception = {
        'type': exc_type,
        'message': trim(message, MAX_MESSAGE) if message else None,
        'stack': trim(stack, MAX_STACK) if stack else None,
    }
    if isinstance(value.get('mechanism'), dict):
        exception['mechanism'] = bound_json(value['mechanism'])
    if not (exception['type'] or exception['message'] or exception['stack']):
        raise ValidationError('exception', 'needs at least one of type, message, stack')
    return exception


def normalize_event(payload, *, received_at, header_key=None):
    """One event of any accepted shape -> the internal dict. Raises ValidationError."""
    if not isinstance(payload, dict):
        raise ValidationError('event', f'must be an object, not {json_type(payload)}')

    api_key = payload.get('api_key')
    if api_key is not None and not isinstance(api_key, str):
        raise ValidationError('api_key', f'must be a string, not {json_type(api_key)}')
    api_key = api_key or header_key

    event_id = payload.get('event_id')
    if event_id is None or event_id == '':
        raise ValidationError('event_id', 'required')
    if not isinstance(event_id, str):
        raise ValidationError('event_id', f'must be a string, not {json_type(event_id)}')
    if len(event_id) > MAX_EVENT_ID:
        raise ValidationError('event_id', f'longer than {MAX_EVENT_ID} characters')

    timestamp = parse_timestamp(payload.get('timestamp'), received_at)

    exception = payload.get('exception')
    message = payload.get('message')
    if message is not None and not isinstance(message, str):
        raise ValidationError('message', f'must be a string, not {json_type(message)}')

    event_type = payload.get('type')
    if event_type is None:
        # The SDK's newer shape sends no type: what it carries decides.
        event_type = 'exception' if exception is not None else 'message'
    elif not isinstance(event_type, str) or event_type not in TYPES:
        raise ValidationError('type', f'must be exception or message (got {trim(str(event_type), 40)!r})')

    if event_type == 'exception':
        if exception is None:
            raise ValidationError('exception', 'required when type is exception')
        exception = normalize_exception(exception)
    else:
        if not message:
            raise ValidationError('message', 'required when type is message')
        exception = normalize_exception(exception) if exception is not None else None

    context = optional_object(payload, 'context') or {}
    user = normalize_user(payload.get('user'), 'user') or normalize_user(context.get('user'), 'context.user')
    tags = payload.get('tags')
    if tags is None:
        tags = context.get('tags')
    if tags is not None and not isinstance(tags, dict):
        raise ValidationError('tags', f'must be an object, not {json_type(tags)}')

    extra = optional_object(payload, 'extra')

    event = {
        'event_id': event_id,
        'timestamp': timestamp.isoformat(timespec='microseconds') + 'Z',
        'type': event_type,
        'level': parse_level(payload.get('level')),
        'environment': optional_string(payload, 'environment', MAX_SHORT),
        'release': optional_string(payload, 'release', MAX_SHORT),
        'url': optional_string(payload, 'url', MAX_URL),
        'user_agent': optional_string(payload, 'user_agent', MAX_USER_AGENT),
        'exception': exception,
        'message': trim(message, MAX_MESSAGE) if message else None,
        'user': user,
        'account': normalize_account(payload.get('account')),
        'session_id': optional_string(payload, 'session_id', MAX_SHORT),
        'window_id': optional_string(payload, 'window_id', MAX_SHORT),
        'breadcrumbs': normalize_breadcrumbs(payload.get('breadcrumbs')),
        'extra': bound_json(extra) if extra else None,
        'tags': bound_json(tags) if tags else None,
        'platform': optional_string(payload, 'platform', MAX_SHORT),
        'trace_id': optional_string(payload, 'trace_id', MAX_SHORT),
    }
    fingerprint = normalize_fingerprint(payload.get('fingerprint'))
    if fingerprint:
        # Only when sent: stored events (and their JSON) keep their shape otherwise.
        event['fingerprint'] = fingerprint
    return api_key, timestamp, event
