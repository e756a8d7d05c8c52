"""Who may post and see pages: the session cookie, the login hook, CSRF tokens, the cross-site
POST guard and the security headers of every page. Sessions themselves live in auth.py."""

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

import falcon

from proliferate import auth
from proliferate import paths
from proliferate.web import urls

SESSION_COOKIE = 'proliferate_session'
# Before login a browser gets a random cookie of its own, so that the login, setup and invite
# forms carry a CSRF token too (login CSRF).
ANON_COOKIE = 'proliferate_anon'
CSRF_FIELD = 'csrf_token'

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


def is_https(req):
    """Served over HTTPS. Behind a TLS proxy, Waitress's trusted_proxy settings turn a trusted
    X-Forwarded-Proto into req.scheme (and clear the header from anyone else)."""
    return req.scheme == 'https'


def client_ip(req):
    return (req.remote_addr or '')[:64]


def session_token(req):
    values = req.get_cookie_values(SESSION_COOKIE)
    return values[0] if values else None


def set_session_cookie(req, resp, token):
    resp.set_cookie(SESSION_COOKIE, token, max_age=int(auth.SESSION_LIFETIME.total_seconds()),
                    path='/', secure=is_https(req), http_only=True, same_site='Lax')
    resp.unset_cookie(ANON_COOKIE, path='/')


def clear_session_cookie(resp):
    resp.unset_cookie(SESSION_COOKIE, path='/')


def current_session(req):
    """The request's Session or None; looked up once per request."""
    if 'session' not in req.context:
        req.context.session = auth.find_session(session_token(req))
    return req.context.session


def current_user(req):
    session = current_session(req)
    return session.user if session is not None else None


def require_login(req, resp, resource, params):
    """Falcon hook: the page needs a signed-in user; others go to the login page and come back."""
    if current_user(req) is None:
        back = req.relative_uri if req.method == 'GET' else None
        raise falcon.HTTPSeeOther(urls.login(next=back))


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
        resp.set_cookie(ANON_COOKIE, seed, max_age=int(auth.SESSION_LIFETIME.total_seconds()),
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
        if req.method not in self.UNSAFE or not paths.is_page(req.path):
            return
        site = req.get_header('Sec-Fetch-Site')
        if site is not None and site not in ('same-origin', 'none'):
            raise falcon.HTTPForbidden(description='cross-site form posts are refused')
        origin = req.get_header('Origin')
        if origin is not None and not same_host(origin, req, self.base_url):
            raise falcon.HTTPForbidden(description='cross-site form posts are refused')

    def process_resource(self, req, resp, resource, params):
        if resource is None or req.method not in self.UNSAFE or not paths.is_page(req.path):
            return
        check_csrf(req)


class SecurityHeaders:
    """Middleware: CSP and friends on pages and the JSON API; pages are never cached (they show
    what a signed-in user may see). Ingest stays as lean as it is."""

    def process_response(self, req, resp, resource, req_succeeded):
        kind = paths.kind(req.path)
        if kind == paths.INGEST:
            return
        if kind == paths.STATIC:
            resp.set_header('X-Content-Type-Options', 'nosniff')
            return
        resp.set_headers(SECURITY_HEADERS)
        if kind == paths.PAGE:
            resp.set_header('Cache-Control', 'no-store')
