"""The writer-side source-map resolver: JavaScript frames of fresh events with a release are mapped
through that release's uploaded maps, the events regrouped on the resolved frames, and the frames
each map resolved counted. Runs in the writer's transaction (Store(resolver=...)), before issues.
"""

import collections
import hashlib
import logging
import threading
import time

import peewee
from peewee import EXCLUDED

from proliferate.db import database
from proliferate.ingest.prepare import regroup
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.models import SourceMapCount
from proliferate.sourcemaps.decode import MapCache
from proliferate.sourcemaps.decode import resolve_frames

log = logging.getLogger(__name__)

# How long the writer trusts its list of a release's maps. Uploads and the clean-up in this
# process call maps_changed(), so the list is fresh at once here; another process sharing a
# PostgreSQL database sees new maps after at most this long.
RELEASE_TTL = 10.0
MAX_RELEASES_CACHED = 2000
# Resolved stacks kept for events that repeat one (the common case: the same error again). A
# resolved 10-frame stack with its context lines is ~10 KB, so this bounds the memory at ~10 MB.
MAX_STACKS_CACHED = 1000

_generation = 0
_generation_lock = threading.Lock()


def maps_changed():
    """Forget every cached list of release maps (called by writes that add or remove maps)."""
    global _generation
    with _generation_lock:
        _generation += 1


def is_js_frame(frame):
    path = frame.get('abs_path')
    if not isinstance(path, str) or not isinstance(frame.get('lineno'), int):
        return False
    # Python frames carry a file path and a line too; a Python event with a release must not
    # come out with every frame marked "no map".
    return not path.split('?', 1)[0].endswith('.py')


def grouping_frames(frames):
    """The frames grouping sees. A resolved frame whose name the map could not give keeps V8's
    minified 'Receiver.method': the receiver is a mangled class name that changes with every
    build, the method a property name minifiers keep. Only the method takes part in grouping, so
    the same bug in two builds is one issue (tests/test_resolver.py, builds 1 and 2)."""
    out = []
    for frame in frames:
        raw = frame.get('raw_frame')
        function = frame.get('function')
        if (frame.get('resolved') and isinstance(raw, dict) and isinstance(function, str)
                and function == raw.get('function') and '.' in function
                and not function.startswith('new ')):
            frame = dict(frame, function=function.rpartition('.')[2] or function)
        out.append(frame)
    return out


class Resolver:
    """resolver(items): called by Store with the batch's fresh items, on the writer thread."""

    def __init__(self, *, cache_bytes=256 * 1024 * 1024, ttl=RELEASE_TTL, clock=time.monotonic):
        self.maps = MapCache(cache_bytes)
        self.ttl = ttl
        self.clock = clock
        # (project_id, version) -> (expires, generation, {url: (id, sha256)}, maps key)
        self._releases = {}
        self._projects = {}  # project_id -> (expires, generation, has any map)
        # (maps key, frames key) -> (resolved frames, stats); the maps key names the content.
        self._stacks = collections.OrderedDict()
        self.stack_hits = 0
        self.events_resolved = 0
        self.frames_resolved = 0

    def __call__(self, items):
        used = collections.Counter()  # SourceMap.id -> frames it resolved in this batch
        for item in items:
            frames = item.get('frames')
            if not item.get('release') or not frames:
                continue
            # A project that has never uploaded a map is not touched: marking its frames
            # 'no_maps' would re-encode every event with a release (~90 us of writer CPU each,
            # bench_resolver.py) to say what its release pages already show.
            if not self.project_has_maps(item['project_id']):
                continue
            event = item.get('event') or {}
            if event.get('platform') == 'python' or not any(is_js_frame(f) for f in frames):
                continue
            try:
                self.resolve_item(item, used)
            except Exception:
                # A broken map or a bug here must not lose the event: it is stored unresolved.
                log.exception('source maps: event %s of project %s stays unresolved',
                              item.get('event_id'), item.get('project_id'))
        if used:
            self.count(used)

    def count(self, used):
        """Add the batch's resolved frames per map (best effort: a map deleted meanwhile by
        another process must not fail the batch, so it runs in a savepoint)."""
        rows = [{'sourcemap': map_id, 'resolved_count': count}
                for map_id, count in sorted(used.items())]
        try:
            with database.atomic():
                (SourceMapCount.insert_many(rows)
                 .on_conflict(conflict_target=[SourceMapCount.sourcemap],
                              update={SourceMapCount.resolved_count:
                                      SourceMapCount.resolved_count + EXCLUDED.resolved_count})
                 .execute())
        except peewee.IntegrityError:
            log.warning('source maps: a map was deleted while its frames were counted; '
                        'the count of this batch is dropped')

    def resolve_item(self, item, used):
        maps, maps_key = self.release_maps(item['project_id'], item['release'])
        frames, stats = self.resolve_stack(item['frames'], maps, maps_key)
        item['event']['frames'] = frames
        item['frames'] = grouping_frames(frames)
        regroup(item)
        for url, count in stats['maps_used'].items():
            used[maps[url][0]] += count
        if stats['resolved']:
            self.events_resolved += 1
            self.frames_resolved += stats['resolved']

    def resolve_stack(self, frames, maps, maps_key):
        """resolve_frames through the release's maps, remembered per (maps, frames): the frames
        come from the stack text, so an equal stack resolves equally until a map changes."""
        try:
            # Frames are flat dicts built in one order by the stack parser: items() is the key.
            key = (maps_key, tuple(tuple(f.items()) for f in frames))
            hash(key)
        except TypeError:  # a frame field that is not hashable: resolve without the cache
            key = None
        if key is not None:
            cached = self._stacks.get(key)
            if cached is not None:
                self._stacks.move_to_end(key)
                self.stack_hits += 1
                # The frame dicts are shared between events: nothing downstream changes them.
                return list(cached[0]), cached[1]

        def load(url):
            map_id, sha256 = maps[url]
            cache_key = (map_id, sha256)
            if cache_key not in self.maps:
                data = (SourceMap.select(SourceMap.map_data)
                        .where(SourceMap.id == map_id, SourceMap.sha256 == sha256).scalar())
                if data is None:
                    return None  # replaced or cleaned up since the list was read
                return self.maps.get_or_load(cache_key, lambda: bytes(data))
            return self.maps.get_or_load(cache_key, lambda: b'')

        resolved, stats = resolve_frames(frames, maps, load)
        if key is not None and all(f.get('unresolved_reason') != 'invalid_map' for f in resolved):
            self._stacks[key] = (resolved, stats)
            if len(self._stacks) > MAX_STACKS_CACHED:
                self._stacks.popitem(last=False)
        return list(resolved), stats

    def project_has_maps(self, project_id):
        now = self.clock()
        entry = self._projects.get(project_id)
        if entry is not None and entry[0] > now and entry[1] == _generation:
            return entry[2]
        generation = _generation
        has_maps = (SourceMap.select(SourceMap.id).join(Release)
                    .where(Release.project == project_id).exists())
        if len(self._projects) >= MAX_RELEASES_CACHED:
            self._projects.clear()
        self._projects[project_id] = (now + self.ttl, generation, has_maps)
        return has_maps

    def release_maps(self, project_id, version):
        """({url: (SourceMap.id, sha256)}, a key naming exactly those maps) of a release; the
        dict is empty when the release has no maps or does not exist."""
        key = (project_id, version)
        now = self.clock()
        entry = self._releases.get(key)
        if entry is not None and entry[0] > now and entry[1] == _generation:
            return entry[2], entry[3]
        generation = _generation
        query = (SourceMap.select(SourceMap.id, SourceMap.url, SourceMap.sha256)
                 .join(Release)
                 .where(Release.project == project_id, Release.version == version)
                 .tuples())
        maps = {url: (map_id, sha256) for map_id, url, sha256 in query}
        # One short string names exactly these maps (their ids and contents): the stack cache
        # keys on it, and a string's hash is computed once, however many maps a release has.
        maps_key = hashlib.sha256(repr(sorted(
            (url, map_id, sha256) for url, (map_id, sha256) in maps.items())).encode()).hexdigest()
        if len(self._releases) >= MAX_RELEASES_CACHED:
            self._releases.clear()
        self._releases[key] = (now + self.ttl, generation, maps, maps_key)
        return maps, maps_key
