"""One function per page URL of the issue browser, used by routes, templates and redirects.

Pure: no I/O. ROUTES holds the route templates next to the functions that build the same paths.
"""

from urllib.parse import parse_qsl
from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urlsplit

# name -> Falcon route template; pages.add_routes() wires them and tests/test_pages.py checks that
# every function below builds a path its route accepts.
ROUTES = {
    'home': '/',
    'setup': '/setup',
    'login': '/login',
    'logout': '/logout',
    'account': '/account',
    'tokens': '/tokens',
    'token_revoke': '/tokens/{token_id:int}/revoke',
    'invite': '/invite/{token}',
    'org_issues': '/orgs/{org_slug}/issues',
    'org_projects': '/orgs/{org_slug}/projects',
    'org_members': '/orgs/{org_slug}/members',
    'member': '/orgs/{org_slug}/members/{membership_id:int}',
    'org_invites': '/orgs/{org_slug}/invites',
    'invite_revoke': '/orgs/{org_slug}/invites/{invite_id:int}/revoke',
    'project_issues': '/projects/{project_id:int}/issues',
    'project_settings': '/projects/{project_id:int}/settings',
    'project_delete': '/projects/{project_id:int}/delete',
    'project_keys': '/projects/{project_id:int}/keys',
    'key_revoke': '/projects/{project_id:int}/keys/{key_id:int}/revoke',
    'issues_bulk': '/issues/bulk',
    'issue': '/issues/{issue_id:int}',
    'issue_status': '/issues/{issue_id:int}/status',
    'issue_events': '/issues/{issue_id:int}/events',
    'issue_event': '/issues/{issue_id:int}/events/{event_pk:int}',
    'event_json': '/issues/{issue_id:int}/events/{event_pk:int}/json',
    'issue_users': '/issues/{issue_id:int}/users',
    'issue_accounts': '/issues/{issue_id:int}/accounts',
}


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


def issues_bulk():
    return '/issues/bulk'


def issue(issue_id, **params):
    return with_query(f'/issues/{int(issue_id)}', params)


def issue_status(issue_id):
    return f'/issues/{int(issue_id)}/status'


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


# Pages wired by other modules (their routes live there); here for the navigation.

def org_notifications(org_slug):
    return f'/orgs/{part(org_slug)}/notifications'


def project_releases(project_id):
    return f'/projects/{int(project_id)}/releases'


def is_local(url):
    """True for a path on this site ('/x'), never for '//host' or 'scheme:' (open redirects)."""
    return (isinstance(url, str) and url.startswith('/') and not url.startswith('//')
            and '\\' not in url and not any(ord(c) < 32 for c in url))
