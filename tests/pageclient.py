"""A cookie-keeping browser stand-in over falcon.testing.TestClient for the page tests: it keeps
the cookies a real browser would, reads the CSRF token off the last page, and posts forms.

Shared by tests/test_pages.py and tests/test_auth.py; the real browser runs in
tests/test_e2e_browser_pages.py.
"""

import html
import re
import types
import uuid
from urllib.parse import urlencode

from proliferate import times
from proliferate import auth
from proliferate import orgs
from proliferate import db
from proliferate.models import Organization
from proliferate.models import Project

FORM = 'application/x-www-form-urlencoded'
PASSWORD = 'correct horse battery'
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class PageClient:
    def __init__(self, client, remote_addr='127.0.0.1'):
        self.client = client
        self.cookies = {}
        self.csrf = None
        self.remote_addr = remote_addr

    def request(self, method, path, *, headers=None, body=None, follow=False, protocol='http'):
        for _hop in range(6):
            result = self.client.simulate_request(
                method, path, cookies=dict(self.cookies), headers=headers or {}, body=body,
                remote_addr=self.remote_addr, protocol=protocol)
            for name, cookie in result.cookies.items():
                if cookie.value == '':
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = cookie.value
            found = _CSRF.search(result.text or '') if 'html' in (
                result.headers.get('content-type') or '') else None
            if found:
                self.csrf = html.unescape(found.group(1))
            if not (follow and result.status_code in (301, 302, 303, 307)):
                return result
            method, path, body = 'GET', result.headers['location'], None
        raise AssertionError('too many redirects')

    def get(self, path, expect=200, **kwargs):
        result = self.request('GET', path, **kwargs)
        if expect is not None:
            assert result.status_code == expect, (path, result.status, result.text[:2000])
        return result

    def post(self, path, fields=None, *, csrf=True, headers=None, **kwargs):
        fields = dict(fields or {})
        if csrf:
            if self.csrf is None:
                raise AssertionError('no page with a CSRF token was loaded yet')
            fields.setdefault('csrf_token', self.csrf)
        return self.request('POST', path, body=urlencode(fields, doseq=True),
                            headers={'Content-Type': FORM, **(headers or {})}, **kwargs)

    def login(self, email, password=PASSWORD):
        """Sign in and load the page it leads to (as a browser does: that page has the new
        session's CSRF token). Returns the login POST's own response."""
        self.get('/login', expect=None)
        result = self.post('/login', {'email': email, 'password': password})
        assert result.status_code == 303, (result.status, result.text[:1000])
        self.get(result.headers['location'], follow=True)
        return result

    def logout(self):
        """The sign-out button of a page (which carries the session's CSRF token)."""
        self.get('/account')
        result = self.post('/logout')
        assert result.status_code == 303, result.status
        return result


def make_user(email, *, org_slug='acme', role='owner', password=PASSWORD, is_admin=False):
    """A user with a membership, written directly (no server thread writes in the meantime)."""
    with db.database.connection_context():
        with db.database.atomic():
            org = Organization.get_or_none(Organization.slug == org_slug) or Organization.create(
                name=org_slug.title(), slug=org_slug)
            user = orgs.create_user(email, password, is_admin=is_admin)
            orgs.add_member(org, user, role)
    return types.SimpleNamespace(id=user.id, email=user.email, org_id=org.id, org_slug=org.slug)


def make_project(name, org_slug='acme'):
    with db.database.connection_context():
        with db.database.atomic():
            org = Organization.get_or_none(Organization.slug == org_slug) or Organization.create(
                name=org_slug.title(), slug=org_slug)
            project = Project.create(organization=org, name=name, slug=name)
            key = auth.create_ingest_key(project)
    return types.SimpleNamespace(id=project.id, key=key.key, org_id=org.id, slug=name)


def event(key, **fields):
    """A documented-shape exception event; fields override (exception=... replaces it)."""
    base = {
        'api_key': key, 'event_id': uuid.uuid4().hex, 'timestamp': fields.pop('timestamp', None),
        'type': 'exception', 'level': 'error', 'environment': 'production', 'release': 'v1.0.0',
        'exception': {'type': 'TypeError', 'message': 'boom',
                      'stack': 'TypeError: boom\n    at a (https://x.example/a.js:1:10)\n'
                               '    at b (https://x.example/b.js:2:20)'},
    }
    base.update(fields)
    if base['timestamp'] is None:
        base['timestamp'] = times.utcnow().isoformat() + 'Z'
    return base


def send(client, *events):
    """Events through the real ingest path (batch endpoint), each acknowledged."""
    result = client.simulate_post('/api/v1/errors/batch', json=list(events))
    assert result.status_code == 202, result.text
    statuses = [r['status'] for r in result.json['results']]
    assert statuses == ['ok'] * len(events), result.json
    return [e['event_id'] for e in events]
