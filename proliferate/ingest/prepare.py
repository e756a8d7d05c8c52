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
    regroup(item)
    return item


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
