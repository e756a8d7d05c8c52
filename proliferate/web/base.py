"""The issue browser's HTML resources: what every page shares (context, access checks, forms,
security headers, error pages), first-run setup, login and logout, and the route table.

Pages read; every write goes through writer.call so that only the writer thread writes. The
issue pages live in issues.py, the project pages in projects.py, members, invites,
tokens and the account in people.py.
"""

import re

import falcon

from proliferate import auth
from proliferate.web import templating
from proliferate.web import urls
from proliferate.times import utcnow
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import User

ROLES = ('owner', 'admin', 'member')
MANAGERS = ('owner', 'admin')
MIN_PASSWORD = 8

# Messages shown after a redirect (?notice=...): fixed texts, so a link cannot put words on a page.
NOTICES = {
    'resolved': 'Issue resolved.',
    'ignored': 'Issue ignored.',
    'unresolved': 'Issue reopened.',
    'bulk': 'Issues updated.',
    'project_saved': 'Project saved.',
    'project_deleted': 'Project deleted.',
    'key_created': 'A new ingest key was created.',
    'key_revoked': 'The key was revoked; events sent with it are refused from now on.',
    'token_revoked': 'The token was revoked.',
    'member_saved': 'Member updated.',
    'member_removed': 'Member removed.',
    'invite_revoked': 'Invite revoked.',
    'joined': 'Welcome! You are now a member.',
    'account_saved': 'Account saved.',
    'password_changed': 'Password changed; your other sessions were signed out.',
    'signed_out_elsewhere': 'Your other sessions were signed out.',
}

# Content-Security-Policy of every page: scripts and styles only from this server's files (no
# inline script or style, no eval), no plugins, no framing, forms post only here.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = {
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'same-origin',
}
INGEST_PREFIXES = ('/api/v1/errors', '/v1/')
_HOST = re.compile(r'^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$')


class FormError(Exception):
    """A form's input was refused; the message is shown above the form."""


class Form:
    """The posted fields of a urlencoded form (already parsed by the CSRF check)."""

    def __init__(self, media):
        self.media = media if isinstance(media, dict) else {}

    def get(self, name, default='', *, limit=1000, strip=True):
        value = self.media.get(name, default)
        if isinstance(value, list):
            value = value[0] if value else default
        value = str(value)[:limit]
        return value.strip() if strip else value

    def getlist(self, name, limit=500):
        value = self.media.get(name, [])
        values = value if isinstance(value, list) else [value]
        return [str(v) for v in values[:limit]]


class SecurityHeaders:
    """Middleware: CSP and friends on pages and the JSON API; pages are never cached (they show
    what a signed-in user may see). Ingest stays as lean as it is."""

    def process_response(self, req, resp, resource, req_succeeded):
        path = req.path
        if path.startswith(INGEST_PREFIXES):
            return
        if path.startswith('/static/'):
            resp.set_header('X-Content-Type-Options', 'nosniff')
            return
        resp.set_headers(SECURITY_HEADERS)
        if auth.is_page_path(path):
            resp.set_header('Cache-Control', 'no-store')


def error_serializer(templates, json_serializer):
    """Falcon error serializer: an HTML page for pages, the JSON {"detail"} shape elsewhere."""
    template = templates.get_template('error.html')

    def serialize(req, resp, exception):
        if not auth.is_page_path(req.path):
            json_serializer(req, resp, exception)
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.text = template.render(
            status=exception.status, title=exception.title or 'Error',
            description=exception.description or '', user=None, org=None, memberships=[],
            csrf_token='', path=req.relative_uri, now=utcnow(), notice=None)
    return serialize


def memberships_of(user_id):
    return list(Membership.select(Membership, Organization).join(Organization)
                .where(Membership.user == user_id).order_by(Organization.name, Organization.id))


def base_url(req, config):
    """This server's public URL for snippets: the base_url setting, else what the browser used
    (a Host header that is not a plain host[:port] is not echoed into a shell command)."""
    if config.base_url:
        return config.base_url.rstrip('/')
    netloc = req.netloc if _HOST.match(req.netloc or '') else 'localhost'
    return f'{req.scheme}://{netloc}'


class Page:
    """What every page resource shares; create_app hands in the collaborators."""

    def __init__(self, templates, *, writer, config, keys, clock=utcnow):
        self.templates = templates
        self.writer = writer
        self.config = config
        self.keys = keys
        self.clock = clock

    # -- rendering --

    def render(self, req, resp, name, *, status=falcon.HTTP_200, org=None, **ctx):
        user = auth.current_user(req)
        memberships = self.memberships(req) if user is not None else []
        if org is None and memberships:
            org = memberships[0].organization
        role = None
        for membership in memberships:
            if org is not None and membership.organization_id == org.id:
                role = membership.role
        resp.status = status
        templating.render(
            resp, self.templates.get_template(name),
            user=user, memberships=memberships, org=org, role=role,
            csrf_token=auth.csrf_token(req, resp), path=req.relative_uri, now=self.clock(),
            notice=NOTICES.get(req.get_param('notice') or ''), **ctx)

    def form(self, req):
        return Form(req.get_media())

    # -- who may see what --

    def memberships(self, req):
        if 'memberships' not in req.context:
            user = auth.current_user(req)
            req.context.memberships = memberships_of(user.id) if user else []
        return req.context.memberships

    def membership(self, req, org_id, roles=None):
        for membership in self.memberships(req):
            if membership.organization_id == org_id:
                if roles and membership.role not in roles:
                    raise falcon.HTTPForbidden(
                        description='only an organization ' + ' or '.join(roles) + ' may do this')
                return membership
        raise falcon.HTTPNotFound()

    def org_for(self, req, org_slug, roles=None):
        for membership in self.memberships(req):
            if membership.organization.slug == org_slug:
                self.membership(req, membership.organization_id, roles)
                return membership.organization, membership
        raise falcon.HTTPNotFound()

    def project_for(self, req, project_id, roles=None):
        project = Project.get_or_none(Project.id == project_id)
        if project is None:
            raise falcon.HTTPNotFound()
        membership = self.membership(req, project.organization_id, roles)
        project.organization = membership.organization
        return project, membership

    def redirect_back(self, form, default):
        target = form.get('next')
        raise falcon.HTTPSeeOther(target if urls.is_local(target) else default)

    def call(self, fn):
        """Run fn on the writer (the only thread that writes) and return its result."""
        return self.writer.call(fn)


class Home(Page):
    def on_get(self, req, resp):
        if not User.select().exists():
            raise falcon.HTTPSeeOther(urls.setup())
        if auth.current_user(req) is None:
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
            check_email(values['email'])
            check_password(password, form.get('password_confirm', strip=False))
            if not values['org_name']:
                raise FormError('Name your organization.')
            if not values['project_name']:
                raise FormError('Name your first project.')
            # Hashed here, off the writer: Argon2 is slow on purpose.
            password_hash = auth.hash_password(password)
            ip, agent = auth.client_ip(req), req.user_agent or ''
            project_id, token = self.call(lambda: create_first_admin(
                values, password_hash, ip=ip, user_agent=agent, now=self.clock()))
        except FormError as error:
            if User.select().exists():
                raise falcon.HTTPSeeOther(urls.home())
            self.render(req, resp, 'setup.html', status=falcon.HTTP_400, error=str(error),
                        values=values)
            return
        auth.set_session_cookie(req, resp, token)
        raise falcon.HTTPSeeOther(urls.project_settings(project_id, welcome=1))


def create_first_admin(values, password_hash, *, ip, user_agent, now):
    """Runs on the writer: the first user (owner, site admin), organization, project and ingest
    key -> (project id, session cookie). Refuses when a user exists (two setups racing)."""
    from proliferate.web.projects import unique_slug

    if User.select().exists():
        raise FormError('Setup is already done; sign in instead.')
    user = User.create(email=auth.normalize_email(values['email']), name=values['name'],
                       password_hash=password_hash, is_admin=True, created_at=now)
    org = Organization.create(name=values['org_name'][:100],
                              slug=unique_slug(Organization, values['org_name']), created_at=now)
    Membership.create(organization=org, user=user, role='owner', created_at=now)
    project = Project.create(organization=org, name=values['project_name'][:100],
                             slug=unique_slug(Project, values['project_name'], org=org),
                             created_at=now)
    auth.create_ingest_key(project, label='default')
    return project.id, auth.create_session(user.id, now=now, ip=ip, user_agent=user_agent)


def check_email(email):
    if not re.fullmatch(r'[^@\s]{1,64}@[^@\s]{1,190}', email or ''):
        raise FormError('Enter a valid email address.')


def check_password(password, confirm):
    if len(password) < MIN_PASSWORD:
        raise FormError(f'The password needs at least {MIN_PASSWORD} characters.')
    if len(password) > 1000:
        raise FormError('The password is too long.')
    if password != confirm:
        raise FormError('The two passwords differ.')


class Login(Page):
    def on_get(self, req, resp):
        next_url = req.get_param('next')
        if auth.current_user(req) is not None:
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
        ip = auth.client_ip(req)
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
        old = auth.session_token(req)
        agent = req.user_agent or ''

        def login():
            auth.clear_failed_logins(email)
            # A new id at every login: a session id planted before login is worth nothing.
            auth.delete_session(old)
            return auth.create_session(user.id, now=now, ip=ip, user_agent=agent)

        auth.set_session_cookie(req, resp, self.call(login))
        raise falcon.HTTPSeeOther(next_url or urls.home())


class Logout(Page):
    def on_post(self, req, resp):
        token = auth.session_token(req)
        if token:
            self.call(lambda: auth.delete_session(token))
        auth.clear_session_cookie(resp)
        raise falcon.HTTPSeeOther(urls.login())


class Favicon:
    """/favicon.ico: browsers ask for it on pages without a <link rel=icon> (raw JSON)."""

    def __init__(self, static_dir):
        self.path = static_dir / 'favicon.svg'

    def on_get(self, req, resp):
        resp.content_type = 'image/svg+xml'
        resp.data = self.path.read_bytes()


def add_routes(app, config, *, writer, keys, clock=utcnow):
    """Wire every page into app; returns the templates environment (for the error pages)."""
    from proliferate.web import issues
    from proliferate.web import people
    from proliferate.web import projects
    templates = templating.make_environment(config.templates_dir)
    deps = {'writer': writer, 'config': config, 'keys': keys, 'clock': clock}
    r = urls.ROUTES
    app.add_route(r['home'], Home(templates, **deps))
    app.add_route(r['setup'], Setup(templates, **deps))
    app.add_route(r['login'], Login(templates, **deps))
    app.add_route(r['logout'], Logout(templates, **deps))
    app.add_route('/favicon.ico', Favicon(config.static_dir))

    issue_list = issues.Issues(templates, **deps)
    app.add_route(r['org_issues'], issue_list, suffix='org')
    app.add_route(r['project_issues'], issue_list, suffix='project')
    app.add_route(r['issues_bulk'], issue_list, suffix='bulk')
    issue = issues.Issue(templates, **deps)
    app.add_route(r['issue'], issue)
    app.add_route(r['issue_status'], issue, suffix='status')
    app.add_route(r['issue_events'], issue, suffix='events')
    app.add_route(r['issue_event'], issue, suffix='event')
    app.add_route(r['event_json'], issue, suffix='json')
    app.add_route(r['issue_users'], issue, suffix='users')
    app.add_route(r['issue_accounts'], issue, suffix='accounts')

    projects.add_routes(app, templates, deps)
    people.add_routes(app, templates, deps)
    return templates
