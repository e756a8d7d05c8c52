"""The client side of `proliferate sourcemaps upload`: find each minified file's map in a build
directory and send both to a server's upload API (urllib; no database, no server code).
"""

import base64
import binascii
import json
import mimetypes
import os
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

MINIFIED_SUFFIXES = ('.js', '.mjs', '.cjs')
# The comment is the last thing a bundler writes; reading the tail is enough and bounded.
TAIL_BYTES = 64 * 1024
SOURCE_MAPPING_URL = re.compile(rb'^[ \t]*//[#@][ \t]*sourceMappingURL=([^\s\'"]+)[ \t]*$', re.M)
TIMEOUT = 120


class UploadError(Exception):
    """A message for the user."""


def source_mapping_url(path):
    """The value of the file's last sourceMappingURL comment, or None."""
    size = path.stat().st_size
    with path.open('rb') as handle:
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read()
    found = SOURCE_MAPPING_URL.findall(tail)
    return found[-1].decode('utf-8', 'replace') if found else None


def find_map(path):
    """(map bytes, where they came from) for a minified file, or (None, why not).

    The sourceMappingURL comment first (a relative path beside the file, or an inline data: URL),
    then <file>.map.
    """
    reference = source_mapping_url(path)
    if reference:
        if reference.startswith('data:'):
            header, _, payload = reference.partition(',')
            try:
                if header.endswith(';base64'):
                    return base64.b64decode(payload, validate=True), 'inline data: URL'
                return urllib.parse.unquote_to_bytes(payload), 'inline data: URL'
            except (binascii.Error, ValueError) as error:
                return None, f'its inline source map is not valid base64 ({error})'
        if '://' not in reference:
            candidate = (path.parent / urllib.parse.unquote(reference.split('?', 1)[0])).resolve()
            if candidate.is_file():
                return candidate.read_bytes(), str(candidate)
    beside = path.with_name(path.name + '.map')
    if beside.is_file():
        return beside.read_bytes(), str(beside)
    if reference:
        return None, (f'its sourceMappingURL {reference!r} is not a file here and there is no '
                      f'{beside.name}')
    return None, 'no sourceMappingURL comment and no .map file beside it'


def find_pairs(directory):
    """[(minified path, url path relative to directory, map bytes or None, note)], sorted."""
    root = Path(directory)
    if not root.is_dir():
        raise UploadError(f'{directory} is not a directory')
    pairs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != 'node_modules' and not d.startswith('.'))
        for name in sorted(filenames):
            if not name.endswith(MINIFIED_SUFFIXES):
                continue
            path = Path(dirpath) / name
            relative = path.relative_to(root).as_posix()
            data, note = find_map(path)
            pairs.append((path, relative, data, note))
    return pairs


def file_url(relative, url_prefix):
    prefix = (url_prefix or '~').rstrip('/')
    return f'{prefix}/{relative}'


def encode_multipart(fields, files):
    """(body, content type) for text fields {name: str} and files {name: (filename, bytes)}."""
    boundary = 'proliferate-' + secrets.token_hex(16)
    chunks = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                      .encode() + value.encode('utf-8') + b'\r\n')
    for name, (filename, data) in files.items():
        kind = mimetypes.guess_type(filename)[0] or 'application/octet-stream'
        safe = filename.replace('"', '_').replace('\r', '_').replace('\n', '_')
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{safe}"\r\nContent-Type: {kind}\r\n\r\n')
        chunks.append(head.encode() + data + b'\r\n')
    chunks.append(f'--{boundary}--\r\n'.encode())
    return b''.join(chunks), f'multipart/form-data; boundary={boundary}'


def request(server, token, path, body, content_type):
    req = urllib.request.Request(server.rstrip('/') + path, data=body, method='POST', headers={  # noqa: S310 (scheme checked to be http(s) before this)
        'Authorization': f'Bearer {token}', 'Content-Type': content_type,
        'User-Agent': 'proliferate-sourcemaps-upload'})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as response:  # noqa: S310 (scheme checked to be http(s) before this)
            return response.status, json.loads(response.read() or b'null')
    except urllib.error.HTTPError as error:
        content = error.read()
        try:
            detail = json.loads(content).get('detail')
        except (ValueError, AttributeError):
            detail = content.decode('utf-8', 'replace')[:300]
        return error.code, {'detail': detail}
    except urllib.error.URLError as error:
        if isinstance(error.reason, (BrokenPipeError, ConnectionResetError)):
            # Waitress closes the connection on a body over its max_request_body_size.
            raise UploadError(f'{server} closed the connection while receiving {len(body):,} '
                              'bytes: the request is larger than the server accepts') from error
        raise UploadError(f'cannot reach {server}: {error.reason}') from error
    except (BrokenPipeError, ConnectionResetError):
        raise UploadError(f'{server} closed the connection while receiving {len(body):,} bytes: '
                          'the request is larger than the server accepts') from None


def upload(directory, *, release, server, token, url_prefix=None, project=None, out=print):
    """Create the release, upload every minified file that has a map; -> number of failures.
    project (id or slug), when given, must be the token's: the server refuses the upload
    otherwise, so a token pasted into the wrong pipeline fails instead of filling another project."""
    if not server:
        raise UploadError('no server: pass --server URL or set PROLIFERATE_SERVER_URL')
    if not server.startswith(('http://', 'https://')):
        raise UploadError(f'--server must be an http:// or https:// URL, not {server!r}')
    if not token:
        raise UploadError('no upload token: pass --token pru_... or set PROLIFERATE_UPLOAD_TOKEN')
    if token.startswith('pk_'):
        raise UploadError('that is a public ingest key (pk_...); uploads need an upload token '
                          '(made on the project\'s Keys & setup page)')
    pairs = find_pairs(directory)
    if not pairs:
        raise UploadError(f'no .js files under {directory}')
    target = {'project': str(project)} if project else {}
    status, body = request(server, token, '/api/v1/releases',
                           json.dumps({'version': release, **target}).encode(),
                           'application/json')
    if status not in (200, 201):
        raise UploadError(f'release {release!r}: {status} {body.get("detail")}')
    out(f'Release {release!r} ({"created" if status == 201 else "exists"}) on {server}')
    failures = 0
    uploaded = 0
    for path, relative, map_data, note in pairs:
        if map_data is None:
            out(f'  skipped   {relative}: {note}')
            continue
        url = file_url(relative, url_prefix)
        files = {'sourcemap': (path.name + '.map', map_data),
                 'minified': (path.name, path.read_bytes())}
        body, content_type = encode_multipart({'release': release, 'url': url, **target}, files)
        status, reply = request(server, token, '/api/v1/sourcemaps', body, content_type)
        if status in (200, 201):
            uploaded += 1
            sources = reply.get('sources', 0)
            content = reply.get('sources_with_content', 0)
            warning = '' if content == sources else (
                f'; {sources - content} source(s) without sourcesContent get no context lines')
            out(f'  {"uploaded" if status == 201 else "replaced"}  {url}  '
                f'(map {len(map_data):,} bytes, {sources} sources{warning})')
        else:
            failures += 1
            out(f'  FAILED    {url}: {status} {reply.get("detail")}')
    out(f'{uploaded} map(s) uploaded, {failures} failed, '
        f'{sum(1 for p in pairs if p[2] is None)} file(s) without a map')
    return failures
