"""Issue search and filters shared by the issue browser and the read API: parse a query string
(pure), and turn filters into one Peewee query with keyset pagination.

Filters read only what the writer keeps (issue columns, issue_tag, issue_user, issue_account),
so a list never counts events at read time.
"""

import base64
import datetime
import re

import orjson

from proliferate.models import Issue
from proliferate.models import IssueAccount
from proliferate.models import IssueTag
from proliferate.models import IssueUser

STATUSES = ('unresolved', 'resolved', 'ignored')
SORTS = {
    'last_seen': Issue.last_seen,
    'first_seen': Issue.first_seen,
    'events': Issue.event_count,
    'users': Issue.user_count,
    'accounts': Issue.account_count,
}
TERM_KEYS = ('user', 'account', 'release', 'env', 'environment', 'level', 'is')
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
                  level=None, query=None, since=None):
    """A query of the issues of project_ids matching every filter (unordered)."""
    issues = Issue.select().where(Issue.project.in_(list(project_ids)))
    terms = parse_query(query)
    for value in terms.get('is', []):
        value = value.lower()
        if value in STATUSES:
            status = value
        elif value == 'regressed':
            issues = issues.where(Issue.is_regressed == True)  # noqa: E712 (SQL expression)
    if status and status != 'all':
        issues = issues.where(Issue.status == status)
    for value in [environment] + terms.get('env', []):
        if value:
            issues = issues.where(Issue.id.in_(tag_subquery('environment', value)))
    for value in [release] + terms.get('release', []):
        if value:
            issues = issues.where(Issue.id.in_(tag_subquery('release', value)))
    for value in [level] + terms.get('level', []):
        if value:
            issues = issues.where(Issue.level == value.lower())
    for value in terms.get('user', []):
        issues = issues.where(Issue.id.in_(
            IssueUser.select(IssueUser.issue).where(
                (IssueUser.user_key == value) | (IssueUser.user_id == value)
                | (IssueUser.email == value.lower()) | (IssueUser.email == value))))
    for value in terms.get('account', []):
        issues = issues.where(Issue.id.in_(
            IssueAccount.select(IssueAccount.issue).where(
                (IssueAccount.account_id == value) | (IssueAccount.name == value))))
    for word in terms['text']:
        # contains() escapes % and _ and is case-insensitive on both backends.
        issues = issues.where(Issue.title.contains(word) | Issue.culprit.contains(word))
    if since is not None:
        issues = issues.where(Issue.last_seen >= since)
    return issues


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
