"""Overload: measure the ingest ceiling of `proliferate serve`, then offer twice that rate for 60 s
and check that the server answers only 202 or 429 (never 5xx) and that its memory stays bounded.

    python bench/overload.py                       # defaults: 10 s ceiling, 60 s at 2x
    python bench/overload.py --writer-queue-size 500  # a small queue: backpressure shows as 429

Open loop: a dispatcher hands out send times at the target rate to a pool of keep-alive
connections, whether or not earlier requests were answered; sends that find every connection busy
wait in a bounded client backlog and are counted as not sent when it overflows. Loopback only.
"""

import argparse
import collections
import http.client
import json
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import events  # noqa: E402
import loadgen  # noqa: E402
import run_ingest  # noqa: E402

HOST = run_ingest.HOST
CONNECTIONS = 256
BACKLOG = 2048
# RSS may grow while caches and the writer queue fill in the first seconds; after that a bounded
# server stays flat: the peak of the second half may exceed the peak of the first by this much.
RSS_GROWTH_ALLOWED = 1.25


class OverloadServer(run_ingest.ProliferateServer):
    name = 'overload'

    def __init__(self, workdir, database_path, settings):
        super().__init__(workdir, database_path, threads=16, synchronous='FULL')
        self.settings = settings

    def env(self):
        env = super().env()
        env.update({f'PROLIFERATE_{k.upper()}': str(v) for k, v in self.settings.items()})
        return env


def rss_bytes(pid):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
    return 0


def measure_ceiling(server, source, seconds, batch, concurrency=32):
    """Closed loop, as fast as the server answers: acknowledged events per second."""
    result = loadgen.run_load(host=HOST, port=server.port, source=source, start=0,
                              events=10 ** 9, batch=batch, concurrency=concurrency, seconds=seconds)
    return result.acked / result.elapsed, result


def offer(server, source, rate, seconds, first_index, batch):  # noqa: C901 (one open-loop sender: every answer kind is counted where it arrives)
    """Open loop at `rate` requests/s for `seconds` -> (status counts, figures).

    Batch results count as statuses too: 'ok'/'duplicate' as 202, 'rate_limited' as 429.
    """
    statuses = collections.Counter()
    lock = threading.Lock()
    tickets = queue.Queue(maxsize=BACKLOG)
    stop = threading.Event()
    figures = {'offered': 0, 'not_sent': 0, 'connection_errors': 0}
    counter = iter(range(first_index, first_index + 10 ** 9))
    path = '/api/v1/errors/batch' if batch > 1 else '/api/v1/errors'

    def worker():
        connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
        try:
            while True:
                ticket = tickets.get()
                if ticket is None:
                    return
                with lock:
                    index = next(counter)
                _ids, body = source.body(list(range(index * batch, index * batch + batch)),
                                         batch=batch > 1)
                try:
                    connection.request('POST', path, body, {'Content-Type': 'application/json'})
                    response = connection.getresponse()
                    payload = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    connection.close()
                    connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
                    with lock:
                        figures['connection_errors'] += 1
                    continue
                with lock:
                    if batch > 1 and status == 202:
                        for result in json.loads(payload)['results']:
                            statuses[429 if result['status'] == 'rate_limited' else 202] += 1
                    else:
                        statuses[status] += batch
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(CONNECTIONS)]
    for thread in workers:
        thread.start()
    samples = []

    def sample():
        while not stop.is_set():
            samples.append((time.monotonic(), rss_bytes(server.process.pid)))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.monotonic()
    interval = batch / rate
    next_at = began
    while True:
        now = time.monotonic()
        if now - began >= seconds:
            break
        if now < next_at:
            time.sleep(min(next_at - now, 0.01))
            continue
        # Catch up in bursts when the client fell behind, so the offered rate holds.
        due = int((now - next_at) / interval) + 1
        for _ in range(due):
            figures['offered'] += 1
            try:
                tickets.put_nowait(True)
            except queue.Full:
                figures['not_sent'] += 1
        next_at += due * interval
    elapsed = time.monotonic() - began
    # What still waits in the client backlog was never sent: drop it. Let the requests in
    # flight finish, then stop the workers.
    while True:
        try:
            tickets.get_nowait()
        except queue.Empty:
            break
        figures['not_sent'] += 1
    for _ in workers:
        tickets.put(None)
    for thread in workers:
        thread.join(90)
    stop.set()
    sampler.join(5)
    figures['elapsed'] = elapsed
    figures['samples'] = samples
    return statuses, figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ceiling-seconds', type=float, default=10.0)
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--factor', type=float, default=2.0)
    parser.add_argument('--writer-queue-size', type=int, default=None)
    parser.add_argument('--batch', type=int, default=1, help='events per request')
    parser.add_argument('--rate-limit', type=int, default=None,
                        help='server default events per minute per project')
    args = parser.parse_args(argv)
    settings = {}
    if args.writer_queue_size:
        settings['writer_queue_size'] = args.writer_queue_size
    if args.rate_limit is not None:
        settings['rate_limit_per_minute'] = args.rate_limit
    with tempfile.TemporaryDirectory(prefix='proliferate-overload-') as workdir:
        server = OverloadServer(Path(workdir), Path(workdir) / 'overload.db', settings)
        server.start()
        try:
            source = events.EventSource(seed=11, api_key=server.api_key)
            ceiling, _result = measure_ceiling(server, source, args.ceiling_seconds, args.batch)
            rate = ceiling * args.factor
            print(f'ceiling: {ceiling:.0f} events/s (closed loop, 32 connections, '
                  f'{args.batch} event(s) a request, {args.ceiling_seconds:.0f} s); offering '
                  f'{rate:.0f} events/s for {args.seconds:.0f} s', flush=True)
            statuses, figures = offer(server, source, rate, args.seconds, 10 ** 7, args.batch)
            exit_code = server.stop()
        finally:
            if server.process.poll() is None:
                server.process.kill()
        print(server.log_tail(5) if exit_code != 0 else '', end='')
    samples = figures.pop('samples')
    half = len(samples) // 2
    first = max((rss for _t, rss in samples[:half]), default=0)
    second = max((rss for _t, rss in samples[half:]), default=0)
    answered = sum(statuses.values())
    server_errors = sum(n for s, n in statuses.items() if s >= 500)
    other = sum(n for s, n in statuses.items() if s not in (202, 429))
    print(f'offered: {figures["offered"]} requests of {args.batch} '
          f'({figures["offered"] * args.batch / figures["elapsed"]:.0f} events/s), '
          f'not sent (client backlog full): {figures["not_sent"]}, answered: {answered}')
    print('answers (events): ' + ', '.join(f'{s}: {n}' for s, n in sorted(statuses.items())))
    print('RSS every 10 s (MiB): ' + ' '.join(f'{rss / 2 ** 20:.0f}' for _t, rss in samples[::10]))
    print(f'5xx: {server_errors}, other than 202/429: {other}, '
          f'connection errors: {figures["connection_errors"]}')
    print(f'RSS: peak {first / 2 ** 20:.0f} MiB in the first half, {second / 2 ** 20:.0f} MiB '
          f'in the second; SIGTERM exit code {exit_code}')
    bounded = second <= first * RSS_GROWTH_ALLOWED
    ok = server_errors == 0 and other == 0 and bounded and exit_code == 0
    print('result: ' + ('ok' if ok else 'FAILED'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
