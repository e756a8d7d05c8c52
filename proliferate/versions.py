"""Release order (pure): which of two release names is newer. Semantic versions (with their
prerelease rules), PEP 440 and calendar versions compare as versions; names that do not parse
compare by when each was first seen. No database: the caller passes the first-seen times."""

import functools
import re

from packaging.version import InvalidVersion
from packaging.version import Version

# SemVer 2.0.0 (a leading 'v' tolerated); build metadata (+...) does not take part in the order.
_SEMVER = re.compile(r'^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)'
                     r'(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$')
# Calendar versions PEP 440 does not take: 2024-01-15, 2024-01-15.2, 24.01_3 and the like.
_CALENDAR = re.compile(r'^v?(\d{2,4})[-_.](\d{1,2})(?:[-_.](\d{1,2}))?(?:[-_.](\d+))?$')


def bare(name):
    """A Sentry-style 'package@version' names its version after the '@'; whitespace is noise."""
    name = (name or '').strip()
    return name.rsplit('@', 1)[1] if '@' in name[1:] else name


def semver_key(name):
    """A sort key for a semantic version with a prerelease, or None. A prerelease sorts before
    its release; its dot-separated fields compare numerically when numeric, else as text, a
    numeric field before a text one, and fewer fields first (SemVer 2.0.0, section 11)."""
    match = _SEMVER.match(bare(name))
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        pre_key = (1,)
    else:
        fields = tuple((0, int(f), '') if f.isdigit() else (1, 0, f) for f in pre.split('.'))
        pre_key = (0, fields)
    return (int(major), int(minor), int(patch)), pre_key


def pep440(name):
    try:
        return Version(bare(name))
    except InvalidVersion:
        return None


def calendar_key(name):
    match = _CALENDAR.match(bare(name))
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def _sign(a, b):
    return (a > b) - (a < b)


def compare(a, b, first_seen=None):
    """-1, 0 or 1 as release a is older than, the same as or newer than release b. first_seen:
    {name: datetime} for names that parse as no version (a name without a time is taken as the
    newer: it has not been seen yet). Both as semantic versions when either has a prerelease
    tag; else both as PEP 440 versions; else both as calendar versions (equal versions spelled
    apart, 1.0 and v1.0.0, are the same release: 0); else by first-seen time, then by name."""
    if a == b:
        return 0
    a_sem, b_sem = semver_key(a), semver_key(b)
    if a_sem is not None and b_sem is not None and (a_sem[1] != (1,) or b_sem[1] != (1,)):
        return _sign(a_sem, b_sem)
    a_pep, b_pep = pep440(a), pep440(b)
    if a_pep is not None and b_pep is not None:
        return _sign(a_pep, b_pep)
    a_cal, b_cal = calendar_key(a), calendar_key(b)
    if a_cal is not None and b_cal is not None:
        return _sign(a_cal, b_cal)
    seen = first_seen or {}
    a_time, b_time = seen.get(a), seen.get(b)
    if a_time is not None and b_time is not None and a_time != b_time:
        return _sign(a_time, b_time)
    if (a_time is None) != (b_time is None):
        return 1 if a_time is None else -1
    return _sign(a, b)


def is_newer(candidate, reference, first_seen=None):
    return compare(candidate, reference, first_seen) > 0


def newest(names, first_seen=None):
    """The newest of names (None for none)."""
    names = [n for n in names if n]
    if not names:
        return None
    return max(names, key=functools.cmp_to_key(lambda a, b: compare(a, b, first_seen)))


def parses(name):
    """Whether the name is a version (else only its first-seen time orders it)."""
    return any(f(name) is not None for f in (semver_key, pep440, calendar_key))


def newest_first(names, first_seen=None):
    """names in release order, newest first (compare(); first_seen as there)."""
    return sorted(names, key=functools.cmp_to_key(lambda a, b: compare(b, a, first_seen)))
