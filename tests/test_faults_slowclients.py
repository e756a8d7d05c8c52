"""Slow and idle clients: 500 connections sending a request a byte a second and 500 that open
and say nothing do not stop a normal client's events from being accepted, at the default
settings. Bounded: the flood lasts at most FLOOD_SECONDS, on loopback only."""

import asyncio
import resource
import statistics
import threading
import time
from pathlib import Path

import pytest
from factories import make_project
from faultkit import Served
from faultkit import request
from faultkit import stored_once

from proliferate import db

pytestmark = pytest.mark.slow

SLOW = 500
SILENT = 500
EVENTS = 200
FLOOD_SECONDS = 30
# A request that never ends: one byte of it a second.
DRIP = (b'POST /api/v1/errors HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
        b'Content-Length: 100000\r\n\r\n' + b'{' * 400)


class Flood:
    """SLOW dripping and SILENT idle connections to port, from an asyncio loop on a thread."""

    def __init__(self, port, slow=SLOW, silent=SILENT, seconds=FLOOD_SECONDS):
        self.port = port
        self.slow = slow
        self.silent = silent
        self.seconds = seconds
        self.opened = 0
        self.closed_by_server = 0
        self._stop = None
        self._loop = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _main(self):
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._flood())
        self._loop.close()

    async def _flood(self):
        self._stop = asyncio.Event()
        end = time.monotonic() + self.seconds
        tasks = [asyncio.ensure_future(self._one(index < self.slow, end))
                 for index in range(self.slow + self.silent)]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, drips, end):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection('127.0.0.1', self.port), timeout=max(0.1, end - time.monotonic()))
        except (TimeoutError, OSError):
            return
        self.opened += 1
        try:
            position = 0
            while time.monotonic() < end and not self._stop.is_set():
                if drips and position < len(DRIP):
                    writer.write(DRIP[position:position + 1])
                    position += 1
                    await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1024), timeout=1.0)
                except TimeoutError:
                    continue
                if not data:  # the server closed it
                    self.closed_by_server += 1
                    return
        except OSError:
            self.closed_by_server += 1
        finally:
            writer.close()

    def stop(self):
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self.seconds + 30)


def rss_mib(pid):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) // 1024
    return None


def enough_descriptors(count):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= count


def test_slow_and_idle_connections_do_not_starve_other_clients(tmp_path):
    import factories

    assert enough_descriptors(SLOW + SILENT + 200), 'the test needs ~1,200 file descriptors'
    url = f'sqlite:///{tmp_path}/p.db'
    db.open_database(url)
    db.migrate()
    project = make_project()
    db.database.close()
    server = Served(url, tmp_path).wait_ready()
    flood = None
    try:
        flood = Flood(server.port).start()
        deadline = time.monotonic() + 10
        while flood.opened < SLOW + SILENT and time.monotonic() < deadline:
            time.sleep(0.1)
        opened = flood.opened
        latencies = []
        answers = []
        acked = []
        end = time.monotonic() + FLOOD_SECONDS - 5
        for _ in range(EVENTS):
            if time.monotonic() > end:
                break
            event = factories.event(project.key)
            started = time.monotonic()
            try:
                status, _headers, _text = request(server.base, 'POST', '/api/v1/errors', event,
                                                  timeout=5)
            except OSError as error:
                answers.append(type(error).__name__)
                continue
            latencies.append(time.monotonic() - started)
            answers.append(status)
            if status == 202:
                acked.append(event['event_id'])
        status, health = server.health()
        rss = rss_mib(server.process.pid)
    finally:
        # Stopped with the flood still connected: the ordered stop must cope with them all.
        code = server.stop()
        if flood is not None:
            flood.stop()
    missing, _twice = stored_once(url, acked)
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else None
    print(f'slow clients: {opened} flood connections open ({SLOW} dripping, {SILENT} silent); '
          f'a normal client got {len(acked)} of {EVENTS} events accepted, median '
          f'{statistics.median(latencies) * 1000 if latencies else 0:.0f} ms, p99 '
          f'{(p99 or 0) * 1000:.0f} ms; other answers: '
          f'{[a for a in answers if a != 202][:10]}; missing {len(missing)}; '
          f'flood connections the server closed: {flood.closed_by_server}; server RSS {rss} MiB')
    assert opened == SLOW + SILENT
    assert len(acked) == EVENTS and not missing
    assert p99 < 1.0
    assert status == 200, health
    assert code == 0, server.output()[-3000:]
