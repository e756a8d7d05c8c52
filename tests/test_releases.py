"""The upload API on the real server: releases (idempotent), source-map uploads, who may upload
(a project upload token, never a pk_ key or another project's token) and the 400/413 answers."""

import json

from factories import make_project
from factories import make_token
from pageclient import HttpClient
from sourcemap_helpers import make_upload_token
from sourcemap_helpers import map_bytes
from sourcemap_helpers import minified_bytes
from sourcemap_helpers import multipart
from sourcemap_helpers import upload_map

from proliferate.sourcemaps.upload_api import MAX_SOURCEMAP_BYTES


def post_release(http, token, body):
    headers = {'Authorization': f'Bearer {token}'} if token else {}
    status, _headers, reply = http.request('POST', '/api/v1/releases', body, headers=headers)
    return status, reply


def releases_of(live_server, project):
    reader = HttpClient(live_server, make_token(project.org_id, f'r{project.id}@example.com'))
    return reader.get(f'/api/v1/projects/{project.id}/releases')['releases']


def test_release_is_idempotent_per_version(http, live_server, project):
    token = make_upload_token(project)
    status, first = post_release(http, token, {'version': 'shop@1.0.0'})
    assert status == 201 and first['created'] is True
    assert first['version'] == 'shop@1.0.0' and first['project_id'] == project.id
    status, again = post_release(http, token, {'version': 'shop@1.0.0', 'project': project.slug})
    assert status == 200 and again['created'] is False and again['id'] == first['id']
    status, other = post_release(http, token, {'version': 'shop@1.0.1', 'project': str(project.id)})
    assert status == 201 and other['id'] != first['id']
    listed = releases_of(live_server, project)
    assert sorted(r['version'] for r in listed) == ['shop@1.0.0', 'shop@1.0.1']


def test_release_version_is_checked(http, project):
    token = make_upload_token(project)
    for body, reason in (({}, 'release: required'), ({'version': '  '}, 'release: required'),
                         ({'version': 'x' * 201}, 'longer than 200'),
                         ({'version': ' 1.0'}, 'spaces')):
        status, reply = post_release(http, token, body)
        assert status == 400 and reason in reply['detail'], (body, reply)
    status, _headers, reply = http.request('POST', '/api/v1/releases', raw=b'{not json',
                                           headers={'Authorization': f'Bearer {token}'})
    assert status == 400 and 'not valid JSON' in reply['detail']


def test_public_key_and_read_token_cannot_upload(http, live_server, project):
    # The pk_ key ships inside every browser that loads the app: it must not replace maps.
    status, reply = post_release(http, project.key, {'version': '1'})
    assert status == 401 and 'public ingest key' in reply['detail']
    body, headers = multipart({'release': '1', 'url': '~/app1.min.js'},
                              {'sourcemap': ('app1.min.js.map', map_bytes(1))})
    for auth_headers in ({'Authorization': f'Bearer {project.key}'}, {'X-API-Key': project.key}):
        status, _h, reply = http.request('POST', '/api/v1/sourcemaps', raw=body,
                                         headers={**headers, **auth_headers})
        assert status == 401 and 'public ingest key' in reply['detail'], auth_headers
    status, _h, reply = http.request('POST', '/api/v1/sourcemaps', raw=body, headers=headers)
    assert status == 401 and 'upload token is required' in reply['detail']
    read_token = make_token(project.org_id, 'reader2@example.com')
    status, reply = post_release(http, read_token, {'version': '1'})
    assert status == 401 and 'pru_' in reply['detail']
    assert releases_of(live_server, project) == []


def test_token_of_another_project_is_refused(http, live_server, project):
    other = make_project('admin', 'acme')
    other_token = make_upload_token(other)
    status, reply = post_release(http, other_token, {'version': '1', 'project': project.slug})
    assert status == 403 and "for project 'admin'" in reply['detail']
    status, reply = upload_map(http, other_token, '1', '~/app1.min.js', map_bytes(1),
                               project=str(project.id))
    assert status == 403
    # Without a project field the token's own project is meant: nothing lands in `project`.
    status, reply = upload_map(http, other_token, '1', '~/app1.min.js', map_bytes(1))
    assert status == 201
    assert releases_of(live_server, project) == []
    assert [r['version'] for r in releases_of(live_server, other)] == ['1']


def test_upload_replace_and_url_forms(http, live_server, project):
    token = make_upload_token(project)
    status, first = upload_map(http, token, 'shop@1', 'app1.min.js', map_bytes(1),
                               minified=minified_bytes(1), url_prefix='~/static/js')
    assert status == 201, first
    assert first['url'] == '~/static/js/app1.min.js' and first['created'] is True
    assert first['sources'] == 5 and first['sources_with_content'] == 5
    # The same release + url again is a replacement, not a second map.
    status, second = upload_map(http, token, 'shop@1', '~/static/js/app1.min.js', map_bytes(2))
    assert status == 200 and second['created'] is False and second['id'] == first['id']
    assert second['sha256'] != first['sha256']
    status, third = upload_map(http, token, 'shop@1', 'https://cdn.example.com/js/app1.min.js',
                               map_bytes(1), url_prefix='~/ignored')
    assert status == 201 and third['url'] == 'https://cdn.example.com/js/app1.min.js'
    status, fourth = upload_map(http, token, 'shop@1', '/assets/app2.min.js', map_bytes(2))
    assert status == 201 and fourth['url'] == '~/assets/app2.min.js'
    [release] = releases_of(live_server, project)
    maps = {m['url']: m for m in release['sourcemaps']}
    assert sorted(maps) == ['https://cdn.example.com/js/app1.min.js', '~/assets/app2.min.js',
                            '~/static/js/app1.min.js']
    assert maps['~/static/js/app1.min.js']['sha256'] == second['sha256']
    assert maps['~/static/js/app1.min.js']['resolved_count'] == 0


def test_invalid_map_gets_400_with_the_reason(http, project):
    token = make_upload_token(project)
    good = json.loads(map_bytes(1))
    cases = (
        (b'<html>not a map</html>', 'not JSON'),
        (json.dumps({**good, 'version': 2}).encode(), 'version must be 3'),
        (json.dumps({**good, 'sources': 'cart.js'}).encode(), 'sources must be a list'),
        (json.dumps({**good, 'mappings': 'AAAA,!!!'}).encode(), 'bad source map'),
    )
    for data, reason in cases:
        status, reply = upload_map(http, token, 'shop@1', '~/app1.min.js', data)
        assert status == 400, (reason, reply)
        assert reply['detail'].startswith('sourcemap: ') and reason in reply['detail'], reply


def test_form_problems(http, project):
    token = make_upload_token(project)
    auth_header = {'Authorization': f'Bearer {token}'}
    body, headers = multipart({'release': 'shop@1', 'url': '~/a.js'})
    status, _h, reply = http.request('POST', '/api/v1/sourcemaps', raw=body,
                                     headers={**headers, **auth_header})
    assert status == 400 and 'sourcemap: required' in reply['detail']
    body, headers = multipart({'url': '~/a.js'}, {'sourcemap': ('a.map', map_bytes(1))})
    status, _h, reply = http.request('POST', '/api/v1/sourcemaps', raw=body,
                                     headers={**headers, **auth_header})
    assert status == 400 and 'release: required' in reply['detail']
    status, _h, reply = http.request('POST', '/api/v1/sourcemaps', raw=map_bytes(1),
                                     headers=auth_header)
    assert status == 415 and 'multipart/form-data' in reply['detail']


def test_map_over_50_mib_gets_413(http, live_server, project):
    token = make_upload_token(project)
    huge = b' ' * (MAX_SOURCEMAP_BYTES + 1)
    status, reply = upload_map(http, token, 'shop@1', '~/app1.min.js', huge)
    assert status == 413 and 'over 50 MiB' in reply['detail']
    status, reply = upload_map(http, token, 'shop@1', '~/app1.min.js', map_bytes(1),
                               minified=huge)
    assert status == 413 and reply['detail'].startswith('minified:')
    assert releases_of(live_server, project) == []  # refused before anything was written
