"""Issues: status changes, merge and unmerge with their activity log, and the JSON form of issues
and events that the read API and the event JSON page share. No HTTP; every change runs on the
writer (inside its transaction)."""

import orjson

from proliferate import db
from proliferate.db import database
from proliferate.ingest import grouping
from proliferate.ingest.payload import decode_event
from proliferate.ingest.payload import decode_json
from proliferate.ingest.prepare import grouping_input
from proliferate.ingest.prepare import people_and_tags
from proliferate.ingest.store import Store
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import IssueActivity
from proliferate.models import IssueFingerprint
from proliferate.models import User
from proliferate.times import iso
from proliferate.times import utcnow

STATUSES = ('unresolved', 'resolved', 'ignored')
ACTIVITY_KINDS = {'resolved': 'resolved', 'ignored': 'ignored', 'unresolved': 'reopened'}


def set_status(issue_id, status, *, user_id=None, now=None):
    """Change an issue's status and record it in its activity; runs on the writer."""
    now = now or utcnow()
    issue = Issue.get_by_id(issue_id)
    if issue.status == status:
        return issue
    values = {Issue.status: status}
    if status == 'resolved':
        values.update({Issue.resolved_at: now, Issue.is_regressed: False})
    elif issue.status == 'resolved':
        values[Issue.resolved_at] = None
    Issue.update(values).where(Issue.id == issue_id).execute()
    IssueActivity.create(issue=issue_id, kind=ACTIVITY_KINDS[status], user=user_id, created_at=now)
    return issue


class GroupingError(ValueError):
    """A merge or unmerge that cannot be done; str(error) says why (for a 400 or a notice)."""


# At most this many issues merge into one at a time (the list's page size, and then some).
MAX_MERGE = 100
# Events read per step when an unmerge recounts its two issues.
RECOUNT_CHUNK = 500

# What moves from a merged issue to its target: each aggregate table with its key, and how its
# rows add up where the target already has the key (the person's details: the target's first).
_MOVE = (
    ('issue_user', ('user_key',), ('user_id', 'email'), True),
    ('issue_account', ('account_id',), ('name',), True),
    ('issue_hourly', ('hour',), (), False),
    ('issue_tag', ('key', 'value'), (), True),
    ('issue_slice', ('environment', 'release', 'hour'), (), False),
)
# Who an issue affected by environment and release: a row per person, its newest hour kept.
_PEOPLE_SLICE = 'issue_slice_person'
_SLICE_KEYS = 'kind, environment, release, person'


def _move_slice_people(target_id, source_id):
    p = database.param
    database.execute_sql(
        f'INSERT INTO {_PEOPLE_SLICE} (issue_id, {_SLICE_KEYS}, last_hour) '  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
        f'SELECT {p}, {_SLICE_KEYS}, last_hour FROM {_PEOPLE_SLICE} WHERE issue_id = {p} '
        f'ON CONFLICT (issue_id, {_SLICE_KEYS}) DO UPDATE SET last_hour = excluded.last_hour '
        f'WHERE {_PEOPLE_SLICE}.last_hour < excluded.last_hour', (target_id, source_id))
    database.execute_sql(f'DELETE FROM {_PEOPLE_SLICE} WHERE issue_id = {p}', (source_id,))  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)


def _move_rows(table, keys, details, has_seen, target_id, source_id):
    p = database.param
    columns = ', '.join(('issue_id',) + keys + details + ('event_count',)
                        + (('first_seen', 'last_seen') if has_seen else ()))
    selected = ', '.join((p,) + keys + details + ('event_count',)
                         + (('first_seen', 'last_seen') if has_seen else ()))
    updates = [f'event_count = {table}.event_count + excluded.event_count']
    if has_seen:
        updates.append(f'first_seen = CASE WHEN excluded.first_seen < {table}.first_seen '
                       f'THEN excluded.first_seen ELSE {table}.first_seen END')
        updates.append(f'last_seen = CASE WHEN excluded.last_seen > {table}.last_seen '
                       f'THEN excluded.last_seen ELSE {table}.last_seen END')
    updates.extend(f'{d} = COALESCE({table}.{d}, excluded.{d})' for d in details)
    # The SELECT has a WHERE: SQLite then reads ON CONFLICT as the upsert, not a join clause.
    database.execute_sql(
        f'INSERT INTO {table} ({columns}) SELECT {selected} FROM {table} '  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
        f'WHERE issue_id = {p} ON CONFLICT (issue_id, {", ".join(keys)}) DO UPDATE SET '
        + ', '.join(updates), (target_id, source_id))
    database.execute_sql(f'DELETE FROM {table} WHERE issue_id = {p}', (source_id,))  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)


def _own_fingerprint_id(issue):
    row = (IssueFingerprint.select(IssueFingerprint.id)
           .where(IssueFingerprint.project == issue.project_id,
                  IssueFingerprint.fingerprint == issue.fingerprint).tuples().first())
    if row is None:  # an issue stored without its row (never by the writer): give it one
        return IssueFingerprint.insert(project=issue.project_id, fingerprint=issue.fingerprint,
                                       issue=issue.id, created_at=issue.first_seen).execute()
    return row[0]


def _describe(issue):
    return f'#{issue.id} {issue.title}'[:300]


def merge_issues(target_id, source_ids, *, user_id=None, now=None, why=None):
    """Merge the source issues into the target: their events, counts, users, accounts, hourly
    counts, tag shares, filtered counts, activity and fingerprints move to it, and they are
    deleted; future events of any of their fingerprints land in the target. Runs on the writer.
    -> the target Issue. Raises GroupingError for an unknown issue, one of another project, or
    the target itself."""
    now = now or utcnow()
    target = Issue.get_or_none(Issue.id == target_id)
    if target is None:
        raise GroupingError(f'no issue {target_id}')
    wanted = sorted({int(i) for i in source_ids} - {target.id})
    if not wanted:
        raise GroupingError('choose at least one other issue to merge into this one')
    if len(wanted) > MAX_MERGE:
        raise GroupingError(f'at most {MAX_MERGE} issues merge at a time')
    sources = list(Issue.select().where(Issue.id.in_(wanted)).order_by(Issue.id))
    missing = set(wanted) - {s.id for s in sources}
    if missing:
        raise GroupingError(f'no issue {min(missing)}')
    if any(s.project_id != target.project_id for s in sources):
        raise GroupingError('only issues of one project can be merged')
    p = database.param
    for source in sources:
        own = _own_fingerprint_id(source)
        # Events stored before they knew their fingerprint were grouped by the source's own.
        # Only the driver's parameter marker is interpolated.
        sql = (f'UPDATE event SET issue_id = {p}, fingerprint_id = COALESCE(fingerprint_id, {p}) '  # noqa: S608
               f'WHERE issue_id = {p}')
        database.execute_sql(sql, (target.id, own, source.id))
        for table, keys, details, has_seen in _MOVE:
            _move_rows(table, keys, details, has_seen, target.id, source.id)
        _move_slice_people(target.id, source.id)
        for table in ('issue_fingerprint', 'issue_activity', 'outbox'):
            database.execute_sql(f'UPDATE {table} SET issue_id = {p} WHERE issue_id = {p}',  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
                                 (target.id, source.id))
    _sum_into(target, sources)
    Issue.delete().where(Issue.id.in_([s.id for s in sources])).execute()
    detail = ', '.join(_describe(s) for s in sources)
    IssueActivity.create(issue=target.id, kind='merged', user=user_id, created_at=now,
                         detail=(f'{why}: {detail}' if why else detail)[:2000])
    return Issue.get_by_id(target.id)


def _sum_into(target, sources):
    """The target's columns after a merge: counts added, users and accounts counted again (the
    merged rows may share people), first and last seen and releases from whichever is older or
    newer."""
    everyone = [target, *sources]
    oldest = min(everyone, key=lambda i: (i.first_seen, i.id))
    newest = max(everyone, key=lambda i: (i.last_seen, i.id))
    last_events = [i.last_event for i in everyone if i.last_event]
    values = {
        Issue.event_count: sum(i.event_count for i in everyone),
        Issue.user_count: _count('issue_user', target.id),
        Issue.account_count: _count('issue_account', target.id),
        Issue.first_seen: oldest.first_seen, Issue.first_release: oldest.first_release,
        Issue.last_seen: newest.last_seen, Issue.last_release: newest.last_release,
        Issue.level: newest.level,
        Issue.last_event: max(last_events) if last_events else None,
    }
    Issue.update(values).where(Issue.id == target.id).execute()


def _count(table, issue_id):
    p = database.param
    return database.execute_sql(f'SELECT COUNT(*) FROM {table} WHERE issue_id = {p}',  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
                                (issue_id,)).fetchone()[0]


def unmerge(issue_id, fingerprint, *, user_id=None, now=None):
    """Take one fingerprint out of an issue into a new issue of its own, with the events grouped
    by it; both issues are then counted again from their events. Runs on the writer. -> the new
    Issue. The issue's own fingerprint stays (take the others out instead)."""
    now = now or utcnow()
    issue = Issue.get_or_none(Issue.id == issue_id)
    if issue is None:
        raise GroupingError(f'no issue {issue_id}')
    if not isinstance(fingerprint, str) or not fingerprint:
        raise GroupingError('fingerprint: required, one of the issue\'s fingerprints')
    row = IssueFingerprint.get_or_none(IssueFingerprint.project == issue.project_id,
                                       IssueFingerprint.fingerprint == fingerprint,
                                       IssueFingerprint.issue == issue.id)
    if row is None:
        raise GroupingError('fingerprint: not a fingerprint of this issue')
    if fingerprint == issue.fingerprint:
        raise GroupingError('fingerprint: this is the issue\'s own fingerprint; take the '
                            'others out of it instead')
    p = database.param
    newest = (Event.select().where(Event.issue == issue.id, Event.fingerprint_id == row.id)
              .order_by(Event.id.desc()).first())
    title, kind, culprit, level = issue.title, issue.type, issue.culprit, issue.level
    if newest is not None:
        title, kind, culprit, level = _headline(decode_json(newest.data), issue)
    new = Issue.create(project=issue.project_id, fingerprint=fingerprint, type=kind, title=title,
                       culprit=culprit, level=level, first_seen=row.created_at or now,
                       last_seen=row.created_at or now, grouping_version=2)
    IssueFingerprint.update(issue=new.id).where(IssueFingerprint.id == row.id).execute()
    database.execute_sql(f'UPDATE event SET issue_id = {p} WHERE issue_id = {p} '  # noqa: S608 (only the driver's parameter marker is interpolated)
                         f'AND fingerprint_id = {p}', (new.id, issue.id, row.id))
    recount(issue)
    recount(new)
    IssueActivity.create(issue=issue.id, kind='unmerged', user=user_id, created_at=now,
                         detail=f'{fingerprint[:16]} into #{new.id}')
    IssueActivity.create(issue=new.id, kind='unmerged', user=user_id, created_at=now,
                         detail=f'{fingerprint[:16]} out of #{issue.id}')
    return Issue.get_by_id(new.id)


def _headline(event, issue):
    """(title, type, culprit, level) of an issue made from this event."""
    exc_type, message, frames = grouping_input(event)
    event_type = event.get('type') or 'exception'
    return (grouping.get_title(event_type, exc_type, message), exc_type or '',
            grouping.get_culprit(frames), event.get('level') or issue.level)


def recount(issue):
    """An issue's counts, users, accounts, hourly counts, tag shares and filtered counts, made
    again from its stored events (read RECOUNT_CHUNK at a time; only after an unmerge, which is
    rare). An issue with no stored event left (retention) keeps its first and last seen."""
    for table in [table for table, *_rest in _MOVE] + [_PEOPLE_SLICE]:
        database.execute_sql(f'DELETE FROM {table} WHERE issue_id = {database.param}',  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
                             (issue.id,))
    store = Store(clock=utcnow)
    sql = store.sql()
    cursor = database.cursor()
    count = 0
    first = last = None
    after = 0
    new_users = new_accounts = 0
    while True:
        rows = list(Event.select(Event.id, Event.timestamp, Event.data)
                    .where(Event.issue == issue.id, Event.id > after)
                    .order_by(Event.id).limit(RECOUNT_CHUNK))
        if not rows:
            break
        items = []
        for row in rows:
            event = decode_json(row.data)
            user, account, tags = people_and_tags(event)
            items.append({'issue_id': issue.id, 'ts': str(row.timestamp), 'user': user,
                          'account': account, 'tags': tags})
            stamp = (row.timestamp, row.id, event)
            first = stamp if first is None or stamp[:2] < first[:2] else first
            last = stamp if last is None or stamp[:2] > last[:2] else last
        new_users += sum(store.upsert_people(cursor, sql['user'], items, 'user').values())
        new_accounts += sum(store.upsert_people(cursor, sql['account'], items, 'account').values())
        store.upsert_counts(cursor, sql, items)
        count += len(rows)
        after = rows[-1].id
    values = {Issue.event_count: count, Issue.user_count: new_users,
              Issue.account_count: new_accounts, Issue.last_event: after or None}
    if first is not None:
        values.update({Issue.first_seen: first[0], Issue.first_release: first[2].get('release'),
                       Issue.last_seen: last[0], Issue.last_release: last[2].get('release'),
                       Issue.level: last[2].get('level') or issue.level})
    Issue.update(values).where(Issue.id == issue.id).execute()


def fingerprints_of(issue_ids):
    """{issue id: [fingerprint, ...]} (its own first, then the others as they were added)."""
    out = {}
    ids = [int(i) for i in issue_ids]
    for part in db.chunks(ids, 500):
        query = (IssueFingerprint.select(IssueFingerprint.issue, IssueFingerprint.fingerprint)
                 .where(IssueFingerprint.issue.in_(part)).order_by(IssueFingerprint.id).tuples())
        for issue_id, fingerprint in query:
            out.setdefault(issue_id, []).append(fingerprint)
    return out


def issue_json(issue, fingerprints=None):
    """The issue as the read API shows it; fingerprints: every fingerprint it answers to (read
    when not given)."""
    if fingerprints is None:
        fingerprints = fingerprints_of([issue.id]).get(issue.id, [])
    own = [f for f in fingerprints if f == issue.fingerprint]
    return {
        'id': issue.id, 'project_id': issue.project_id, 'fingerprint': issue.fingerprint,
        'type': issue.type, 'title': issue.title, 'culprit': issue.culprit,
        'level': issue.level, 'status': issue.status,
        'event_count': issue.event_count, 'user_count': issue.user_count,
        'account_count': issue.account_count,
        'first_seen': iso(issue.first_seen), 'last_seen': iso(issue.last_seen),
        'first_release': issue.first_release, 'last_release': issue.last_release,
        'is_regressed': bool(issue.is_regressed), 'regressed_release': issue.regressed_release,
        'regressed_at': iso(issue.regressed_at), 'resolved_at': iso(issue.resolved_at),
        'fingerprints': own + [f for f in fingerprints if f != issue.fingerprint],
        **triage_json(issue),
    }


def event_json(row):
    event = decode_event(row.data)
    event.update({'id': row.id, 'issue_id': row.issue_id, 'project_id': row.project_id,
                  'received_at': iso(row.received_at)})
    return event


# Triage (proliferate/triage.py writes these columns): the keys the issue JSON gains.
COUNT_COLUMNS = {'events': 'event_count', 'users': 'user_count', 'accounts': 'account_count'}


def assignee_email(issue):
    if issue.assignee_id is None:
        return None
    user = User.get_or_none(User.id == issue.assignee_id)
    return user.email if user else None


def triage_json(issue):
    """The keys the issue JSON gains: assignee, resolved_in, ignore_until, escalating."""
    resolved_in = None
    if issue.status == 'resolved':
        resolved_in = 'next' if issue.resolved_in_next else issue.resolved_in
    snooze = None
    if issue.status == 'ignored' and issue.ignore_until:
        snooze = orjson.loads(issue.ignore_until)
        if issue.snooze_kind:
            column = COUNT_COLUMNS[issue.snooze_kind]
            snooze['remaining'] = max(0, issue.snooze_target - getattr(issue, column))
    return {'assignee': assignee_email(issue), 'resolved_in': resolved_in,
            'ignore_until': snooze, 'escalating': bool(issue.escalating)}
