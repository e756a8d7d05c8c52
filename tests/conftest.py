"""Fixtures: a real database file per test, the real writer, the app, and the real Waitress
server on a free loopback port."""

import json
import os
import threading
import types
import urllib.error
import urllib.request

import pytest
import waitress

from browser import chromium_browser  # noqa: F401  (session fixture, one Playwright for all modules)

from proliferate import auth
from proliferate import orgs
from proliferate import db
from proliferate.app import create_app
from proliferate.config import Config
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.server import build_services


def database_url_for(tmp_path):
    """PROLIFERATE_TEST_DATABASE_URL runs the suite on another database (PostgreSQL)."""
    return os.environ.get('PROLIFERATE_TEST_DATABASE_URL') or f'sqlite:///{tmp_path}/p.db'


def reset_database(url):
    """PostgreSQL is one database for the whole run: empty it before each test, as a fresh
    SQLite file would be. Rows are deleted children first and sequences restarted (TRUNCATE
    cost 0.7 s a test, this 10 ms); a schema whose migrations differ is dropped and recreated."""
    if url.startswith('sqlite'):
        return
    database = db.open_database(url)
    with database.connection_context():
        # A server a test failed to stop must not hang the run: fail loudly instead.
        database.execute_sql("SET lock_timeout = '10s'")
        with database.atomic():
            tables = set(database.get_tables())
            applied = set()
            if 'schema_migration' in tables:
                applied = {name for name, in database.execute_sql('SELECT name FROM schema_migration')}
            expected = {path.stem for path in db.MIGRATIONS_DIR.glob('[0-9]*.py')}
            if applied != expected:
                database.execute_sql('DROP SCHEMA public CASCADE')
                database.execute_sql('CREATE SCHEMA public')
                return
            edges = database.execute_sql(
                'SELECT c.conrelid::regclass::text, c.confrelid::regclass::text '
                'FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace '
                "WHERE c.contype = 'f' AND n.nspname = current_schema()").fetchall()
            for table in children_first(tables - {'schema_migration'}, edges):
                database.execute_sql(f'DELETE FROM "{table}"')
            for name, in database.execute_sql(
                    'SELECT sequence_name FROM information_schema.sequences '
                    'WHERE sequence_schema = current_schema()').fetchall():
                database.execute_sql('SELECT setval(%s, 1, false)', (name,))
    database.close()


def children_first(tables, edges):
    """Tables ordered so that a table comes before every table it references."""
    refs = {table: set() for table in tables}
    for child, parent in edges:
        child, parent = child.strip('"'), parent.strip('"')
        if child in refs and parent in refs and child != parent:
            refs[child].add(parent)
    referenced_by = {table: {c for c, ps in refs.items() if table in ps} for table in tables}
    order = []
    done = set()
    while len(order) < len(tables):
        ready = sorted(t for t in tables if t not in done and referenced_by[t] <= done)
        if not ready:  # a cycle: the rest in any order (the DELETE then fails loudly)
            ready = sorted(tables - done)
        order.extend(ready)
        done.update(ready)
    return order


def pytest_collection_modifyitems(config, items):
    """PROLIFERATE_TEST_DATABASE_ONLY=1 (CI's PostgreSQL run, with PROLIFERATE_TEST_DATABASE_URL):
    only the tests that use the database fixture `config` run; the others never touch the
    configured database and have just run on SQLite. They are deselected, not skipped."""
    if os.environ.get('PROLIFERATE_TEST_DATABASE_ONLY') != '1':
        return
    keep = [item for item in items if 'config' in getattr(item, 'fixturenames', ())]
    dropped = [item for item in items if 'config' not in getattr(item, 'fixturenames', ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
def config(tmp_path):
    url = database_url_for(tmp_path)
    reset_database(url)
    return Config(database_url=url)


@pytest.fixture
def services(config):
    writer, drops, store = build_services(config)
    yield types.SimpleNamespace(writer=writer, drops=drops, store=store)
    writer.stop()
    if not db.database.is_closed():
        db.database.close()


@pytest.fixture
def app(config, services):
    return create_app(config, writer=services.writer, drops=services.drops)


@pytest.fixture
def client(app):
    import falcon.testing
    return falcon.testing.TestClient(app)


@pytest.fixture
def live_server(app):
    server = waitress.create_server(app, host='127.0.0.1', port=0, threads=8)
    thread = threading.Thread(target=run_server, args=(server,), daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.effective_port}'
    stop_server(server, thread)


def run_server(server):
    try:
        server.run()
    except OSError:
        # A worker thread finishing a response can close its socket while the loop, being
        # stopped, still selects on it (EBADF); only an error before the stop is a failure.
        if not getattr(server, 'stopping', False):
            raise


def stop_server(server, thread):
    """Close every channel from inside the loop's own thread (closing sockets under a running
    select() from outside races with it), then let the worker threads finish."""
    def close_all():
        for channel in list(server._map.values()):
            channel.close()
    server.stopping = True
    server.trigger.pull_trigger(close_all)
    thread.join(5)
    server.task_dispatcher.shutdown()


def make_project(name='web', org_slug='acme'):
    with db.database.connection_context():
        with db.database.atomic():
            org = Organization.get_or_none(Organization.slug == org_slug) or Organization.create(
                name=org_slug.title(), slug=org_slug)
            project = Project.create(organization=org, name=name, slug=name)
            key = auth.create_ingest_key(project)
    return types.SimpleNamespace(id=project.id, key=key.key, org_id=org.id, slug=name)


def make_token(org_id, email='reader@example.com'):
    with db.database.connection_context():
        with db.database.atomic():
            user = orgs.create_user(email, 'correct horse battery staple')
            org = Organization.get_by_id(org_id)
            orgs.add_member(org, user, 'member')
            token, _row = auth.create_token(user, org)
    return token


@pytest.fixture
def project(services):
    return make_project()


class HttpClient:
    """A tiny urllib client for the live server: (status, headers, parsed JSON or text)."""

    def __init__(self, base_url, token=None):
        self.base_url = base_url
        self.token = token

    def request(self, method, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {'Content-Type': 'application/json'} if data is not None else {}
        if self.token:
            all_headers['Authorization'] = f'Bearer {self.token}'
        all_headers.update(headers or {})
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, reply_headers, content = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, reply_headers, content = error.code, error.headers, error.read()
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = content.decode('utf-8', 'replace')
        return status, reply_headers, parsed

    def get(self, path, **kwargs):
        status, _headers, body = self.request('GET', path, **kwargs)
        assert status == 200, (path, status, body)
        return body

    def post(self, path, body=None, **kwargs):
        return self.request('POST', path, body, **kwargs)


@pytest.fixture
def http(live_server):
    return HttpClient(live_server)


@pytest.fixture
def read_api(live_server, project):
    return HttpClient(live_server, make_token(project.org_id))
