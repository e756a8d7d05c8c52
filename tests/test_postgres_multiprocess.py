"""Two real `proliferate serve` processes on one database: the same events through both
at once keep every count exact, one process runs the scheduled jobs (each outbox webhook arrives
once), and after kill -9 of that process the other takes over. On PostgreSQL when
PROLIFERATE_TEST_DATABASE_URL names one (CI runs both); otherwise on one shared SQLite file.
"""

import collections
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import factories
import pytest
from factories import make_project
from faultkit import Served
from peewee import fn

from proliferate import db
from proliferate import times
from proliferate.leader import FileLock
from proliferate.leader import Leader
from proliferate.leader import lock_for
from proliferate.models import Delivery
from proliferate.models import DroppedCount
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import IssueAccount
from proliferate.models import IssueHourly
from proliferate.models import IssueUser
from proliferate.models import Webhook

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
# The servers' leader_retry_seconds: takeover within seconds here (15 s by default).
RETRY = 1.0
ISSUES = 6
USERS = 7
ACCOUNTS = 3


def request(base, method, path, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={'Content-Type': 'application/json'} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b'null')
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode('utf-8', 'replace')


class Server(Served):
    """`python -m proliferate serve` on a free port, its output in a file: 8 threads and a short
    leader retry, so a takeover happens within the test."""

    def __init__(self, url, tmp_path, name):
        super().__init__(url, tmp_path, name, threads=8, leader_retry_seconds=RETRY)

    def health(self):
        status, body = super().health()
        assert status == 200, body
        return body


class Receiver:
    """A webhook endpoint on loopback: what the leader's send_outbox job delivers."""

    def __init__(self):
        self.posts = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                receiver.posts.append(json.loads(body))
                self.send_response(200)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}/hook'
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def issue_ids(self):
        return [post['issue']['id'] for post in self.posts if post.get('trigger') == 'new_issue']

    def wait_for(self, count, deadline):
        end = time.monotonic() + deadline
        while time.monotonic() < end and len(self.issue_ids()) < count:
            time.sleep(0.2)
        return self.issue_ids()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def make_event(key, issue, user, account):
    return factories.event(key, timestamp=f'2025-03-01T10:{issue:02d}:00Z',
                           user={'id': f'user-{user}'}, account={'id': f'acct-{account}'},
                           exception={'type': f'Error{issue}', 'message': f'boom {issue}',
                                      'stack': f'Error{issue}: boom {issue}\n    at handler{issue} '
                                               f'(https://app.test/app.js:{issue}:7)'})


def send_to_both(servers, path, body):
    """The same body to every server at the same moment -> their answers."""
    barrier = threading.Barrier(len(servers))
    answers = [None] * len(servers)

    def send(index):
        barrier.wait(5)
        answers[index] = request(servers[index].base, 'POST', path, body)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(servers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def run_pool(tasks, workers=6):
    """tasks (callables) on a few threads; -> their results in order."""
    results = [None] * len(tasks)
    errors = []
    lock = threading.Lock()
    todo = list(enumerate(tasks))

    def work():
        while True:
            with lock:
                if not todo:
                    return
                index, task = todo.pop()
            try:
                results[index] = task()
            except Exception as error:  # reported by the caller, never lost in a thread
                errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not errors, errors[:3]
    return results


def query(fn):
    with db.database.connection_context():
        return fn()


@pytest.fixture
def shared(config):
    """The database both servers share, without a schema: the servers migrate it as they start,
    at the same moment."""
    db.open_database(config.database_url)
    if db.is_postgresql(config.database_url):
        with db.database.connection_context():
            db.database.execute_sql('DROP SCHEMA public CASCADE')
            db.database.execute_sql('CREATE SCHEMA public')
    receiver = Receiver()
    yield config.database_url, receiver
    receiver.stop()


def start_servers(url, tmp_path, names):
    """Servers started together on the unmigrated database, then a project with an organization
    webhook (-> the project)."""
    servers = [Server(url, tmp_path, name) for name in names]
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    db.open_database(url)
    project = make_project()
    return servers, project


def add_webhook(project, receiver):
    with db.database.connection_context():
        Webhook.create(organization=project.org_id, name='test', url=receiver.url)


@pytest.mark.slow
def test_two_servers_count_exactly_and_one_runs_the_jobs(shared, tmp_path):
    url, receiver = shared
    servers = []
    try:
        servers, project = start_servers(url, tmp_path, ['a', 'b'])
        add_webhook(project, receiver)
        # Exactly one process leads (the file lock or the advisory lock).
        leading = [server.health()['leader'] for server in servers]
        assert sorted(leading) == [False, True], leading

        rng = random.Random(9)
        events = [make_event(project.key, rng.randrange(ISSUES), rng.randrange(USERS),
                             rng.randrange(ACCOUNTS)) for _ in range(240)]
        singles, batched = events[:120], events[120:]
        # Each single event to both servers at the same moment, from 6 threads at once.
        single_answers = run_pool([
            lambda event=event: send_to_both(servers, '/api/v1/errors', event) for event in singles])
        for answers in single_answers:
            assert [status for status, _body in answers] == [202, 202], answers
        # Batches of 20 that overlap on both servers, each server's copy in another order (two
        # writers' transactions take the same rows in opposite orders: no deadlock may fail one).
        batch_tasks = []
        for start in range(0, len(batched), 20):
            part = batched[start:start + 20]
            for _repeat in range(2):
                batch_tasks.append(lambda part=part: send_batches_crossed(servers, part))
        batch_answers = run_pool(batch_tasks)
        ok = collections.Counter()
        for answers in batch_answers:
            for status, body in answers:
                assert status == 202, body
                for result in body['results']:
                    assert result['status'] in ('ok', 'duplicate'), result
                    ok[result['event_id']] += result['status'] == 'ok'
        # Of the four copies of each batched event (two batches, two servers), exactly one
        # was stored: the others answered "duplicate".
        assert set(ok.values()) == {1} and len(ok) == len(batched), ok.most_common(3)

        check_counts(events, project.id, duplicates=len(singles) + 3 * len(batched))
        if db.is_postgresql(url):
            # The race really ran: some batch read an event_id as new, lost it to the other
            # process at INSERT time and was stored again (on SQLite writers take turns).
            races = sum(server.output().count('reading it again') for server in servers)
            print(f'batches stored again after losing a race: {races}')
            assert races > 0

        # The leader's send_outbox (every 10 s) sends each new issue's webhook once.
        issues = query(lambda: Issue.select().count())
        assert issues == len({(e['exception']['type']) for e in events})
        sent = receiver.wait_for(issues, deadline=40)
        assert sorted(sent) == sorted(set(sent)) and len(sent) == issues, sent
        # Delivery is at least once: a sender killed between the webhook's 200 and recording it
        # would send it again from the next leader. Kill only once every delivery is recorded.
        end = time.monotonic() + 20
        while query(lambda: Delivery.select().where(Delivery.status == 'sent').count()) < issues:
            assert time.monotonic() < end, 'deliveries were not recorded as sent'
            time.sleep(0.1)

        # kill -9 the leader: the other takes over within a few tries and runs the jobs.
        leader_index = leading.index(True)
        killed, survivor = servers[leader_index], servers[1 - leader_index]
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(10)
        started = time.monotonic()
        while not survivor.health()['leader']:
            assert time.monotonic() - started < 10 * RETRY + 5, survivor.output()
            time.sleep(0.2)
        takeover = time.monotonic() - started
        print(f'takeover after kill -9: {takeover:.1f} s (retry every {RETRY} s)')
        fresh = make_event(project.key, ISSUES + 1, 0, 0)
        assert request(survivor.base, 'POST', '/api/v1/errors', fresh)[0] == 202
        sent = receiver.wait_for(issues + 1, deadline=40)
        assert len(sent) == issues + 1 and len(set(sent)) == issues + 1, sent
        assert 'now runs the scheduled jobs' in survivor.output()
    finally:
        codes = [server.stop() for server in servers]
    assert codes[1 - leader_index] == 0  # the survivor stops cleanly on SIGTERM


def send_batches_crossed(servers, part):
    """One batch to both servers at once, the second in reverse order."""
    orders = [list(part), list(reversed(part))]
    barrier = threading.Barrier(len(servers))
    answers = [None] * len(servers)

    def send(index):
        barrier.wait(5)
        answers[index] = request(servers[index].base, 'POST', '/api/v1/errors/batch', orders[index])

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(servers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def check_counts(events, project_id, duplicates):
    """Every aggregate equals what the distinct events imply: nothing counted twice or lost."""
    by_issue = collections.defaultdict(list)
    for event in events:
        by_issue[event['exception']['type']].append(event)

    with db.database.connection_context():
        assert Event.select().count() == len(events)
        assert len({e.event_id for e in Event.select(Event.event_id)}) == len(events)
        issues = {issue.type: issue for issue in Issue.select()}
        assert set(issues) == set(by_issue)
        for kind, group in by_issue.items():
            issue = issues[kind]
            users = {e['user']['id'] for e in group}
            accounts = {e['account']['id'] for e in group}
            assert issue.event_count == len(group), kind
            assert issue.user_count == len(users), kind
            assert issue.account_count == len(accounts), kind
            assert IssueUser.select().where(IssueUser.issue == issue.id).count() == len(users)
            assert IssueAccount.select().where(IssueAccount.issue == issue.id).count() == len(accounts)
            hourly = (IssueHourly.select(fn.SUM(IssueHourly.event_count))
                      .where(IssueHourly.issue == issue.id).scalar())
            assert hourly == len(group), kind
            per_user = (IssueUser.select(fn.SUM(IssueUser.event_count))
                        .where(IssueUser.issue == issue.id).scalar())
            assert per_user == len(group), kind
        refused = (DroppedCount.select(fn.SUM(DroppedCount.count))
                   .where(DroppedCount.project == project_id, DroppedCount.reason == 'duplicate')
                   .scalar())
        assert refused == duplicates


@pytest.mark.slow
def test_a_server_recovers_when_its_database_connections_are_cut(shared, tmp_path):
    """PostgreSQL: every session of the server is terminated (as a restart or a failover would):
    the writer and the pool reconnect and the leader takes its lock again. SQLite: another
    process holds the write lock for a second: the writer waits its turn. Either way, at most a
    retryable 503 and then 202s, with every 202 stored."""
    url, _receiver = shared
    [server], project = start_servers(url, tmp_path, ['solo'])
    try:
        assert server.health()['leader'] is True
        first = make_event(project.key, 1, 1, 1)
        assert request(server.base, 'POST', '/api/v1/errors', first)[0] == 202
        stored = [first['event_id']]
        statuses = []
        with cut_connections(url):
            for _attempt in range(5):
                event = make_event(project.key, 1, 1, 1)
                status, _body = request(server.base, 'POST', '/api/v1/errors', event)
                statuses.append(status)
                if status == 202:
                    stored.append(event['event_id'])
        print(f'answers while the connections were cut: {statuses}')
        assert statuses[-1] == 202 and set(statuses) <= {202, 503}, statuses
        assert statuses.count(503) <= 1, statuses
        end = time.monotonic() + 10 * RETRY + 5
        while not server.health()['leader']:
            assert time.monotonic() < end, server.output()
            time.sleep(0.2)
        with db.database.connection_context():
            found = {e.event_id for e in Event.select(Event.event_id)}
        assert found == set(stored)
    finally:
        assert server.stop() == 0, server.output()


class cut_connections:
    """PostgreSQL: pg_terminate_backend on every other session of the database (the server's);
    SQLite: the write lock held by this process for a second while the requests go on."""

    def __init__(self, url):
        self.url = url
        self.thread = None

    def __enter__(self):
        db.open_database(self.url)
        if db.is_postgresql(self.url):
            with db.database.connection_context():
                cut = db.database.execute_sql(
                    'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity '
                    'WHERE datname = current_database() AND pid <> pg_backend_pid()').fetchone()[0]
            assert cut >= 2, cut  # at least the writer's and the leader's sessions
        else:
            held = threading.Event()

            def hold():
                with db.database.connection_context():
                    with db.database.atomic():  # BEGIN IMMEDIATE: the write lock
                        held.set()
                        time.sleep(1)

            self.thread = threading.Thread(target=hold)
            self.thread.start()
            held.wait(5)
        return self

    def __exit__(self, *exc):
        if self.thread is not None:
            self.thread.join(10)


@pytest.mark.slow
def test_file_lock_elects_one_process_and_hands_over(tmp_path):
    """SQLite's leader: a second lock on the same file waits; it takes over once the first is
    released, and a process that dies (kill -9) releases it with its file descriptor."""
    url = f'sqlite:///{tmp_path}/p.db'
    first = Leader(lock_for(url), retry_seconds=0.05).start()
    second = Leader(lock_for(url), retry_seconds=0.05).start()
    try:
        assert first.is_leader and not second.is_leader
        assert isinstance(first.lock, FileLock) and first.lock.path == tmp_path / 'p.db.leader'
        ran = []
        job = second.guard(lambda: ran.append('second'))
        job()
        first.guard(lambda: ran.append('first'))()
        assert ran == ['first']
        first.stop()
        deadline = time.monotonic() + 5
        while not second.is_leader and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second.is_leader
        job()
        assert ran == ['first', 'second']
    finally:
        first.stop()
        second.stop()
    # A process holding the lock and killed with SIGKILL leaves it free at once.
    holder = subprocess.Popen(
        [sys.executable, '-c', ('import time\n'
                                'from proliferate.leader import lock_for\n'
                                f'assert lock_for({url!r}).acquire()\n'
                                'print("held", flush=True)\n'
                                'time.sleep(60)\n')],
        cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b'held'
        waiting = lock_for(url)
        assert waiting.acquire() is False
        holder.kill()
        holder.wait(10)
        assert waiting.acquire() is True
        waiting.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        holder.stdout.close()


@pytest.mark.slow
def test_the_bench_runs_two_processes_on_this_database(config, tmp_path):
    """bench/run_ingest.py --processes 2 on the configured database (PostgreSQL or a SQLite file)
    completes, and every acknowledged event is stored once (no speed asserted)."""
    url = config.database_url
    args = [sys.executable, str(ROOT / 'bench' / 'run_ingest.py'), '--server', 'proliferate',
            '--database-url', url, '--processes', '2', '--events', '300', '--seconds', '30',
            '--concurrency', '4', '--batch', '1,20', '--warmup', '10', '--mix', 'unique', '--json']
    if db.is_postgresql(url):
        args.append('--reset')
    env = {**os.environ, 'TMPDIR': str(tmp_path)}
    env.pop('PROLIFERATE_TEST_DATABASE_URL', None)
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout)
    [server] = summary['servers']
    assert server['processes'] == 2 and summary['ok'], summary['problems']
    assert [f['events_acked'] for f in server['scenarios']] == [300, 300]
    assert server['verification'] == {'acked': 610, 'missing': 0, 'duplicated': 0}
    assert server['events_stored'] == 610 and server['exit_code'] == 0
    assert len(server['log'].split(', ')) == 2  # a log for each process


def test_the_load_generator_spreads_its_connections_over_the_ports():
    """bench/loadgen.py with a list of ports: connection i goes to port i % n, as a balancer
    spreads keep-alive connections over processes."""
    sys.path.insert(0, str(ROOT / 'bench'))
    import events  # noqa: PLC0415 (bench/ is not a package)
    import loadgen  # noqa: PLC0415
    counts = collections.Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
            counts[self.server.server_address[1]] += 1
            reply = json.dumps({'event_id': body['event_id']}).encode()
            self.send_response(202)
            self.send_header('Content-Length', str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    servers = [http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        ports = [s.server_address[1] for s in servers]
        source = events.EventSource(seed=2, api_key='pk_spread', pool_size=64)
        result = loadgen.run_load(host='127.0.0.1', port=ports, source=source, start=0,
                                  events=40, batch=1, concurrency=4, seconds=30)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert result.acked == 40
    assert set(counts) == set(ports) and sum(counts.values()) == 40, counts



def test_a_release_created_by_two_sessions_at_once_is_one_release(config):
    """Two writers (two server processes) create the same release at once: the second INSERT
    waits for the first transaction, meets the unique index, and ensure_release reads the winner's
    row instead of failing the upload. On SQLite the second writer waits for the write lock and
    finds the row at once."""
    from proliferate.models import Release  # noqa: PLC0415
    from proliferate.sourcemaps.releases import ensure_release  # noqa: PLC0415

    db.open_database(config.database_url)
    db.migrate()
    project = make_project()
    now = times.utcnow()
    inserted = threading.Event()
    commit = threading.Event()
    results = {}

    def first():
        with db.database.connection_context():
            with db.database.atomic():
                results['first'] = ensure_release(project.id, 'shop@1', now)
                inserted.set()
                commit.wait(10)

    def second():
        inserted.wait(10)
        with db.database.connection_context():
            with db.database.atomic():
                results['second'] = ensure_release(project.id, 'shop@1', now)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inserted.wait(10)
    if db.is_postgresql(config.database_url):
        # Commit only once the second session waits on the first one's row.
        end = time.monotonic() + 10
        while not query(lambda: db.database.execute_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                'AND datname = current_database()').fetchone()[0]):
            assert time.monotonic() < end, 'the second INSERT never waited'
            time.sleep(0.02)
    else:
        time.sleep(0.3)
    commit.set()
    for thread in threads:
        thread.join(20)
    (release, created), (again, created_again) = results['first'], results['second']
    assert created is True and created_again is False and again.id == release.id
    assert query(lambda: Release.select().count()) == 1


# Each starter imports the command first, then runs `proliferate migrate` at one shared instant.
STARTER = '''
import sys
import time
from proliferate.cli import main
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
raise SystemExit(main(['migrate']))
'''


@pytest.mark.slow
def test_processes_migrating_one_new_sqlite_file_at_once_all_succeed(tmp_path):
    """Servers started together on a database file that does not exist yet: connecting already
    writes to a new file (the switch to WAL), so they take turns from before connecting; the
    second used to die with "database is locked". Several rounds, each on a new file."""
    for round_number in range(5):
        path = tmp_path / f'new{round_number}.db'
        env = dict(os.environ, PROLIFERATE_DATABASE_URL=f'sqlite:///{path}')
        env.pop('PROLIFERATE_TEST_DATABASE_URL', None)
        start_at = str(time.time() + 1.5)
        starters = [subprocess.Popen([sys.executable, '-c', STARTER, start_at], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    for _ in range(2)]
        outputs = [starter.communicate(timeout=60)[0] for starter in starters]
        assert [starter.returncode for starter in starters] == [0, 0], outputs
        db.open_database(f'sqlite:///{path}')
        try:
            with db.database.connection_context():
                applied = {name for name, in db.database.execute_sql(
                    'SELECT name FROM schema_migration')}
                journal, = db.database.execute_sql('PRAGMA journal_mode').fetchone()
        finally:
            db.database.close()
        assert applied == {p.stem for p in db.MIGRATIONS_DIR.glob('[0-9]*.py')}
        assert journal == 'wal'
