"""Peewee models: the schema as the application sees it. No HTTP, no grouping.

The tables are created and changed only by proliferate/migrations/ (a model change and its
migration land together).
"""

import peewee

from proliferate.db import database
from proliferate.times import utcnow


# The indexes that migrations 0001-0003 create with their tables are named after the class
# (projectkey_key), not the table (project_key_key) as these models would name them: a migration
# that drops or replaces one must use the name the database has.
class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Organization(BaseModel):
    name = peewee.CharField()
    slug = peewee.CharField(unique=True)
    created_at = peewee.DateTimeField(default=utcnow)


class User(BaseModel):
    email = peewee.CharField(unique=True)
    name = peewee.CharField(default='')
    password_hash = peewee.CharField(null=True)
    is_admin = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    theme = peewee.CharField(default='system')  # system | light | dark
    # An IANA zone name the pages show times in; None: not chosen (the browser's, else UTC).
    timezone = peewee.CharField(null=True)


class Membership(BaseModel):
    organization = peewee.ForeignKeyField(Organization, backref='memberships', on_delete='CASCADE')
    user = peewee.ForeignKeyField(User, backref='memberships', on_delete='CASCADE')
    role = peewee.CharField(default='member')  # owner | admin | member
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((('organization', 'user'), True),)


class Project(BaseModel):
    organization = peewee.ForeignKeyField(Organization, backref='projects', on_delete='CASCADE')
    name = peewee.CharField()
    slug = peewee.CharField()
    # None: the server's default (rate_limit_per_minute setting); 0: no limit.
    rate_limit_per_minute = peewee.IntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    # Reliability (migration 0004): scrubbing is on unless turned off; scrub_extra_keys is a
    # comma-separated list added to scrub.DEFAULT_KEYS; max_events None = only the age limit.
    scrub_enabled = peewee.BooleanField(default=True)
    scrub_extra_keys = peewee.TextField(default='')
    max_events = peewee.IntegerField(null=True)
    # Grouping (migration 0007): comma-separated path substrings that make a frame the
    # application's or a library's (grouping.in_app_rules).
    in_app_patterns = peewee.TextField(default='')
    library_patterns = peewee.TextField(default='')

    class Meta:
        indexes = ((('organization', 'slug'), True),)


class ProjectKey(BaseModel):
    """Public ingest key (pk_...): it ships inside browsers, so it is stored as is."""
    project = peewee.ForeignKeyField(Project, backref='keys', on_delete='CASCADE')
    key = peewee.CharField(unique=True)
    label = peewee.CharField(default='')
    created_at = peewee.DateTimeField(default=utcnow)
    revoked_at = peewee.DateTimeField(null=True)
    # Written through the writer at most once a minute per key (admission.KeyUsage).
    last_used_at = peewee.DateTimeField(null=True)


class ApiToken(BaseModel):
    """A secret bearer token: only its SHA-256 is stored; the token is shown once."""
    user = peewee.ForeignKeyField(User, backref='tokens', on_delete='CASCADE')
    organization = peewee.ForeignKeyField(Organization, on_delete='CASCADE')
    # read: the JSON read API of the organization; upload: releases and source maps of one project.
    kind = peewee.CharField(default='read')
    project = peewee.ForeignKeyField(Project, null=True, on_delete='CASCADE')
    token_hash = peewee.CharField(unique=True)
    prefix = peewee.CharField()
    name = peewee.CharField(default='')
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)


class Issue(BaseModel):
    project = peewee.ForeignKeyField(Project, backref='issues', on_delete='CASCADE')
    fingerprint = peewee.CharField()
    type = peewee.CharField(default='')
    title = peewee.CharField()
    culprit = peewee.CharField(default='')
    level = peewee.CharField(default='error')
    status = peewee.CharField(default='unresolved')  # unresolved | resolved | ignored
    first_seen = peewee.DateTimeField()
    last_seen = peewee.DateTimeField()
    first_release = peewee.CharField(null=True)
    last_release = peewee.CharField(null=True)
    event_count = peewee.IntegerField(default=0)
    user_count = peewee.IntegerField(default=0)
    account_count = peewee.IntegerField(default=0)
    is_regressed = peewee.BooleanField(default=False)
    regressed_at = peewee.DateTimeField(null=True)
    regressed_release = peewee.CharField(null=True)
    resolved_at = peewee.DateTimeField(null=True)
    last_event = peewee.BigIntegerField(null=True)  # Event.id of the newest event
    # None: made by grouping version 1 and not upgraded yet (proliferate/regroup.py).
    grouping_version = peewee.IntegerField(null=True, default=2)

    class Meta:
        indexes = (
            (('project', 'fingerprint'), True),
            (('project', 'status', 'last_seen'), False),
        )


class Event(BaseModel):
    """One stored event. data is the normalised event as zlib-compressed JSON; the columns
    beside it are the few that queries filter on."""
    id = peewee.BigAutoField()
    project = peewee.ForeignKeyField(Project, on_delete='CASCADE', index=False)
    issue = peewee.ForeignKeyField(Issue, on_delete='CASCADE', index=False)
    event_id = peewee.CharField()
    timestamp = peewee.DateTimeField()
    received_at = peewee.DateTimeField()
    data = peewee.BlobField()
    # IssueFingerprint.id of the key it was grouped by (None: stored before migration 0007, the
    # issue's own fingerprint). No foreign key: deleting a fingerprint row would then scan events.
    fingerprint_id = peewee.IntegerField(null=True)

    class Meta:
        indexes = (
            (('project', 'event_id'), True),
            (('issue', 'id'), False),
        )


class IssueUser(BaseModel):
    """Affected users of an issue: keyed by user id, or email when no id was sent."""
    issue = peewee.ForeignKeyField(Issue, on_delete='CASCADE', index=False)
    user_key = peewee.CharField()
    user_id = peewee.CharField(null=True)
    email = peewee.CharField(null=True)
    event_count = peewee.IntegerField(default=0)
    first_seen = peewee.DateTimeField()
    last_seen = peewee.DateTimeField()

    class Meta:
        # user_key alone: the issue list's user: search (migration 0002).
        indexes = ((('issue', 'user_key'), True), (('user_key',), False))


class IssueAccount(BaseModel):
    issue = peewee.ForeignKeyField(Issue, on_delete='CASCADE', index=False)
    account_id = peewee.CharField()
    name = peewee.CharField(null=True)
    event_count = peewee.IntegerField(default=0)
    first_seen = peewee.DateTimeField()
    last_seen = peewee.DateTimeField()

    class Meta:
        indexes = ((('issue', 'account_id'), True), (('account_id',), False))


class IssueHourly(BaseModel):
    issue = peewee.ForeignKeyField(Issue, on_delete='CASCADE', index=False)
    hour = peewee.DateTimeField()
    event_count = peewee.IntegerField(default=0)

    class Meta:
        indexes = ((('issue', 'hour'), True),)


class IssueTag(BaseModel):
    """Per-issue distributions (environment, release, browser, os, url) kept by the writer, so
    pages and filters never count events at read time."""
    issue = peewee.ForeignKeyField(Issue, on_delete='CASCADE', index=False)
    key = peewee.CharField()
    value = peewee.CharField()
    event_count = peewee.IntegerField(default=0)
    first_seen = peewee.DateTimeField()
    last_seen = peewee.DateTimeField()

    class Meta:
        indexes = (
            (('issue', 'key', 'value'), True),
            (('key', 'value'), False),
        )


class IssueActivity(BaseModel):
    issue = peewee.ForeignKeyField(Issue, backref='activity', on_delete='CASCADE')
    kind = peewee.CharField()  # created | resolved | ignored | reopened | regressed | merged | unmerged
    user = peewee.ForeignKeyField(User, null=True, on_delete='SET NULL')
    release = peewee.CharField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    detail = peewee.TextField(null=True)  # merged, unmerged: which issues or fingerprint


class Release(BaseModel):
    project = peewee.ForeignKeyField(Project, backref='releases', on_delete='CASCADE')
    version = peewee.CharField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((('project', 'version'), True),)


class SourceMap(BaseModel):
    release = peewee.ForeignKeyField(Release, backref='sourcemaps', on_delete='CASCADE')
    url = peewee.CharField()  # the minified file's URL, or ~/path for any host
    map_data = peewee.BlobField()
    minified_data = peewee.BlobField(null=True)
    size = peewee.IntegerField(default=0)
    sha256 = peewee.CharField()
    resolved_count = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((('release', 'url'), True),)


class Outbox(BaseModel):
    """What happened (new issue, regression, spike), recorded in the writer's transaction and
    sent later by the scheduler."""
    kind = peewee.CharField()
    project = peewee.ForeignKeyField(Project, on_delete='CASCADE')
    issue = peewee.ForeignKeyField(Issue, null=True, on_delete='CASCADE')
    data = peewee.TextField(default='{}')
    created_at = peewee.DateTimeField(default=utcnow)
    processed_at = peewee.DateTimeField(null=True, index=True)


class DroppedCount(BaseModel):
    """Events refused per project and reason (rate_limited, too_large, invalid, duplicate)."""
    project = peewee.ForeignKeyField(Project, on_delete='CASCADE', index=False)
    reason = peewee.CharField()
    count = peewee.BigIntegerField(default=0)

    class Meta:
        indexes = ((('project', 'reason'), True),)


ALL_MODELS = (
    Organization, User, Membership, Project, ProjectKey, ApiToken, Issue, Event, IssueUser,
    IssueAccount, IssueHourly, IssueTag, IssueActivity, Release, SourceMap, Outbox, DroppedCount,
)


# Issue browser (migration 0002): dashboard sessions, invite links, failed logins.

class Session(BaseModel):
    """A dashboard login. The cookie carries a random id; only its SHA-256 is stored, so a copy of
    the database logs nobody in."""
    token_hash = peewee.CharField(unique=True)
    user = peewee.ForeignKeyField(User, backref='sessions', on_delete='CASCADE')
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField(index=True)
    ip = peewee.CharField(default='')
    user_agent = peewee.CharField(default='')


class Invite(BaseModel):
    """A link that makes its holder a member of an organization; only the token's SHA-256 is
    stored, the link is shown once."""
    organization = peewee.ForeignKeyField(Organization, backref='invites', on_delete='CASCADE')
    role = peewee.CharField(default='member')
    email = peewee.CharField(null=True)  # who it was made for: a note, not a restriction
    token_hash = peewee.CharField(unique=True)
    created_by = peewee.ForeignKeyField(User, null=True, backref='+', on_delete='SET NULL')
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    accepted_at = peewee.DateTimeField(null=True)
    accepted_by = peewee.ForeignKeyField(User, null=True, backref='+', on_delete='SET NULL')
    revoked_at = peewee.DateTimeField(null=True)


class LoginAttempt(BaseModel):
    """A failed login, kept for a day to throttle guessing by email and by client address."""
    email = peewee.CharField()
    ip = peewee.CharField()
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = (
            (('email', 'created_at'), False),
            (('ip', 'created_at'), False),
        )


ALL_MODELS += (Session, Invite, LoginAttempt)


# Notifications (migration 0003): organization preferences, member choices, webhooks, the
# delivery log, cooldowns, and the trigger detector's position in the event table.

class NotificationSettings(BaseModel):
    """One row per organization; an organization without one gets the defaults of
    notifications.rules.Prefs()."""
    organization = peewee.ForeignKeyField(Organization, unique=True, backref='+',
                                          on_delete='CASCADE')
    delivery_mode = peewee.CharField(default='immediate')  # immediate | digest_* | off
    digest_hour = peewee.IntegerField(default=9)  # UTC
    digest_weekday = peewee.IntegerField(default=0)  # Monday, for the weekly digest
    trigger_new_issue = peewee.BooleanField(default=True)
    trigger_regression = peewee.BooleanField(default=True)
    trigger_spike = peewee.BooleanField(default=True)
    spike_events = peewee.IntegerField(default=100)
    spike_minutes = peewee.IntegerField(default=60)
    trigger_accounts = peewee.BooleanField(default=False)
    accounts_threshold = peewee.IntegerField(default=10)
    min_level = peewee.CharField(default='warning')
    environments = peewee.TextField(default='')  # comma-separated; empty: all
    cooldown_minutes = peewee.IntegerField(default=60)
    hourly_cap = peewee.IntegerField(default=20)
    last_digest_at = peewee.DateTimeField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)


class NotificationPreference(BaseModel):
    """A member's own choice for email: on, digest (digest only) or off."""
    membership = peewee.ForeignKeyField(Membership, unique=True, backref='+', on_delete='CASCADE')
    email = peewee.CharField(default='on')
    updated_at = peewee.DateTimeField(default=utcnow)


class Webhook(BaseModel):
    organization = peewee.ForeignKeyField(Organization, backref='webhooks', on_delete='CASCADE')
    name = peewee.CharField(default='')
    url = peewee.TextField()
    kind = peewee.CharField(default='generic')  # generic | slack
    secret = peewee.CharField(default='')  # HMAC-SHA256 key of X-Proliferate-Signature
    is_active = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)


class Delivery(BaseModel):
    """One message to one target (an address or a webhook): the delivery log and the retry
    queue. payload is what is sent, so a retry sends the same message."""
    organization = peewee.ForeignKeyField(Organization, on_delete='CASCADE', index=False)
    channel = peewee.CharField()  # email | webhook
    target = peewee.CharField()
    webhook = peewee.ForeignKeyField(Webhook, null=True, backref='+', on_delete='SET NULL')
    kind = peewee.CharField()  # alert | summary | digest | test
    trigger = peewee.CharField(null=True)
    issue = peewee.ForeignKeyField(Issue, null=True, backref='+', on_delete='SET NULL')
    subject = peewee.CharField(default='')
    payload = peewee.TextField(default='{}')
    # pending | sent | failed; held = over the hourly cap, folded into a summary later
    status = peewee.CharField(default='pending')
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(null=True)
    last_error = peewee.TextField(default='')
    created_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = (
            (('status', 'next_attempt_at'), False),
            (('organization', 'created_at'), False),
            (('target', 'created_at'), False),
        )


class NotificationCooldown(BaseModel):
    """When an issue last alerted for a trigger: one alert per issue and trigger per cooldown."""
    issue = peewee.ForeignKeyField(Issue, on_delete='CASCADE', index=False)
    trigger = peewee.CharField()
    last_sent_at = peewee.DateTimeField()

    class Meta:
        indexes = ((('issue', 'trigger'), True),)


class NotificationCursor(BaseModel):
    """The last Event.id the spike/accounts detector has looked at."""
    name = peewee.CharField(unique=True)
    event_id = peewee.BigIntegerField(default=0)
    updated_at = peewee.DateTimeField(default=utcnow)


ALL_MODELS += (NotificationSettings, NotificationPreference, Webhook, Delivery,
               NotificationCooldown, NotificationCursor)


# Source maps (migration 0005).

class SourceMapCount(BaseModel):
    """Frames a map resolved. Kept off the source_map row: updating that row would make SQLite
    rewrite its map_data BLOB on every writer batch. (SourceMap.resolved_count is unused.)"""
    sourcemap = peewee.ForeignKeyField(SourceMap, primary_key=True, backref='+',
                                       on_delete='CASCADE')
    resolved_count = peewee.BigIntegerField(default=0)


ALL_MODELS += (SourceMapCount,)


# Grouping version 2 (migration 0007).

class IssueFingerprint(BaseModel):
    """Every fingerprint an issue answers to: its own, those of issues merged into it, and the
    version-2 key of an issue made by version 1. The writer finds issues through this table."""
    project = peewee.ForeignKeyField(Project, on_delete='CASCADE', index=False)
    fingerprint = peewee.CharField()
    issue = peewee.ForeignKeyField(Issue, backref='fingerprints', on_delete='CASCADE')
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((('project', 'fingerprint'), True),)


ALL_MODELS += (IssueFingerprint,)


# Triage (migration 0008): assignment, resolving in a release, snoozes, auto-resolve, comments.
# The columns join the classes above; the Issue, Project and IssueActivity definitions stay as
# they are so that their own changes merge cleanly.

Issue._meta.add_field('assignee', peewee.ForeignKeyField(User, null=True, backref='+',
                                                         on_delete='SET NULL'))
# The release an issue is resolved in: events of releases not newer than it leave it resolved.
# resolved_in_next: it was "the next release" (resolved_in then holds the newest release known
# at the time, or None when there was none).
Issue._meta.add_field('resolved_in', peewee.CharField(null=True))
Issue._meta.add_field('resolved_in_next', peewee.BooleanField(null=True, default=False))
# The snooze as asked for (JSON: {"minutes": N} | {"until": date} | {"events"|"users"|"accounts": N}),
# and what the writer checks: a time, or a count (snooze_kind) reaching snooze_target.
Issue._meta.add_field('ignore_until', peewee.TextField(null=True))
Issue._meta.add_field('snooze_until', peewee.DateTimeField(null=True))
Issue._meta.add_field('snooze_kind', peewee.CharField(null=True))
Issue._meta.add_field('snooze_target', peewee.IntegerField(null=True))
Issue._meta.add_field('escalating', peewee.BooleanField(null=True, default=False))
# The two flags may be NULL (read as false): the writer's own INSERT of an issue names only the
# columns it fills.
# Resolve issues with no event for this many days (None: never).
Project._meta.add_field('auto_resolve_days', peewee.IntegerField(null=True))


class IssueComment(BaseModel):
    """A member's plain-text comment on an issue, shown in its activity timeline."""
    issue = peewee.ForeignKeyField(Issue, backref='+', on_delete='CASCADE', index=False)
    user = peewee.ForeignKeyField(User, null=True, backref='+', on_delete='SET NULL')
    text = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((('issue', 'id'), False),)


ALL_MODELS += (IssueComment,)


# The issue list's bulk changes and saved searches (migration 0009).

class BulkChange(BaseModel):
    """A bulk change of the issue list, kept for its Undo (for a few minutes): each changed
    issue's triage state before and after it, as JSON [[id, before, after], ...]."""
    user = peewee.ForeignKeyField(User, backref='+', on_delete='CASCADE')
    created_at = peewee.DateTimeField(default=utcnow)
    count = peewee.IntegerField()
    states = peewee.TextField()
    undone = peewee.BooleanField(default=False)


class SavedSearch(BaseModel):
    """A named issue-list search (its filters as JSON): the whole organization's when shared,
    else only its author's."""
    organization = peewee.ForeignKeyField(Organization, backref='+', on_delete='CASCADE')
    user = peewee.ForeignKeyField(User, backref='+', on_delete='CASCADE')
    name = peewee.CharField()
    filters = peewee.TextField()
    shared = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)


ALL_MODELS += (BulkChange, SavedSearch)


# Filtered counts (migration 0010): what an issue's events, users and accounts are in one
# environment, release or time period, kept by the writer so a filtered list never counts events.

class IssueSlice(BaseModel):
    """An issue's events per hour by environment and release ('' for an event without one): the
    counts and sparklines of a filtered issue list. Its key is the table itself (WITHOUT ROWID
    on SQLite): one B-tree to write, and a sum reads no other."""
    issue = peewee.ForeignKeyField(Issue, on_delete='CASCADE', index=False)
    environment = peewee.CharField()
    release = peewee.CharField()
    hour = peewee.DateTimeField()
    event_count = peewee.IntegerField(default=0)

    class Meta:
        primary_key = peewee.CompositeKey('issue', 'environment', 'release', 'hour')


class IssueSlicePerson(BaseModel):
    """Who an issue affected by environment and release: kind 0 for a user (keyed as issue_user
    is) or 1 for an account, the person as a 64-bit hash of their kind and key, and the hour of
    their newest event there as hours since the Unix epoch (proliferate.ingest.slice_keys makes
    all three). Small rows, keyed like IssueSlice, so a count walks one B-tree that holds every
    column it reads."""
    issue = peewee.ForeignKeyField(Issue, on_delete='CASCADE', index=False)
    kind = peewee.SmallIntegerField()
    environment = peewee.CharField()
    release = peewee.CharField()
    person = peewee.BigIntegerField()
    last_hour = peewee.IntegerField()

    class Meta:
        primary_key = peewee.CompositeKey('issue', 'kind', 'environment', 'release', 'person')


ALL_MODELS += (IssueSlice, IssueSlicePerson)
