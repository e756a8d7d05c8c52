"""Issue search and filters shared by the issue browser and the read API: parse a query string
(pure), and turn filters into one Peewee query with keyset pagination.

Filters read only what the writer keeps (issue columns, issue_tag, issue_user, issue_account),
so a list never counts events at read time.
"""

import base64
import datetime
import re

import orjson
from peewee import SQL
from peewee import fn

from proliferate.issues import STATUSES
from proliferate.models import Issue
from proliferate.models import IssueAccount
from proliferate.models import IssueTag
from proliferate.models import IssueUser
from proliferate.models import User

SORTS = {
    'last_seen': Issue.last_seen,
    'first_seen': Issue.first_seen,
    'events': Issue.event_count,
    'users': Issue.user_count,
    'accounts': Issue.account_count,
}
TERM_KEYS = ('user', 'account', 'release', 'env', 'environment', 'level', 'is', 'assigned')
_TERM = re.compile(r'(\w+):("([^"]*)"|(\S+))|"([^"]*)"|(\S+)')


def parse_query(text):
    """'TypeError user:42 is:resolved "two words"' -> {'text': [...], 'user': [...], ...}."""
    terms = {'text': []}
    for match in _TERM.finditer((text or '')[:1000]):
        key, _quoted, quoted_value, plain_value, quoted_text, word = match.groups()
        if key is not None and key.lower() in TERM_KEYS:
            key = 'env' if key.lower() == 'environment' else key.lower()
            value = quoted_value if quoted_value is not None else plain_value
            terms.setdefault(key, []).append(value)
        elif key is not None:
            terms['text'].append(match.group(0))
        else:
            terms['text'].append(quoted_text if quoted_text is not None else word)
    return terms


def encode_cursor(values):
    raw = orjson.dumps([v.isoformat() if isinstance(v, datetime.datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip('=')


def decode_cursor(cursor, sort):
    """-> [sort value, id] or None for a cursor that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + '=' * (-len(cursor) % 4))
        value, issue_id = orjson.loads(raw)
        if sort in ('last_seen', 'first_seen'):
            value = datetime.datetime.fromisoformat(value)
        elif not isinstance(value, int):
            return None
        if not isinstance(issue_id, int):
            return None
        return value, issue_id
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None


def filter_issues(project_ids, *, status='unresolved', environment=None, release=None,
                  level=None, query=None, since=None, sort=None, viewer_id=None):
    """A query of the issues of project_ids matching every filter (unordered). sort: the order
    page_issues will apply, if known; it picks the cheaper form of the tag filters. viewer_id:
    the user that assigned:me means."""
    issues = Issue.select().where(Issue.project.in_(list(project_ids)))
    terms = parse_query(query)
    issues = triage_filters(issues, terms, viewer_id)
    for value in terms.get('is', []):
        value = value.lower()
        if value in STATUSES:
            status = value
        elif value == 'regressed':
            issues = issues.where(Issue.is_regressed == True)  # noqa: E712 (SQL expression)
    if status and status != 'all':
        issues = issues.where(Issue.status == status)
    # One status, newest first: SQLite walks the (project, status, last_seen) index and probes
    # each issue's tags until the page is full (3 ms for an environment on 10,000 issues). Other
    # orders sort every match anyway, and an IN list of the tag's issues is cheaper for them.
    walk = sort == 'last_seen' and status in STATUSES
    for key, values in (('environment', [environment] + terms.get('env', [])),
                        ('release', [release] + terms.get('release', []))):
        for value in values:
            if value:
                issues = issues.where(tag_exists(key, value) if walk
                                      else Issue.id.in_(tag_subquery(key, value)))
    for value in [level] + terms.get('level', []):
        if value:
            issues = issues.where(Issue.level == value.lower())
    for value in terms.get('user', []):
        issues = issues.where(Issue.id.in_(people_subquery(
            project_ids, IssueUser, IssueUser.user_key, {value, value.lower()},
            (IssueUser.email == value.lower()) | (IssueUser.email == value))))
    for value in terms.get('account', []):
        issues = issues.where(Issue.id.in_(people_subquery(
            project_ids, IssueAccount, IssueAccount.account_id, {value},
            IssueAccount.name == value)))
    for word in terms['text']:
        # contains() escapes % and _ and is case-insensitive on both backends.
        issues = issues.where(Issue.title.contains(word) | Issue.culprit.contains(word))
    if since is not None:
        issues = issues.where(Issue.last_seen >= since)
    return issues


def people_subquery(project_ids, model, key_field, keys, other_match):
    """Issue ids of an affected user or account. The key (user id, or email when no id was
    sent; account id) has an index of its own (migration 0002); the other fields (a user's
    email beside an id, an account's name) have none, because the writer rewrites them on every
    event and an index there would triple its cost. So they are searched, by a scan, only when
    no key in these projects matches."""
    by_key = model.select(model.issue).where(key_field.in_(sorted(keys)))
    in_scope = (model.select(model.issue).join(Issue, on=(model.issue == Issue.id))
                .where(key_field.in_(sorted(keys)), Issue.project.in_(list(project_ids))))
    if in_scope.exists():
        return by_key
    return model.select(model.issue).where(other_match)


def tag_exists(key, value):
    return fn.EXISTS(IssueTag.select(SQL('1')).where(
        IssueTag.issue == Issue.id, IssueTag.key == key, IssueTag.value == value))


def tag_subquery(key, value):
    return IssueTag.select(IssueTag.issue).where(IssueTag.key == key, IssueTag.value == value)


def page_issues(issues, *, sort='last_seen', cursor=None, limit=50):
    """Keyset pagination, newest/biggest first -> (issues, next cursor or None)."""
    column = SORTS.get(sort, Issue.last_seen)
    if cursor:
        position = decode_cursor(cursor, sort)
        if position is not None:
            value, issue_id = position
            issues = issues.where((column < value) | ((column == value) & (Issue.id < issue_id)))
    rows = list(issues.order_by(column.desc(), Issue.id.desc()).limit(limit + 1))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([getattr(last, column.name), last.id])
    return rows, next_cursor


# Triage terms: assigned:me, assigned:<email>, is:assigned, is:unassigned, is:escalating.
TRIAGE_IS = ('assigned', 'unassigned', 'escalating')


def triage_filters(issues, terms, viewer_id):
    for value in terms.get('assigned', []):
        if value.lower() == 'me':
            issues = issues.where(Issue.assignee == (viewer_id or 0))
        else:
            issues = issues.where(Issue.assignee.in_(
                User.select(User.id).where(fn.LOWER(User.email) == value.lower())))
    for value in terms.get('is', []):
        value = value.lower()
        if value == 'assigned':
            issues = issues.where(Issue.assignee.is_null(False))
        elif value == 'unassigned':
            issues = issues.where(Issue.assignee.is_null())
        elif value == 'escalating':
            issues = issues.where(Issue.escalating == True)  # noqa: E712 (SQL expression)
    return issues
