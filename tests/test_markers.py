"""The skip-or-fail decision for the `browser` and `network` markers, and the registry probe
against a loopback server and a closed port."""

import http.server
import pathlib
import socket
import threading

import markers

URLS = (('PyPI', 'https://pypi.example/simple/'), ('npm', 'https://npm.example/'))


def never(*_args):
    raise AssertionError('asked about a piece the markers do not need')


def test_nothing_is_asked_for_an_unmarked_test():
    assert markers.decide({'slow'}, ci=True, chromium=never, registry=never, urls=URLS) is None


def test_a_missing_chromium_skips_with_its_reason_and_fails_under_ci():
    def missing():
        return 'Chromium not found at /nowhere'

    assert markers.decide({'browser'}, ci=False, chromium=missing, registry=never, urls=URLS) == (
        'skip', 'Chromium not found at /nowhere')
    action, reason = markers.decide({'browser'}, ci=True, chromium=missing, registry=never, urls=URLS)
    assert action == 'fail' and reason.startswith('Chromium not found at /nowhere') and 'CI=true' in reason


def test_network_asks_every_registry_and_names_the_unreachable_one():
    asked = []

    def registry(name, url):
        asked.append(name)
        return f'{name} registry unreachable' if name == 'npm' else None

    verdict = markers.decide({'network', 'browser'}, ci=False, chromium=lambda: None,
                             registry=registry, urls=URLS)
    assert verdict == ('skip', 'npm registry unreachable')
    assert asked == ['PyPI', 'npm']
    assert markers.decide({'network'}, ci=False, chromium=never, registry=lambda *_: None,
                          urls=URLS) is None


def test_ci_is_read_from_the_environment():
    assert markers.is_ci({'CI': 'true'}) and markers.is_ci({'CI': '1'})
    assert not markers.is_ci({}) and not markers.is_ci({'CI': 'false'})


def test_chromium_problem_needs_an_executable_file(tmp_path):
    script = tmp_path / 'chromium'
    assert 'not found at' in markers.chromium_problem(str(script))
    script.write_text('#!/bin/sh\n')
    assert markers.chromium_problem(str(script)) is not None  # not executable
    script.chmod(0o755)
    assert markers.chromium_problem(str(script)) is None
    assert markers.chromium_path({'PROLIFERATE_CHROMIUM': str(script)}) == str(script)


def test_registry_probe_is_bounded_and_any_http_answer_counts(tmp_path):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}/simple/'
        assert markers.registry_problem.__wrapped__('PyPI', url, timeout=2) is None
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        closed = f'http://127.0.0.1:{sock.getsockname()[1]}/'
    problem = markers.registry_problem.__wrapped__('npm', closed, timeout=2)
    assert problem.startswith(f'npm registry unreachable ({closed}:')


def test_only_conftest_imports_the_session_browser():
    """A module that imports the chromium_browser fixture gets a second session fixture of its
    own, and its Playwright, left running, breaks every later browser test ("Sync API inside
    the asyncio loop"). conftest.py provides it to every module."""
    here = pathlib.Path(__file__).parent
    importers = [path.name for path in here.glob('test_*.py')
                 if path.name != 'test_markers.py' and 'import chromium_browser' in path.read_text()]
    assert importers == []
