"""Spike and account-threshold detection: the events received since the trigger cursor -> new
outbox rows, read beside ingestion and written with the cursor in one transaction on the writer.
The thresholds themselves are decided in rules.py; nothing here sends."""

import collections

import orjson
from peewee import fn

from proliferate import db
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import NotificationCursor
from proliferate.models import Outbox
from proliferate.models import Project
from proliferate.notifications import rules
from proliferate.notifications.settings import load_prefs
from proliferate.notifications.transactions import CHUNK

# Events the trigger detector reads per run (by primary key, so the range scan stays cheap).
DETECT_BATCH = 100_000


def detect_triggers(now, *, limit=DETECT_BATCH):  # noqa: C901 (one pass over the new events keeps both thresholds in step; split, each would re-read them)
    """Issues that got events since the cursor and now cross the spike (N events within M
    minutes) or account (K) threshold -> (outbox rows, cursor before, cursor after).

    Read-only: it runs in the job, beside ingestion, so the writer's transaction stays as short
    as before; record_triggers() then writes the rows and moves the cursor in one transaction."""
    cursor = NotificationCursor.get_or_none(NotificationCursor.name == 'triggers')
    start = cursor.event_id if cursor is not None else 0
    newest_id = Event.select(fn.MAX(Event.id)).scalar() or 0
    upto = min(newest_id, start + limit)
    if upto <= start:
        return [], start, start
    touched = dict(Event.select(Event.issue, fn.MAX(Event.received_at))
                   .where(Event.id > start, Event.id <= upto)
                   .group_by(Event.issue).tuples())
    issues = []
    for part in db.chunks(touched, CHUNK):
        issues.extend(Issue.select(Issue, Project).join(Project).where(Issue.id.in_(part)))
    prefs = load_prefs({issue.project.organization_id for issue in issues})
    rows = []
    spike_candidates = []
    account_candidates = []
    for issue in issues:
        org_prefs = prefs[issue.project.organization_id]
        if org_prefs.delivery_mode == 'off' or issue.status == 'ignored':
            continue
        if org_prefs.trigger_spike and issue.event_count >= org_prefs.spike_events:
            spike_candidates.append((issue, org_prefs))
        if org_prefs.trigger_accounts and issue.account_count >= org_prefs.accounts_threshold:
            account_candidates.append((issue, org_prefs))
    if spike_candidates:
        recent = {}
        ids = [issue.id for issue, _p in spike_candidates]
        for part in db.chunks(ids, CHUNK):
            query = (Outbox.select(Outbox.issue, fn.MAX(Outbox.created_at))
                     .where(Outbox.issue.in_(part), Outbox.kind == 'spike').group_by(Outbox.issue))
            recent.update(query.tuples())
        for issue, org_prefs in spike_candidates:
            # One spike row per cooldown (at least per window): a spike that lasts an hour is
            # one spike, not one per run.
            quiet = max(org_prefs.cooldown_minutes, org_prefs.spike_minutes)
            if rules.in_cooldown(recent.get(issue.id), now, quiet):
                continue
            # The N-th newest event of the issue, through the (issue, id) index: N rows at most.
            nth = (Event.select(Event.received_at).where(Event.issue == issue.id)
                   .order_by(Event.id.desc()).offset(org_prefs.spike_events - 1).limit(1).scalar())
            if rules.is_spike(nth, touched[issue.id], now, org_prefs.spike_minutes):
                rows.append(rules.outbox_row('spike', issue, now, events=org_prefs.spike_events,
                                             minutes=org_prefs.spike_minutes))
    if account_candidates:
        alerted = collections.defaultdict(set)
        ids = [issue.id for issue, _p in account_candidates]
        for part in db.chunks(ids, CHUNK):
            query = (Outbox.select(Outbox.issue, Outbox.data)
                     .where(Outbox.issue.in_(part), Outbox.kind == 'accounts'))
            for issue_id, data in query.tuples():
                alerted[issue_id].add(orjson.loads(data).get('threshold'))
        for issue, org_prefs in account_candidates:
            if rules.crossed_accounts(issue.account_count, org_prefs.accounts_threshold,
                                       alerted[issue.id]):
                rows.append(rules.outbox_row('accounts', issue, now,
                                             threshold=org_prefs.accounts_threshold,
                                             accounts=issue.account_count))
    return rows, start, upto


def record_triggers(rows, start, upto, now):
    """On the writer: the detected rows and the cursor move together, or not at all."""
    moved = (NotificationCursor.update(event_id=upto, updated_at=now)
             .where(NotificationCursor.name == 'triggers', NotificationCursor.event_id == start)
             .execute())
    if not moved:
        if NotificationCursor.get_or_none(NotificationCursor.name == 'triggers') is not None:
            return 0  # another run moved it first
        NotificationCursor.create(name='triggers', event_id=upto, updated_at=now)
    for part in db.chunks(rows, 100):
        Outbox.insert_many(part).execute()
    return len(rows)
