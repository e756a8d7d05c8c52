"""Source maps: minified JavaScript frames -> original frames, and a bounded cache of parsed maps.

Pure given a map loader: no database, no HTTP. Decoding is done by `symbolic` (Sentry's Rust
decoder); tests/data/sourcemaps/README.md has the measurements behind that choice.
"""

import collections
import threading
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import urlsplit

import orjson
import symbolic

CONTEXT_LINES = 5
# A bundled vendor file can have 100 KB lines in sourcesContent; a context line is for a person
# to read, so it is cut to a window around the column (Sentry cuts at 150).
MAX_CONTEXT_LINE = 300
# What a parsed map costs in memory, per byte of its JSON: held parsed maps measured 2.0x their
# JSON size in RSS (1.5 MB and 4.7 MB esbuild maps, see the README); 3 covers the orjson check.
PARSED_BYTES_PER_JSON_BYTE = 3
# The decoder takes u32 positions; a relative offset that goes below zero wraps around to a huge
# value instead of failing the parse, so any original position past this is treated as unmapped.
MAX_POSITION = 2 ** 31
XSSI_PREFIX = b")]}'"
REASONS = ('no_maps', 'no_match', 'out_of_range', 'invalid_map', 'not_js')


class InvalidSourceMap(ValueError):
    """The bytes are not a usable source map; str(error) says why."""


class OriginalPosition(NamedTuple):
    source: str | None   # the map's source path with sourceRoot applied
    source_id: int
    lineno: int          # 1-based
    colno: int           # 1-based
    name: str | None     # the original name the map gives the token, if any
    exact: bool          # a mapping starts exactly at the looked-up column


class SourceMapIndex:
    """A parsed source map (built by parse_sourcemap); lookups are read-only and thread-safe."""

    def __init__(self, view, size):
        self._view = view
        self.size = size
        self.sources = [view.get_source_name(i) for i in range(view.source_count)]
        # Source id -> its sourcesContent split into lines, made on first use: the decoder hands
        # out lines one FFI call at a time (~5 us a line, 30-80 us a frame of context).
        self._lines = {}

    def lookup(self, lineno, colno):
        """The original position of a 1-based minified (line, column), or None when the map has
        no mapping there. A missing column means the start of the line."""
        line0 = lineno - 1
        col0 = (colno or 1) - 1
        if line0 < 0 or col0 < 0 or line0 >= MAX_POSITION or col0 >= MAX_POSITION:
            return None
        token = self._view.lookup(line0, col0)
        # The decoder answers with the closest mapping at or before the position, even on an
        # earlier line; a line with no mapping of its own is outside the map.
        if token is None or token.dst_line != line0:
            return None
        if token.src is None or token.src_line >= MAX_POSITION or token.src_col >= MAX_POSITION:
            return None
        return OriginalPosition(
            source=token.src,
            source_id=token.src_id,
            lineno=token.src_line + 1,
            colno=token.src_col + 1,
            name=token.name,
            exact=token.dst_col == col0,
        )

    def context(self, source_id, lineno, colno=None, size=CONTEXT_LINES):
        """(pre_context, context_line, post_context) from sourcesContent; ([], None, []) when the
        map carries no content for that source or the line is past its end."""
        lines = self._lines.get(source_id)
        if lines is None:
            view = self._view.get_sourceview(source_id)
            lines = self._lines[source_id] = view.get_source().split('\n') if view else ()
        index = lineno - 1
        if index < 0 or index >= len(lines):
            return [], None, []
        pre = [_trim_line(line) for line in lines[max(0, index - size):index]]
        post = [_trim_line(line) for line in lines[index + 1:index + 1 + size]]
        return pre, _trim_line(lines[index], colno), post


def parse_sourcemap(data):
    """Parse source-map JSON bytes (a regular or an indexed map) into a SourceMapIndex; raise
    InvalidSourceMap on anything that is not a version 3 source map."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidSourceMap('source map must be bytes')
    data = bytes(data)
    if data.startswith(XSSI_PREFIX):
        # The spec lets a server prefix the JSON with a line that stops it being run as script.
        data = data.partition(b'\n')[2]
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidSourceMap(f'not JSON: {exc}') from None
    _check_map(raw, 'map')
    # The decoder does not check the version or the shape, hence _check_map; it does check the
    # mappings (VLQ, source and name references).
    try:
        view = symbolic.SourceMapView.from_json_bytes(data)
    except symbolic.SymbolicError as exc:
        raise InvalidSourceMap(f'bad source map: {exc}') from None
    return SourceMapIndex(view, size=len(data) * PARSED_BYTES_PER_JSON_BYTE)


def _check_map(raw, where):
    if not isinstance(raw, dict):
        raise InvalidSourceMap(f'{where}: not a JSON object')
    if raw.get('version') != 3:
        raise InvalidSourceMap(f'{where}: version must be 3, got {raw.get("version")!r}')
    if 'sections' in raw:
        sections = raw['sections']
        if not isinstance(sections, list):
            raise InvalidSourceMap(f'{where}: sections must be a list')
        for i, section in enumerate(sections):
            if not isinstance(section, dict) or not isinstance(section.get('offset'), dict):
                raise InvalidSourceMap(f'{where}: section {i} needs an offset')
            if 'map' not in section:
                # `url` sections would need a fetch, and this module does no I/O.
                raise InvalidSourceMap(f'{where}: section {i} has no inline map')
            _check_map(section['map'], f'{where} section {i}')
        return
    if not isinstance(raw.get('mappings'), str):
        raise InvalidSourceMap(f'{where}: mappings must be a string')
    sources = raw.get('sources')
    if not isinstance(sources, list) or not all(s is None or isinstance(s, str) for s in sources):
        raise InvalidSourceMap(f'{where}: sources must be a list of strings')
    names = raw.get('names', [])
    if not isinstance(names, list):
        raise InvalidSourceMap(f'{where}: names must be a list')
    root = raw.get('sourceRoot')
    if root is not None and not isinstance(root, str):
        raise InvalidSourceMap(f'{where}: sourceRoot must be a string')


def _trim_line(line, colno=None):
    line = line.rstrip('\r\n')
    if len(line) <= MAX_CONTEXT_LINE:
        return line
    start = 0
    if colno:
        start = min(max(colno - 1 - MAX_CONTEXT_LINE // 2, 0), len(line) - MAX_CONTEXT_LINE)
    end = start + MAX_CONTEXT_LINE
    return ('\u2026' if start else '') + line[start:end] + ('\u2026' if end < len(line) else '')


def _strip_query(url):
    return url.split('#', 1)[0].split('?', 1)[0]


def _path_of(url):
    if url.startswith('~/'):
        return _strip_query(url[1:])
    try:
        path = urlsplit(url).path
    except ValueError:
        path = _strip_query(url)
    return path or _strip_query(url)


def _base_name(path):
    return path.replace('\\', '/').rsplit('/', 1)[-1]


def match_map(abs_path, candidates):
    """The uploaded URL (from candidates) whose map serves the file at abs_path, or None.

    In order: the exact URL (then the same URL without ?query/#fragment), then a `~/path`
    candidate whose path equals abs_path's path on any host, then the one candidate with the
    same base name (two or more with that base name in the release is ambiguous: None).
    """
    if not abs_path or not candidates:
        return None
    if abs_path in candidates:
        return abs_path
    bare = _strip_query(abs_path)
    for candidate in candidates:
        if not candidate.startswith('~') and _strip_query(candidate) == bare:
            return candidate
    path = _path_of(abs_path)
    for candidate in candidates:
        if candidate.startswith('~/') and _path_of(candidate) == path:
            return candidate
    base = _base_name(path)
    if not base:
        return None
    same_base = {c for c in candidates if _base_name(_path_of(c)) == base}
    if len(same_base) == 1:
        return same_base.pop()
    return None


def resolve_frames(frames, candidates, load):
    """Resolve minified frames (top first) through the release's maps; return (new frames, stats).

    load(url) gives the parsed map of an uploaded URL (or None when it is gone) and is called at
    most once per URL; if it raises, that URL's frames are 'invalid_map'. The input frames are not
    changed. A resolved copy carries the original abs_path (sourceRoot applied), filename, lineno,
    colno, function, pre_context / context_line / post_context (sourcesContent, else [] / None),
    resolved=True and raw_frame (the minified frame). An unresolved copy keeps its fields and adds
    resolved=False and unresolved_reason, one of REASONS. stats = {'resolved': n,
    'unresolved': n, 'maps_used': {url: frames resolved with it}}.
    """
    maps = {}
    located = [_locate(frame, candidates, load, maps) for frame in frames]
    stats = {'resolved': 0, 'unresolved': 0, 'maps_used': {}}
    resolved = []
    for i, frame in enumerate(frames):
        here = located[i]
        if isinstance(here, str):
            new = dict(frame)
            new['resolved'] = False
            new['unresolved_reason'] = here
            stats['unresolved'] += 1
            resolved.append(new)
            continue
        url, index, position = here
        caller = located[i + 1] if i + 1 < len(located) else None
        resolved.append(_resolved_frame(frame, index, position, caller))
        stats['resolved'] += 1
        stats['maps_used'][url] = stats['maps_used'].get(url, 0) + 1
    return resolved, stats


def _locate(frame, candidates, load, maps):
    """(url, index, position) for a frame the maps cover, else the reason it stays minified."""
    abs_path = frame.get('abs_path')
    lineno = frame.get('lineno')
    colno = frame.get('colno')
    if not abs_path or not isinstance(lineno, int) or isinstance(lineno, bool):
        return 'not_js'
    if not candidates:
        return 'no_maps'
    url = match_map(abs_path, candidates)
    if url is None:
        return 'no_match'
    if url not in maps:
        try:
            maps[url] = load(url)
        except Exception:  # a bad upload must not fail ingest; the frame says why
            maps[url] = 'invalid_map'
    index = maps[url]
    if isinstance(index, str):
        return index
    if index is None:
        return 'no_match'
    if not isinstance(colno, int) or isinstance(colno, bool):
        colno = None
    position = index.lookup(lineno, colno)
    if position is None:
        return 'out_of_range'
    return url, index, position


def _resolved_frame(frame, index, position, caller):
    # The function name. A minified frame's position is a call (or the throw) INSIDE its function,
    # so the name the map gives that token is the callee's, never the function's own. The name of
    # a frame's function is therefore read from the frame below it (its caller, top-first order):
    # the caller's position is the call expression, whose token names the function that was
    # called. Only when that token starts exactly at the caller's column (a nearby token may name
    # the receiver or an argument) and the caller is itself a mapped JS frame (a native frame
    # such as Array.map between them means the call site is unknown). Otherwise the minified name
    # is kept. Scope-aware naming (the enclosing function's own declaration) would need the
    # minified file, which a map loader does not give.
    function = frame.get('function')
    if isinstance(caller, tuple):
        caller_position = caller[2]
        if caller_position.exact and caller_position.name:
            function = caller_position.name
    pre, line, post = index.context(position.source_id, position.lineno, position.colno)
    new = dict(frame)
    new.update({
        'abs_path': position.source,
        'filename': _base_name(position.source),
        'lineno': position.lineno,
        'colno': position.colno,
        'function': function,
        'pre_context': pre,
        'context_line': line,
        'post_context': post,
        'resolved': True,
        'raw_frame': dict(frame),
    })
    new.pop('unresolved_reason', None)
    return new


_FAILED_COST = 1024  # what a remembered parse failure is charged against the budget


class MapCache:
    """A least-recently-used cache of parsed maps under a byte budget, shared between threads.

    Keys must name immutable content (a map id or its sha256): a failed parse is remembered and
    raised again, so a broken upload is not re-parsed for every event that hits it.
    """

    def __init__(self, max_bytes=64 * 1024 * 1024):
        self.max_bytes = max_bytes
        # key -> (SourceMapIndex or the InvalidSourceMap it raised, cost in bytes)
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self):
        with self._lock:
            return len(self._entries)

    def __contains__(self, key):
        with self._lock:
            return key in self._entries

    def get_or_load(self, key, loader: Callable[[], bytes]) -> SourceMapIndex:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return _unwrap(entry[0])
            self.misses += 1
        # Loading and parsing run outside the lock: a big map takes tens of milliseconds and other
        # threads may want other maps meanwhile. Two threads missing the same key both parse it;
        # the second result is dropped.
        try:
            value = parse_sourcemap(loader())
            cost = value.size
        except InvalidSourceMap as exc:
            value = exc
            cost = _FAILED_COST
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                return _unwrap(entry[0])
            # A map larger than the whole budget is returned but not kept: keeping it would break
            # the bound the budget promises.
            if cost <= self.max_bytes:
                self._entries[key] = (value, cost)
                self.bytes += cost
                while self.bytes > self.max_bytes:
                    _, (_, old_cost) = self._entries.popitem(last=False)
                    self.bytes -= old_cost
                    self.evictions += 1
        return _unwrap(value)


def _unwrap(value):
    if isinstance(value, InvalidSourceMap):
        # A fresh exception each time: re-raising the stored one would grow its traceback.
        raise InvalidSourceMap(str(value))
    return value
