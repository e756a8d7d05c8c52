"""The suite's clients: PageClient, a cookie-keeping browser stand-in over falcon's TestClient
(it keeps the cookies a real browser would, reads the CSRF token off the last page, posts forms);
HttpClient, urllib against the live server; and starting and stopping that live server (Waitress
on a free loopback port). The real browser runs in tests/test_e2e_browser_pages.py.
"""

import html
import json
import re
import threading
import urllib.error
import urllib.request
from urllib.parse import urlencode

import waitress
from factories import PASSWORD
from waitress import wasyncore

FORM = 'application/x-www-form-urlencoded'
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class PageClient:
    def __init__(self, client, remote_addr='127.0.0.1'):
        self.client = client
        self.cookies = {}
        self.csrf = None
        self.remote_addr = remote_addr

    def request(self, method, path, *, headers=None, body=None, follow=False, protocol='http'):
        for _hop in range(6):
            result = self.client.simulate_request(
                method, path, cookies=dict(self.cookies), headers=headers or {}, body=body,
                remote_addr=self.remote_addr, protocol=protocol)
            for name, cookie in result.cookies.items():
                if cookie.value == '':
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = cookie.value
            found = _CSRF.search(result.text or '') if 'html' in (
                result.headers.get('content-type') or '') else None
            if found:
                self.csrf = html.unescape(found.group(1))
            if not (follow and result.status_code in (301, 302, 303, 307)):
                return result
            method, path, body = 'GET', result.headers['location'], None
        raise AssertionError('too many redirects')

    def get(self, path, expect=200, **kwargs):
        result = self.request('GET', path, **kwargs)
        if expect is not None:
            assert result.status_code == expect, (path, result.status, result.text[:2000])
        return result

    def post(self, path, fields=None, *, csrf=True, headers=None, **kwargs):
        fields = dict(fields or {})
        if csrf:
            if self.csrf is None:
                raise AssertionError('no page with a CSRF token was loaded yet')
            fields.setdefault('csrf_token', self.csrf)
        return self.request('POST', path, body=urlencode(fields, doseq=True),
                            headers={'Content-Type': FORM, **(headers or {})}, **kwargs)

    def login(self, email, password=PASSWORD):
        """Sign in and load the page it leads to (as a browser does: that page has the new
        session's CSRF token). Returns the login POST's own response."""
        self.get('/login', expect=None)
        result = self.post('/login', {'email': email, 'password': password})
        assert result.status_code == 303, (result.status, result.text[:1000])
        self.get(result.headers['location'], follow=True)
        return result

    def logout(self):
        """The sign-out button of a page (which carries the session's CSRF token)."""
        self.get('/account')
        result = self.post('/logout')
        assert result.status_code == 303, result.status
        return result


def send(client, *events):
    """Events through the real ingest path (batch endpoint), each acknowledged."""
    result = client.simulate_post('/api/v1/errors/batch', json=list(events))
    assert result.status_code == 202, result.text
    statuses = [r['status'] for r in result.json['results']]
    assert statuses == ['ok'] * len(events), result.json
    return [e['event_id'] for e in events]


class HttpClient:
    """A tiny urllib client for the live server: (status, headers, parsed JSON or text)."""

    def __init__(self, base_url, token=None):
        self.base_url = base_url
        self.token = token

    def request(self, method, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {'Content-Type': 'application/json'} if data is not None else {}
        if self.token:
            all_headers['Authorization'] = f'Bearer {self.token}'
        all_headers.update(headers or {})
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, reply_headers, content = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, reply_headers, content = error.code, error.headers, error.read()
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = content.decode('utf-8', 'replace')
        return status, reply_headers, parsed

    def get(self, path, **kwargs):
        status, _headers, body = self.request('GET', path, **kwargs)
        assert status == 200, (path, status, body)
        return body

    def post(self, path, body=None, **kwargs):
        return self.request('POST', path, body, **kwargs)


# -- the live server ------------------------------------------------------------------------------

def start_server(app, **options):
    """Waitress serving app on a free loopback port, its loop on a thread: (server, thread)."""
    server = waitress.create_server(app, **{'host': '127.0.0.1', 'port': 0, 'threads': 8,
                                            **options})
    return server, start_loop(server)


def start_loop(server):
    thread = threading.Thread(target=run_server, args=(server,), daemon=True)
    thread.start()
    return thread


def run_server(server):
    try:
        server.run()
    except OSError:
        # Only an error before the stop is a failure: stop_server closes the sockets the loop
        # would select on next.
        if not getattr(server, 'stopping', False):
            raise


def stop_server(server, thread, timeout=5):
    """Stop in this order: the listener (no new connections), then the worker threads finish
    what they run, then every channel and the trigger close, each close inside the loop's own
    thread (closing sockets under a running select() from outside races with it).

    A worker thread that has just written a response wakes the loop through the trigger's pipe;
    closing the trigger before the workers are done made that wake-up write to a closed
    descriptor (EBADF in the trigger, seen under CPU load), or to whatever file reused its
    number."""
    listener_closed = threading.Event()

    def close_listener():
        wasyncore.dispatcher.close(server)  # the listening socket only; the trigger stays open
        listener_closed.set()

    def close_all():
        for channel in list(server._map.values()):
            channel.close()

    server.trigger.pull_trigger(close_listener)
    listener_closed.wait(timeout)
    server.task_dispatcher.shutdown(cancel_pending=False, timeout=timeout)
    server.stopping = True
    server.trigger.pull_trigger(close_all)
    thread.join(timeout)
