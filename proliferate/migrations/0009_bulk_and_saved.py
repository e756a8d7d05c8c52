"""The issue list's bulk changes kept for their Undo (each issue's state before and after), and
saved searches (a member's, or the whole organization's)."""

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

    class Organization(Model):
        class Meta:
            database = db
            table_name = 'organization'

    class BulkChange(Model):
        user = ForeignKeyField(User, backref='+', on_delete='CASCADE')
        created_at = DateTimeField()
        count = IntegerField()
        states = TextField()
        undone = BooleanField(default=False)

        class Meta:
            database = db
            table_name = 'bulk_change'

    class SavedSearch(Model):
        organization = ForeignKeyField(Organization, backref='+', on_delete='CASCADE')
        user = ForeignKeyField(User, backref='+', on_delete='CASCADE')
        name = CharField()
        filters = TextField()
        shared = BooleanField(default=False)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = 'saved_search'

    db.create_tables([BulkChange, SavedSearch])
