"""What every page of the issue browser shares: its collaborators (Deps), rendering with the
common context, access checks, forms, fixed notices and the HTML error page.

Pages read; every write goes through writer.call so that only the writer thread writes.
"""

import dataclasses
import re

import falcon
import peewee

from proliferate import paths
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.times import utcnow
from proliferate.web import guard
from proliferate.web import templating
from proliferate.web import urls

# Messages shown after a redirect (?notice=...): fixed texts, so a link cannot put words on a page.
NOTICES = {
    'resolved': 'Issue resolved.',
    'ignored': 'Issue ignored.',
    'unresolved': 'Issue reopened.',
    'bulk': 'Issues updated.',
    'bulk_none': 'No issue changed: they were all that way already.',
    'search_saved': 'Search saved.',
    'search_deleted': 'Saved search deleted.',
    'bulk_undone': 'The change was undone (issues changed since were left as they are).',
    'undo_expired': 'Too late to undo that change: it can be undone for 10 minutes.',
    'assigned': 'Assignee changed.',
    'commented': 'Comment added.',
    'comment_saved': 'Comment saved.',
    'comment_deleted': 'Comment deleted.',
    'project_saved': 'Project saved.',
    'project_deleted': 'Project deleted.',
    'key_created': 'A new ingest key was created.',
    'key_revoked': 'The key was revoked; events sent with it are refused from now on.',
    'token_revoked': 'The token was revoked.',
    'upload_token_revoked': 'The upload token was revoked; uploads with it are refused from now on.',
    'member_saved': 'Member updated.',
    'member_removed': 'Member removed.',
    'invite_revoked': 'Invite revoked.',
    'joined': 'Welcome! You are now a member.',
    'account_saved': 'Account saved.',
    'password_changed': 'Password changed; your other sessions were signed out.',
    'signed_out_elsewhere': 'Your other sessions were signed out.',
    'display_saved': 'Display settings saved.',
    'notifications_saved': 'Notification settings saved.',
    'email_choice_saved': 'Your email choice was saved.',
    'webhook_deleted': 'Webhook deleted.',
    'webhook_paused': 'Webhook paused: nothing is sent to it until you resume it.',
    'webhook_resumed': 'Webhook resumed.',
}

# The browser's time zone, set by app.js (an IANA name, no secret): what pages show times in when
# the reader has not chosen a zone on the account page. A cookie rather than a stored setting, so a
# laptop that travels shows the zone it is in, and a page without script falls back to UTC.
ZONE_COOKIE = 'proliferate_tz'

_HOST = re.compile(r'^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$')


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


def error_serializer(templates, json_serializer):
    """Falcon error serializer: an HTML page for pages, the JSON {"detail"} shape elsewhere."""
    template = templates.get_template('error.html')

    def serialize(req, resp, exception):
        if not paths.is_page(req.path):
            json_serializer(req, resp, exception)
            return
        resp.content_type = falcon.MEDIA_HTML
        user, memberships = error_page_user(req, exception.status)
        resp.text = template.render(
            status=exception.status, title=exception.title or 'Error',
            description=exception.description or '', user=user,
            org=memberships[0].organization if memberships else None, memberships=memberships,
            csrf_token=guard.csrf_token(req, resp) if user else '', path=req.relative_uri,
            now=utcnow(), notice=None, tz=reader_zone(req, user))
    return serialize


def error_page_user(req, status):
    """(user, memberships) for an error page, so that a signed-in user's 404 keeps the
    navigation; (None, []) for a server-side error, where the database may be what failed, and
    whenever looking the session up fails."""
    if not 400 <= falcon.http_status_to_code(status) < 500:
        return None, []
    try:
        user = guard.current_user(req)
        return (user, memberships_of(user.id)) if user is not None else (None, [])
    except peewee.PeeweeException:
        return None, []


def reader_zone(req, user):
    """The ZoneInfo the pages show this reader's times in: the account's chosen zone, else the
    browser's (its cookie), else None (UTC)."""
    chosen = templating.zone(getattr(user, 'timezone', None))
    if chosen is not None:
        return chosen
    values = req.get_cookie_values(ZONE_COOKIE) or ()
    return templating.zone(values[0]) if values else None


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


@dataclasses.dataclass(frozen=True)
class Deps:
    """The collaborators every page takes; create_app builds one and routes.add_routes hands it
    to each resource. keys is the ingest key cache (pages that revoke a key forget it)."""

    templates: object
    writer: object
    config: object
    keys: object
    clock: object = utcnow
    # check.Attention: what the admin banner shows (None: no banner).
    attention: object = None


class Page:
    """What every page resource shares."""

    def __init__(self, deps):
        self.templates = deps.templates
        self.writer = deps.writer
        self.config = deps.config
        self.keys = deps.keys
        self.clock = deps.clock
        self.attention = deps.attention

    # -- rendering --

    def render(self, req, resp, name, *, status=falcon.HTTP_200, org=None, **ctx):
        user = guard.current_user(req)
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
            csrf_token=guard.csrf_token(req, resp), path=req.relative_uri, now=self.clock(),
            notice=NOTICES.get(req.get_param('notice') or ''), tz=reader_zone(req, user),
            attention=self.attention_for(user), **ctx)

    def attention_for(self, user):
        """The admin banner's messages: shown to site admins only, because what it reports (the
        disk, backups, the writer, the jobs) belongs to the server, not to one organization."""
        if user is None or not user.is_admin or self.attention is None:
            return []
        return self.attention.messages()

    def form(self, req):
        return Form(req.get_media())

    # -- who may see what --

    def memberships(self, req):
        if 'memberships' not in req.context:
            user = guard.current_user(req)
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


class Favicon:
    """/favicon.ico: browsers ask for it on pages without a <link rel=icon> (raw JSON)."""

    def __init__(self, deps):
        self.path = deps.config.static_dir / 'favicon.svg'

    def on_get(self, req, resp):
        resp.content_type = 'image/svg+xml'
        resp.data = self.path.read_bytes()
