"""Fixtures only: a real database file per test, the real writer, the app, the real Waitress
server on a free loopback port, and a settable clock. Helpers live in factories.py (data),
pageclient.py (clients, starting and stopping the server) and browser.py (Chromium)."""

import os
import shutil
import types
from pathlib import Path

import markers
import pytest
from argon2 import PasswordHasher
from browser import chromium_browser  # noqa: F401  (session fixture, one Playwright for all modules)
from factories import FakeClock
from factories import database_url_for
from factories import make_project
from factories import make_token
from factories import make_user
from factories import reset_database
from pageclient import HttpClient
from pageclient import PageClient
from pageclient import start_server
from pageclient import stop_server
from test_notify import Inbox
from test_notify import start_smtp

from proliferate import auth
from proliferate import db
from proliferate import times
from proliferate.app import create_app
from proliferate.config import Config
from proliferate.server import build_services


def pytest_collection_modifyitems(config, items):
    """PROLIFERATE_TEST_DATABASE_ONLY=1 (CI's PostgreSQL run, with PROLIFERATE_TEST_DATABASE_URL):
    only the tests that use the database fixture `config` run; the others never touch the
    configured database and have just run on SQLite. Tests marked `postgresql_only` run only
    on PostgreSQL. Both are deselected, not skipped."""
    on_postgresql = os.environ.get('PROLIFERATE_TEST_DATABASE_URL', '').startswith('postgres')
    database_only = os.environ.get('PROLIFERATE_TEST_DATABASE_ONLY') == '1'

    def runs(item):
        # `postgresql_only` tests (a PostgreSQL restart) are deselected on SQLite runs; CI runs
        # them in its PostgreSQL run.
        if not on_postgresql and item.get_closest_marker('postgresql_only'):
            return False
        return not database_only or 'config' in getattr(item, 'fixturenames', ())

    keep = [item for item in items if runs(item)]
    dropped = [item for item in items if not runs(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """`browser` tests need Chromium and `network` tests the package registries: without them a
    test is skipped with the reason, or fails under CI=true. Asked before any fixture starts."""
    names = {mark.name for mark in item.iter_markers()} & {'browser', 'network'}
    if not names:
        return
    verdict = markers.decide(
        names, ci=markers.is_ci(), urls=markers.registries(),
        chromium=lambda: markers.chromium_problem(markers.chromium_path()),
        registry=markers.registry_problem)
    if verdict is None:
        return
    action, reason = verdict
    if action == 'fail':
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope='session', autouse=True)
def cheap_password_hashing():
    """Argon2id still, at its smallest cost: the defaults spend ~0.2 s of CPU a hash, and the page
    and sign-in tests hash hundreds of times. The parameters travel in each hash, so a password
    set here verifies anywhere (and one set by a `proliferate` subprocess verifies here)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, '_hasher', PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        yield


@pytest.fixture
def config(tmp_path):
    url = database_url_for(tmp_path)
    reset_database(url)
    return Config(database_url=url)


@pytest.fixture
def clock():
    """A settable clock starting at factories.START (2025-01-15 10:30 UTC, a Wednesday). A test
    that asks for it gets it in the writer, the app and the live server as well."""
    return FakeClock()


@pytest.fixture
def clock_in_use(request):
    """The test's `clock` if it asked for one, else the wall clock: what the writer, the app
    and the live server read."""
    if 'clock' in request.fixturenames:
        return request.getfixturevalue('clock')
    return times.utcnow


@pytest.fixture(scope='session')
def migrated_sqlite(tmp_path_factory):
    """One SQLite file migrated once for the run (migrating costs ~0.2 s; hundreds of tests)."""
    path = tmp_path_factory.mktemp('template') / 'migrated.db'
    db.open_database(f'sqlite:///{path}')
    db.migrate()  # connects and closes: the file is checkpointed, no WAL beside it
    return path


@pytest.fixture
def services(config, clock_in_use, request):
    if config.database_url.startswith('sqlite:///'):
        # A copy of the migrated file where a new one would be migrated: build_services still
        # runs migrate(), which finds nothing to do. A test that wants the unmigrated file uses
        # `config` without `services`.
        path = Path(config.database_url.removeprefix('sqlite:///'))
        if not path.exists():
            shutil.copyfile(request.getfixturevalue('migrated_sqlite'), path)
    writer, drops, store = build_services(config, clock=clock_in_use)
    yield types.SimpleNamespace(writer=writer, drops=drops, store=store)
    writer.stop()
    if not db.database.is_closed():
        db.database.close()


@pytest.fixture
def app(config, services, clock_in_use):
    return create_app(config, writer=services.writer, drops=services.drops, clock=clock_in_use)


@pytest.fixture
def client(app):
    import falcon.testing
    return falcon.testing.TestClient(app)


@pytest.fixture
def live_server(app):
    server, thread = start_server(app)
    yield f'http://127.0.0.1:{server.effective_port}'
    stop_server(server, thread)


@pytest.fixture
def project(services):
    return make_project()


@pytest.fixture
def http(live_server):
    return HttpClient(live_server)


@pytest.fixture
def read_api(live_server, project):
    return HttpClient(live_server, make_token(project.org_id))


@pytest.fixture
def owner(services):
    """A signed-up owner of the organization 'acme'."""
    return make_user('owner@example.com')


@pytest.fixture
def web(services):
    """The project 'web' of 'acme', with its ingest key."""
    return make_project('web')


@pytest.fixture
def browser(client, owner):
    """The pages as the owner sees them, signed in (a cookie-keeping test client)."""
    page = PageClient(client)
    page.login(owner.email)
    return page


# Modules whose tests print a measured figure (faults, crash rounds, the single file): CI's log
# shows those lines after the run, since pytest keeps a passing test's output to itself.
FIGURE_MODULES = ('test_faults_', 'test_durability', 'test_binary')


def pytest_terminal_summary(terminalreporter):
    lines = []
    for report in terminalreporter.stats.get('passed', []):
        module = report.nodeid.split('::', 1)[0].rsplit('/', 1)[-1]
        if report.when == 'call' and module.startswith(FIGURE_MODULES) and report.capstdout:
            lines.extend(f'{report.nodeid}: {line}' for line in report.capstdout.splitlines())
    if lines:
        terminalreporter.section('figures')
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def inbox():
    """A real SMTP server (aiosmtpd) on a loopback port that keeps every message it accepts."""
    inbox = Inbox()
    controller = start_smtp(inbox)
    inbox.port = controller.port
    yield inbox
    controller.stop()
