"""Notifications as a new user meets them: the settings page and the delivery log (cookies, CSRF,
roles, escaping), and one end-to-end run on the real Waitress server with real SMTP and webhook
servers on loopback: setup, alert, regression after resolve, switch to a daily digest."""

import datetime
import hashlib
import hmac
import html
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from factories import make_user
from pageclient import HttpClient
from pageclient import PageClient
from seed import SEED_EVENT
from test_notify import Receiver
from test_notify import error
from test_notify import free_port
from test_notify import ingest

from proliferate import db
from proliferate import jobs
from proliferate import times
from proliferate.config import Config
from proliferate.models import Delivery
from proliferate.models import NotificationPreference
from proliferate.models import NotificationSettings
from proliferate.models import Webhook

BASE_URL = 'http://errors.example.test'


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def config(config, inbox):
    """The server configured the way the README says: PROLIFERATE_* variables (on the test
    database of conftest's config)."""
    return Config.from_env({
        'PROLIFERATE_DATABASE_URL': config.database_url,
        'PROLIFERATE_BASE_URL': BASE_URL,
        'PROLIFERATE_SMTP_HOST': '127.0.0.1',
        'PROLIFERATE_SMTP_PORT': str(inbox.port),
        'PROLIFERATE_SMTP_STARTTLS': 'false',
        'PROLIFERATE_SMTP_SSL': '0',
        'PROLIFERATE_SMTP_FROM': 'alerts@errors.example.test',
    })


def query(fn):
    with db.database.connection_context():
        return fn()


def page_text(result):
    return html.unescape(re.sub(r'<[^>]+>', ' ', result.text))


SETTINGS_FORM = {
    'delivery_mode': 'immediate', 'digest_hour': '9', 'digest_weekday': '0',
    'trigger_new_issue': 'on', 'trigger_regression': 'on', 'trigger_spike': 'on',
    'spike_events': '100', 'spike_minutes': '60', 'accounts_threshold': '10',
    'min_level': 'warning', 'environments': '', 'cooldown_minutes': '60', 'hourly_cap': '20',
}


# -- the pages (falcon TestClient with cookies) ----------------------------------------------------

def test_settings_page_saves_preferences_and_refuses_bad_input(client, services):
    owner = make_user('owner@example.test')
    browser = PageClient(client)
    browser.login(owner.email)
    page = browser.get('/orgs/acme/notifications')
    assert 'Notifications' in page.text and 'name="delivery_mode"' in page.text
    # The page adds its own tab until the header navigation has one.
    assert '<a href="/orgs/acme/notifications" aria-current="page">Notifications</a>' in page.text

    form = dict(SETTINGS_FORM, delivery_mode='digest_weekly', digest_hour='7', digest_weekday='4',
                spike_events='50', spike_minutes='5', min_level='error',
                environments='production, eu', trigger_accounts='on', accounts_threshold='3')
    del form['trigger_regression']
    result = browser.post('/orgs/acme/notifications', form)
    assert result.status_code == 303
    assert result.headers['location'] == '/orgs/acme/notifications?notice=notifications_saved'
    row = query(lambda: NotificationSettings.get(NotificationSettings.organization == owner.org_id))
    assert (row.delivery_mode, row.digest_hour, row.digest_weekday) == ('digest_weekly', 7, 4)
    assert (row.spike_events, row.spike_minutes, row.min_level) == (50, 5, 'error')
    assert row.environments == 'production, eu' and row.trigger_accounts
    assert not row.trigger_regression and row.last_digest_at is not None

    page = browser.get('/orgs/acme/notifications?notice=notifications_saved')
    assert 'Notification settings saved.' in page.text
    assert '<option value="digest_weekly" selected>' in page.text
    assert 'name="trigger_regression">' in page.text  # unchecked
    assert 'value="production, eu"' in page.text

    bad = browser.post('/orgs/acme/notifications', dict(form, digest_hour='25', hourly_cap='0'))
    assert bad.status_code == 400
    assert 'Digest hour: a whole number between 0 and 23' in page_text(bad)
    assert 'Messages per channel per hour' in page_text(bad)
    assert query(lambda: NotificationSettings.get_by_id(row.id).digest_hour) == 7

    # Without the form's CSRF token the post is refused.
    forged = browser.post('/orgs/acme/notifications', form, csrf=False)
    assert forged.status_code == 403


def test_members_choose_their_email_but_cannot_change_the_organization(client, services):
    make_user('owner@example.test')
    member = make_user('dev@example.test', role='member')
    browser = PageClient(client)
    browser.login(member.email)
    page = browser.get('/orgs/acme/notifications')
    assert '<fieldset disabled>' in page.text
    assert 'Add webhook' not in page.text and 'Delivery log' not in page.text
    assert browser.post('/orgs/acme/notifications', SETTINGS_FORM).status_code == 403
    assert browser.post('/orgs/acme/notifications/webhooks',
                        {'url': 'https://example.test/h'}).status_code == 403
    assert browser.get('/orgs/acme/deliveries', expect=403)

    result = browser.post('/orgs/acme/notifications/me', {'email': 'digest'})
    assert result.status_code == 303
    choice = query(lambda: NotificationPreference.select(NotificationPreference.email).scalar())
    assert choice == 'digest'
    page = browser.get('/orgs/acme/notifications?notice=email_choice_saved')
    assert 'value="digest" checked' in page.text
    # Another organization's page does not exist for this user.
    make_user('other@example.test', org_slug='other')
    browser.get('/orgs/other/notifications', expect=404)


def test_webhooks_and_the_test_button(client, services, inbox, receiver):
    make_user('owner@example.test')
    browser = PageClient(client)
    browser.login('owner@example.test')
    browser.get('/orgs/acme/notifications')
    refused = browser.post('/orgs/acme/notifications/webhooks', {'url': 'file:///etc/passwd'})
    assert refused.status_code == 400 and 'must be an http:// or https:// URL' in refused.text

    added = browser.post('/orgs/acme/notifications/webhooks',
                         {'url': receiver.url('/ci'), 'kind': 'generic', 'name': '<script>x</script>'})
    assert added.status_code == 200
    hook = query(lambda: Webhook.get())
    assert hook.secret.startswith('whsec_')
    assert f'<code id="new-secret" class="key">{hook.secret}</code>' in added.text
    assert '&lt;script&gt;x&lt;/script&gt;' in added.text and '<script>x' not in added.text
    later = browser.get('/orgs/acme/notifications')
    assert hook.secret not in later.text and hook.secret[-4:] in later.text

    result = browser.post('/orgs/acme/notifications/test')
    assert result.status_code == 200
    report = page_text(result)
    assert 'owner@example.test' in report and receiver.url('/ci') in report
    assert report.count('sent') >= 2 and 'failed' not in report
    [mail] = inbox.messages
    assert mail.to == ['owner@example.test']
    assert mail.subject == '[Proliferate] Test message from Proliferate for Acme'
    [post] = receiver.requests
    signed = hmac.new(hook.secret.encode(),
                      post.headers['X-Proliferate-Timestamp'].encode() + b'.' + post.body,
                      hashlib.sha256).hexdigest()
    assert post.headers['X-Proliferate-Signature'] == f'sha256={signed}'

    # Paused: the test skips it; deleted: gone.
    browser.post(f'/orgs/acme/notifications/webhooks/{hook.id}', {'action': 'pause'})
    assert query(lambda: Webhook.get_by_id(hook.id).is_active) is False
    receiver.status = 500
    result = browser.post('/orgs/acme/notifications/test')
    assert len(receiver.requests) == 1
    browser.post(f'/orgs/acme/notifications/webhooks/{hook.id}', {'action': 'delete'})
    assert query(lambda: Webhook.select().count()) == 0
    assert browser.post('/orgs/acme/notifications/webhooks/999', {'action': 'delete'}).status_code == 404


def test_delivery_log_shows_sent_failed_and_retrying(client, services, config, receiver, project):
    make_user('owner@example.test')
    browser = PageClient(client)
    browser.login('owner@example.test')
    browser.get('/orgs/acme/notifications')
    browser.post('/orgs/acme/notifications/webhooks', {'url': receiver.url('/flaky')})
    browser.post('/orgs/acme/notifications/webhooks', {'url': receiver.url('/gone'), 'kind': 'slack'})
    receiver.status = 404  # both answer 404: Slack's answer to a revoked hook is permanent
    ingest(client, error(project, message='<img src=x onerror=alert(1)>'))
    jobs.send_outbox(config, writer=services.writer)
    receiver.status = 503
    ingest(client, error(project, fn='other'))
    jobs.send_outbox(config, writer=services.writer)

    log = browser.get('/orgs/acme/deliveries')
    text = page_text(log)
    assert 'HTTP 404' in text and 'HTTP 503' in text
    assert 'retrying' in text and 'failed' in text and 'sent' in text  # the mails went out
    assert '&lt;img src=x onerror=alert(1)&gt;' in log.text and '<img src=x' not in log.text
    failed = browser.get('/orgs/acme/deliveries?status=failed')
    assert page_text(failed).count('HTTP 404') == 2 and 'HTTP 503' not in page_text(failed)
    statuses = query(lambda: sorted(d.status for d in Delivery.select()))
    assert statuses == ['failed', 'failed', 'pending', 'pending', 'sent', 'sent']
    browser.get('/orgs/acme/deliveries?status=bogus', expect=400)


# -- end to end on the real server --------------------------------------------------------------

class LiveBrowser:
    """urllib with a cookie jar: what a browser does with our forms (follows 303s)."""

    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = None

    def open(self, path, fields=None):
        data = None
        if fields is not None:
            data = urllib.parse.urlencode({'csrf_token': self.csrf, **fields}).encode()
        request = urllib.request.Request(self.base + path, data=data)
        try:
            with self.opener.open(request, timeout=30) as response:
                status, body, url = response.status, response.read().decode(), response.url
        except urllib.error.HTTPError as failure:
            status, body, url = failure.code, failure.read().decode(), failure.url
        found = re.search(r'name="csrf_token" value="([^"]+)"', body)
        if found:
            self.csrf = html.unescape(found.group(1))
        return status, body, url


def test_new_user_gets_alert_regression_and_daily_digest(live_server, http, config, services,
                                                         inbox, receiver):
    browser = LiveBrowser(live_server)
    # First run: the setup form makes the owner, the organization and the project.
    browser.open('/setup')
    status, body, _url = browser.open('/setup', {
        'email': 'founder@example.test', 'name': 'Founder', 'org_name': 'Acme',
        'project_name': 'web', 'password': 'correct horse battery',
        'password_confirm': 'correct horse battery'})
    assert status == 200
    key = re.search(r'pk_[0-9a-f]+', body).group(0)

    # Configure a webhook on the settings page (SMTP comes from PROLIFERATE_SMTP_*).
    browser.open('/orgs/acme/notifications')
    status, body, _url = browser.open('/orgs/acme/notifications/webhooks',
                                      {'url': receiver.url('/alerts'), 'kind': 'generic'})
    assert status == 200
    secret = re.search(r'id="new-secret" class="key">(whsec_[^<]+)<', body).group(1)
    # A read-API token, for the script that resolves issues.
    browser.open('/tokens')
    status, body, _url = browser.open('/tokens', {'name': 'ops'})
    token = re.search(r'id="new-token" class="key">([^<]+)<', body).group(1)

    # A new error: the alert arrives by email and webhook.
    status, _headers, _body = http.post('/api/v1/errors', {'api_key': key, **SEED_EVENT})
    assert status == 202
    jobs.send_outbox(config, writer=services.writer)
    [mail] = inbox.take()
    assert mail.to == ['founder@example.test']
    assert mail.subject == "[Proliferate] New issue in web: TypeError: Cannot read property 'foo' of undefined"
    issue_id = int(re.search(rf'{BASE_URL}/issues/(\d+)', mail.text).group(1))
    [post] = receiver.take()
    expected = hmac.new(secret.encode(), post.headers['X-Proliferate-Timestamp'].encode() + b'.'
                        + post.body, hashlib.sha256).hexdigest()
    assert post.headers['X-Proliferate-Signature'] == f'sha256={expected}'
    assert post.json['issue']['id'] == issue_id and post.json['trigger'] == 'new_issue'

    # Resolved through the read API, then the error comes back: a regression alert.
    api = type(http)(live_server, token)
    status, _headers, body = api.request('PATCH', f'/api/v1/issues/{issue_id}', {'status': 'resolved'})
    assert (status, body['status']) == (200, 'resolved')
    again = dict(SEED_EVENT, api_key=key, event_id=uuid.uuid4().hex, release='v1.2.4')
    assert http.post('/api/v1/errors', again)[0] == 202
    jobs.send_outbox(config, writer=services.writer)
    [mail] = inbox.take()
    assert mail.subject.startswith('[Proliferate] Regression in web (release v1.2.4): TypeError')
    assert receiver.take()[0].json['trigger'] == 'regression'

    # Switch to a daily digest at the next full hour: errors now wait for it.
    now = times.utcnow()
    hour = (now + datetime.timedelta(hours=1)).hour
    browser.open('/orgs/acme/notifications')
    status, body, url = browser.open('/orgs/acme/notifications', dict(
        SETTINGS_FORM, delivery_mode='digest_daily', digest_hour=str(hour)))
    assert status == 200 and url.endswith('notice=notifications_saved')
    other = {'api_key': key, 'event_id': uuid.uuid4().hex, 'timestamp': now.isoformat() + 'Z',
             'type': 'exception', 'level': 'error', 'environment': 'production',
             'exception': {'type': 'RangeError', 'message': 'Maximum call stack size exceeded',
                           'stack': 'RangeError: Maximum call stack size exceeded\n'
                                    '    at recurse (tree.js:7:3)\n    at walk (tree.js:20:9)'}}
    assert http.post('/api/v1/errors', other)[0] == 202
    stats = jobs.send_outbox(config, writer=services.writer)
    assert stats['digest'] == 1 and inbox.messages == [] and receiver.requests == []

    at_hour = (now + datetime.timedelta(hours=1)).replace(minute=2, second=0, microsecond=0)
    assert jobs.send_digests(config, writer=services.writer,
                             clock=lambda: at_hour - datetime.timedelta(minutes=5)) == {}
    jobs.send_digests(config, writer=services.writer, clock=lambda: at_hour)
    [mail] = inbox.take()
    assert mail.to == ['founder@example.test']
    assert mail.subject.startswith('[Proliferate] Daily digest for Acme: 1 new')
    assert 'New issues (1)' in mail.text and 'RangeError: Maximum call stack size exceeded' in mail.text
    assert f'{BASE_URL}/issues/' in mail.text
    [post] = receiver.take()
    assert post.json['type'] == 'digest' and post.json['new'][0]['title'].startswith('RangeError')

    # The delivery log tells the story.
    status, body, _url = browser.open('/orgs/acme/deliveries')
    assert status == 200
    assert body.count('badge-resolved">sent<') == 6  # 3 mails + 3 webhook posts


@pytest.mark.slow
def test_the_running_server_sends_alerts_on_its_own(tmp_path, inbox):
    """`proliferate serve` with PROLIFERATE_SMTP_*: its scheduler sends the alert within one
    send_outbox interval (10 s) of the 202, with no job called by hand."""
    port = free_port()
    env = dict(os.environ, PROLIFERATE_DATABASE_URL=f'sqlite:///{tmp_path}/serve.db',
               PROLIFERATE_PORT=str(port), PROLIFERATE_SMTP_HOST='127.0.0.1',
               PROLIFERATE_SMTP_PORT=str(inbox.port), PROLIFERATE_BASE_URL=BASE_URL)
    command = [sys.executable, '-m', 'proliferate']
    subprocess.run(command + ['migrate'], env=env, check=True, capture_output=True)
    subprocess.run(command + ['user', 'create', 'me@example.test', '--org', 'acme'], env=env,
                   check=True, capture_output=True)
    created = subprocess.run(command + ['project', 'create', 'web', '--org', 'acme'], env=env,
                             check=True, capture_output=True, text=True)
    key = created.stdout.split()[-1]
    server = subprocess.Popen(command + ['serve'], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        base = f'http://127.0.0.1:{port}'
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + '/healthz', timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        started = time.monotonic()
        assert HttpClient(base).post('/api/v1/errors', dict(SEED_EVENT, api_key=key))[0] == 202
        while not inbox.messages and time.monotonic() - started < 25:
            time.sleep(0.2)
        waited = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    [mail] = inbox.messages
    assert mail.subject.startswith('[Proliferate] New issue in web: TypeError')
    assert waited < 12, waited
    assert "notifications: {'processed': 1, 'send': 1, 'sent': 1}" in output
