"""The grouping upgrade, run at start through the writer: each issue made by grouping version 1
gets its version-2 key (from its newest stored event, with its project's rules) pointed at it,
so the next event of an old issue lands in that issue; old issues that share a new key are
merged into the oldest. Idempotent and chunked; it does I/O (not a pure module)."""

import logging
import time

from proliferate import db
from proliferate.ingest.admission import rules_for
from proliferate.ingest.payload import decode_json
from proliferate.ingest.prepare import event_fingerprint
from proliferate.issues import merge_issues
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import IssueFingerprint
from proliferate.models import Project
from proliferate.sourcemaps.resolver import grouping_frames
from proliferate.times import utcnow

log = logging.getLogger(__name__)

# Issues looked at per writer transaction, and the time one may take: ingest waits meanwhile.
CHUNK = 200
CHUNK_SECONDS = 0.25
# Serialises the upgrade of processes started together on one PostgreSQL database.
UPGRADE_LOCK_KEY = int.from_bytes(b'regroup2', 'big')

WHY = 'grouping upgrade (version 2)'


def adjust(frames):
    """The frames grouping saw: source-mapped frames are grouped on a simplified copy."""
    return grouping_frames([f for f in frames if isinstance(f, dict)])


def newest_event(issue):
    row = None
    if issue.last_event:
        row = Event.get_or_none(Event.id == issue.last_event, Event.issue == issue.id)
    if row is None:
        row = Event.select().where(Event.issue == issue.id).order_by(Event.id.desc()).first()
    return row


def upgrade_chunk(limit=CHUNK, seconds=CHUNK_SECONDS, clock=time.monotonic, now=None, why=WHY):
    """Upgrade up to `limit` issues (stopping after `seconds`), inside the caller's transaction
    (the writer's). -> how many issues were looked at; 0 when none is left."""
    if not db.is_sqlite():
        db.database.execute_sql('SELECT pg_advisory_xact_lock(%s)', (UPGRADE_LOCK_KEY,))
    now = now or utcnow()
    start = clock()
    issues = list(Issue.select().where(Issue.grouping_version.is_null())
                  .order_by(Issue.id).limit(limit))
    rules = {}
    done = 0
    for issue in issues:
        if done and clock() - start > seconds:
            break
        done += 1
        if not Issue.select().where(Issue.id == issue.id).exists():
            continue  # merged into an older issue earlier in this chunk
        if issue.project_id not in rules:
            project = Project.get_by_id(issue.project_id)
            rules[issue.project_id] = rules_for(project.in_app_patterns, project.library_patterns)
        row = newest_event(issue)
        if row is not None:
            key = event_fingerprint(decode_json(row.data), rules[issue.project_id], adjust)
            point(issue, key, now, why)
        (Issue.update(grouping_version=2)
         .where(Issue.id == issue.id, Issue.grouping_version.is_null()).execute())
    return done


def point(issue, key, now, why=WHY):
    """Point the version-2 key at the issue (the version-1 fingerprint keeps its row); when the
    key already belongs to another issue, the newer of the two is merged into the older."""
    (IssueFingerprint.insert(project=issue.project_id, fingerprint=key, issue=issue.id,
                             created_at=now)
     .on_conflict_ignore().execute())
    owner = (IssueFingerprint.select(IssueFingerprint.issue)
             .where(IssueFingerprint.project == issue.project_id,
                    IssueFingerprint.fingerprint == key).scalar())
    if owner is None or owner == issue.id:
        return
    other = Issue.get_by_id(owner)
    older, newer = sorted((issue, other), key=lambda i: (i.first_seen, i.id))
    merge_issues(older.id, [newer.id], now=now, why=why)


def regroup_project(writer, project_id):
    """After a project's in-app patterns changed: each of its issues gets the key its newest event
    makes under them, and issues that now share a key are merged into the oldest (as the
    upgrade does). -> issues looked at."""
    writer.call(lambda: Issue.update(grouping_version=None)
                .where(Issue.project == project_id).execute())
    return upgrade(writer, why='the project\'s in-app and library paths changed')


# A grouping preview replays at most this many of the project's newest events.
PREVIEW_EVENTS = 10_000
PREVIEW_CHUNK = 500


def preview(project_id, rules, limit=PREVIEW_EVENTS):
    """What the project's newest `limit` events would make under other in-app rules:
    {'events': n, 'issues': issues they are in now, 'merging': issues that would merge,
     'merged_into': how many issues those become, 'splitting': issues that would split}.
    A read (any thread); each event is grouped as the writer would, from its stored payload."""
    keys = {}  # new key -> {issue ids}
    per_issue = {}  # issue id -> {new keys}
    count = 0
    before = None
    while count < limit:
        query = (Event.select(Event.id, Event.issue, Event.data)
                 .where(Event.project == project_id))
        if before is not None:
            query = query.where(Event.id < before)
        rows = list(query.order_by(Event.id.desc()).limit(min(PREVIEW_CHUNK, limit - count))
                    .tuples())
        if not rows:
            break
        for _event_pk, issue_id, data in rows:
            key = event_fingerprint(decode_json(data), rules, adjust)
            keys.setdefault(key, set()).add(issue_id)
            per_issue.setdefault(issue_id, set()).add(key)
        count += len(rows)
        before = rows[-1][0]
    joined = [issues for issues in keys.values() if len(issues) > 1]
    merging = set().union(*joined) if joined else set()
    return {'events': count, 'issues': len(per_issue), 'merging': len(merging),
            'merged_into': _components(joined), 'splitting':
            sum(1 for found in per_issue.values() if len(found) > 1)}


def _components(groups):
    """How many issues sets of issues that share keys become (connected ones are one)."""
    parent = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in groups:
        first, *rest = sorted(group)
        for other in rest:
            parent[find(other)] = find(first)
    return len({find(x) for group in groups for x in group})


def upgrade(writer, *, limit=CHUNK, seconds=CHUNK_SECONDS, why=WHY):
    """Run upgrade_chunk through the writer until no issue is left; -> issues looked at. A fresh
    or already upgraded database costs one query. A project whose in-app patterns change is
    regrouped the same way (regroup_project)."""
    total = 0
    while True:
        done = writer.call(lambda: upgrade_chunk(limit, seconds, why=why), timeout=120)
        if not done:
            break
        total += done
    if total:
        log.info('grouping: %d issues upgraded to grouping version 2', total)
    return total
