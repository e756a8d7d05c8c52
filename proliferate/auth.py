"""Secrets and who is asking: password hashing (Argon2id), API and upload tokens (stored as SHA-256
only, shown once), ingest keys, the bearer-token check of the JSON API, dashboard sessions, login
throttling, CSRF tokens, the require_login hook and the cross-site POST guard.
"""

import datetime
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

import falcon
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

from proliferate.web import urls
from proliferate.times import utcnow
from proliferate.models import ApiToken
from proliferate.models import LoginAttempt
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.models import Session
from proliferate.models import User

TOKEN_PREFIXES = {'read': 'prt_', 'upload': 'pru_'}

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
    says nothing about the secret."""
    if not token or len(token) > 200:
        return None
    return (ApiToken.select(ApiToken, Organization)
            .join(Organization)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.kind == kind,
                   ApiToken.revoked_at.is_null())
            .first())


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


# -- dashboard sessions ----------------------------------------------------------------------

SESSION_COOKIE = 'proliferate_session'
# Before login a browser gets a random cookie of its own, so that the login, setup and invite
# forms carry a CSRF token too (login CSRF).
ANON_COOKIE = 'proliferate_anon'
SESSION_LIFETIME = datetime.timedelta(days=14)
CSRF_FIELD = 'csrf_token'
# Paths that are not pages: JSON with bearer tokens or ingest keys (no cookies, so no CSRF).
NON_PAGE_PREFIXES = ('/api/', '/v1/', '/healthz', '/static/')

# Failed logins: at most LOGIN_LIMIT_EMAIL per address and LOGIN_LIMIT_IP per client address in
# LOGIN_WINDOW. The per-address limit stops guessing one account; the client limit is higher
# because an office or a VPN shares one address among people who mistype.
LOGIN_WINDOW = datetime.timedelta(minutes=15)
LOGIN_LIMIT_EMAIL = 5
LOGIN_LIMIT_IP = 20
LOGIN_ATTEMPT_KEEP = datetime.timedelta(days=1)


def is_page_path(path):
    return not path.startswith(NON_PAGE_PREFIXES)


def is_https(req):
    """Served over HTTPS. Behind a TLS proxy, Waitress's trusted_proxy settings turn a trusted
    X-Forwarded-Proto into req.scheme (and clear the header from anyone else)."""
    return req.scheme == 'https'


def client_ip(req):
    return (req.remote_addr or '')[:64]


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


def session_token(req):
    values = req.get_cookie_values(SESSION_COOKIE)
    return values[0] if values else None


def set_session_cookie(req, resp, token):
    resp.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()),
                    path='/', secure=is_https(req), http_only=True, same_site='Lax')
    resp.unset_cookie(ANON_COOKIE, path='/')


def clear_session_cookie(resp):
    resp.unset_cookie(SESSION_COOKIE, path='/')


def current_session(req):
    """The request's Session or None; looked up once per request."""
    if 'session' not in req.context:
        req.context.session = find_session(session_token(req))
    return req.context.session


def current_user(req):
    session = current_session(req)
    return session.user if session is not None else None


def require_login(req, resp, resource, params):
    """Falcon hook: the page needs a signed-in user; others go to the login page and come back."""
    if current_user(req) is None:
        back = req.relative_uri if req.method == 'GET' else None
        raise falcon.HTTPSeeOther(urls.login(next=back))


# -- CSRF ------------------------------------------------------------------------------------


def csrf_token(req, resp):
    """The CSRF token of this browser: derived from its session cookie (or, before login, from a
    random cookie set here), so a form posted from another site cannot carry it."""
    seed = session_token(req)
    if not seed:
        values = req.get_cookie_values(ANON_COOKIE)
        seed = values[0] if values else req.context.get('anon_seed')
    if not seed:
        seed = secrets.token_urlsafe(32)
        req.context.anon_seed = seed
        resp.set_cookie(ANON_COOKIE, seed, max_age=int(SESSION_LIFETIME.total_seconds()),
                        path='/', secure=is_https(req), http_only=True, same_site='Lax')
    return derive_csrf(seed)


def derive_csrf(seed):
    # A one-way function of the cookie: the token on the page does not reveal the session id.
    return hashlib.sha256(b'proliferate-csrf\0' + seed.encode('utf-8', 'replace')).hexdigest()


def check_csrf(req):
    """403 unless the posted form carries this browser's CSRF token."""
    seed = session_token(req)
    if not seed:
        values = req.get_cookie_values(ANON_COOKIE)
        seed = values[0] if values else None
    content_type = (req.content_type or '').split(';')[0].strip().lower()
    if content_type != falcon.MEDIA_URLENCODED:
        raise falcon.HTTPForbidden(description='pages accept only HTML form posts')
    form = req.get_media()
    sent = form.get(CSRF_FIELD) if isinstance(form, dict) else None
    if isinstance(sent, list):
        sent = sent[0]
    if not seed or not isinstance(sent, str) or not hmac.compare_digest(sent, derive_csrf(seed)):
        raise falcon.HTTPForbidden(
            description='the form has expired or came from another site; reload the page and '
                        'try again (cookies must be enabled)')


def same_host(origin, req, base_url=''):
    """The Origin header names this server (by host name; the scheme may differ behind a proxy
    that terminates TLS) or the configured base URL."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    if parts.hostname == (req.host or '').lower():
        return True
    if base_url:
        try:
            return parts.hostname == (urlsplit(base_url).hostname or '')
        except ValueError:
            return False
    return False


class CrossSiteGuard:
    """Middleware: a form POST to a page must come from this site (Sec-Fetch-Site, else Origin)
    and carry the browser's CSRF token. The JSON API and ingest use keys and bearer tokens, not
    cookies, and are left alone."""

    UNSAFE = frozenset(('POST', 'PUT', 'PATCH', 'DELETE'))

    def __init__(self, base_url=''):
        self.base_url = base_url

    def process_request(self, req, resp):
        if req.method not in self.UNSAFE or not is_page_path(req.path):
            return
        site = req.get_header('Sec-Fetch-Site')
        if site is not None and site not in ('same-origin', 'none'):
            raise falcon.HTTPForbidden(description='cross-site form posts are refused')
        origin = req.get_header('Origin')
        if origin is not None and not same_host(origin, req, self.base_url):
            raise falcon.HTTPForbidden(description='cross-site form posts are refused')

    def process_resource(self, req, resp, resource, params):
        if resource is None or req.method not in self.UNSAFE or not is_page_path(req.path):
            return
        check_csrf(req)


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
