"""Test data in one place: the settable clock, documented-shape events, projects with their ingest
key, users with memberships, read tokens, and the per-test database. No fixtures here (those live
in conftest.py); writes go straight to the database, so call these while no writer runs a batch."""

import datetime
import os
import types
import uuid

from proliferate import auth
from proliferate import db
from proliferate import orgs
from proliferate import times
from proliferate.models import Organization
from proliferate.models import Project

# A fixed instant (a Wednesday, well inside an hour and a day): where the suite starts the clock.
START = datetime.datetime(2025, 1, 15, 10, 30)
TIMESTAMP = '2025-01-15T10:30:00Z'
PASSWORD = 'correct horse battery'
TOKEN_PASSWORD = 'correct horse battery staple'
STACK = ('TypeError: boom\n    at a (https://x.example/a.js:1:10)\n'
         '    at b (https://x.example/b.js:2:20)')


class FakeClock:
    """A clock the test sets: calling it gives a naive UTC datetime, as times.utcnow does. Hand
    it to build_services(clock=...), create_app(clock=...) and the jobs (clock=...). It may also
    start at a float and stand in for time.monotonic (the key cache, the rate limiter)."""

    def __init__(self, start=START):
        self.now = start

    def __call__(self):
        return self.now

    def set(self, value):
        self.now = value
        return value

    def advance(self, **delta):
        self.now += datetime.timedelta(**delta)
        return self.now


# -- events ---------------------------------------------------------------------------------------

def event(key, **fields):
    """An exception event in the documented shape (shared/api/error-ingestion.md); fields override
    any key (exception=... replaces the whole exception). timestamp defaults to the wall clock's
    now; pass timestamp=TIMESTAMP (or iso(clock())) where a test needs a fixed instant."""
    body = {
        'api_key': key, 'event_id': uuid.uuid4().hex, 'timestamp': None,
        'type': 'exception', 'level': 'error', 'environment': 'production', 'release': 'v1.0.0',
        'exception': {'type': 'TypeError', 'message': 'boom', 'stack': STACK},
    }
    body.update(fields)
    if body['timestamp'] is None:
        body['timestamp'] = iso(times.utcnow())
    return body


def message_event(key, message='hello', **fields):
    """A message event (no exception) in the documented shape, at the fixed TIMESTAMP."""
    body = {'api_key': key, 'event_id': uuid.uuid4().hex, 'timestamp': TIMESTAMP,
            'type': 'message', 'message': message}
    body.update(fields)
    return body


def iso(value):
    """A naive UTC datetime as an event's timestamp text."""
    return value.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


# -- organizations, projects, people ----------------------------------------------------------------

def organization(org_slug):
    return Organization.get_or_none(Organization.slug == org_slug) or Organization.create(
        name=org_slug.title(), slug=org_slug)


def make_project(name='web', org_slug='acme'):
    """A project with its ingest key: .id, .key, .org_id, .slug."""
    with db.database.connection_context():
        with db.database.atomic():
            org = organization(org_slug)
            project = Project.create(organization=org, name=name, slug=name)
            key = auth.create_ingest_key(project)
    return types.SimpleNamespace(id=project.id, key=key.key, org_id=org.id, slug=name)


def make_user(email, *, org_slug='acme', role='owner', password=PASSWORD, is_admin=False):
    """A user with a membership: .id, .email, .org_id, .org_slug."""
    with db.database.connection_context():
        with db.database.atomic():
            org = organization(org_slug)
            user = orgs.create_user(email, password, is_admin=is_admin)
            orgs.add_member(org, user, role)
    return types.SimpleNamespace(id=user.id, email=user.email, org_id=org.id, org_slug=org.slug)


def make_token(org_id, email='reader@example.com'):
    """A member of the organization and an API token of theirs (the token's text)."""
    with db.database.connection_context():
        with db.database.atomic():
            user = orgs.create_user(email, TOKEN_PASSWORD)
            org = Organization.get_by_id(org_id)
            orgs.add_member(org, user, 'member')
            token, _row = auth.create_token(user, org)
    return token


# -- the database of one test ---------------------------------------------------------------------

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
