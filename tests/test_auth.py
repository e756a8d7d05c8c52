"""Dashboard authentication through the real app: Argon2id hashes, server-side sessions (hashed
ids, rotated at login, gone at logout, Secure over HTTPS), CSRF tokens, the cross-site POST
guard, login throttling, and the bearer tokens and ingest keys left untouched by all of it."""

import datetime
import hashlib

import falcon.testing
import pytest
from factories import FakeClock
from factories import event
from factories import make_project
from factories import make_user
from pageclient import PageClient
from pageclient import send

from proliferate import auth
from proliferate import db
from proliferate import times
from proliferate.app import create_app
from proliferate.models import Issue
from proliferate.models import LoginAttempt
from proliferate.models import Session
from proliferate.web import guard


@pytest.fixture
def clock():
    """A clock the test moves, from the wall clock's now; the pages read it for throttling
    windows (and, asked for by name, the writer does too)."""
    return FakeClock(times.utcnow())


@pytest.fixture
def timed_client(config, services, clock):
    return falcon.testing.TestClient(
        create_app(config, writer=services.writer, drops=services.drops, clock=clock))


def sessions():
    with db.database.connection_context():
        return list(Session.select())


def test_passwords_are_argon2id():
    stored = auth.hash_password('s3cret-pass')
    assert stored.startswith('$argon2id$')
    assert auth.verify_password(stored, 's3cret-pass')
    assert not auth.verify_password(stored, 's3cret-Pass')
    assert not auth.verify_password(None, 'anything')


def test_session_cookie_is_httponly_lax_and_stored_hashed(client, owner):
    browser = PageClient(client)
    result = browser.login(owner.email)
    cookie = result.cookies[guard.SESSION_COOKIE]
    assert cookie.http_only
    assert cookie.same_site.lower() == 'lax'
    assert not cookie.secure  # plain HTTP here: a Secure cookie would never come back
    (row,) = sessions()
    assert row.token_hash == hashlib.sha256(cookie.value.encode()).hexdigest()
    assert cookie.value not in (row.token_hash, row.ip, row.user_agent)
    assert browser.get('/orgs/acme/issues').status_code == 200


def test_session_cookie_is_secure_over_https(client, owner):
    browser = PageClient(client)
    browser.get('/login', protocol='https')
    result = browser.post('/login', {'email': owner.email, 'password': 'correct horse battery'},
                          protocol='https')
    assert result.status_code == 303
    assert result.cookies[guard.SESSION_COOKIE].secure


def test_session_id_changes_at_login_and_dies_at_logout(client, owner):
    browser = PageClient(client)
    browser.login(owner.email)
    first = browser.cookies[guard.SESSION_COOKIE]
    browser.get('/orgs/acme/issues')
    browser.login(owner.email)  # signing in again, e.g. after a planted cookie
    second = browser.cookies[guard.SESSION_COOKIE]
    assert first != second
    assert len(sessions()) == 1  # the session the browser had before is gone

    stale = PageClient(client)
    stale.cookies[guard.SESSION_COOKIE] = first
    result = stale.get('/orgs/acme/issues', expect=303)
    assert result.headers['location'] == '/login?next=%2Forgs%2Facme%2Fissues'

    browser.logout()
    assert guard.SESSION_COOKIE not in browser.cookies
    assert sessions() == []
    replay = PageClient(client)
    replay.cookies[guard.SESSION_COOKIE] = second
    replay.get('/orgs/acme/issues', expect=303)


def test_expired_session_sends_to_login(client, owner):
    browser = PageClient(client)
    browser.login(owner.email)
    with db.database.connection_context():
        Session.update(expires_at=times.utcnow() - datetime.timedelta(seconds=1)).execute()
    assert browser.get('/orgs/acme/issues', expect=303).headers['location'].startswith('/login')


def test_login_comes_back_to_next_but_never_off_site(client, owner):
    browser = PageClient(client)
    browser.get('/login?next=/orgs/acme/members')
    result = browser.post('/login', {'email': owner.email, 'password': 'correct horse battery',
                                     'next': '/orgs/acme/members'})
    assert result.headers['location'] == '/orgs/acme/members'
    browser.logout()
    for hostile in ('//evil.example/', 'https://evil.example/', '/\\evil.example', 'javascript:x'):
        browser.get('/login')
        result = browser.post('/login', {'email': owner.email,
                                         'password': 'correct horse battery', 'next': hostile})
        assert result.headers['location'] == '/', hostile
        browser.logout()


def test_wrong_password_and_unknown_email_look_alike(client, owner):
    browser = PageClient(client)
    browser.get('/login')
    wrong = browser.post('/login', {'email': owner.email, 'password': 'nope nope nope'})
    unknown = browser.post('/login', {'email': 'nobody@example.com', 'password': 'nope nope'})
    assert wrong.status_code == unknown.status_code == 400
    assert 'Wrong email or password.' in wrong.text and 'Wrong email or password.' in unknown.text
    assert guard.SESSION_COOKIE not in browser.cookies


def test_post_without_csrf_token_is_refused(client, owner):
    project = make_project('web')
    send(client, event(project.key))
    browser = PageClient(client)
    # Before login: the login form itself carries a token (login CSRF).
    browser.get('/login')
    assert browser.post('/login', {'email': owner.email, 'password': 'correct horse battery'},
                        csrf=False).status_code == 403
    assert browser.post('/login', {'email': owner.email, 'password': 'correct horse battery',
                                   'csrf_token': 'forged'}, csrf=False).status_code == 403
    browser.login(owner.email)
    with db.database.connection_context():
        issue_id = Issue.select().first().id
    path = f'/issues/{issue_id}/status'
    assert browser.post(path, {'status': 'resolved'}, csrf=False).status_code == 403
    # Another browser's token is no good either: tokens are bound to the session cookie.
    other = PageClient(client)
    other.login(owner.email)
    assert browser.post(path, {'status': 'resolved', 'csrf_token': other.csrf},
                        csrf=False).status_code == 403
    # A JSON body instead of a form is refused as well.
    result = browser.request('POST', path, body='{"status": "resolved"}',
                             headers={'Content-Type': 'application/json'})
    assert result.status_code == 403
    with db.database.connection_context():
        assert Issue.get_by_id(issue_id).status == 'unresolved'
    assert browser.post(path, {'status': 'resolved'}).status_code == 303
    with db.database.connection_context():
        assert Issue.get_by_id(issue_id).status == 'resolved'


def test_cross_site_form_posts_are_refused(client, owner):
    browser = PageClient(client)
    browser.login(owner.email)
    browser.get('/orgs/acme/projects')
    for headers in ({'Sec-Fetch-Site': 'cross-site'}, {'Sec-Fetch-Site': 'same-site'},
                    {'Origin': 'https://evil.example'}, {'Origin': 'null'}):
        result = browser.post('/orgs/acme/projects', {'name': 'sneaky'}, headers=headers)
        assert result.status_code == 403, headers
    # falcon.testing's requests go to http://falconframework.org
    for headers in ({'Sec-Fetch-Site': 'same-origin'}, {'Origin': 'http://falconframework.org'},
                    {'Sec-Fetch-Site': 'none'}, {}):
        result = browser.post('/orgs/acme/projects', {'name': 'mine'}, headers=headers)
        assert result.status_code == 303, (headers, result.text[:500])


def test_ingest_and_read_api_need_no_csrf(client, owner):
    """The browser SDK posts from other sites, and the read API uses bearer tokens: the guard and
    the CSRF check apply to pages only."""
    project = make_project('web')
    result = client.simulate_post('/api/v1/errors', json=event(project.key),
                                  headers={'Sec-Fetch-Site': 'cross-site',
                                           'Origin': 'https://customer.example'})
    assert result.status_code == 202
    with db.database.connection_context():
        with db.database.atomic():
            from proliferate.models import Organization
            from proliferate.models import User
            token, _row = auth.create_token(User.get(User.email == owner.email),
                                            Organization.get_by_id(owner.org_id))
    bearer = {'Authorization': f'Bearer {token}'}
    assert client.simulate_get('/api/v1/projects', headers=bearer).status_code == 200
    with db.database.connection_context():
        issue_id = Issue.select().first().id
    result = client.simulate_patch(f'/api/v1/issues/{issue_id}', json={'status': 'ignored'},
                                   headers=bearer)
    assert result.status_code == 200 and result.json['status'] == 'ignored'
    assert client.simulate_get('/api/v1/projects').status_code == 401


def test_failed_logins_are_throttled_per_email(timed_client, owner, clock):
    browser = PageClient(timed_client)
    browser.get('/login')
    for _ in range(auth.LOGIN_LIMIT_EMAIL):
        assert browser.post('/login', {'email': owner.email,
                                       'password': 'wrong password'}).status_code == 400
    # Now even the right password waits: the guesser cannot tell when it found it.
    result = browser.post('/login', {'email': owner.email, 'password': 'correct horse battery'})
    assert result.status_code == 429
    wait = int(result.headers['retry-after'])
    assert 0 < wait <= auth.LOGIN_WINDOW.total_seconds()
    assert 'Too many failed sign-ins' in result.text
    assert guard.SESSION_COOKIE not in browser.cookies
    # Another account from the same address is not locked by this one.
    other = make_user('other@example.com')
    assert browser.post('/login', {'email': other.email,
                                   'password': 'correct horse battery'}).status_code == 303
    browser.logout()
    # After the window the owner may try again, and a success forgives the old failures.
    clock.now += auth.LOGIN_WINDOW + datetime.timedelta(seconds=1)
    browser.get('/login')
    assert browser.post('/login', {'email': owner.email,
                                   'password': 'correct horse battery'}).status_code == 303
    with db.database.connection_context():
        assert not LoginAttempt.select().where(LoginAttempt.email == owner.email).exists()


def test_failed_logins_are_throttled_per_client_address(timed_client, owner, clock):
    guesser = PageClient(timed_client, remote_addr='203.0.113.7')
    guesser.get('/login')
    # All but the last failure written directly (each real one costs an Argon2 hash).
    with db.database.connection_context():
        for n in range(auth.LOGIN_LIMIT_IP - 1):
            auth.record_failed_login(f'guess{n}@example.com', '203.0.113.7', clock())
    result = guesser.post('/login', {'email': 'guess-last@example.com', 'password': 'x' * 8})
    assert result.status_code == 400
    result = guesser.post('/login', {'email': owner.email, 'password': 'correct horse battery'})
    assert result.status_code == 429 and int(result.headers['retry-after']) > 0
    colleague = PageClient(timed_client, remote_addr='198.51.100.2')
    assert colleague.login(owner.email).status_code == 303


def test_login_attempts_are_written_by_the_writer(client, owner, services):
    """Request threads never write: failed attempts and sessions arrive through writer.call."""
    browser = PageClient(client)
    browser.get('/login')
    calls = []
    original = services.writer.call

    def spy(fn, *args, **kwargs):
        calls.append(fn)
        return original(fn, *args, **kwargs)

    services.writer.call = spy
    try:
        browser.post('/login', {'email': owner.email, 'password': 'wrong wrong'})
        browser.post('/login', {'email': owner.email, 'password': 'correct horse battery'})
        browser.logout()
    finally:
        services.writer.call = original
    assert len(calls) == 3  # the failure, the login (clears failures, new session), the logout
    with db.database.connection_context():
        assert LoginAttempt.select().count() == 0  # forgiven by the success
        assert Session.select().count() == 0  # gone at logout
