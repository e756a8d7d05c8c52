"""The fault state the operator's views read (the writer's last write failure of a known kind and
since when), how errors are classified, the 503 answers that follow, and a key that was good a
moment ago serving while the database is away. Fast: no mount, no restart."""

import sqlite3

import falcon
import falcon.testing
import peewee
import pytest
from factories import event

from proliferate import db
from proliferate.app import create_app
from proliferate.ingest.admission import KeyCache
from proliferate.ingest.writer import StoreUnavailable
from proliferate.ingest.writer import Writer


class PsycopgLike(Exception):
    """Stands for psycopg.OperationalError: a lost connection carries no SQLSTATE."""


PsycopgLike.__module__ = 'psycopg'
PsycopgLike.__name__ = 'OperationalError'


def wrapped(error):
    """The driver's error as Peewee raises it (the original first, then its arguments)."""
    return peewee.OperationalError(error, *error.args)


class WithState(Exception):
    def __init__(self, message, sqlstate):
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(('error', 'kind'), [
    (sqlite3.OperationalError('database or disk is full'), db.DISK_FULL),
    (wrapped(sqlite3.OperationalError('database or disk is full')), db.DISK_FULL),
    (OSError(28, 'No space left on device'), db.DISK_FULL),
    (WithState('could not extend file', '53100'), db.DISK_FULL),
    (WithState('terminating connection due to administrator command', '57P01'), db.UNAVAILABLE),
    (WithState('connection failure', '08006'), db.UNAVAILABLE),
    (wrapped(PsycopgLike('the connection is closed')), db.UNAVAILABLE),
    (peewee.InterfaceError('Error, database connection not opened.'), db.UNAVAILABLE),
    (sqlite3.OperationalError('database is locked'), None),
    (WithState('duplicate key', '23505'), None),
    (ValueError('a bug'), None),
])
def test_errors_are_classified(error, kind):
    assert db.classify_error(error) == kind


def test_fault_state_begins_once_and_clears():
    now = [100.0]
    state = db.FaultState(clock=lambda: now[0])
    assert state.current() is None and state.cleared() is None
    assert state.failed(db.DISK_FULL, OSError(28, 'No space left on device')) is True
    now[0] = 103.0
    assert state.failed(db.DISK_FULL, 'database or disk is full') is False
    assert state.current() == {'kind': 'disk_full', 'error': 'database or disk is full',
                               'since': 100.0, 'seconds': 3.0}
    now[0] = 104.5
    assert state.cleared() == 4.5 and state.current() is None and state.faults == 1


def test_the_writer_reports_a_full_disk_and_clears_it_on_the_next_commit(config, services):
    full = {'on': True}

    def process(items):
        if full['on']:
            raise wrapped(sqlite3.OperationalError('database or disk is full'))
        return ['ok'] * len(items)

    writer = Writer(process).start()
    try:
        with pytest.raises(StoreUnavailable, match='disk full'):
            writer.submit([{}, {}]).wait(5)
        fault = writer.fault()
        assert fault['kind'] == 'disk_full' and 'database or disk is full' in fault['error']
        full['on'] = False
        assert writer.submit([{}]).wait(5) == ['ok']
        assert writer.fault() is None
    finally:
        writer.stop()


def test_healthz_answers_503_with_the_fault_and_recovers(config, services, clock_in_use):
    app = create_app(config, writer=services.writer, drops=services.drops, clock=clock_in_use)
    client = falcon.testing.TestClient(app)
    assert client.simulate_get('/healthz').json['status'] == 'ok'
    services.writer.faults.failed(db.DISK_FULL, 'database or disk is full')
    result = client.simulate_get('/healthz')
    assert result.status_code == 503 and result.headers['retry-after'] == '5'
    assert result.json['status'] == 'disk_full'
    assert result.json['fault']['error'] == 'database or disk is full'
    services.writer.faults.cleared()
    assert client.simulate_get('/healthz').status_code == 200


def test_a_database_away_is_503_with_retry_after_not_500(config, services, clock_in_use):
    app = create_app(config, writer=services.writer, drops=services.drops, clock=clock_in_use)

    class Away:
        def on_get(self, req, resp):
            raise wrapped(PsycopgLike('connection refused'))

    app.add_route('/away', Away())
    result = falcon.testing.TestClient(app).simulate_get('/away')
    assert result.status_code == 503 and result.headers['retry-after'] == '5'
    assert 'database unavailable' in result.text


def test_a_cached_key_serves_while_the_database_is_away(project):
    now = [0.0]
    keys = KeyCache(2.0, clock=lambda: now[0])
    found = keys.lookup(project.key)
    assert found is not None
    now[0] = 10.0  # expired: the next use reads the row again, and the database is away
    original = keys._load

    def away(key):
        raise wrapped(PsycopgLike('connection refused'))

    keys._load = away
    assert keys.lookup(project.key) == found
    with pytest.raises(peewee.OperationalError):
        keys.lookup('pk_never_seen')
    keys._load = original
    assert keys.lookup(project.key) == found


def test_ingest_answers_503_while_the_disk_is_full(client, project, services):
    services.writer.faults.failed(db.DISK_FULL, 'database or disk is full')
    original = services.writer.process

    def full(items):
        raise wrapped(sqlite3.OperationalError('database or disk is full'))

    services.writer.process = full
    try:
        result = client.simulate_post('/api/v1/errors', json=event(project.key))
    finally:
        services.writer.process = original
    assert result.status_code == 503 and result.headers['retry-after'] == '5', result.text
    assert 'disk full' in result.json['detail']
    assert client.simulate_post('/api/v1/errors', json=event(project.key)).status_code == 202
    assert services.writer.fault() is None
