"""Organizations, projects and members: creating them (the first admin too), their slugs, roles,
invites, ingest keys and read tokens, and the email and password policy that the pages and the
command line share. No HTTP; the functions that write run on the writer (pages) or in the CLI's
own process."""

import datetime
import re
import secrets
import urllib.parse

from proliferate import auth
from proliferate.models import ApiToken
from proliferate.models import Event
from proliferate.models import Invite
from proliferate.models import Issue
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.models import User
from proliferate.times import utcnow

ROLES = ('owner', 'admin', 'member')
MANAGERS = ('owner', 'admin')
MIN_PASSWORD = 8
MAX_PASSWORD = 1000
MAX_NAME = 100


class Refused(ValueError):
    """A rule refused the input; the message says why, in words for a person."""


class NotFound(LookupError):
    """What was named does not exist (or not in this organization)."""


def check_email(email):
    if not re.fullmatch(r'[^@\s]{1,64}@[^@\s]{1,190}', email or ''):
        raise Refused('Enter a valid email address.')


def check_password(password, confirm=None):
    """The password policy; confirm (when a form asks twice) must match."""
    if len(password) < MIN_PASSWORD:
        raise Refused(f'The password needs at least {MIN_PASSWORD} characters.')
    if len(password) > MAX_PASSWORD:
        raise Refused('The password is too long.')
    if confirm is not None and password != confirm:
        raise Refused('The two passwords differ.')


def slugify(name, fallback):
    slug = re.sub(r'[^a-z0-9]+', '-', (name or '').lower()).strip('-')
    return slug[:50] or fallback


def unique_slug(model, name, org=None):
    """A slug not yet used (per organization for projects): name, name-2, name-3..."""
    base = slugify(name, model.__name__.lower())
    slug = base
    for n in range(2, 1000):
        query = model.select().where(model.slug == slug)
        if org is not None:
            query = query.where(model.organization == org)
        if not query.exists():
            return slug
        slug = f'{base}-{n}'
    return f'{base}-{secrets.token_hex(4)}'


def create_organization(name, now=None):
    return Organization.create(name=name[:MAX_NAME], slug=unique_slug(Organization, name),
                               created_at=now or utcnow())


def create_project(org, name, now=None):
    """A project with its first ingest key (labelled 'default')."""
    project = Project.create(organization=org, name=name[:MAX_NAME],
                             slug=unique_slug(Project, name, org=org), created_at=now or utcnow())
    auth.create_ingest_key(project, label='default')
    return project


def create_user(email, password=None, *, password_hash=None, is_admin=False, name='', now=None):
    """password is hashed here; pages hash off the writer first and pass password_hash."""
    if password:
        password_hash = auth.hash_password(password)
    return User.create(email=auth.normalize_email(email), name=name[:MAX_NAME], is_admin=is_admin,
                       password_hash=password_hash, created_at=now or utcnow())


def add_member(organization, user, role='member', now=None):
    membership, _created = Membership.get_or_create(
        organization=organization, user=user,
        defaults={'role': role, 'created_at': now or utcnow()})
    return membership


def organization_projects(organization_id):
    return Project.select().where(Project.organization == organization_id)


INVITE_LIFETIME = datetime.timedelta(days=7)


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
        raise Refused('This invite link is no longer valid.')
    session = None
    if user_id is None:
        email, name, password_hash = new_user
        if User.select().where(User.email == email).exists():
            raise Refused('An account with this email exists: sign in first, then open the '
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
        raise NotFound('no such member')
    is_self = target.user_id == actor.user_id
    if actor.role not in MANAGERS and not (is_self and action == 'remove'):
        raise Refused('Only owners and admins manage members.')
    if actor.role != 'owner' and (target.role == 'owner' or role == 'owner') and not is_self:
        raise Refused('Only an owner can change an owner or make one.')
    if target.role == 'owner' and (action == 'remove' or role != 'owner') \
            and owner_count(org_id) <= 1:
        raise Refused('An organization keeps at least one owner.')
    if action == 'remove':
        target.delete_instance()
        return 'removed'
    if role not in ROLES:
        raise Refused('Unknown role.')
    if actor.role != 'owner' and role == 'owner':
        raise Refused('Only an owner can make an owner.')
    Membership.update(role=role).where(Membership.id == target.id).execute()
    return 'saved'


def create_read_token(user_id, org_id, name):
    token, _row = auth.create_token(user_id, org_id, name=name[:100])
    return token


def create_upload_token(user_id, project, name):
    """An upload token of project (made by user_id, a manager) -> the token, shown once."""
    token, _row = auth.create_token(user_id, project.organization_id, kind='upload',
                                    project=project.id, name=name[:100])
    return token


def revoke_upload_token(project_id, token_id, now):
    """Any live upload token of the project (managers revoke each other's) -> rows changed."""
    return (ApiToken.update(revoked_at=now)
            .where(ApiToken.id == token_id, ApiToken.project == project_id,
                   ApiToken.kind == 'upload', ApiToken.revoked_at.is_null())
            .execute())


def revoke_token(user_id, token_id, now):
    return (ApiToken.update(revoked_at=now)
            .where(ApiToken.id == token_id, ApiToken.user == user_id,
                   ApiToken.revoked_at.is_null())
            .execute())


# Deleting a project removes its events in slices, each its own writer transaction, so ingest for
# other projects keeps flowing while a big project goes.
DELETE_SLICE = 5000



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


def dsn(base_url, key, project_id):
    """A Sentry SDK's DSN for an ingest key: <scheme>://<key without pk_>@<host>[:port][/prefix]/
    <project id>, scheme, host, port and prefix from this server's public base URL."""
    parts = urllib.parse.urlsplit(base_url.strip())
    host = parts.netloc.rpartition('@')[2]
    public = key[3:] if key.startswith('pk_') else key
    return f'{parts.scheme or "http"}://{public}@{host}{parts.path.rstrip("/")}/{project_id}'


def live_key(project_id):
    """The project's oldest live ingest key (the one its DSN shows), or None."""
    return (ProjectKey.select().where(ProjectKey.project == project_id,
                                      ProjectKey.revoked_at.is_null())
            .order_by(ProjectKey.id).first())


def revoke_key(project_id, key_id, now):
    key = ProjectKey.get_or_none(ProjectKey.id == key_id, ProjectKey.project == project_id)
    if key is None:
        return None
    if key.revoked_at is None:
        ProjectKey.update(revoked_at=now).where(ProjectKey.id == key.id).execute()
    return key.key


def create_first_admin(values, password_hash, *, ip, user_agent, now):
    """Runs on the writer: the first user (owner, site admin), organization, project and ingest
    key -> (project id, session cookie). Refuses when a user exists (two setups racing)."""
    if User.select().exists():
        raise Refused('Setup is already done; sign in instead.')
    user = create_user(values['email'], password_hash=password_hash, name=values['name'],
                            is_admin=True, now=now)
    org = create_organization(values['org_name'], now)
    add_member(org, user, 'owner', now)
    project = create_project(org, values['project_name'], now)
    return project.id, auth.create_session(user.id, now=now, ip=ip, user_agent=user_agent)
