"""The trivial ingest server that proliferate is measured against (bench/, issue "Performance").

Falcon + Waitress: parse the JSON, insert one row per event into SQLite (WAL) and commit once per
request. No auth, grouping or aggregates: the floor of what "store what was sent" costs here.
"""

import argparse
import json
import signal
import sqlite3
import threading
import time

import falcon
import waitress

SCHEMA = (
    ('CREATE TABLE IF NOT EXISTS event ('
     ' id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, event_id TEXT NOT NULL,'
     ' received_at REAL NOT NULL, data TEXT NOT NULL)'),
    # The same dedupe key proliferate keeps, so a retried event is stored once in both servers.
    'CREATE UNIQUE INDEX IF NOT EXISTS event_project_event_id ON event (project_id, event_id)',
)
PROJECT_ID = 1


class Store:
    """One connection shared by the waitress threads; the lock serialises the writes, as SQLite
    would anyway, without its busy-timeout sleeps."""

    def __init__(self, path, synchronous):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute('PRAGMA journal_mode=wal')
        self._db.execute(f'PRAGMA synchronous={synchronous}')
        for statement in SCHEMA:
            self._db.execute(statement)

    def insert(self, events):
        now = time.time()
        rows = [(PROJECT_ID, str(e['event_id']), now, json.dumps(e)) for e in events]
        with self._lock:
            self._db.execute('BEGIN IMMEDIATE')
            try:
                self._db.executemany(
                    'INSERT OR IGNORE INTO event (project_id, event_id, received_at, data)'
                    ' VALUES (?, ?, ?, ?)', rows)
            except BaseException:
                self._db.execute('ROLLBACK')
                raise
            self._db.execute('COMMIT')

    def close(self):
        self._db.close()


class Errors:
    def __init__(self, store):
        self._store = store

    def on_post(self, req, resp):
        event = req.get_media()
        if not isinstance(event, dict) or 'event_id' not in event:
            raise falcon.HTTPBadRequest(description='expected one event with an event_id')
        self._store.insert([event])
        resp.status = falcon.HTTP_202
        resp.media = {'event_id': event['event_id']}

    def on_post_batch(self, req, resp):
        events = req.get_media()
        if not isinstance(events, list) or not all(isinstance(e, dict) and 'event_id' in e
                                                   for e in events):
            raise falcon.HTTPBadRequest(description='expected an array of events with event_id')
        self._store.insert(events)
        resp.status = falcon.HTTP_202
        resp.media = {
            'processed': len(events),
            'results': [{'event_id': e['event_id'], 'status': 'ok'} for e in events],
        }


class Health:
    def on_get(self, req, resp):
        resp.media = {'status': 'ok'}


def create_app(store):
    app = falcon.App()
    errors = Errors(store)
    app.add_route('/api/v1/errors', errors)
    app.add_route('/api/v1/errors/batch', errors, suffix='batch')
    app.add_route('/healthz', Health())
    return app


def _stop(signum, frame):
    raise SystemExit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--database', required=True, help='path of the SQLite file')
    parser.add_argument('--threads', type=int, default=16)
    parser.add_argument('--synchronous', default='FULL', choices=('OFF', 'NORMAL', 'FULL', 'EXTRA'))
    # Waitress's own defaults (100 connections, a backlog of 1,024, select()) unless a limit is
    # given: the connection benchmark runs both servers with proliferate's limits, and then with
    # poll(), as proliferate does (select() cannot watch a descriptor above 1,023).
    parser.add_argument('--connection-limit', type=int, default=None)
    parser.add_argument('--backlog', type=int, default=None)
    args = parser.parse_args(argv)
    store = Store(args.database, args.synchronous)
    signal.signal(signal.SIGTERM, _stop)
    limits = {name: value for name, value in (('connection_limit', args.connection_limit),
                                              ('backlog', args.backlog)) if value is not None}
    server = waitress.create_server(create_app(store), host=args.host, port=args.port,
                                    threads=args.threads, asyncore_use_poll=bool(limits),
                                    **limits)
    try:
        server.run()
    finally:
        # Stop taking requests, let the workers finish the ones they hold, then close the file.
        server.close()
        server.task_dispatcher.shutdown()
        store.close()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
