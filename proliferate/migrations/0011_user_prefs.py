"""A user's display preferences: the theme (system, light or dark) and the time zone pages show
times in (an IANA name; none: the browser's, once it has told us, else UTC)."""

from peewee import CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('user', 'theme', CharField(default='system')),
        migrator.add_column('user', 'timezone', CharField(null=True)),
    )
