"""Pure: default-on scrubbing of secrets in a normalised event before anything is stored.

Values of secret-looking keys and card numbers in extra, breadcrumbs, user, account and tags,
and secret query parameters of URLs, become '[Filtered]'. No I/O; the event is changed in place.
"""

import functools
import re

FILTERED = '[Filtered]'
# Matched as substrings of the key, lower-cased with separators removed, so 'X-Api-Key',
# 'api_key' and 'apiKey' are all 'apikey', and 'db_password' or 'sessionid' are caught too.
DEFAULT_KEYS = (
    'password', 'secret', 'passwd', 'token', 'api_key', 'apikey', 'auth', 'authorization',
    'cookie', 'session', 'credentials', 'private_key',
)
# user.id and user.email group affected users, account.id and account.name group accounts:
# they are identifiers the team sent on purpose, never scrubbed.
USER_KEPT = ('id', 'email', 'username', 'name', 'ip_address')
ACCOUNT_KEPT = ('id', 'name')
MAX_EXTRA_KEYS = 50
MAX_KEY_CACHE = 4096

_SEPARATORS = str.maketrans('', '', '-_. ')
# 13-19 digits, optionally grouped by single spaces or dashes, starting with 2-6 like the card
# networks' numbers: epoch milliseconds (13 digits starting with 1) are not cards.
_CARD = re.compile(r'(?<!\d)(?<!\d\.)[2-6](?:[ -]?\d){12,18}(?!\d|\.\d)')
_QUERY_PAIR = re.compile(r'([?&;])([^=&;#\s?]{1,200})=([^&;#\s]*)')
_CARD_MIN = 10 ** 12
_CARD_MAX = 10 ** 19


def normalize_key(key):
    return key.lower().translate(_SEPARATORS)


def luhn_ok(digits):
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def parse_keys(text):
    """'a, b-c' (a project's scrub_extra_keys) -> ('a', 'bc'): normalised, at most 50."""
    if not text:
        return ()
    keys = []
    for part in re.split(r'[,\s]+', text):
        key = normalize_key(part)
        if key and key not in keys:
            keys.append(key[:100])
    return tuple(keys[:MAX_EXTRA_KEYS])


class Scrubber:
    """The compiled settings of one project; shared by every event of the same settings."""

    def __init__(self, extra_keys=()):
        keys = tuple(dict.fromkeys(normalize_key(k) for k in DEFAULT_KEYS + tuple(extra_keys)))
        self.keys = keys
        self._pattern = re.compile('|'.join(re.escape(k) for k in keys if k))
        self._decided = {}

    def is_secret_key(self, key):
        if not isinstance(key, str):
            key = str(key)
        decided = self._decided.get(key)
        if decided is None:
            decided = self._pattern.search(normalize_key(key)) is not None
            # Keys repeat from event to event; the cache is bounded against hostile key floods.
            if len(self._decided) >= MAX_KEY_CACHE:
                self._decided.clear()
            self._decided[key] = decided
        return decided

    def scrub_string(self, text):
        """Card numbers and secret query parameters inside one string."""
        if len(text) >= 13 and _CARD.search(text) is not None:
            text = _CARD.sub(_replace_card, text)
        if '=' in text:
            text = _QUERY_PAIR.sub(self._replace_pair, text)
        return text

    def _replace_pair(self, match):
        if match.group(3) and self.is_secret_key(match.group(2)):
            return f'{match.group(1)}{match.group(2)}={FILTERED}'
        return match.group(0)

    def scrub_value(self, value):
        """Free-form JSON (bounded by normalize.bound_json) -> scrubbed, same shape."""
        if isinstance(value, str):
            return self.scrub_string(value)
        if isinstance(value, dict):
            for key, item in value.items():
                if item is None or item == '':
                    continue
                if self.is_secret_key(key):
                    value[key] = FILTERED
                elif isinstance(item, (str, dict, list)) or type(item) is int:
                    value[key] = self.scrub_value(item)
            return value
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, (str, dict, list)) or type(item) is int:
                    value[index] = self.scrub_value(item)
            return value
        if type(value) is int and _CARD_MIN <= abs(value) < _CARD_MAX:
            text = str(abs(value))
            if text[0] in '23456' and luhn_ok(text):
                return FILTERED
        return value

    def scrub_event(self, event):
        if event.get('url'):
            event['url'] = self.scrub_string(event['url'])
        for field in ('extra', 'tags'):
            if event.get(field):
                self.scrub_value(event[field])
        for field, kept in (('user', USER_KEPT), ('account', ACCOUNT_KEPT)):
            person = event.get(field)
            if not person:
                continue
            for key, item in person.items():
                if key == 'data':
                    self.scrub_value(item)
                elif key not in kept and item and self.is_secret_key(key):
                    person[key] = FILTERED
        for crumb in event.get('breadcrumbs') or ():
            if crumb.get('message'):
                crumb['message'] = self.scrub_string(crumb['message'])
            if crumb.get('data'):
                self.scrub_value(crumb['data'])
        return event


def _replace_card(match):
    digits = match.group(0).replace(' ', '').replace('-', '')
    return FILTERED if luhn_ok(digits) else match.group(0)


@functools.lru_cache(maxsize=256)
def scrubber_for(enabled=True, extra_keys=''):
    """A project's settings -> its Scrubber (None when the project turned scrubbing off; a
    NULL setting means on)."""
    if enabled is not None and not enabled:
        return None
    keys = parse_keys(extra_keys)
    return Scrubber(keys) if keys else DEFAULT


DEFAULT = Scrubber()


def scrub_event(event, scrubber):
    """The event with its secrets filtered (in place); scrubber None leaves it as it is."""
    if scrubber is None:
        return event
    return scrubber.scrub_event(event)
