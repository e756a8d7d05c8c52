"""Issue search and filters shared by the issue browser and the read API: parse a query string
(pure), and turn filters into one Peewee query with keyset pagination.

Filters read only what the writer keeps (issue columns, issue_tag, issue_user, issue_account),
so a list never counts events at read time.
"""

import base64
import datetime
import re
from typing import NamedTuple

import orjson
from peewee import SQL
from peewee import fn

from proliferate.issues import STATUSES
from proliferate.models import Issue
from proliferate.models import IssueAccount
from proliferate.models import IssueTag
from proliferate.models import IssueUser
from proliferate.models import User
from proliferate.times import utcnow

SORTS = {
    'last_seen': Issue.last_seen,
    'first_seen': Issue.first_seen,
    'events': Issue.event_count,
    'users': Issue.user_count,
    'accounts': Issue.account_count,
}
# Terms the server knows besides tags: people, the level, states, assignment.
PEOPLE_KEYS = ('user', 'account')
STATE_KEYS = ('level', 'is', 'assigned')
# Ages: first_seen:-24h (within the last 24 hours), last_seen:+7d (longer ago than 7 days).
AGE_KEYS = ('first_seen', 'last_seen')
AGE_UNITS = {'m': 'minutes', 'h': 'hours', 'd': 'days'}
MAX_AGE_DAYS = 3650
_AGE = re.compile(r'([-+])(\d{1,7})([mhd])')
# Tags every event may carry (the writer's issue_tag rows); any other key is one of the SDK's
# own tags, known when an issue of the searched projects has it.
BUILTIN_TAGS = ('environment', 'release', 'browser', 'os', 'url')
ALIASES = {'env': 'environment'}
# is:all is the list's All tab: every status.
TAB_STATUSES = STATUSES + ('all',)
IS_VALUES = TAB_STATUSES + ('regressed', 'assigned', 'unassigned', 'escalating')
MAX_VALUE = 200
# !key:value, key:"quoted value", key:value, "quoted text", word. A key is what SDKs name tags
# with (letters, digits, _ . -); 'http:' and 'https:' begin links, which are searched as text.
_TERM = re.compile(r'(!?)([\w.-]+):(?!//)("([^"]*)"?|(\S+))|"([^"]*)"?|(\S+)')


# The list's time periods (the API's `period`): each is the term last_seen:-<period>.
PERIODS = {
    '1h': datetime.timedelta(hours=1),
    '24h': datetime.timedelta(hours=24),
    '7d': datetime.timedelta(days=7),
    '14d': datetime.timedelta(days=14),
    '30d': datetime.timedelta(days=30),
}


class Slice(NamedTuple):
    """The part of each issue's events a search looks at: one environment, one release, the
    events since an hour (each None when the search does not narrow it)."""

    environment: str | None
    release: str | None
    since: datetime.datetime | None
    age: str | None  # the last_seen term's value ('-24h'), for the label


class UnknownTerm(ValueError):
    """A key:value term the server cannot search: pages show it, the API answers 400."""


def parse_query(text):
    """'TypeError user:42 !browser:"Chrome 120" "two words"' -> {'text': ['TypeError',
    'two words'], 'terms': [(False, 'user', '42'), (True, 'browser', 'Chrome 120')]}. Known
    keys are lower-cased (env is environment); other keys are kept as typed (tags are
    case-sensitive). Pure: whether a key is a stored tag is for filter_issues to ask."""
    parsed = {'text': [], 'terms': []}
    for match in _TERM.finditer((text or '')[:1000]):
        bang, key, _value, quoted_value, plain_value, quoted_text, word = match.groups()
        if key is not None:
            lowered = key.lower()
            if lowered in ALIASES or lowered in BUILTIN_TAGS + PEOPLE_KEYS + STATE_KEYS + AGE_KEYS:
                key = ALIASES.get(lowered, lowered)
            value = quoted_value if quoted_value is not None else plain_value
            parsed['terms'].append((bool(bang), key, value[:MAX_VALUE]))
        elif quoted_text is not None:
            if quoted_text:
                parsed['text'].append(quoted_text)
        else:
            parsed['text'].append(word)
    return parsed


def format_term(key, value):
    """key:value, quoted when the value has a space (a double quote cannot be written in a
    value, so it is left out)."""
    value = value.replace('"', '')
    if not value or any(c.isspace() for c in value):
        return f'{key}:"{value}"'
    return f'{key}:{value}'


def _tokens(text):
    """(the token as typed, its key as parse_query reads it or None, negated) for each token."""
    for match in _TERM.finditer((text or '')[:1000]):
        bang, key = match.group(1), match.group(2)
        if key is not None:
            lowered = key.lower()
            if lowered in ALIASES or lowered in BUILTIN_TAGS + PEOPLE_KEYS + STATE_KEYS + AGE_KEYS:
                key = ALIASES.get(lowered, lowered)
        yield match.group(0), key, bool(bang)


def set_term(text, key, value):
    """The query with its key:value terms (not the !key: ones) replaced by key:value, or taken
    out when value is empty: how the list's menus write into the search box. Pure."""
    kept = [token for token, token_key, negated in _tokens(text)
            if token_key != key or negated]
    if value:
        kept.append(format_term(key, value))
    return ' '.join(kept)


def status_of(terms, default):
    """The status the last is:unresolved / is:resolved / is:ignored / is:all term chooses (over
    the list's tab), else default. Pure."""
    for negated, key, value in terms:
        if key == 'is' and not negated and value.lower() in TAB_STATUSES:
            default = value.lower()
    return default


def without_status(text):
    """The query without its is:unresolved / is:resolved / is:ignored terms: what a status tab's
    link keeps (the tab chooses the status instead). Pure."""
    return ' '.join(token for token, key, negated in _tokens(text)
                    if not (key == 'is' and not negated
                            and token.split(':', 1)[1].strip('"').lower() in TAB_STATUSES))


def term_value(text, key):
    """The value of the query's first key:value term (not !key:), or '': what a menu shows."""
    for negated, term_key, value in parse_query(text)['terms']:
        if term_key == key and not negated:
            return value
    return ''


def period_of(text):
    """The PERIODS key the query's last_seen term names ('24h' for last_seen:-24h), the term's
    own value for another age, or ''."""
    value = term_value(text, 'last_seen')
    if value.startswith('-') and value[1:] in PERIODS:
        return value[1:]
    return value


def slice_of(text, now):
    """The Slice the query's environment:, release: and last_seen:-<age> terms make, or None.
    The period starts on the hour (now - age, rounded down): the writer counts events by the
    hour, so the counts are exact for that window. Call after filter_issues has checked the
    terms."""
    environment = term_value(text, 'environment') or None
    release = term_value(text, 'release') or None
    since = age = None
    value = term_value(text, 'last_seen')
    if value:
        try:
            within, span = parse_age('last_seen', value)
        except UnknownTerm:
            within = False
        if within:
            since = (now - span).replace(minute=0, second=0, microsecond=0)
            age = value
    if environment is None and release is None and since is None:
        return None
    return Slice(environment, release, since, age)


def check_terms(terms):
    """The terms' values the server can tell are wrong without the database: is: values and
    ages."""
    for negated, key, value in terms:
        if key == 'is' and value.lower() not in IS_VALUES:
            raise UnknownTerm(f'unknown search term `is:{value[:40]}`; is: takes '
                              + ', '.join(IS_VALUES))
        if key == 'is' and negated and value.lower() == 'all':
            raise UnknownTerm('`!is:all` matches no issue')
        if key in AGE_KEYS:
            parse_age(key, value)


def parse_age(key, value):
    """'-24h' -> (True, 24 hours): within the last 24 hours; '+7d' -> (False, 7 days): longer
    ago than that. Units m, h, d. UnknownTerm for anything else."""
    match = _AGE.fullmatch(value.strip().lower())
    if match is None:
        raise UnknownTerm(f'unknown search term `{key}:{value[:40]}`; {key}: takes an age such '
                          f'as -24h (within the last 24 hours) or +7d (longer ago); units m, h, d')
    sign, amount, unit = match.groups()
    age = datetime.timedelta(**{AGE_UNITS[unit]: int(amount)})
    if age > datetime.timedelta(days=MAX_AGE_DAYS):
        raise UnknownTerm(f'`{key}:{value[:40]}` is more than {MAX_AGE_DAYS} days')
    return sign == '-', age


def known_tag_keys(project_ids, keys):
    """The keys among keys that an issue of these projects has as a tag (one probe each on
    the issue_tag (key, value) index, joined to the issue's project)."""
    found = set()
    for key in keys:
        if (IssueTag.select(SQL('1')).join(Issue, on=(IssueTag.issue == Issue.id))
                .where(IssueTag.key == key, Issue.project.in_(list(project_ids)))
                .limit(1).exists()):
            found.add(key)
    return found


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
                  level=None, query=None, since=None, sort=None, viewer_id=None, now=None):
    """A query of the issues of project_ids matching every filter (unordered). sort: the order
    page_issues will apply, if known; it picks the cheaper form of the tag filters. viewer_id:
    the user that assigned:me means; now: what ages (first_seen:-24h) count back from.
    UnknownTerm: a key the server cannot search."""
    issues = Issue.select().where(Issue.project.in_(list(project_ids)))
    parsed = parse_query(query)
    terms = parsed['terms']
    check_terms(terms)
    known = set(BUILTIN_TAGS + PEOPLE_KEYS + STATE_KEYS + AGE_KEYS)
    custom = {key for _negated, key, _value in terms if key not in known}
    if custom:
        missing = sorted(custom - known_tag_keys(project_ids, custom))
        if missing:
            raise UnknownTerm(f'unknown search term `{missing[0][:40]}:`')
    status = status_of(terms, status)
    if status and status != 'all':
        issues = issues.where(Issue.status == status)
    # One status, newest first: SQLite walks the (project, status, last_seen) index and probes
    # each issue's tags until the page is full (3 ms for an environment on 10,000 issues). Other
    # orders sort every match anyway, and an IN list of the tag's issues is cheaper for them.
    walk = sort == 'last_seen' and status in STATUSES
    for key, value in (('environment', environment), ('release', release)):
        if value:
            terms = [*terms, (False, key, value)]
    if level:
        terms = [*terms, (False, 'level', level)]
    for negated, key, value in terms:
        if key in AGE_KEYS:
            issues = issues.where(age_condition(key, value, negated, now or utcnow()))
            continue
        condition = term_condition(key, value, negated, project_ids, viewer_id, walk)
        if condition is not None:
            issues = issues.where(condition)
    for word in parsed['text']:
        # contains() escapes % and _ and is case-insensitive on both backends.
        issues = issues.where(Issue.title.contains(word) | Issue.culprit.contains(word))
    if since is not None:
        issues = issues.where(Issue.last_seen >= since)
    return issues


def age_condition(key, value, negated, now):
    within, age = parse_age(key, value)
    column = Issue.first_seen if key == 'first_seen' else Issue.last_seen
    recent = within != negated
    return (column >= now - age) if recent else (column < now - age)


def term_condition(key, value, negated, project_ids, viewer_id, walk):
    """One key:value term (or !key:value) as a condition on Issue; None for one that only
    chose the status (is:resolved)."""
    if key == 'is':
        return is_condition(value.lower(), negated)
    if key == 'assigned':
        if value.lower() == 'me':
            match = Issue.assignee == (viewer_id or 0)
        else:
            match = Issue.assignee.in_(
                User.select(User.id).where(fn.LOWER(User.email) == value.lower()))
        # Unassigned issues are not assigned to anyone named: NOT alone would drop them (NULL).
        return (Issue.assignee.is_null() | ~match) if negated else match
    if key == 'level':
        return (Issue.level != value.lower()) if negated else (Issue.level == value.lower())
    if key == 'user':
        ids = people_subquery(project_ids, IssueUser, IssueUser.user_key, {value, value.lower()},
                              (IssueUser.email == value.lower()) | (IssueUser.email == value))
    elif key == 'account':
        # An account's id, else the start of its name (in any case): "acme" finds "Acme Ltd".
        ids = people_subquery(project_ids, IssueAccount, IssueAccount.account_id, {value},
                              IssueAccount.name.startswith(value))
    elif negated:
        return Issue.id.not_in(tag_subquery(key, value))
    else:
        return tag_exists(key, value) if walk else Issue.id.in_(tag_subquery(key, value))
    return Issue.id.not_in(ids) if negated else Issue.id.in_(ids)


def is_condition(value, negated):
    if value == 'all':
        return None
    if value in STATUSES:
        return (Issue.status != value) if negated else None
    match = {
        'regressed': Issue.is_regressed == True,  # noqa: E712 (SQL expressions)
        'escalating': Issue.escalating == True,  # noqa: E712
        'assigned': Issue.assignee.is_null(False),
        'unassigned': Issue.assignee.is_null(),
    }[value]
    return ~match if negated else match


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
