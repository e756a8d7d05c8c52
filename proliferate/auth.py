"""Secrets: password hashing (Argon2id), API and upload tokens (stored as SHA-256 only, shown
once), ingest keys, dashboard sessions and login throttling. No HTTP: cookies, CSRF and the login
hook are the web guard's (web/guard.py), the bearer-token check is jsonapi's."""

import datetime
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

from proliferate.models import ApiToken
from proliferate.models import LoginAttempt
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import ProjectKey
from proliferate.models import Session
from proliferate.models import User
from proliferate.times import utcnow

TOKEN_PREFIXES = {'read': 'prt_', 'upload': 'pru_'}

# A token's last use reaches the database at most once a minute: a script that polls the API
# every second must not turn each read into a write. The tokens pages show minutes, not seconds.
TOKEN_USE_EVERY = datetime.timedelta(minutes=1)

_hasher = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106 low-memory parameters


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
    says nothing about the secret. A token stops working when its maker leaves the
    organization: it acted as them."""
    if not token or len(token) > 200:
        return None
    return (ApiToken.select(ApiToken, Organization)
            .join(Organization)
            .switch(ApiToken)
            .join(Membership, on=((Membership.user == ApiToken.user)
                                  & (Membership.organization == ApiToken.organization)))
            .where(ApiToken.token_hash == hash_token(token), ApiToken.kind == kind,
                   ApiToken.revoked_at.is_null())
            .first())


def token_use_due(last_used_at, now):
    """Whether a use at `now` should be written (pure): never written, or TOKEN_USE_EVERY ago."""
    return last_used_at is None or now - last_used_at >= TOKEN_USE_EVERY


def record_token_use(token_id, when):
    """Runs on the writer: the token's last use, never moved backwards."""
    return (ApiToken.update(last_used_at=when)
            .where(ApiToken.id == token_id,
                   ApiToken.last_used_at.is_null() | (ApiToken.last_used_at < when))
            .execute())


# -- dashboard sessions ----------------------------------------------------------------------

SESSION_LIFETIME = datetime.timedelta(days=14)

# Failed logins: at most LOGIN_LIMIT_EMAIL per address and LOGIN_LIMIT_IP per client address in
# LOGIN_WINDOW. The per-address limit stops guessing one account; the client limit is higher
# because an office or a VPN shares one address among people who mistype.
LOGIN_WINDOW = datetime.timedelta(minutes=15)
LOGIN_LIMIT_EMAIL = 5
LOGIN_LIMIT_IP = 20
LOGIN_ATTEMPT_KEEP = datetime.timedelta(days=1)


def create_session(user_id, *, now=None, ip='', user_agent=''):
    """A new session for user_id -> the cookie value (shown to nobody else). Runs on the writer;
    expired sessions are swept on the way."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    Session.delete().where(Session.expires_at <= now).execute()
    Session.create(token_hash=hash_token(token), user=user_id, created_at=now,
                   expires_at=now + SESSION_LIFETIME, ip=ip[:64],
                   user_agent=(user_agent or '')[:255])
    return token


def delete_session(token):
    """Runs on the writer; the cookie's session stops working at once."""
    if token:
        Session.delete().where(Session.token_hash == hash_token(token)).execute()


def delete_user_sessions(user_id, keep_token=None):
    query = Session.delete().where(Session.user == user_id)
    if keep_token:
        query = query.where(Session.token_hash != hash_token(keep_token))
    return query.execute()


def find_session(token, now=None):
    """The live Session (with .user loaded) for a cookie value, or None."""
    if not token or len(token) > 200:
        return None
    return (Session.select(Session, User).join(User)
            .where(Session.token_hash == hash_token(token), Session.expires_at > (now or utcnow()))
            .first())


# -- login throttling ------------------------------------------------------------------------


def normalize_email(email):
    return (email or '').strip().lower()[:254]


def login_retry_after(email, ip, now=None):
    """Seconds until another login may be tried for this email or client (0: go ahead)."""
    now = now or utcnow()
    since = now - LOGIN_WINDOW
    waits = []
    for field, value, limit in ((LoginAttempt.email, normalize_email(email), LOGIN_LIMIT_EMAIL),
                                (LoginAttempt.ip, ip, LOGIN_LIMIT_IP)):
        if not value:
            continue
        recent = (LoginAttempt.select(LoginAttempt.created_at)
                  .where(field == value, LoginAttempt.created_at > since)
                  .order_by(LoginAttempt.created_at.desc()).limit(limit).tuples())
        stamps = [row[0] for row in recent]
        if len(stamps) >= limit:
            # The oldest of the last `limit` failures leaving the window frees one attempt.
            waits.append((stamps[-1] + LOGIN_WINDOW - now).total_seconds())
    return max(1, int(max(waits) + 0.999)) if waits else 0


def record_failed_login(email, ip, now=None):
    """Runs on the writer: one failed attempt; attempts older than a day are swept."""
    now = now or utcnow()
    LoginAttempt.delete().where(LoginAttempt.created_at < now - LOGIN_ATTEMPT_KEEP).execute()
    LoginAttempt.create(email=normalize_email(email), ip=ip or '', created_at=now)


def clear_failed_logins(email):
    """Runs on the writer after a successful login: past typos of this address are forgiven."""
    LoginAttempt.delete().where(LoginAttempt.email == normalize_email(email)).execute()


def authenticate(email, password):
    """The User for these credentials, or None (as slow for unknown addresses as for known)."""
    user = User.get_or_none(User.email == normalize_email(email))
    if not verify_password(user.password_hash if user else None, password or ''):
        return None
    return user
