"""Issue browser: dashboard sessions, invite links and failed login attempts (frozen models), and
the indexes the user: and account: searches need."""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import Model


def up(migrator, db):
    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class Organization(Model):
        class Meta:
            database = db
            table_name = 'organization'

    class Session(Model):
        token_hash = CharField(unique=True)
        user = ForeignKeyField(User, on_delete='CASCADE')
        created_at = DateTimeField()
        expires_at = DateTimeField(index=True)
        ip = CharField(default='')
        user_agent = CharField(default='')
        class Meta:
            database = db
            table_name = 'session'
    db.create_tables([Session])

    class Invite(Model):
        organization = ForeignKeyField(Organization, on_delete='CASCADE')
        role = CharField(default='member')
        email = CharField(null=True)
        token_hash = CharField(unique=True)
        created_by = ForeignKeyField(User, null=True, backref='+', on_delete='SET NULL')
        created_at = DateTimeField()
        expires_at = DateTimeField()
        accepted_at = DateTimeField(null=True)
        accepted_by = ForeignKeyField(User, null=True, backref='+', on_delete='SET NULL')
        revoked_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'invite'
    db.create_tables([Invite])

    class LoginAttempt(Model):
        email = CharField()
        ip = CharField()
        created_at = DateTimeField(index=True)
        class Meta:
            database = db
            table_name = 'login_attempt'
            indexes = ((('email', 'created_at'), False), (('ip', 'created_at'), False))
    db.create_tables([LoginAttempt])


    # Searching issues by user (user:) and account (account:) looks these keys up across
    # issues; the writer only inserts them (never updates), so the indexes cost it little.
    migrator.migrate(
        migrator.add_index('issue_user', ('user_key',), False),
        migrator.add_index('issue_account', ('account_id',), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('issue_account', 'issue_account_account_id'),
        migrator.drop_index('issue_user', 'issue_user_user_key'),
    )
    migrator.migrate(migrator.drop_table('login_attempt'))
    migrator.migrate(migrator.drop_table('invite'))
    migrator.migrate(migrator.drop_table('session'))
