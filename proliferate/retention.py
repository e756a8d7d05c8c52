"""Event retention: delete events older than event_retention_days and beyond a project's
max_events, in small chunks through the writer, keeping issues and their aggregates.

Issues keep their counts, affected users, hourly buckets and tags (they are history); only the
stored payloads go. An issue whose newest event went loses its last_event pointer.
"""

import datetime
import logging
import time

from peewee import fn

from proliferate.db import database
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import Project
from proliferate.times import utcnow

log = logging.getLogger(__name__)

# One writer transaction deletes at most this many events: a few milliseconds, so ingest waits
# that long at worst: ingest must never be blocked for long.
CHUNK = 500
# A run stops after this long and goes on at the next one: a first run on a big database must
# not occupy the scheduler's thread for hours.
RUN_SECONDS = 120.0


def old_event_ids(cutoff, after_id, limit):
    """Ids of the oldest events (by id) received before cutoff, after after_id.

    Events are numbered in the order the writer stored them, and received_at follows that order
    (up to seconds), so reading the table by rowid from the oldest end and stopping at the first
    new event finds the old ones without an index on received_at.
    """
    rows = (Event.select(Event.id, Event.received_at)
            .where(Event.id > after_id).order_by(Event.id).limit(limit).tuples())
    ids = []
    for event_id, received_at in rows:
        if received_at >= cutoff:
            return ids, True
        ids.append(event_id)
    return ids, len(ids) < limit


def surplus_event_ids(project_id, keep, limit):
    """Ids of a project's oldest events beyond its newest `keep` (at most limit of them)."""
    count = Event.select(fn.COUNT(Event.id)).where(Event.project == project_id).scalar()
    surplus = count - keep
    if surplus <= 0:
        return []
    query = (Event.select(Event.id).where(Event.project == project_id)
             .order_by(Event.id).limit(min(surplus, limit)).tuples())
    return [row[0] for row in query]


def delete_events(event_ids):
    """Runs on the writer: delete these events, clear last_event where it pointed at one."""
    if not event_ids:
        return 0
    issue_ids = [row[0] for row in (Event.select(Event.issue).distinct()
                                    .where(Event.id.in_(event_ids)).tuples())]
    deleted = Event.delete().where(Event.id.in_(event_ids)).execute()
    if issue_ids:
        (Issue.update(last_event=None)
         .where(Issue.id.in_(issue_ids), Issue.last_event.in_(event_ids)).execute())
    return deleted


def enforce_retention(writer, *, days, clock=utcnow, chunk=CHUNK, run_seconds=RUN_SECONDS,
                      monotonic=time.monotonic):
    """Delete what is past its age or count limits -> {'expired': n, 'surplus': n, 'done': bool}.

    Reads happen on the caller's connection; each chunk's delete is one writer.call, so ingest
    interleaves with the deletes.
    """
    deadline = monotonic() + run_seconds
    stats = {'expired': 0, 'surplus': 0, 'done': True}
    with database.connection_context():
        if days:
            cutoff = clock() - datetime.timedelta(days=days)
            after_id = 0
            while True:
                if monotonic() > deadline:
                    stats['done'] = False
                    return stats
                ids, finished = old_event_ids(cutoff, after_id, chunk)
                if ids:
                    stats['expired'] += writer.call(lambda ids=ids: delete_events(ids))
                    after_id = ids[-1]
                if finished:
                    break
        limits = list(Project.select(Project.id, Project.max_events)
                      .where(Project.max_events.is_null(False)).tuples())
        for project_id, keep in limits:
            while True:
                if monotonic() > deadline:
                    stats['done'] = False
                    return stats
                ids = surplus_event_ids(project_id, max(0, keep), chunk)
                if not ids:
                    break
                stats['surplus'] += writer.call(lambda ids=ids: delete_events(ids))
    if stats['expired'] or stats['surplus']:
        log.info('retention: deleted %(expired)d expired and %(surplus)d surplus events', stats)
    return stats
