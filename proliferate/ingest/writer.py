"""The single writer thread: a bounded queue, group commit, and waking the waiting requests.

SQLite allows one writer at a time; one thread that commits whatever has queued in ONE
transaction turns many small requests into few fsyncs and removes "database is locked" from the
design. A request gets its 202 only after the commit of its events (DESIGN: durable ack).
"""

import collections
import logging
import threading
import time

from proliferate import db
from proliferate.db import database
from proliferate.metrics import Histogram

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The writer is behind: answer 429/503 with Retry-After instead of piling up."""


class WriterStopped(Exception):
    pass


class StoreUnavailable(RuntimeError):
    """The database refuses writes for a reason the operator must fix or wait out (kind: a
    full disk, or a database away): answer 503 with Retry-After; nothing was stored."""

    def __init__(self, kind):
        super().__init__(f'the database cannot take writes now: {kind.replace("_", " ")}')
        self.kind = kind


class Ticket:
    """One submission; wait() returns what the processing function returned for its items."""

    __slots__ = ('items', 'call', 'result', 'error', '_done')

    def __init__(self, items=None, call=None):
        self.items = items
        self.call = call
        self.result = None
        self.error = None
        self._done = threading.Event()

    def finish(self, result=None, error=None):
        self.result = result
        self.error = error
        self._done.set()

    def wait(self, timeout=None):
        if not self._done.wait(timeout):
            raise TimeoutError('the writer did not commit in time')
        if self.error is not None:
            raise self.error
        return self.result


class Writer:
    """process(items) runs inside one transaction and returns one result per item, in order."""

    def __init__(self, process, *, queue_size=20000, batch_size=1000, idle=None, idle_seconds=1.0,
                 name='proliferate-writer'):
        self.process = process
        # idle(): run on this thread when nothing was queued for idle_seconds (counters that
        # request threads keep in memory reach the database this way on a quiet server).
        self.idle = idle
        self.idle_seconds = idle_seconds
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.name = name
        self._queue = collections.deque()
        self._pending = 0  # events queued, not tickets: the bound is on work, not on requests
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread = None
        self.committed_batches = 0
        self.committed_items = 0
        # Each group commit's time, for /metrics: two clock reads per commit, not per event.
        self.commit_seconds = Histogram()
        # A full disk or a database away: what /healthz and the operator's views show, and
        # what makes the idle step probe until writes succeed again.
        self.faults = db.FaultState()

    @property
    def pending(self):
        return self._pending

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def submit(self, items):
        ticket = Ticket(items=items)
        with self._lock:
            if self._stopping:
                raise WriterStopped('the server is shutting down')
            if self._pending and self._pending + len(items) > self.queue_size:
                raise QueueFull(f'{self._pending} events are waiting to be written')
            self._queue.append(ticket)
            self._pending += len(items)
            self._wake.notify()
        return ticket

    def call(self, fn, timeout=30):
        """Run fn() on the writer thread in its own transaction and return its result; for the
        few writes that do not come from ingest (status changes, jobs)."""
        if self._thread is None or threading.current_thread() is self._thread:
            with database.atomic():
                return fn()
        ticket = Ticket(call=fn)
        with self._lock:
            if self._stopping:
                raise WriterStopped('the server is shutting down')
            self._queue.append(ticket)
            self._wake.notify()
        return ticket.wait(timeout)

    def stop(self, timeout=30):
        """Refuse new work, commit everything queued, then end the thread."""
        with self._lock:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self):
        with self._lock:
            if not self._queue and not self._stopping:
                self._wake.wait(self.idle_seconds if self.idle else None)
                if not self._queue and not self._stopping:
                    return []
            if not self._queue:
                return None
            tickets = []
            count = 0
            while self._queue:
                head = self._queue[0]
                if head.call is not None:
                    if not tickets:
                        tickets.append(self._queue.popleft())
                    break
                if tickets and count + len(head.items) > self.batch_size:
                    break
                tickets.append(self._queue.popleft())
                count += len(head.items)
            self._pending -= count
            return tickets

    def _run(self):
        database.connect(reuse_if_open=True)
        try:
            while True:
                tickets = self._take()
                if tickets is None:
                    self._run_idle()
                    return
                if not tickets:
                    self._run_idle()
                elif tickets[0].call is not None:
                    self._run_call(tickets[0])
                else:
                    self._commit(tickets)
        finally:
            database.close()

    def fault(self):
        """None, or the write fault under way: {'kind': 'disk_full' or 'database_unavailable',
        'error', 'since' (Unix time), 'seconds'}."""
        return self.faults.current()

    def _failed(self, error, what):
        """Note a failure: a known fault is logged once when it begins (not once a request),
        anything else with its traceback. The connection is replaced when it was lost."""
        kind = db.classify_error(error)
        if kind is None:
            log.error('writer: %s', what, exc_info=error)
        elif self.faults.failed(kind, error):
            log.error('writer: %s: %s (%s); ingest answers 503 until writes succeed again',
                      what, kind.replace('_', ' '), str(error).strip()[:300])
        return kind, db.heal_connection()

    def _succeeded(self):
        lasted = self.faults.cleared()
        if lasted is not None:
            log.warning('writer: writes succeed again after %.1f s', lasted)

    def _run_idle(self):
        if self.faults.current() is not None:
            # Probe with a real commit, so that the fault clears when space (or the server)
            # is back even when no event arrives.
            try:
                db.probe_write()
            except Exception as error:
                self._failed(error, 'the database still refuses writes')
                return
            self._succeeded()
        if self.idle is None:
            return
        try:
            self.idle()
        except Exception as error:
            self._failed(error, 'idle work failed; it is tried again later')

    def _run_call(self, ticket):
        try:
            with database.atomic():
                result = ticket.call()
        except Exception as error:  # handed to the caller, who decides
            kind = db.classify_error(error)
            if kind is not None and self.faults.failed(kind, error):
                log.error('writer: %s (%s)', kind.replace('_', ' '), str(error).strip()[:300])
            db.heal_connection()
            ticket.finish(error=error)
        else:
            ticket.finish(result)

    def _commit(self, tickets):
        items = [item for ticket in tickets for item in ticket.items]
        if database.is_closed():  # the last reconnection failed: try again before committing
            db.heal_connection()
        started = time.perf_counter()
        try:
            with database.atomic():
                results = self.process(items)
        except Exception as error:
            # A connection the server dropped (PostgreSQL restart, failover) is replaced first,
            # so the one-by-one retries below commit instead of failing too.
            kind, reconnected = self._failed(error, 'a submission failed and was not stored')
            if kind == db.DISK_FULL or (kind is not None and not reconnected):
                # The database refuses every write: trying each submission alone would only
                # fail them one by one, as slowly.
                for ticket in tickets:
                    ticket.finish(error=StoreUnavailable(kind))
                return
            if len(tickets) == 1:
                tickets[0].finish(error=StoreUnavailable(kind) if kind else
                                  RuntimeError('the events could not be stored'))
                return
            # One bad submission must not fail the others: commit each on its own.
            for ticket in tickets:
                self._commit([ticket])
            return
        self.commit_seconds.observe(time.perf_counter() - started)
        self._succeeded()
        self.committed_batches += 1
        self.committed_items += len(items)
        start = 0
        for ticket in tickets:
            end = start + len(ticket.items)
            ticket.finish(results[start:end])
            start = end
