"""The writer's batch store, run inside its transaction: dedupe, upsert issues, insert events, keep
the aggregates (users, accounts, hourly counts, tag distributions, the filtered counts of
issue_slice and issue_slice_person) and record outbox rows.

Statements are per batch, not per event (aggregates merged in Python first), and only portable
SQL is used (INSERT ... ON CONFLICT works on SQLite >= 3.24 and PostgreSQL), so several
processes on one PostgreSQL database never double-count (Store.store_racing says how).
"""

import collections
import logging
import operator
import re
from collections.abc import Callable
from typing import NamedTuple

import orjson
from peewee import EXCLUDED

from proliferate import db
from proliferate.db import database
from proliferate.ingest.admission import DropCounter
from proliferate.ingest.slice_keys import KINDS
from proliferate.ingest.slice_keys import hour_number
from proliferate.ingest.slice_keys import person_hash
from proliferate.models import DroppedCount

log = logging.getLogger(__name__)

# Keeps IN (...) lists far below SQLite's and PostgreSQL's parameter limits.
CHUNK = 500
# Attempts at storing a batch that lost a race with another process (see store_racing).
RACE_ATTEMPTS = 5


class LostRace(Exception):
    """Another process committed one of this batch's event_ids or new issues after our reads."""


class Store:
    """process(items) -> ['ok' | 'duplicate', ...]; one call per writer transaction."""

    def __init__(self, *, clock, drops=None, resolver=None, lifecycle=None):
        self.clock = clock
        # The issue lifecycle's rules (resolved in a release, snoozes): hold_resolved(issues)
        # before the counts are written, after_batch(issues, now) after; the server hands in
        # proliferate.triage. Without it a regression simply reopens and snoozes never end.
        self.lifecycle = lifecycle
        self.drops = drops or DropCounter()
        self.resolver = resolver
        self.races = 0  # batches stored again after losing a race (store_racing)
        self._sql = None

    def __call__(self, items):
        now = self.clock()
        statuses, fresh = self.dedupe(items)
        if self.resolver is not None and fresh:
            self.resolver(fresh)
        if fresh:
            self.store_racing(statuses, fresh, str(now))
        self.flush_drops(statuses, items)
        return statuses

    def store_racing(self, statuses, fresh, now):
        """store() inside a savepoint. Several processes on one PostgreSQL database can each read
        an event_id (or a fingerprint) as new and insert it at once: the unique index makes the
        second INSERT wait for the first transaction, ON CONFLICT DO NOTHING then skips the row,
        and store() sees the shortfall and raises LostRace. The batch's writes are rolled back to
        the savepoint, the dedupe read again (it now sees the winner's commit) and the rest stored:
        the loser answers 'duplicate' and nothing is counted twice. A deadlock between two such
        batches is retried the same way. On SQLite the IMMEDIATE transaction already excludes
        other writers, so this costs one SAVEPOINT and never retries."""
        positions = [index for index, status in enumerate(statuses) if status == 'ok']
        for attempt in range(RACE_ATTEMPTS):
            try:
                with database.atomic():
                    self.store(fresh, now)
                return
            except Exception as error:
                if attempt == RACE_ATTEMPTS - 1 or not (
                        isinstance(error, LostRace) or db.is_retryable(error)):
                    raise
                self.races += 1
                log.info('writer: another process wrote part of this batch first (%s); '
                         'reading it again', error)
            again, still_fresh = self.dedupe(fresh)
            kept = []
            for position, status in zip(positions, again, strict=False):
                statuses[position] = status
                if status == 'ok':
                    kept.append(position)
            positions, fresh = kept, still_fresh
            if not fresh:
                return

    def dedupe(self, items):
        """An event_id already stored for its project (or earlier in this batch) is not stored or
        counted again: SDKs retry, and a retry must never double-count."""
        by_project = collections.defaultdict(set)
        for item in items:
            by_project[item['project_id']].add(item['event_id'])
        stored = set()
        statement = self.sql()['select_events']
        cursor = database.cursor()
        for project_id, event_ids in by_project.items():
            for part in db.chunks(event_ids, CHUNK):
                text, values = db.expand_list(statement, part)
                cursor.execute(text, [project_id, *values])
                stored.update((project_id, row[0]) for row in cursor.fetchall())
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
        for item, status in zip(items, statuses, strict=False):
            if status == 'duplicate':
                counts[item['project_id'], 'duplicate'] += 1
        if counts:
            self.write_drops(counts)

    def write_drops(self, counts):
        rows = [{'project': p, 'reason': r, 'count': n} for (p, r), n in sorted(counts.items())]
        (DroppedCount.insert_many(rows)
         .on_conflict(conflict_target=[DroppedCount.project, DroppedCount.reason],
                      update={DroppedCount.count: DroppedCount.count + EXCLUDED.count})
         .execute())

    def store(self, items, now):
        # Datetimes go to the database as text formatted once per event (the format SQLite's
        # adapter and Peewee write; PostgreSQL casts it): adapting each of the ~20 datetime
        # parameters of an event cost more than its INSERT.
        received = {}
        for item in items:
            item['ts'] = str(item['timestamp'])
            rx = item['received_at']
            item['rx'] = received.get(rx) or received.setdefault(rx, str(rx))
        # Rows are written in one order that every process shares (the event's own timestamp,
        # then its key), so two processes storing overlapping batches on PostgreSQL take their
        # row locks in the same order and do not deadlock; within a batch the newest event gets
        # the highest id.
        items = sorted(items, key=lambda item: (item['ts'], item['project_id'], item['event_id']))
        sql = self.sql()
        cursor = database.cursor()
        issues = self.upsert_issues(cursor, sql, items, now)
        self.insert_events(cursor, sql, items, issues)
        new_users = self.upsert_people(cursor, sql['user'], items, 'user')
        new_accounts = self.upsert_people(cursor, sql['account'], items, 'account')
        self.upsert_counts(cursor, sql, items)
        if self.lifecycle is not None:
            self.lifecycle.hold_resolved(issues)
        self.update_issues(cursor, sql, issues, new_users, new_accounts, now)
        if self.lifecycle is not None:
            self.lifecycle.after_batch(issues, now)

    def sql(self):
        """The statements of the write path, in the database's parameter style. Built once:
        Peewee's query builder cost more than the writes themselves (bench/README.md)."""
        param = database.param
        if self._sql is None or self._sql[0] != param:
            self._sql = (param, {name: (in_style(text, param) if isinstance(text, str) else
                                        {k: in_style(v, param, POSITIONS[name])
                                         for k, v in text.items()})
                                 for name, text in SQL.items()})
        return self._sql[1]

    def upsert_issues(self, cursor, sql, items, now):
        """-> {(project_id, fingerprint): group}; creates the new issues."""
        groups = {}
        for item in items:
            key = (item['project_id'], item['fingerprint'])
            group = groups.get(key)
            if group is None:
                group = groups[key] = {
                    'items': [], 'first': item, 'latest': item,
                    'first_seen': item['ts'], 'last_seen': item['ts'],
                }
            group['items'].append(item)
            if item['ts'] < group['first_seen']:
                group['first_seen'] = item['ts']
            if item['ts'] >= group['last_seen']:
                group['last_seen'] = item['ts']
                group['latest'] = item
        by_project = collections.defaultdict(list)
        for project_id, fingerprint in groups:
            by_project[project_id].append(fingerprint)
        for project_id, fingerprints in by_project.items():
            for part in db.chunks(fingerprints, CHUNK):
                text, values = db.expand_list(sql['select_issues'], part)
                cursor.execute(text, [project_id, *values])
                for issue_id, fingerprint, status, fingerprint_id in cursor.fetchall():
                    group = groups[project_id, fingerprint]
                    group['id'] = issue_id
                    group['status'] = status
                    group['fingerprint_id'] = fingerprint_id
        for (project_id, fingerprint), group in sorted(groups.items(), key=lambda pair: pair[0]):
            if 'id' in group:
                group['is_new'] = False
                continue
            first = group['first']
            insert_issue = sql['insert_issue']
            cursor.execute(insert_issue.text, insert_issue.values({
                'project_id': project_id, 'fingerprint': fingerprint, 'type': first['type'],
                'title': first['title'], 'culprit': first['culprit'], 'level': first['level'],
                'first_seen': group['first_seen'], 'last_seen': group['last_seen'],
                'first_release': first['release'], 'last_release': group['latest']['release']}))
            row = cursor.fetchone()
            if row is None:  # another process created this issue since our SELECT
                raise LostRace(f'issue {fingerprint} of project {project_id}')
            # Its fingerprint row, in the same transaction: the writer finds issues through it.
            cursor.execute(sql['insert_fingerprint'], (project_id, fingerprint, row[0], now))
            mapped = cursor.fetchone()
            if mapped is None:  # another process mapped this fingerprint (a merge) meanwhile
                raise LostRace(f'fingerprint {fingerprint} of project {project_id}')
            group['fingerprint_id'] = mapped[0]
            group['id'] = row[0]
            group['status'] = 'unresolved'
            group['is_new'] = True
            cursor.execute(sql['insert_activity'], (group['id'], 'created', first['release'], now))
            cursor.execute(sql['insert_outbox'], (
                'new_issue', project_id, group['id'],
                orjson.dumps({'event_id': first['event_id']}).decode(), now))
        return groups

    def insert_events(self, cursor, sql, items, issues):
        rows = []
        for item in items:
            group = issues[item['project_id'], item['fingerprint']]
            item['issue_id'] = issue_id = group['id']
            # In the order of ROWS['event']'s columns, as insert() takes every row.
            rows.append((item['project_id'], issue_id, item['event_id'], item['ts'], item['rx'],
                         item['data'], group['fingerprint_id']))
        inserted = insert(cursor, 'event', rows)
        if inserted != len(rows):  # another process stored some of these event_ids
            raise LostRace(f'{len(rows) - inserted} of {len(rows)} events')
        # The newest event of each issue, for the issue page (two fingerprints of a batch may
        # be one issue: merged).
        issue_ids = sorted({group['id'] for group in issues.values()})
        latest = {}
        for part in db.chunks(issue_ids, CHUNK):
            cursor.execute(*db.expand_list(sql['latest_events'], part))
            latest.update(cursor.fetchall())
        for group in issues.values():
            group['last_event'] = latest.get(group['id'])

    def upsert_people(self, cursor, sql, items, what):
        """Affected users or accounts: insert the new ones (RETURNING tells which, exactly, even
        with other processes inserting at once), add to the others. -> {issue_id: new people}.

        A row is a list in the order of ROWS[what]'s columns, read by their names' POSITIONS:
        the INSERT takes it as it is, the UPDATE's named values are read from it."""
        at = POSITIONS[what]
        events_at, first_at, last_at = at['event_count'], at['first_seen'], at['last_seen']
        key_at = at[PEOPLE[what][1]]  # the person's values follow its issue from here on
        merged = {}
        for item in items:
            person = item.get(what)  # (key, *details)
            if not person:
                continue
            pair = (item['issue_id'], person[0])
            stamp = item['ts']
            row = merged.get(pair)
            if row is None:
                merged[pair] = [pair[0], *person, 1, stamp, stamp]
                continue
            row[events_at] += 1
            if stamp < row[first_at]:
                row[first_at] = stamp
            if stamp >= row[last_at]:
                row[last_at] = stamp
                # The newest event's details win, but a detail it lacks keeps the older value.
                for index, value in enumerate(person, key_at):
                    if value is not None:
                        row[index] = value
        if not merged:
            return {}
        new = collections.Counter()
        inserted = set()
        rows = [merged[pair] for pair in sorted(merged)]
        for issue_id, person_key in insert(cursor, what, rows):
            inserted.add((issue_id, person_key))
            new[issue_id] += 1
        rest = [row for row in rows if (row[0], row[1]) not in inserted]
        if rest:
            update = sql['update']
            cursor.executemany(update.text, map(update.values, rest))
        return new

    def upsert_counts(self, cursor, sql, items):
        at = POSITIONS['tag']
        events_at, first_at, last_at = at['event_count'], at['first_seen'], at['last_seen']
        hourly = collections.Counter()
        tags = {}
        for item in items:
            stamp = item['ts']
            issue_id = item['issue_id']
            hourly[issue_id, stamp[:13] + ':00:00'] += 1
            for key, value in item['tags']:
                row = tags.get((issue_id, key, value))
                if row is None:
                    tags[issue_id, key, value] = [issue_id, key, value, 1, stamp, stamp]
                    continue
                row[events_at] += 1
                if stamp < row[first_at]:
                    row[first_at] = stamp
                if stamp > row[last_at]:
                    row[last_at] = stamp
        insert(cursor, 'hourly', [(issue_id, hour, count)
                                  for (issue_id, hour), count in sorted(hourly.items())])
        if tags:
            insert(cursor, 'tag', sorted(tags.values()))
        slices, people = slice_rows(items)
        insert(cursor, 'slice', [(*key, count) for key, count in sorted(slices.items())])
        if people:
            insert(cursor, 'slice_person', [(*key, hour) for key, hour in sorted(people.items())])

    def update_issues(self, cursor, sql, issues, new_users, new_accounts, now):
        plain = []
        for (project_id, _fingerprint), group in sorted(issues.items(),
                                                       key=lambda pair: pair[1]['id']):
            issue_id = group['id']
            latest = group['latest']
            values = {
                'id': issue_id, 'events': len(group['items']),
                'new_users': new_users.get(issue_id, 0),
                'new_accounts': new_accounts.get(issue_id, 0),
                'first_seen': group['first_seen'], 'last_seen': group['last_seen'],
                'level': latest['level'], 'last_release': latest['release'],
                'last_event': group['last_event'],
            }
            if group['status'] == 'resolved' and not group['is_new']:
                # A new event on a resolved issue reopens it and marks the regression.
                release = latest['release']
                regress = sql['regress_issue']
                cursor.execute(regress.text, regress.values({**values, 'regressed_at': now}))
                if cursor.rowcount:
                    cursor.execute(sql['insert_activity'], (issue_id, 'regressed', release, now))
                    cursor.execute(sql['insert_outbox'], (
                        'regression', project_id, issue_id,
                        orjson.dumps({'event_id': latest['event_id'], 'release': release}).decode(),
                        now))
                    continue
            plain.append(values)
        if plain:
            update = sql['update_issue']
            cursor.executemany(update.text, map(update.values, plain))


def slice_rows(items):
    """What items add to issue_slice and issue_slice_person: ({(issue, environment, release,
    hour): events}, {(issue, kind, environment, release, person): hour number of the newest
    event}), '' standing for an event without environment or release; kind, person and the hour
    number are slice_keys' compact values."""
    slices = collections.Counter()
    people = {}
    numbers = {}
    for item in items:
        environment = release = ''
        for key, value in item['tags']:
            if key == 'environment':
                environment = value
            elif key == 'release':
                release = value
        issue_id = item['issue_id']
        stamp = item['ts']
        slices[issue_id, environment, release, stamp[:13] + ':00:00'] += 1
        for kind, code in KINDS.items():
            person = item.get(kind)
            if person:
                number = numbers.get(stamp[:13])
                if number is None:
                    number = numbers[stamp[:13]] = hour_number(stamp)
                key = (issue_id, code, environment, release, person_hash(kind, person[0]))
                if people.get(key, -1) < number:
                    people[key] = number
    return slices, people


def insert(cursor, name, rows):
    """ROWS[name] through db.insert_rows, rows in the order of its columns: the count inserted, or
    the RETURNING rows."""
    table, columns, conflict, *returning = ROWS[name]
    return db.insert_rows(cursor, table, columns, rows, conflict=conflict,
                          returning=returning[0] if returning else '')


# A named placeholder, ':name' (PostgreSQL's '::' casts are not one).
NAMED = re.compile(r'(?<!:):([a-z_]+)')


class Statement(NamedTuple):
    """A statement whose values are named: its text with positional placeholders, and values(row)
    -> the row's values in their order. Both drivers bind positional values faster than named
    ones (sqlite3 looks each name up: a quarter more per row of the people UPDATE)."""

    text: str
    values: Callable


def in_style(text, param, positions=None):
    """A statement below in the database's parameter style (param): '?' replaced, and one with
    ':name' placeholders made a Statement, whose rows are dicts, or lists with each name at
    positions[name]."""
    names = NAMED.findall(text)
    if not names:
        return text.replace('?', param)
    if '?' in text:
        raise ValueError('a statement has either named or positional placeholders, not both')
    getter = operator.itemgetter(*[positions[name] for name in names] if positions else names)
    if len(names) == 1:
        return Statement(NAMED.sub(param, text), lambda row: (getter(row),))
    return Statement(NAMED.sub(param, text), getter)


# What a batch adds to an issue; update_issues names the values.
_ISSUE_COUNTS = (
    'event_count = event_count + :events, user_count = user_count + :new_users, '
    'account_count = account_count + :new_accounts, '
    'last_seen = CASE WHEN last_seen < :last_seen THEN :last_seen ELSE last_seen END, '
    'first_seen = CASE WHEN first_seen > :first_seen THEN :first_seen ELSE first_seen END, '
    'level = :level, '
    # SET expressions all see the old row: last_release follows the newest event.
    'last_release = CASE WHEN last_seen <= :last_seen THEN :last_release ELSE last_release END, '
    # Never back to an older event: another process's newer one may have committed meanwhile.
    'last_event = CASE WHEN last_event IS NULL OR last_event < :last_event THEN :last_event '
    'ELSE last_event END')

# The person of an item (prepare_event's 'user' and 'account' tuples): its table, the column of
# its first value (the key) and those of the others (details that may be None).
PEOPLE = {
    'user': ('issue_user', 'user_key', ('user_id', 'email')),
    'account': ('issue_account', 'account_id', ('name',)),
}


def _people_sql(table, key, details):
    """The UPDATE of a person already counted, its parameters named as the table's columns."""
    detail_updates = ''.join(f', {d} = COALESCE(:{d}, {d})' for d in details)
    return {
        'update': f'UPDATE {table} SET event_count = event_count + :event_count, '  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
                  'last_seen = CASE WHEN last_seen < :last_seen THEN :last_seen ELSE last_seen END'
                  f'{detail_updates} WHERE issue_id = :issue_id AND {key} = :{key}',
    }


# Portable SQL (SQLite >= 3.35 and PostgreSQL): ON CONFLICT upserts and RETURNING. '?' is
# replaced by the database's parameter style; a statement with ':name' placeholders becomes a
# Statement (in_style), those of 'user' and 'account' reading rows of ROWS' layout;
# IN ({list}) is expanded by db.expand_list.
SQL = {
    'select_events': 'SELECT event_id FROM event WHERE project_id = ? AND event_id IN ({list})',
    # Issues through their fingerprints (one issue may answer to several: merged, or upgraded
    # from grouping version 1): one probe of the unique (project_id, fingerprint) index each.
    'select_issues': 'SELECT f.issue_id, f.fingerprint, i.status, f.id FROM issue_fingerprint f '
                     'JOIN issue i ON i.id = f.issue_id '
                     'WHERE f.project_id = ? AND f.fingerprint IN ({list})',
    'insert_issue': 'INSERT INTO issue (project_id, fingerprint, type, title, culprit, level, '
                    "status, first_seen, last_seen, first_release, last_release, event_count, "
                    "user_count, account_count, is_regressed, grouping_version) "
                    'VALUES (:project_id, :fingerprint, :type, :title, :culprit, :level, '
                    "'unresolved', :first_seen, :last_seen, :first_release, :last_release, "
                    '0, 0, 0, FALSE, 2) '
                    'ON CONFLICT (project_id, fingerprint) DO NOTHING RETURNING id',
    'insert_fingerprint': 'INSERT INTO issue_fingerprint (project_id, fingerprint, issue_id, '
                          'created_at) VALUES (?, ?, ?, ?) '
                          'ON CONFLICT (project_id, fingerprint) DO NOTHING RETURNING id',
    'insert_activity': 'INSERT INTO issue_activity (issue_id, kind, release, created_at) '
                       'VALUES (?, ?, ?, ?)',
    'insert_outbox': 'INSERT INTO outbox (kind, project_id, issue_id, data, created_at) '
                     'VALUES (?, ?, ?, ?, ?)',
    # One MAX per issue, as a correlated subquery: both databases answer it with one descent of
    # the (issue_id, id) index. 'MAX(id) ... IN (...) GROUP BY issue_id' read every index entry
    # of those issues instead: 65 ms a commit at 1,000,000 events, a third of ingest speed.
    'latest_events': 'SELECT id, (SELECT MAX(event.id) FROM event WHERE event.issue_id = issue.id) '
                     'FROM issue WHERE id IN ({list})',
    'user': _people_sql(*PEOPLE['user']),
    'account': _people_sql(*PEOPLE['account']),
    'update_issue': f'UPDATE issue SET {_ISSUE_COUNTS} WHERE id = :id',  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
    'regress_issue': f"UPDATE issue SET {_ISSUE_COUNTS}, status = 'unresolved', "  # noqa: S608 (SQL assembled from constant table/column names; values are parameters)
                     'is_regressed = TRUE, regressed_at = :regressed_at, '
                     "regressed_release = :last_release, resolved_at = NULL "
                     "WHERE id = :id AND status = 'resolved'",
}


def _people_rows(table, key, details):
    columns = [('issue_id', 'integer'), (key, 'text'), *[(d, 'text') for d in details],
               ('event_count', 'integer'), ('first_seen', 'timestamp'), ('last_seen', 'timestamp')]
    return (table, columns, f'ON CONFLICT (issue_id, {key}) DO NOTHING', f'issue_id, {key}')


# The many-row INSERTs, for db.insert_rows: (table, [(column, PostgreSQL type)], conflict clause).
# Every row of one statement has its own key (merged in Python first), as ON CONFLICT DO UPDATE
# requires on PostgreSQL.
ROWS = {
    'event': ('event', [('project_id', 'integer'), ('issue_id', 'integer'), ('event_id', 'text'),
                        ('timestamp', 'timestamp'), ('received_at', 'timestamp'),
                        ('data', 'bytea'), ('fingerprint_id', 'integer')],
              'ON CONFLICT (project_id, event_id) DO NOTHING'),
    'user': _people_rows(*PEOPLE['user']),
    'account': _people_rows(*PEOPLE['account']),
    'hourly': ('issue_hourly', [('issue_id', 'integer'), ('hour', 'timestamp'),
                                ('event_count', 'integer')],
               'ON CONFLICT (issue_id, hour) DO UPDATE '
               'SET event_count = issue_hourly.event_count + excluded.event_count'),
    'tag': ('issue_tag', [('issue_id', 'integer'), ('key', 'text'), ('value', 'text'),
                          ('event_count', 'integer'), ('first_seen', 'timestamp'),
                          ('last_seen', 'timestamp')],
            'ON CONFLICT (issue_id, key, value) DO UPDATE SET '
            'event_count = issue_tag.event_count + excluded.event_count, '
            'last_seen = CASE WHEN issue_tag.last_seen < excluded.last_seen '
            'THEN excluded.last_seen ELSE issue_tag.last_seen END'),
    'slice': ('issue_slice', [('issue_id', 'integer'), ('environment', 'text'), ('release', 'text'),
                              ('hour', 'timestamp'), ('event_count', 'integer')],
              'ON CONFLICT (issue_id, environment, release, hour) DO UPDATE '
              'SET event_count = issue_slice.event_count + excluded.event_count'),
    # Written only when the person's newest hour there moves on: most events of a busy issue
    # come from people already counted in that hour, and their row is left as it is.
    'slice_person': ('issue_slice_person', [('issue_id', 'integer'), ('kind', 'smallint'),
                                            ('environment', 'text'), ('release', 'text'),
                                            ('person', 'bigint'), ('last_hour', 'integer')],
                     'ON CONFLICT (issue_id, kind, environment, release, person) DO UPDATE '
                     'SET last_hour = excluded.last_hour '
                     'WHERE issue_slice_person.last_hour < excluded.last_hour'),
}

# ROWS[name]'s column -> its position in a row: the store's merged rows are lists in the
# columns' order (as the INSERT takes them), and their values are read by name through this.
POSITIONS = {name: {column: index for index, (column, _kind) in enumerate(spec[1])}
             for name, spec in ROWS.items()}
