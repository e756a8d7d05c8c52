"""Organizations, projects and members: creating them, their slugs, and the email and password
policy that the first-run page, the member pages and the command line share. No HTTP; the
functions that write run on the writer (pages) or in the CLI's own process."""

import re
import secrets

from proliferate import auth
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import User
from proliferate.times import utcnow

ROLES = ('owner', 'admin', 'member')
MANAGERS = ('owner', 'admin')
MIN_PASSWORD = 8
MAX_PASSWORD = 1000
MAX_NAME = 100


class Refused(ValueError):
    """A rule refused the input; the message says why, in words for a person."""


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
