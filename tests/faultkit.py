"""What the fault tests share: a real `python -m proliferate serve` in a subprocess, a bounded
load of single events from a few threads that records every answer and every acknowledged
event_id, a signed-in page reader, and the check that every acknowledged event is stored once."""

import collections
import html
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import factories

from proliferate import db
from proliferate.models import Event

ROOT = Path(__file__).resolve().parent.parent


def unused_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def request(base, method, path, body=None, timeout=30, headers=None, opener=None):
    """-> (status, headers, text)."""
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    sent = {'Content-Type': 'application/json'} if data is not None else {}
    sent.update(headers or {})
    req = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with (opener or urllib.request.build_opener()).open(req, timeout=timeout) as response:
            return response.status, response.headers, response.read().decode('utf-8', 'replace')
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode('utf-8', 'replace')


class Served:
    """`python -m proliferate serve` on a free port with extra PROLIFERATE_* settings."""

    def __init__(self, url, tmp_path, name='server', **settings):
        self.port = unused_port()
        self.base = f'http://127.0.0.1:{self.port}'
        self.log_path = tmp_path / f'{name}.log'
        env = {**os.environ, 'PROLIFERATE_DATABASE_URL': url}
        env.update({f'PROLIFERATE_{key.upper()}': str(value) for key, value in settings.items()})
        env.pop('PROLIFERATE_TEST_DATABASE_URL', None)
        self.log = open(self.log_path, 'wb')  # closed by stop()
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'proliferate', 'serve', '--port', str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, deadline=30):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            assert self.process.poll() is None, self.output()
            try:
                if request(self.base, 'GET', '/healthz', timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f'server did not start:\n{self.output()}')

    def health(self):
        status, _headers, text = request(self.base, 'GET', '/healthz', timeout=10)
        return status, json.loads(text)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors='replace')

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
        return self.process.returncode


class Load:
    """Single events from `threads` threads until stop() or `seconds`, at most `most` requests:
    every answer's status (with its time) and every acknowledged event_id."""

    def __init__(self, base, key, *, threads=4, seconds=60, most=20000, pause=0.0):
        self.base = base
        self.key = key
        self.answers = []  # (monotonic time, status, Retry-After)
        self.acked = []
        self.errors = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._left = most
        self._end = time.monotonic() + seconds
        self.pause = pause
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self):
        for thread in self._threads:
            thread.start()
        return self

    def _run(self):
        while not self._stop.is_set() and time.monotonic() < self._end:
            with self._lock:
                if self._left <= 0:
                    return
                self._left -= 1
            event = factories.event(self.key, exception={
                'type': 'DiskError', 'message': 'boom', 'stack': factories.STACK})
            try:
                status, headers, _text = request(self.base, 'POST', '/api/v1/errors', event,
                                                 timeout=60)
            except OSError as error:  # a refused or reset connection: counted, never hidden
                with self._lock:
                    self.errors[type(error).__name__] += 1
                time.sleep(0.05)
                continue
            with self._lock:
                self.answers.append((time.monotonic(), status, headers.get('Retry-After')))
                if status == 202:
                    self.acked.append(event['event_id'])
            if status != 202:
                time.sleep(0.05)  # a client backing off a little, as an SDK would
            elif self.pause:
                time.sleep(self.pause)

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(90)
        return self

    def statuses(self, since=None, until=None):
        with self._lock:
            return collections.Counter(status for when, status, _retry in self.answers
                                       if (since is None or when >= since)
                                       and (until is None or when < until))

    def first(self, status, since):
        """The time of the first answer with status at or after since, or None."""
        with self._lock:
            return next((when for when, seen, _retry in self.answers
                         if seen == status and when >= since), None)

    def wait_for(self, status, since, deadline):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            when = self.first(status, since)
            if when is not None:
                return when
            time.sleep(0.02)
        return None

    def without_retry_after(self):
        with self._lock:
            return [(status, retry) for _when, status, retry in self.answers
                    if status in (429, 503) and not retry]


def stored_once(url, acked):
    """-> (missing, duplicated): acknowledged event_ids not in the database, and stored twice."""
    db.open_database(url)
    with db.database.connection_context():
        found = collections.Counter(
            row[0] for row in Event.select(Event.event_id).tuples().iterator())
    missing = [event_id for event_id in acked if found[event_id] == 0]
    duplicated = [event_id for event_id in acked if found[event_id] > 1]
    return missing, duplicated


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in(base, email, password=factories.PASSWORD):
    """A urllib opener with a signed-in session (the login form, as a browser posts it)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    _status, _headers, text = request(base, 'GET', '/login', opener=opener)
    token = html.unescape(_CSRF.search(text).group(1))
    form = urllib.parse.urlencode({'email': email, 'password': password, 'csrf_token': token})
    status, _headers, text = request(
        base, 'POST', '/login', form.encode(), opener=opener,
        headers={'Content-Type': 'application/x-www-form-urlencoded', 'Origin': base})
    assert status == 200, (status, text[:500])  # the 303 is followed to the first page
    return opener
