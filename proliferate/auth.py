"""Secrets: password hashing (Argon2id), API and upload tokens (stored as SHA-256 only, shown
once), ingest key generation, and the bearer-token check of the JSON API.
"""

import hashlib
import secrets

import falcon
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

from proliferate.db import utcnow
from proliferate.models import ApiToken
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.models import User

TOKEN_PREFIXES = {'read': 'prt_', 'upload': 'pru_'}

_hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id with RFC 9106 low-memory parameters


def hash_password(password):
    return _hasher.hash(password)


def verify_password(password_hash, password):
    if not password_hash:
        # Spend the same time as a real check so that unknown users cannot be told apart.
        _hasher.hash(password or '')
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token):
    return hashlib.sha256(token.encode('utf-8', 'surrogatepass')).hexdigest()


def new_ingest_key():
    return 'pk_' + secrets.token_hex(16)


def create_ingest_key(project, label=''):
    return ProjectKey.create(project=project, key=new_ingest_key(), label=label)


def create_token(user, organization, *, kind='read', project=None, name=''):
    """-> (the token to show once, its row)."""
    token = TOKEN_PREFIXES[kind] + secrets.token_urlsafe(32)
    row = ApiToken.create(user=user, organization=organization, kind=kind, project=project,
                          token_hash=hash_token(token), prefix=token[:10], name=name)
    return token, row


def find_token(token, kind):
    """The live token row for a presented secret, or None. The lookup is by hash, so timing
    says nothing about the secret."""
    if not token or len(token) > 200:
        return None
    return (ApiToken.select(ApiToken, Organization)
            .join(Organization)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.kind == kind,
                   ApiToken.revoked_at.is_null())
            .first())


def bearer_token(req):
    header = req.get_header('Authorization') or ''
    scheme, _, value = header.partition(' ')
    if scheme.lower() != 'bearer' or not value.strip():
        return None
    return value.strip()


def require_token(req, kind='read'):
    """The ApiToken of this request, or 401; its organization bounds everything it may see."""
    row = find_token(bearer_token(req), kind)
    if row is None:
        raise falcon.HTTPUnauthorized(
            description='a valid token is required: Authorization: Bearer <token>',
            headers={'WWW-Authenticate': 'Bearer'})
    return row


def organization_projects(organization_id):
    return Project.select().where(Project.organization == organization_id)


def create_user(email, password=None, *, is_admin=False, name=''):
    return User.create(email=email.strip().lower(), name=name, is_admin=is_admin,
                       password_hash=hash_password(password) if password else None,
                       created_at=utcnow())


def add_member(organization, user, role='member'):
    membership, _created = Membership.get_or_create(
        organization=organization, user=user, defaults={'role': role})
    return membership
