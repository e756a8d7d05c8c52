"""Operations: the access log (secrets out of query strings, text and JSON lines, quiet
scheduler and Waitress), /metrics scraped from a live server and parsed, the scheduled jobs' run
and failure counts, and each condition of the admin banner seen through the page."""

import dataclasses
import datetime
import io
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request

import falcon.testing
import pytest
from factories import event
from factories import make_user
from pageclient import PageClient
from pageclient import start_server
from pageclient import stop_server

from proliferate import auth
from proliferate import check
from proliferate import db
from proliferate import logs
from proliferate import metrics
from proliferate.app import create_app
from proliferate.ingest.writer import Writer
from proliferate.jobs import build_scheduler
from proliferate.models import Delivery
from proliferate.models import Organization
from proliferate.models import User


def post_event(client, body):
    return client.simulate_post('/api/v1/errors', json=body)


# -- logs ---------------------------------------------------------------------------------------

def test_access_log_line_per_request_without_secrets(client, project, caplog):
    caplog.set_level(logging.INFO, logger='proliferate.access')
    client.simulate_get('/healthz', query_string='sentry_key=0123abcd&sentry_version=7&x=1')
    client.simulate_get('/healthz', query_string='api_key=pk_secret&token=t0k&X-Auth=zz')
    client.simulate_get('/no/such%0Aforged page')
    result = post_event(client, event(project.key))
    assert result.status_code == 202
    records = [r for r in caplog.records if r.name == 'proliferate.access']
    assert [r.status for r in records] == [200, 200, 404, 202]
    text = '\n'.join(r.getMessage() for r in records)
    for secret in ('0123abcd', 'pk_secret', 't0k', 'zz'):
        assert secret not in text
    assert records[0].path == '/healthz?sentry_key=[redacted]&sentry_version=7&x=1'
    assert records[2].path == '/no/such%0Aforged%20page'  # no forged line
    assert records[3].method == 'POST' and records[3].path == '/api/v1/errors'
    assert all(isinstance(r.duration_ms, float) and r.duration_ms >= 0 for r in records)
    assert re.fullmatch(r'POST /api/v1/errors 202 \d+\.\dms 127\.0\.0\.1', records[3].getMessage())


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level,
             {name: logging.getLogger(name).level for name in ('apscheduler', 'waitress.queue')})
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_json_lines_and_quiet_loggers(restore_logging):
    stream = io.StringIO()
    logs.setup('INFO', 'json', stream=stream)
    # The scheduler's routine INFO and Waitress's queue-depth warning are held back.
    logging.getLogger('apscheduler.scheduler').info('Adding job tentatively')
    logging.getLogger('waitress.queue').warning('Task queue depth is %d', 3)
    logging.getLogger('apscheduler.executors.default').error('Job "x" raised an exception')
    logs.ACCESS.info('GET / 200 1.0ms 127.0.0.1', extra={
        'method': 'GET', 'path': '/', 'status': 200, 'duration_ms': 1.0, 'client': '127.0.0.1'})
    logging.getLogger('proliferate.test').debug('not at INFO')
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line['message'] for line in lines] == ['Job "x" raised an exception',
                                                   'GET / 200 1.0ms 127.0.0.1']
    access = lines[1]
    assert access['logger'] == 'proliferate.access' and access['level'] == 'INFO'
    assert {access[k] for k in ('method', 'path', 'status', 'duration_ms', 'client')} == {
        'GET', '/', 200, 1.0, '127.0.0.1'}
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', access['time'])

    stream = io.StringIO()
    logs.setup('DEBUG', 'text', stream=stream)
    logging.getLogger('apscheduler.scheduler').info('Adding job tentatively')
    logging.getLogger('waitress.queue').warning('Task queue depth is %d', 3)
    assert 'Adding job tentatively' in stream.getvalue()
    assert 'INFO apscheduler.scheduler: ' in stream.getvalue()
    assert 'Task queue depth is 3' in stream.getvalue()


# -- /metrics -----------------------------------------------------------------------------------

SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|\+Inf|NaN)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text):
    """The Prometheus text format, strictly: every sample belongs to a metric declared by
    HELP and TYPE before it; histogram buckets rise and end at +Inf == _count."""
    assert text.endswith('\n')
    families, kinds = {}, {}
    current = None
    for line in text.splitlines():
        if line.startswith('# HELP '):
            current = line.split()[2]
            assert current not in families, f'{current} declared twice'
            families[current] = []
        elif line.startswith('# TYPE '):
            _h, _t, name, kind = line.split()
            assert name == current and kind in ('counter', 'gauge', 'histogram')
            kinds[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, line
            name, _braces, raw_labels, value = match.groups()
            assert name == current or (kinds[current] == 'histogram' and name in (
                current + '_bucket', current + '_sum', current + '_count')), line
            pairs = dict((k, v) for k, v, _sep in LABEL.findall(raw_labels or ''))
            families[current].append((name, pairs, float(value)))
    for name, kind in kinds.items():
        if kind == 'histogram':
            buckets = [v for n, _p, v in families[name] if n.endswith('_bucket')]
            assert buckets == sorted(buckets)
            assert [p for n, p, _v in families[name] if n.endswith('_bucket')][-1]['le'] == '+Inf'
            [count] = [v for n, _p, v in families[name] if n.endswith('_count')]
            assert buckets[-1] == count
    return families


def value(families, name, **wanted):
    samples = [sample for family in families.values() for sample in family]
    found = [v for n, labels, v in samples
             if n == name and all(labels.get(k) == str(x) for k, x in wanted.items())]
    assert len(found) == 1, (name, wanted, families.get(name))
    return found[0]


def fetch(url, token=None):
    request = urllib.request.Request(url, headers={'Authorization': f'Bearer {token}'} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
            return answer.status, answer.headers['Content-Type'], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers['Content-Type'], error.read().decode()


def admin_token(org_id, email, *, is_admin):
    make_user(email, is_admin=is_admin, role='owner')
    with db.database.connection_context():
        user = User.get(User.email == email)
        token, _row = auth.create_token(user, Organization.get_by_id(org_id))
    return token


def test_metrics_scraped_from_a_live_server(config, services, project, live_server):
    http = falcon.testing.TestClient(create_app(config, writer=services.writer, drops=services.drops))
    for n in range(3):
        assert post_event(http, event(project.key, event_id=f'm{n}')).status_code == 202
    assert post_event(http, event(project.key, event_id='m0')).status_code == 202  # a duplicate
    # One bad event in a batch is refused and counted as invalid; the good one is stored.
    batch = http.simulate_post('/api/v1/errors/batch', json=[
        event(project.key, event_id='m3'), event(project.key, level='nonsense')])
    assert [r['status'] for r in batch.json['results']] == ['ok', 'rejected']
    deadline = time.monotonic() + 10
    admin = admin_token(project.org_id, 'root@example.com', is_admin=True)
    member = admin_token(project.org_id, 'owner@example.com', is_admin=False)
    while True:  # the refusals reach the table with the writer's next idle flush (1 s)
        status, content_type, text = fetch(live_server + '/metrics', admin)
        assert status == 200, text
        families = parse_metrics(text)
        refused = {labels['reason']: v for n, labels, v in families['proliferate_events_refused_total']}
        if refused.get('invalid') and refused.get('duplicate') or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert content_type.startswith('text/plain; version=0.0.4')
    assert value(families, 'proliferate_events_accepted_total', project_id=project.id,
                 project='web') == 4
    assert refused == {'invalid': 1, 'duplicate': 1}
    assert value(families, 'proliferate_writer_queue_events') == 0
    assert value(families, 'proliferate_writer_queue_limit_events') == config.writer_queue_size
    assert value(families, 'proliferate_writer_commit_seconds_count') >= 1
    assert value(families, 'proliferate_writer_commit_seconds_sum') > 0
    assert value(families, 'proliferate_database_bytes') > 10_000
    assert value(families, 'proliferate_notification_deliveries', status='failed') == 0
    # Refused without a token (loopback is not allowed by default) and with a non-admin's.
    assert fetch(live_server + '/metrics')[0] == 401
    assert fetch(live_server + '/metrics', member)[0] == 403
    assert fetch(live_server + '/metrics', 'prt_wrong')[0] == 401


def test_metrics_allowed_addresses_and_job_counts(config, services, project):
    stats = metrics.JobStats()
    scheduler = build_scheduler(config, writer=services.writer, job_stats=stats)
    scheduler.get_job('checkpoint_wal').func()
    scheduler.get_job('checkpoint_wal').func()

    def boom():
        raise RuntimeError('the disk is read-only')

    with pytest.raises(RuntimeError):
        stats.tracked('backup_database', boom)()
    with db.database.connection_context():
        Delivery.create(organization=project.org_id, channel='email', target='a@example.com',
                        kind='alert', status='sent')
    allowed = dataclasses.replace(config, metrics_allow='10.0.0.0/8, 127.0.0.1')
    app = create_app(allowed, writer=services.writer, job_stats=stats)
    server, thread = start_server(app)
    try:
        status, _type, text = fetch(f'http://127.0.0.1:{server.effective_port}/metrics')
    finally:
        stop_server(server, thread)
    assert status == 200, text
    families = parse_metrics(text)
    assert value(families, 'proliferate_job_runs_total', job='checkpoint_wal') == 2
    assert value(families, 'proliferate_job_failures_total', job='checkpoint_wal') == 0
    assert value(families, 'proliferate_job_failures_total', job='backup_database') == 1
    assert value(families, 'proliferate_job_last_run_failed', job='backup_database') == 1
    assert value(families, 'proliferate_notification_deliveries', status='sent') == 1
    with pytest.raises(ValueError):
        dataclasses.replace(config, metrics_allow='localhost')


def test_label_values_are_escaped():
    text = metrics.Text()
    text.metric('x_total', 'counter', 'help', [('', {'project': 'a"b\\c\nd'}, 1)])
    assert text.render().splitlines()[-1] == 'x_total{project="a\\"b\\\\c\\nd"} 1'


# -- the admin banner ---------------------------------------------------------------------------

def banner_page(config, services, *, writer=None, job_stats=None, email='root@example.com',
                is_admin=True):
    """The organization's issue list as a signed-in user sees it; returns its HTML."""
    app = create_app(config, writer=writer or services.writer, job_stats=job_stats)
    with db.database.connection_context():
        exists = User.select().where(User.email == email).exists()
    if not exists:
        make_user(email, is_admin=is_admin)
    pages = PageClient(falcon.testing.TestClient(app))
    pages.login(email)
    return pages.get('/', follow=True).text


def attention_of(html):
    found = re.search(r'<section class="attention".*?</section>', html, re.S)
    return found.group(0) if found else ''


@pytest.fixture
def banner_db(config, services, project):
    return project


def add_deliveries(*rows):
    with db.database.connection_context():
        for row in rows:
            Delivery.create(**row)


def test_banner_quiet_when_all_is_well_and_hidden_from_non_admins(config, services, banner_db):
    assert attention_of(banner_page(config, services)) == ''
    stats = metrics.JobStats()
    stats.record('send_outbox', 0.1, RuntimeError('SMTP down'))
    html = banner_page(config, services, job_stats=stats, email='owner@example.com', is_admin=False)
    assert 'SMTP down' not in html and attention_of(html) == ''


def test_banner_writer_queue_full(config, services, banner_db):
    stalled = Writer(lambda items: items, queue_size=10)  # never started: nothing is taken
    stalled.submit(list(range(8)))
    assert 'The writer queue is 80% full' in attention_of(banner_page(config, services, writer=stalled))


def test_banner_failed_job(config, services, banner_db):
    stats = metrics.JobStats()

    def failing():
        raise RuntimeError('<b>SMTP down</b>')

    with pytest.raises(RuntimeError):
        stats.tracked('send_outbox', failing)()
    banner = attention_of(banner_page(config, services, job_stats=stats))
    assert 'The scheduled job send_outbox failed on its last run' in banner
    assert '&lt;b&gt;SMTP down&lt;/b&gt;' in banner  # escaped
    stats.record('send_outbox', 0.1, None)  # a later run succeeded
    assert attention_of(banner_page(config, services, job_stats=stats)) == ''


def test_banner_failing_deliveries(config, services, banner_db):
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    old = now - datetime.timedelta(hours=3)
    common = {'organization': banner_db.org_id, 'channel': 'webhook', 'target': 'https://x.test/',
              'kind': 'alert'}
    add_deliveries({**common, 'status': 'failed', 'created_at': old, 'attempts': 8},  # too old
                   {**common, 'status': 'sent', 'created_at': now, 'attempts': 1})
    assert attention_of(banner_page(config, services)) == ''
    add_deliveries({**common, 'status': 'failed', 'created_at': now, 'attempts': 1},
                   {**common, 'status': 'pending', 'created_at': old, 'attempts': 3,
                    'last_error': '503'})
    assert '2 notification deliveries failed' in attention_of(banner_page(config, services))


def test_banner_low_disk(config, services, banner_db, monkeypatch):
    usage = check.shutil.disk_usage

    def nearly_full(path):
        real = usage(path)
        return type(real)(real.total, real.total - real.total // 20, real.total // 20)

    monkeypatch.setattr(check.shutil, 'disk_usage', nearly_full)
    banner = attention_of(banner_page(config, services))
    if not config.database_url.startswith('sqlite'):
        assert banner == ''  # PostgreSQL's disk is its server's
        return
    assert 'Low disk space' in banner and '(5%)' in banner


def test_banner_backups_overdue(config, services, banner_db, tmp_path):
    backups = tmp_path / 'backups'
    backups.mkdir()
    with_backups = dataclasses.replace(config, backup_dir=str(backups))
    # A new installation has had no night yet: no banner.
    assert attention_of(banner_page(with_backups, services)) == ''
    stale = backups / 'proliferate-20250101T031700Z.db'
    stale.write_bytes(b'x')
    three_days_ago = time.time() - 3 * 86400
    os.utime(stale, (three_days_ago, three_days_ago))
    banner = attention_of(banner_page(with_backups, services))
    if not config.database_url.startswith('sqlite'):
        assert banner == ''  # the scheduled backup copies SQLite only
        return
    assert f'No backup in two days in {backups}' in banner
    fresh = backups / 'proliferate-20250104T031700Z.db'
    fresh.write_bytes(b'x')
    assert attention_of(banner_page(with_backups, services)) == ''


def test_banner_is_cached(config, services, banner_db):
    calls = []
    attention = check.Attention(config=config, writer=services.writer,
                                job_stats=metrics.JobStats(), ttl=60)
    original = attention.compute
    attention.compute = lambda: calls.append(1) or original()
    with db.database.connection_context():
        for _ in range(20):
            attention.messages()
    assert calls == [1]
