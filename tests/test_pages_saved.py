"""Saved searches through the pages: a member saves the list's search for the organization or
for themself, the list shows them (names escaped), and only the author deletes one."""

import html
import re

from factories import make_user
from pageclient import PageClient

from proliferate import db
from proliferate.models import SavedSearch
from proliferate.web import urls

HOSTILE = '<script>alert(1)</script>'


def save(browser, name, shared, **filters):
    listing = urls.org_issues('acme', **filters)
    browser.get(listing)
    fields = {'name': name, 'next': listing, 'status': 'unresolved', **filters}
    if shared:
        fields['shared'] = '1'
    return browser.post(urls.saved_searches('acme'), fields)


def test_save_share_list_and_delete(client, browser, web, owner):
    result = save(browser, 'Staging errors', True, query='env:staging', level='error',
                  project=str(web.id))
    assert result.status_code == 303
    assert result.headers['location'].endswith('notice=search_saved')
    assert save(browser, HOSTILE, False, query='assigned:me').status_code == 303
    page = browser.get(urls.org_issues('acme')).text
    assert 'Saved searches' in page
    link = html.unescape(re.search(r'<a href="([^"]+)">Staging errors</a>', page).group(1))
    assert link.startswith('/orgs/acme/issues?') and 'query=env%3Astaging' in link
    assert f'project={web.id}' in link and 'level=error' in link
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    # A colleague sees the shared search, not the owner's own, and cannot delete it.
    bob = make_user('bob@example.com', role='member')
    colleague = PageClient(client)
    colleague.login(bob.email)
    theirs = colleague.get(urls.org_issues('acme')).text
    assert 'Staging errors' in theirs and html.escape(HOSTILE) not in theirs
    assert 'Delete saved search' not in theirs
    with db.database.connection_context():
        shared_id = SavedSearch.get(SavedSearch.name == 'Staging errors').id
    assert colleague.post(urls.saved_search_delete(shared_id), {}).status_code == 403
    # Someone of another organization gets a 404.
    make_user('eve@example.com', org_slug='other')
    stranger = PageClient(client)
    stranger.login('eve@example.com')
    stranger.get(urls.org_issues('other'))
    assert stranger.post(urls.saved_search_delete(shared_id), {}).status_code == 404
    assert 'Staging errors' not in stranger.get(urls.org_issues('other')).text
    result = browser.post(urls.saved_search_delete(shared_id), {'next': urls.org_issues('acme')})
    assert result.headers['location'] == '/orgs/acme/issues?notice=search_deleted'
    assert 'Staging errors' not in browser.get(urls.org_issues('acme')).text


def test_bad_saves_are_400_naming_the_field(browser, web):
    reply = save(browser, '', False)
    assert reply.status_code == 400 and 'name:' in reply.text
    reply = save(browser, 'x' * 101, False)
    assert reply.status_code == 400 and 'name:' in reply.text
    reply = save(browser, 'elsewhere', False, project='999')
    assert reply.status_code == 400 and 'project:' in reply.text
    assert browser.post(urls.saved_searches('other'), {'name': 'x'}).status_code == 404
    with db.database.connection_context():
        assert SavedSearch.select().count() == 0
