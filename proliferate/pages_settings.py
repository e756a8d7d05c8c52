"""Settings pages of the issue browser: projects (create, rename, delete), ingest keys and the
install snippets, members and invite links, read-API tokens, and the user's own account.

Handlers only read; each change runs on the writer through Page.call (see pages.py).
"""

import datetime
import re
import secrets

import falcon
from peewee import fn

from proliferate import auth
from proliferate import urls
from proliferate.models import ApiToken
from proliferate.models import DroppedCount
from proliferate.models import Event
from proliferate.models import Invite
from proliferate.models import Issue
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.models import User
from proliferate.pages import MANAGERS
from proliferate.pages import ROLES
from proliferate.pages import FormError
from proliferate.pages import Page
from proliferate.pages import base_url
from proliferate.pages import check_email
from proliferate.pages import check_password

INVITE_LIFETIME = datetime.timedelta(days=7)
# Deleting a project removes its events in slices, each its own writer transaction, so ingest for
# other projects keeps flowing while a big project goes.
DELETE_SLICE = 5000
DROP_REASONS = {
    'rate_limited': 'over the project\'s rate limit',
    'too_large': 'body over the size limit',
    'invalid': 'failed validation',
    'duplicate': 'event_id already stored (SDK retries)',
    'backpressure': 'server busy (writer queue full)',
    'sdk_init': 'SDK start-up pings (not errors)',
}


def slugify(name):
    slug = re.sub(r'[^a-z0-9]+', '-', (name or '').lower()).strip('-')
    return slug[:50] or 'project'


def unique_slug(model, name, org=None):
    """A slug not yet used (per organization for projects): name, name-2, name-3..."""
    base = slugify(name)
    slug = base
    for n in range(2, 1000):
        query = model.select().where(model.slug == slug)
        if org is not None:
            query = query.where(model.organization == org)
        if not query.exists():
            return slug
        slug = f'{base}-{n}'
    return f'{base}-{secrets.token_hex(4)}'


# The documented example's stack, as it appears inside the shell-quoted JSON of the curl snippet.
SEED_STACK = ("TypeError: Cannot read property '\\''foo'\\'' of undefined\\n"
              "    at processData (app.js:42:15)\\n    at handleClick (app.js:120:5)")


def snippets(base, key):
    """The install snippets of an ingest key: curl (the published single-event example), the
    Python SDK (0.2.x and 0.1.x) and the browser SDK. Pure."""
    # The documented example, with the shell making a fresh event_id and timestamp each paste
    # (a repeated event_id would be stored once: SDK retries must not double-count).
    curl = f'''curl -X POST {base}/api/v1/errors \\
  -H "Content-Type: application/json" \\
  -d '{{
    "api_key": "{key}",
    "event_id": "evt_'$(date +%s)$RANDOM'",
    "timestamp": "'$(date -u +%Y-%m-%dT%H:%M:%SZ)'",
    "type": "exception",
    "level": "error",
    "environment": "production",
    "release": "v1.2.3",
    "url": "https://example.com/dashboard",
    "user_agent": "Mozilla/5.0...",
    "exception": {{
      "type": "TypeError",
      "message": "Cannot read property '\\''foo'\\'' of undefined",
      "stack": "{SEED_STACK}"
    }},
    "user": {{
      "id": "user_abc123",
      "email": "jane@example.com"
    }},
    "account": {{
      "id": "acct_xyz789",
      "name": "Acme Corp"
    }},
    "session_id": "sess_abcdef123456",
    "window_id": "win_ghijkl789012",
    "breadcrumbs": [
      {{
        "timestamp": 1736938195000,
        "category": "navigation",
        "message": "Navigated to /dashboard",
        "level": "info"
      }},
      {{
        "timestamp": 1736938198000,
        "category": "click",
        "message": "Clicked button#submit",
        "level": "info",
        "data": {{
          "element": "button#submit"
        }}
      }}
    ],
    "extra": {{
      "component": "Dashboard",
      "props": {{
        "view": "overview"
      }}
    }}
  }}'
'''
    python = f'''pip install 'proliferate-ai>=0.2,<0.3'

import proliferate

proliferate.init(
    api_key='{key}',
    endpoint='{base}/api',  # the SDK posts to {{endpoint}}/v1/errors
    environment='production',
)
'''
    python_01 = f'''proliferate.init(endpoint='{base}/api/v1/errors', api_key='{key}')
'''
    browser = f'''<script src="{base}/static/proliferate.js"></script>
<script>
  Proliferate.init({{ apiKey: '{key}', environment: 'production' }});
</script>
'''
    return {'curl': curl, 'python': python, 'python_01': python_01, 'browser': browser}


# -- writes (each runs on the writer) --------------------------------------------------------


def create_project(org_id, name, now):
    project = Project.create(organization=org_id, name=name[:100],
                             slug=unique_slug(Project, name, org=org_id), created_at=now)
    auth.create_ingest_key(project, label='default')
    return project.id


def save_project(project_id, name, rate_limit):
    Project.update(name=name[:100], rate_limit_per_minute=rate_limit).where(
        Project.id == project_id).execute()


def delete_event_slice(project_id):
    """Deletes up to DELETE_SLICE events of the project -> how many went."""
    ids = Event.select(Event.id).where(Event.project == project_id).limit(DELETE_SLICE)
    return Event.delete().where(Event.id.in_(ids)).execute()


def delete_issue_slice(project_id):
    """Deletes up to DELETE_SLICE / 10 issues of the project (their aggregates cascade) -> count."""
    ids = [row[0] for row in Issue.select(Issue.id).where(Issue.project == project_id)
           .limit(DELETE_SLICE // 10).tuples()]
    return Issue.delete().where(Issue.id.in_(ids)).execute() if ids else 0


def create_key(project_id, label):
    return auth.create_ingest_key(project_id, label=label[:100]).key


def revoke_key(project_id, key_id, now):
    key = ProjectKey.get_or_none(ProjectKey.id == key_id, ProjectKey.project == project_id)
    if key is None:
        return None
    if key.revoked_at is None:
        ProjectKey.update(revoked_at=now).where(ProjectKey.id == key.id).execute()
    return key.key


def create_invite(org_id, role, email, user_id, now):
    token = 'inv_' + secrets.token_urlsafe(24)
    Invite.create(organization=org_id, role=role, email=email or None,
                  token_hash=auth.hash_token(token), created_by=user_id, created_at=now,
                  expires_at=now + INVITE_LIFETIME)
    return token


def find_invite(token, now):
    if not token or len(token) > 200:
        return None
    return (Invite.select(Invite, Organization).join(Organization)
            .where(Invite.token_hash == auth.hash_token(token), Invite.accepted_at.is_null(),
                   Invite.revoked_at.is_null(), Invite.expires_at > now)
            .first())


def accept_invite(token, now, *, user_id=None, new_user=None, ip='', user_agent=''):
    """Runs on the writer: the invite makes user_id (or a new user) a member -> (org slug, session
    cookie or None when the user was already signed in)."""
    invite = find_invite(token, now)
    if invite is None:
        raise FormError('This invite link is no longer valid.')
    session = None
    if user_id is None:
        email, name, password_hash = new_user
        if User.select().where(User.email == email).exists():
            raise FormError('An account with this email exists: sign in first, then open the '
                            'invite link again.')
        user_id = User.create(email=email, name=name, password_hash=password_hash,
                              created_at=now).id
        session = auth.create_session(user_id, now=now, ip=ip, user_agent=user_agent)
    if not Membership.select().where(Membership.organization == invite.organization_id,
                                     Membership.user == user_id).exists():
        Membership.create(organization=invite.organization_id, user=user_id, role=invite.role,
                          created_at=now)
    Invite.update(accepted_at=now, accepted_by=user_id).where(Invite.id == invite.id).execute()
    return invite.organization.slug, session


def owner_count(org_id):
    return Membership.select().where(Membership.organization == org_id,
                                     Membership.role == 'owner').count()


def change_member(org_id, membership_id, action, role, actor):
    """Runs on the writer. actor: the acting Membership. Owners manage everyone; admins manage
    members and admins; nobody removes or demotes the last owner."""
    target = Membership.get_or_none(Membership.id == membership_id,
                                    Membership.organization == org_id)
    if target is None:
        raise falcon.HTTPNotFound()
    is_self = target.user_id == actor.user_id
    if actor.role not in MANAGERS and not (is_self and action == 'remove'):
        raise FormError('Only owners and admins manage members.')
    if actor.role != 'owner' and (target.role == 'owner' or role == 'owner') and not is_self:
        raise FormError('Only an owner can change an owner or make one.')
    if target.role == 'owner' and (action == 'remove' or role != 'owner') \
            and owner_count(org_id) <= 1:
        raise FormError('An organization keeps at least one owner.')
    if action == 'remove':
        target.delete_instance()
        return 'removed'
    if role not in ROLES:
        raise FormError('Unknown role.')
    if actor.role != 'owner' and role == 'owner':
        raise FormError('Only an owner can make an owner.')
    Membership.update(role=role).where(Membership.id == target.id).execute()
    return 'saved'


def create_read_token(user_id, org_id, name):
    token, _row = auth.create_token(user_id, org_id, name=name[:100])
    return token


def revoke_token(user_id, token_id, now):
    return (ApiToken.update(revoked_at=now)
            .where(ApiToken.id == token_id, ApiToken.user == user_id,
                   ApiToken.revoked_at.is_null())
            .execute())


# -- resources -------------------------------------------------------------------------------


def parse_rate_limit(text):
    if text == '':
        return None
    if not text.isdigit() or int(text) > 10_000_000:
        raise FormError('The rate limit is a whole number of events per minute (0: no limit; '
                        'empty: the server default).')
    return int(text)


class OrganizationPages(Page):
    """/orgs/{slug}/projects and /orgs/{slug}/members (+ invites)."""

    @falcon.before(auth.require_login)
    def on_get_projects(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug)
        self.show_projects(req, resp, org, membership)

    def show_projects(self, req, resp, org, membership, *, error=None, status=falcon.HTTP_200):
        projects = list(Project.select().where(Project.organization == org.id)
                        .order_by(Project.name, Project.id))
        stats = {}
        if projects:
            ids = [p.id for p in projects]
            # Issue rows only (the writer keeps their counts): no event is counted here.
            query = (Issue.select(Issue.project, fn.COUNT(Issue.id), fn.MAX(Issue.last_seen))
                     .where(Issue.project.in_(ids), Issue.status == 'unresolved')
                     .group_by(Issue.project).tuples())
            stats = {project_id: (count, last) for project_id, count, last in query}
        self.render(req, resp, 'project_list.html', status=status, org=org, projects=projects,
                    stats=stats, can_manage=membership.role in MANAGERS, error=error)

    @falcon.before(auth.require_login)
    def on_post_projects(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug, roles=MANAGERS)
        form = self.form(req)
        name = form.get('name', limit=100)
        if not name:
            self.show_projects(req, resp, org, membership, error='Name the project.',
                               status=falcon.HTTP_400)
            return
        project_id = self.call(lambda: create_project(org.id, name, self.clock()))
        raise falcon.HTTPSeeOther(urls.project_settings(project_id, welcome=1))

    @falcon.before(auth.require_login)
    def on_get_members(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug)
        self.show_members(req, resp, org, membership)

    def show_members(self, req, resp, org, membership, *, error=None, invite_link=None,
                     status=falcon.HTTP_200):
        members = list(Membership.select(Membership, User).join(User)
                       .where(Membership.organization == org.id)
                       .order_by(User.email))
        can_manage = membership.role in MANAGERS
        invites = []
        if can_manage:
            invites = list(Invite.select().where(
                Invite.organization == org.id, Invite.accepted_at.is_null(),
                Invite.revoked_at.is_null(), Invite.expires_at > self.clock())
                .order_by(Invite.created_at.desc()))
        self.render(req, resp, 'member_list.html', status=status, org=org, members=members,
                    me=membership, can_manage=can_manage, invites=invites, error=error,
                    invite_link=invite_link, roles=ROLES)

    @falcon.before(auth.require_login)
    def on_post_member(self, req, resp, org_slug, membership_id):
        org, membership = self.org_for(req, org_slug)
        form = self.form(req)
        action = 'remove' if form.get('action') == 'remove' else 'role'
        role = form.get('role')
        try:
            done = self.call(lambda: change_member(org.id, membership_id, action, role, membership))
        except FormError as error:
            self.show_members(req, resp, org, membership, error=str(error),
                              status=falcon.HTTP_400)
            return
        if done == 'removed' and membership.id == membership_id:
            raise falcon.HTTPSeeOther(urls.home())
        raise falcon.HTTPSeeOther(urls.with_query(
            urls.org_members(org.slug), {'notice': 'member_removed' if done == 'removed'
                                         else 'member_saved'}))

    @falcon.before(auth.require_login)
    def on_post_invites(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug, roles=MANAGERS)
        form = self.form(req)
        role = form.get('role') or 'member'
        email = auth.normalize_email(form.get('email'))
        try:
            if role not in ROLES or (role == 'owner' and membership.role != 'owner'):
                raise FormError('Choose a role you may give.')
            if email:
                check_email(email)
        except FormError as error:
            self.show_members(req, resp, org, membership, error=str(error),
                              status=falcon.HTTP_400)
            return
        user_id = membership.user_id
        token = self.call(lambda: create_invite(org.id, role, email, user_id, self.clock()))
        # Shown once, on this response: only the token's hash is stored.
        self.show_members(req, resp, org, membership,
                          invite_link=base_url(req, self.config) + urls.invite(token))

    @falcon.before(auth.require_login)
    def on_post_invite_revoke(self, req, resp, org_slug, invite_id):
        org, _membership = self.org_for(req, org_slug, roles=MANAGERS)
        now = self.clock()
        self.call(lambda: Invite.update(revoked_at=now).where(
            Invite.id == invite_id, Invite.organization == org.id).execute())
        raise falcon.HTTPSeeOther(urls.with_query(urls.org_members(org.slug),
                                                  {'notice': 'invite_revoked'}))


class InvitePage(Page):
    """/invite/{token}: join an organization, creating an account when needed."""

    def on_get(self, req, resp, token):
        self.show(req, resp, token)

    def show(self, req, resp, token, *, error=None, values=None, status=falcon.HTTP_200):
        invite = find_invite(token, self.clock())
        if invite is None:
            raise falcon.HTTPNotFound(
                title='Invite not valid',
                description='This invite link was used, revoked or has expired. Ask for a new one.')
        values = values or {'email': invite.email or '', 'name': ''}
        self.render(req, resp, 'invite_accept.html', status=status, invite=invite,
                    org=invite.organization if auth.current_user(req) else None,
                    token=token, error=error, values=values)

    def on_post(self, req, resp, token):
        form = self.form(req)
        now = self.clock()
        user = auth.current_user(req)
        values = {'email': auth.normalize_email(form.get('email')), 'name': form.get('name')}
        ip, agent = auth.client_ip(req), req.user_agent or ''
        try:
            if user is not None:
                slug, session = self.call(lambda: accept_invite(token, now, user_id=user.id))
            else:
                check_email(values['email'])
                password = form.get('password', strip=False)
                check_password(password, form.get('password_confirm', strip=False))
                new_user = (values['email'], values['name'][:100], auth.hash_password(password))
                slug, session = self.call(lambda: accept_invite(
                    token, now, new_user=new_user, ip=ip, user_agent=agent))
        except FormError as error:
            self.show(req, resp, token, error=str(error), values=values, status=falcon.HTTP_400)
            return
        if session:
            auth.set_session_cookie(req, resp, session)
        raise falcon.HTTPSeeOther(urls.with_query(urls.org_issues(slug), {'notice': 'joined'}))


class ProjectPages(Page):
    """/projects/{id}/settings, /delete, /keys, /keys/{key_id}/revoke."""

    @falcon.before(auth.require_login)
    def on_get_settings(self, req, resp, project_id):
        project, membership = self.project_for(req, project_id)
        self.show(req, resp, project, membership)

    def show(self, req, resp, project, membership, *, error=None, status=falcon.HTTP_200):
        keys = list(ProjectKey.select().where(ProjectKey.project == project.id)
                    .order_by(ProjectKey.revoked_at.is_null(False), ProjectKey.id))
        active = [k for k in keys if k.revoked_at is None]
        chosen = active[0] if active else None
        wanted = req.get_param_as_int('key')
        for key in active:
            if key.id == wanted:
                chosen = key
        dropped = list(DroppedCount.select().where(DroppedCount.project == project.id)
                       .order_by(DroppedCount.count.desc()))
        self.render(
            req, resp, 'project_settings.html', status=status, org=project.organization,
            project=project, keys=keys, chosen=chosen, error=error,
            snippets=snippets(base_url(req, self.config), chosen.key) if chosen else None,
            dropped=dropped, drop_reasons=DROP_REASONS, can_manage=membership.role in MANAGERS,
            welcome=req.get_param('welcome') == '1',
            default_rate_limit=self.config.rate_limit_per_minute)

    @falcon.before(auth.require_login)
    def on_post_settings(self, req, resp, project_id):
        project, membership = self.project_for(req, project_id, roles=MANAGERS)
        form = self.form(req)
        name = form.get('name', limit=100)
        try:
            if not name:
                raise FormError('A project needs a name.')
            rate_limit = parse_rate_limit(form.get('rate_limit_per_minute'))
        except FormError as error:
            self.show(req, resp, project, membership, error=str(error), status=falcon.HTTP_400)
            return
        self.call(lambda: save_project(project.id, name, rate_limit))
        # The ingest key cache holds the project's rate limit: drop it so the new one applies now.
        self.keys.forget()
        raise falcon.HTTPSeeOther(urls.project_settings(project.id, notice='project_saved'))

    @falcon.before(auth.require_login)
    def on_get_delete(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        self.render(req, resp, 'project_delete.html', org=project.organization, project=project,
                    error=None)

    @falcon.before(auth.require_login)
    def on_post_delete(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        form = self.form(req)
        if form.get('confirm') != project.name:
            self.render(req, resp, 'project_delete.html', status=falcon.HTTP_400,
                        org=project.organization, project=project,
                        error='Type the project name exactly to confirm.')
            return
        now = self.clock()
        keys = [k.key for k in ProjectKey.select().where(ProjectKey.project == project.id)]
        # Keys first, so that nothing new arrives while the events go.
        self.call(lambda: ProjectKey.update(revoked_at=now).where(
            ProjectKey.project == project.id, ProjectKey.revoked_at.is_null()).execute())
        for key in keys:
            self.keys.forget(key)
        # Bounded loops: 100,000 slices cover 500 million events, 50 million issues.
        for _slice in range(100_000):
            if self.call(lambda: delete_event_slice(project.id)) < DELETE_SLICE:
                break
        for _slice in range(100_000):
            if self.call(lambda: delete_issue_slice(project.id)) < DELETE_SLICE // 10:
                break
        self.call(lambda: Project.delete().where(Project.id == project.id).execute())
        raise falcon.HTTPSeeOther(urls.with_query(urls.org_projects(project.organization.slug),
                                                  {'notice': 'project_deleted'}))

    @falcon.before(auth.require_login)
    def on_post_keys(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        label = self.form(req).get('label', limit=100)
        self.call(lambda: create_key(project.id, label))
        raise falcon.HTTPSeeOther(urls.project_settings(project.id, notice='key_created'))

    @falcon.before(auth.require_login)
    def on_post_key_revoke(self, req, resp, project_id, key_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        key = self.call(lambda: revoke_key(project.id, key_id, self.clock()))
        if key is None:
            raise falcon.HTTPNotFound()
        # The ingest key cache would trust the key for a few more seconds: not after a revoke.
        self.keys.forget(key)
        raise falcon.HTTPSeeOther(urls.project_settings(project.id, notice='key_revoked'))


class Tokens(Page):
    """/tokens: the user's read-API tokens (shown once at creation) and their revocation."""

    @falcon.before(auth.require_login)
    def on_get(self, req, resp):
        self.show(req, resp)

    def show(self, req, resp, *, new_token=None, error=None, status=falcon.HTTP_200):
        user = auth.current_user(req)
        tokens = list(ApiToken.select(ApiToken, Organization).join(Organization)
                      .where(ApiToken.user == user.id, ApiToken.kind == 'read')
                      .order_by(ApiToken.revoked_at.is_null(False), ApiToken.id.desc()))
        if new_token is not None:
            resp.set_header('Cache-Control', 'no-store')
        self.render(req, resp, 'token_list.html', status=status, tokens=tokens,
                    new_token=new_token, error=error,
                    api_base=base_url(req, self.config) + '/api/v1')

    @falcon.before(auth.require_login)
    def on_post(self, req, resp):
        user = auth.current_user(req)
        form = self.form(req)
        name = form.get('name', limit=100)
        org_id = form.get('organization')
        memberships = {str(m.organization_id): m for m in self.memberships(req)}
        if org_id not in memberships:
            if len(memberships) == 1:
                org_id = next(iter(memberships))
            else:
                self.show(req, resp, error='Choose an organization.', status=falcon.HTTP_400)
                return
        org = int(org_id)
        token = self.call(lambda: create_read_token(user.id, org, name))
        self.show(req, resp, new_token=token)

    @falcon.before(auth.require_login)
    def on_post_revoke(self, req, resp, token_id):
        user = auth.current_user(req)
        if not self.call(lambda: revoke_token(user.id, token_id, self.clock())):
            raise falcon.HTTPNotFound()
        raise falcon.HTTPSeeOther(urls.with_query(urls.tokens(), {'notice': 'token_revoked'}))


class Account(Page):
    """/account: name, password, signing out other sessions."""

    @falcon.before(auth.require_login)
    def on_get(self, req, resp):
        self.render(req, resp, 'account.html', error=None)

    @falcon.before(auth.require_login)
    def on_post(self, req, resp):
        user = auth.current_user(req)
        form = self.form(req)
        action = form.get('action')
        keep = auth.session_token(req)
        if action == 'sign_out_others':
            self.call(lambda: auth.delete_user_sessions(user.id, keep_token=keep))
            raise falcon.HTTPSeeOther(urls.with_query(urls.account(),
                                                      {'notice': 'signed_out_elsewhere'}))
        if action == 'password':
            try:
                if not auth.verify_password(user.password_hash,
                                            form.get('current_password', strip=False)):
                    raise FormError('The current password is wrong.')
                password = form.get('password', strip=False)
                check_password(password, form.get('password_confirm', strip=False))
            except FormError as error:
                self.render(req, resp, 'account.html', status=falcon.HTTP_400, error=str(error))
                return
            password_hash = auth.hash_password(password)

            def change():
                User.update(password_hash=password_hash).where(User.id == user.id).execute()
                auth.delete_user_sessions(user.id, keep_token=keep)

            self.call(change)
            raise falcon.HTTPSeeOther(urls.with_query(urls.account(),
                                                      {'notice': 'password_changed'}))
        name = form.get('name', limit=100)
        self.call(lambda: User.update(name=name).where(User.id == user.id).execute())
        raise falcon.HTTPSeeOther(urls.with_query(urls.account(), {'notice': 'account_saved'}))


def add_routes(app, templates, deps):
    r = urls.ROUTES
    orgs = OrganizationPages(templates, **deps)
    app.add_route(r['org_projects'], orgs, suffix='projects')
    app.add_route(r['org_members'], orgs, suffix='members')
    app.add_route(r['member'], orgs, suffix='member')
    app.add_route(r['org_invites'], orgs, suffix='invites')
    app.add_route(r['invite_revoke'], orgs, suffix='invite_revoke')
    app.add_route(r['invite'], InvitePage(templates, **deps))
    projects = ProjectPages(templates, **deps)
    app.add_route(r['project_settings'], projects, suffix='settings')
    app.add_route(r['project_delete'], projects, suffix='delete')
    app.add_route(r['project_keys'], projects, suffix='keys')
    app.add_route(r['key_revoke'], projects, suffix='key_revoke')
    tokens = Tokens(templates, **deps)
    app.add_route(r['tokens'], tokens)
    app.add_route(r['token_revoke'], tokens, suffix='revoke')
    app.add_route(r['account'], Account(templates, **deps))
