"""First run and signing in: the home redirect, the setup form (first admin, organization and
project), login with throttling, and logout."""

import falcon

from proliferate import auth
from proliferate import orgs
from proliferate.models import User
from proliferate.web import guard
from proliferate.web import urls
from proliferate.web.base import Page


class Home(Page):
    def on_get(self, req, resp):
        if not User.select().exists():
            raise falcon.HTTPSeeOther(urls.setup())
        if guard.current_user(req) is None:
            raise falcon.HTTPSeeOther(urls.login())
        memberships = self.memberships(req)
        if memberships:
            raise falcon.HTTPSeeOther(urls.org_issues(memberships[0].organization.slug))
        self.render(req, resp, 'no_org.html')


class Setup(Page):
    """First run: the first admin, the organization and the first project, in one form."""

    def on_get(self, req, resp):
        if User.select().exists():
            raise falcon.HTTPSeeOther(urls.home())
        self.render(req, resp, 'setup.html', error=None, values={})

    def on_post(self, req, resp):
        form = self.form(req)
        values = {name: form.get(name) for name in ('email', 'name', 'org_name', 'project_name')}
        password = form.get('password', strip=False)
        try:
            orgs.check_email(values['email'])
            orgs.check_password(password, form.get('password_confirm', strip=False))
            if not values['org_name']:
                raise orgs.Refused('Name your organization.')
            if not values['project_name']:
                raise orgs.Refused('Name your first project.')
            # Hashed here, off the writer: Argon2 is slow on purpose.
            password_hash = auth.hash_password(password)
            ip, agent = guard.client_ip(req), req.user_agent or ''
            project_id, token = self.call(lambda: orgs.create_first_admin(
                values, password_hash, ip=ip, user_agent=agent, now=self.clock()))
        except orgs.Refused as error:
            if User.select().exists():
                raise falcon.HTTPSeeOther(urls.home()) from error
            self.render(req, resp, 'setup.html', status=falcon.HTTP_400, error=str(error),
                        values=values)
            return
        guard.set_session_cookie(req, resp, token)
        raise falcon.HTTPSeeOther(urls.project_settings(project_id, welcome=1))


class Login(Page):
    def on_get(self, req, resp):
        next_url = req.get_param('next')
        if guard.current_user(req) is not None:
            raise falcon.HTTPSeeOther(next_url if urls.is_local(next_url) else urls.home())
        if not User.select().exists():
            raise falcon.HTTPSeeOther(urls.setup())
        self.render(req, resp, 'login.html', error=None, email='',
                    next=next_url if urls.is_local(next_url) else '')

    def on_post(self, req, resp):
        form = self.form(req)
        email = auth.normalize_email(form.get('email'))
        password = form.get('password', strip=False, limit=1000)
        next_url = form.get('next')
        next_url = next_url if urls.is_local(next_url) else ''
        ip = guard.client_ip(req)
        now = self.clock()
        wait = auth.login_retry_after(email, ip, now)
        if wait:
            resp.set_header('Retry-After', str(wait))
            minutes = max(1, round(wait / 60))
            self.render(req, resp, 'login.html', status=falcon.HTTP_429, email=email,
                        next=next_url,
                        error=f'Too many failed sign-ins. Try again in about {minutes} min.')
            return
        user = auth.authenticate(email, password)
        if user is None:
            self.call(lambda: auth.record_failed_login(email, ip, now))
            self.render(req, resp, 'login.html', status=falcon.HTTP_400, email=email,
                        next=next_url, error='Wrong email or password.')
            return
        old = guard.session_token(req)
        agent = req.user_agent or ''

        def login():
            auth.clear_failed_logins(email)
            # A new id at every login: a session id planted before login is worth nothing.
            auth.delete_session(old)
            return auth.create_session(user.id, now=now, ip=ip, user_agent=agent)

        guard.set_session_cookie(req, resp, self.call(login))
        raise falcon.HTTPSeeOther(next_url or urls.home())


class Logout(Page):
    def on_post(self, req, resp):
        token = guard.session_token(req)
        if token:
            self.call(lambda: auth.delete_session(token))
        guard.clear_session_cookie(resp)
        raise falcon.HTTPSeeOther(urls.login())
