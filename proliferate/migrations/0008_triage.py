"""Triage as a team: an issue's assignee, the release it is resolved in, its snooze (ignore until
a time or until N more events, users or accounts) and the escalating mark; the project's
auto-resolve age; what an activity entry says beyond its kind; comments."""

from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField


def up(migrator, db):
    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class Issue(Model):
        class Meta:
            database = db
            table_name = 'issue'

    assignee = ForeignKeyField(User, null=True, field=User.id, on_delete='SET NULL')
    migrator.migrate(
        migrator.add_column('issue', 'assignee_id', assignee),
        migrator.add_column('issue', 'resolved_in', CharField(null=True)),
        migrator.add_column('issue', 'resolved_in_next', BooleanField(null=True)),
        migrator.add_column('issue', 'ignore_until', TextField(null=True)),
        migrator.add_column('issue', 'snooze_until', DateTimeField(null=True)),
        migrator.add_column('issue', 'snooze_kind', CharField(null=True)),
        migrator.add_column('issue', 'snooze_target', IntegerField(null=True)),
        migrator.add_column('issue', 'escalating', BooleanField(null=True)),
        migrator.add_column('project', 'auto_resolve_days', IntegerField(null=True)),
    )

    class IssueComment(Model):
        issue = ForeignKeyField(Issue, backref='+', on_delete='CASCADE', index=False)
        user = ForeignKeyField(User, null=True, backref='+', on_delete='SET NULL')
        text = TextField()
        created_at = DateTimeField()
        updated_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = 'issue_comment'
            indexes = ((('issue', 'id'), False),)

    db.create_tables([IssueComment])
