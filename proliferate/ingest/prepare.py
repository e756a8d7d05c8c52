"""A normalised event -> the item the writer stores: scrubbed, grouped, tagged and encoded.

Pure: no I/O, no HTTP. Request threads run it so the writer's transaction stays short.
"""

from proliferate.ingest import grouping
from proliferate.ingest import scrub
from proliferate.ingest.payload import encode_event
from proliferate.ingest.useragent import parse_user_agent

# The 0.1.0 Python SDK announces itself with this message on start-up: a connection check, not
# an error, so it is acknowledged and counted but opens no issue.
SDK_INIT_MESSAGE = 'proliferate-sdk-init'
RESERVED_TAGS = frozenset(('environment', 'release', 'browser', 'os', 'url', 'level'))
MAX_CUSTOM_TAGS = 10


def is_sdk_init(event):
    """Whether a normalised event is the SDK's start-up check rather than an error."""
    return event['type'] == 'message' and event['message'] == SDK_INIT_MESSAGE


def prepare_event(event, project_id, timestamp, received_at, scrubber=scrub.DEFAULT):
    """The normalised event -> what the writer stores (grouping done here, off the writer)."""
    # Scrubbed first, so that no secret reaches the stored payload, the title or the tags.
    event = scrub.scrub_event(event, scrubber)
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
