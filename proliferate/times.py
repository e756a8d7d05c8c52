"""The one clock and the one date format: naive UTC datetimes (what the database holds) and their
ISO-8601 text in every JSON document the server returns or sends. Pure: no I/O."""

import datetime


def utcnow():
    """Naive UTC: the one kind of datetime the database holds."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def iso(value):
    """A naive UTC datetime as `2025-01-15T10:30:00.123000Z`: always six fraction digits, so
    the text has one width and sorts as the instants do (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def from_sql(value):
    """A datetime read through a raw query or an aggregate (MIN, MAX): SQLite returns its text,
    PostgreSQL a datetime; both as a naive datetime (None stays None)."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.replace(tzinfo=None) if value is not None else None
