"""Grouping version 2 on the live server: the same error survives a redeploy (a renamed bundle
regresses its issue, no new issue, no new-issue alert), a library error names the application's
function, custom fingerprints (documented API and Sentry), merge and unmerge through the API."""

import os
import pathlib
import subprocess
import sys
import uuid

import orjson

from proliferate import db
from proliferate.models import IssueActivity
from proliferate.models import Outbox


def js_event(project, bundle, release, **fields):
    stack = (f'TypeError: Cannot read properties of undefined (reading \'total\')\n'
             f'    at renderTotal (https://shop.example.com/assets/{bundle}:1:4410)\n'
             f'    at Checkout.update (https://shop.example.com/assets/{bundle}:1:9120)\n'
             f'    at HTMLButtonElement.onclick (https://shop.example.com/assets/{bundle}:1:120)\n'
             '    at dispatch (https://shop.example.com/assets/vendor.8f3e2a1b.js:2:33012)')
    return {'api_key': project.key, 'event_id': uuid.uuid4().hex,
            'timestamp': '2025-01-15T10:30:00Z', 'type': 'exception', 'release': release,
            'exception': {'type': 'TypeError',
                          'message': "Cannot read properties of undefined (reading 'total')",
                          'stack': stack}, **fields}


def python_event(project, stack, **fields):
    return {'api_key': project.key, 'event_id': uuid.uuid4().hex,
            'timestamp': '2025-01-15T10:30:00Z', 'type': 'exception',
            'exception': {'stack': stack}, **fields}


def issues_of(read_api, project):
    return read_api.get(f'/api/v1/projects/{project.id}/issues?status=all')['issues']


def outbox_kinds(project):
    with db.database.connection_context():
        return sorted(row.kind for row in Outbox.select().where(Outbox.project == project.id))


LIBRARY_ERROR = '''Traceback (most recent call last):
  File "/srv/shop/app/jobs.py", line 30, in nightly
    prices = fetch_prices(ids)
  File "/srv/shop/app/prices.py", line 12, in fetch_prices
    response = requests.get(PRICES_URL, timeout=5)
  File "/srv/shop/venv/lib/python3.11/site-packages/requests/api.py", line 73, in get
    return request('get', url, params=params, **kwargs)
  File "/srv/shop/venv/lib/python3.11/site-packages/requests/adapters.py", line 519, in send
    raise ConnectionError(e, request=request)
requests.exceptions.ConnectionError: Max retries exceeded with url: /prices
'''


def test_a_redeploy_regresses_the_issue_and_opens_no_new_one(http, read_api, project):
    assert http.post('/api/v1/errors', js_event(project, 'checkout.41b2c3d4.js', '2.4.0'))[0] == 202
    [issue] = issues_of(read_api, project)
    assert issue['culprit'] == 'renderTotal in checkout.41b2c3d4.js'
    status, _h, _b = read_api.request('PATCH', f'/api/v1/issues/{issue["id"]}',
                                      {'status': 'resolved'})
    assert status == 200
    # The next build renames the bundle; the bug is back.
    assert http.post('/api/v1/errors', js_event(project, 'checkout.9c0d7e6f.js', '2.4.1'))[0] == 202
    [again] = issues_of(read_api, project)
    assert again['id'] == issue['id'] and again['event_count'] == 2
    assert again['status'] == 'unresolved' and again['is_regressed'] is True
    assert again['regressed_release'] == '2.4.1'
    assert outbox_kinds(project) == ['new_issue', 'regression']


def test_a_library_error_names_the_applications_function(http, read_api, project):
    assert http.post('/api/v1/errors', python_event(project, LIBRARY_ERROR))[0] == 202
    [issue] = issues_of(read_api, project)
    assert issue['title'].startswith('requests.exceptions.ConnectionError: Max retries')
    assert issue['culprit'] == 'fetch_prices in prices.py'


def test_custom_fingerprints_of_the_documented_api(http, read_api, project):
    # Two different errors, one fingerprint: one issue.
    for stack in (LIBRARY_ERROR, LIBRARY_ERROR.replace('fetch_prices', 'fetch_stock')):
        event = python_event(project, stack, fingerprint=['prices-service-down'])
        assert http.post('/api/v1/errors', event)[0] == 202
    [issue] = issues_of(read_api, project)
    assert issue['event_count'] == 2
    # '{{ default }}' keeps our key and splits it by tenant.
    for tenant in ('a', 'b', 'a'):
        event = js_event(project, 'checkout.41b2c3d4.js', '2.4.0',
                         fingerprint=['{{ default }}', f'tenant-{tenant}'])
        assert http.post('/api/v1/errors', event)[0] == 202
    counts = sorted(i['event_count'] for i in issues_of(read_api, project))
    assert counts == [1, 2, 2]
    # Not an array: refused with the field named.
    status, _h, reply = http.post('/api/v1/errors', python_event(project, LIBRARY_ERROR,
                                                                 fingerprint='x'))
    assert status == 400 and 'fingerprint' in reply['detail']


def sentry_envelope(event):
    payload = orjson.dumps(event)
    return (orjson.dumps({'event_id': event['event_id']}) + b'\n'
            + orjson.dumps({'type': 'event', 'length': len(payload)}) + b'\n' + payload + b'\n')


def test_custom_fingerprints_of_a_sentry_sdk(http, read_api, project):
    for value in ('card declined', 'insufficient funds'):
        event = {'event_id': uuid.uuid4().hex, 'platform': 'python', 'level': 'error',
                 'fingerprint': ['payments', '{{ default }}'],
                 'exception': {'values': [{'type': 'PaymentError', 'value': value,
                                           'stacktrace': {'frames': [
                                               {'function': 'charge', 'abs_path': '/app/pay.py',
                                                'lineno': 3, 'in_app': True}]}}]}}
        status, _h, _reply = http.request(
            'POST', f'/api/{project.id}/envelope/?sentry_key={project.key[3:]}',
            raw=sentry_envelope(event),
            headers={'Content-Type': 'application/x-sentry-envelope'})
        assert status == 200
    [issue] = issues_of(read_api, project)
    assert issue['event_count'] == 2


def test_merge_and_unmerge_through_the_api(http, read_api, project):
    other_stack = LIBRARY_ERROR.replace('fetch_prices', 'fetch_stock')
    for stack, user in ((LIBRARY_ERROR, 'u1'), (LIBRARY_ERROR, 'u2'), (other_stack, 'u2')):
        event = python_event(project, stack, user={'id': user}, environment='production')
        assert http.post('/api/v1/errors', event)[0] == 202
    prices, stock = sorted(issues_of(read_api, project), key=lambda i: -i['event_count'])
    assert (prices['event_count'], stock['event_count']) == (2, 1)
    status, _h, merged = read_api.request('POST', f'/api/v1/issues/{prices["id"]}/merge',
                                          {'issues': [stock['id']]})
    assert status == 200, merged
    assert merged['event_count'] == 3 and merged['user_count'] == 2
    assert merged['fingerprints'] == [prices['fingerprint'], stock['fingerprint']]
    assert [i['id'] for i in issues_of(read_api, project)] == [prices['id']]
    assert read_api.request('GET', f'/api/v1/issues/{stock["id"]}')[0] == 404
    body = read_api.get(f'/api/v1/issues/{prices["id"]}')
    assert body['tags']['environment'] == [{'value': 'production', 'count': 3}]
    # A later event of the merged fingerprint lands in the target.
    assert http.post('/api/v1/errors', python_event(project, other_stack, user={'id': 'u3'}))[0] == 202
    assert read_api.get(f'/api/v1/issues/{prices["id"]}')['event_count'] == 4
    # Unmerge: the fingerprint leaves with its two events; both issues are counted again.
    status, _h, new = read_api.request('POST', f'/api/v1/issues/{prices["id"]}/unmerge',
                                       {'fingerprint': stock['fingerprint']})
    assert status == 201, new
    assert new['fingerprints'] == [stock['fingerprint']]
    assert (new['event_count'], new['user_count']) == (2, 2)
    assert new['culprit'] == 'fetch_stock in prices.py'
    left = read_api.get(f'/api/v1/issues/{prices["id"]}')
    assert (left['event_count'], left['user_count']) == (2, 2)
    assert left['fingerprints'] == [prices['fingerprint']]
    assert left['tags']['environment'] == [{'value': 'production', 'count': 2}]
    events = read_api.get(f'/api/v1/issues/{new["id"]}/events')['events']
    assert len(events) == 2
    # The next event of that fingerprint goes to the new issue.
    assert http.post('/api/v1/errors', python_event(project, other_stack))[0] == 202
    assert read_api.get(f'/api/v1/issues/{new["id"]}')['event_count'] == 3
    with db.database.connection_context():
        kinds = sorted(a.kind for a in IssueActivity.select().where(
            IssueActivity.issue == prices['id']))
        assert kinds == ['created', 'created', 'merged', 'unmerged']
    # Refusals: the issue's own fingerprint, one it does not have, an empty list, itself.
    for path, payload in (('unmerge', {'fingerprint': prices['fingerprint']}),
                          ('unmerge', {'fingerprint': 'nope'}), ('merge', {'issues': []}),
                          ('merge', {'issues': [prices['id']]})):
        status, _h, reply = read_api.request('POST', f'/api/v1/issues/{prices["id"]}/{path}',
                                             payload)
        assert status == 400, (path, payload, reply)
    assert read_api.request('POST', f'/api/v1/issues/{prices["id"]}/merge',
                            {'issues': [999999]})[0] == 404


def test_project_patterns_from_the_command_line(config, http, read_api, project):
    env = {**os.environ, 'PROLIFERATE_DATABASE_URL': config.database_url}
    done = subprocess.run(
        [sys.executable, '-m', 'proliferate', 'project', 'set', project.slug,
         '--in-app', 'node_modules/@acme/', '--library', 'https://cdn.example.com/, /vendor-lib/'],
        cwd=pathlib.Path(__file__).resolve().parent.parent, env=env, capture_output=True,
        text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert 'in-app node_modules/@acme/, library https://cdn.example.com/, /vendor-lib/' in done.stdout
    # Before the key's first event: the key cache reads the patterns with the key.
    stack = ('TypeError: bad\n'
             '    at draw (https://cdn.example.com/chart.js:1:10)\n'
             '    at render (https://shop.example.com/node_modules/@acme/ui/index.js:2:20)\n'
             '    at main (https://shop.example.com/node_modules/react/index.js:9:1)')
    event = {'api_key': project.key, 'event_id': uuid.uuid4().hex,
             'timestamp': '2025-01-15T10:30:00Z', 'type': 'exception',
             'exception': {'type': 'TypeError', 'message': 'bad', 'stack': stack}}
    assert http.post('/api/v1/errors', event)[0] == 202
    [issue] = issues_of(read_api, project)
    assert issue['culprit'] == 'render in index.js'
