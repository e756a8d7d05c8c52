"""Who may send events and how many: the pk_ key cache, the per-project rate limiter and the counts
of refused events. Request threads use all three; nothing here knows about HTTP.
"""

import collections
import re
import threading
import time

from proliferate.db import database
from proliferate.ingest import grouping
from proliferate.ingest import scrub
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.times import utcnow

INVALID_KEY = 'Invalid API key'
MISSING_KEY = 'Missing API key: send api_key in the body or an X-API-Key header'
# The sender's api_key in the first bytes of a refused body, so the refusal is counted against
# its project (the 0.1.0 SDK sends the key first in the body, not in a header).
KEY_IN_BODY = re.compile(rb'"api_key"\s*:\s*"([A-Za-z0-9_\-]{1,200})"')


class KeyCache:
    """pk_ key -> (project_id, rate limit per minute, scrubber, in-app rules), trusted for ttl
    seconds. Misses are cached too, so a flood with a bad key costs one query per ttl."""

    def __init__(self, ttl, clock=time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._entries = {}
        self._loading = set()
        self._lock = threading.Lock()

    def lookup(self, key):
        if not isinstance(key, str):
            return None  # an api_key sent as a list or object: unhashable, and no key anyway
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        with self._lock:
            if entry is not None and key in self._loading:
                # Another thread is reading it again: when a busy key expires, the 16 request
                # threads would otherwise all open a connection for the same row at once.
                return entry[1]
            self._loading.add(key)
        try:
            value = self._load(key)
        except Exception:
            # The database is away (a PostgreSQL restart): an entry that was good a moment ago
            # still serves, and is read again on the next use. A key never seen raises.
            if entry is not None:
                return entry[1]
            raise
        finally:
            with self._lock:
                self._loading.discard(key)
        with self._lock:
            if len(self._entries) > 10000:
                self._entries.clear()
            self._entries[key] = (now + self.ttl, value)
        return value

    def forget(self, key=None):
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def _load(self, key):
        if not isinstance(key, str) or not key or len(key) > 200:
            return None
        with database.connection_context():
            row = (ProjectKey.select(ProjectKey.project, Project.rate_limit_per_minute,
                                     Project.scrub_enabled, Project.scrub_extra_keys,
                                     Project.in_app_patterns, Project.library_patterns)
                   .join(Project)
                   .where(ProjectKey.key == key, ProjectKey.revoked_at.is_null())
                   .tuples().first())
        if row is None:
            return None
        return row[0], row[1], scrub.scrubber_for(row[2], row[3]), rules_for(row[4], row[5])


def split_patterns(text):
    """A project's comma-separated path patterns -> [pattern, ...] (blanks dropped)."""
    return [part.strip() for part in (text or '').split(',') if part.strip()]


def clean_patterns(text):
    """Comma-separated patterns as a project stores them: blanks dropped, at most
    grouping.MAX_RULE_PATTERNS of them, each cut to grouping.MAX_RULE_CHARS."""
    parts = split_patterns(text)[:grouping.MAX_RULE_PATTERNS]
    return ', '.join(part[:grouping.MAX_RULE_CHARS] for part in parts)


def rules_for(in_app, library):
    """A project's stored patterns -> grouping.InAppRules; None when it has none (the built-in
    rules), so most projects pay nothing."""
    if not (in_app or '').strip() and not (library or '').strip():
        return None
    return grouping.in_app_rules({'in_app': split_patterns(in_app),
                                  'library': split_patterns(library)})


class KeyUsage:
    """When each ingest key was last used. Request threads note a use in memory; a key's time is
    written at most once every `every` seconds, by one background hand-off to the writer, so no
    event pays for a write."""

    def __init__(self, every=60.0, clock=time.monotonic, wall=utcnow):
        self.every = every
        self.clock = clock
        self.wall = wall
        self._written = {}  # key -> monotonic time of its last write (or planned write)
        self._pending = {}  # key -> wall time of its latest use, not yet written
        self._flushing = False
        self._lock = threading.Lock()

    def note(self, key):
        """Record a use of key; True when a write is due and no flush is already under way
        (the caller then starts one)."""
        if not isinstance(key, str) or not key:
            return False
        now = self.clock()
        with self._lock:
            last = self._written.get(key)
            if last is not None and now - last < self.every:
                return False
            if len(self._written) > 10000:
                self._written.clear()
            self._written[key] = now
            self._pending[key] = self.wall()
            if self._flushing:
                return False
            self._flushing = True
            return True

    def take(self):
        with self._lock:
            pending, self._pending = self._pending, {}
            return pending

    def done(self):
        """-> whether the flush must go on (uses were noted meanwhile); otherwise it ends."""
        with self._lock:
            if self._pending:
                return False
            self._flushing = False
            return True

    def write(self, pending):
        """UPDATE the keys' last_used_at (inside the caller's transaction)."""
        for key, when in sorted(pending.items()):
            (ProjectKey.update(last_used_at=when)
             .where(ProjectKey.key == key,
                    ProjectKey.last_used_at.is_null() | (ProjectKey.last_used_at < when))
             .execute())


def authenticate(keys, api_key):
    """-> ((project_id, rate limit, scrubber, rules), None), or (None, why the key is refused)."""
    if not api_key:
        return None, MISSING_KEY
    found = keys.lookup(api_key)
    if found is None:
        return None, INVALID_KEY
    return found, None


def key_in(head):
    """The api_key found in the first bytes of a body, or None."""
    match = KEY_IN_BODY.search(head)
    return match.group(1).decode() if match else None


def sender_key(raw, header_key):
    """The key a refused event was sent with, read as normalize_event reads it: the event's own
    api_key first, then the X-API-Key header."""
    key = raw.get('api_key') if isinstance(raw, dict) else None
    return key or header_key


class RateLimiter:
    """A token bucket per project: capacity = the per-minute limit, refilled continuously."""

    def __init__(self, default_per_minute, clock=time.monotonic):
        self.default = default_per_minute
        self.clock = clock
        self._buckets = {}
        self._lock = threading.Lock()

    def limit_for(self, project_limit):
        return self.default if project_limit is None else project_limit

    def take(self, project_id, project_limit, wanted):
        """-> (granted, limit, remaining, seconds until one more token); limit 0 = unlimited."""
        limit = self.limit_for(project_limit)
        if not limit:
            return wanted, 0, 0, 0
        rate = limit / 60.0
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.get(project_id, (float(limit), now))
            tokens = min(float(limit), tokens + (now - stamp) * rate)
            granted = min(wanted, int(tokens))
            tokens -= granted
            self._buckets[project_id] = (tokens, now)
        wait = 0 if tokens >= 1 else (1 - tokens) / rate
        return granted, limit, int(tokens), wait


class DropCounter:
    """Events refused before the writer (rate limited, too large, invalid...), counted in memory
    by request threads and added to the database with the writer's next commit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = collections.Counter()

    def add(self, project_id, reason, count=1):
        if project_id is None or count <= 0:
            return
        with self._lock:
            self._counts[project_id, reason] += count

    def take(self):
        with self._lock:
            counts, self._counts = self._counts, collections.Counter()
        return counts

    def give_back(self, counts):
        with self._lock:
            self._counts.update(counts)
