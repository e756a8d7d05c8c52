"""Crash durability: kill -9 `proliferate serve` under load at a random moment, restart it on the
same database, and check that every event_id that got a 202 is stored and integrity_check is ok.

    python bench/crash_rounds.py --rounds 20

tests/test_durability.py runs a few rounds of the same code in CI. Loopback only; each round is
bounded in time (load stops at the kill, the restart has START_TIMEOUT).
"""

import argparse
import http.client
import json
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import events  # noqa: E402
import run_ingest  # noqa: E402

HOST = run_ingest.HOST
# Each round's events get their own index range, so no event_id repeats across rounds.
ROUND_STRIDE = 10_000_000
BATCH = 20


class CrashServer(run_ingest.ProliferateServer):
    """The real `python -m proliferate serve`; the project is created once, before round 1."""

    name = 'crash'

    def __init__(self, workdir, database_path, api_key=None):
        super().__init__(workdir, database_path, threads=16, synchronous='FULL')
        self.api_key = api_key

    def prepare(self):
        if self.api_key is None:
            super().prepare()

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def load_until_killed(port, source, first_index, acked, stop, concurrency=8):
    """Threads posting single events and batches of BATCH; 202'd event_ids go to `acked`.

    A worker ends on its first connection error (the server is gone) or when `stop` is set.
    """
    counter = iter(range(first_index, first_index + ROUND_STRIDE, BATCH))
    lock = threading.Lock()

    def worker(number):
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            while not stop.is_set():
                with lock:
                    start = next(counter)
                batch = number % 2 == 1
                indexes = list(range(start, start + (BATCH if batch else 1)))
                ids, body = source.body(indexes, batch=batch)
                path = '/api/v1/errors/batch' if batch else '/api/v1/errors'
                connection.request('POST', path, body, {'Content-Type': 'application/json'})
                response = connection.getresponse()
                payload = response.read()
                if response.status != 202:
                    continue
                if batch:
                    got = [r['event_id'] for r in json.loads(payload)['results']
                           if r['status'] in ('ok', 'duplicate')]
                else:
                    got = ids
                with lock:
                    acked.extend(got)
        except (OSError, http.client.HTTPException):
            pass  # the kill: whatever had no answer was never acknowledged
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    return threads


def check_database(path, acked_ids):
    """Open the crashed database (SQLite recovers the WAL) -> (integrity, missing, duplicated)."""
    connection = sqlite3.connect(path)
    try:
        integrity = '; '.join(row[0] for row in connection.execute('PRAGMA integrity_check(20)'))
    finally:
        connection.close()
    stored = run_ingest.verify_stored(Path(path), acked_ids)
    return integrity, stored['missing'], stored['duplicated']


def run_round(workdir, database_path, api_key, number, rng, *, kill_window=(0.3, 1.5)):
    """One round: start, load, kill -9 at a random moment, check. -> figures dict."""
    server = CrashServer(workdir, database_path, api_key)
    server.start()
    source = events.EventSource(seed=number + 1, api_key=server.api_key)
    acked = []
    stop = threading.Event()
    threads = load_until_killed(server.port, source, number * ROUND_STRIDE, acked, stop)
    delay = rng.uniform(*kill_window)
    time.sleep(delay)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
    integrity, missing, duplicated = check_database(database_path, list(acked))
    return {'round': number, 'api_key': server.api_key, 'killed_after': round(delay, 3),
            'acked': len(acked), 'missing': missing, 'duplicated': duplicated,
            'integrity': integrity, 'exit': server.process.returncode}


def run_rounds(rounds, workdir, *, seed=None, report=None):
    """`rounds` rounds on one database, then a clean start and SIGTERM -> summary dict."""
    rng = random.Random(seed)  # noqa: S311 (when to kill, not a secret)
    database_path = Path(workdir) / 'crash.db'
    api_key = None
    results = []
    for number in range(rounds):
        figures = run_round(Path(workdir), database_path, api_key, number, rng)
        api_key = figures['api_key']
        results.append(figures)
        if report:
            report(figures)
    # The last crash must leave a database that starts, serves and stops cleanly.
    final = CrashServer(Path(workdir), database_path, api_key)
    final.start()
    exit_code = final.stop()
    all_acked = sum(r['acked'] for r in results)
    return {
        'rounds': rounds, 'acked': all_acked,
        'lost': sum(r['missing'] for r in results),
        'duplicated': sum(r['duplicated'] for r in results),
        'integrity_failures': sum(r['integrity'] != 'ok' for r in results),
        'final_exit': exit_code, 'results': results,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--seed', type=int, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='proliferate-crash-') as workdir:
        summary = run_rounds(
            args.rounds, workdir, seed=args.seed,
            report=lambda r: print(f'round {r["round"] + 1:2d}: killed after {r["killed_after"]:.2f} s, '
                                   f'{r["acked"]} acknowledged, {r["missing"]} missing, '
                                   f'integrity {r["integrity"]}', flush=True))
    print(f'rounds: {summary["rounds"]}, events acknowledged: {summary["acked"]}, '
          f'lost: {summary["lost"]}, duplicated: {summary["duplicated"]}, '
          f'integrity failures: {summary["integrity_failures"]}, '
          f'clean restart exit code: {summary["final_exit"]}')
    ok = (summary['lost'] == 0 and summary['duplicated'] == 0
          and summary['integrity_failures'] == 0 and summary['final_exit'] == 0)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
