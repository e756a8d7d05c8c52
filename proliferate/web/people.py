"""People pages of the issue browser: an organization's members and roles, invite links (shown
once, only their hash stored), joining through one, the user's API and upload tokens, and the user's
own account (name, password, other sessions).

Handlers only read; each change runs on the writer through Page.call (see pages.py).
"""


import falcon
from peewee import JOIN

from proliferate import auth
from proliferate import orgs
from proliferate.models import ApiToken
from proliferate.models import Invite
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import User
from proliferate.orgs import MANAGERS
from proliferate.orgs import ROLES
from proliferate.web import guard
from proliferate.web import templating
from proliferate.web import urls
from proliferate.web.base import Page
from proliferate.web.base import base_url

# -- writes (each runs on the writer) --------------------------------------------------------


# -- resources -------------------------------------------------------------------------------


class Members(Page):
    """/orgs/{slug}/members: members and their roles; invites (create, revoke)."""

    @falcon.before(guard.require_login)
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

    @falcon.before(guard.require_login)
    def on_post_member(self, req, resp, org_slug, membership_id):
        org, membership = self.org_for(req, org_slug)
        form = self.form(req)
        action = 'remove' if form.get('action') == 'remove' else 'role'
        role = form.get('role')
        try:
            done = self.call(lambda: orgs.change_member(org.id, membership_id, action, role,
                                                        membership))
        except orgs.NotFound:
            raise falcon.HTTPNotFound() from None
        except orgs.Refused as error:
            self.show_members(req, resp, org, membership, error=str(error),
                              status=falcon.HTTP_400)
            return
        if done == 'removed' and membership.id == membership_id:
            raise falcon.HTTPSeeOther(urls.home())
        raise falcon.HTTPSeeOther(urls.with_query(
            urls.org_members(org.slug), {'notice': 'member_removed' if done == 'removed'
                                         else 'member_saved'}))

    @falcon.before(guard.require_login)
    def on_post_invites(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug, roles=MANAGERS)
        form = self.form(req)
        role = form.get('role') or 'member'
        email = auth.normalize_email(form.get('email'))
        try:
            if role not in ROLES or (role == 'owner' and membership.role != 'owner'):
                raise orgs.Refused('Choose a role you may give.')
            if email:
                orgs.check_email(email)
        except orgs.Refused as error:
            self.show_members(req, resp, org, membership, error=str(error),
                              status=falcon.HTTP_400)
            return
        user_id = membership.user_id
        token = self.call(lambda: orgs.create_invite(org.id, role, email, user_id, self.clock()))
        # Shown once, on this response: only the token's hash is stored.
        self.show_members(req, resp, org, membership,
                          invite_link=base_url(req, self.config) + urls.invite(token))

    @falcon.before(guard.require_login)
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
        invite = orgs.find_invite(token, self.clock())
        if invite is None:
            raise falcon.HTTPNotFound(
                title='Invite not valid',
                description='This invite link was used, revoked or has expired. Ask for a new one.')
        values = values or {'email': invite.email or '', 'name': ''}
        self.render(req, resp, 'invite_accept.html', status=status, invite=invite,
                    org=invite.organization if guard.current_user(req) else None,
                    token=token, error=error, values=values)

    def on_post(self, req, resp, token):
        form = self.form(req)
        now = self.clock()
        user = guard.current_user(req)
        values = {'email': auth.normalize_email(form.get('email')), 'name': form.get('name')}
        ip, agent = guard.client_ip(req), req.user_agent or ''
        try:
            if user is not None:
                slug, session = self.call(lambda: orgs.accept_invite(token, now, user_id=user.id))
            else:
                orgs.check_email(values['email'])
                password = form.get('password', strip=False)
                orgs.check_password(password, form.get('password_confirm', strip=False))
                new_user = (values['email'], values['name'][:100], auth.hash_password(password))
                slug, session = self.call(lambda: orgs.accept_invite(
                    token, now, new_user=new_user, ip=ip, user_agent=agent))
        except orgs.Refused as error:
            self.show(req, resp, token, error=str(error), values=values, status=falcon.HTTP_400)
            return
        if session:
            guard.set_session_cookie(req, resp, session)
        raise falcon.HTTPSeeOther(urls.with_query(urls.org_issues(slug), {'notice': 'joined'}))


class Tokens(Page):
    """/tokens: the user's tokens, read-API (made here, shown once) and upload (made on a
    project's page), with their last use, and their revocation."""

    @falcon.before(guard.require_login)
    def on_get(self, req, resp):
        self.show(req, resp)

    def show(self, req, resp, *, new_token=None, error=None, status=falcon.HTTP_200):
        user = guard.current_user(req)
        # Both kinds the user made: read tokens here, upload tokens on a project's Keys & setup
        # page (listed here too, so one page answers "which of my tokens are still live").
        tokens = list(ApiToken.select(ApiToken, Organization, Project).join(Organization)
                      .switch(ApiToken).join(Project, JOIN.LEFT_OUTER)
                      .where(ApiToken.user == user.id)
                      .order_by(ApiToken.revoked_at.is_null(False), ApiToken.id.desc()))
        if new_token is not None:
            resp.set_header('Cache-Control', 'no-store')
        self.render(req, resp, 'token_list.html', status=status, tokens=tokens,
                    new_token=new_token, error=error,
                    api_base=base_url(req, self.config) + '/api/v1',
                    openapi_url=urls.openapi())

    @falcon.before(guard.require_login)
    def on_post(self, req, resp):
        user = guard.current_user(req)
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
        token = self.call(lambda: orgs.create_read_token(user.id, org, name))
        self.show(req, resp, new_token=token)

    @falcon.before(guard.require_login)
    def on_post_revoke(self, req, resp, token_id):
        user = guard.current_user(req)
        if not self.call(lambda: orgs.revoke_token(user.id, token_id, self.clock())):
            raise falcon.HTTPNotFound()
        raise falcon.HTTPSeeOther(urls.with_query(urls.tokens(), {'notice': 'token_revoked'}))


def display_choice(form):
    """(theme, time zone name or None) from the account page's display form; orgs.Refused names
    what is wrong."""
    theme = form.get('theme') or 'system'
    if theme not in templating.THEMES:
        raise orgs.Refused('Choose a theme: system, light or dark.')
    name = form.get('timezone', limit=200)
    if not name:
        return theme, None
    if templating.zone(name) is None:
        raise orgs.Refused(f'Unknown time zone: {name[:64]}. Use a name such as Europe/Paris, '
                           'or leave it empty for the browser\'s.')
    return theme, name


class Account(Page):
    """/account: name, password, signing out other sessions, theme and time zone."""

    @falcon.before(guard.require_login)
    def on_get(self, req, resp):
        self.show(req, resp)

    def show(self, req, resp, *, error=None, status=falcon.HTTP_200):
        self.render(req, resp, 'account.html', status=status, error=error,
                    themes=templating.THEMES, zones=templating.zone_names())

    @falcon.before(guard.require_login)
    def on_post(self, req, resp):
        user = guard.current_user(req)
        form = self.form(req)
        action = form.get('action')
        keep = guard.session_token(req)
        if action == 'sign_out_others':
            self.call(lambda: auth.delete_user_sessions(user.id, keep_token=keep))
            raise falcon.HTTPSeeOther(urls.with_query(urls.account(),
                                                      {'notice': 'signed_out_elsewhere'}))
        if action == 'password':
            try:
                if not auth.verify_password(user.password_hash,
                                            form.get('current_password', strip=False)):
                    raise orgs.Refused('The current password is wrong.')
                password = form.get('password', strip=False)
                orgs.check_password(password, form.get('password_confirm', strip=False))
            except orgs.Refused as error:
                self.show(req, resp, error=str(error), status=falcon.HTTP_400)
                return
            password_hash = auth.hash_password(password)

            def change():
                User.update(password_hash=password_hash).where(User.id == user.id).execute()
                auth.delete_user_sessions(user.id, keep_token=keep)

            self.call(change)
            raise falcon.HTTPSeeOther(urls.with_query(urls.account(),
                                                      {'notice': 'password_changed'}))
        if action == 'display':
            try:
                theme, zone_name = display_choice(form)
            except orgs.Refused as error:
                self.show(req, resp, error=str(error), status=falcon.HTTP_400)
                return
            self.call(lambda: User.update(theme=theme, timezone=zone_name)
                      .where(User.id == user.id).execute())
            raise falcon.HTTPSeeOther(urls.with_query(urls.account(),
                                                      {'notice': 'display_saved'}))
        name = form.get('name', limit=100)
        self.call(lambda: User.update(name=name).where(User.id == user.id).execute())
        raise falcon.HTTPSeeOther(urls.with_query(urls.account(), {'notice': 'account_saved'}))
