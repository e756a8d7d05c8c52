"""The compact keys of issue_slice_person, shared by the writer, the upgrade that fills the table
and the merge and unmerge rebuilds (they must agree to the bit): a person is one signed 64-bit
integer, their newest hour a number of hours. Pure: values in, values out."""

import datetime
import hashlib

# The kind column: a small integer (0 and 1 take no bytes in an SQLite record), part of the key
# so a count of users walks only users.
KINDS = {'user': 0, 'account': 1}

_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()


def person_hash(kind, key):
    """A user's or account's key as a signed 64-bit integer (PostgreSQL's bigint): the first 8
    bytes of BLAKE2b over kind, a NUL and the key. Stable across processes and versions (never
    Python's hash()). Two people of one issue, environment and release share a number about once
    in 10^19 pairs, and then they are counted as one: a collision can only undercount by one."""
    digest = hashlib.blake2b(f'{kind}\0{key}'.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'big', signed=True)


def hour_number(stamp):
    """'YYYY-MM-DD HH...' (a stored timestamp's text, UTC) -> whole hours since the Unix epoch:
    an integer of 3 bytes in an SQLite record where the hour's text took 19."""
    return ((datetime.date(int(stamp[:4]), int(stamp[5:7]), int(stamp[8:10])).toordinal()
             - _EPOCH_DAY) * 24 + int(stamp[11:13]))


def first_hour_from(moment):
    """The first whole hour at or after a naive UTC datetime, as hour_number counts: a row's hour
    h is >= moment exactly when h >= first_hour_from(moment)."""
    seconds = ((moment.toordinal() - _EPOCH_DAY) * 86400 + moment.hour * 3600
               + moment.minute * 60 + moment.second + (1 if moment.microsecond else 0))
    return -(-seconds // 3600)
