"""Triage as a team: assignment, comments and mentions, snoozes (ignore until a time or until N
more events, users or accounts), resolving in a release, auto-resolve, and the activity
timeline. The writes run on the writer (each in its caller's transaction, outbox rows with
them); the checks the writer's store makes per batch touch only ignored or resolved issues.
No HTTP."""

import datetime
import html
import re

import orjson
from peewee import JOIN
from peewee import fn

from proliferate import issues
from proliferate import versions
from proliferate.models import Issue
from proliferate.models import IssueActivity
from proliferate.models import IssueComment
from proliferate.models import IssueTag
from proliferate.models import Membership
from proliferate.models import Outbox
from proliferate.models import Project
from proliferate.models import Release
from proliferate.models import User
from proliferate.times import iso

UNSET = object()
SNOOZE_COUNTS = ('events', 'users', 'accounts')
COUNT_COLUMNS = issues.COUNT_COLUMNS
SNOOZE_PRESETS = (('60', '1 hour'), ('1440', '24 hours'), ('10080', '7 days'))
MAX_SNOOZE_MINUTES = 366 * 24 * 60
MAX_SNOOZE_COUNT = 10_000_000
MAX_COMMENT = 10_000
MAX_RELEASE = 200
MAX_AUTO_RESOLVE_DAYS = 3650
# Mentions: '@' and an address, not preceded by a word character (so a@b.c is no mention).
MENTION = re.compile(r'(?<![\w.+-])@([\w.+-]+@[\w-]+(?:\.[\w-]+)+)')
AUTO_RESOLVE_BATCH = 500


class Invalid(ValueError):
    """Bad input, naming the field: the HTTP layers answer 400 with the message."""

    def __init__(self, field, message):
        super().__init__(f'{field}: {message}')
        self.field = field


# -- pure parsing ----------------------------------------------------------------------------------

def parse_ignore_until(value, now):
    """{"minutes": N} | {"until": ISO date} | {"events"|"users"|"accounts": N} -> (spec as
    stored, snooze_until, snooze_kind, count). None: ignored for ever."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1:
        raise Invalid('ignore_until', 'one of {"minutes": N}, {"until": date}, {"events": N}, '
                                      '{"users": N}, {"accounts": N}')
    (kind, amount), = value.items()
    if kind == 'until':
        if not isinstance(amount, str):
            raise Invalid('ignore_until', 'until must be an ISO date or date-time')
        try:
            until = datetime.datetime.fromisoformat(amount.replace('Z', '+00:00'))
        except ValueError:
            raise Invalid('ignore_until', 'until must be an ISO date or date-time') from None
        if until.tzinfo is not None:
            until = until.astimezone(datetime.UTC).replace(tzinfo=None)
        if until <= now:
            raise Invalid('ignore_until', 'until must be in the future')
        return {'until': iso(until)}, until, None, None
    if kind == 'minutes':
        number = _count('ignore_until', amount, MAX_SNOOZE_MINUTES)
        until = now + datetime.timedelta(minutes=number)
        return {'minutes': number, 'until': iso(until)}, until, None, None
    if kind in SNOOZE_COUNTS:
        number = _count('ignore_until', amount, MAX_SNOOZE_COUNT)
        return {kind: number}, None, kind, number
    raise Invalid('ignore_until', f'unknown condition {kind[:40]!r}; minutes, until, events, '
                                  'users or accounts')


def _count(field, amount, high):
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= high:
        raise Invalid(field, f'must be a whole number from 1 to {high}')
    return amount


def parse_resolved_in(value):
    """'next' | a release version | None."""
    if value is None or value == 'next':
        return value
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_RELEASE:
        raise Invalid('resolved_in', f'"next" or a release version (1 to {MAX_RELEASE} characters)')
    return value.strip()


def mentions(text):
    """The addresses @-mentioned in a comment, lower-cased, in order, once each."""
    found = []
    for match in MENTION.finditer(text or ''):
        address = match.group(1).rstrip('.').lower()
        if address not in found:
            found.append(address)
    return found


def comment_html(text):
    """A comment as HTML: escaped text, http(s) links made clickable. The link markup is built
    from the escaped text only, so nothing the author typed reaches the page unescaped."""
    out = []
    position = 0
    escaped = html.escape(text or '', quote=True)
    # Matching on the escaped text: '&quot;' and '&#x27;' end a URL as the raw quotes would.
    for match in re.finditer(r'https?://[^\s<>"\'&]+(?:&amp;[^\s<>"\'&]+)*', escaped):
        out.append(escaped[position:match.start()])
        url = match.group(0)
        out.append(f'<a href="{url}" rel="nofollow noopener noreferrer">{url}</a>')
        position = match.end()
    out.append(escaped[position:])
    return ''.join(out).replace('\n', '<br>\n')


# -- reads -----------------------------------------------------------------------------------------

def member(org_id, email):
    """The member of the organization with this email, or None."""
    if not isinstance(email, str) or not email.strip():
        return None
    return (User.select().join(Membership, on=(Membership.user == User.id))
            .where(Membership.organization == org_id,
                   fn.LOWER(User.email) == email.strip().lower()).first())


def members(org_id):
    return list(User.select().join(Membership, on=(Membership.user == User.id))
                .where(Membership.organization == org_id).order_by(User.email))


def release_first_seen(project_id, names):
    """{release: when the project first saw it} for names, from its issues' release shares and
    its uploaded releases: what orders releases that parse as no version."""
    names = sorted({n for n in names if n})
    if not names:
        return {}
    seen = dict(IssueTag.select(IssueTag.value, fn.MIN(IssueTag.first_seen))
                .join(Issue, on=(IssueTag.issue == Issue.id))
                .where(Issue.project == project_id, IssueTag.key == 'release',
                       IssueTag.value.in_(names))
                .group_by(IssueTag.value).tuples())
    for version, created in (Release.select(Release.version, Release.created_at)
                             .where(Release.project == project_id, Release.version.in_(names))
                             .tuples()):
        if version not in seen or created < seen[version]:
            seen[version] = created
    return seen


def newest_release(project_id, limit=500):
    """The newest release the project has seen (its issues' releases, most recent first, and
    uploaded ones), or None."""
    names = {value for (value,) in IssueTag.select(IssueTag.value)
             .join(Issue, on=(IssueTag.issue == Issue.id))
             .where(Issue.project == project_id, IssueTag.key == 'release')
             .order_by(IssueTag.last_seen.desc()).limit(limit).tuples()}
    names.update(v for (v,) in Release.select(Release.version)
                 .where(Release.project == project_id).tuples())
    unparsed = [n for n in names if not versions.parses(n)]
    return versions.newest(names, release_first_seen(project_id, unparsed))


def regresses(project_id, release, threshold, is_next):
    """Whether an event of this release reopens an issue resolved in threshold. An event without
    a release cannot be shown to be old, so it does; so does any release when "the next release"
    was chosen before the project had one."""
    if not release or (threshold is None and is_next):
        return True
    if threshold is None:
        return True
    names = [n for n in (release, threshold) if not versions.parses(n)]
    return versions.is_newer(release, threshold, release_first_seen(project_id, names))


# -- writes (on the writer) -----------------------------------------------------------------------

def log_activity(issue_id, kind, user_id, now, release=None, **detail):
    return IssueActivity.create(issue=issue_id, kind=kind, user=user_id, release=release,
                                created_at=now,
                                detail=orjson.dumps(detail).decode() if detail else None)


def outbox(kind, issue, now, **data):
    Outbox.create(kind=kind, project=issue.project_id, issue=issue.id,
                  data=orjson.dumps(data).decode(), created_at=now)


def change(issue_id, *, now, actor_id=None, status=None, assignee=UNSET, resolved_in=None,
           ignore_until=None):
    """One triage change as the API and the pages make it: a status (with the release it is
    resolved in, or the snooze), and/or an assignee (a User or None). Inputs are parsed already
    (parse_resolved_in, parse_ignore_until). Returns the issue as stored."""
    if status is not None:
        set_state(issue_id, status, now=now, actor_id=actor_id, resolved_in=resolved_in,
                  snooze=ignore_until)
    if assignee is not UNSET:
        assign(issue_id, assignee, now=now, actor_id=actor_id)
    return Issue.get_by_id(issue_id)


def set_state(issue_id, status, *, now, actor_id=None, resolved_in=None, snooze=None):
    """A status with what goes with it: resolved (in a release, or "next"), ignored (until a
    condition, or for ever), unresolved. The triage columns follow the status: leaving a state
    drops its release or snooze, and acting on an issue ends its "escalating" mark."""
    issue = Issue.get_by_id(issue_id)
    values = {Issue.resolved_in: None, Issue.resolved_in_next: False, Issue.ignore_until: None,
              Issue.snooze_until: None, Issue.snooze_kind: None, Issue.snooze_target: None}
    detail = {}
    if status in ('resolved', 'ignored'):
        values[Issue.escalating] = False
    if status == 'resolved' and resolved_in is not None:
        if resolved_in == 'next':
            values.update({Issue.resolved_in: newest_release(issue.project_id),
                           Issue.resolved_in_next: True})
            detail['in_release'] = 'next'
        else:
            values[Issue.resolved_in] = resolved_in
            detail['in_release'] = resolved_in
    if status == 'ignored' and snooze is not None:
        spec, until, kind, count = snooze
        values.update({Issue.ignore_until: orjson.dumps(spec).decode(), Issue.snooze_until: until,
                       Issue.snooze_kind: kind})
        if kind:
            values[Issue.snooze_target] = getattr(issue, COUNT_COLUMNS[kind]) + count
        detail['until'] = spec
    changed = issue.status != status
    issues.set_status(issue_id, status, user_id=actor_id, now=now)
    Issue.update(values).where(Issue.id == issue_id).execute()
    if detail:
        if changed:  # set_status logged the change: say how, on the same entry
            entry = (IssueActivity.select().where(IssueActivity.issue == issue_id)
                     .order_by(IssueActivity.id.desc()).first())
            entry.detail = orjson.dumps(detail).decode()
            entry.save()
        else:
            log_activity(issue_id, issues.ACTIVITY_KINDS[status], actor_id, now, **detail)


def assign(issue_id, user, *, now, actor_id=None):
    """Assign the issue to a member (a User, checked by the caller) or to nobody. The assignee
    is emailed unless they assigned themselves."""
    issue = Issue.get_by_id(issue_id)
    new_id = user.id if user is not None else None
    if issue.assignee_id == new_id:
        return
    Issue.update({Issue.assignee: new_id}).where(Issue.id == issue_id).execute()
    if user is None:
        log_activity(issue_id, 'unassigned', actor_id, now, assignee=issues.assignee_email(issue))
        return
    log_activity(issue_id, 'assigned', actor_id, now, assignee=user.email)
    if actor_id != user.id:
        actor = User.get_or_none(User.id == actor_id) if actor_id else None
        outbox('assigned', issue, now, to=[user.email], by=actor.email if actor else None)


def wake(issue_id, reason, now):
    """A snooze whose condition was met: the issue opens again, marked escalating, and its
    assignee (else the members) is told."""
    count = (Issue.update({Issue.status: 'unresolved', Issue.escalating: True,
                           Issue.ignore_until: None, Issue.snooze_until: None,
                           Issue.snooze_kind: None, Issue.snooze_target: None})
             .where(Issue.id == issue_id, Issue.status == 'ignored').execute())
    if count:
        issue = Issue.get_by_id(issue_id)
        log_activity(issue_id, 'escalating', None, now, reason=reason)
        outbox('escalating', issue, now, reason=reason)
    return count


def wake_expired(now, limit=AUTO_RESOLVE_BATCH):
    """The scheduler's half of the time snoozes (the store wakes one when an event arrives):
    ignored issues whose time has come."""
    ids = [i for (i,) in Issue.select(Issue.id)
           .where(Issue.status == 'ignored', Issue.snooze_until <= now)
           .order_by(Issue.id).limit(limit).tuples()]
    return sum(wake(issue_id, 'time', now) for issue_id in ids)


def auto_resolve(now, limit=AUTO_RESOLVE_BATCH):
    """Resolve the unresolved issues of projects with auto_resolve_days set that have had no
    event for that many days; a batch per run, so a first run on a large database is short."""
    done = 0
    for project in Project.select().where(Project.auto_resolve_days.is_null(False),
                                          Project.auto_resolve_days > 0):
        cutoff = now - datetime.timedelta(days=project.auto_resolve_days)
        ids = [i for (i,) in Issue.select(Issue.id)
               .where(Issue.project == project.id, Issue.status == 'unresolved',
                      Issue.last_seen < cutoff)
               .order_by(Issue.id).limit(limit - done).tuples()]
        for issue_id in ids:
            set_state(issue_id, 'resolved', now=now)
            entry = (IssueActivity.select().where(IssueActivity.issue == issue_id)
                     .order_by(IssueActivity.id.desc()).first())
            entry.detail = orjson.dumps({'auto': project.auto_resolve_days}).decode()
            entry.save()
        done += len(ids)
        if done >= limit:
            break
    return done


def parse_auto_resolve_days(text):
    """The settings form's field: '' (off) or a whole number of days from 1 to the maximum."""
    text = (text or '').strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_AUTO_RESOLVE_DAYS:
        raise Invalid('auto_resolve_days', f'a whole number of days from 1 to '
                                           f'{MAX_AUTO_RESOLVE_DAYS}, or empty for never')
    return int(text)


def set_auto_resolve(project_id, days):
    Project.update({Project.auto_resolve_days: days}).where(Project.id == project_id).execute()


# -- what the store asks, per batch ----------------------------------------------------------------

def hold_resolved(groups):
    """Before the store's issue updates: a resolved issue with a release to be resolved in stays
    resolved when none of the batch's events comes from a newer release (its group is marked
    'held', which the store updates as a plain issue)."""
    candidates = {g['id']: g for g in groups.values()
                  if g.get('status') == 'resolved' and not g.get('is_new')}
    if not candidates:
        return
    rows = (Issue.select(Issue.id, Issue.project, Issue.resolved_in, Issue.resolved_in_next)
            .where(Issue.id.in_(list(candidates)),
                   Issue.resolved_in.is_null(False) | (Issue.resolved_in_next == True)))  # noqa: E712
    for row in rows:
        group = candidates[row.id]
        releases = {item['release'] for item in group['items']}
        if not any(regresses(row.project_id, r, row.resolved_in, row.resolved_in_next)
                   for r in releases):
            group['status'] = 'held'


def after_batch(groups, now):
    """After the store's issue updates: snoozes whose condition the batch met wake up; an issue
    the batch regressed forgets the release it was resolved in."""
    ignored = [g['id'] for g in groups.values() if g.get('status') == 'ignored']
    if ignored:
        if isinstance(now, str):
            now = datetime.datetime.fromisoformat(now)
        rows = (Issue.select().where(Issue.id.in_(ignored), Issue.status == 'ignored',
                                     Issue.snooze_kind.is_null(False)
                                     | Issue.snooze_until.is_null(False)))
        for row in rows:
            if row.snooze_until is not None and row.snooze_until <= now:
                wake(row.id, 'time', now)
            elif row.snooze_kind and getattr(row, COUNT_COLUMNS[row.snooze_kind]) >= row.snooze_target:
                wake(row.id, row.snooze_kind, now)
    regressed = [g['id'] for g in groups.values()
                 if g.get('status') == 'resolved' and not g.get('is_new')]
    if regressed:
        (Issue.update({Issue.resolved_in: None, Issue.resolved_in_next: False})
         .where(Issue.id.in_(regressed), Issue.status == 'unresolved').execute())


# -- comments ----------------------------------------------------------------------------------------

def add_comment(issue_id, user, text, now):
    issue = Issue.get_by_id(issue_id)
    comment = IssueComment.create(issue=issue_id, user=user.id, text=text, created_at=now)
    notify_mentions(issue, user, text, comment.id, now)
    return comment


def edit_comment(comment_id, user, text, now):
    comment = IssueComment.get_by_id(comment_id)
    before = set(mentions(comment.text))
    IssueComment.update({IssueComment.text: text, IssueComment.updated_at: now}).where(
        IssueComment.id == comment_id).execute()
    issue = Issue.get_by_id(comment.issue_id)
    notify_mentions(issue, user, text, comment_id, now, skip=before)
    return IssueComment.get_by_id(comment_id)


def delete_comment(comment_id):
    return IssueComment.delete().where(IssueComment.id == comment_id).execute()


def notify_mentions(issue, author, text, comment_id, now, skip=()):
    """Members @-mentioned (not the author, not those told already) get an email."""
    org_id = Project.get_by_id(issue.project_id).organization_id
    to = []
    for address in mentions(text):
        user = member(org_id, address)
        if user is not None and user.id != author.id and address not in skip:
            to.append(user.email)
    if to:
        outbox('mention', issue, now, to=to, by=author.email, comment_id=comment_id,
               text=text[:1000])


def validate_comment(text):
    if not isinstance(text, str) or not text.strip():
        raise Invalid('text', 'must be non-empty text')
    if len(text) > MAX_COMMENT:
        raise Invalid('text', f'at most {MAX_COMMENT} characters')
    return text.strip()


def comment_json(comment, email=None):
    return {'id': comment.id, 'issue_id': comment.issue_id, 'author': email,
            'text': comment.text, 'created_at': iso(comment.created_at),
            'updated_at': iso(comment.updated_at)}


def comments(issue_id):
    """[(comment, author email)] oldest first."""
    # The whole User is selected: a partial one (email only) would set user_id to None.
    query = (IssueComment.select(IssueComment, User)
             .join(User, JOIN.LEFT_OUTER, on=(IssueComment.user == User.id))
             .where(IssueComment.issue == issue_id).order_by(IssueComment.id))
    return [(row, row.user.email if row.user_id and row.user else None) for row in query]


def activity_json(entry, email=None):
    return {'id': entry.id, 'kind': entry.kind, 'user': email, 'release': entry.release,
            'detail': orjson.loads(entry.detail) if entry.detail else {},
            'created_at': iso(entry.created_at)}


def timeline(issue_id, limit=200):
    """The issue's activity and comments, newest first: [('activity'|'comment', row, email)]."""
    entries = [('activity', row, row.user.email if row.user_id and row.user else None)
               for row in (IssueActivity.select(IssueActivity, User)
                           .join(User, JOIN.LEFT_OUTER, on=(IssueActivity.user == User.id))
                           .where(IssueActivity.issue == issue_id)
                           .order_by(IssueActivity.id.desc()).limit(limit))]
    entries += [('comment', row, email) for row, email in comments(issue_id)[-limit:]]
    entries.sort(key=lambda e: (e[1].created_at, e[0] == 'comment', e[1].id), reverse=True)
    return entries[:limit]


# -- bulk changes and their undo -----------------------------------------------------------------

BULK_CHUNK = 200  # issues changed per writer call, so a bulk change never holds the writer long
UNDO_FOR = datetime.timedelta(minutes=10)
# What a triage change may alter, as Undo restores it.
STATE_COLUMNS = ('status', 'resolved_in', 'resolved_in_next', 'ignore_until', 'snooze_until',
                 'snooze_kind', 'snooze_target', 'escalating', 'assignee_id')


def state_of(issue):
    """An issue's triage state as JSON values (the two flags may be NULL, read as false)."""
    out = {name: getattr(issue, name) for name in STATE_COLUMNS}
    out['snooze_until'] = iso(out['snooze_until'])
    out['resolved_in_next'] = bool(out['resolved_in_next'])
    out['escalating'] = bool(out['escalating'])
    return out


def chunks(ids, size=None):
    ids = list(ids)
    size = size or BULK_CHUNK
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def bulk_change(issue_ids, *, now, actor_id=None, status=None, assignee=UNSET, resolved_in=None,
                ignore_until=None):
    """change() on each issue (one chunk of them, on the writer) -> [[id, state before, state
    after]] of those it changed; issues deleted meanwhile are skipped."""
    changed = []
    for issue_id in issue_ids:
        row = Issue.get_or_none(Issue.id == issue_id)
        if row is None:
            continue
        before = state_of(row)
        after = state_of(change(issue_id, now=now, actor_id=actor_id, status=status,
                                assignee=assignee, resolved_in=resolved_in,
                                ignore_until=ignore_until))
        if before != after:
            changed.append([issue_id, before, after])
    return changed


def restore(states, *, now, actor_id=None):
    """Undo a bulk change (on the writer): each issue still in the state the change left it in
    goes back to the state before it, logged as the actor's change. -> how many went back."""
    done = 0
    for issue_id, before, after in states:
        row = Issue.get_or_none(Issue.id == issue_id)
        if row is None or state_of(row) != after:
            continue
        issues.set_status(issue_id, before['status'], user_id=actor_id, now=now)
        values = {getattr(Issue, name): before[name] for name in STATE_COLUMNS
                  if name not in ('status', 'assignee_id')}
        values[Issue.snooze_until] = (datetime.datetime.fromisoformat(before['snooze_until'])
                                      .replace(tzinfo=None) if before['snooze_until'] else None)
        values[Issue.assignee] = before['assignee_id']
        Issue.update(values).where(Issue.id == issue_id).execute()
        if before['assignee_id'] != after['assignee_id']:
            user = User.get_or_none(User.id == before['assignee_id']) if before['assignee_id'] else None
            if user is None:
                previous = User.get_or_none(User.id == after['assignee_id'])
                log_activity(issue_id, 'unassigned', actor_id, now,
                             assignee=previous.email if previous else None)
            else:
                log_activity(issue_id, 'assigned', actor_id, now, assignee=user.email)
        done += 1
    return done
