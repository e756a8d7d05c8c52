"""Where the notification jobs do their database work: reads on a connection of their own (or the
caller's), writes in one transaction on the writer thread when there is one. No decisions, no
sending."""

import contextlib

from proliferate.db import database

# Ids per IN (...) list, so a large batch never builds one huge query.
CHUNK = 500


@contextlib.contextmanager
def connection():
    """A connection for a job; reuses (and leaves open) one the caller already holds."""
    if database.is_closed():
        with database.connection_context():
            yield
    else:
        yield


def write(writer, fn_):
    """Run fn_ in a write transaction: on the writer thread when there is one (the server), or
    here (CLI, tests without a server)."""
    if writer is not None:
        return writer.call(fn_)
    with database.atomic():
        return fn_()
