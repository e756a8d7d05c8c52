"""Notifications end to end on loopback: a real SMTP server (aiosmtpd) receives the mail and a real
HTTP server the webhooks; events go through the real ingest and writer; the writer, the app, the
jobs and the helpers here all read one settable clock, so no test depends on the hour it runs at.
Covers each trigger, each delivery mode, cooldown, cap, retries and digests."""

import dataclasses
import datetime
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import types

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from factories import START
from factories import FakeClock
from factories import event
from factories import iso
from factories import make_project

from proliferate import db
from proliferate import jobs
from proliferate import orgs
from proliferate.issues import set_status
from proliferate.jobs import build_scheduler
from proliferate.models import Delivery
from proliferate.models import Issue
from proliferate.models import Organization
from proliferate.models import Outbox
from proliferate.notifications import outbox
from proliferate.notifications import rules
from proliferate.notifications import send
from proliferate.notifications import settings

BASE_URL = 'https://errors.example.test'
STACK = "{type}: {message}\n    at {fn} (app.js:42:15)\n    at handleClick (app.js:120:5)"



# -- real servers on loopback ---------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Inbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        html = message.get_body(('html',))
        self.messages.append(types.SimpleNamespace(
            to=list(envelope.rcpt_tos), message=message, subject=message['Subject'],
            text=message.get_body(('plain',)).get_content(),
            html=html.get_content() if html is not None else None,
            tls=session.ssl is not None, authenticated=session.authenticated))
        return '250 Message accepted for delivery'

    def subjects(self):
        return [m.subject for m in self.messages]

    def take(self):
        messages, self.messages = self.messages, []
        return messages


def start_smtp(inbox, port=None, **kwargs):
    controller = Controller(inbox, hostname='127.0.0.1', port=port or free_port(), **kwargs)
    controller.start()
    return controller


class Receiver:
    """A real HTTP server that records webhook POSTs and answers with .status."""

    def __init__(self, port=0):
        self.requests = []
        self.status = 200
        self.port = port
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                receiver.requests.append(types.SimpleNamespace(
                    path=self.path, headers=self.headers, body=body, json=json.loads(body)))
                self.send_response(receiver.status)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path='/hook'):
        return f'http://127.0.0.1:{self.port}{path}'

    def take(self):
        requests, self.requests = self.requests, []
        return requests

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def cfg(config, inbox):
    """The server's settings with SMTP pointing at the loopback inbox."""
    return dataclasses.replace(config, smtp_host='127.0.0.1', smtp_port=inbox.port,
                               smtp_from='alerts@errors.example.test', base_url=BASE_URL)


@pytest.fixture(scope='session')
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (real TLS with hostname checks, trusted as a CA)."""
    folder = tmp_path_factory.mktemp('tls')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-keyout', str(folder / 'key.pem'), '-out', str(folder / 'cert.pem'),
                    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
                   check=True, capture_output=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / 'cert.pem', folder / 'key.pem')
    client = ssl.create_default_context(cafile=str(folder / 'cert.pem'))
    return types.SimpleNamespace(server=server, client=client)


# -- helpers ------------------------------------------------------------------------------------

CLOCK = FakeClock()


@pytest.fixture(autouse=True)
def clock():
    """Every test here starts at factories.START (10:30, well inside an hour); asked for by name,
    the writer and the app read it too (conftest's clock_in_use), and so do the helpers below."""
    CLOCK.set(START)
    return CLOCK


def now():
    return CLOCK()


def later(**delta):
    return now() + datetime.timedelta(**delta)


def error(project, fn='processData', type_='TypeError', message="Cannot read property 'foo' of undefined",
          **fields):
    body = event(project.key, timestamp=iso(now()), exception={
        'type': type_, 'message': message, 'stack': STACK.format(type=type_, message=message, fn=fn)},
        **fields)
    if 'release' not in fields:
        del body['release']  # a release shows in the mail subjects: only where a test gives one
    return body


def ingest(client, *events):
    if len(events) == 1:
        result = client.simulate_post('/api/v1/errors', json=events[0])
    else:
        result = client.simulate_post('/api/v1/errors/batch', json=list(events))
    assert result.status_code == 202, result.text


def run(cfg, services, at=None):
    return jobs.send_outbox(cfg, writer=services.writer, clock=lambda: at or now())


def digests(cfg, services, at):
    return jobs.send_digests(cfg, writer=services.writer, clock=lambda: at)


def member(org_id, address, choice=None):
    with db.database.connection_context():
        with db.database.atomic():
            user = orgs.create_user(address)
            membership = orgs.add_member(Organization.get_by_id(org_id), user)
            if choice:
                settings.set_email_choice(membership.id, choice, now())


def configure(services, org_id, **values):
    return services.writer.call(lambda: settings.save_settings(org_id, values, now()))


def webhook(services, org_id, url, **kwargs):
    return services.writer.call(lambda: settings.add_webhook(org_id, url, **kwargs))


def query(fn):
    with db.database.connection_context():
        return fn()


def issues(project):
    return query(lambda: list(Issue.select().where(Issue.project == project.id).order_by(Issue.id)))


def deliveries(**where):
    def fetch():
        rows = Delivery.select().order_by(Delivery.id)
        for name, value in where.items():
            rows = rows.where(getattr(Delivery, name) == value)
        return list(rows)
    return query(fetch)


def resolve(services, issue_id):
    services.writer.call(lambda: set_status(issue_id, 'resolved'))


@pytest.fixture
def team(services):
    """A project whose organization has one member who gets email."""
    project = make_project()
    member(project.org_id, 'dev@example.test')
    return project


# -- triggers ---------------------------------------------------------------------------------

def test_new_issue_alert_by_email_and_signed_webhooks(cfg, services, client, team, inbox, receiver):
    generic = webhook(services, team.org_id, receiver.url('/generic'), secret='s3cret')
    webhook(services, team.org_id, receiver.url('/slack'), kind='slack')
    ingest(client, error(team))
    stats = run(cfg, services)
    assert stats['send'] == 1 and stats['sent'] == 3

    [mail] = inbox.take()
    [issue] = issues(team)
    assert mail.to == ['dev@example.test']
    assert mail.subject == "[Proliferate] New issue in web: TypeError: Cannot read property 'foo' of undefined"
    assert mail.message['From'] == 'alerts@errors.example.test'
    assert mail.message['Auto-Submitted'] == 'auto-generated'
    assert f'{BASE_URL}/issues/{issue.id}' in mail.text
    assert 'Environment: production' in mail.text
    assert f'href="{BASE_URL}/issues/{issue.id}"' in mail.html
    # Autoescaped HTML: the quote in the title cannot break out of the markup.
    assert 'Cannot read property &#39;foo&#39; of undefined' in mail.html

    by_path = {r.path: r for r in receiver.take()}
    hook = by_path['/generic']
    timestamp = hook.headers['X-Proliferate-Timestamp']
    expected = hmac.new(b's3cret', f'{timestamp}.'.encode() + hook.body, hashlib.sha256).hexdigest()
    assert hook.headers['X-Proliferate-Signature'] == f'sha256={expected}'
    assert abs(int(timestamp) - time.time()) < 60
    assert hook.headers['X-Proliferate-Event'] == 'alert'
    assert hook.headers['Content-Type'] == 'application/json'
    assert hook.json['type'] == 'alert' and hook.json['trigger'] == 'new_issue'
    assert hook.json['issue']['id'] == issue.id and hook.json['issue']['url'] == f'{BASE_URL}/issues/{issue.id}'
    assert hook.json['project'] == {'id': team.id, 'slug': 'web', 'name': 'web'}
    assert hook.json['event']['environment'] == 'production'
    assert hook.headers['X-Proliferate-Delivery'] == str(deliveries(webhook=generic.id)[0].id)
    slack = by_path['/slack'].json
    assert 'X-Proliferate-Signature' not in by_path['/slack'].headers
    assert slack['text'].startswith('New issue in web')
    assert f'<{BASE_URL}/issues/{issue.id}|' in slack['blocks'][0]['text']['text']

    assert [d.status for d in deliveries()] == ['sent', 'sent', 'sent']
    assert query(lambda: Outbox.select().where(Outbox.processed_at.is_null()).count()) == 0
    # Exactly once: the next run has nothing to send.
    assert run(cfg, services)['sent'] == 0
    assert inbox.messages == [] and receiver.requests == []


def test_regression_alert_and_cooldown(cfg, services, client, team, inbox):
    ingest(client, error(team))
    run(cfg, services)
    [issue] = issues(team)
    assert len(inbox.take()) == 1

    resolve(services, issue.id)
    ingest(client, error(team))
    assert run(cfg, services)['send'] == 1
    [mail] = inbox.take()
    assert mail.subject.startswith('[Proliferate] Regression in web: TypeError')

    # Regressed again within the hour: the cooldown holds it back.
    resolve(services, issue.id)
    ingest(client, error(team))
    assert run(cfg, services)['cooldown'] == 1
    assert inbox.take() == []

    # After the cooldown the next regression alerts again.
    resolve(services, issue.id)
    ingest(client, error(team, release='v2'))
    assert run(cfg, services, at=later(minutes=61))['send'] == 1
    [mail] = inbox.take()
    assert mail.subject.startswith('[Proliferate] Regression in web (release v2)')


def test_spike_alert_once_per_cooldown(cfg, services, client, team, inbox, receiver):
    org = team.org_id
    configure(services, org, trigger_new_issue=False, spike_events=5, spike_minutes=10)
    webhook(services, org, receiver.url())
    ingest(client, *[error(team) for _ in range(4)])
    assert run(cfg, services)['detected'] == 0
    assert inbox.take() == []

    ingest(client, error(team))
    stats = run(cfg, services)
    assert stats['detected'] == 1 and stats['send'] == 1
    [mail] = inbox.take()
    assert mail.subject.startswith('[Proliferate] Spike in web: 5 events in 10 min: TypeError')
    [hook] = receiver.take()
    assert hook.json['trigger'] == 'spike' and hook.json['detail'] == {'events': 5, 'minutes': 10}

    # The burst goes on: still the same spike, no second alert within the cooldown.
    ingest(client, *[error(team) for _ in range(10)])
    assert run(cfg, services)['detected'] == 0
    assert inbox.take() == []


def test_accounts_threshold_alert(cfg, services, client, team, inbox):
    configure(services, team.org_id, trigger_new_issue=False, trigger_accounts=True,
              accounts_threshold=3)
    ingest(client, error(team, account={'id': 'a1'}), error(team, account={'id': 'a2'}))
    run(cfg, services)
    assert inbox.take() == []
    ingest(client, error(team, account={'id': 'a3', 'name': 'Third'}))
    assert run(cfg, services)['send'] == 1
    [mail] = inbox.take()
    assert mail.subject.startswith('[Proliferate] web: 3 accounts affected: TypeError')
    assert 'Accounts:    3' in mail.text
    ingest(client, error(team, account={'id': 'a4'}))
    run(cfg, services)
    assert inbox.take() == []


def test_minimum_level_and_environment_filters(cfg, services, client, team, inbox):
    configure(services, team.org_id, min_level='error', environments='production')
    ingest(client, error(team, fn='a', level='warning'))
    ingest(client, error(team, fn='b', environment='staging'))
    ingest(client, error(team, fn='c'))
    stats = run(cfg, services)
    assert stats['filtered'] == 2 and stats['send'] == 1
    [mail] = inbox.take()
    assert 'Culprit:     c in app.js' in mail.text  # the one from production at level error


# -- delivery modes and member choices -----------------------------------------------------------

def test_mode_off_and_member_choices(cfg, services, client, team, inbox):
    member(team.org_id, 'quiet@example.test', 'off')
    member(team.org_id, 'calm@example.test', 'digest')
    ingest(client, error(team, fn='first'))
    run(cfg, services)
    assert [m.to for m in inbox.take()] == [['dev@example.test']]

    configure(services, team.org_id, delivery_mode='off')
    ingest(client, error(team, fn='second'))
    stats = run(cfg, services)
    assert stats['off'] == 1 and stats['processed'] == 1
    assert digests(cfg, services, later(days=1)).get('digests', 0) == 0
    assert inbox.take() == []


def test_digest_only_member_gets_a_daily_digest_in_an_immediate_org(cfg, services, client, team,
                                                                    inbox, clock):
    member(team.org_id, 'calm@example.test', 'digest')
    ingest(client, error(team))
    run(cfg, services)
    assert [m.to for m in inbox.take()] == [['dev@example.test']]
    # The event came at 10:30: the daily digest that holds it (09:00, the default hour) goes
    # out the next morning.
    digests(cfg, services, clock.set(START.replace(day=START.day + 1, hour=9, minute=1)))
    [mail] = inbox.take()
    assert mail.to == ['calm@example.test']
    assert mail.subject.startswith('[Proliferate] Daily digest for Acme: 1 new')


def test_hourly_digest(cfg, services, client, team, inbox, receiver):
    configure(services, team.org_id, delivery_mode='digest_hourly')
    webhook(services, team.org_id, receiver.url(), secret='k')
    ingest(client, error(team, fn='one', user={'id': 'u1'}), error(team, fn='one', user={'id': 'u2'}))
    ingest(client, error(team, fn='two'))
    assert run(cfg, services)['digest'] == 2
    assert inbox.take() == [] and receiver.take() == []

    # Not before the next hour starts.
    assert digests(cfg, services, now()).get('digests', 0) == 0
    next_hour = rules.hour_start(now()) + datetime.timedelta(hours=1, minutes=2)
    assert digests(cfg, services, next_hour)['digests'] == 2
    [mail] = inbox.take()
    assert mail.subject.startswith('[Proliferate] Hourly digest for Acme: 2 new, 3 events in 2 issues')
    assert 'New issues (2)' in mail.text and 'Top issues by events' in mail.text
    assert 'Top issues by affected users' in mail.text
    one, two = issues(team)
    assert f'{BASE_URL}/issues/{one.id}' in mail.text and '- 2 events' in mail.text
    assert re.search(r'- 1 event\s*$', mail.text, re.M)  # singular
    assert f'href="{BASE_URL}/issues/{two.id}"' in mail.html
    [hook] = receiver.take()
    assert hook.json['type'] == 'digest' and hook.json['schedule'] == 'digest_hourly'
    assert [i['id'] for i in hook.json['new']] == [one.id, two.id]
    assert hook.json['top_events'][0]['events'] == 2 and hook.json['top_users'][0]['users'] == 2
    # Once per period.
    assert digests(cfg, services, next_hour + datetime.timedelta(minutes=5)).get('digests', 0) == 0
    assert inbox.messages == []


def test_weekly_digest_on_its_day_and_hour(cfg, services, client, team, inbox):
    start = now()
    target = (start + datetime.timedelta(days=3)).replace(hour=7, minute=3, second=0, microsecond=0)
    configure(services, team.org_id, delivery_mode='digest_weekly', digest_hour=7,
              digest_weekday=target.weekday())
    ingest(client, error(team))
    run(cfg, services)
    assert inbox.take() == []
    assert digests(cfg, services, target - datetime.timedelta(hours=1)).get('digests', 0) == 0
    assert digests(cfg, services, target)['digests'] == 1
    [mail] = inbox.take()
    assert mail.subject.startswith('[Proliferate] Weekly digest for Acme: 1 new')


def test_empty_digest_is_not_sent(cfg, services, team, inbox):
    configure(services, team.org_id, delivery_mode='digest_daily', digest_hour=6)
    at = (now() + datetime.timedelta(days=1)).replace(hour=6, minute=1)
    assert digests(cfg, services, at).get('digests', 0) == 0
    assert inbox.messages == []
    # The period counts as done: the next check in it does not build it again.
    assert query(lambda: settings.load_prefs([team.org_id])[team.org_id].last_digest_at) == at


# -- cap, retries -------------------------------------------------------------------------------

def test_hourly_cap_folds_the_rest_into_one_summary(cfg, services, client, team, inbox, receiver):
    configure(services, team.org_id, hourly_cap=2)
    webhook(services, team.org_id, receiver.url(), kind='slack')
    for name in ('a', 'b', 'c', 'd', 'e'):
        ingest(client, error(team, fn=name, type_=f'Error{name}'))
    stats = run(cfg, services)
    assert stats['send'] == 5 and stats['sent'] == 4  # 2 mails + 2 Slack posts
    assert len(inbox.take()) == 2 and len(receiver.take()) == 2
    assert len(deliveries(status='held')) == 6

    # Nothing more this hour; the summary goes out at the next hour.
    assert run(cfg, services)['sent'] == 0
    next_hour = rules.hour_start(now()) + datetime.timedelta(hours=1)
    stats = run(cfg, services, at=next_hour)
    assert stats['summaries'] == 2 and stats['sent'] == 2
    [mail] = inbox.take()
    assert mail.subject == '[Proliferate] 3 more alerts for Acme (hourly cap reached)'
    for name in ('c', 'd', 'e'):
        assert f'New issue: Error{name}: ' in mail.text
    [post] = receiver.take()
    assert post.json['text'] == '3 more alerts for Acme (hourly cap reached)'
    assert post.json['blocks'][0]['text']['text'].count('\u2022 New issue') == 3
    assert len(deliveries(status='folded')) == 6 and deliveries(status='held') == []


def test_smtp_down_then_up_is_retried_with_backoff(cfg, services, client, team):
    port = free_port()  # nothing listens here yet
    down = dataclasses.replace(cfg, smtp_port=port)
    ingest(client, error(team))
    t0 = now()
    stats = run(down, services, at=t0)
    assert stats['failed'] == 1
    [row] = deliveries()
    assert (row.status, row.attempts) == ('pending', 1)
    assert 'refused' in row.last_error.lower()
    assert row.next_attempt_at == t0 + datetime.timedelta(seconds=30)

    inbox = Inbox()
    controller = start_smtp(inbox, port=port)
    try:
        assert run(down, services, at=t0 + datetime.timedelta(seconds=10))['sent'] == 0  # not due
        assert run(down, services, at=t0 + datetime.timedelta(seconds=31))['sent'] == 1
    finally:
        controller.stop()
    [mail] = inbox.messages
    assert mail.subject.startswith('[Proliferate] New issue in web')
    [row] = deliveries()
    assert (row.status, row.attempts, row.last_error) == ('sent', 2, '')


def test_webhook_failures_retry_then_give_up(cfg, services, client, team, receiver):
    configure(services, team.org_id, hourly_cap=100)
    flaky = webhook(services, team.org_id, receiver.url('/flaky'))
    gone_port = free_port()
    webhook(services, team.org_id, f'http://127.0.0.1:{gone_port}/down')
    receiver.status = 503
    ingest(client, error(team))
    t0 = now()
    run(cfg, services, at=t0)
    rows = {r.target: r for r in deliveries(channel='webhook')}
    assert rows[flaky.url].status == 'pending' and 'HTTP 503' in rows[flaky.url].last_error
    assert 'refused' in rows[f'http://127.0.0.1:{gone_port}/down'].last_error.lower()

    receiver.status = 200
    at = t0
    for attempt in range(2, rules.MAX_ATTEMPTS + 1):
        at += datetime.timedelta(seconds=rules.retry_delay(attempt - 1))
        run(cfg, services, at=at)
    rows = {r.target: r for r in deliveries(channel='webhook')}
    assert (rows[flaky.url].status, rows[flaky.url].attempts) == ('sent', 2)
    down = rows[f'http://127.0.0.1:{gone_port}/down']
    assert (down.status, down.attempts, down.next_attempt_at) == ('failed', rules.MAX_ATTEMPTS, None)
    assert len(receiver.requests) == 2  # the 503 and the success


def test_webhook_4xx_is_a_permanent_failure(cfg, services, client, team, receiver):
    webhook(services, team.org_id, receiver.url('/revoked'), kind='slack')
    receiver.status = 404
    ingest(client, error(team))
    run(cfg, services)
    [row] = deliveries(channel='webhook')
    assert (row.status, row.attempts) == ('failed', 1)
    assert row.last_error.startswith('HTTP 404')


@pytest.mark.slow
def test_a_dead_smtp_server_never_slows_ingestion(cfg, services, client, team):
    """A server that accepts and never answers: the job waits out its timeout on its own thread
    while events keep being accepted at full speed."""
    hole = socket.socket()
    hole.bind(('127.0.0.1', 0))
    hole.listen(8)
    dead = dataclasses.replace(cfg, smtp_port=hole.getsockname()[1])
    ingest(client, error(team))
    result = {}
    job = threading.Thread(target=lambda: result.update(
        outbox.run_outbox(dead, now(), writer=services.writer, timeout=2)))
    try:
        job.start()
        time.sleep(0.2)
        slowest = 0
        for number in range(20):
            started = time.monotonic()
            ingest(client, error(team, fn=f'f{number}'))
            slowest = max(slowest, time.monotonic() - started)
        assert job.is_alive()  # still waiting for the SMTP greeting
        job.join(10)
    finally:
        hole.close()
    assert slowest < 1.0
    assert result['failed'] == 1
    [row] = deliveries()
    assert row.status == 'pending' and 'timed out' in row.last_error


# -- SMTP transport options -----------------------------------------------------------------------

def authenticator(server, session, envelope, mechanism, auth_data):
    # handled=False: aiosmtpd answers the refusal (535) itself.
    return AuthResult(success=(auth_data.login, auth_data.password) == (b'alerts', b'pa55'),
                      handled=False)


def test_smtp_starttls_with_login(cfg, certificate):
    inbox = Inbox()
    controller = start_smtp(inbox, tls_context=certificate.server, require_starttls=True,
                            authenticator=authenticator)
    try:
        tls = dataclasses.replace(cfg, smtp_port=controller.port, smtp_starttls=True,
                                  smtp_username='alerts', smtp_password='pa55')
        with send.SmtpSender(tls, ssl_context=certificate.client) as sender:
            sender.send('dev@example.test', 'over STARTTLS', 'hello', '<p>hello</p>')
        wrong = dataclasses.replace(tls, smtp_password='nope')
        with pytest.raises(send.SendError) as refused:
            send.SmtpSender(wrong, ssl_context=certificate.client).connect()
        # Without STARTTLS this server refuses the mail: the flag matters.
        plain = dataclasses.replace(cfg, smtp_port=controller.port)
        with pytest.raises(send.SendError):
            with send.SmtpSender(plain) as sender:
                sender.send('dev@example.test', 'in clear', 'hello')
    finally:
        controller.stop()
    [mail] = inbox.messages
    assert mail.tls and mail.authenticated and mail.subject == 'over STARTTLS'
    assert '535' in str(refused.value)


def test_smtp_over_ssl(cfg, certificate):
    inbox = Inbox()
    controller = start_smtp(inbox, ssl_context=certificate.server, authenticator=authenticator,
                            auth_require_tls=False)
    try:
        smtps = dataclasses.replace(cfg, smtp_port=controller.port, smtp_ssl=True,
                                    smtp_username='alerts', smtp_password='pa55')
        with send.SmtpSender(smtps, ssl_context=certificate.client) as sender:
            sender.send('dev@example.test', 'over SMTPS', 'hello')
        # The default context checks the certificate: a self-signed one is refused.
        with pytest.raises(send.SendError) as untrusted:
            send.SmtpSender(smtps).connect()
    finally:
        controller.stop()
    assert [m.subject for m in inbox.messages] == ['over SMTPS']
    assert inbox.messages[0].authenticated
    assert 'CERTIFICATE_VERIFY_FAILED' in str(untrusted.value)


def test_webhook_urls_must_be_http():
    for url in ('file:///etc/passwd', 'ftp://x/y', 'http://', 'javascript:alert(1)', 'http://a b/'):
        assert send.check_webhook_url(url), url
        with pytest.raises(send.SendError) as refused:
            send.post_webhook(url, b'{}', {})
        assert refused.value.permanent
    assert send.check_webhook_url('https://hooks.slack.com/services/T/B/x') == ''


# -- the scheduler, the test command ----------------------------------------------------------------

def test_scheduler_has_the_notification_jobs(config):
    jobs_by_id = {job.id: job for job in build_scheduler(config).get_jobs()}
    assert {'send_outbox', 'send_digests'} <= set(jobs_by_id)
    assert jobs_by_id['send_outbox'].trigger.interval == datetime.timedelta(seconds=10)
    assert jobs_by_id['send_digests'].trigger.interval == datetime.timedelta(minutes=5)


@pytest.mark.slow
def test_notify_test_command(tmp_path, inbox, receiver):
    url = f'sqlite:///{tmp_path}/cli.db'
    env = dict(os.environ, PROLIFERATE_DATABASE_URL=url, PROLIFERATE_SMTP_HOST='127.0.0.1',
               PROLIFERATE_SMTP_PORT=str(inbox.port), PROLIFERATE_SMTP_STARTTLS='0')
    command = [sys.executable, '-m', 'proliferate']
    subprocess.run(command + ['migrate'], env=env, check=True, capture_output=True)
    subprocess.run(command + ['user', 'create', 'owner@example.test', '--org', 'acme', '--admin'],
                   env=env, check=True, capture_output=True)
    db.open_database(url)
    try:
        with db.database.connection_context():
            with db.database.atomic():
                org = Organization.get(Organization.slug == 'acme')
                settings.add_webhook(org.id, receiver.url('/cli'), secret='x')
    finally:
        db.database.close()
    done = subprocess.run(command + ['notify', 'test', '--org', 'acme'], env=env, check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'email owner@example.test: sent' in done.stdout
    assert f'webhook {receiver.url("/cli")}: sent' in done.stdout
    [mail] = inbox.messages
    assert mail.subject == '[Proliferate] Test message from Proliferate for acme'
    [post] = receiver.requests
    assert post.json['type'] == 'test'

    # A channel that fails is reported, and the exit status says so.
    receiver.status = 500
    done = subprocess.run(command + ['notify', 'test', '--org', 'acme'], env=env, check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert 'HTTP 500' in done.stdout


def test_old_log_rows_are_pruned_but_pending_and_account_marks_stay(cfg, services, client, team,
                                                                   receiver, inbox):
    configure(services, team.org_id, trigger_accounts=True, accounts_threshold=1)
    webhook(services, team.org_id, f'http://127.0.0.1:{free_port()}/down')
    ingest(client, error(team, account={'id': 'a1'}))
    t0 = now()
    run(cfg, services, at=t0)
    assert sorted(d.status for d in deliveries()) == ['pending', 'pending', 'sent', 'sent']
    assert digests(cfg, services, t0 + datetime.timedelta(days=29)).get('pruned', 0) == 0
    stats = digests(cfg, services, t0 + datetime.timedelta(days=31))
    assert stats['pruned'] == 3  # two sent mails, the processed new_issue row
    assert sorted(d.status for d in deliveries()) == ['pending', 'pending']
    kinds = query(lambda: [row.kind for row in Outbox.select()])
    assert kinds == ['accounts']
    # The remembered threshold still holds: no second alert for the same K.
    ingest(client, error(team, account={'id': 'a2'}))
    run(cfg, services)
    assert len(inbox.take()) == 2  # the two alerts of the first run only


def test_a_damaged_row_fails_alone(cfg, services, client, team, inbox, receiver):
    """A poison outbox row or delivery is logged and set aside; the rest still go out."""
    webhook(services, team.org_id, receiver.url())
    ingest(client, error(team, fn='first'))
    [issue] = issues(team)
    services.writer.call(lambda: Outbox.update(data='{not json').where(Outbox.issue == issue.id)
                         .execute())
    ingest(client, error(team, fn='second'))
    stats = run(cfg, services)
    assert stats['error'] == 1 and stats['send'] == 1 and stats['processed'] == 2
    assert len(inbox.take()) == 1 and len(receiver.take()) == 1

    ingest(client, error(team, fn='third'))
    plan_then_damage = query(lambda: outbox.plan_outbox(cfg, now()))
    services.writer.call(lambda: outbox.apply_outbox(plan_then_damage, now()))
    services.writer.call(lambda: Delivery.update(payload='{}').where(Delivery.channel == 'email',
                                                                     Delivery.status == 'pending')
                         .execute())
    stats = run(cfg, services)
    assert stats['failed'] == 1 and stats['sent'] == 1
    [broken] = deliveries(channel='email', status='failed')
    assert broken.last_error.startswith('KeyError') and broken.attempts == 1
