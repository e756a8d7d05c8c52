"""The stored form of an event: the normalised event as zlib-compressed JSON (about a third of its
size on disk), and its decoding for pages and the read API. Pure: no I/O.
"""

import zlib

import orjson

from proliferate import grouping

# Level 6 is zlib's default; higher levels cost the writer more CPU for ~1 % smaller rows.
COMPRESSION_LEVEL = 6


def encode_event(event):
    return zlib.compress(orjson.dumps(event), COMPRESSION_LEVEL)


def decode_event(data):
    """The stored event dict, with its frames: the source-mapped ones where the writer resolved
    them, otherwise parsed from the stack (parsing is cheap and saves storing them twice)."""
    event = orjson.loads(zlib.decompress(bytes(data)))
    if 'frames' not in event:
        exception = event.get('exception') or {}
        event['frames'] = grouping.parse_stack(exception.get('stack'))['frames']
    return event
