"""Stdlib-only HTTP load generator for the ingest API: threads with keep-alive connections.

Loopback only, and bounded twice: by a number of events and by a deadline. It records what the
server acknowledged so the runner can check that every acknowledged event was stored.
"""

import http.client
import itertools
import json
import threading
import time
from dataclasses import dataclass
from dataclasses import field

LOOPBACK = ('127.0.0.1', 'localhost', '::1')
# An event still unacknowledged this long after the deadline is given up (and reported).
RETRY_GRACE_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 2.0
# Statuses of a batch result that mean "stored" (a retried event may come back as a duplicate).
STORED_STATUSES = ('ok', 'duplicate')
RETRY_STATUSES = ('rate_limited',)


@dataclass
class LoadResult:
    requests: int = 0               # HTTP exchanges, retries included
    acked_ids: list = field(default_factory=list)
    latencies: list = field(default_factory=list)  # seconds, one per 202 response
    backpressure: int = 0           # 429/503 answers (each was retried)
    connection_errors: int = 0      # resets and disconnects (each was retried)
    rejected: dict = field(default_factory=dict)   # reason -> events refused (not retried)
    given_up: int = 0               # events never acknowledged before the grace period ran out
    elapsed: float = 0.0            # first request to last response, seconds

    @property
    def acked(self):
        return len(self.acked_ids)

    def merge(self, other):
        self.requests += other.requests
        self.acked_ids.extend(other.acked_ids)
        self.latencies.extend(other.latencies)
        self.backpressure += other.backpressure
        self.connection_errors += other.connection_errors
        for reason, count in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + count
        self.given_up += other.given_up


def percentile(values, fraction):
    """Nearest-rank percentile of values (0 < fraction <= 1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def retry_after_seconds(header, attempt):
    """How long to wait after a 429/503: the server's Retry-After, else exponential, capped."""
    try:
        wait = float(header)
    except (TypeError, ValueError):
        wait = 0.05 * (2 ** min(attempt, 6))
    return min(max(wait, 0.01), MAX_BACKOFF_SECONDS)


def read_acks(payload, ids, *, batch):
    """(acknowledged ids, ids to retry, {reason: count} refused) from one 202 response body.

    A batch answers per event: 'ok' and 'duplicate' are stored, 'rate_limited' is backpressure
    (retried), anything else is refused.
    """
    data = json.loads(payload)
    if not batch:
        if data.get('event_id') != ids[0]:
            return [], [], {f'202 with event_id {data.get("event_id")!r}': 1}
        return list(ids), [], {}
    acked = []
    retry = []
    rejected = {}
    for result in data.get('results', []):
        status = result.get('status')
        if status in STORED_STATUSES:
            acked.append(result.get('event_id'))
        elif status in RETRY_STATUSES:
            retry.append(result.get('event_id'))
        else:
            reason = f'{status}: {result.get("reason", "")}'
            rejected[reason] = rejected.get(reason, 0) + 1
    missing = len(ids) - len(acked) - len(retry) - sum(rejected.values())
    if missing:
        rejected['no result in the batch response'] = missing
    return acked, retry, rejected


def run_load(*, host, port, source, start, events, batch, concurrency, seconds):  # noqa: C901 (one request loop: every answer kind is counted where it arrives)
    """Send events start..start+events-1 (by `source`) in requests of `batch` events.

    batch == 1 posts single events to /api/v1/errors; batch > 1 posts arrays to
    /api/v1/errors/batch. Stops taking new requests at `events` or after `seconds`. `port` may be
    a list: connection i goes to port i % len, as a load balancer spreads keep-alive connections
    over several server processes.
    """
    if host not in LOOPBACK:
        raise ValueError(f'load goes to loopback only, not {host!r}')
    path = '/api/v1/errors/batch' if batch > 1 else '/api/v1/errors'
    requests = itertools.count()  # next() on it is atomic under the GIL: no lock needed
    request_count = -(-events // batch)
    began = time.monotonic()
    deadline = began + seconds
    results = [LoadResult() for _ in range(concurrency)]
    ports = list(port) if isinstance(port, (list, tuple)) else [port]

    def worker(result, port):
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            while time.monotonic() < deadline:
                number = next(requests)
                if number >= request_count:
                    return
                first = start + number * batch
                indexes = range(first, min(first + batch, start + events))
                connection = send(connection, result, list(indexes), port)
        finally:
            connection.close()

    def send(connection, result, indexes, port):
        attempt = 0
        while indexes:
            attempt += 1
            if time.monotonic() > deadline + RETRY_GRACE_SECONDS:
                result.given_up += len(indexes)
                return connection
            ids, body = source.body(indexes, batch=batch > 1)
            sent = time.perf_counter()
            result.requests += 1
            try:
                connection.request('POST', path, body, {'Content-Type': 'application/json'})
                response = connection.getresponse()
                payload = response.read()
            except (http.client.HTTPException, OSError):
                # The server may have committed before the connection broke; the retry is safe
                # because it dedupes by event_id.
                result.connection_errors += 1
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=30)
                time.sleep(retry_after_seconds(None, attempt))
                continue
            if response.status == 202:
                result.latencies.append(time.perf_counter() - sent)
                acked, retry, rejected = read_acks(payload, ids, batch=batch > 1)
                result.acked_ids.extend(acked)
                for reason, count in rejected.items():
                    result.rejected[reason] = result.rejected.get(reason, 0) + count
                if not retry:
                    return connection
                result.backpressure += 1
                retry = set(retry)
                indexes = [index for index, eid in zip(indexes, ids, strict=False) if eid in retry]
            elif response.status in (429, 503):
                result.backpressure += 1
            else:
                reason = f'HTTP {response.status}: {payload[:200].decode("utf-8", "replace")}'
                result.rejected[reason] = result.rejected.get(reason, 0) + len(ids)
                return connection
            time.sleep(retry_after_seconds(response.getheader('Retry-After'), attempt))
        return connection

    threads = [threading.Thread(target=worker, args=(r, ports[i % len(ports)]), name=f'load-{i}',
                                daemon=True)
               for i, r in enumerate(results)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = LoadResult()
    for result in results:
        total.merge(result)
    total.elapsed = time.monotonic() - began
    return total
