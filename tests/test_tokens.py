"""Read and upload tokens as people use them: made on the pages (session and CSRF), used by a
script or by `proliferate sourcemaps upload` run from a shell against the live server, their last
use shown on the pages, revoked there; and the pages' help pointing at this server's own pages."""

import datetime
import html
import os
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from factories import START
from factories import FakeClock
from factories import event
from factories import make_project
from factories import make_user
from pageclient import HttpClient
from pageclient import PageClient
from pageclient import send
from sourcemap_helpers import MIN

from proliferate import auth
from proliferate import db
from proliferate import jsonapi
from proliferate import times
from proliferate.models import ApiToken
from proliferate.models import Issue
from proliferate.models import Membership
from proliferate.models import Organization
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.models import User
from proliferate.web.templating import isoz

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clock():
    """The test clock, started at the wall clock's second: the session made at sign-in is
    checked against the wall clock."""
    return FakeClock(times.utcnow().replace(microsecond=0))


def query(model, *where):
    with db.database.connection_context():
        return list(model.select().where(*where)) if where else list(model.select())


def host_of(live_server):
    """The Host header a browser on the live server's address sends: the pages build the
    commands they show from it."""
    return {'Host': live_server.removeprefix('http://')}


def row_of(page, name):
    """The <tr> of the token called name (escaped as the page escapes it)."""
    rows = re.findall(r'<tr[^>]*>.*?</tr>', page, re.S)
    found = [row for row in rows if f'<td>{html.escape(name)}</td>' in row]
    assert len(found) == 1, (name, found)
    return found[0]


def last_used(page, name):
    return re.search(r'<td class="time last-used">(.*?)</td>', row_of(page, name), re.S).group(1)


def until(check, what, seconds=10):
    """check() until it is true: a token's use reaches the database from a thread of its own,
    after the response."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def run_shell(script, cwd, **env):
    """script under bash, as a person pastes it, with `proliferate` being this checkout's."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith('PROLIFERATE_')}
    environ.update(PYTHON_BIN=sys.executable, **env)
    prelude = 'proliferate() { "$PYTHON_BIN" -m proliferate "$@"; }\nset -e\n'
    done = subprocess.run(['bash', '-c', prelude + script], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def build_dir(tmp_path):
    """A CI checkout after the build: the committed fixture bundles under dist/static/js."""
    work = tmp_path / 'ci'
    shutil.copytree(MIN, work / 'dist' / 'static' / 'js')
    return work


def test_an_upload_token_made_on_the_page_uploads_with_the_command_shown(
        client, browser, web, live_server, clock, tmp_path):
    host = host_of(live_server)
    page = browser.get(f'/projects/{web.id}/settings', headers=host).text
    assert 'id="source-maps"' in page and 'No upload token yet.' in page
    result = browser.post(f'/projects/{web.id}/upload-tokens', {'name': 'CI <deploy>'},
                          headers=host)
    assert result.status_code == 200
    assert result.headers['cache-control'] == 'no-store'
    token = re.search(r'id="new-upload-token" class="key">(pru_[^<]+)<', result.text).group(1)
    assert 'CI &lt;deploy&gt;' in result.text and 'CI <deploy>' not in result.text
    assert 'never' in last_used(result.text, 'CI <deploy>')
    command = html.unescape(re.search(r'<pre id="snippet-sourcemaps" class="code">(.*?)</pre>',
                                      result.text, re.S).group(1))
    assert f'export PROLIFERATE_UPLOAD_TOKEN={token}\n' in command
    assert f'--server {live_server} --project web' in command

    # The command as the page shows it, pasted into a CI job's shell.
    upload_at = clock() + datetime.timedelta(minutes=5)
    clock.set(upload_at)
    code, out = run_shell(command, build_dir(tmp_path), VERSION='shop@1')
    assert code == 0, out
    assert '2 map(s) uploaded, 0 failed' in out
    with db.database.connection_context():
        stored = sorted(m.url for m in SourceMap.select().join(Release)
                        .where(Release.project == web.id, Release.version == 'shop@1'))
    assert stored == ['~/static/js/app1.min.js', '~/static/js/app2.min.js']

    # Its use shows on the project's page and on the maker's tokens page, with the upload's time.
    used = f'datetime="{isoz(upload_at)}"'
    page = browser.get(f'/projects/{web.id}/settings').text
    assert used in last_used(page, 'CI <deploy>')
    assert token not in page and token[:10] + '…' in page  # only the prefix from now on
    mine = browser.get('/tokens').text
    assert used in last_used(mine, 'CI <deploy>')
    assert f'<a href="/projects/{web.id}/settings#source-maps">upload · web</a>' in \
        row_of(mine, 'CI <deploy>')

    # Revoked on the page: the same command is refused with 401.
    (row,) = query(ApiToken, ApiToken.kind == 'upload')
    result = browser.post(f'/projects/{web.id}/upload-tokens/{row.id}/revoke')
    assert result.status_code == 303
    assert result.headers['location'] == \
        f'/projects/{web.id}/settings?notice=upload_token_revoked#source-maps'
    page = browser.get(result.headers['location'].split('#')[0]).text
    assert 'revoked' in row_of(page, 'CI <deploy>')
    code, out = run_shell(command, build_dir(tmp_path / 'again'), VERSION='shop@2')
    assert code != 0 and '401' in out, out
    status, _headers, body = HttpClient(live_server, token).post('/api/v1/releases',
                                                                  {'version': 'shop@3'})
    assert status == 401 and 'upload token' in body['detail']
    assert browser.post(f'/projects/{web.id}/upload-tokens/{row.id}/revoke').status_code == 404


def test_the_command_names_the_project_so_another_projects_token_fails(
        browser, web, live_server, tmp_path):
    other = make_project('shop')
    host = host_of(live_server)
    browser.get(f'/projects/{other.id}/settings', headers=host)
    result = browser.post(f'/projects/{other.id}/upload-tokens', {'name': 'shop CI'},
                          headers=host)
    token = re.search(r'id="new-upload-token" class="key">(pru_[^<]+)<', result.text).group(1)
    command = html.unescape(re.search(r'<pre id="snippet-sourcemaps" class="code">(.*?)</pre>',
                                      browser.get(f'/projects/{web.id}/settings',
                                                  headers=host).text, re.S).group(1))
    # Without a new token the page names the variable, not a secret.
    assert 'PROLIFERATE_UPLOAD_TOKEN' in command and 'pru_' not in command
    code, out = run_shell(command, build_dir(tmp_path), VERSION='v1',
                          PROLIFERATE_UPLOAD_TOKEN=token)
    assert code != 0 and '403' in out and "for project 'shop', not 'web'" in out, out
    assert query(Release) == []


def test_a_read_token_records_its_last_use_at_most_once_a_minute(browser, live_server, web,
                                                                   clock):
    browser.get('/tokens')
    result = browser.post('/tokens', {'name': 'dashboard'})
    token = re.search(r'id="new-token" class="key">(prt_[^<]+)<', result.text).group(1)
    assert 'never' in last_used(result.text, 'dashboard')
    api = HttpClient(live_server, token)
    assert api.get('/api/v1/projects')['projects'][0]['id'] == web.id

    def shows(instant):
        return f'datetime="{isoz(instant)}"' in last_used(browser.get('/tokens').text,
                                                          'dashboard')

    start = clock()
    until(lambda: shows(start), 'the first use never showed on the tokens page')
    later = start + datetime.timedelta(minutes=2)
    clock.set(later)
    api.get(f'/api/v1/projects/{web.id}/issues')
    until(lambda: shows(later), 'a use two minutes on never showed')


class CountingWriter:
    """The real writer, counting the calls handed to it."""

    def __init__(self, writer):
        self.writer = writer
        self.calls = 0

    def call(self, fn):
        self.calls += 1
        return self.writer.call(fn)


def test_token_use_is_written_once_a_minute_per_token(services, web, owner):
    with db.database.connection_context():
        user, org = User.get_by_id(owner.id), Organization.get_by_id(owner.org_id)
        first, _ = auth.create_token(user, org, name='one')
        second, _ = auth.create_token(user, org, name='two')
    writer = CountingWriter(services.writer)
    now = types.SimpleNamespace(value=START)
    use = jsonapi.TokenUse(writer, clock=lambda: now.value)

    def used(secret, settle=True):
        with db.database.connection_context():
            row = auth.find_token(secret, 'read')
        use.process_response(types.SimpleNamespace(context=types.SimpleNamespace(api_token=row)),
                             None, None, True)
        if settle:
            until(lambda: not use._flushing, 'the write never finished')
        with db.database.connection_context():
            return auth.find_token(secret, 'read').last_used_at

    assert used(first) == START and writer.calls == 1
    assert used(first) == START and writer.calls == 1  # the row says: written just now
    now.value = START + datetime.timedelta(seconds=59)
    assert used(first) == START and writer.calls == 1
    assert used(second) == now.value and writer.calls == 2  # each token has its own minute
    now.value = START + datetime.timedelta(seconds=61)
    assert used(first) == now.value and writer.calls == 3
    # A request that read the row before that write still sees the old time: what this process
    # handed over last holds it back.
    with db.database.connection_context():
        stale = auth.find_token(first, 'read')
    stale.last_used_at = START
    now.value = START + datetime.timedelta(seconds=70)
    use.process_response(types.SimpleNamespace(context=types.SimpleNamespace(api_token=stale)),
                         None, None, True)
    assert not use._flushing and writer.calls == 3
    # Never moved backwards (a clock set back, another process ahead).
    now.value = START - datetime.timedelta(hours=1)
    with db.database.connection_context():
        assert auth.record_token_use(stale.id, now.value) == 0
    assert not auth.token_use_due(START, START + datetime.timedelta(seconds=59))
    assert auth.token_use_due(START, START + datetime.timedelta(minutes=1))
    assert auth.token_use_due(None, START)


def test_only_owners_and_admins_make_and_revoke_upload_tokens(client, browser, web, owner):
    browser.get(f'/projects/{web.id}/settings')
    browser.post(f'/projects/{web.id}/upload-tokens', {'name': 'deploy'})
    (row,) = query(ApiToken, ApiToken.kind == 'upload')
    assert (row.user_id, row.project_id, row.organization_id) == (owner.id, web.id, web.org_id)
    empty = browser.post(f'/projects/{web.id}/upload-tokens', {'name': '  '})
    assert empty.status_code == 400 and 'Name the token' in empty.text
    make_user('mem@example.com', role='member')
    member = PageClient(client)
    member.login('mem@example.com')
    page = member.get(f'/projects/{web.id}/settings').text
    assert 'deploy' in row_of(page, 'deploy') and 'Owners and admins create and revoke' in page
    assert urls_in(page, f'/projects/{web.id}/upload-tokens') == []
    assert member.post(f'/projects/{web.id}/upload-tokens', {'name': 'x'}).status_code == 403
    assert member.post(f'/projects/{web.id}/upload-tokens/{row.id}/revoke').status_code == 403
    # Another organization's project, and a token id of another project, are not found.
    theirs = make_project('theirs', org_slug='other')
    browser.get('/tokens')
    assert browser.post(f'/projects/{theirs.id}/upload-tokens', {'name': 'x'}).status_code == 404
    mine = make_project('shop')
    assert browser.post(f'/projects/{mine.id}/upload-tokens/{row.id}/revoke').status_code == 404
    assert query(ApiToken, ApiToken.revoked_at.is_null(False)) == []
    assert len(query(ApiToken)) == 1


def urls_in(page, path):
    return re.findall(rf'action="{re.escape(path)}[^"]*"', page)


def test_tokens_stop_working_when_their_maker_leaves(client, web):
    member = make_user('bo@example.com', role='member')
    with db.database.connection_context():
        read, _ = auth.create_token(member.id, member.org_id, name='bo script')
        upload, _ = auth.create_token(member.id, member.org_id, kind='upload', project=web.id)
    assert client.simulate_get('/api/v1/projects', headers={
        'Authorization': f'Bearer {read}'}).status_code == 200
    with db.database.connection_context():
        Membership.delete().where(Membership.user == member.id).execute()
    assert client.simulate_get('/api/v1/projects', headers={
        'Authorization': f'Bearer {read}'}).status_code == 401
    assert client.simulate_post('/api/v1/releases', json={'version': '1'}, headers={
        'Authorization': f'Bearer {upload}'}).status_code == 401


def test_a_token_made_on_the_command_line_has_a_name(config, browser, owner, web):
    environ = {k: v for k, v in os.environ.items() if not k.startswith('PROLIFERATE_')}
    environ['PROLIFERATE_DATABASE_URL'] = config.database_url

    def create(*args):
        done = subprocess.run([sys.executable, '-m', 'proliferate', 'token', 'create',
                               owner.email, *args], env=environ, cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = create()
    default = re.search(r"Read-API token '(created on the command line \d{4}-\d\d-\d\d)'",
                        out).group(1)
    assert out.strip().splitlines()[-1].startswith('prt_')
    out = create('--upload', 'web', '--name', 'release job')
    assert "Upload token 'release job' for project 'web'" in out
    page = browser.get('/tokens').text
    assert 'read API' in row_of(page, default)
    assert 'upload · ' in row_of(page, 'release job')


def test_no_page_sends_people_to_the_readme(client, browser, owner, web):
    """A team using a deployed server has no README: help links this server's pages."""
    for folder in ('templates', 'static'):
        for path in (ROOT / folder).rglob('*'):
            if path.is_file() and path.suffix in ('.html', '.txt', '.js', '.css'):
                assert 'README' not in path.read_text(encoding='utf-8'), path
    send(client, event(web.key))
    (issue,) = query(Issue)
    paths = ['/', '/orgs/acme/issues', f'/projects/{web.id}/issues', f'/issues/{issue.id}',
             f'/issues/{issue.id}/events', f'/issues/{issue.id}/users',
             f'/issues/{issue.id}/accounts', '/orgs/acme/projects', '/orgs/acme/members',
             '/orgs/acme/notifications', '/orgs/acme/deliveries', f'/projects/{web.id}/settings',
             f'/projects/{web.id}/delete', f'/projects/{web.id}/releases', '/tokens',
             '/account', '/no/such/page']
    for path in paths:
        text = browser.get(path, expect=None, follow=True).text
        assert 'README' not in text, path
    page = browser.get('/orgs/acme/notifications').text
    example = html.unescape(re.search(r'<pre id="webhook-example" class="code">(.*?)</pre>',
                                      page, re.S).group(1))
    assert '"type": "alert"' in example and '"slug": "acme"' in example
    assert 'href="/orgs/acme/deliveries"' in page and 'href="/api/openapi.json"' in page
    assert 'href="/api/openapi.json"' in browser.get('/tokens').text
    anonymous = PageClient(client)
    assert 'README' not in anonymous.get('/login').text
