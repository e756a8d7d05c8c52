"""What the source-map test modules share: the committed fixtures (tests/data/sourcemaps), upload
tokens, a multipart encoder of their own (independent of the CLI's) and event posting."""

import datetime
import json
import secrets
import uuid
from pathlib import Path

from proliferate import auth
from proliferate import db
from proliferate import orgs
from proliferate.models import Organization
from proliferate.models import Project
from proliferate.models import User

DATA = Path(__file__).parent / 'data' / 'sourcemaps'
SRC = DATA / 'src'
MIN = DATA / 'min'
CDN = 'https://cdn.example.com/static/js/'


def map_bytes(build):
    return (MIN / f'app{build}.min.js.map').read_bytes()


def minified_bytes(build):
    return (MIN / f'app{build}.min.js').read_bytes()


def stacks(build):
    """{scenario: the V8 stack Node printed for the minified build}."""
    return json.loads((DATA / 'stacks' / f'app{build}.json').read_text())


def source_line(filename, needle):
    """(1-based line, text) of the one line of src/<filename> holding needle."""
    lines = (SRC / filename).read_text().split('\n')
    hits = [i for i, line in enumerate(lines) if needle in line]
    assert len(hits) == 1, (filename, needle, hits)
    return hits[0] + 1, lines[hits[0]]


def make_upload_token(project, email=None):
    """An upload token (pru_...) for project (a conftest make_project namespace)."""
    email = email or f'ci-{secrets.token_hex(4)}@example.com'
    with db.database.connection_context():
        with db.database.atomic():
            user = User.get_or_none(User.email == email) or orgs.create_user(email)
            org = Organization.get_by_id(project.org_id)
            orgs.add_member(org, user, 'member')
            token, _row = auth.create_token(user, org, kind='upload',
                                            project=Project.get_by_id(project.id))
    return token


def multipart(fields, files=None):
    """(body, headers) of a multipart/form-data request."""
    boundary = 'test' + secrets.token_hex(12)
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f'{value}\r\n'.encode())
    for name, (filename, data) in (files or {}).items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                   f'filename="{filename}"\r\nContent-Type: application/json\r\n\r\n'.encode()
                   + data + b'\r\n')
    out.append(f'--{boundary}--\r\n'.encode())
    return b''.join(out), {'Content-Type': f'multipart/form-data; boundary={boundary}'}


def upload_map(http, token, release, url, data, minified=None, **fields):
    """POST /api/v1/sourcemaps -> (status, parsed body)."""
    files = {'sourcemap': ('app.min.js.map', data)}
    if minified is not None:
        files['minified'] = ('app.min.js', minified)
    body, headers = multipart({'release': release, 'url': url, **fields}, files)
    status, _headers, reply = http.request('POST', '/api/v1/sourcemaps', raw=body,
                                           headers={**headers, 'Authorization': f'Bearer {token}'})
    return status, reply


def post_stack(http, key, stack, release=None, event_id=None):
    """POST one exception event with a real stack; -> its event_id."""
    event_id = event_id or uuid.uuid4().hex
    header, _, message = stack.split('\n', 1)[0].partition(': ')
    body = {'api_key': key, 'event_id': event_id, 'type': 'exception',
            'timestamp': datetime.datetime.now(datetime.UTC).isoformat(),
            'exception': {'type': header, 'message': message, 'stack': stack}}
    if release is not None:
        body['release'] = release
    status, _headers, reply = http.post('/api/v1/errors', body)
    assert status == 202, (status, reply)
    return event_id
