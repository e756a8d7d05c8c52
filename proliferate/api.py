"""The JSON read API under /api/v1 (bearer tokens). Read-only but for issue status changes,
merges and unmerges, which go through the writer. A token sees only its own organization's
projects.
"""

import falcon
import orjson

from proliferate import issues
from proliferate import jsonapi
from proliferate import orgs
from proliferate import search
from proliferate import slices
from proliferate import triage
from proliferate.models import DroppedCount
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import IssueAccount
from proliferate.models import IssueComment
from proliferate.models import IssueTag
from proliferate.models import IssueUser
from proliferate.models import Project
from proliferate.times import iso
from proliferate.times import utcnow

MAX_LIMIT = 100


def project_json(project, base=None):
    out = {'id': project.id, 'name': project.name, 'slug': project.slug,
           'org': project.organization.slug, 'created_at': iso(project.created_at)}
    if base is not None:
        # The DSN of the project's oldest live key (None without one), for Sentry SDKs.
        key = orgs.live_key(project.id)
        out['dsn'] = orgs.dsn(base, key.key, project.id) if key else None
    return out


def public_base(req, base_url):
    """This server's public URL: the base_url setting, else what the request shows."""
    return base_url.rstrip('/') if base_url else req.prefix


def query_int(req, name, default, low, high):
    raw = req.get_param(name)
    if raw is None or raw == '':
        return default
    try:
        value = int(raw)
    except ValueError:
        raise falcon.HTTPBadRequest(description=f'{name}: must be an integer') from None
    if not low <= value <= high:
        raise falcon.HTTPBadRequest(description=f'{name}: must be between {low} and {high}')
    return value


class Resource:
    """Every read-API resource: the token's organization bounds what it may see. Those that
    change something take the writer (the only thread that writes) and the clock."""

    def __init__(self, writer=None, clock=utcnow):
        self.writer = writer
        self.clock = clock

    def project(self, token, project_id):
        project = Project.get_or_none(Project.id == project_id,
                                      Project.organization == token.organization_id)
        if project is None:
            raise falcon.HTTPNotFound(description=f'no project {project_id}')
        return project

    def issue(self, token, issue_id):
        issue = (Issue.select(Issue).join(Project)
                 .where(Issue.id == issue_id, Project.organization == token.organization_id)
                 .first())
        if issue is None:
            raise falcon.HTTPNotFound(description=f'no issue {issue_id}')
        return issue


class Projects(Resource):
    def __init__(self, base_url=''):
        self.base_url = base_url

    def on_get(self, req, resp):
        token = jsonapi.require_token(req)
        projects = orgs.organization_projects(token.organization_id).order_by(Project.id)
        base = public_base(req, self.base_url)
        jsonapi.send(resp, {'projects': [project_json(p, base) for p in projects]})


class ProjectItem(Resource):
    def __init__(self, base_url=''):
        self.base_url = base_url

    def on_get(self, req, resp, project_id):
        token = jsonapi.require_token(req)
        project = self.project(token, project_id)
        dropped = {row.reason: row.count for row in
                   DroppedCount.select().where(DroppedCount.project == project.id)}
        jsonapi.send(resp, {**project_json(project, public_base(req, self.base_url)),
                            'dropped': dropped,
                    'rate_limit_per_minute': project.rate_limit_per_minute})


class ProjectIssues(Resource):
    def on_get(self, req, resp, project_id):
        token = jsonapi.require_token(req)
        project = self.project(token, project_id)
        status = req.get_param('status') or 'unresolved'
        if status not in issues.STATUSES + ('all',):
            raise falcon.HTTPBadRequest(description='status: must be unresolved, resolved, ignored or all')
        sort = req.get_param('sort') or 'last_seen'
        if sort not in search.SORTS:
            raise falcon.HTTPBadRequest(description='sort: must be one of ' + ', '.join(search.SORTS))
        now = self.clock()
        query = with_params(req)
        try:
            matching = search.filter_issues(
                [project.id], status=status, level=req.get_param('level'), query=query,
                viewer_id=token.user_id, now=now)
        except search.UnknownTerm as error:
            raise falcon.HTTPBadRequest(description=f'query: {error}') from None
        rows, next_cursor = search.page_issues(
            matching, sort=sort, cursor=req.get_param('cursor'),
            limit=query_int(req, 'limit', 50, 1, MAX_LIMIT))
        prints = issues.fingerprints_of([i.id for i in rows])
        body = [issues.issue_json(i, prints.get(i.id, [])) for i in rows]
        piece = search.slice_of(query, now)
        sliced = slices.counts(rows, piece) if piece is not None else {}
        for item in body:
            item.update(slice_json(item, sliced.get(item['id'])))
        # total: one COUNT over the same filtered query (every page of it, not only this one).
        jsonapi.send(resp, {'issues': body, 'next': next_cursor, 'total': matching.count(),
                            'slice': None if piece is None else {
                                'environment': piece.environment, 'release': piece.release,
                                'since': iso(piece.since)}})


def with_params(req):
    """The query with the environment, release and period parameters as its terms (each must
    hold, as the terms do); a period other than the list's is a 400."""
    query = req.get_param('query') or ''
    period = req.get_param('period')
    if period and period not in search.PERIODS:
        raise falcon.HTTPBadRequest(description='period: must be one of '
                                                + ', '.join(search.PERIODS))
    terms = [search.format_term(key, value) for key, value in (
        ('environment', req.get_param('environment')), ('release', req.get_param('release')),
        ('last_seen', f'-{period}' if period else None)) if value]
    # Ahead of the query's own: a slice is named by the first term of its key.
    return ' '.join([*terms, query])[:1500]


def slice_json(item, counts):
    """The list's counts of an issue: those of the slice when there is one (counts), and its
    totals over every event beside them."""
    out = {'total_event_count': item['event_count'], 'total_user_count': item['user_count'],
           'total_account_count': item['account_count'],
           'user_count_capped': False, 'account_count_capped': False}
    if counts is not None:
        out.update({'event_count': counts['events'], 'user_count': counts['users'],
                    'account_count': counts['accounts'],
                    'user_count_capped': counts['more_users'],
                    'account_count_capped': counts['more_accounts']})
    return out


class ProjectIssuesBulk(Resource):
    """POST /api/v1/projects/{id}/issues/bulk: one triage change (the PATCH keys) to every issue
    the query matches (the list's filters: ?status=, environment, release, level and the body's
    query), in chunks through the writer -> {"changed": N}."""

    def on_post(self, req, resp, project_id):
        token = jsonapi.require_token(req)
        project = self.project(token, project_id)
        media = read_object(req)
        query = media.pop('query', None)
        if query is not None and not isinstance(query, str):
            raise falcon.HTTPBadRequest(description='query: must be a string of search terms')
        status = req.get_param('status') or 'unresolved'
        if status not in issues.STATUSES + ('all',):
            raise falcon.HTTPBadRequest(description='status: must be unresolved, resolved, ignored or all')
        try:
            change = parse_change(media, self.clock(), project.organization_id)
        except triage.Invalid as error:
            raise falcon.HTTPBadRequest(description=str(error)) from None
        try:
            matching = search.filter_issues(
                [project.id], status=status, environment=req.get_param('environment'),
                release=req.get_param('release'), level=req.get_param('level'), query=query,
                viewer_id=token.user_id)
        except search.UnknownTerm as error:
            raise falcon.HTTPBadRequest(description=f'query: {error}') from None
        # The ids first: a change may take an issue out of the query (resolving unresolved ones).
        ids = [i for (i,) in matching.select(Issue.id).order_by(Issue.id).tuples()]
        changed = 0
        for chunk in triage.chunks(ids):
            changed += len(self.writer.call(lambda chunk=chunk: triage.bulk_change(
                chunk, now=self.clock(), actor_id=token.user_id, **change)))
        jsonapi.send(resp, {'changed': changed})


class IssueItem(Resource):
    def on_get(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        body = issues.issue_json(issue)
        tags = {}
        for row in (IssueTag.select().where(IssueTag.issue == issue.id)
                    .order_by(IssueTag.event_count.desc()).limit(200)):
            tags.setdefault(row.key, []).append({'value': row.value, 'count': row.event_count})
        body['tags'] = tags
        jsonapi.send(resp, body)

    def on_patch(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        media = read_object(req)
        try:
            change = parse_change(media, self.clock(), self.org_id(issue))
        except triage.Invalid as error:
            raise falcon.HTTPBadRequest(description=str(error)) from None
        self.writer.call(lambda: triage.change(issue.id, now=self.clock(), actor_id=token.user_id,
                                               **change))
        jsonapi.send(resp, issues.issue_json(Issue.get_by_id(issue.id)))

    def org_id(self, issue):
        return Project.get_by_id(issue.project_id).organization_id


class IssueMerge(Resource):
    """POST /api/v1/issues/{id}/merge {"issues": [ids]}: those issues merge into this one."""

    def on_post(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        wanted = read_object(req).get('issues')
        if (not isinstance(wanted, list) or not wanted
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in wanted)):
            raise falcon.HTTPBadRequest(description='issues: a non-empty array of issue ids')
        for other in set(wanted) - {issue.id}:
            self.issue(token, other)  # 404 for an issue of another organization
        try:
            merged = self.writer.call(lambda: issues.merge_issues(
                issue.id, wanted, user_id=token.user_id))
        except issues.GroupingError as error:
            raise falcon.HTTPBadRequest(description=str(error)) from error
        jsonapi.send(resp, issues.issue_json(merged))


class IssueUnmerge(Resource):
    """POST /api/v1/issues/{id}/unmerge {"fingerprint": "..."}: that fingerprint leaves the
    issue for a new one, with its events; 201 with the new issue."""

    def on_post(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        fingerprint = read_object(req).get('fingerprint')
        if not isinstance(fingerprint, str) or not fingerprint:
            raise falcon.HTTPBadRequest(description='fingerprint: one of the issue\'s fingerprints')
        try:
            new = self.writer.call(lambda: issues.unmerge(
                issue.id, fingerprint, user_id=token.user_id))
        except issues.GroupingError as error:
            raise falcon.HTTPBadRequest(description=str(error)) from error
        jsonapi.send(resp, issues.issue_json(new), falcon.HTTP_201)


class IssueEvents(Resource):
    def on_get(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        limit = query_int(req, 'limit', 50, 1, MAX_LIMIT)
        events = Event.select().where(Event.issue == issue.id)
        before = req.get_param('cursor')
        if before:
            try:
                events = events.where(Event.id < int(before))
            except ValueError:
                raise falcon.HTTPBadRequest(description='cursor: must be an integer') from None
        rows = list(events.order_by(Event.id.desc()).limit(limit + 1))
        next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
        jsonapi.send(resp, {'events': [issues.event_json(r) for r in rows[:limit]], 'next': next_cursor})


class IssueUsers(Resource):
    def on_get(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        rows = (IssueUser.select().where(IssueUser.issue == issue.id)
                .order_by(IssueUser.event_count.desc(), IssueUser.id)
                .limit(query_int(req, 'limit', 100, 1, 1000)))
        jsonapi.send(resp, {'users': [{'id': r.user_id, 'email': r.email, 'key': r.user_key,
                               'event_count': r.event_count, 'first_seen': iso(r.first_seen),
                               'last_seen': iso(r.last_seen)} for r in rows]})


class IssueAccounts(Resource):
    def on_get(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        rows = (IssueAccount.select().where(IssueAccount.issue == issue.id)
                .order_by(IssueAccount.event_count.desc(), IssueAccount.id)
                .limit(query_int(req, 'limit', 100, 1, 1000)))
        jsonapi.send(resp, {'accounts': [{'id': r.account_id, 'name': r.name,
                                  'event_count': r.event_count, 'first_seen': iso(r.first_seen),
                                  'last_seen': iso(r.last_seen)} for r in rows]})


class ProjectEvent(Resource):
    def on_get(self, req, resp, project_id, event_id):
        token = jsonapi.require_token(req)
        project = self.project(token, project_id)
        row = Event.get_or_none(Event.project == project.id, Event.event_id == event_id)
        if row is None:
            raise falcon.HTTPNotFound(description=f'no event {event_id!r} in project {project_id}')
        jsonapi.send(resp, issues.event_json(row))


# -- triage: the PATCH body, comments, the activity log ---------------------------------------------

CHANGE_FIELDS = ('status', 'assignee', 'resolved_in', 'ignore_until')


def read_object(req, limit=65536):
    try:
        media = orjson.loads(req.bounded_stream.read(limit) or b'null')
    except orjson.JSONDecodeError as error:
        raise falcon.HTTPBadRequest(description=f'body is not valid JSON: {error}') from error
    if not isinstance(media, dict):
        raise falcon.HTTPBadRequest(description='body: must be a JSON object')
    return media


def parse_change(media, now, org_id):
    """A PATCH body -> triage.change()'s keyword arguments; triage.Invalid names a bad field."""
    unknown = sorted(set(media) - set(CHANGE_FIELDS))
    if unknown:
        raise triage.Invalid(unknown[0][:40], 'unknown field; status, assignee, resolved_in or '
                                              'ignore_until')
    if not media:
        raise triage.Invalid('body', 'give status, assignee, resolved_in or ignore_until')
    change = {}
    status = media.get('status')
    if 'status' in media and status not in issues.STATUSES:
        raise triage.Invalid('status', 'must be unresolved, resolved or ignored')
    if status is not None:
        change['status'] = status
    if media.get('resolved_in') is not None:
        if status != 'resolved':
            raise triage.Invalid('resolved_in', 'goes with status "resolved"')
        change['resolved_in'] = triage.parse_resolved_in(media['resolved_in'])
    if media.get('ignore_until') is not None:
        if status != 'ignored':
            raise triage.Invalid('ignore_until', 'goes with status "ignored"')
        change['ignore_until'] = triage.parse_ignore_until(media['ignore_until'], now)
    if 'assignee' in media:
        email = media['assignee']
        if email is None:
            change['assignee'] = None
        else:
            user = triage.member(org_id, email) if isinstance(email, str) else None
            if user is None:
                raise triage.Invalid('assignee', 'must be the email of a member of the '
                                                 "issue's organization, or null")
            change['assignee'] = user
    return change


def comment_text(media):
    try:
        return triage.validate_comment(media.get('text'))
    except triage.Invalid as error:
        raise falcon.HTTPBadRequest(description=str(error)) from None


class IssueComments(Resource):
    def on_get(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        jsonapi.send(resp, {'comments': [triage.comment_json(c, email)
                                         for c, email in triage.comments(issue.id)]})

    def on_post(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        text = comment_text(read_object(req))
        author = token.user
        comment = self.writer.call(lambda: triage.add_comment(issue.id, author, text, self.clock()))
        jsonapi.send(resp, triage.comment_json(comment, author.email))
        resp.status = falcon.HTTP_201


class CommentItem(Resource):
    """A comment: its author may change or delete it."""

    def own(self, req, comment_id):
        token = jsonapi.require_token(req)
        comment = IssueComment.get_or_none(IssueComment.id == comment_id)
        if comment is not None:
            self.issue(token, comment.issue_id)  # 404 outside the token's organization
        if comment is None:
            raise falcon.HTTPNotFound(description=f'no comment {comment_id}')
        if comment.user_id != token.user_id:
            raise falcon.HTTPForbidden(description='only its author may change a comment')
        return token, comment

    def on_patch(self, req, resp, comment_id):
        token, comment = self.own(req, comment_id)
        text = comment_text(read_object(req))
        author = token.user
        row = self.writer.call(lambda: triage.edit_comment(comment.id, author, text, self.clock()))
        jsonapi.send(resp, triage.comment_json(row, author.email))

    def on_delete(self, req, resp, comment_id):
        _token, comment = self.own(req, comment_id)
        self.writer.call(lambda: triage.delete_comment(comment.id))
        resp.status = falcon.HTTP_204


class IssueActivityLog(Resource):
    def on_get(self, req, resp, issue_id):
        token = jsonapi.require_token(req)
        issue = self.issue(token, issue_id)
        entries = []
        for kind, row, email in triage.timeline(issue.id):
            body = (triage.activity_json(row, email) if kind == 'activity'
                    else {**triage.comment_json(row, email), 'kind': 'comment'})
            entries.append(body)
        jsonapi.send(resp, {'activity': entries})
