"""serve()'s Waitress settings: a trusted reverse proxy's headers are believed, others' not."""

import json
import urllib.request

import falcon
from pageclient import start_loop
from pageclient import stop_server

from proliferate.config import Config
from proliferate.server import create_server


class Echo:
    def on_get(self, req, resp):
        resp.media = {'scheme': req.scheme, 'client': req.remote_addr}


def seen_through(config):
    app = falcon.App()
    app.add_route('/', Echo())
    server = create_server(config, app)
    thread = start_loop(server)
    try:
        request = urllib.request.Request(
            f'http://127.0.0.1:{server.effective_port}/',
            headers={'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '203.0.113.9'})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    finally:
        stop_server(server, thread)


def test_headers_of_a_trusted_proxy_are_believed(tmp_path):
    config = Config(database_url=f'sqlite:///{tmp_path}/p.db', port=0, trusted_proxy='127.0.0.1')
    assert seen_through(config) == {'scheme': 'https', 'client': '203.0.113.9'}


def test_forwarded_headers_are_ignored_without_a_trusted_proxy(tmp_path):
    config = Config(database_url=f'sqlite:///{tmp_path}/p.db', port=0)
    assert seen_through(config) == {'scheme': 'http', 'client': '127.0.0.1'}
