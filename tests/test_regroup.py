"""The grouping upgrade: a database written by grouping version 1 (built here by the old code
path: migrations 0001-0006, then issues and events as that release stored them, fingerprinted
by compute_fingerprint_v1) keeps its issues once upgraded: the next event of an old issue lands in
it, and old issues that version 2 sees as one are merged into the oldest."""

import datetime
import shutil
import threading
import types
import uuid

import pytest
import waitress
from factories import make_token
from pageclient import HttpClient
from pageclient import run_server
from pageclient import stop_server
from playhouse import migrations

from proliferate import db
from proliferate import regroup
from proliferate.app import create_app
from proliferate.ingest.grouping import compute_fingerprint_v1
from proliferate.ingest.normalize import normalize_event
from proliferate.ingest.prepare import prepare_event
from proliferate.models import Issue
from proliferate.models import IssueActivity
from proliferate.models import IssueFingerprint
from proliferate.models import Organization
from proliferate.server import build_services

APP_FRAMES = '''Traceback (most recent call last):
  File "/srv/shop/app/views.py", line 40, in checkout
    total = price_total(cart)
  File "/srv/shop/app/prices.py", line 21, in price_total
    prices = fetch_prices(ids)
  File "/srv/shop/app/prices.py", line 12, in fetch_prices
    response = requests.get(PRICES_URL, params={'ids': ids})
'''
# The same bug under two versions of the library: version 1 grouped on the library's frames,
# so it made two issues; version 2 groups on the application's and sees one.
LIBRARY_31 = '''  File "/srv/shop/venv/lib/python3.11/site-packages/requests/api.py", line 73, in get
    return request('get', url, params=params, **kwargs)
  File "/srv/shop/venv/lib/python3.11/site-packages/requests/sessions.py", line 589, in request
    resp = self.send(prep, **send_kwargs)
  File "/srv/shop/venv/lib/python3.11/site-packages/requests/adapters.py", line 519, in send
    raise ConnectionError(e, request=request)
requests.exceptions.ConnectionError: Max retries exceeded with url: /prices
'''
LIBRARY_32 = LIBRARY_31.replace('in send', 'in _send_request').replace('in request', 'in _request')
OTHER = '''Traceback (most recent call last):
  File "/srv/shop/app/jobs.py", line 9, in sync_inventory
    stock = load()
  File "/srv/shop/app/jobs.py", line 3, in load
    return int(raw)
ValueError: invalid literal for int() with base 10: 'x'
'''


def body(key, stack, **fields):
    return {'api_key': key, 'event_id': uuid.uuid4().hex, 'timestamp': '2025-01-15T10:30:00Z',
            'type': 'exception', 'exception': {'stack': stack}, 'release': '2.4.0', **fields}


def store_as_version_1(project_id, payload, when):
    """An issue and its event as the release before grouping version 2 stored them (raw SQL on
    the columns it knew), fingerprinted by version 1. -> the issue id."""
    _key, timestamp, event = normalize_event(payload, received_at=when)
    item = prepare_event(event, project_id, when, when)
    fingerprint = compute_fingerprint_v1(event_type='exception', exception_type=item['type'],
                                         message=item['message'], frames=item['frames'])
    p = db.database.param
    cursor = db.database.execute_sql(
        'INSERT INTO issue (project_id, fingerprint, type, title, culprit, level, status, '
        'first_seen, last_seen, first_release, last_release, event_count, user_count, '
        f'account_count, is_regressed) VALUES ({", ".join([p] * 15)}) RETURNING id',
        (project_id, fingerprint, item['type'], item['title'], item['culprit'], 'error',
         'unresolved', when, when, '2.4.0', '2.4.0', 1, 0, 0, False))
    issue_id = cursor.fetchone()[0]
    cursor = db.database.execute_sql(
        'INSERT INTO event (project_id, issue_id, event_id, timestamp, received_at, data) '
        f'VALUES ({p}, {p}, {p}, {p}, {p}, {p}) RETURNING id',
        (project_id, issue_id, event['event_id'], when, when, item['data']))
    db.database.execute_sql(f'UPDATE issue SET last_event = {p} WHERE id = {p}',
                            (cursor.fetchone()[0], issue_id))
    return issue_id


@pytest.fixture
def old_database(config, tmp_path):
    """A database at migration 0006 holding three issues of version 1: A (fetch_prices under
    requests 2.31), B (the same under 2.32, a day later) and C (another bug)."""
    old = tmp_path / 'migrations-0006'
    old.mkdir()
    for path in sorted(db.MIGRATIONS_DIR.glob('000[1-6]_*.py')):
        shutil.copy(path, old / path.name)
    db.open_database(config.database_url)
    database = db.database
    with database.connection_context():
        if not db.is_sqlite():  # one PostgreSQL database for the whole run: start it afresh
            database.execute_sql('DROP SCHEMA public CASCADE')
            database.execute_sql('CREATE SCHEMA public')
        with db.postgres_migration_lock():
            migrations.run(database.obj, str(old))
        with database.atomic():
            org = Organization.create(name='Acme', slug='acme')
            p = db.database.param
            # Only the columns of that release (the models know later ones).
            project_id = db.database.execute_sql(
                'INSERT INTO project (organization_id, name, slug, created_at, scrub_enabled, '
                f'scrub_extra_keys) VALUES ({p}, {p}, {p}, {p}, {p}, {p}) RETURNING id',
                (org.id, 'shop', 'shop', datetime.datetime(2025, 1, 1), True, '')).fetchone()[0]
            key = 'pk_' + uuid.uuid4().hex
            db.database.execute_sql(
                f'INSERT INTO project_key (project_id, key, label, created_at) VALUES '
                f'({p}, {p}, {p}, {p})', (project_id, key, '', datetime.datetime(2025, 1, 1)))
            day = datetime.datetime(2025, 1, 10)
            ids = types.SimpleNamespace(
                a=store_as_version_1(project_id, body(key, APP_FRAMES + LIBRARY_31), day),
                b=store_as_version_1(project_id, body(key, APP_FRAMES + LIBRARY_32),
                                     day + datetime.timedelta(days=1)),
                c=store_as_version_1(project_id, body(key, OTHER), day))
    database.close()
    return types.SimpleNamespace(project_id=project_id, key=key, org_id=org.id, ids=ids)


def test_an_old_database_keeps_its_issues_after_the_upgrade(config, old_database):
    old = old_database
    assert old.ids.a != old.ids.b
    writer, _drops, _store = build_services(config)  # migrates to 0007 and upgrades
    app = create_app(config, writer=writer, drops=_drops)
    server = waitress.create_server(app, host='127.0.0.1', port=0, threads=4)
    thread = threading.Thread(target=run_server, args=(server,), daemon=True)
    thread.start()
    try:
        base = f'http://127.0.0.1:{server.effective_port}'
        http = HttpClient(base)
        read_api = HttpClient(base, make_token(old.org_id))
        with db.database.connection_context():
            # A and B are one issue now: B (the newer) merged into A, and the log says so.
            assert Issue.get_or_none(Issue.id == old.ids.b) is None
            merged = Issue.get_by_id(old.ids.a)
            assert merged.event_count == 2 and merged.grouping_version == 2
            [note] = IssueActivity.select().where(IssueActivity.issue == old.ids.a,
                                                  IssueActivity.kind == 'merged')
            assert 'grouping upgrade' in note.detail and f'#{old.ids.b}' in note.detail
            assert Issue.select().where(Issue.grouping_version.is_null()).count() == 0
        # Every old fingerprint stays, beside the new key.
        a = read_api.get(f'/api/v1/issues/{old.ids.a}')
        assert len(a['fingerprints']) == 3 and a['fingerprints'][0] == a['fingerprint']
        # The next event of each old issue lands in it: no new issue.
        for stack, _issue_id in ((APP_FRAMES + LIBRARY_31, old.ids.a),
                                (APP_FRAMES + LIBRARY_32, old.ids.a), (OTHER, old.ids.c)):
            status, _h, reply = http.post('/api/v1/errors', body(old.key, stack, release='2.4.1'))
            assert status == 202, reply
        issues = read_api.get(f'/api/v1/projects/{old.project_id}/issues?status=all')['issues']
        assert sorted(i['id'] for i in issues) == sorted([old.ids.a, old.ids.c])
        counts = {i['id']: i['event_count'] for i in issues}
        assert counts == {old.ids.a: 4, old.ids.c: 2}
        # Run again (the next start): nothing left to do.
        assert regroup.upgrade(writer) == 0
    finally:
        stop_server(server, thread)
        writer.stop()
        if not db.database.is_closed():
            db.database.close()


def test_the_upgrade_is_chunked_and_idempotent(config, old_database):
    writer, _drops, _store = build_services(config)
    try:
        with db.database.connection_context():
            rows = IssueFingerprint.select().count()
        # Three version-1 fingerprints, and the two version-2 keys (A and B share one).
        assert rows == 5
        with db.database.connection_context():
            Issue.update(grouping_version=None).execute()
        # Again, one issue per writer transaction: the keys are already there, nothing moves.
        assert regroup.upgrade(writer, limit=1) == 2
        with db.database.connection_context():
            assert IssueFingerprint.select().count() == 5
            assert Issue.select().count() == 2
    finally:
        writer.stop()
        if not db.database.is_closed():
            db.database.close()
