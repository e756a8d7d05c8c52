"""`proliferate sourcemaps upload` as a build pipeline runs it: a subprocess against the real
server, on the committed fixture builds and on a directory of pairing edge cases."""

import base64
import os
import shutil
import subprocess
import sys

import pytest
from sourcemap_helpers import CDN
from sourcemap_helpers import MIN
from sourcemap_helpers import make_upload_token
from sourcemap_helpers import map_bytes
from sourcemap_helpers import minified_bytes
from sourcemap_helpers import post_stack
from sourcemap_helpers import stacks


def run_cli(args, cwd, env=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith('PROLIFERATE_')}
    environ.update(env or {})
    done = subprocess.run([sys.executable, '-m', 'proliferate', 'sourcemaps', 'upload', *args],
                          cwd=cwd, env=environ, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def releases(read_api, project):
    body = read_api.get(f'/api/v1/projects/{project.id}/releases')
    return {r['version']: sorted(m['url'] for m in r['sourcemaps']) for r in body['releases']}


def test_upload_the_fixture_builds_then_resolve(live_server, http, read_api, project, tmp_path):
    token = make_upload_token(project)
    workdir = tmp_path / 'ci'
    workdir.mkdir()
    code, out = run_cli(['--release', 'shop@1', '--url-prefix', '~/static/js',
                         '--server', live_server, '--token', token, str(MIN)], cwd=workdir)
    assert code == 0, out
    assert "Release 'shop@1' (created)" in out
    assert 'uploaded  ~/static/js/app1.min.js' in out and 'uploaded  ~/static/js/app2.min.js' in out
    assert '2 map(s) uploaded, 0 failed' in out
    # A client command: it opened no database where it ran.
    assert list(workdir.iterdir()) == []
    assert releases(read_api, project) == {
        'shop@1': ['~/static/js/app1.min.js', '~/static/js/app2.min.js']}

    # The browser loaded the file from the CDN; ~/static/js/... matches it on any host.
    event_id = post_stack(http, project.key, stacks(1)['checkout'], release='shop@1')
    frame = read_api.get(f'/api/v1/projects/{project.id}/events/{event_id}')['frames'][0]
    assert frame['function'] == 'validateQuantity' and frame['filename'] == 'cart.js'
    assert frame['raw_frame']['abs_path'] == CDN + 'app1.min.js'

    # Settings instead of flags; the second upload of the same files replaces them.
    code, out = run_cli(['--release', 'shop@1', '--url-prefix', '~/static/js', str(MIN)],
                        cwd=tmp_path, env={'PROLIFERATE_SERVER_URL': live_server,
                                           'PROLIFERATE_UPLOAD_TOKEN': token})
    assert code == 0, out
    assert "(exists)" in out and out.count('replaced  ~/static/js/') == 2


def test_pairing_rules(live_server, read_api, project, tmp_path):
    build = tmp_path / 'dist'
    (build / 'js' / 'chunks').mkdir(parents=True)
    # 1. The sourceMappingURL comment names a map elsewhere (a sibling folder).
    (build / 'maps').mkdir()
    source = minified_bytes(1).replace(b'sourceMappingURL=app1.min.js.map',
                                       b'sourceMappingURL=../maps/main.map')
    (build / 'js' / 'main.js').write_bytes(source)
    (build / 'maps' / 'main.map').write_bytes(map_bytes(1))
    # 2. No comment: <file>.map beside it.
    (build / 'js' / 'chunks' / 'b.js').write_bytes(b'console.log(1)\n')
    (build / 'js' / 'chunks' / 'b.js.map').write_bytes(map_bytes(2))
    # 3. An inline data: URL map.
    inline = base64.b64encode(map_bytes(2)).decode()
    (build / 'js' / 'inline.mjs').write_bytes(
        b'console.log(2)\n//# sourceMappingURL=data:application/json;base64,'
        + inline.encode() + b'\n')
    # 4. No map at all: skipped, not failed. 5. node_modules is not the app's build.
    (build / 'js' / 'vendor.js').write_bytes(b'console.log(3)\n')
    (build / 'node_modules').mkdir()
    (build / 'node_modules' / 'x.js').write_bytes(b'//# sourceMappingURL=x.js.map\n')
    token = make_upload_token(project)
    code, out = run_cli(['--release', '2.0', '--url-prefix', 'https://app.example.com/assets/',
                         '--server', live_server, '--token', token, str(build)], cwd=tmp_path)
    assert code == 0, out
    assert 'skipped   js/vendor.js: no sourceMappingURL comment and no .map file beside it' in out
    assert 'node_modules' not in out
    assert '3 map(s) uploaded, 0 failed, 1 file(s) without a map' in out
    assert releases(read_api, project) == {'2.0': [
        'https://app.example.com/assets/js/chunks/b.js',
        'https://app.example.com/assets/js/inline.mjs',
        'https://app.example.com/assets/js/main.js']}


@pytest.mark.slow
def test_refusals_are_reported(live_server, project, tmp_path):
    build = tmp_path / 'dist'
    shutil.copytree(MIN, build)
    (build / 'app2.min.js.map').write_text('{"version": 3, "sources": [], "mappings": 12}')
    token = make_upload_token(project)
    code, out = run_cli(['--release', '3.0', '--server', live_server, '--token', token,
                         str(build)], cwd=tmp_path)
    assert code == 1
    assert 'uploaded  ~/app1.min.js' in out
    assert 'FAILED    ~/app2.min.js: 400 sourcemap: map: mappings must be a string' in out
    # The public key is refused before anything is sent, a wrong token by the server.
    code, out = run_cli(['--release', '3.0', '--server', live_server, '--token', project.key,
                         str(build)], cwd=tmp_path)
    assert code == 1 and 'public ingest key' in out
    code, out = run_cli(['--release', '3.0', '--server', live_server, '--token', 'pru_nope',
                         str(build)], cwd=tmp_path)
    assert code == 1 and "release '3.0': 401 an upload token is required" in out
    code, out = run_cli(['--release', '3.0', '--token', token, str(build)], cwd=tmp_path)
    assert code == 1 and 'no server' in out
