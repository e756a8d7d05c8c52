"""The issue list (per project and across an organization's projects) and the issue detail (latest
event, events, affected users and accounts, activity), with status changes through the writer.

Reads only what the writer keeps for them (issue columns, issue_hourly, issue_tag, issue_user,
issue_account); events are read by primary key or through the (issue_id, id) index, never counted.
"""

import datetime

import falcon
import orjson
from markupsafe import Markup
from peewee import fn

from proliferate import db
from proliferate import search
from proliferate import slices
from proliferate import triage
from proliferate.ingest import grouping
from proliferate.ingest.admission import rules_for
from proliferate.ingest.payload import decode_event
from proliferate.ingest.payload import decode_json
from proliferate.ingest.prepare import event_grouping_key
from proliferate.ingest.useragent import parse_user_agent
from proliferate.issues import MAX_MERGE
from proliferate.issues import STATUSES
from proliferate.issues import GroupingError
from proliferate.issues import event_json
from proliferate.issues import fingerprints_of
from proliferate.issues import merge_issues
from proliferate.issues import unmerge
from proliferate.models import BulkChange
from proliferate.models import Event
from proliferate.models import Issue as IssueRow
from proliferate.models import IssueAccount
from proliferate.models import IssueComment
from proliferate.models import IssueHourly
from proliferate.models import IssueTag
from proliferate.models import IssueUser
from proliferate.models import Project
from proliferate.models import SavedSearch
from proliferate.models import User
from proliferate.regroup import adjust
from proliferate.web import charts
from proliferate.web import guard
from proliferate.web import releases
from proliferate.web import urls
from proliferate.web.base import Page
from proliferate.web.base import reader_zone

PAGE_SIZE = 25
EVENTS_PAGE = 25
PEOPLE_LIMIT = 200
# Up to this many users (accounts) an issue's are ranked by events on every view; beyond it, the
# pages rank those of its newest RECENT_SIDE (sidebar) or RECENT_TAB (tab) events instead.
RANK_LIMIT = 2000
RECENT_SIDE = 100
RECENT_TAB = 300
TAG_TOP = 5
TAG_OPTIONS = 100
MAX_TAG_KEYS = 20  # the five known keys plus the SDK's tags (ingest keeps at most 10 of those)
LEVELS = ('error', 'warning', 'info')
PERIODS = search.PERIODS
PERIOD_LABELS = (('', 'Any time'), ('1h', 'Last hour'), ('24h', 'Last 24 hours'),
                 ('7d', 'Last 7 days'), ('14d', 'Last 14 days'), ('30d', 'Last 30 days'))
SORT_LABELS = (('last_seen', 'Last seen'), ('first_seen', 'First seen'), ('events', 'Events'),
               ('users', 'Users'), ('accounts', 'Accounts'))
STATUS_TABS = (('unresolved', 'Unresolved'), ('resolved', 'Resolved'), ('ignored', 'Ignored'),
               ('all', 'All'))
ACTIONS = {'resolve': 'resolved', 'ignore': 'ignored', 'reopen': 'unresolved'}
ASSIGN_ACTIONS = ('assign_me', 'unassign')  # the list's bulk assignment: to whoever asks, to nobody
MERGE = 'merge'  # the list's bulk action that merges the selected issues into the oldest
TAG_KEYS = (('environment', 'Environment'), ('release', 'Release'), ('browser', 'Browser'),
            ('os', 'OS'), ('url', 'URL'))
NEW_FOR = datetime.timedelta(hours=24)  # an issue first seen this recently wears a "new" badge
SPARK_WIDTH, SPARK_HEIGHT = 96, 24
CHART_WIDTH, CHART_HEIGHT = 600, 80


# The list's menus that are search terms: each writes its term into the search box, and the
# box's term picks the menu's choice, so the search text is the one filter (the period menu is
# last_seen:-<period>).
MENU_TERMS = (('environment', 'environment'), ('release', 'release'), ('level', 'level'),
              ('period', 'last_seen'))
MENUS = tuple(menu for menu, _key in MENU_TERMS)


def parse_filters(req):
    """The list's query parameters, each checked; unknown values fall back to the default. A
    menu's choice goes into the search text when it differs from the one the page showed
    (was_<menu>), or comes without one (a link); otherwise the search text wins, so a term
    typed or deleted in the box is never undone by the menu beside it."""
    status = req.get_param('status') or 'unresolved'
    sort = req.get_param('sort') or 'last_seen'
    stats = req.get_param('stats') or '24h'
    query = (req.get_param('query') or '').strip()[:500]
    for menu, key in MENU_TERMS:
        value = (req.get_param(menu) or '')[:200]
        shown = req.get_param(f'was_{menu}')
        if shown is None and not value or shown is not None and value == shown[:200]:
            continue
        if menu == 'period':
            value = f'-{value}' if value in PERIODS else ''
        elif menu == 'level':
            value = value if value in LEVELS else ''
        query = search.set_term(query, key, value)[:500]
    # An is:resolved (or is:ignored...) typed in the box chose the status: the tabs say so.
    status = search.status_of(search.parse_query(query)['terms'], status)
    return {
        'status': status if status in STATUSES + ('all',) else 'unresolved',
        'sort': sort if sort in search.SORTS else 'last_seen',
        'stats': stats if stats in ('24h', '14d') else '24h',
        'query': query,
        # What the menus show: the search text's terms.
        'environment': search.term_value(query, 'environment'),
        'release': search.term_value(query, 'release'),
        'level': search.term_value(query, 'level').lower(),
        'period': search.period_of(query),
        'counts': 'total' if req.get_param('counts') == 'total' else '',
        'cursor': (req.get_param('cursor') or '')[:200],
    }


def find_event(project_ids, text):
    """(issue id, event pk) of an event whose event_id is the whole search text, or None: pasting
    an event id jumps to it (one lookup on the unique (project, event_id) index)."""
    if not text or len(text) > 200 or any(c.isspace() for c in text) or ':' in text:
        return None
    return (Event.select(Event.issue, Event.id)
            .where(Event.project.in_(project_ids), Event.event_id == text)
            .tuples().first())


# The distinct values of one tag key, walked one index seek at a time over issue_tag (key, value)
# (a loose index scan), each kept if an issue of these projects has it. A GROUP BY over the rows
# would read every (issue, value) pair: 118 ms at 10,000 issues, against ~1 ms this way.
# Portable SQL (SQLite, PostgreSQL). {next} is MIN/> (ascending) or MAX/< (descending).
TAG_VALUES_SQL = """
WITH RECURSIVE walk(value, n) AS (
    SELECT (SELECT {fn}(value) FROM issue_tag WHERE key = {p}), 1
    UNION ALL
    SELECT (SELECT {fn}(t.value) FROM issue_tag AS t WHERE t.key = {p} AND t.value {op} walk.value),
           walk.n + 1
    FROM walk WHERE walk.value IS NOT NULL AND walk.n < {walk_limit}
)
SELECT value FROM walk
WHERE value IS NOT NULL AND EXISTS (
    SELECT 1 FROM issue_tag AS t JOIN issue AS i ON i.id = t.issue_id
    WHERE t.key = {p} AND t.value = walk.value AND i.project_id IN ({projects}))
LIMIT {p}
"""
TAG_WALK_LIMIT = 2000  # distinct values looked at, over every organization


def tag_values(project_ids, key, limit=TAG_OPTIONS, descending=False):
    """The values of a tag (environment, release) the issues of these projects have, sorted."""
    ids = [int(i) for i in project_ids]
    if not ids:
        return []
    p = db.database.param
    sql = TAG_VALUES_SQL.format(
        fn='MAX' if descending else 'MIN', op='<' if descending else '>', p=p,
        walk_limit=TAG_WALK_LIMIT, projects=', '.join([p] * len(ids)))
    cursor = db.database.execute_sql(sql, [key, key, key, *ids, limit])
    return [row[0] for row in cursor.fetchall()]


def tag_keys(issue_id, limit=MAX_TAG_KEYS):
    """The distinct tag keys of an issue, walked one index seek at a time over (issue_id, key,
    value): a key with a hundred thousand values costs no more than one with a single value."""
    keys = []
    last = ''
    for _ in range(limit):
        key = (IssueTag.select(fn.MIN(IssueTag.key))
               .where(IssueTag.issue == issue_id, IssueTag.key > last).scalar())
        if key is None:
            break
        keys.append(key)
        last = key
    return keys


def sparklines(issue_ids, stats, now, piece=None, tz=None):
    """{issue id: inline SVG} from issue_hourly (or, for a slice with an environment or a
    release, issue_slice): 24 hourly bars, or 14 daily ones (hours told in tz on hover)."""
    if not issue_ids:
        return {}
    if stats == '14d':
        start = charts.floor_day(now) - charts.DAY * 13
    else:
        start = charts.floor_hour(now) - charts.HOUR * 23
    rows = {}
    if piece is not None and (piece.environment is not None or piece.release is not None):
        query = slices.hourly(issue_ids, piece, start)
        where = ' ' + slice_label(piece._replace(since=None))
    else:
        query = (IssueHourly.select(IssueHourly.issue, IssueHourly.hour, IssueHourly.event_count)
                 .where(IssueHourly.issue.in_(issue_ids), IssueHourly.hour >= start).tuples())
        where = ''
    for issue_id, hour, count in query:
        rows.setdefault(issue_id, []).append((hour, count))
    out = {}
    label = ('events' + where
             + (' in the last 14 days' if stats == '14d' else ' in the last 24 hours'))
    slots = None
    for issue_id in issue_ids:
        if stats == '14d':
            series = charts.daily_series(rows.get(issue_id, ()), now, 14)
        else:
            series = charts.hourly_series(rows.get(issue_id, ()), now, 24)
        bars = charts.bars(series, width=SPARK_WIDTH, height=SPARK_HEIGHT)
        if slots is None:  # every row covers the same hours or days
            slots = charts.spark_slots(bars, SPARK_HEIGHT, stats == '14d', tz)
        out[issue_id] = charts.sparkline_svg(bars, SPARK_WIDTH, SPARK_HEIGHT, label, slots=slots)
    return out


def slice_label(piece):
    """'in staging, in release 1.2.0, in the last 24 hours': what a slice's counts are, in words
    ('' for none)."""
    if piece is None:
        return ''
    parts = []
    if piece.environment is not None:
        parts.append(f'in {piece.environment}')
    if piece.release is not None:
        parts.append(f'in release {piece.release}')
    if piece.since is not None:
        period = piece.age[1:] if piece.age and piece.age.startswith('-') else ''
        named = dict(PERIOD_LABELS).get(period)
        parts.append(f'in the {named.lower()}' if named
                     else f'since {piece.since:%Y-%m-%d %H:00} UTC')
    return ', '.join(parts)


def title_parts(issue):
    """(type, rest of the title) so the type can be set in bold; ('', title) without one."""
    prefix = f'{issue.type}: '
    if issue.type and issue.title.startswith(prefix):
        return issue.type, issue.title[len(prefix):]
    if issue.type and issue.title == issue.type:
        return issue.type, ''
    return '', issue.title


def person_key(event, model):
    """The key the writer files an event's user (id, else email) or account (id) under."""
    if model is IssueUser:
        user = event.get('user') or {}
        return user.get('id') or user.get('email')
    return (event.get('account') or {}).get('id')


def frame_runs(frames, rules):
    """[(in_app, [frame, ...]), ...]: the frames in runs of application and library code, for
    the page to fold each library run behind a toggle. A stack without any application frame
    is one run shown whole (folding it all would hide the error)."""
    marked = grouping.mark_in_app(frames, rules)
    if not any(f['in_app'] for f in marked):
        return [(True, marked)] if marked else []
    runs = []
    for frame in marked:
        if runs and runs[-1][0] == frame['in_app']:
            runs[-1][1].append(frame)
        else:
            runs.append((frame['in_app'], [frame]))
    return runs


def causes_of(event):
    """The exceptions behind the one raised, nearest first, each {type, message, frames}: a
    Sentry SDK's causes, or the chain parse_stack reads from a Python traceback's text."""
    if event.get('causes'):
        return [c for c in event['causes'] if isinstance(c, dict)]
    stack = (event.get('exception') or {}).get('stack')
    if not stack:
        return []
    chain = grouping.parse_stack(stack)['chain']
    return [{'type': c['exception_type'], 'message': c['message'], 'frames': c['frames']}
            for c in chain[1:]]


def grouping_reason(key):
    """The grouping key as the page explains it: (headline, [detail lines])."""
    if key is None:
        return None
    if key['kind'] == 'custom':
        values = [v for v in key['values'] if v != grouping.DEFAULT_VALUE]
        lines = [f'“{v}”' for v in values]
        if key.get('default'):
            headline, more = grouping_reason(key['default'])
            return ('The event’s own fingerprint, with the default key in it', lines
                    + [f'default: {headline}'] + more)
        return 'The event’s own fingerprint', lines
    if key['kind'] == 'frames':
        return (f'The exception type {key["type"]} and the top {len(key["frames"])} frames',
                [f'{function or "(anonymous)"} in {file or "(unknown file)"}'
                 for function, file in key['frames']])
    if key['type']:
        return f'The exception type {key["type"]} and its message', [key['message']]
    return 'The message', [key['message']]


def parse_ids(text, limit=MAX_MERGE):
    """'12, #15 17' -> [12, 15, 17] (at most limit)."""
    ids = []
    for part in (text or '').replace(',', ' ').split()[:limit]:
        part = part.lstrip('#')
        if part.isdigit() and len(part) < 12:
            ids.append(int(part))
    return ids


def event_summary(event):
    exception = event.get('exception') or {}
    return {
        'message': exception.get('message') or event.get('message') or exception.get('type') or '',
        'user': event.get('user') or {},
        'release': event.get('release'),
        'environment': event.get('environment'),
        'url': event.get('url'),
    }


def assignee_names(user_ids):
    """{user id: name or email} of the assignees of a page of issues (one query)."""
    ids = sorted({i for i in user_ids if i})
    if not ids:
        return {}
    return {user_id: name or email for user_id, name, email in
            User.select(User.id, User.name, User.email).where(User.id.in_(ids)).tuples()}


def form_count(field, text):
    if not text.isdigit() or len(text) > 9:
        raise triage.Invalid(field, 'a whole number')
    return int(text)


def status_change(get, now, zone=None):
    """The status form (the Resolve and Ignore menus) -> (status, triage.set_state keyword
    arguments); triage.Invalid names the bad field. get: the form's getter; zone: the reader's
    ZoneInfo (None: UTC), in which the date box's day begins."""
    status = get('status')
    if status not in STATUSES:
        raise triage.Invalid('status', 'unresolved, resolved or ignored')
    change = {}
    if status == 'resolved':
        resolve = get('resolve')
        if resolve == 'next':
            change['resolved_in'] = 'next'
        elif resolve == 'release':
            if not get('release'):
                raise triage.Invalid('release', 'name the release the fix ships in')
            change['resolved_in'] = triage.parse_resolved_in(get('release', limit=400))
        elif resolve:
            raise triage.Invalid('resolve', 'now, next or release')
    if status == 'ignored':
        snooze = get('snooze')
        if snooze == 'minutes':
            spec = {'minutes': form_count('minutes', get('minutes'))}
        elif snooze == 'until':
            spec = {'until': local_day_start(get('until', limit=40), zone)}
        elif snooze in triage.SNOOZE_COUNTS:
            spec = {snooze: form_count('count', get('count'))}
        elif snooze:
            raise triage.Invalid('snooze', 'minutes, until, events, users or accounts')
        else:
            spec = None
        change['snooze'] = triage.parse_ignore_until(spec, now)
    return status, change


def local_day_start(value, zone):
    """'2026-12-09' from a date box -> the start of that day in the reader's zone, as an ISO
    date-time with its offset (the page's day, not UTC's); anything else unchanged for
    triage.parse_ignore_until to judge."""
    if zone is None or not isinstance(value, str) or len(value) != 10:
        return value
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        return value
    return datetime.datetime(day.year, day.month, day.day, tzinfo=zone).isoformat()


SNOOZE_WORDS = {'events': 'more events', 'users': 'more users', 'accounts': 'more accounts'}


def snooze_text(spec):
    """A stored snooze ({"minutes": N, "until": ...}, {"until": ...}, {"events": N}...) in words."""
    if not isinstance(spec, dict):
        return ''
    for kind, words in SNOOZE_WORDS.items():
        if kind in spec:
            return f'until {spec[kind]} {words}'
    if 'until' in spec:
        return f'until {str(spec["until"])[:16].replace("T", " ")} UTC'
    return ''


def activity_detail(kind, detail):
    """What the timeline says beside an activity's kind, who and release: the assignee, the
    release it was resolved in, the snooze, why it woke (the page escapes it)."""
    if kind in ('assigned', 'unassigned'):
        return f'{"to" if kind == "assigned" else "was"} {detail.get("assignee") or "a member"}'
    if kind == 'resolved':
        if detail.get('auto'):
            return f'automatically, after {detail["auto"]} days without an event'
        if detail.get('in_release') == 'next':
            return 'in the next release'
        if detail.get('in_release'):
            return f'in release {detail["in_release"]}'
    if kind == 'ignored' and detail.get('until'):
        return snooze_text(detail['until'])
    if kind == 'escalating':
        reason = detail.get('reason')
        if reason == 'time':
            return 'back from its snooze: the time was up'
        return f'back from its snooze: the {reason} passed the mark'
    return ''


def entry_detail(row):
    """An activity's detail in words: triage's are JSON, merges and unmerges plain text."""
    if not row.detail:
        return ''
    try:
        detail = orjson.loads(row.detail)
    except orjson.JSONDecodeError:
        return row.detail
    return activity_detail(row.kind, detail) if isinstance(detail, dict) else row.detail


def timeline_entries(issue_id, viewer_id, limit=100):
    """The issue's activity and comments for the page, newest first: dicts the template shows
    as they are (the comment's HTML is built by triage.comment_html from escaped text)."""
    out = []
    for kind, row, email in triage.timeline(issue_id, limit):
        if kind == 'comment':
            out.append({'kind': 'comment', 'id': row.id, 'author': email or 'a former member',
                        'at': row.created_at, 'edited': row.updated_at, 'text': row.text,
                        'html': Markup(triage.comment_html(row.text)),  # noqa: S704 (escaped)
                        'own': viewer_id is not None and row.user_id == viewer_id})
        else:
            out.append({'kind': row.kind, 'at': row.created_at, 'user': email,
                        'release': row.release, 'text': entry_detail(row)})
    return out


SAVED_FILTERS = ('project', 'status', 'environment', 'release', 'level', 'query', 'period', 'sort')
MAX_SEARCH_NAME = 100


def saved_searches(org, user_id):
    """The organization's shared searches and the user's own, by name: dicts with the list URL
    each opens and whether the user may delete it."""
    rows = (SavedSearch.select()
            .where(SavedSearch.organization == org.id,
                   (SavedSearch.shared == True) | (SavedSearch.user == user_id))  # noqa: E712
            .order_by(SavedSearch.name, SavedSearch.id))
    out = []
    for row in rows:
        filters = orjson.loads(row.filters)
        out.append({'id': row.id, 'name': row.name, 'shared': row.shared,
                    'own': row.user_id == user_id,
                    'url': urls.org_issues(org.slug, **{k: filters.get(k) for k in SAVED_FILTERS})})
    return out


def keep_for_undo(user_id, states, now):
    """On the writer: the bulk change's states, for its Undo; older ones past it go."""
    BulkChange.delete().where(BulkChange.created_at < now - triage.UNDO_FOR).execute()
    return BulkChange.create(user=user_id, created_at=now, count=len(states),
                             states=orjson.dumps(states).decode())


def undoable(user_id, now, change_id=None):
    """The user's newest bulk change (or change_id) that can still be undone (not undone, not
    too old), or None: the list shows its Undo after a bulk change."""
    query = BulkChange.select().where(BulkChange.user == user_id,
                                      BulkChange.undone == False,  # noqa: E712
                                      BulkChange.created_at >= now - triage.UNDO_FOR)
    if change_id is not None:
        query = query.where(BulkChange.id == change_id)
    return query.order_by(BulkChange.id.desc()).first()


class Issues(Page):
    """The issue list: /orgs/{slug}/issues (every project of the organization, or one of them with
    ?project=) and /projects/{id}/issues; POST /issues/bulk changes the status of selected rows."""

    @falcon.before(guard.require_login)
    def on_get_org(self, req, resp, org_slug):
        org, _membership = self.org_for(req, org_slug)
        projects = list(Project.select().where(Project.organization == org.id)
                        .order_by(Project.name, Project.id))
        chosen = req.get_param_as_int('project')
        scope = [p.id for p in projects if chosen in (None, p.id)]

        def link(**params):
            return urls.org_issues(org.slug, project=chosen, **params)

        self.show(req, resp, org=org, projects=projects, scope=scope, project=None, link=link,
                  chosen=chosen)

    @falcon.before(guard.require_login)
    def on_get_project(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id)

        def link(**params):
            return urls.project_issues(project.id, **params)

        self.show(req, resp, org=project.organization, projects=[project], scope=[project.id],
                  project=project, link=link, chosen=project.id)

    def show(self, req, resp, *, org, projects, scope, project, link, chosen):
        filters = parse_filters(req)
        now = self.clock()
        if filters['query'] and scope:
            found = find_event(scope, filters['query'])
            if found:
                raise falcon.HTTPSeeOther(urls.issue_event(*found))
        rows, next_cursor, search_error, total, piece = [], None, None, None, None
        if scope:
            try:
                issues = search.filter_issues(
                    scope, status=filters['status'], query=filters['query'],
                    sort=filters['sort'], viewer_id=guard.current_user(req).id, now=now)
            except search.UnknownTerm as error:
                search_error = str(error)
            else:
                rows, next_cursor = search.page_issues(
                    issues, sort=filters['sort'], cursor=filters['cursor'] or None,
                    limit=PAGE_SIZE)
                # "Select all N matching": one COUNT, only when there is more than this page.
                if next_cursor or filters['cursor']:
                    total = issues.count()
                piece = search.slice_of(filters['query'], now)

        def here(**changes):
            """This list's URL with some filters changed (and the page reset): the search text
            carries the menus' terms."""
            params = {k: v for k, v in filters.items() if k not in ('cursor',) + MENUS}
            params.update(changes)
            if 'status' in changes:
                params['query'] = search.without_status(params['query'])
            defaults = {'status': 'unresolved', 'sort': 'last_seen', 'stats': '24h'}
            return link(**{k: (None if defaults.get(k) == v else v) for k, v in params.items()})

        shown_counts = None
        if piece is not None and filters['counts'] != 'total':
            shown_counts = slices.counts(rows, piece)

        project_names = {p.id: p.name for p in projects}
        self.render(
            req, resp, 'issue_list.html', org=org, project=project, projects=projects,
            chosen=chosen, filters=filters, issues=rows, search_error=search_error,
            titles={i.id: title_parts(i) for i in rows},
            assignees=assignee_names([i.assignee_id for i in rows]),
            sparks=sparklines([i.id for i in rows], filters['stats'], now,
                              piece if shown_counts is not None else None,
                              reader_zone(req, guard.current_user(req))),
            piece=piece, slice_label=slice_label(piece), counts=shown_counts,
            project_names=project_names,
            environments=tag_values(scope, 'environment'),
            releases=tag_values(scope, 'release', descending=True),
            next_url=here(cursor=next_cursor) if next_cursor else None,
            first_url=here() if filters['cursor'] else None,
            here=here, new_since=now - NEW_FOR, levels=LEVELS, periods=PERIOD_LABELS,
            sorts=SORT_LABELS, tabs=STATUS_TABS, list_url=req.relative_uri, total=total,
            match={'org': org.slug, 'project': chosen or '', **filters,
                   **dict.fromkeys(MENUS, '')},
            undo=undoable(guard.current_user(req).id, now)
            if req.get_param('notice') == 'bulk' else None,
            saved=saved_searches(org, guard.current_user(req).id))

    @falcon.before(guard.require_login)
    def on_post_bulk(self, req, resp):
        """The bulk bar: the selected issues (issue=...), or with all_matching=1 every issue the
        list's search matches (the match_* fields), change; the change is kept for its Undo."""
        form = self.form(req)
        action = form.get('action')
        status = ACTIONS.get(action)
        if status is None and action != MERGE and action not in ASSIGN_ACTIONS:
            raise falcon.HTTPBadRequest(
                description='action: resolve, ignore, reopen, merge, assign_me or unassign')
        user_id = guard.current_user(req).id
        if form.get('all_matching') == '1':
            if action == MERGE:
                raise falcon.HTTPBadRequest(
                    description='action: merge takes selected issues, not all matching ones')
            allowed = self.matching_ids(req, form)
        else:
            wanted = {int(v) for v in form.getlist('issue', limit=PAGE_SIZE * 4) if v.isdigit()}
            org_ids = [m.organization_id for m in self.memberships(req)]
            allowed = [row[0] for row in IssueRow.select(IssueRow.id).join(Project)
                       .where(IssueRow.id.in_(list(wanted)), Project.organization.in_(org_ids))
                       .tuples()] if wanted and org_ids else []
        if action == MERGE:
            self.merge_selected(allowed, user_id)
        if status is not None:
            change = {'status': status}
        else:
            change = {'assignee': guard.current_user(req) if action == 'assign_me' else None}
        states = []
        for chunk in triage.chunks(allowed):
            states += self.call(lambda chunk=chunk: triage.bulk_change(
                chunk, now=self.clock(), actor_id=user_id, **change))
        target = form.get('next')
        target = target if urls.is_local(target) else urls.home()
        if not allowed:
            raise falcon.HTTPSeeOther(urls.with_notice(target, 'bulk'))
        if not states:
            raise falcon.HTTPSeeOther(urls.with_notice(target, 'bulk_none'))
        self.call(lambda: keep_for_undo(user_id, states, self.clock()))
        raise falcon.HTTPSeeOther(urls.with_notice(target, 'bulk'))

    def matching_ids(self, req, form):
        """The ids of every issue the list's search (the form's match_* fields) matches, in
        the organization or project it was shown for (404 outside the user's)."""
        project_id = form.get('match_project', limit=12)
        org, _membership = self.org_for(req, form.get('match_org', limit=200))
        scope = [p for (p,) in Project.select(Project.id).where(Project.organization == org.id)
                 .tuples()]
        if project_id:
            if not project_id.isdigit() or int(project_id) not in scope:
                raise falcon.HTTPBadRequest(description='match_project: a project of the '
                                                        'organization')
            scope = [int(project_id)]
        get = {name: form.get(f'match_{name}', limit=500) for name in
               ('status', 'environment', 'release', 'level', 'query', 'period')}
        status = get['status'] if get['status'] in STATUSES + ('all',) else 'unresolved'
        period = PERIODS.get(get['period'])
        try:
            issues = search.filter_issues(
                scope, status=status, environment=get['environment'] or None,
                release=get['release'] or None,
                level=get['level'] if get['level'] in LEVELS else None, query=get['query'],
                since=self.clock() - period if period else None,
                viewer_id=guard.current_user(req).id, now=self.clock())
        except search.UnknownTerm as error:
            raise falcon.HTTPBadRequest(description=f'query: {error}') from None
        return [i for (i,) in issues.select(IssueRow.id).order_by(IssueRow.id).tuples()]

    @falcon.before(guard.require_login)
    def on_post_undo(self, req, resp, change_id):
        """Undo one of the user's own bulk changes, for UNDO_FOR after it: the issues nobody
        changed since go back to how they were."""
        user_id = guard.current_user(req).id
        record = BulkChange.get_or_none(BulkChange.id == change_id, BulkChange.user == user_id)
        if record is None:
            raise falcon.HTTPNotFound()
        form = self.form(req)
        target = form.get('next')
        target = target if urls.is_local(target) else urls.home()
        if undoable(user_id, self.clock(), record.id) is None:
            raise falcon.HTTPSeeOther(urls.with_notice(target, 'undo_expired'))
        states = orjson.loads(record.states)

        def undo():
            # Marked first, in the same transaction: a second click finds nothing to undo.
            marked = (BulkChange.update({BulkChange.undone: True})
                      .where(BulkChange.id == record.id, BulkChange.undone == False)  # noqa: E712
                      .execute())
            return triage.restore(states, now=self.clock(), actor_id=user_id) if marked else 0

        self.call(undo)
        raise falcon.HTTPSeeOther(urls.with_notice(target, 'bulk_undone'))


    @falcon.before(guard.require_login)
    def on_post_searches(self, req, resp, org_slug):
        """Save the list's search under a name, for the organization (shared=1) or its author."""
        org, _membership = self.org_for(req, org_slug)
        form = self.form(req)
        name = form.get('name', limit=MAX_SEARCH_NAME + 1)
        if not name or len(name) > MAX_SEARCH_NAME:
            raise falcon.HTTPBadRequest(
                description=f'name: 1 to {MAX_SEARCH_NAME} characters')
        filters = {k: form.get(k, limit=500) for k in SAVED_FILTERS}
        projects = {str(p) for (p,) in Project.select(Project.id)
                    .where(Project.organization == org.id).tuples()}
        if filters['project'] and filters['project'] not in projects:
            raise falcon.HTTPBadRequest(description='project: a project of the organization')
        user_id = guard.current_user(req).id
        shared = form.get('shared') == '1'
        self.call(lambda: SavedSearch.create(
            organization=org.id, user=user_id, name=name, shared=shared, created_at=self.clock(),
            filters=orjson.dumps({k: v for k, v in filters.items() if v}).decode()))
        target = form.get('next')
        target = target if urls.is_local(target) else urls.org_issues(org.slug)
        raise falcon.HTTPSeeOther(urls.with_notice(target, 'search_saved'))

    @falcon.before(guard.require_login)
    def on_post_search_delete(self, req, resp, search_id):
        """Delete a saved search: its author only (404 outside their organizations)."""
        row = SavedSearch.get_or_none(SavedSearch.id == search_id)
        if row is None:
            raise falcon.HTTPNotFound()
        membership = self.membership(req, row.organization_id)
        user_id = guard.current_user(req).id
        if row.user_id != user_id:
            raise falcon.HTTPForbidden(description='only its author may delete a saved search')
        self.call(lambda: SavedSearch.delete().where(SavedSearch.id == row.id).execute())
        target = self.form(req).get('next')
        target = target if urls.is_local(target) else urls.org_issues(
            membership.organization.slug)
        raise falcon.HTTPSeeOther(urls.with_notice(target, 'search_deleted'))

    def merge_selected(self, issue_ids, user_id):
        """The selected issues merge into the oldest of them (the one first seen); it opens."""
        rows = list(IssueRow.select(IssueRow.id, IssueRow.project, IssueRow.first_seen)
                    .where(IssueRow.id.in_(issue_ids)).order_by(IssueRow.first_seen, IssueRow.id))
        if len(rows) < 2:
            raise falcon.HTTPBadRequest(description='select at least two issues to merge')
        target = rows[0]
        try:
            self.call(lambda: merge_issues(target.id, [r.id for r in rows[1:]], user_id=user_id,
                                           now=self.clock()))
        except GroupingError as error:
            raise falcon.HTTPBadRequest(description=str(error)) from error
        raise falcon.HTTPSeeOther(urls.issue(target.id))


class Issue(Page):
    """/issues/{id} (latest event), /events/{pk} (one event), /events (all), /users, /accounts,
    the raw event JSON, and POST /status."""

    def issue_for(self, req, issue_id):
        issue = (IssueRow.select(IssueRow, Project).join(Project)
                 .where(IssueRow.id == issue_id).first())
        if issue is None:
            raise falcon.HTTPNotFound()
        membership = self.membership(req, issue.project.organization_id)
        issue.project.organization = membership.organization
        return issue, membership

    @falcon.before(guard.require_login)
    def on_get(self, req, resp, issue_id):
        self.show(req, resp, issue_id, None)

    @falcon.before(guard.require_login)
    def on_get_event(self, req, resp, issue_id, event_pk):
        self.show(req, resp, issue_id, event_pk)

    def show(self, req, resp, issue_id, event_pk):
        issue, _membership = self.issue_for(req, issue_id)
        now = self.clock()
        row = self.event_row(issue, event_pk)
        if row is None and event_pk is not None:
            raise falcon.HTTPNotFound(description='no such event in this issue')
        event = decode_event(row.data) if row is not None else None
        project = issue.project
        rules = rules_for(project.in_app_patterns, project.library_patterns)
        key = (event_grouping_key(decode_json(row.data), rules, adjust) if row is not None
               else None)
        nav = self.event_nav(issue, row) if row is not None else {}
        chart = req.get_param('chart')
        if chart not in ('24h', '30d'):
            chart = '24h' if issue.last_seen >= now - charts.DAY else '30d'
        frames_view = 'raw' if req.get_param('frames') == 'raw' else 'original'
        frames = [f for f in (event or {}).get('frames') or () if isinstance(f, dict)]

        def here(**changes):
            """This page's URL with the chart range or the frames view changed."""
            params = {'chart': req.get_param('chart') if chart else None,
                      'frames': 'raw' if frames_view == 'raw' else None}
            params.update(changes)
            if event_pk is not None:
                return urls.issue_event(issue.id, event_pk, **params)
            return urls.issue(issue.id, **params)

        self.render(
            req, resp, 'issue_detail.html', org=issue.project.organization, issue=issue,
            title=title_parts(issue), tab='details', row=row, event=event, event_nav=nav,
            chart=chart, bars=self.chart_bars(issue, chart, now),
            chart_size=(CHART_WIDTH, CHART_HEIGHT), tags=self.tags(issue),
            users=self.people(IssueUser, issue, TAG_TOP, RECENT_SIDE),
            accounts=self.people(IssueAccount, issue, TAG_TOP, RECENT_SIDE),
            recent_side=RECENT_SIDE,
            timeline=timeline_entries(issue.id, guard.current_user(req).id),
            members=triage.members(issue.project.organization_id), frames_view=frames_view,
            agent=parse_user_agent(event.get('user_agent')) if event else (None, None),
            frames=frames, has_mapped=any(f.get('resolved') for f in frames),
            maps_missing=any(f.get('unresolved_reason') == 'no_maps' for f in frames),
            runs=frame_runs(frames, rules),
            causes=[(c, frame_runs(c.get('frames') or [], rules))
                    for c in causes_of(event or {})],
            reason=grouping_reason(key),
            fingerprints=fingerprints_of([issue.id]).get(issue.id, []),
            new_since=now - NEW_FOR, here=here, release_chart=releases.issue_chart(issue))

    def event_row(self, issue, event_pk):
        if event_pk is not None:
            return Event.get_or_none(Event.id == event_pk, Event.issue == issue.id)
        if issue.last_event:
            row = Event.get_or_none(Event.id == issue.last_event, Event.issue == issue.id)
            if row is not None:
                return row
        # The newest event through the (issue_id, id) index: last_event missing or pruned.
        return (Event.select().where(Event.issue == issue.id)
                .order_by(Event.id.desc()).first())

    def event_nav(self, issue, row):
        """Older/newer/oldest/newest event ids around row, each one (issue_id, id) index probe."""
        def one(query):
            found = query.tuples().first()
            return found[0] if found else None

        return {
            'newer': one(Event.select(Event.id).where(Event.issue == issue.id, Event.id > row.id)
                         .order_by(Event.id).limit(1)),
            'older': one(Event.select(Event.id).where(Event.issue == issue.id, Event.id < row.id)
                         .order_by(Event.id.desc()).limit(1)),
            'newest': one(Event.select(Event.id).where(Event.issue == issue.id)
                          .order_by(Event.id.desc()).limit(1)),
            'oldest': one(Event.select(Event.id).where(Event.issue == issue.id)
                          .order_by(Event.id).limit(1)),
        }

    def chart_bars(self, issue, chart, now):
        if chart == '30d':
            start = charts.floor_day(now) - charts.DAY * 29
        else:
            start = charts.floor_hour(now) - charts.HOUR * 23
        rows = (IssueHourly.select(IssueHourly.hour, IssueHourly.event_count)
                .where(IssueHourly.issue == issue.id, IssueHourly.hour >= start).tuples())
        if chart == '30d':
            series = charts.daily_series(rows, now, 30)
        else:
            series = charts.hourly_series(rows, now, 24)
        return charts.bars(series, width=CHART_WIDTH, height=CHART_HEIGHT, gap=2)

    def tags(self, issue):
        """[(key, label, [(value, count, percent)])] for the keys this issue has: the known ones,
        then the SDK's own tags."""
        out = []
        known = dict(TAG_KEYS)
        for key, label in TAG_KEYS + tuple((k, k) for k in tag_keys(issue.id) if k not in known):
            rows = (IssueTag.select(IssueTag.value, IssueTag.event_count)
                    .where(IssueTag.issue == issue.id, IssueTag.key == key)
                    .order_by(IssueTag.event_count.desc(), IssueTag.value)
                    .limit(TAG_TOP).tuples())
            values = list(rows)
            if values:
                out.append((key, label, charts.share_bars(values, issue.event_count)))
        return out

    def people(self, model, issue, limit, recent_events):
        """(rows, ranked): the users or accounts of an issue with the most events, or, when it
        has more than RANK_LIMIT of them (ranking would read them all: 135 ms for 35,000), the
        ones in its newest recent_events events, by their event counts."""
        total = issue.user_count if model is IssueUser else issue.account_count
        query = (model.select().where(model.issue == issue.id)
                 .order_by(model.event_count.desc(), model.id).limit(limit))
        if total <= RANK_LIMIT:
            return list(query), True
        keys = set()
        for (data,) in (Event.select(Event.data).where(Event.issue == issue.id)
                        .order_by(Event.id.desc()).limit(recent_events).tuples()):
            keys.add(person_key(decode_json(data), model))
        keys.discard(None)
        key_field = IssueUser.user_key if model is IssueUser else IssueAccount.account_id
        return (list(query.where(key_field.in_(sorted(keys)))) if keys else []), False


    @falcon.before(guard.require_login)
    def on_get_events(self, req, resp, issue_id):
        issue, _membership = self.issue_for(req, issue_id)
        before = req.get_param_as_int('before', min_value=1)
        after = req.get_param_as_int('after', min_value=1)
        query = Event.select(Event.id, Event.event_id, Event.timestamp, Event.received_at,
                             Event.data).where(Event.issue == issue.id)
        if after:
            rows = list(query.where(Event.id > after).order_by(Event.id)
                        .limit(EVENTS_PAGE + 1))
            more_newer = len(rows) > EVENTS_PAGE
            rows = rows[:EVENTS_PAGE][::-1]
            more_older = True
        else:
            if before:
                query = query.where(Event.id < before)
            rows = list(query.order_by(Event.id.desc()).limit(EVENTS_PAGE + 1))
            more_older = len(rows) > EVENTS_PAGE
            rows = rows[:EVENTS_PAGE]
            more_newer = bool(before)
        events = [(row, event_summary(decode_event(row.data))) for row in rows]
        self.render(
            req, resp, 'issue_events.html', org=issue.project.organization, issue=issue,
            title=title_parts(issue), tab='events', events=events,
            older_url=urls.issue_events(issue.id, before=rows[-1].id) if rows and more_older
            else None,
            newer_url=urls.issue_events(issue.id, after=rows[0].id) if rows and more_newer
            else None,
            new_since=self.clock() - NEW_FOR)

    @falcon.before(guard.require_login)
    def on_get_users(self, req, resp, issue_id):
        self.show_people(req, resp, issue_id, 'users', IssueUser, 'user_count')

    @falcon.before(guard.require_login)
    def on_get_accounts(self, req, resp, issue_id):
        self.show_people(req, resp, issue_id, 'accounts', IssueAccount, 'account_count')

    def show_people(self, req, resp, issue_id, kind, model, count_column):
        issue, _membership = self.issue_for(req, issue_id)
        self.render(req, resp, 'issue_people.html', org=issue.project.organization, issue=issue,
                    title=title_parts(issue), tab=kind, kind=kind,
                    people=self.people(model, issue, PEOPLE_LIMIT, RECENT_TAB),
                    limit=PEOPLE_LIMIT, recent=RECENT_TAB,
                    total=getattr(issue, count_column), new_since=self.clock() - NEW_FOR)

    @falcon.before(guard.require_login)
    def on_get_json(self, req, resp, issue_id, event_pk):
        issue, _membership = self.issue_for(req, issue_id)
        row = Event.get_or_none(Event.id == event_pk, Event.issue == issue.id)
        if row is None:
            raise falcon.HTTPNotFound()
        # Served as JSON with nosniff (SecurityHeaders): a browser shows it as text, never as HTML.
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(event_json(row), option=orjson.OPT_INDENT_2)
        resp.set_header('Content-Disposition', f'inline; filename="event-{row.id}.json"')

    @falcon.before(guard.require_login)
    def on_post_merge(self, req, resp, issue_id):
        """Merge the issues named in the form (numbers) into this one."""
        issue, _membership = self.issue_for(req, issue_id)
        wanted = parse_ids(self.form(req).get('issues', limit=2000))
        allowed = [row[0] for row in IssueRow.select(IssueRow.id)
                   .where(IssueRow.id.in_(wanted), IssueRow.project == issue.project_id)
                   .tuples()] if wanted else []
        if not allowed or set(allowed) == {issue.id}:
            raise falcon.HTTPBadRequest(
                description='issues: the numbers of other issues of this project')
        user_id = guard.current_user(req).id
        try:
            self.call(lambda: merge_issues(issue.id, allowed, user_id=user_id, now=self.clock()))
        except GroupingError as error:
            raise falcon.HTTPBadRequest(description=str(error)) from error
        raise falcon.HTTPSeeOther(urls.issue(issue.id))

    @falcon.before(guard.require_login)
    def on_post_unmerge(self, req, resp, issue_id):
        """Take a fingerprint out of this issue into a new one, which then opens."""
        issue, _membership = self.issue_for(req, issue_id)
        fingerprint = self.form(req).get('fingerprint', limit=200)
        user_id = guard.current_user(req).id
        try:
            new = self.call(lambda: unmerge(issue.id, fingerprint, user_id=user_id,
                                            now=self.clock()))
        except GroupingError as error:
            raise falcon.HTTPBadRequest(description=str(error)) from error
        raise falcon.HTTPSeeOther(urls.issue(new.id))

    @falcon.before(guard.require_login)
    def on_post_status(self, req, resp, issue_id):
        """Resolve (now, in the next release, in a named release), ignore (for ever, for a
        time, until a date, until N more events, users or accounts) or reopen."""
        issue, _membership = self.issue_for(req, issue_id)
        form = self.form(req)
        try:
            status, change = status_change(form.get, self.clock(),
                                           reader_zone(req, guard.current_user(req)))
        except triage.Invalid as error:
            raise falcon.HTTPBadRequest(description=str(error)) from None
        user_id = guard.current_user(req).id
        self.call(lambda: triage.set_state(issue.id, status, actor_id=user_id, now=self.clock(),
                                           **change))
        target = form.get('next')
        target = target if urls.is_local(target) else urls.issue(issue.id)
        raise falcon.HTTPSeeOther(urls.with_notice(target, status))

    @falcon.before(guard.require_login)
    def on_post_assign(self, req, resp, issue_id):
        """assignee: 'me', a member's user id, or '' for nobody."""
        issue, _membership = self.issue_for(req, issue_id)
        form = self.form(req)
        me = guard.current_user(req)
        choice = form.get('assignee', limit=20)
        if choice == 'me':
            user = me
        elif choice == '':
            user = None
        else:
            members = {str(u.id): u for u in triage.members(issue.project.organization_id)}
            user = members.get(choice)
            if user is None:
                raise falcon.HTTPBadRequest(
                    description="assignee: a member of the issue's organization, or unassigned")
        self.call(lambda: triage.assign(issue.id, user, now=self.clock(), actor_id=me.id))
        target = form.get('next')
        target = target if urls.is_local(target) else urls.issue(issue.id)
        raise falcon.HTTPSeeOther(urls.with_notice(target, 'assigned'))

    @falcon.before(guard.require_login)
    def on_post_comments(self, req, resp, issue_id):
        issue, _membership = self.issue_for(req, issue_id)
        text = self.comment_text(req)
        author = guard.current_user(req)
        self.call(lambda: triage.add_comment(issue.id, author, text, self.clock()))
        raise falcon.HTTPSeeOther(urls.with_notice(urls.issue(issue.id), 'commented'))

    @falcon.before(guard.require_login)
    def on_post_comment_edit(self, req, resp, comment_id):
        comment, author = self.own_comment(req, comment_id)
        text = self.comment_text(req)
        self.call(lambda: triage.edit_comment(comment.id, author, text, self.clock()))
        raise falcon.HTTPSeeOther(urls.with_notice(urls.issue(comment.issue_id), 'comment_saved'))

    @falcon.before(guard.require_login)
    def on_post_comment_delete(self, req, resp, comment_id):
        comment, _author = self.own_comment(req, comment_id)
        self.call(lambda: triage.delete_comment(comment.id))
        raise falcon.HTTPSeeOther(urls.with_notice(urls.issue(comment.issue_id),
                                                   'comment_deleted'))

    def comment_text(self, req):
        try:
            return triage.validate_comment(self.form(req).get('text', limit=triage.MAX_COMMENT + 1,
                                                               strip=False))
        except triage.Invalid as error:
            raise falcon.HTTPBadRequest(description=str(error)) from None

    def own_comment(self, req, comment_id):
        """(comment, its author) when the signed-in user wrote it: 404 outside their
        organizations, 403 for someone else's comment."""
        comment = IssueComment.get_or_none(IssueComment.id == comment_id)
        if comment is None:
            raise falcon.HTTPNotFound()
        self.issue_for(req, comment.issue_id)
        user = guard.current_user(req)
        if comment.user_id != user.id:
            raise falcon.HTTPForbidden(description='only its author may change a comment')
        return comment, user
