"""Filtered counts: an issue's events per hour by environment and release (issue_slice), and who
it affected there with the hour of their newest event (issue_slice_person: the person as a 64-bit
hash and the hour as a number, proliferate.ingest.slice_keys). Both are filled from the stored
events once, here; the writer keeps them from then on."""

import collections

from peewee import BigIntegerField
from peewee import CharField
from peewee import CompositeKey
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import SmallIntegerField
from peewee import SqliteDatabase

from proliferate.ingest.payload import decode_json
from proliferate.ingest.slice_keys import KINDS
from proliferate.ingest.slice_keys import hour_number
from proliferate.ingest.slice_keys import person_hash

# Events read per step, and merged rows held before they are written.
CHUNK = 2000
FLUSH = 200_000


def up(migrator, db):
    class Issue(Model):
        class Meta:
            database = db
            table_name = 'issue'

    # On SQLite the key is the table (WITHOUT ROWID): one B-tree to write per row instead of a
    # table and a unique index, and the counts read nothing else.
    clustered = isinstance(db, SqliteDatabase)

    class IssueSlice(Model):
        issue = ForeignKeyField(Issue, on_delete='CASCADE', index=False)
        environment = CharField()
        release = CharField()
        hour = DateTimeField()
        event_count = IntegerField(default=0)

        class Meta:
            database = db
            table_name = 'issue_slice'
            primary_key = CompositeKey('issue', 'environment', 'release', 'hour')
            without_rowid = clustered

    class IssueSlicePerson(Model):
        issue = ForeignKeyField(Issue, on_delete='CASCADE', index=False)
        kind = SmallIntegerField()
        environment = CharField()
        release = CharField()
        person = BigIntegerField()
        last_hour = IntegerField()

        class Meta:
            database = db
            table_name = 'issue_slice_person'
            primary_key = CompositeKey('issue', 'kind', 'environment', 'release', 'person')
            without_rowid = clustered

    db.create_tables([IssueSlice, IssueSlicePerson])
    fill(db)


def fill(db):
    """The two tables from every stored event (the rules of the writer's prepare step: the
    environment and release when given, the user's id else its email, the account's id)."""
    p = db.param
    slices = collections.Counter()
    people = {}
    after = 0
    while True:
        rows = db.execute_sql(
            f'SELECT id, issue_id, timestamp, data FROM event WHERE id > {p} '  # noqa: S608 (only the driver's parameter marker is interpolated)
            f'ORDER BY id LIMIT {CHUNK}', (after,)).fetchall()
        if not rows:
            break
        for event_id, issue_id, stamp, data in rows:
            event = decode_json(data)
            environment = event.get('environment') or ''
            release = event.get('release') or ''
            stamp = str(stamp)
            slices[issue_id, environment, release, stamp[:13] + ':00:00'] += 1
            user = event.get('user') or {}
            account = event.get('account') or {}
            for kind, key in (('user', user.get('id') or user.get('email')),
                              ('account', account.get('id'))):
                if key:
                    number = hour_number(stamp)
                    person = (issue_id, KINDS[kind], environment, release, person_hash(kind, key))
                    if people.get(person, -1) < number:
                        people[person] = number
            after = event_id
        if len(slices) + len(people) > FLUSH:
            write(db, slices, people)
            slices, people = collections.Counter(), {}
    write(db, slices, people)


def write(db, slices, people):
    p = db.param
    if slices:
        db.cursor().executemany(
            'INSERT INTO issue_slice (issue_id, environment, release, hour, event_count) '  # noqa: S608 (only the driver's parameter marker is interpolated)
            f'VALUES ({p}, {p}, {p}, {p}, {p}) '
            'ON CONFLICT (issue_id, environment, release, hour) DO UPDATE '
            'SET event_count = issue_slice.event_count + excluded.event_count',
            [(*key, count) for key, count in sorted(slices.items())])
    if people:
        db.cursor().executemany(
            'INSERT INTO issue_slice_person (issue_id, kind, environment, release, person, '  # noqa: S608 (only the driver's parameter marker is interpolated)
            f'last_hour) VALUES ({p}, {p}, {p}, {p}, {p}, {p}) '
            'ON CONFLICT (issue_id, kind, environment, release, person) DO UPDATE '
            'SET last_hour = excluded.last_hour '
            'WHERE issue_slice_person.last_hour < excluded.last_hour',
            [(*key, hour) for key, hour in sorted(people.items())])
