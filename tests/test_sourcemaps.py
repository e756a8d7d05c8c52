"""Source-map resolution against real minified builds (esbuild, esbuild + terser) and real V8
stacks from tests/data/sourcemaps/ (regenerate with its build.sh), plus URL matching and the cache.
"""

import copy
import json
import threading
from pathlib import Path

import pytest

from proliferate.ingest.grouping import parse_stack
from proliferate.sourcemaps import decode
from proliferate.sourcemaps.decode import InvalidSourceMap
from proliferate.sourcemaps.decode import MapCache
from proliferate.sourcemaps.decode import match_map
from proliferate.sourcemaps.decode import parse_sourcemap
from proliferate.sourcemaps.decode import resolve_frames

DATA = Path(__file__).parent / 'data' / 'sourcemaps'
SRC = DATA / 'src'
MIN = DATA / 'min'
BASE_URL = 'https://cdn.example.com/static/js/'
BUILDS = (1, 2)

def map_url(build):
    return f'{BASE_URL}app{build}.min.js'


def map_bytes(build):
    return (MIN / f'app{build}.min.js.map').read_bytes()


def stacks(build):
    return json.loads((DATA / 'stacks' / f'app{build}.json').read_text())


def parse_frames(stack):
    parsed = parse_stack(stack)
    assert parsed['engine'] == 'v8'
    return parsed['frames']


def top_position(build):
    """(line, column) of the throw in the first scenario's stack: a position the map covers."""
    frame = parse_frames(stacks(build)['checkout'])[0]
    return frame['lineno'], frame['colno']


def resolve(build, scenario, candidates=None, load=None):
    index = parse_sourcemap(map_bytes(build))
    frames = parse_frames(stacks(build)[scenario])
    if candidates is None:
        candidates = [map_url(build)]
    return frames, *resolve_frames(frames, candidates, load or (lambda url: index))


def find_in_source(filename, needle):
    """(1-based line, the lines of the file) of the one line of src/<filename> holding needle."""
    lines = (SRC / filename).read_text().split('\n')
    hits = [i for i, line in enumerate(lines) if needle in line]
    assert len(hits) == 1, (filename, needle, hits)
    return hits[0] + 1, lines


# Expected frames, top first, down to the runScenarios loop: (file, text of the line, text the
# column points at or None, function). KEEP: the minified name stays (the caller's call-site token
# names nothing, or the caller is native). NATIVE: a frame without a file (JSON.parse, Array.map).
KEEP = object()
NATIVE = object()
RUN = ('app.js', 'all[name]();', None, 'runScenarios')
EXPECTED = {
    (1, 'checkout'): [
        ('cart.js', "throw new RangeError('quantity for '", 'new RangeError(', 'validateQuantity'),
        ('cart.js', 'validateQuantity(sku, quantity);', 'validateQuantity(sku', KEEP),
        ('cart.js', 'cart.add(line.sku', 'add(line.sku', 'checkout'),
        ('app.js', 'return checkout([', 'checkout([', KEEP),
        RUN,
    ],
    (2, 'checkout'): [
        ('cart.js', "throw new RangeError('quantity for '", 'new RangeError(', 'validateQuantity'),
        ('cart.js', 'validateQuantity(sku, quantity);', 'validateQuantity(sku', 'add'),
        ('cart.js', 'cart.add(line.sku', 'add(line.sku', 'checkout'),
        ('app.js', 'return checkout([', 'checkout([', KEEP),
        RUN,
    ],
    (1, 'receipt'): [
        ('format.js', 'price.amount.toFixed(2)', 'toFixed(2)', 'formatPrice'),
        ('cart.js', 'formatPrice(item.price', 'formatPrice(item.price', KEEP),
        NATIVE,
        ('cart.js', 'this.items.map(', 'map((item)', KEEP),
        ('format.js', 'cart.summary()', 'summary()', 'formatReceipt'),
        ('app.js', 'return formatReceipt(cart)', 'formatReceipt(cart)', KEEP),
        RUN,
    ],
    (2, 'receipt'): [
        # terser inlined formatPrice into the map callback, whose caller is native: nothing
        # names it, so the minified (anonymous) name stays.
        ('format.js', 'price.amount.toFixed(2)', 'toFixed(2)', KEEP),
        NATIVE,
        ('cart.js', 'this.items.map(', 'map((item)', 'summary'),
        ('format.js', 'cart.summary()', 'summary()', 'formatReceipt'),
        ('app.js', 'return formatReceipt(cart)', 'formatReceipt(cart)', KEEP),
        RUN,
    ],
    (1, 'settings'): [
        NATIVE,
        ('settings.js', 'return JSON.parse(text);', 'parse(text)', 'parseSettings'),
        ('settings.js', 'const parsed = parseSettings(text);', 'parseSettings(text)',
         'loadSettings'),
        ('app.js', 'return loadSettings(', 'loadSettings(', KEEP),
        RUN,
    ],
    (2, 'analytics'): [
        ('analytics.js', 'return batch.events.length;', 'events.length', 'sendBatch'),
        ('analytics.js', 'return sendBatch(batch[this.limit]);', 'sendBatch(batch', 'flush'),
        ('analytics.js', 'this.flush();', 'flush();', 'track'),
        ('main2.js', "queue.track('click'", "track('click'", 'trackClicks'),
        ('main2.js', 'return trackClicks(5);', 'trackClicks(5)', KEEP),
        RUN,
    ],
}
EXPECTED[2, 'settings'] = EXPECTED[1, 'settings']


@pytest.mark.parametrize('build, scenario', sorted(EXPECTED))
def test_real_stack_resolves_to_original_source(build, scenario):
    frames, resolved, stats = resolve(build, scenario)
    for i, expected in enumerate(EXPECTED[build, scenario]):
        frame = resolved[i]
        if expected is NATIVE:
            assert frame['resolved'] is False and frame['unresolved_reason'] == 'not_js'
            continue
        filename, line_text, column_text, function = expected
        lineno, lines = find_in_source(filename, line_text)
        assert frame['resolved'] is True, frame
        assert frame['filename'] == filename
        # the map's source path is relative to the map, and points at the real original file
        assert (MIN / frame['abs_path']).resolve() == (SRC / filename).resolve()
        assert frame['lineno'] == lineno
        if column_text is not None:
            assert frame['colno'] == lines[lineno - 1].index(column_text) + 1
        if function is KEEP:
            assert frame['function'] == frames[i]['function']
        else:
            assert frame['function'] == function
            assert frames[i]['function'] != function    # the stack itself had the minified name
        assert frame['context_line'] == lines[lineno - 1]
        assert frame['pre_context'] == lines[max(0, lineno - 6):lineno - 1]
        assert frame['post_context'] == lines[lineno:lineno + 5]
        assert frame['raw_frame'] == frames[i]
    assert stats['resolved'] >= len([e for e in EXPECTED[build, scenario] if e is not NATIVE])
    assert stats['resolved'] + stats['unresolved'] == len(frames)
    assert stats['maps_used'] == {map_url(build): stats['resolved']}


def test_the_two_builds_differ_but_resolve_to_the_same_throw():
    top = {}
    for build in BUILDS:
        frames, resolved, _ = resolve(build, 'checkout')
        top[build] = (frames[0], resolved[0])
    assert (top[1][0]['lineno'], top[1][0]['colno']) != (top[2][0]['lineno'], top[2][0]['colno'])
    assert top[1][0]['function'] != top[2][0]['function']
    assert {(r['abs_path'], r['lineno'], r['colno'], r['function']) for _, r in top.values()} == {
        ('../src/cart.js', find_in_source('cart.js', 'throw new RangeError')[0], 11,
         'validateQuantity')}


def test_node_internal_frames_have_no_map():
    _, resolved, _ = resolve(1, 'checkout')
    internal = [r for r in resolved if (r['abs_path'] or '').startswith('node:internal')]
    assert internal
    assert {r['unresolved_reason'] for r in internal} == {'no_match'}
    assert all(r['resolved'] is False and 'raw_frame' not in r for r in internal)


def test_position_outside_the_map_is_out_of_range():
    # Real: terser's map has no mapping for the tail of the bundle (the IIFE's closing call).
    frames, resolved, _ = resolve(2, 'analytics')
    tail = [r for f, r in zip(frames, resolved, strict=True)
            if f['function'] == 'Object.<anonymous>']
    assert tail and tail[0]['unresolved_reason'] == 'out_of_range'
    # A line past the end of the minified file (build 1's last mapping has a source, so only
    # the line check keeps it from answering with that mapping).
    frame = dict(parse_frames(stacks(1)['checkout'])[0], lineno=500)
    out, stats = resolve_frames([frame], [map_url(1)], lambda url: parse_sourcemap(map_bytes(1)))
    assert out[0]['resolved'] is False and out[0]['unresolved_reason'] == 'out_of_range'
    assert out[0]['lineno'] == 500 and stats == {'resolved': 0, 'unresolved': 1, 'maps_used': {}}


def test_no_maps_no_match_and_invalid_map():
    frames = parse_frames(stacks(1)['checkout'])
    js = [f for f in frames if f['abs_path'].startswith('https:')]
    out, stats = resolve_frames(frames, [], lambda url: pytest.fail('no candidate to load'))
    assert {f['unresolved_reason'] for f in out} == {'no_maps'}
    assert stats == {'resolved': 0, 'unresolved': len(frames), 'maps_used': {}}

    out, _ = resolve_frames(js, [BASE_URL + 'vendor.min.js'], lambda url: pytest.fail('no match'))
    assert {f['unresolved_reason'] for f in out} == {'no_match'}

    out, _ = resolve_frames(js, [map_url(1)], lambda url: None)    # the upload is gone
    assert {f['unresolved_reason'] for f in out} == {'no_match'}

    calls = []

    def load_broken(url):
        calls.append(url)
        return parse_sourcemap(map_bytes(1)[:-40])

    out, stats = resolve_frames(js, [map_url(1)], load_broken)
    assert {f['unresolved_reason'] for f in out} == {'invalid_map'}
    assert calls == [map_url(1)]       # loaded once, not once per frame
    assert stats['unresolved'] == len(js)


def test_frames_without_file_or_line_are_not_js():
    frames = [
        {'function': 'eval', 'abs_path': None, 'filename': None, 'lineno': None, 'colno': None,
         'context_line': None, 'raw': 'at eval'},
        {'function': 'f', 'abs_path': map_url(1), 'filename': 'app1.min.js', 'lineno': None,
         'colno': None, 'context_line': None, 'raw': 'at f (app1.min.js)'},
    ]
    out, _ = resolve_frames(frames, [map_url(1)], lambda url: parse_sourcemap(map_bytes(1)))
    assert [f['unresolved_reason'] for f in out] == ['not_js', 'not_js']


def test_input_frames_are_not_mutated_and_each_map_loads_once():
    index = parse_sourcemap(map_bytes(1))
    frames = parse_frames(stacks(1)['receipt'])
    before = copy.deepcopy(frames)
    calls = []

    def load(url):
        calls.append(url)
        return index

    resolved, _ = resolve_frames(frames, [map_url(1)], load)
    assert frames == before
    assert calls == [map_url(1)]
    assert all(r is not f for r, f in zip(resolved, frames, strict=True))


def test_frames_from_two_files_use_their_own_maps():
    one = parse_frames(stacks(1)['checkout'])[:2]
    two = parse_frames(stacks(2)['analytics'])[:2]
    maps = {map_url(b): parse_sourcemap(map_bytes(b)) for b in BUILDS}
    out, stats = resolve_frames(one + two, list(maps), maps.get)
    assert [f['filename'] for f in out] == ['cart.js', 'cart.js', 'analytics.js', 'analytics.js']
    assert stats['maps_used'] == {map_url(1): 2, map_url(2): 2}
    # the last frame's caller is not in the list: its minified name stays
    assert out[3]['function'] == two[1]['function']


def test_without_sources_content_positions_resolve_without_context():
    raw = json.loads(map_bytes(1))
    del raw['sourcesContent']
    index = parse_sourcemap(json.dumps(raw).encode())
    frames = parse_frames(stacks(1)['checkout'])
    out, _ = resolve_frames(frames, [map_url(1)], lambda url: index)
    top = out[0]
    assert top['resolved'] and top['filename'] == 'cart.js'
    assert top['function'] == 'validateQuantity'
    assert (top['pre_context'], top['context_line'], top['post_context']) == ([], None, [])


def test_source_root_is_applied():
    raw = json.loads(map_bytes(1))
    raw['sourceRoot'] = 'webpack://shop/'
    raw['sources'] = [s.replace('../', '') for s in raw['sources']]
    index = parse_sourcemap(json.dumps(raw).encode())
    out, _ = resolve_frames(parse_frames(stacks(1)['checkout']), [map_url(1)], lambda url: index)
    assert out[0]['abs_path'] == 'webpack://shop/src/cart.js'
    assert out[0]['filename'] == 'cart.js'


def test_indexed_map_sections_resolve():
    # The second section starts on line 2 of the generated file and reuses build 1's map.
    one = json.loads(map_bytes(1))
    small = {'version': 3, 'sources': ['lib/first.js'], 'names': ['first'],
             'sourcesContent': ['let a = 1;\nfirst();\n'], 'mappings': 'AACAA'}
    indexed = {'version': 3, 'sections': [
        {'offset': {'line': 0, 'column': 0}, 'map': small},
        {'offset': {'line': 1, 'column': 0}, 'map': one},
    ]}
    index = parse_sourcemap(json.dumps(indexed).encode())
    first = index.lookup(1, 1)
    assert (first.source, first.lineno, first.colno, first.name) == ('lib/first.js', 2, 1, 'first')
    frame = parse_frames(stacks(1)['checkout'])[0]
    shifted = dict(frame, lineno=frame['lineno'] + 1)
    out, _ = resolve_frames([shifted], [map_url(1)], lambda url: index)
    assert (out[0]['filename'], out[0]['lineno']) == (
        'cart.js', find_in_source('cart.js', 'throw new RangeError')[0])


def test_long_context_lines_are_cut_around_the_column():
    raw = json.loads(map_bytes(1))
    cart = raw['sources'].index('../src/cart.js')
    lines = raw['sourcesContent'][cart].split('\n')
    lines[3] = 'x' * 1000 + 'boom()' + 'y' * 1000
    raw['sourcesContent'][cart] = '\n'.join(lines)
    index = parse_sourcemap(json.dumps(raw).encode())
    pre, line, post = index.context(cart, 4, 1001)
    assert pre == lines[:3] and post == lines[4:9]
    assert 'boom()' in line
    assert len(line) == decode.MAX_CONTEXT_LINE + 2
    assert line.startswith('\u2026') and line.endswith('\u2026')
    # a line's neighbours are cut too, from their start
    _, _, post = index.context(cart, 3, 1)
    assert post[0] == 'x' * decode.MAX_CONTEXT_LINE + '\u2026'
    # past the end of the source: no context
    assert index.context(cart, len(lines) + 10, 1) == ([], None, [])


# --- match_map -------------------------------------------------------------------------------

@pytest.mark.parametrize('abs_path, candidates, expected', [
    # exact URL first, even when a ~/path one also matches
    ('https://cdn.x.com/static/js/app.min.js',
     ['~/static/js/app.min.js', 'https://cdn.x.com/static/js/app.min.js'],
     'https://cdn.x.com/static/js/app.min.js'),
    # the same URL apart from a cache-busting query
    ('https://cdn.x.com/static/js/app.min.js?v=3', ['https://cdn.x.com/static/js/app.min.js'],
     'https://cdn.x.com/static/js/app.min.js'),
    # ~/path matches any host, ignoring query and fragment
    ('https://other.host:8443/static/js/app.min.js?v=3#x', ['~/static/js/app.min.js'],
     '~/static/js/app.min.js'),
    ('http://localhost:3000/static/js/app.min.js', ['~/static/js/app.min.js?build=7'],
     '~/static/js/app.min.js?build=7'),
    ('app:///static/js/app.min.js', ['~/static/js/app.min.js'], '~/static/js/app.min.js'),
    # ~/path beats a unique base name elsewhere
    ('https://cdn.x.com/static/js/app.min.js',
     ['https://cdn.y.com/assets/app.min.js', '~/static/js/app.min.js'],
     '~/static/js/app.min.js'),
    # a unique base name in the release
    ('https://cdn.x.com/v2/js/app.min.js', ['https://cdn.x.com/static/js/app.min.js',
                                            '~/static/js/vendor.min.js'],
     'https://cdn.x.com/static/js/app.min.js'),
    ('/var/www/static/app.min.js', ['~/assets/app.min.js'], '~/assets/app.min.js'),
    # an ambiguous base name gives nothing rather than a guess
    ('https://cdn.x.com/v2/js/app.min.js', ['~/a/app.min.js', '~/b/app.min.js'], None),
    # no candidate with that name, no candidates, no path
    ('https://cdn.x.com/static/js/app.min.js', ['~/static/js/vendor.min.js'], None),
    ('https://cdn.x.com/static/js/app.min.js', [], None),
    ('', ['~/static/js/app.min.js'], None),
    ('https://cdn.x.com/', ['~/static/js/app.min.js'], None),
    # a different path on the ~ form is not a match by path (the base name differs too)
    ('https://cdn.x.com/static/js/app.min.js', ['~/js/app.js'], None),
])
def test_match_map(abs_path, candidates, expected):
    assert match_map(abs_path, candidates) == expected


# --- parse_sourcemap ------------------------------------------------------------------------

VALID = {'version': 3, 'sources': ['a.js'], 'names': ['foo'], 'mappings': 'AAAAA'}


@pytest.mark.parametrize('data, reason', [
    (b'not json at all', 'not JSON'),
    (b'', 'not JSON'),
    (b'[1, 2]', 'not a JSON object'),
    (json.dumps(dict(VALID, version=2)).encode(), 'version must be 3'),
    (json.dumps({k: v for k, v in VALID.items() if k != 'version'}).encode(), 'version must be 3'),
    (json.dumps(dict(VALID, mappings='!!!')).encode(), 'bad source map'),
    (json.dumps(dict(VALID, mappings='ACAAA')).encode(), 'bad source map'),   # source #1 of 1
    (json.dumps(dict(VALID, mappings='AAAAC')).encode(), 'bad source map'),   # name #1 of 1
    (json.dumps(dict(VALID, mappings=5)).encode(), 'mappings must be a string'),
    (json.dumps(dict(VALID, sources='a.js')).encode(), 'sources must be a list'),
    (json.dumps(dict(VALID, names={})).encode(), 'names must be a list'),
    (json.dumps({'version': 3, 'sections': [{'offset': {'line': 0, 'column': 0},
                                             'url': 'https://x/a.map'}]}).encode(),
     'no inline map'),
    (json.dumps({'version': 3, 'sections': [{'offset': {'line': 0, 'column': 0},
                                             'map': dict(VALID, version=1)}]}).encode(),
     'version must be 3'),
    (b'\xff\xfe{}', 'not JSON'),
])
def test_invalid_maps_raise(data, reason):
    with pytest.raises(InvalidSourceMap, match=reason):
        parse_sourcemap(data)


def test_invalid_source_map_is_a_value_error():
    assert issubclass(InvalidSourceMap, ValueError)
    with pytest.raises(ValueError):
        parse_sourcemap(map_bytes(1)[:100])


def test_xssi_prefix_is_accepted():
    index = parse_sourcemap(b")]}'\n" + json.dumps(VALID).encode())
    assert index.sources == ['a.js']
    assert index.lookup(1, 1).name == 'foo'


# --- MapCache -------------------------------------------------------------------------------

def counting_loader(data, calls, key):
    def loader():
        calls.append(key)
        return data
    return loader


def test_cache_evicts_least_recently_used_under_the_byte_budget():
    data = {b: map_bytes(b) for b in BUILDS}
    cost = {b: parse_sourcemap(data[b]).size for b in BUILDS}
    assert cost[1] != cost[2]
    # room for both builds' maps once, not for a third map
    cache = MapCache(max_bytes=cost[1] + cost[2] + cost[1] // 2)
    calls = []
    first = cache.get_or_load('m1', counting_loader(data[1], calls, 'm1'))
    cache.get_or_load('m2', counting_loader(data[2], calls, 'm2'))
    assert cache.bytes == cost[1] + cost[2] and len(cache) == 2
    # a hit, which makes m1 the most recently used
    assert cache.get_or_load('m1', counting_loader(data[1], calls, 'm1')) is first
    cache.get_or_load('m3', counting_loader(data[1], calls, 'm3'))
    assert 'm2' not in cache and 'm1' in cache and 'm3' in cache       # m2 was least recent
    assert cache.bytes == 2 * cost[1] <= cache.max_bytes
    assert (cache.hits, cache.misses, cache.evictions) == (1, 3, 1)
    cache.get_or_load('m2', counting_loader(data[2], calls, 'm2'))
    assert calls == ['m1', 'm2', 'm3', 'm2']
    assert cache.bytes <= cache.max_bytes


def test_cache_does_not_keep_a_map_larger_than_the_budget():
    data = map_bytes(2)
    cache = MapCache(max_bytes=len(data))     # a parsed map costs more than its JSON
    index = cache.get_or_load('big', lambda: data)
    assert index.lookup(*top_position(2)) is not None
    assert len(cache) == 0 and cache.bytes == 0


def test_cache_remembers_invalid_maps():
    calls = []
    cache = MapCache()
    for _ in range(3):
        with pytest.raises(InvalidSourceMap, match='version must be 3'):
            cache.get_or_load('bad', counting_loader(b'{"version": 2}', calls, 'bad'))
    assert calls == ['bad']


def test_cache_is_consistent_under_threads():
    data = {b: map_bytes(b) for b in BUILDS}
    cost = parse_sourcemap(data[1]).size
    cache = MapCache(max_bytes=cost * 3)
    positions = {b: top_position(b) for b in BUILDS}
    errors = []

    def work(seed):
        try:
            for i in range(40):
                key = (seed * 7 + i) % 6
                index = cache.get_or_load(key, lambda k=key: data[1 + k % 2])
                assert index.lookup(*positions[1 + key % 2]).lineno > 1
        except Exception as exc:    # reported below, outside the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    with cache._lock:
        assert cache.bytes == sum(c for _, c in cache._entries.values()) <= cache.max_bytes
    assert cache.hits + cache.misses == 4 * 40
