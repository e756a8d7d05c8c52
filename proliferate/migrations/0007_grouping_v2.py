"""Grouping version 2: every fingerprint maps to its issue (issue_fingerprint), so issues can be
merged and unmerged and version-1 issues keep their events after the upgrade; events remember
their fingerprint; projects get their own in-app and library path patterns."""

from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField


def up(migrator, db):
    class Project(Model):
        class Meta:
            database = db
            table_name = 'project'

    class Issue(Model):
        class Meta:
            database = db
            table_name = 'issue'

    class IssueFingerprint(Model):
        project = ForeignKeyField(Project, on_delete='CASCADE', index=False)
        fingerprint = CharField()
        issue = ForeignKeyField(Issue, on_delete='CASCADE')
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = 'issue_fingerprint'
            indexes = ((('project', 'fingerprint'), True),)

    db.create_tables([IssueFingerprint])
    migrator.migrate(
        # NULL: made by version 1 and not yet upgraded (proliferate/regroup.py); 2 afterwards.
        migrator.add_column('issue', 'grouping_version', IntegerField(null=True)),
        # issue_fingerprint.id; NULL for events stored before: the issue's own fingerprint.
        migrator.add_column('event', 'fingerprint_id', IntegerField(null=True)),
        migrator.add_column('issue_activity', 'detail', TextField(null=True)),
        migrator.add_column('project', 'in_app_patterns', TextField(default='')),
        migrator.add_column('project', 'library_patterns', TextField(default='')),
    )
    # Every issue keeps the fingerprint it was found by (version 1 for a database written before).
    db.execute_sql('INSERT INTO issue_fingerprint (project_id, fingerprint, issue_id, created_at) '
                   'SELECT project_id, fingerprint, id, first_seen FROM issue')
