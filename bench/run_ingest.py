"""Ingest benchmark runner: proliferate against the trivial baseline, same load, same machine.

Starts each server on a temporary SQLite database (or proliferate on PostgreSQL, as one or several
processes), drives it with bench/loadgen.py, stops it, checks that every acknowledged event is
stored exactly once, and reports the figures and targets.
"""

import argparse
import itertools
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import events
import loadgen

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = '127.0.0.1'
CLK_TCK = os.sysconf('SC_CLK_TCK')
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
PREFILL_BATCH = 100
PREFILL_CONCURRENCY = 8
# Fallbacks while proliferate.config cannot be read: its documented defaults.
DEFAULT_THREADS = 16
DEFAULT_SYNCHRONOUS = 'FULL'

# The targets. Bytes per event is for the ~2 KB events of bench/events.py.
TARGET_SINGLE_EVENTS_PER_SECOND = 2000
TARGET_SINGLE_RATIO = 0.75
TARGET_SINGLE_P99_SECONDS = 0.050
TARGET_BATCH_EVENTS_PER_SECOND = 12000
TARGET_PEAK_RSS_BYTES = 150 * 1024 * 1024
TARGET_BYTES_PER_EVENT = 1536
TARGET_PREFILLED_RATIO = 0.80
TARGET_CONCURRENCY = 32
# Against the ceiling (the baseline) on the realistic mix, where repeated stacks are the norm.
TARGET_REALISTIC_SINGLE_RATIO = 0.80
TARGET_REALISTIC_BATCH_RATIO = 0.45


class ServerError(Exception):
    pass


# -- process figures (Linux /proc) --------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    stat = Path(f'/proc/{pid}/stat').read_text()
    # The command name (field 2) may hold spaces; the fields after its ')' start at field 3.
    fields = stat[stat.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_bytes(pid):
    """VmHWM: the most resident memory the process has had."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
    raise ServerError(f'no VmHWM for pid {pid}')


def client_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def unused_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# -- the database after the run ------------------------------------------------------------------

def sqlite_path(url):
    """The file of a sqlite:/// URL (three slashes: relative, four: absolute)."""
    if not url.startswith('sqlite:///'):
        raise ValueError(f'only sqlite:/// and postgresql:// database URLs can be measured and '
                         f'verified, not {url!r}')
    return Path(url[len('sqlite:///'):]).resolve()


# -- PostgreSQL: the database is a URL instead of a file ------------------------------

def is_postgres(target):
    return isinstance(target, str) and target.startswith(('postgres://', 'postgresql://'))


def pg_connect(url):
    import psycopg  # only for a PostgreSQL run: pip install -e '.[postgres]'
    return psycopg.connect(url, autocommit=True)


def pg_reset(url):
    """--reset: drop every table (the schema public), so the run starts on an empty database."""
    with pg_connect(url) as db:
        db.execute('DROP SCHEMA public CASCADE')
        db.execute('CREATE SCHEMA public')


def pg_count_events(url):
    with pg_connect(url) as db:
        if db.execute("SELECT to_regclass('event')").fetchone()[0] is None:
            return 0
        return db.execute('SELECT COUNT(*) FROM event').fetchone()[0]


def pg_storage_figures(url):
    """(bytes of every table of the schema with its indexes and TOAST, events stored)."""
    with pg_connect(url) as db:
        size = db.execute(
            'SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c '
            'JOIN pg_namespace n ON n.oid = c.relnamespace '
            "WHERE n.nspname = current_schema() AND c.relkind = 'r'").fetchone()[0]
        stored = db.execute('SELECT COUNT(*) FROM event').fetchone()[0]
    return int(size), stored


def pg_verify_stored(url, acked_ids):
    with pg_connect(url) as db:
        projects = [row[0] for row in db.execute('SELECT DISTINCT project_id FROM event')]
        db.execute('CREATE TEMP TABLE acked (event_id TEXT PRIMARY KEY)')
        with db.cursor().copy('COPY acked (event_id) FROM STDIN') as copy:
            for event_id in set(acked_ids):
                copy.write_row((event_id,))
        counts = db.execute(
            'SELECT COUNT(e.event_id) AS n FROM acked a LEFT JOIN event e'
            ' ON e.project_id = ANY(%s) AND e.event_id = a.event_id GROUP BY a.event_id',
            (projects,))
        missing = duplicated = checked = 0
        for (n,) in counts:
            checked += 1
            missing += n == 0
            duplicated += n > 1
    return {'acked': checked, 'missing': missing, 'duplicated': duplicated}


def pg_synchronous_commit(url):
    with pg_connect(url) as db:
        return db.execute('SHOW synchronous_commit').fetchone()[0]


# -- SQLite ------------------------------------------------------------------------------------

def count_events(path):
    if is_postgres(path):
        return pg_count_events(path)
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event'")
        if exists.fetchone() is None:
            return 0
        return db.execute('SELECT COUNT(*) FROM event').fetchone()[0]


def storage_figures(path):
    """Checkpoint the WAL into the database, then (bytes of db + wal, events stored)."""
    if is_postgres(path):
        return pg_storage_figures(path)
    db = sqlite3.connect(path)
    try:
        db.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()
        stored = db.execute('SELECT COUNT(*) FROM event').fetchone()[0]
    finally:
        db.close()
    wal = Path(f'{path}-wal')
    size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return size, stored


def verify_stored(path, acked_ids):
    """How many acknowledged event_ids are missing from table event, and stored more than once.

    Looks each id up through the (project_id, event_id) index, across every project in the file.
    """
    if is_postgres(path):
        return pg_verify_stored(path, acked_ids)
    db = sqlite3.connect(path)
    try:
        projects = [row[0] for row in db.execute('SELECT DISTINCT project_id FROM event')]
        db.execute('CREATE TEMP TABLE acked (event_id TEXT PRIMARY KEY)')
        db.executemany('INSERT OR IGNORE INTO acked VALUES (?)', ((i,) for i in acked_ids))
        marks = ','.join('?' * len(projects)) or 'NULL'
        counts = db.execute(
            'SELECT COUNT(e.event_id) AS n FROM acked a LEFT JOIN event e'
            f' ON e.project_id IN ({marks}) AND e.event_id = a.event_id GROUP BY a.event_id',
            projects)
        missing = duplicated = checked = 0
        for (n,) in counts:
            checked += 1
            missing += n == 0
            duplicated += n > 1
    finally:
        db.close()
    return {'acked': checked, 'missing': missing, 'duplicated': duplicated}


# -- servers -----------------------------------------------------------------------------------

class Server:
    """One server process on a free loopback port, with its log in the work directory."""

    name = None

    def __init__(self, workdir, database_path, threads, synchronous):
        self.workdir = workdir
        self.database_path = database_path
        self.threads = threads
        self.synchronous = synchronous
        self.port = unused_port()
        self.log_path = workdir / f'{self.name}.log'
        self.process = None
        self.api_key = None

    def command(self):
        raise NotImplementedError

    def env(self):
        return os.environ.copy()

    def prepare(self):
        """Anything to do before serving; sets self.api_key."""

    def start(self):
        self.prepare()
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(self.command(), cwd=ROOT, env=self.env(),
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        url = f'http://{HOST}:{self.port}/healthz'
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f'{self.name} exited with {self.process.returncode} on start:\n'
                                  f'{self.log_tail()}')
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.process.kill()
        self.process.wait()
        raise ServerError(f'{self.name} did not answer {url} within {START_TIMEOUT:.0f} s:\n'
                          f'{self.log_tail()}')

    def stop(self):
        """SIGTERM, wait for the drain; the exit code (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return self.process and self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def log_tail(self, lines=30):
        try:
            return '\n'.join(self.log_path.read_text(errors='replace').splitlines()[-lines:])
        except OSError:
            return ''


class ProliferateServer(Server):
    """database_path is a file, or a postgresql:// URL (then several may share it)."""

    name = 'proliferate'

    def __init__(self, workdir, database_path, threads, synchronous, *, number=None):
        super().__init__(workdir, database_path, threads, synchronous)
        if number is not None:  # one of several processes: a log each
            self.log_path = workdir / f'{self.name}-{number}.log'

    def env(self):
        env = os.environ.copy()
        # Four slashes: an absolute path.
        env['PROLIFERATE_DATABASE_URL'] = (self.database_path if is_postgres(self.database_path)
                                           else f'sqlite:///{self.database_path}')
        return env

    def command(self):
        return [sys.executable, '-m', 'proliferate', 'serve', '--host', HOST,
                '--port', str(self.port)]

    def prepare(self):
        if self.api_key is not None:  # a second process of a group: the project exists
            return
        # The admin commands never create a database: migrate makes the empty one first.
        subprocess.run([sys.executable, '-m', 'proliferate', 'migrate'], cwd=ROOT, env=self.env(),
                       capture_output=True, timeout=120, check=False)
        done = subprocess.run([sys.executable, '-m', 'proliferate', 'project', 'create', 'bench'],
                              cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=120,
                              check=False)
        output = done.stdout.strip().splitlines()
        if done.returncode != 0 or not output or not output[-1].strip().startswith('pk_'):
            raise ServerError(f'proliferate project create failed ({done.returncode}):\n'
                              f'{done.stdout}\n{done.stderr}')
        self.api_key = output[-1].strip()


class BaselineServer(Server):
    name = 'baseline'

    def command(self):
        return [sys.executable, str(BENCH / 'baseline_app.py'), '--host', HOST,
                '--port', str(self.port), '--database', str(self.database_path),
                '--threads', str(self.threads), '--synchronous', self.synchronous]

    def prepare(self):
        self.api_key = 'pk_baseline_does_not_check_keys'


class ServerGroup:
    """One or several processes of one server on one database, measured together: the load
    spreads its connections over their ports (a load balancer), CPU is summed, RSS is the
    largest process's."""

    def __init__(self, servers):
        self.servers = servers
        self.name = servers[0].name

    @property
    def ports(self):
        return [server.port for server in self.servers]

    @property
    def api_key(self):
        return self.servers[0].api_key

    def start(self):
        try:
            self.servers[0].start()
            for server in self.servers[1:]:
                server.api_key = self.servers[0].api_key
                server.start()
        except ServerError:
            self.stop()
            raise

    def stop(self):
        """Every exit code must be 0; the first that is not, else 0."""
        codes = [server.stop() for server in self.servers]
        return next((code for code in codes if code != 0), 0)

    def cpu_seconds(self):
        return sum(cpu_seconds(server.process.pid) for server in self.servers)

    def peak_rss_bytes(self):
        return max(peak_rss_bytes(server.process.pid) for server in self.servers)


def proliferate_settings():
    """(waitress threads, synchronous, where they came from) as proliferate would run them."""
    code = ('import os; from proliferate.config import Config; c = Config.from_env(os.environ); '
            'print(c.threads, c.sqlite_synchronous.upper())')
    try:
        done = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)
        threads, synchronous = done.stdout.split()
        return int(threads), synchronous, 'proliferate.config'
    except (ValueError, subprocess.SubprocessError):
        return DEFAULT_THREADS, DEFAULT_SYNCHRONOUS, 'defaults (proliferate.config unreadable)'


# -- one server's run --------------------------------------------------------------------------

def measure(server, source, *, start, batch, args):
    """One scenario: `batch` events per request of `source`'s mix; (figures, acked ids)."""
    cpu_before = server.cpu_seconds()
    client_before = client_cpu_seconds()
    result = loadgen.run_load(host=HOST, port=server.ports, source=source, start=start,
                              events=args.events, batch=batch, concurrency=args.concurrency,
                              seconds=args.seconds)
    cpu = server.cpu_seconds() - cpu_before
    client = client_cpu_seconds() - client_before
    acked = result.acked
    p50 = loadgen.percentile(result.latencies, 0.50)
    p99 = loadgen.percentile(result.latencies, 0.99)
    figures = {
        'mix': source.mix,
        'batch': batch,
        'concurrency': args.concurrency,
        'events_acked': acked,
        'seconds': round(result.elapsed, 3),
        'events_per_second': round(acked / result.elapsed, 1) if result.elapsed else 0.0,
        'p50_ms': round(p50 * 1000, 2) if p50 is not None else None,
        'p99_ms': round(p99 * 1000, 2) if p99 is not None else None,
        'server_cpu_us_per_event': round(cpu / acked * 1e6, 1) if acked else None,
        'server_cpu_percent': round(cpu / result.elapsed * 100, 1) if result.elapsed else None,
        'client_cpu_percent': round(client / result.elapsed * 100, 1) if result.elapsed else None,
        'requests': result.requests,
        'backpressure_429_503': result.backpressure,
        'connection_errors': result.connection_errors,
        'rejected': result.rejected,
        'given_up': result.given_up,
    }
    return figures, result.acked_ids


def run_server(server_class, args, workdir, threads, synchronous):
    """Start, prefill/measure, stop, verify; the server's section of the summary."""
    processes = 1
    if server_class is ProliferateServer and args.database_url:
        if is_postgres(args.database_url):
            database_path = args.database_url
            if args.reset:
                pg_reset(database_path)
            synchronous = f'synchronous_commit={pg_synchronous_commit(database_path)}'
        else:
            database_path = sqlite_path(args.database_url)
        processes = args.processes
    else:
        database_path = workdir / f'{server_class.name}.db'
    if processes > 1:
        server = ServerGroup([server_class(workdir, database_path, threads, synchronous, number=n)
                              for n in range(1, processes + 1)])
    else:
        server = ServerGroup([server_class(workdir, database_path, threads, synchronous)])
    shown = (database_path.split('@')[-1] if is_postgres(database_path) else str(database_path))
    summary = {'server': server.name, 'threads': threads, 'synchronous': synchronous,
               'processes': processes, 'database': shown, 'scenarios': [],
               'prefilled_scenarios': []}
    acked_ids = []
    # Events already in a reused database came from earlier indexes; carry on after them.
    index = count_events(database_path)
    summary['events_before'] = index
    server.start()
    exit_code = None
    try:
        sources = [events.EventSource(seed=args.seed, api_key=server.api_key, mix=mix)
                   for mix in args.mix]
        source = sources[0]
        summary['event_bytes'] = round(
            sum(len(source.event(i)[1]) for i in range(1000)) / 1000)
        if args.warmup:
            warm = loadgen.run_load(host=HOST, port=server.ports, source=source, start=index,
                                    events=args.warmup, batch=1,
                                    concurrency=min(args.concurrency, 8), seconds=args.seconds)
            acked_ids.extend(warm.acked_ids)
            index += args.warmup
            summary['warmup_rejected'] = warm.rejected
        for mixed, batch in itertools.product(sources, args.batch):
            figures, ids = measure(server, mixed, start=index, batch=batch, args=args)
            acked_ids.extend(ids)
            index += args.events
            summary['scenarios'].append(figures)
        # The prefill target is proliferate's; growing the baseline too would only cost minutes.
        if args.prefill and server_class is ProliferateServer:
            # WAL lets this reader in beside the running server.
            have = count_events(database_path)
            grow = max(0, args.prefill - have)
            began = time.monotonic()
            fill = loadgen.run_load(host=HOST, port=server.ports, source=source, start=index,
                                    events=grow, batch=PREFILL_BATCH,
                                    concurrency=PREFILL_CONCURRENCY, seconds=args.prefill_seconds)
            acked_ids.extend(fill.acked_ids)
            index += grow
            summary['prefill'] = {
                'target_events': args.prefill, 'added': fill.acked,
                'seconds': round(time.monotonic() - began, 1), 'rejected': fill.rejected,
                'given_up': fill.given_up,
            }
            for mixed, batch in itertools.product(sources, args.batch):
                figures, ids = measure(server, mixed, start=index, batch=batch, args=args)
                acked_ids.extend(ids)
                index += args.events
                summary['prefilled_scenarios'].append(figures)
        summary['peak_rss_bytes'] = server.peak_rss_bytes()
        summary['server_cpu_seconds_total'] = round(server.cpu_seconds(), 2)
    finally:
        exit_code = server.stop()
    summary['exit_code'] = exit_code
    size, stored = storage_figures(database_path)
    summary['database_bytes'] = size
    summary['events_stored'] = stored
    summary['bytes_per_event'] = round(size / stored) if stored else None
    summary['verification'] = verify_stored(database_path, acked_ids)
    summary['log'] = ', '.join(str(s.log_path) for s in server.servers)
    return summary


# -- report ------------------------------------------------------------------------------------

def problems(summary):
    """Why this server's run cannot be trusted, if it cannot: the runner exits 1 on any."""
    found = []
    check = summary['verification']
    if check['missing']:
        found.append(f'{check["missing"]} acknowledged events are not stored')
    if check['duplicated']:
        found.append(f'{check["duplicated"]} acknowledged events are stored more than once')
    if summary['exit_code'] != 0:
        found.append(f'the server exited with {summary["exit_code"]} after SIGTERM')
    rejected = {}
    given_up = 0
    for figures in summary['scenarios'] + summary['prefilled_scenarios']:
        for reason, count in figures['rejected'].items():
            rejected[reason] = rejected.get(reason, 0) + count
        given_up += figures['given_up']
    for reason, count in summary.get('warmup_rejected', {}).items():
        rejected[reason] = rejected.get(reason, 0) + count
    if 'prefill' in summary:
        for reason, count in summary['prefill']['rejected'].items():
            rejected[reason] = rejected.get(reason, 0) + count
        given_up += summary['prefill']['given_up']
    for reason, count in rejected.items():
        found.append(f'{count} events refused: {reason}')
    if given_up:
        found.append(f'{given_up} events were never acknowledged (gave up retrying)')
    return found


def scenario_name(figures):
    kind = 'single events' if figures['batch'] == 1 else f'batches of {figures["batch"]}'
    return f'{figures.get("mix", "unique")}: {kind}, concurrency {figures["concurrency"]}'


def find_scenario(summary, batch, key='scenarios', mix=None):
    """The scenario of that batch size (and mix; by default the first mix measured)."""
    if summary is None:
        return None
    return next((f for f in summary[key]
                 if f['batch'] == batch and mix in (None, f.get('mix'))), None)


def evaluate_targets(proliferate, baseline):
    """[(target, 'PASS' | 'FAIL' | 'n/a', measured)] for the issue's targets."""
    targets = []
    if proliferate is None:
        return [('all targets', 'n/a', 'no proliferate figures (they are all about proliferate)')]

    def add(name, measured, ok):
        targets.append((name, 'n/a' if ok is None else ('PASS' if ok else 'FAIL'), measured))

    single = find_scenario(proliferate, 1)
    base_single = find_scenario(baseline, 1, mix=single and single.get('mix'))
    batch = find_scenario(proliferate, 100)
    note = ''
    if single and single['concurrency'] != TARGET_CONCURRENCY:
        note = f' (measured at concurrency {single["concurrency"]})'
    if single:
        add(f'single events >= {TARGET_SINGLE_EVENTS_PER_SECOND:,} ev/s{note}',
            f'{single["events_per_second"]:,.0f} ev/s',
            single['events_per_second'] >= TARGET_SINGLE_EVENTS_PER_SECOND)
        if base_single:
            ratio = single['events_per_second'] / max(base_single['events_per_second'], 1e-9)
            add(f'single events >= {TARGET_SINGLE_RATIO:.0%} of the baseline{note}',
                f'{ratio:.0%}', ratio >= TARGET_SINGLE_RATIO)
        else:
            add(f'single events >= {TARGET_SINGLE_RATIO:.0%} of the baseline',
                'needs --server both', None)
        p99 = single['p99_ms']
        add(f'single events p99 < {TARGET_SINGLE_P99_SECONDS * 1000:.0f} ms{note}',
            f'{p99} ms', p99 is not None and p99 < TARGET_SINGLE_P99_SECONDS * 1000)
    else:
        add('single events targets', 'needs --batch 1', None)
    if batch:
        add(f'batches of 100 >= {TARGET_BATCH_EVENTS_PER_SECOND:,} ev/s',
            f'{batch["events_per_second"]:,.0f} ev/s',
            batch['events_per_second'] >= TARGET_BATCH_EVENTS_PER_SECOND)
    else:
        add(f'batches of 100 >= {TARGET_BATCH_EVENTS_PER_SECOND:,} ev/s', 'needs --batch 100', None)
    add_ceiling_targets(add, proliferate, baseline)
    if proliferate:
        rss = proliferate['peak_rss_bytes']
        add(f'peak RSS < {TARGET_PEAK_RSS_BYTES // 2**20} MB', f'{rss / 2**20:.0f} MB',
            rss < TARGET_PEAK_RSS_BYTES)
        per_event = proliferate['bytes_per_event']
        add(f'storage <= {TARGET_BYTES_PER_EVENT:,} bytes per event '
            f'(events of ~{proliferate["event_bytes"]:,} bytes)',
            f'{per_event:,} bytes' if per_event else 'nothing stored',
            per_event is not None and per_event <= TARGET_BYTES_PER_EVENT)
        if proliferate['prefilled_scenarios']:
            events_at = proliferate['prefill']['target_events']
            for figures in proliferate['prefilled_scenarios']:
                empty = find_scenario(proliferate, figures['batch'], mix=figures.get('mix'))
                ratio = figures['events_per_second'] / max(empty['events_per_second'], 1e-9)
                add(f'{scenario_name(figures)} at {events_at:,} events within '
                    f'{1 - TARGET_PREFILLED_RATIO:.0%} of an empty database',
                    f'{ratio:.0%}', ratio >= TARGET_PREFILLED_RATIO)
        else:
            add(f'speed within {1 - TARGET_PREFILLED_RATIO:.0%} at 1,000,000 events',
                'needs --prefill 1000000', None)
    return targets


def add_ceiling_targets(add, proliferate, baseline):
    """The realistic mix against the ceiling: single events and batches of 100."""
    for batch, target in ((1, TARGET_REALISTIC_SINGLE_RATIO), (100, TARGET_REALISTIC_BATCH_RATIO)):
        kind = 'single events' if batch == 1 else 'batches of 100'
        name = f'realistic mix, {kind} >= {target:.0%} of the baseline'
        ours = find_scenario(proliferate, batch, mix='realistic')
        base = find_scenario(baseline, batch, mix='realistic')
        if ours is None or base is None:
            add(name, 'needs --mix realistic, --server both and --batch ' + str(batch), None)
            continue
        ratio = ours['events_per_second'] / max(base['events_per_second'], 1e-9)
        add(name, f'{ratio:.0%}', ratio >= target)


def label(summary):
    """The server's name in the report: 'proliferate x2' for two processes."""
    processes = summary.get('processes', 1)
    return summary['server'] + (f' x{processes}' if processes > 1 else '')


def format_report(settings, summaries, targets):
    lines = [
        (f'Ingest benchmark: seed {settings["seed"]}, <= {settings["events"]:,} events and '
         f'<= {settings["seconds"]} s per scenario, concurrency {settings["concurrency"]}, '
         f'{settings["cpus"]} CPUs'),
    ]
    for s in summaries:
        what = ('python -m proliferate serve' if s['server'] == 'proliferate'
                else 'Falcon + Waitress + sqlite3, one commit per request')
        if s.get('processes', 1) > 1:
            what += f' x {s["processes"]} processes'
        sync = s['synchronous']
        sync = sync if '=' in sync else f'synchronous={sync}'
        lines.append(f'  {label(s):<12} {what} on {s["database"]}; {s["threads"]} waitress '
                     f'threads, {sync} ({settings["settings_source"]})')
    header = (f'{"scenario":<54} {"server":<12} {"events":>8} {"ev/s":>8} {"p50 ms":>7} '
              f'{"p99 ms":>7} {"CPU us/ev":>9} {"srv CPU":>7} {"cli CPU":>7} {"429s":>5}')
    lines += ['', header, '-' * len(header)]
    for key, suffix in (('scenarios', ''), ('prefilled_scenarios', ' (prefilled)')):
        rows = [(s, f) for s in summaries for f in s[key]]
        for summary, f in sorted(rows, key=lambda row: (row[1].get('mix', ''), row[1]['batch'])):
            lines.append(
                f'{scenario_name(f) + suffix:<54} {label(summary):<12} {f["events_acked"]:>8,} '
                f'{f["events_per_second"]:>8,.0f} '
                f'{f["p50_ms"] or 0:>7.1f} {f["p99_ms"] or 0:>7.1f} '
                f'{f["server_cpu_us_per_event"] or 0:>9,.0f} {f["server_cpu_percent"] or 0:>6.0f}% '
                f'{f["client_cpu_percent"] or 0:>6.0f}% {f["backpressure_429_503"]:>5}')
    lines.append('')
    for s in summaries:
        check = s['verification']
        stored = ('all stored exactly once' if not check['missing'] and not check['duplicated']
                  else f'{check["missing"]} MISSING, {check["duplicated"]} DUPLICATED')
        per_event = f'{s["bytes_per_event"]:,}' if s['bytes_per_event'] else '-'
        lines.append(
            f'{label(s):<12} peak RSS {s["peak_rss_bytes"] / 2**20:.0f} MB; '
            f'{s["database_bytes"] / 2**20:.1f} MB for {s["events_stored"]:,} events = '
            f'{per_event} bytes/event (events ~{s["event_bytes"]:,} bytes); '
            f'{check["acked"]:,} acknowledged, {stored}; exit code {s["exit_code"]}')
        if 'prefill' in s:
            p = s['prefill']
            lines.append(f'{"":<12} prefill to {p["target_events"]:,} events: added {p["added"]:,} '
                         f'in {p["seconds"]} s')
        for problem in problems(s):
            lines.append(f'{"":<12} PROBLEM: {problem}')
    by_name = {s['server']: s for s in summaries}
    if 'proliferate' in by_name and 'baseline' in by_name:
        ratios = []
        for f in by_name['proliferate']['scenarios']:
            base = find_scenario(by_name['baseline'], f['batch'], mix=f.get('mix'))
            if base and base['events_per_second']:
                ratios.append(f'{scenario_name(f)}: '
                              f'{f["events_per_second"] / base["events_per_second"]:.0%}')
        lines.append('proliferate / baseline events/s: ' + '; '.join(ratios))
    if targets:
        lines += ['', 'Targets (proliferate):']
        for name, verdict, measured in targets:
            lines.append(f'  {verdict:<4} {name}: {measured}')
    return '\n'.join(lines)


# -- command line ------------------------------------------------------------------------------

def batch_sizes(text):
    sizes = [int(part) for part in text.split(',') if part.strip()]
    if not sizes or any(not 1 <= size <= 100 for size in sizes):
        raise argparse.ArgumentTypeError('batch sizes are 1..100, comma-separated')
    return sizes


def mixes(text):
    chosen = [part.strip() for part in text.split(',') if part.strip()]
    if not chosen or any(mix not in events.MIXES for mix in chosen):
        raise argparse.ArgumentTypeError(f'mixes are {", ".join(events.MIXES)}, comma-separated')
    return chosen


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--events', type=int, default=1_000_000,
                        help='most events per measured scenario (default: %(default)s)')
    parser.add_argument('--seconds', type=float, default=15.0,
                        help='most seconds per measured scenario (default: %(default)s)')
    parser.add_argument('--concurrency', type=int, default=32,
                        help='client threads, each with one keep-alive connection')
    parser.add_argument('--batch', type=batch_sizes, default=[1, 100],
                        help='events per request; a comma list runs one scenario each '
                             '(default: 1,100)')
    parser.add_argument('--mix', type=mixes, default=list(events.MIXES),
                        help='event mixes, one set of scenarios each (default: realistic,unique): '
                             'realistic repeats 150 stacks in 90 %% of events, unique never '
                             'repeats one')
    parser.add_argument('--server', choices=('proliferate', 'baseline', 'both'), default='both')
    parser.add_argument('--database-url',
                        help='proliferate database (sqlite:////abs/path.db or postgresql://...); '
                             'kept and reused. Default: a temporary SQLite file')
    parser.add_argument('--processes', type=int, default=1,
                        help='proliferate server processes sharing --database-url, the load '
                             'spread over them (default: %(default)s)')
    parser.add_argument('--reset', action='store_true',
                        help='PostgreSQL: drop every table of --database-url before the run')
    parser.add_argument('--prefill', type=int, default=0,
                        help='after measuring, grow proliferate\'s database to N events through '
                             'the batch endpoint and measure again')
    parser.add_argument('--prefill-seconds', type=float, default=1800.0,
                        help='most seconds the prefill may take (default: %(default)s)')
    parser.add_argument('--warmup', type=int, default=200,
                        help='single events sent before measuring, not counted')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--keep', action='store_true', help='keep the temporary directory')
    parser.add_argument('--json', action='store_true', help='print one JSON summary instead')
    args = parser.parse_args(argv)
    if args.events < 1 or args.seconds <= 0 or args.concurrency < 1 or args.processes < 1:
        parser.error('--events, --seconds, --concurrency and --processes must be positive')
    if args.processes > 1 and not args.database_url:
        parser.error('--processes needs --database-url (the database they share)')
    if args.reset and not is_postgres(args.database_url):
        parser.error('--reset is for a postgresql:// --database-url')
    return args


def main(argv=None):
    args = parse_args(argv)
    threads, synchronous, source = proliferate_settings()
    settings = {'seed': args.seed, 'mix': args.mix, 'events': args.events, 'seconds': args.seconds,
                'concurrency': args.concurrency, 'batch': args.batch, 'prefill': args.prefill,
                'cpus': os.cpu_count(), 'settings_source': source}
    classes = {'baseline': [BaselineServer], 'proliferate': [ProliferateServer],
               'both': [BaselineServer, ProliferateServer]}[args.server]
    workdir = Path(tempfile.mkdtemp(prefix='proliferate-bench-'))
    summaries = []
    failures = []
    try:
        for server_class in classes:
            try:
                summaries.append(run_server(server_class, args, workdir, threads, synchronous))
            except ServerError as exc:
                failures.append(str(exc))
    finally:
        if not args.keep and not failures:
            shutil.rmtree(workdir, ignore_errors=True)
    by_name = {s['server']: s for s in summaries}
    targets = evaluate_targets(by_name.get('proliferate'), by_name.get('baseline'))
    for summary in summaries:
        failures += [f'{summary["server"]}: {p}' for p in problems(summary)]
    ok = not failures
    if args.json:
        print(json.dumps({'settings': settings, 'servers': summaries,
                          'targets': [{'target': t, 'result': r, 'measured': m}
                                      for t, r, m in targets],
                          'ok': ok, 'problems': failures}, indent=2))
    else:
        print(format_report(settings, summaries, targets))
        for failure in failures:
            print(f'FAILED: {failure}', file=sys.stderr)
        if failures and not args.keep:
            print(f'logs kept in {workdir}', file=sys.stderr)
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
