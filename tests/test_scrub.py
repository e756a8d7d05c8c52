"""Scrubbing wired into ingest: secrets are filtered before anything is stored, per
project settings come with the key lookup, and `proliferate project set` changes them.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

from factories import make_project
from factories import make_token
from pageclient import HttpClient

from proliferate import db
from proliferate.ingest.payload import decode_event
from proliferate.models import Event

ROOT = Path(__file__).resolve().parent.parent
CARD = '4111 1111 1111 1111'


def secret_event(key):
    return {
        'api_key': key, 'event_id': uuid.uuid4().hex, 'timestamp': '2025-01-15T10:30:00Z',
        'type': 'exception', 'url': 'https://shop.test/checkout?step=2&token=abc123',
        'exception': {'type': 'TypeError', 'message': 'boom'},
        'user': {'id': 'u-42', 'email': 'ada@example.com', 'session_id': 's-1', 'plan': 'pro'},
        'account': {'id': 'acct-7', 'name': 'Acme', 'api_key': 'sk_live_1'},
        'extra': {'password': 'hunter2', 'order': {'card': CARD, 'items': 3}, 'ssn': '078-05-1120'},
        'tags': {'Authorization': 'Bearer x', 'region': 'eu'},
        'breadcrumbs': [{'category': 'fetch', 'message': 'POST /login?password=hunter2',
                         'data': {'url': '/api/pay?apikey=k1&amount=5', 'Cookie': 'sid=1'}}],
    }


def stored(project_id, event_id):
    """The payload as it sits in the database (not as the API shows it)."""
    with db.database.connection_context():
        row = Event.get(Event.project == project_id, Event.event_id == event_id)
    return decode_event(row.data)


def test_secrets_are_filtered_before_they_are_stored(live_server, project):
    http = HttpClient(live_server)
    body = secret_event(project.key)
    status, _headers, _answer = http.post('/api/v1/errors', body)
    assert status == 202
    event = stored(project.id, body['event_id'])
    assert event['url'] == 'https://shop.test/checkout?step=2&token=[Filtered]'
    assert event['extra']['password'] == '[Filtered]'
    assert event['extra']['order'] == {'card': '[Filtered]', 'items': 3}
    assert event['extra']['ssn'] == '078-05-1120'  # not a default key
    assert event['tags'] == {'Authorization': '[Filtered]', 'region': 'eu'}
    assert event['user']['id'] == 'u-42' and event['user']['email'] == 'ada@example.com'
    assert event['user']['data'] == {'session_id': '[Filtered]', 'plan': 'pro'}
    assert event['account'] == {'id': 'acct-7', 'name': 'Acme', 'data': {'api_key': '[Filtered]'}}
    crumb = event['breadcrumbs'][0]
    assert crumb['message'] == 'POST /login?password=[Filtered]'
    assert crumb['data'] == {'url': '/api/pay?apikey=[Filtered]&amount=5', 'Cookie': '[Filtered]'}
    raw = str(event)
    for secret in ('hunter2', 'abc123', 'sk_live_1', '4111', 'Bearer x', 'sid=1', 'k1'):
        assert secret not in raw
    # The affected user is still counted by its id; the batch endpoint scrubs the same way.
    read_api = HttpClient(live_server, make_token(project.org_id))
    issue_id = read_api.get(f'/api/v1/projects/{project.id}/issues')['issues'][0]['id']
    assert read_api.get(f'/api/v1/issues/{issue_id}/users')['users'][0]['id'] == 'u-42'
    batch_body = secret_event(project.key)
    assert http.post('/api/v1/errors/batch', [batch_body])[0] == 202
    assert stored(project.id, batch_body['event_id'])['extra']['password'] == '[Filtered]'


def cli(config, *args):
    env = {**os.environ, 'PROLIFERATE_DATABASE_URL': config.database_url}
    return subprocess.run([sys.executable, '-m', 'proliferate', *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_project_settings_turn_scrubbing_off_or_add_keys(config, live_server, services):
    plain = make_project('plain')
    extra = make_project('extra')
    # Before the first event of each key: the key cache reads the settings with the key.
    done = cli(config, 'project', 'set', 'plain', '--scrub', 'off')
    assert done.returncode == 0, done.stderr
    assert 'scrub off' in done.stdout
    done = cli(config, 'project', 'set', 'extra', '--scrub-keys', 'SSN, x-internal-id')
    assert done.returncode == 0, done.stderr
    http = HttpClient(live_server)

    body = secret_event(plain.key)
    assert http.post('/api/v1/errors', body)[0] == 202
    event = stored(plain.id, body['event_id'])
    assert event['extra']['password'] == 'hunter2'
    assert event['url'].endswith('token=abc123')

    body = secret_event(extra.key)
    body['extra']['X_Internal_Id'] = 'i-9'
    assert http.post('/api/v1/errors', body)[0] == 202
    event = stored(extra.id, body['event_id'])
    assert event['extra']['ssn'] == '[Filtered]'
    assert event['extra']['X_Internal_Id'] == '[Filtered]'
    assert event['extra']['password'] == '[Filtered]'  # the defaults still apply
