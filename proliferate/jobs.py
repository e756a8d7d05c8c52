"""Scheduled jobs: module-level, idempotent functions that the scheduler runs and tests call
directly. Jobs that write hand their writes to the writer."""

import logging

from proliferate import db

log = logging.getLogger(__name__)


def checkpoint_wal():
    """Keep the WAL file bounded while the issue browser holds read snapshots."""
    result = db.checkpoint_wal()
    if result is not None:
        log.debug('wal checkpoint: %s', result)
    return result
