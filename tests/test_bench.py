"""The ingest benchmark (bench/) keeps working: its generator, its load loop and one tiny real run.

Never asserts on speed: the run is tiny and the machine is shared. It asserts that the runner
completes and that every acknowledged event was stored exactly once.
"""

import collections
import json
import re
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC
from datetime import datetime
from pathlib import Path

import falcon
import pytest
import waitress

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / 'bench'
sys.path.insert(0, str(BENCH))

import events  # noqa: E402
import loadgen  # noqa: E402
import run_ingest  # noqa: E402

API_KEY = 'pk_test_bench_key_0123456789abcdef'


@pytest.fixture(scope='module')
def source():
    return events.EventSource(seed=7, api_key=API_KEY)


def test_events_are_deterministic_per_seed():
    now = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
    one = events.EventSource(seed=3, api_key=API_KEY, now=now, pool_size=64)
    same = events.EventSource(seed=3, api_key=API_KEY, now=now, pool_size=64)
    other = events.EventSource(seed=4, api_key=API_KEY, now=now, pool_size=64)
    assert [one.event(i) for i in range(50)] == [same.event(i) for i in range(50)]
    assert one.event(0) != other.event(0)


def test_events_have_the_documented_shape_and_size(source):
    sizes = []
    for index in range(200):
        event_id, raw = source.event(index)
        event = json.loads(raw)
        sizes.append(len(raw))
        assert event['event_id'] == event_id
        assert re.fullmatch(r'[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}', event_id)
        assert event['api_key'] == API_KEY
        assert event['type'] == 'exception'
        assert event['exception']['type'] == 'TypeError'
        assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', event['timestamp'])
        frames = event['exception']['stack'].split('\n')[1:]
        assert len(frames) == 10
        assert all(re.fullmatch(r'    at \S+ \(https://\S+\.js:\d+:\d+\)', f) for f in frames)
        assert event['breadcrumbs'] and event['user']['id'] and event['account']['id']
        assert set(event) >= {'release', 'environment', 'url', 'user_agent', 'extra',
                              'session_id', 'window_id', 'level'}
    assert 1800 <= sum(sizes) / len(sizes) <= 2600


def test_events_spread_over_fingerprints_users_and_accounts(source):
    fingerprints = set()
    users = set()
    accounts = set()
    ids = set()
    for index in range(20000):
        event_id, raw = source.event(index)
        event = json.loads(raw)
        top = tuple(line.split(' (')[0] for line in event['exception']['stack'].split('\n')[1:4])
        fingerprints.add(top)
        users.add(event['user']['id'])
        accounts.add(event['account']['id'])
        ids.add(event_id)
    assert len(fingerprints) == events.FINGERPRINT_COUNT
    assert 950 <= len(users) <= events.USER_COUNT
    assert len(accounts) == events.ACCOUNT_COUNT
    assert len(ids) == 20000


def stacks_and_users(source, count):
    stacks = collections.Counter()
    users = set()
    for index in range(count):
        event = json.loads(source.event(index)[1])
        stacks[(event['release'], event['exception']['stack'])] += 1
        users.add(event['user']['id'])
    return stacks, users


def test_the_realistic_mix_repeats_one_stack_per_error_and_release():
    source = events.EventSource(seed=5, api_key=API_KEY, mix='realistic')
    stacks, users = stacks_and_users(source, 5000)
    repeated = {stack: n for stack, n in stacks.items() if n > 1}
    once = sum(1 for n in stacks.values() if n == 1)
    # 50 errors x 3 releases, each with one stack text; about a tenth seen once.
    assert len(repeated) == events.FINGERPRINT_COUNT * 3
    assert 0.07 <= once / 5000 <= 0.13
    assert len({release for release, _stack in repeated}) == 3
    assert len(users) > 900


def test_the_unique_mix_never_repeats_a_stack_and_varies_every_event(source):
    stacks, users = stacks_and_users(source, 5000)
    assert len(stacks) == 5000
    assert len(users) > 900
    first = json.loads(source.event(0)[1])
    again = json.loads(source.event(len(source._templates) * 7)[1])
    assert first['session_id'] != again['session_id'] and first['event_id'] != again['event_id']


def test_batch_body_is_an_array_of_the_same_events(source):
    ids, body = source.body([10, 11, 12], batch=True)
    assert [e['event_id'] for e in json.loads(body)] == ids
    assert ids == [source.event(i)[0] for i in (10, 11, 12)]
    single_ids, single = source.body([10], batch=False)
    assert json.loads(single) == json.loads(body)[0] and single_ids == ids[:1]


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert loadgen.percentile(values, 0.50) == 50
    assert loadgen.percentile(values, 0.99) == 99
    assert loadgen.percentile([5.0], 0.99) == 5.0
    assert loadgen.percentile([], 0.5) is None


def test_retry_after_is_honoured_within_a_cap():
    assert loadgen.retry_after_seconds('1', 1) == 1.0
    assert loadgen.retry_after_seconds('120', 1) == loadgen.MAX_BACKOFF_SECONDS
    assert loadgen.retry_after_seconds(None, 1) < loadgen.retry_after_seconds(None, 3)


def test_read_acks_sorts_stored_retried_and_refused_events():
    payload = json.dumps({'processed': 4, 'results': [
        {'event_id': 'a', 'status': 'ok'},
        {'event_id': 'b', 'status': 'rejected', 'reason': 'Invalid API key'},
        {'event_id': 'c', 'status': 'rate_limited', 'reason': 'rate limit reached'},
    ]})
    acked, retry, rejected = loadgen.read_acks(payload, ['a', 'b', 'c', 'd'], batch=True)
    assert acked == ['a']
    assert retry == ['c']
    assert rejected == {'rejected: Invalid API key': 1, 'no result in the batch response': 1}
    acked, retry, rejected = loadgen.read_acks('{"event_id": "x"}', ['y'], batch=False)
    assert acked == [] and retry == [] and sum(rejected.values()) == 1


def test_load_goes_to_loopback_only(source):
    with pytest.raises(ValueError):
        loadgen.run_load(host='example.com', port=80, source=source, start=0, events=1,
                         batch=1, concurrency=1, seconds=1)


class Flaky:
    """Answers 429 (Retry-After: 0) to the first try of every event, 202 to the second."""

    def __init__(self):
        self.seen = set()
        self.stored = []
        self.lock = threading.Lock()

    def on_post(self, req, resp):
        event = req.get_media()
        with self.lock:
            first = event['event_id'] not in self.seen
            self.seen.add(event['event_id'])
            if not first:
                self.stored.append(event['event_id'])
        if first:
            resp.status = falcon.HTTP_429
            resp.set_header('Retry-After', '0')
            return
        resp.status = falcon.HTTP_202
        resp.media = {'event_id': event['event_id']}

    def on_post_batch(self, req, resp):
        results = []
        for event in req.get_media():
            with self.lock:
                first = event['event_id'] not in self.seen
                self.seen.add(event['event_id'])
                if not first:
                    self.stored.append(event['event_id'])
            results.append({'event_id': event['event_id'],
                            'status': 'rate_limited' if first else 'ok'})
        resp.status = falcon.HTTP_202
        resp.set_header('Retry-After', '0')
        resp.media = {'processed': len(results), 'results': results}


@pytest.fixture
def flaky_server():
    flaky = Flaky()
    app = falcon.App()
    app.add_route('/api/v1/errors', flaky)
    app.add_route('/api/v1/errors/batch', flaky, suffix='batch')
    server = waitress.create_server(app, host='127.0.0.1', port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield flaky, server.effective_port
    server.task_dispatcher.shutdown()
    server.close()
    thread.join(timeout=10)


@pytest.mark.slow
def test_backpressure_is_counted_and_the_same_event_retried(source, flaky_server):
    flaky, port = flaky_server
    result = loadgen.run_load(host='127.0.0.1', port=port, source=source, start=0, events=30,
                              batch=1, concurrency=3, seconds=20)
    assert result.backpressure == 30
    assert result.requests == 60
    assert sorted(result.acked_ids) == sorted(flaky.stored)
    assert sorted(result.acked_ids) == sorted(source.event(i)[0] for i in range(30))
    assert len(result.latencies) == 30


@pytest.mark.slow
def test_rate_limited_events_of_a_batch_are_retried(source, flaky_server):
    flaky, port = flaky_server
    result = loadgen.run_load(host='127.0.0.1', port=port, source=source, start=100, events=25,
                              batch=10, concurrency=2, seconds=20)
    assert result.requests == 6  # three batches (10, 10, 5), each sent twice
    assert result.backpressure == 3
    assert sorted(result.acked_ids) == sorted(source.event(i)[0] for i in range(100, 125))
    assert sorted(flaky.stored) == sorted(result.acked_ids)


def test_verify_stored_finds_missing_and_duplicated_events(tmp_path):
    path = tmp_path / 'v.db'
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE event (id INTEGER PRIMARY KEY, project_id INT, event_id TEXT)')
        db.executemany('INSERT INTO event (project_id, event_id) VALUES (?, ?)',
                       [(1, 'a'), (1, 'b'), (2, 'b'), (1, 'c')])
    check = run_ingest.verify_stored(path, ['a', 'b', 'd', 'a'])
    assert check == {'acked': 3, 'missing': 1, 'duplicated': 1}
    assert run_ingest.verify_stored(path, ['a', 'c']) == {'acked': 2, 'missing': 0,
                                                          'duplicated': 0}


@pytest.mark.slow
def test_tiny_run_against_both_servers_stores_every_acknowledged_event():
    done = subprocess.run(
        [sys.executable, str(BENCH / 'run_ingest.py'), '--server', 'both', '--events', '200',
         '--seconds', '30', '--concurrency', '4', '--batch', '1,100', '--warmup', '20', '--json',
         '--mix', 'realistic,unique'],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary['ok'] and summary['problems'] == []
    assert [s['server'] for s in summary['servers']] == ['baseline', 'proliferate']
    for server in summary['servers']:
        assert [(f['mix'], f['batch'], f['events_acked']) for f in server['scenarios']] == [
            ('realistic', 1, 200), ('realistic', 100, 200), ('unique', 1, 200), ('unique', 100, 200)]
        check = server['verification']
        assert check == {'acked': 820, 'missing': 0, 'duplicated': 0}
        assert server['events_stored'] == 820
        assert server['exit_code'] == 0
        assert server['peak_rss_bytes'] > 0 and server['bytes_per_event'] > 0
    assert {t['result'] for t in summary['targets']} <= {'PASS', 'FAIL', 'n/a'}
    assert any(t['result'] in ('PASS', 'FAIL') for t in summary['targets'])
    assert {t['target'] for t in summary['targets']} >= {
        'realistic mix, single events >= 80% of the baseline',
        'realistic mix, batches of 100 >= 45% of the baseline'}


@pytest.mark.slow
def test_pipeline_bench_runs_and_reports_a_figure(capsys):
    import pipeline  # bench/pipeline.py

    for mix in events.MIXES:
        micros = pipeline.main(['--events', '50', '--repeat', '1', '--mix', mix])
        assert micros > 0
        assert re.search(rf'request-side pipeline, {mix} mix: [\d.]+ us per event',
                         capsys.readouterr().out)


@pytest.mark.slow
def test_store_bench_runs_and_reports_a_figure(capsys):
    import store_bench  # bench/store_bench.py

    assert store_bench.main(['--events', '200', '--batch', '50']) > 0
    assert re.search(r'Store, batches of 50, people vary: [\d.]+ us per event .*'
                     r'issue_slice_person [\d,]+ rows, [\d.]+ bytes per event, [\d.]+ per row',
                     capsys.readouterr().out)
    assert store_bench.main(['--events', '100', '--people', 'same',
                             '--without-slice-people']) > 0
    assert 'without issue_slice_person' in capsys.readouterr().out


def test_wrk_script_posts_the_realistic_event_with_new_ids_per_request():
    import wrk_ingest  # bench/wrk_ingest.py

    script = wrk_ingest.lua_script(API_KEY, 42000)
    assert f'["X-API-Key"] = [==[{API_KEY}]==]' in script
    # The slots the script fills on every request, and nothing left unfilled in the event.
    names = next(line for line in script.splitlines() if line.startswith('local names = '))
    assert set(re.findall(r'"(\w+)"', names)) == {'EVENT_ID', 'USER', 'ACCOUNT', 'SESSION',
                                                   'WINDOW'}
    assert '@@' not in script
    assert '"stack":"TypeError: Cannot read properties of undefined' in script
    assert 'string.format("%08x%08x%08x%08x", 42000, tid' in script
    assert wrk_ingest.REPORT_MARK in script


def test_wrk_bench_without_wrk_says_so_and_measures_nothing(monkeypatch, capsys):
    import wrk_ingest  # bench/wrk_ingest.py

    monkeypatch.setattr(wrk_ingest.shutil, 'which', lambda name: None)
    assert wrk_ingest.main(['--connections', '32', '--seconds', '1']) == 0
    assert 'wrk is not installed' in capsys.readouterr().out


def test_wrk_report_gives_each_run_its_ratio_to_the_ceiling():
    import wrk_ingest  # bench/wrk_ingest.py

    def row(server, rate, errors=None):
        return {'server': server, 'threads': 16, 'connections': 256, 'acked': 1000,
                'ev_per_s': rate, 'p50_ms': 1.0, 'p99_ms': 2.0, 'max_ms': 3.0, 'refused': 0,
                'errors': errors or {}, 'cpu_us_per_event': 900, 'srv_cpu_percent': 95,
                'load_average': 0.5}

    def summary(server, acked, stored):
        return {'server': server, 'threads': 16, 'exit_code': 0, 'acked': acked,
                'stored': stored, 'peak_rss_mb': 80, 'queue_warnings': 0}

    report = wrk_ingest.format_report('settings', [
        ([row('baseline', 800.0)], summary('baseline', 1000, 1000)),
        ([row('proliferate', 600.0, {'timeout': 3})], summary('proliferate', 1000, 990))])
    lines = report.splitlines()
    assert any(line.startswith('proliferate') and ' 75% ' in line and 'timeout 3' in line
               for line in lines)
    assert 'PROBLEM' in lines[-1] and lines[-2].endswith(': ok')
