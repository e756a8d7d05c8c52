"""One function per page URL of the issue browser, named as its row in routes.ROUTES, used by
templates and redirects. Pure: no I/O."""

from urllib.parse import parse_qsl
from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urlsplit


def with_query(path, params):
    """path?params, leaving out None and '' values (the pages' defaults)."""
    pairs = [(k, v) for k, v in (params or {}).items() if v is not None and v != '']
    return f'{path}?{urlencode(pairs, doseq=True)}' if pairs else path


def with_notice(url, notice):
    """url with ?notice=<notice> (replacing any notice it had): a fixed message after a redirect."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != 'notice']
    params.append(('notice', notice))
    return f'{parts.path}?{urlencode(params)}'


def part(value):
    return quote(str(value), safe='')


def home():
    return '/'


def setup():
    return '/setup'


def login(next=None):
    return with_query('/login', {'next': next})


def logout():
    return '/logout'


def account():
    return '/account'


def tokens():
    return '/tokens'


def token_revoke(token_id):
    return f'/tokens/{int(token_id)}/revoke'


def openapi():
    """The OpenAPI document of every JSON route (served by app.py, not a page)."""
    return '/api/openapi.json'


def invite(token):
    return f'/invite/{part(token)}'


def org_issues(org_slug, **params):
    return with_query(f'/orgs/{part(org_slug)}/issues', params)


def org_projects(org_slug):
    return f'/orgs/{part(org_slug)}/projects'


def org_members(org_slug):
    return f'/orgs/{part(org_slug)}/members'


def member(org_slug, membership_id):
    return f'/orgs/{part(org_slug)}/members/{int(membership_id)}'


def org_invites(org_slug):
    return f'/orgs/{part(org_slug)}/invites'


def invite_revoke(org_slug, invite_id):
    return f'/orgs/{part(org_slug)}/invites/{int(invite_id)}/revoke'


def project_issues(project_id, **params):
    return with_query(f'/projects/{int(project_id)}/issues', params)


def project_settings(project_id, **params):
    return with_query(f'/projects/{int(project_id)}/settings', params)


def project_delete(project_id):
    return f'/projects/{int(project_id)}/delete'


def project_keys(project_id):
    return f'/projects/{int(project_id)}/keys'


def key_revoke(project_id, key_id):
    return f'/projects/{int(project_id)}/keys/{int(key_id)}/revoke'


def upload_tokens(project_id):
    return f'/projects/{int(project_id)}/upload-tokens'


def upload_token_revoke(project_id, token_id):
    return f'/projects/{int(project_id)}/upload-tokens/{int(token_id)}/revoke'


def issues_bulk():
    return '/issues/bulk'


def issues_bulk_undo(change_id):
    return f'/issues/bulk/{int(change_id)}/undo'


def saved_searches(org_slug):
    return f'/orgs/{part(org_slug)}/searches'


def saved_search_delete(search_id):
    return f'/searches/{int(search_id)}/delete'


def issue(issue_id, **params):
    return with_query(f'/issues/{int(issue_id)}', params)


def issue_status(issue_id):
    return f'/issues/{int(issue_id)}/status'


def issue_assign(issue_id):
    return f'/issues/{int(issue_id)}/assign'


def issue_comments(issue_id):
    return f'/issues/{int(issue_id)}/comments'


def comment_edit(comment_id):
    return f'/comments/{int(comment_id)}/edit'


def comment_delete(comment_id):
    return f'/comments/{int(comment_id)}/delete'


def assigned_to_me(org_slug):
    """The organization's issues assigned to whoever looks (a search, not a route of its own)."""
    return org_issues(org_slug, query='assigned:me')


def issue_merge(issue_id):
    return f'/issues/{int(issue_id)}/merge'


def issue_unmerge(issue_id):
    return f'/issues/{int(issue_id)}/unmerge'


def issue_events(issue_id, **params):
    return with_query(f'/issues/{int(issue_id)}/events', params)


def issue_event(issue_id, event_pk, **params):
    return with_query(f'/issues/{int(issue_id)}/events/{int(event_pk)}', params)


def event_json(issue_id, event_pk):
    return f'/issues/{int(issue_id)}/events/{int(event_pk)}/json'


def issue_users(issue_id):
    return f'/issues/{int(issue_id)}/users'


def issue_accounts(issue_id):
    return f'/issues/{int(issue_id)}/accounts'


def favicon():
    return '/favicon.ico'


def org_notifications(org_slug, **params):
    return with_query(f'/orgs/{part(org_slug)}/notifications', params)


def notifications_me(org_slug):
    return f'/orgs/{part(org_slug)}/notifications/me'


def notifications_test(org_slug):
    return f'/orgs/{part(org_slug)}/notifications/test'


def webhooks(org_slug):
    return f'/orgs/{part(org_slug)}/notifications/webhooks'


def webhook(org_slug, webhook_id):
    return f'/orgs/{part(org_slug)}/notifications/webhooks/{int(webhook_id)}'


def deliveries(org_slug, **params):
    return with_query(f'/orgs/{part(org_slug)}/deliveries', params)


def project_releases(project_id, **params):
    return with_query(f'/projects/{int(project_id)}/releases', params)


def release(project_id, release_id):
    return f'/projects/{int(project_id)}/releases/{int(release_id)}'


def release_version(project_id, version, **params):
    # The version rides in the query: release names may hold '/', which a path segment cannot.
    return with_query(f'/projects/{int(project_id)}/releases/show',
                      {'version': version, **params})


def is_local(url):
    """True for a path on this site ('/x'), never for '//host' or 'scheme:' (open redirects)."""
    return (isinstance(url, str) and url.startswith('/') and not url.startswith('//')
            and '\\' not in url and not any(ord(c) < 32 for c in url))
