"""The one route table of the issue browser: every page's name, path template, resource and
responder suffix. urls.py has a builder of the same name for each (a test holds them together)."""

from proliferate.web import base
from proliferate.web import issues
from proliferate.web import notifications
from proliferate.web import people
from proliferate.web import projects
from proliferate.web import releases
from proliferate.web import session

# (name, Falcon route template, resource class, responder suffix or None). One resource object
# serves every row of its class.
ROUTES = (
    ('home', '/', session.Home, None),
    ('setup', '/setup', session.Setup, None),
    ('login', '/login', session.Login, None),
    ('logout', '/logout', session.Logout, None),
    ('favicon', '/favicon.ico', base.Favicon, None),
    ('account', '/account', people.Account, None),
    ('tokens', '/tokens', people.Tokens, None),
    ('token_revoke', '/tokens/{token_id:int}/revoke', people.Tokens, 'revoke'),
    ('invite', '/invite/{token}', people.InvitePage, None),
    ('org_issues', '/orgs/{org_slug}/issues', issues.Issues, 'org'),
    ('org_projects', '/orgs/{org_slug}/projects', projects.Projects, 'projects'),
    ('org_members', '/orgs/{org_slug}/members', people.Members, 'members'),
    ('member', '/orgs/{org_slug}/members/{membership_id:int}', people.Members, 'member'),
    ('org_invites', '/orgs/{org_slug}/invites', people.Members, 'invites'),
    ('invite_revoke', '/orgs/{org_slug}/invites/{invite_id:int}/revoke', people.Members,
     'invite_revoke'),
    ('org_notifications', '/orgs/{org_slug}/notifications', notifications.NotificationPages,
     None),
    ('notifications_me', '/orgs/{org_slug}/notifications/me', notifications.NotificationPages,
     'me'),
    ('notifications_test', '/orgs/{org_slug}/notifications/test',
     notifications.NotificationPages, 'test'),
    ('webhooks', '/orgs/{org_slug}/notifications/webhooks', notifications.NotificationPages,
     'webhooks'),
    ('webhook', '/orgs/{org_slug}/notifications/webhooks/{webhook_id:int}',
     notifications.NotificationPages, 'webhook'),
    ('deliveries', '/orgs/{org_slug}/deliveries', notifications.NotificationPages, 'deliveries'),
    ('project_issues', '/projects/{project_id:int}/issues', issues.Issues, 'project'),
    ('project_settings', '/projects/{project_id:int}/settings', projects.ProjectItem,
     'settings'),
    ('project_delete', '/projects/{project_id:int}/delete', projects.ProjectItem, 'delete'),
    ('project_keys', '/projects/{project_id:int}/keys', projects.ProjectItem, 'keys'),
    ('key_revoke', '/projects/{project_id:int}/keys/{key_id:int}/revoke', projects.ProjectItem,
     'key_revoke'),
    ('upload_tokens', '/projects/{project_id:int}/upload-tokens', projects.ProjectItem,
     'upload_tokens'),
    ('upload_token_revoke', '/projects/{project_id:int}/upload-tokens/{token_id:int}/revoke',
     projects.ProjectItem, 'upload_token_revoke'),
    ('project_releases', '/projects/{project_id:int}/releases', releases.Releases, None),
    ('release', '/projects/{project_id:int}/releases/{release_id:int}', releases.Releases,
     'item'),
    ('release_version', '/projects/{project_id:int}/releases/show', releases.Releases, 'version'),
    ('issues_bulk', '/issues/bulk', issues.Issues, 'bulk'),
    ('issues_bulk_undo', '/issues/bulk/{change_id:int}/undo', issues.Issues, 'undo'),
    ('saved_searches', '/orgs/{org_slug}/searches', issues.Issues, 'searches'),
    ('saved_search_delete', '/searches/{search_id:int}/delete', issues.Issues, 'search_delete'),
    ('issue', '/issues/{issue_id:int}', issues.Issue, None),
    ('issue_status', '/issues/{issue_id:int}/status', issues.Issue, 'status'),
    ('issue_assign', '/issues/{issue_id:int}/assign', issues.Issue, 'assign'),
    ('issue_comments', '/issues/{issue_id:int}/comments', issues.Issue, 'comments'),
    ('comment_edit', '/comments/{comment_id:int}/edit', issues.Issue, 'comment_edit'),
    ('comment_delete', '/comments/{comment_id:int}/delete', issues.Issue, 'comment_delete'),
    ('issue_merge', '/issues/{issue_id:int}/merge', issues.Issue, 'merge'),
    ('issue_unmerge', '/issues/{issue_id:int}/unmerge', issues.Issue, 'unmerge'),
    ('issue_events', '/issues/{issue_id:int}/events', issues.Issue, 'events'),
    ('issue_event', '/issues/{issue_id:int}/events/{event_pk:int}', issues.Issue, 'event'),
    ('event_json', '/issues/{issue_id:int}/events/{event_pk:int}/json', issues.Issue, 'json'),
    ('issue_users', '/issues/{issue_id:int}/users', issues.Issue, 'users'),
    ('issue_accounts', '/issues/{issue_id:int}/accounts', issues.Issue, 'accounts'),
)


def add_routes(app, deps):
    """Wire every page into app, one resource object per class."""
    resources = {}
    for _name, template, resource_class, suffix in ROUTES:
        if resource_class not in resources:
            resources[resource_class] = resource_class(deps)
        app.add_route(template, resources[resource_class], suffix=suffix)
