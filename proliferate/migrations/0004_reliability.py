"""Reliability settings of a project: scrubbing (on by default, extra keys) and a maximum count of
stored events (retention)."""

from peewee import BooleanField
from peewee import IntegerField
from peewee import TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('project', 'scrub_enabled', BooleanField(default=True)),
        migrator.add_column('project', 'scrub_extra_keys', TextField(default='')),
        migrator.add_column('project', 'max_events', IntegerField(null=True)),
    )
