"""The release pages: a project's releases with their maps and resolved-frame counts, only for
members, hostile versions escaped; and the issue page showing the resolved source."""

import html

import markupsafe
from factories import event
from factories import make_user
from pageclient import PageClient
from sourcemap_helpers import CDN
from sourcemap_helpers import make_upload_token
from sourcemap_helpers import map_bytes
from sourcemap_helpers import multipart
from sourcemap_helpers import source_line
from sourcemap_helpers import stacks

from proliferate import db
from proliferate.models import Event
from proliferate.models import Release
from proliferate.web import urls


def upload(client, token, release, url, data):
    body, headers = multipart({'release': release, 'url': url}, {'sourcemap': ('a.map', data)})
    result = client.simulate_post('/api/v1/sourcemaps', body=body,
                                  headers={**headers, 'Authorization': f'Bearer {token}'})
    assert result.status_code == 201, result.text
    return result.json


def ingest(client, key, stack, release):
    header, _, message = stack.split('\n', 1)[0].partition(': ')
    result = client.simulate_post('/api/v1/errors', json=event(
        key, event_id=f'{release}-{len(stack)}', release=release,
        exception={'type': header, 'message': message, 'stack': stack}))
    assert result.status_code == 202, result.text


def test_release_pages(client, project):
    make_user('dev@example.com')
    token = make_upload_token(project)
    upload(client, token, 'shop@1', CDN + 'app1.min.js', map_bytes(1))
    upload(client, token, 'shop@1', '~/static/js/other.min.js', map_bytes(2))
    hostile = '<script>alert(1)</script>'
    upload(client, token, hostile, '~/x.js', map_bytes(2))
    ingest(client, project.key, stacks(1)['checkout'], 'shop@1')

    browser = PageClient(client)
    # Signed out: the login page, not the list.
    assert browser.get(urls.project_releases(project.id), expect=303).headers[
        'location'].startswith('/login')
    browser.login('dev@example.com')
    page = browser.get(urls.project_releases(project.id)).text
    assert 'aria-current="page">Releases</a>' in page  # the project's tabs
    assert 'shop@1' in page
    assert hostile not in page and html.escape(hostile) in page
    with db.database.connection_context():
        release = Release.get(Release.version == 'shop@1')
    assert f'href="{urls.release(project.id, release.id)}"' in page
    detail = browser.get(urls.release(project.id, release.id)).text
    assert html.escape(CDN + 'app1.min.js') in detail and '~/static/js/other.min.js' in detail
    # Build 1's checkout stack resolves 7 frames, all through app1's map.
    assert '<td class="num">7</td>' in detail and '<td class="num">0</td>' in detail
    assert '1 first seen in this release' in detail

    # Another organization's member sees neither page.
    make_user('stranger@example.com', org_slug='globex')
    stranger = PageClient(client)
    stranger.login('stranger@example.com')
    stranger.get(f'/projects/{project.id}/releases', expect=404)
    stranger.get(f'/projects/{project.id}/releases/{release.id}', expect=404)
    browser.get(f'/projects/{project.id}/releases/{release.id + 100}', expect=404)


def test_issue_page_shows_the_original_source(client, project):
    make_user('dev@example.com')
    token = make_upload_token(project)
    upload(client, token, 'shop@1', CDN + 'app1.min.js', map_bytes(1))
    ingest(client, project.key, stacks(1)['checkout'], 'shop@1')
    with db.database.connection_context():
        issue_id = Event.get().issue_id
    browser = PageClient(client)
    browser.login('dev@example.com')
    page = browser.get(f'/issues/{issue_id}').text
    _line, text = source_line('cart.js', "throw new RangeError('quantity for '")
    assert 'validateQuantity' in page and '../src/cart.js' in page
    assert str(markupsafe.escape(text.strip())) in page  # the context line, escaped by Jinja
