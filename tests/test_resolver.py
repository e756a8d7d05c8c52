"""Source maps end to end on the real server: upload the committed builds' maps, post the real V8
stacks Node printed for them, and read the original functions, files, lines and context back
through the read API; two differently minified builds of the same bug are one issue."""

from factories import make_project
from sourcemap_helpers import CDN
from sourcemap_helpers import SRC
from sourcemap_helpers import make_upload_token
from sourcemap_helpers import map_bytes
from sourcemap_helpers import minified_bytes
from sourcemap_helpers import post_stack
from sourcemap_helpers import source_line
from sourcemap_helpers import stacks
from sourcemap_helpers import upload_map

from proliferate.ingest.grouping import parse_stack
from proliferate.sourcemaps.decode import parse_sourcemap
from proliferate.sourcemaps.decode import resolve_frames

PYTHON_STACK = '''Traceback (most recent call last):
  File "/srv/shop/app.py", line 12, in checkout
    validate(cart)
  File "/srv/shop/cart.py", line 40, in validate
    raise ValueError("quantity must be positive")
ValueError: quantity must be positive'''


def upload_builds(http, project):
    token = make_upload_token(project)
    # Build 1 under its full CDN URL, build 2 under ~/path (the same path on any host).
    status, _ = upload_map(http, token, 'shop@1', CDN + 'app1.min.js', map_bytes(1),
                           minified=minified_bytes(1))
    assert status == 201
    status, _ = upload_map(http, token, 'shop@2', '~/static/js/app2.min.js', map_bytes(2))
    assert status == 201
    return token


def event(read_api, project, event_id):
    return read_api.get(f'/api/v1/projects/{project.id}/events/{event_id}')


def resolved_frames_expected(build):
    """How many frames the build's stacks resolve, computed here without the server."""
    index = parse_sourcemap(map_bytes(build))
    total = 0
    for stack in stacks(build).values():
        _frames, stats = resolve_frames(parse_stack(stack)['frames'],
                                        [f'{CDN}app{build}.min.js'], lambda url: index)
        total += stats['resolved']
    return total


def assert_frame(frame, filename, needle, function=None):
    """frame is resolved to the line of src/<filename> holding needle, with 5 lines of context
    either side from sourcesContent, and keeps its minified form in raw_frame."""
    line, text = source_line(filename, needle)
    lines = (SRC / filename).read_text().split('\n')
    assert frame['resolved'] is True, frame
    assert frame['filename'] == filename and frame['abs_path'] == f'../src/{filename}'
    assert frame['lineno'] == line and frame['colno'] >= 1
    assert frame['context_line'] == text.rstrip()
    assert frame['pre_context'] == lines[max(0, line - 6):line - 1]
    assert frame['post_context'] == lines[line:line + 5]
    if function is not None:
        assert frame['function'] == function, frame
    raw = frame['raw_frame']
    assert raw['abs_path'].startswith(CDN) and raw['abs_path'].endswith('.min.js')
    assert raw['lineno'] in (1, 3) and raw['colno'] >= 1


def test_minified_stacks_resolve_and_group_across_builds(http, read_api, project, live_server):
    upload_builds(http, project)
    ids = {}
    for build in (1, 2):
        for scenario, stack in stacks(build).items():
            ids[build, scenario] = post_stack(http, project.key, stack, release=f'shop@{build}')

    for build in (1, 2):
        checkout = event(read_api, project, ids[build, 'checkout'])
        top = checkout['frames'][0]
        assert_frame(top, 'cart.js', "throw new RangeError('quantity for '", 'validateQuantity')
        assert top['raw_frame']['function'] == ('f' if build == 1 else None)
        assert_frame(checkout['frames'][2], 'cart.js', 'cart.add(line.sku', 'checkout')

        settings = event(read_api, project, ids[build, 'settings'])
        native = settings['frames'][0]
        assert native['function'] == 'JSON.parse' and native['unresolved_reason'] == 'not_js'
        assert_frame(settings['frames'][1], 'settings.js', 'return JSON.parse(text);',
                     'parseSettings')
        assert_frame(settings['frames'][2], 'settings.js', 'const parsed = parseSettings(text);',
                     'loadSettings')

        receipt = event(read_api, project, ids[build, 'receipt'])
        assert_frame(receipt['frames'][0], 'format.js', 'price.amount.toFixed(2)')
    analytics = event(read_api, project, ids[2, 'analytics'])
    assert [f['function'] for f in analytics['frames'][:4]] == [
        'sendBatch', 'flush', 'track', 'trackClicks']
    assert_frame(analytics['frames'][0], 'analytics.js', 'return batch.events.length;')

    # Node's own frames (node:internal/...) are not in any map: they say so.
    tail = event(read_api, project, ids[1, 'checkout'])['frames'][-1]
    assert tail['abs_path'].startswith('node:internal') and tail['unresolved_reason'] == 'no_match'

    # Different minified names and columns, one bug: one issue per scenario across the builds.
    for scenario in ('checkout', 'settings'):
        one = event(read_api, project, ids[1, scenario])['issue_id']
        two = event(read_api, project, ids[2, scenario])['issue_id']
        assert one == two, scenario
        issue = read_api.get(f'/api/v1/issues/{one}')
        assert issue['event_count'] == 2
        assert {t['value'] for t in issue['tags']['release']} == {'shop@1', 'shop@2'}
    checkout_issue = event(read_api, project, ids[1, 'checkout'])['issue_id']
    issue = read_api.get(f'/api/v1/issues/{checkout_issue}')
    assert issue['culprit'] == 'validateQuantity in cart.js'
    assert issue['title'].startswith('RangeError: quantity for pear')

    # Each map counts the frames it resolved (the same number this test computes offline).
    releases = read_api.get(f'/api/v1/projects/{project.id}/releases')['releases']
    counts = {r['version']: r['sourcemaps'][0]['resolved_count'] for r in releases}
    assert counts == {'shop@1': resolved_frames_expected(1), 'shop@2': resolved_frames_expected(2)}
    assert counts['shop@1'] > 20


def test_unresolved_frames_say_why(http, read_api, project, live_server):
    upload_builds(http, project)
    stack = stacks(1)['checkout']
    no_maps = event(read_api, project, post_stack(http, project.key, stack, release='shop@9'))
    top = no_maps['frames'][0]
    assert top['resolved'] is False and top['unresolved_reason'] == 'no_maps'
    assert top['function'] == 'f' and top['abs_path'] == CDN + 'app1.min.js'
    assert top['lineno'] == 3 and 'context_line' in top and not top.get('pre_context')
    assert {f['unresolved_reason'] for f in no_maps['frames']} == {'no_maps'}

    # Build 2's file in build 1's release: the release has maps, none for this file.
    other = event(read_api, project,
                  post_stack(http, project.key, stacks(2)['checkout'], release='shop@1'))
    assert other['frames'][0]['unresolved_reason'] == 'no_match'

    # Without a release nothing is resolved or marked.
    plain = event(read_api, project, post_stack(http, project.key, stack))
    assert plain['frames'][0]['function'] == 'f' and 'resolved' not in plain['frames'][0]

    # A project that never uploaded a map is left alone: no frame is marked (and no event of
    # it is re-encoded on the writer).
    other_project = make_project('admin', 'acme')
    untouched = read_api.get(f'/api/v1/projects/{other_project.id}/events/'
                             + post_stack(http, other_project.key, stack, release='shop@1'))
    assert untouched['frames'][0]['function'] == 'f'
    assert 'unresolved_reason' not in untouched['frames'][0]

    # A Python event with a release is left as it is: its frames are not JavaScript.
    python = event(read_api, project, post_stack(http, project.key, PYTHON_STACK, release='shop@1'))
    assert python['frames'][0]['function'] == 'validate'
    assert 'unresolved_reason' not in python['frames'][0]


def test_maps_uploaded_after_an_event_apply_at_once(http, read_api, project, live_server):
    token = upload_builds(http, project)
    stack = stacks(1)['checkout']
    before = event(read_api, project, post_stack(http, project.key, stack, release='shop@late'))
    assert before['frames'][0]['unresolved_reason'] == 'no_maps'
    status, _ = upload_map(http, token, 'shop@late', 'app1.min.js', map_bytes(1),
                           url_prefix='~/static/js')
    assert status == 201
    # No waiting for the writer's release cache to expire: the upload told it.
    after = event(read_api, project, post_stack(http, project.key, stack, release='shop@late'))
    assert after['frames'][0]['function'] == 'validateQuantity'
    assert after['issue_id'] != before['issue_id']


def test_replaced_maps_and_repeated_stacks(http, read_api, project, live_server, services):
    token = make_upload_token(project)
    stack = stacks(1)['checkout']
    # The wrong build's map under build 1's URL: its two lines do not reach line 3.
    status, _ = upload_map(http, token, 'shop@1', CDN + 'app1.min.js', map_bytes(2))
    assert status == 201
    wrong = event(read_api, project, post_stack(http, project.key, stack, release='shop@1'))
    assert wrong['frames'][0]['unresolved_reason'] == 'out_of_range'
    status, _ = upload_map(http, token, 'shop@1', CDN + 'app1.min.js', map_bytes(1))
    assert status == 200  # replaced
    resolver = services.store.resolver
    hits = resolver.stack_hits
    right = event(read_api, project, post_stack(http, project.key, stack, release='shop@1'))
    assert right['frames'][0]['function'] == 'validateQuantity'
    assert resolver.stack_hits == hits  # new map content: a new cache key
    again = event(read_api, project, post_stack(http, project.key, stack, release='shop@1'))
    assert resolver.stack_hits == hits + 1  # the same stack again: remembered
    assert again['frames'] == right['frames'] and again['issue_id'] == right['issue_id']
    # The replacement counts from zero: only the two events resolved with it, 7 frames each.
    [release] = read_api.get(f'/api/v1/projects/{project.id}/releases')['releases']
    assert [m['resolved_count'] for m in release['sourcemaps']] == [14]
