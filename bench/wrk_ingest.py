"""Many client connections: wrk against `proliferate serve` and the trivial baseline.

Each server starts on a fresh temporary SQLite database with the same Waitress threads and
connection limit (proliferate's settings, or --threads / --connection-limit), then wrk
(Debian's package `wrk`, a C load generator, so the client costs the two cores little) posts
single realistic events to it from each number of connections in turn for a bounded time. The
events are one realistic ~2.2 KB event (bench/events.py, a fixed stack as one bug in one build
sends it) whose event id, user, account, session and window a Lua script changes on every
request. Afterwards the server gets SIGTERM and must exit 0, and the events stored must number at
least the 202s wrk counted (a request wrk gave up on may still have been stored, never fewer).

Load goes to 127.0.0.1 only. Without wrk on the PATH it says so and exits 0: a benchmark, not a
test.

    python bench/wrk_ingest.py                         # 32, 256 and 1,000 connections, 20 s each
    python bench/wrk_ingest.py --threads 16,64 --connections 256 --seconds 10
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

import events
import run_ingest

HOST = run_ingest.HOST
WRK_THREADS = 2
WARMUP_SECONDS = 3
# A run's wrk call is stopped if it overruns its duration by this much.
WRK_GRACE_SECONDS = 60
REPORT_MARK = 'WRKJSON '
# Waitress's warning when a request waits for a free worker thread.
QUEUE_WARNING = 'Task queue depth'

LUA = r'''-- Written by bench/wrk_ingest.py: one realistic event, new ids on every request.
local literals = {%(literals)s}
local names = {%(names)s}
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = [==[%(key)s]==]}
local threads = {}
local counter = 0
ok = 0
other = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function slots(n)
  local user = n %% 1000
  return {
    EVENT_ID = string.format("%%08x%%08x%%08x%%08x", %(nonce)d, tid, math.floor(n / 4294967296),
                             n %% 4294967296),
    USER = string.format("%%05d", user),
    ACCOUNT = string.format("%%03d", user %% 100),
    SESSION = string.format("%%08x%%08x", tid, n %% 4294967296),
    WINDOW = string.format("%%04x%%08x", tid, n %% 4294967296),
  }
end

function request()
  counter = counter + 1
  local values = slots(counter)
  local out = {literals[1]}
  for i, name in ipairs(names) do
    out[#out + 1] = values[name]
    out[#out + 1] = literals[i + 1]
  end
  return wrk.format("POST", "/api/v1/errors", headers, table.concat(out))
end

function response(status, headers, body)
  if status == 202 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local acked, refused = 0, 0
  for _, thread in ipairs(threads) do
    acked = acked + thread:get("ok")
    refused = refused + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"duration_us":%%d,"requests":%%d,"acked":%%d,"refused":%%d,"connect":%%d,' ..
    '"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\n',
    summary.duration, summary.requests, acked, refused, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
'''


def lua_script(api_key, nonce):
    """The wrk script posting one realistic event with per-request slots."""
    now = datetime.now(UTC)
    event = events.make_event(random.Random(7), api_key=api_key, event_id='@@EVENT_ID@@',
                              now=now, unique_stack=False)
    pieces = re.split(r'@@(\w+)@@', json.dumps(event, separators=(',', ':')))
    literals = ', '.join(f'[==[{piece}]==]' for piece in pieces[::2])
    names = ', '.join(f'"{name}"' for name in pieces[1::2])
    return LUA % {'literals': literals, 'names': names, 'key': api_key, 'nonce': nonce,
                  'mark': REPORT_MARK}


def run_wrk(port, script, *, connections, seconds, timeout):
    """One wrk run; its figures (dict) or raises ServerError with wrk's output."""
    command = ['wrk', f'-t{min(WRK_THREADS, connections)}', f'-c{connections}', f'-d{seconds}s',
               f'--timeout={timeout}s', '-s', str(script), f'http://{HOST}:{port}/api/v1/errors']
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=seconds + WRK_GRACE_SECONDS, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(REPORT_MARK):
            return json.loads(line[len(REPORT_MARK):])
    raise run_ingest.ServerError(f'wrk gave no figures ({done.returncode}):\n{done.stdout}\n'
                                 f'{done.stderr}')


class Baseline(run_ingest.BaselineServer):
    connection_limit = None

    def command(self):
        return super().command() + ['--connection-limit', str(self.connection_limit)]


class Proliferate(run_ingest.ProliferateServer):
    connection_limit = None

    def env(self):
        env = super().env()
        env['PROLIFERATE_THREADS'] = str(self.threads)
        env['PROLIFERATE_CONNECTION_LIMIT'] = str(self.connection_limit)
        return env


def measure_server(server_class, *, threads, args, workdir, nonce, number):
    """Start one server, warm it, run wrk at each connection count, stop, count; its rows."""
    name = server_class.name
    # Numbered: a thread count may be measured more than once, on a fresh database each time.
    database = workdir / f'{name}-{number}-{threads}.db'
    server = server_class(workdir, database, threads, args.synchronous)
    server.connection_limit = args.connection_limit
    server.log_path = workdir / f'{name}-{number}-{threads}.log'
    server.start()
    rows = []
    acked = 0
    try:
        script = workdir / f'{name}-{number}-{threads}.lua'
        script.write_text(lua_script(server.api_key, nonce))
        warm = run_wrk(server.port, script, connections=4, seconds=WARMUP_SECONDS,
                       timeout=args.timeout)
        acked += warm['acked']
        for connections in args.connections:
            # A new nonce per run: every run's event ids are new to the server.
            nonce += 1
            script.write_text(lua_script(server.api_key, nonce))
            cpu_before = run_ingest.cpu_seconds(server.process.pid)
            figures = run_wrk(server.port, script, connections=connections,
                              seconds=args.seconds, timeout=args.timeout)
            cpu = run_ingest.cpu_seconds(server.process.pid) - cpu_before
            elapsed = figures['duration_us'] / 1e6
            acked += figures['acked']
            rows.append({
                'server': name, 'threads': threads, 'connections': connections,
                'acked': figures['acked'],
                'ev_per_s': round(figures['acked'] / elapsed, 1) if elapsed else 0.0,
                'p50_ms': round(figures['p50_us'] / 1000, 1),
                'p99_ms': round(figures['p99_us'] / 1000, 1),
                'max_ms': round(figures['max_us'] / 1000, 1),
                'refused': figures['refused'],
                'errors': {key: figures[key] for key in ('connect', 'read', 'write', 'timeout')
                           if figures[key]},
                'cpu_us_per_event': round(cpu / figures['acked'] * 1e6) if figures['acked']
                else None,
                'srv_cpu_percent': round(cpu / elapsed * 100) if elapsed else None,
                'load_average': round(os.getloadavg()[0], 1),
            })
        peak = run_ingest.peak_rss_bytes(server.process.pid)
    finally:
        code = server.stop()
    stored = run_ingest.count_events(database)
    log = server.log_path.read_text(errors='replace')
    summary = {'server': name, 'threads': threads, 'exit_code': code, 'acked': acked,
               'stored': stored, 'peak_rss_mb': round(peak / 2**20),
               'queue_warnings': log.count(QUEUE_WARNING)}
    return rows, summary, nonce


def format_report(settings, results):
    lines = [settings, '',
             f'{"server":<12}{"thr":>4}{"conns":>6}{"ev/s":>9}{"p50 ms":>9}{"p99 ms":>9}'
             f'{"max ms":>9}{"CPU us/ev":>10}{"srv CPU":>8}{"load":>6}  ratio  non-202 / errors']
    ceilings = {(row['threads'], row['connections']): row['ev_per_s']
                for rows, _ in results for row in rows if row['server'] == 'baseline'}
    for rows, _ in results:
        for row in rows:
            ceiling = ceilings.get((row['threads'], row['connections']))
            ratio = (f'{row["ev_per_s"] / ceiling:5.0%}'
                     if row['server'] != 'baseline' and ceiling else '     ')
            errors = ', '.join(f'{key} {value}' for key, value in row['errors'].items())
            lines.append(
                f'{row["server"]:<12}{row["threads"]:>4}{row["connections"]:>6}'
                f'{row["ev_per_s"]:>9,.0f}{row["p50_ms"]:>9,.1f}{row["p99_ms"]:>9,.1f}'
                f'{row["max_ms"]:>9,.1f}{row["cpu_us_per_event"] or 0:>10,}'
                f'{row["srv_cpu_percent"] or 0:>7}%{row["load_average"]:>6}  {ratio}  '
                f'{row["refused"]} / {errors or "-"}')
    lines.append('')
    for _, summary in results:
        verdict = 'ok' if summary['stored'] >= summary['acked'] and summary['exit_code'] == 0 \
            else 'PROBLEM'
        lines.append(f'{summary["server"]} ({summary["threads"]} threads): {summary["acked"]:,} '
                     f'acknowledged, {summary["stored"]:,} stored, exit {summary["exit_code"]}, '
                     f'peak RSS {summary["peak_rss_mb"]} MB, "{QUEUE_WARNING}" lines in its log: '
                     f'{summary["queue_warnings"]}: {verdict}')
    return '\n'.join(lines)


def number_list(text):
    values = [int(part) for part in text.split(',') if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f'expected positive numbers separated by commas: {text}')
    return values


def parse_args(argv):
    threads, synchronous, _ = run_ingest.proliferate_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--connections', type=number_list, default=[32, 256, 1000],
                        help='connection counts, one wrk run each (default 32,256,1000)')
    parser.add_argument('--seconds', type=int, default=20, help='per run (default 20)')
    parser.add_argument('--threads', type=number_list, default=[threads],
                        help=f'Waitress threads, both servers at each (default {threads})')
    parser.add_argument('--connection-limit', type=int, default=None,
                        help="both servers' connection limit (default: proliferate's)")
    parser.add_argument('--timeout', type=int, default=10, help="wrk's request timeout, s")
    parser.add_argument('--server', choices=('both', 'proliferate', 'baseline'), default='both')
    parser.add_argument('--keep', action='store_true', help='keep the databases and logs')
    parser.add_argument('--json', action='store_true', help='print one JSON summary')
    args = parser.parse_args(argv)
    args.synchronous = synchronous
    if args.connection_limit is None:
        code = ('import os; from proliferate.config import Config; '
                'print(Config.from_env(os.environ).connection_limit)')
        done = subprocess.run([sys.executable, '-c', code], cwd=run_ingest.ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
        args.connection_limit = int(done.stdout.strip() or 4000)
    if max(args.connections) > args.connection_limit:
        parser.error('more connections than the connection limit: they would wait in the backlog')
    return args


def main(argv=None):
    args = parse_args(argv)
    if shutil.which('wrk') is None:
        print('wrk_ingest: wrk is not installed (Debian: apt-get install wrk); nothing measured.')
        return 0
    classes = {'baseline': [Baseline], 'proliferate': [Proliferate],
               'both': [Baseline, Proliferate]}[args.server]
    workdir = Path(tempfile.mkdtemp(prefix='proliferate-wrk-'))
    results = []
    failed = False
    nonce = random.randrange(1, 2**31) * 1000
    started = time.monotonic()
    load = os.getloadavg()[0]
    try:
        for threads in args.threads:
            for server_class in classes:
                rows, summary, nonce = measure_server(server_class, threads=threads, args=args,
                                                      workdir=workdir, nonce=nonce,
                                                      number=len(results))
                results.append((rows, summary))
                failed |= summary['stored'] < summary['acked'] or summary['exit_code'] != 0
    except run_ingest.ServerError as error:
        print(f'wrk_ingest: {error}', file=sys.stderr)
        failed = True
    finally:
        if args.keep or failed:
            print(f'wrk_ingest: kept {workdir}', file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    settings = (f'{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, wrk '
                f'{WRK_THREADS} threads, {args.seconds} s per run, connection limit '
                f'{args.connection_limit:,}, synchronous={args.synchronous}, load average at '
                f'start {load:.1f}, {time.monotonic() - started:.0f} s in all')
    if args.json:
        print(json.dumps({'settings': settings, 'runs': [rows for rows, _ in results],
                          'servers': [summary for _, summary in results]}, indent=1))
    else:
        print(format_report(settings, results))
    return 1 if failed else 0


if __name__ == '__main__':
    raise SystemExit(main())
