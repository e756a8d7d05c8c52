"""A normalised event -> the item the writer stores: scrubbed, grouped, tagged and encoded.

Pure: no I/O, no HTTP. Request threads run it so the writer's transaction stays short. Its one
state is a bounded per-process memo of grouping results, which changes no result.
"""

import collections
import threading

from proliferate.ingest import grouping
from proliferate.ingest import scrub
from proliferate.ingest.payload import encode_event
from proliferate.ingest.useragent import parse_user_agent

# The 0.1.0 Python SDK announces itself with this message on start-up: a connection check, not
# an error, so it is acknowledged and counted but opens no issue.
SDK_INIT_MESSAGE = 'proliferate-sdk-init'
RESERVED_TAGS = frozenset(('environment', 'release', 'browser', 'os', 'url', 'level'))
MAX_CUSTOM_TAGS = 10
# The same bug in the same build sends the same stack text thousands of times: its parsed
# frames, fingerprint, title and culprit are kept, bounded in entries and in an estimate of
# their memory (the stack text's characters plus MEMO_FRAME_COST per frame kept; a full memo
# of 10-frame stacks holds about 4 MB). A stack longer than MAX_MEMO_STACK is never kept.
MEMO_ENTRIES = 512
MEMO_SIZE = 4 * 1024 * 1024
MEMO_FRAME_COST = 700
MAX_MEMO_STACK = 64 * 1024


class BoundedMemo:
    """A least-recently-used dict bounded in entries and in the summed size of its entries
    (each put says its size); safe to share between request threads."""

    def __init__(self, max_entries, max_size):
        self.max_entries = max_entries
        self.max_size = max_size
        self.size = 0
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._entries)

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key, value, size):
        if size > self.max_size or self.max_entries < 1:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self._entries[key] = (value, size)
            self.size += size
            while len(self._entries) > self.max_entries or self.size > self.max_size:
                _key, (_value, dropped) = self._entries.popitem(last=False)
                self.size -= dropped

    def clear(self):
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self.size = 0


GROUPING_MEMO = BoundedMemo(MEMO_ENTRIES, MEMO_SIZE)
# A stack is kept the second time it comes, so the long tail of stacks seen once (and a stream
# of all-new ones) costs a hash per event, not a copy of its frames and an eviction. Entries are
# hashes of the memo's keys; a collision only keeps a stack one sighting early.
SEEN_ONCE = BoundedMemo(4 * MEMO_ENTRIES, 4 * MEMO_ENTRIES)


def is_sdk_init(event):
    """Whether a normalised event is the SDK's start-up check rather than an error."""
    return event['type'] == 'message' and event['message'] == SDK_INIT_MESSAGE


def grouping_input(event):
    """(exception type or None, message, frames top first) of a normalised event, as grouping
    sees them: the structured frames of a Sentry SDK, else those parsed from the stack text."""
    exception = event.get('exception') or {}
    frames = event.get('frames')
    if isinstance(frames, list):
        # Structured frames (a Sentry SDK's, top first): no stack text to parse.
        parsed = {'frames': frames, 'exception_type': None, 'message': None}
        if exception.get('stack') and not (exception.get('type') and exception.get('message')):
            # A stored event whose frames the source-map resolver rewrote: its type and message
            # still come from the stack text, as they did when it was grouped.
            head = grouping.parse_stack(exception['stack'])
            parsed.update(exception_type=head['exception_type'], message=head['message'])
    else:
        parsed = grouping.parse_stack(exception.get('stack'))
        frames = parsed['frames']
    if event.get('type') == 'exception':
        exc_type = exception.get('type') or parsed['exception_type'] or 'Error'
        message = exception.get('message') or parsed['message']
    else:
        exc_type = None
        message = event.get('message')
    return exc_type, message, frames


def prepare_event(event, project_id, timestamp, received_at, scrubber=scrub.DEFAULT, rules=None):
    """The normalised event -> what the writer stores (grouping done here, off the writer).
    rules: the project's in-app rules (grouping.in_app_rules), None for the built-in ones."""
    # Scrubbed first, so that no secret reaches the stored payload, the title or the tags.
    event = scrub.scrub_event(event, scrubber)
    if scrubber is not None:
        scrub_sentry_fields(event, scrubber)
    memo_key = grouping_memo_key(event, rules)
    grouped = GROUPING_MEMO.get(memo_key) if memo_key is not None else None
    if grouped is not None:
        exc_type, message, frozen, fingerprint, title, culprit = grouped
        # Callers and the source-map resolver change frames: each event gets its own copies.
        frames = [dict(frame) for frame in frozen]
    else:
        exc_type, message, frames = grouping_input(event)
    user, account, tags = people_and_tags(event)
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
        'user': user,
        'account': account,
        'tags': tags,
        'event': event,
    }
    if event.get('fingerprint'):
        # The event's own fingerprint (a Sentry SDK's or the documented API's; '{{ default }}'
        # stands for ours), for grouping.
        item['custom_fingerprint'] = event['fingerprint']
    if rules is not None:
        item['rules'] = rules
    if grouped is not None:
        item.update(fingerprint=fingerprint, title=title, culprit=culprit,
                    data=encode_event(event))
        return item
    regroup(item)
    if memo_key is not None and seen_before(memo_key):
        frozen = tuple(dict(frame) for frame in frames)
        GROUPING_MEMO.put(memo_key, (exc_type, message, frozen, item['fingerprint'],
                                     item['title'], item['culprit']),
                          len(memo_key[0]) + MEMO_FRAME_COST * len(frozen))
    return item


def seen_before(memo_key):
    """Whether this key came recently (then it is worth keeping); notes it if not."""
    digest = hash(memo_key)
    if SEEN_ONCE.get(digest) is not None:
        return True
    SEEN_ONCE.put(digest, True, 1)
    return False


def grouping_memo_key(event, rules):
    """What an exception event's grouping is made of when it comes as stack text (the text, the
    exception's own type and message, the project's rules), or None when it is not kept: a
    Sentry SDK's structured frames, its own fingerprint, a stack over MAX_MEMO_STACK."""
    exception = event.get('exception')
    if (event.get('type') != 'exception' or not isinstance(exception, dict)
            or event.get('frames') is not None or event.get('fingerprint')):
        return None
    stack = exception.get('stack')
    if not isinstance(stack, str) or not stack or len(stack) > MAX_MEMO_STACK:
        return None
    key = (stack, exception.get('type'), exception.get('message'), rules)
    try:
        hash(key)
    except TypeError:  # rules as a plain dict: not kept
        return None
    return key


def people_and_tags(event):
    """(user, account, tags) of a normalised event, as the writer counts them: user
    (key, id, email) or None, account (id, name) or None, tags [(key, value), ...]."""
    user = event.get('user') or {}
    account = event.get('account') or {}
    user_key = user.get('id') or user.get('email')
    tags = []
    for key in ('environment', 'release'):
        if event.get(key):
            tags.append((key, event.get(key)))
    browser, system = parse_user_agent(event.get('user_agent'))
    if not (browser and system) and event.get('contexts'):
        # A Sentry SDK's contexts name the browser and the system when no User-Agent came.
        browser = browser or context_name(event['contexts'].get('browser'))
        system = system or context_name(event['contexts'].get('os'))
    if browser:
        tags.append(('browser', browser))
    if system:
        tags.append(('os', system))
    if event.get('url'):
        tags.append(('url', event.get('url').split('?', 1)[0].split('#', 1)[0][:200]))
    tags.extend(custom_tags(event))
    return ((user_key, user.get('id'), user.get('email')) if user_key else None,
            (account['id'], account.get('name')) if account.get('id') else None,
            tags)


def context_name(context):
    """contexts.browser / contexts.os {name, version} -> 'Chrome 120' (the major version)."""
    if not isinstance(context, dict) or not isinstance(context.get('name'), str):
        return None
    name = context['name'].strip()[:60]
    version = context.get('version')
    major = version.split('.', 1)[0][:20] if isinstance(version, str) else ''
    return f'{name} {major}'.strip() or None


def scrub_sentry_fields(event, scrubber):
    """What a Sentry SDK adds beyond the documented event: frame variables, causes' frames,
    the request and the contexts, scrubbed like extra."""
    for frame in event.get('frames') or ():
        if frame.get('vars'):
            scrubber.scrub_value(frame['vars'])
    for cause in event.get('causes') or ():
        for frame in cause.get('frames') or ():
            if frame.get('vars'):
                scrubber.scrub_value(frame['vars'])
    request = event.get('request')
    if request:
        if request.get('url'):
            request['url'] = scrubber.scrub_string(request['url'])
        if request.get('query_string'):
            request['query_string'] = scrubber.scrub_string(request['query_string'])
        for field in ('headers', 'data'):
            if request.get(field):
                request[field] = scrubber.scrub_value(request[field])
    if event.get('contexts'):
        scrubber.scrub_value(event['contexts'])


def event_grouping_key(event, rules=None, adjust=None):
    """What a stored event's fingerprint is made of (grouping.grouping_key), for the issue page
    and the grouping upgrade. event: as stored (payload.decode_json, not decode_event, which
    adds frames parsed from the stack). adjust(frames) -> the frames grouping saw (source-mapped frames
    are stored as resolved, and the resolver groups on a simplified copy of them)."""
    exc_type, message, frames = grouping_input(event)
    return grouping.grouping_key(
        event_type=event.get('type'), exception_type=exc_type, message=message,
        frames=adjust(frames) if adjust else frames, rules=rules, custom=event.get('fingerprint'))


def event_fingerprint(event, rules=None, adjust=None):
    """The fingerprint of a stored event, as prepare_event (and the resolver) computed it."""
    exc_type, message, frames = grouping_input(event)
    return grouping.compute_fingerprint(
        event_type=event.get('type'), exception_type=exc_type, message=message,
        frames=adjust(frames) if adjust else frames, rules=rules, custom=event.get('fingerprint'))


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
    rules = item.get('rules')
    item['fingerprint'] = grouping.compute_fingerprint(
        event_type=item['event_type'], exception_type=item['type'] or None,
        message=item['message'], frames=frames, rules=rules,
        custom=item.get('custom_fingerprint'))
    item['title'] = grouping.get_title(item['event_type'], item['type'] or None, item['message'])
    item['culprit'] = grouping.get_culprit(frames, rules)
    item['data'] = encode_event(item['event'])
