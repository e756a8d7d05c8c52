"""The writer: group commit, backpressure, isolation of a failing submission, drain on stop."""

import threading

import pytest

from proliferate import db
from proliferate.ingest.writer import QueueFull
from proliferate.ingest.writer import Writer
from proliferate.ingest.writer import WriterStopped


@pytest.fixture
def database(tmp_path):
    db.open_database(f'sqlite:///{tmp_path}/w.db')
    with db.database.connection_context():
        db.database.execute_sql('CREATE TABLE item (value INTEGER UNIQUE)')
    yield db.database
    if not db.database.is_closed():
        db.database.close()


def insert(items):
    for value in items:
        db.database.execute_sql('INSERT INTO item (value) VALUES (?)', (value,))
    return ['ok'] * len(items)


def stored():
    with db.database.connection_context():
        return sorted(v for (v,) in db.database.execute_sql('SELECT value FROM item'))


def test_concurrent_submissions_share_commits_and_all_land(database):
    gate = threading.Event()
    calls = []

    def process(items):
        gate.wait(5)  # hold the first commit so that the others queue up behind it
        calls.append(len(items))
        return insert(items)

    writer = Writer(process, queue_size=1000, batch_size=100).start()
    tickets = [writer.submit([n]) for n in range(50)]
    gate.set()
    assert [t.wait(10) for t in tickets] == [['ok']] * 50
    writer.stop()
    assert stored() == list(range(50))
    assert len(calls) < 50  # group commit: fewer transactions than submissions


def test_a_full_queue_refuses_at_once(database):
    gate = threading.Event()
    writer = Writer(lambda items: (gate.wait(5), insert(items))[1], queue_size=10).start()
    first = writer.submit(list(range(5)))
    second = writer.submit(list(range(5, 10)))
    with pytest.raises(QueueFull):
        writer.submit(list(range(100, 105)))
    gate.set()
    first.wait(5)
    second.wait(5)
    writer.stop()


def test_one_failing_submission_does_not_fail_the_others(database):
    gate = threading.Event()

    def process(items):
        gate.wait(5)
        return insert(items)

    writer = Writer(process).start()
    good = writer.submit([1, 2])
    bad = writer.submit([3, 3])  # violates UNIQUE inside its own submission
    also_good = writer.submit([4])
    gate.set()
    assert good.wait(5) == ['ok', 'ok'] and also_good.wait(5) == ['ok']
    with pytest.raises(RuntimeError):
        bad.wait(5)
    writer.stop()
    assert stored() == [1, 2, 4]


def test_stop_drains_what_was_queued_and_refuses_more(database):
    gate = threading.Event()
    writer = Writer(lambda items: (gate.wait(5), insert(items))[1]).start()
    tickets = [writer.submit([n]) for n in range(20)]
    stopper = threading.Thread(target=writer.stop)
    stopper.start()
    gate.set()
    stopper.join(10)
    assert all(t.wait(1) == ['ok'] for t in tickets)
    assert stored() == list(range(20))
    with pytest.raises(WriterStopped):
        writer.submit([99])


def test_call_runs_on_the_writer_in_a_transaction(database):
    writer = Writer(insert).start()
    assert writer.call(lambda: threading.current_thread().name) == 'proliferate-writer'
    with pytest.raises(ZeroDivisionError):
        writer.call(lambda: 1 / 0)
    writer.stop()
