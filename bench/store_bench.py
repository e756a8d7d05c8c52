"""The writer's Store alone, in one process: CPU per event of storing the benchmark's events in
batches (no HTTP, no request threads), and what issue_slice_person takes on disk.

On a fresh temporary SQLite database: the events are normalised and prepared first (not timed),
then stored a batch per transaction, as the writer does. Prints µs of CPU time per event
(`time.process_time`: steadier than wall time on a shared machine) and the table's bytes per
event and per row (SQLite's dbstat, pages included). --people same gives every event one of 50
user ids (people seen again); --without-slice-people leaves that table out, to tell its cost.

    python bench/store_bench.py [--events 20000] [--batch 100] [--people vary|same]
                                [--without-slice-people]
"""

import argparse
import pathlib
import sqlite3
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'bench'))

import events  # noqa: E402
import orjson  # noqa: E402

from proliferate import db  # noqa: E402
from proliferate import orgs  # noqa: E402
from proliferate.ingest import store as store_module  # noqa: E402
from proliferate.ingest.normalize import normalize_event  # noqa: E402
from proliferate.ingest.prepare import prepare_event  # noqa: E402
from proliferate.times import utcnow  # noqa: E402

RETURNING_USERS = 50


def prepared(count, people, project_id):
    source = events.EventSource(seed=1, api_key='pk_bench', mix='realistic')
    received_at = utcnow()
    items = []
    for index in range(count):
        event = orjson.loads(source.event(index)[1])
        if people == 'same':
            event.setdefault('user', {})['id'] = f'user-{index % RETURNING_USERS}'
        _key, timestamp, event = normalize_event(event, received_at=received_at, header_key=None)
        items.append(prepare_event(event, project_id, timestamp, received_at))
    return items


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--events', type=int, default=20000)
    parser.add_argument('--batch', type=int, default=100)
    parser.add_argument('--people', choices=('vary', 'same'), default='vary')
    parser.add_argument('--without-slice-people', action='store_true')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        path = f'{directory}/store.db'
        db.open_database(f'sqlite:///{path}')
        db.migrate()
        with db.database.connection_context():
            project = orgs.create_project(orgs.create_organization('Bench'), 'bench')
        items = prepared(args.events, args.people, project.id)
        slice_rows = store_module.slice_rows
        if args.without_slice_people:
            store_module.slice_rows = lambda batch: (slice_rows(batch)[0], {})
        try:
            store = store_module.Store(clock=utcnow)
            with db.database.connection_context():
                began = time.process_time()
                for start in range(0, len(items), args.batch):
                    with db.database.atomic():
                        store(items[start:start + args.batch])
                spent = time.process_time() - began
        finally:
            store_module.slice_rows = slice_rows
            db.database.close()
        connection = sqlite3.connect(path)
        rows = connection.execute('SELECT COUNT(*) FROM issue_slice_person').fetchone()[0]
        size = connection.execute("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat "
                                  "WHERE name = 'issue_slice_person'").fetchone()[0]
        connection.close()
    micros = spent / args.events * 1e6
    print(f'Store, batches of {args.batch}, people {args.people}'
          f'{", without issue_slice_person" if args.without_slice_people else ""}: '
          f'{micros:.1f} us per event (CPU time, {args.events:,} events); '
          f'issue_slice_person {rows:,} rows, {size / args.events:.1f} bytes per event'
          + (f', {size / rows:.1f} per row' if rows else ''))
    return micros


if __name__ == '__main__':
    main()
