"""Pure: a Sentry envelope's bytes -> its header and items (header dict, payload bytes).

The format: a JSON header line, then items, each a JSON header line and a payload that is either
exactly `length` bytes or runs to the next newline; the final newline is optional. No I/O; the
one exception raised is EnvelopeError, whose text says what is wrong and where.
"""

import orjson

# More items than any SDK sends in one envelope (an event, its attachments, a client report):
# bounds the work a hostile body can ask for.
MAX_ITEMS = 100
MAX_HEADER_BYTES = 64 * 1024


class EnvelopeError(ValueError):
    """The body is not a well-formed envelope."""


def parse_envelope(body):
    """-> (header dict, [(item header dict, payload bytes), ...])."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise EnvelopeError('the envelope must be bytes')
    body = bytes(body)
    end = _line_end(body, 0)
    header = _json_object(body[:end], 'envelope header')
    position = end + 1
    items = []
    size = len(body)
    while position < size:
        end = _line_end(body, position)
        line = body[position:end]
        if not line.strip():
            # Blank lines between items (or trailing ones) carry nothing.
            position = end + 1
            continue
        if len(items) >= MAX_ITEMS:
            raise EnvelopeError(f'more than {MAX_ITEMS} items')
        where = f'item {len(items) + 1} header'
        item_header = _json_object(line, where)
        if not isinstance(item_header.get('type'), str) or not item_header['type']:
            raise EnvelopeError(f'{where}: "type" is required (a string)')
        start = min(end + 1, size)
        length = item_header.get('length')
        if length is not None:
            if isinstance(length, bool) or not isinstance(length, int) or length < 0:
                raise EnvelopeError(f'{where}: "length" must be a non-negative integer')
            if start + length > size:
                raise EnvelopeError(
                    f'{where}: "length" is {length} but only {max(0, size - start)} bytes follow')
            payload = body[start:start + length]
            position = start + length
            if position < size:
                if body[position:position + 1] != b'\n':
                    raise EnvelopeError(f'item {len(items) + 1}: no newline after its {length} '
                                        'bytes of payload')
                position += 1
        else:
            finish = _line_end(body, start)
            payload = body[start:finish]
            position = finish + 1
        items.append((item_header, payload))
    return header, items


def _line_end(body, start):
    end = body.find(b'\n', start)
    return len(body) if end < 0 else end


def _json_object(line, where):
    if len(line) > MAX_HEADER_BYTES:
        raise EnvelopeError(f'{where}: longer than {MAX_HEADER_BYTES} bytes')
    line = line.strip()
    if not line:
        raise EnvelopeError(f'{where}: empty')
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise EnvelopeError(f'{where}: not valid JSON ({error})') from None
    if not isinstance(value, dict):
        raise EnvelopeError(f'{where}: must be a JSON object')
    return value


def item_json(payload, where):
    """An item's payload parsed as a JSON object (event, transaction...)."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise EnvelopeError(f'{where}: not valid JSON ({error})') from None
    if not isinstance(value, dict):
        raise EnvelopeError(f'{where}: must be a JSON object')
    return value
