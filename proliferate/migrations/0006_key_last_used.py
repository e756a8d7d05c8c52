"""Ingest keys remember when they were last used (either door: the documented API or a Sentry
SDK's DSN), written at most once a minute per key."""

from peewee import DateTimeField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('project_key', 'last_used_at', DateTimeField(null=True)),
    )
