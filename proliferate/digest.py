"""Runs inside the writer's transaction: dedupe, upsert issues, insert events, keep the aggregates
(users, accounts, hourly counts, tag distributions) and record outbox rows.

Statements are per batch, not per event (aggregates merged in Python first), and only portable
SQL is used (INSERT ... ON CONFLICT works on SQLite >= 3.24 and PostgreSQL), so several
processes on one PostgreSQL database never double-count.
"""

import collections
import threading

import orjson
from peewee import EXCLUDED
from peewee import Case
from peewee import fn

from proliferate.db import database
from proliferate.models import DroppedCount
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import IssueAccount
from proliferate.models import IssueActivity
from proliferate.models import IssueHourly
from proliferate.models import IssueTag
from proliferate.models import IssueUser
from proliferate.models import Outbox

# Keeps IN (...) lists far below SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


class DropCounter:
    """Events refused before the writer (rate limited, too large, invalid...), counted in memory
    by request threads and added to the database with the writer's next commit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = collections.Counter()

    def add(self, project_id, reason, count=1):
        if project_id is None or count <= 0:
            return
        with self._lock:
            self._counts[project_id, reason] += count

    def take(self):
        with self._lock:
            counts, self._counts = self._counts, collections.Counter()
        return counts

    def give_back(self, counts):
        with self._lock:
            self._counts.update(counts)


def chunks(values, size=CHUNK):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


def later(a, b):
    return b if a is None or (b is not None and b > a) else a


def earlier(a, b):
    return b if a is None or (b is not None and b < a) else a


class Digest:
    """process(items) -> ['ok' | 'duplicate', ...]; one call per writer transaction."""

    def __init__(self, *, clock, drops=None, resolver=None, on_commit=None):
        self.clock = clock
        self.drops = drops or DropCounter()
        self.resolver = resolver
        self.on_commit = on_commit

    def __call__(self, items):
        now = self.clock()
        statuses, fresh = self.dedupe(items)
        if self.resolver is not None and fresh:
            self.resolver(fresh)
        if fresh:
            self.store(fresh, now)
        self.flush_drops(statuses, items)
        return statuses

    def dedupe(self, items):
        """An event_id already stored for its project (or earlier in this batch) is not stored or
        counted again: SDKs retry, and a retry must never double-count."""
        by_project = collections.defaultdict(set)
        for item in items:
            by_project[item['project_id']].add(item['event_id'])
        stored = set()
        for project_id, event_ids in by_project.items():
            for part in chunks(event_ids):
                query = (Event.select(Event.event_id)
                         .where(Event.project == project_id, Event.event_id.in_(part)))
                stored.update((project_id, row[0]) for row in query.tuples())
        statuses = []
        fresh = []
        for item in items:
            key = (item['project_id'], item['event_id'])
            if key in stored:
                statuses.append('duplicate')
            else:
                stored.add(key)
                statuses.append('ok')
                fresh.append(item)
        return statuses, fresh

    def flush_idle(self):
        """The writer's idle work: refusals counted since the last commit (a transaction only
        when there is something to write)."""
        counts = self.drops.take()
        if counts:
            try:
                with database.atomic():
                    self.write_drops(counts)
            except Exception:
                self.drops.give_back(counts)
                raise

    def flush_drops(self, statuses, items):
        counts = self.drops.take()
        for item, status in zip(items, statuses):
            if status == 'duplicate':
                counts[item['project_id'], 'duplicate'] += 1
        if counts:
            self.write_drops(counts)

    def write_drops(self, counts):
        rows = [{'project': p, 'reason': r, 'count': n} for (p, r), n in counts.items()]
        (DroppedCount.insert_many(rows)
         .on_conflict(conflict_target=[DroppedCount.project, DroppedCount.reason],
                      update={DroppedCount.count: DroppedCount.count + EXCLUDED.count})
         .execute())

    def store(self, items, now):
        issues = self.upsert_issues(items, now)
        self.insert_events(items, issues, now)
        new_users = self.upsert_people(
            items, issues, IssueUser, IssueUser.user_key, 'user',
            lambda person: {'user_id': person[1], 'email': person[2]})
        new_accounts = self.upsert_people(
            items, issues, IssueAccount, IssueAccount.account_id, 'account',
            lambda person: {'name': person[1]})
        self.upsert_counts(items, issues)
        self.update_issues(issues, new_users, new_accounts)

    def upsert_issues(self, items, now):
        """-> {(project_id, fingerprint): state dict}; creates the new issues."""
        groups = collections.OrderedDict()
        for item in items:
            key = (item['project_id'], item['fingerprint'])
            group = groups.get(key)
            if group is None:
                group = groups[key] = {
                    'items': [], 'first': item, 'latest': item,
                    'first_seen': item['timestamp'], 'last_seen': item['timestamp'],
                }
            group['items'].append(item)
            group['first_seen'] = earlier(group['first_seen'], item['timestamp'])
            if item['timestamp'] >= group['last_seen']:
                group['last_seen'] = item['timestamp']
                group['latest'] = item
        by_project = collections.defaultdict(list)
        for project_id, fingerprint in groups:
            by_project[project_id].append(fingerprint)
        for project_id, fingerprints in by_project.items():
            for part in chunks(fingerprints):
                query = (Issue.select(Issue.id, Issue.fingerprint, Issue.status)
                         .where(Issue.project == project_id, Issue.fingerprint.in_(part)))
                for issue_id, fingerprint, status in query.tuples():
                    group = groups[project_id, fingerprint]
                    group['id'] = issue_id
                    group['status'] = status
        for (project_id, fingerprint), group in groups.items():
            if 'id' in group:
                group['is_new'] = False
                continue
            first = group['first']
            group['id'] = Issue.insert(
                project=project_id, fingerprint=fingerprint, type=first['type'],
                title=first['title'], culprit=first['culprit'], level=first['level'],
                status='unresolved', first_seen=group['first_seen'], last_seen=group['last_seen'],
                first_release=first['release'], last_release=group['latest']['release'],
                event_count=0, user_count=0, account_count=0,
            ).execute()
            group['status'] = 'unresolved'
            group['is_new'] = True
            IssueActivity.insert(issue=group['id'], kind='created', release=first['release'],
                                 created_at=now).execute()
            Outbox.insert(kind='new_issue', project=project_id, issue=group['id'],
                          data=orjson.dumps({'event_id': first['event_id']}).decode(),
                          created_at=now).execute()
        return groups

    def insert_events(self, items, issues, now):
        rows = []
        for item in items:
            item['issue_id'] = issues[item['project_id'], item['fingerprint']]['id']
            rows.append((item['project_id'], item['issue_id'], item['event_id'],
                         item['timestamp'], item['received_at'], item['data']))
        fields = [Event.project, Event.issue, Event.event_id, Event.timestamp, Event.received_at,
                  Event.data]
        for part in chunks(rows, 200):
            Event.insert_many(part, fields=fields).execute()
        # The newest event of each issue, for the issue page's "latest event".
        issue_ids = [group['id'] for group in issues.values()]
        latest = {}
        for part in chunks(issue_ids):
            # A per-issue MAX over the (issue, id) index.
            query = (Event.select(Event.issue, fn.MAX(Event.id))
                     .where(Event.issue.in_(part)).group_by(Event.issue))
            latest.update(dict(query.tuples()))
        for group in issues.values():
            group['last_event'] = latest.get(group['id'])

    def upsert_people(self, items, issues, model, key_field, what, extra_fields):
        """Affected users or accounts: insert the new ones (counted), add to the others.
        Returns {issue_id: number of new people}."""
        merged = collections.OrderedDict()
        for item in items:
            person = item.get(what)
            if not person:
                continue
            key = (item['issue_id'], person[0])
            row = merged.get(key)
            if row is None:
                merged[key] = row = {
                    'issue': item['issue_id'], key_field.name: person[0],
                    'event_count': 0, 'first_seen': item['timestamp'],
                    'last_seen': item['timestamp'], **extra_fields(person),
                }
            row['event_count'] += 1
            row['first_seen'] = earlier(row['first_seen'], item['timestamp'])
            if item['timestamp'] >= row['last_seen']:
                row['last_seen'] = item['timestamp']
                row.update({k: v for k, v in extra_fields(person).items() if v is not None})
        if not merged:
            return {}
        new = collections.Counter()
        inserted = set()
        rows = list(merged.values())
        for part in chunks(rows, 200):
            query = (model.insert_many(part).on_conflict_ignore()
                     .returning(model.issue, key_field))
            for issue_id, person_key in query.tuples().execute():
                inserted.add((issue_id, person_key))
                new[issue_id] += 1
        rest = [row for key, row in merged.items() if key not in inserted]
        update = {
            model.event_count: model.event_count + EXCLUDED.event_count,
            model.last_seen: Case(None, [(model.last_seen < EXCLUDED.last_seen,
                                          EXCLUDED.last_seen)], model.last_seen),
        }
        for name, _value in extra_fields((None, None, None)).items():
            field = getattr(model, name)
            excluded = getattr(EXCLUDED, name)
            update[field] = Case(None, [(excluded.is_null(False), excluded)], field)
        for part in chunks(rest, 200):
            (model.insert_many(part)
             .on_conflict(conflict_target=[model.issue, key_field], update=update)
             .execute())
        return new

    def upsert_counts(self, items, issues):
        hourly = collections.Counter()
        tags = {}
        for item in items:
            stamp = item['timestamp']
            hourly[item['issue_id'], stamp.replace(minute=0, second=0, microsecond=0)] += 1
            for key, value in item['tags']:
                row = tags.get((item['issue_id'], key, value))
                if row is None:
                    tags[item['issue_id'], key, value] = row = {
                        'issue': item['issue_id'], 'key': key, 'value': value,
                        'event_count': 0, 'first_seen': stamp, 'last_seen': stamp}
                row['event_count'] += 1
                row['first_seen'] = earlier(row['first_seen'], stamp)
                row['last_seen'] = later(row['last_seen'], stamp)
        rows = [{'issue': i, 'hour': h, 'event_count': n} for (i, h), n in hourly.items()]
        for part in chunks(rows, 300):
            (IssueHourly.insert_many(part)
             .on_conflict(conflict_target=[IssueHourly.issue, IssueHourly.hour],
                          update={IssueHourly.event_count:
                                  IssueHourly.event_count + EXCLUDED.event_count})
             .execute())
        tag_update = {
            IssueTag.event_count: IssueTag.event_count + EXCLUDED.event_count,
            IssueTag.last_seen: Case(None, [(IssueTag.last_seen < EXCLUDED.last_seen,
                                             EXCLUDED.last_seen)], IssueTag.last_seen),
        }
        for part in chunks(list(tags.values()), 200):
            (IssueTag.insert_many(part)
             .on_conflict(conflict_target=[IssueTag.issue, IssueTag.key, IssueTag.value],
                          update=tag_update)
             .execute())

    def update_issues(self, issues, new_users, new_accounts):
        now = self.clock()
        for (project_id, _fingerprint), group in issues.items():
            issue_id = group['id']
            latest = group['latest']
            values = {
                Issue.event_count: Issue.event_count + len(group['items']),
                Issue.user_count: Issue.user_count + new_users.get(issue_id, 0),
                Issue.account_count: Issue.account_count + new_accounts.get(issue_id, 0),
                Issue.last_seen: Case(None, [(Issue.last_seen < group['last_seen'],
                                              group['last_seen'])], Issue.last_seen),
                Issue.first_seen: Case(None, [(Issue.first_seen > group['first_seen'],
                                               group['first_seen'])], Issue.first_seen),
                Issue.level: latest['level'],
                Issue.last_release: Case(None, [(Issue.last_seen <= group['last_seen'],
                                                 latest['release'])], Issue.last_release),
                Issue.last_event: group['last_event'],
            }
            if group['status'] == 'resolved' and not group['is_new']:
                # A new event on a resolved issue reopens it and marks the regression.
                release = latest['release']
                values.update({
                    Issue.status: 'unresolved', Issue.is_regressed: True,
                    Issue.regressed_at: now, Issue.regressed_release: release,
                    Issue.resolved_at: None,
                })
                updated = (Issue.update(values)
                           .where(Issue.id == issue_id, Issue.status == 'resolved').execute())
                if updated:
                    IssueActivity.insert(issue=issue_id, kind='regressed', release=release,
                                         created_at=now).execute()
                    Outbox.insert(kind='regression', project=project_id, issue=issue_id,
                                  data=orjson.dumps({'event_id': latest['event_id'],
                                                     'release': release}).decode(),
                                  created_at=now).execute()
                    continue
                values = {k: v for k, v in values.items()
                          if k not in (Issue.status, Issue.is_regressed, Issue.regressed_at,
                                       Issue.regressed_release, Issue.resolved_at)}
            Issue.update(values).where(Issue.id == issue_id).execute()

