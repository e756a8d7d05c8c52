"""The source-map upload API: POST /api/v1/releases and POST /api/v1/sourcemaps (project upload
tokens only, never the public pk_ key), and the read-API list of a project's releases with their
figures (release_stats). Parsing a map happens on the request thread; the writes run on the
writer (releases.py)."""

import hashlib

import falcon
import orjson

from proliferate import auth
from proliferate import jsonapi
from proliferate import release_stats
from proliferate.models import Project
from proliferate.models import SourceMap
from proliferate.sourcemaps import releases
from proliferate.sourcemaps.decode import InvalidSourceMap
from proliferate.sourcemaps.decode import parse_sourcemap
from proliferate.times import iso
from proliferate.times import utcnow

MiB = 1024 * 1024

# The issue's limit for one map; the minified file gets the same. A request carries one of each
# plus a few short fields, so the body bound is both and a little more.
MAX_SOURCEMAP_BYTES = 50 * MiB

MAX_MINIFIED_BYTES = 50 * MiB

MAX_UPLOAD_BODY = MAX_SOURCEMAP_BYTES + MAX_MINIFIED_BYTES + MiB

MAX_FIELD_BYTES = 4096

# Events carry release trimmed to 200 characters (normalize.MAX_SHORT): a longer version could
# never match an event, so it is refused rather than stored.
MAX_VERSION = 200

MAX_URL = 2048

FILE_FIELDS = {'sourcemap': MAX_SOURCEMAP_BYTES, 'minified': MAX_MINIFIED_BYTES}

TEXT_FIELDS = ('release', 'url', 'url_prefix', 'project')

UPLOAD_TOKEN_REQUIRED = ('an upload token is required: Authorization: Bearer pru_... '  # noqa: S105 (a message, not a password)
                         '(make one on the project\'s Keys & setup page, or run '
                         'proliferate token create EMAIL --upload PROJECT)')



def require_upload_token(req):
    """The upload ApiToken of this request, or 401 saying what to send instead."""
    presented = jsonapi.bearer_token(req) or req.get_header('X-API-Key')
    if presented and presented.startswith('pk_'):
        # pk_ keys ship inside browsers: anyone could read one and replace the maps.
        raise falcon.HTTPUnauthorized(
            description='pk_ keys are public ingest keys and cannot upload; '
                        + UPLOAD_TOKEN_REQUIRED,
            headers={'WWW-Authenticate': 'Bearer'})
    row = auth.find_token(jsonapi.bearer_token(req), 'upload')
    if row is None or row.project_id is None:
        raise falcon.HTTPUnauthorized(description=UPLOAD_TOKEN_REQUIRED,
                                      headers={'WWW-Authenticate': 'Bearer'})
    return row



def token_project(token, ref):
    """The token's project; ref (id or slug), when sent, must name that same project."""
    project = Project.get_by_id(token.project_id)
    if ref in (None, ''):
        return project
    ref = str(ref)
    if ref != str(project.id) and ref != project.slug:
        raise falcon.HTTPForbidden(
            description=f'this upload token is for project {project.slug!r}, not {ref!r}')
    return project



def check_version(version):
    if not isinstance(version, str) or not version.strip():
        raise falcon.HTTPBadRequest(description='release: required (the version events send)')
    if len(version) > MAX_VERSION:
        raise falcon.HTTPBadRequest(
            description=f'release: longer than {MAX_VERSION} characters (events trim it there)')
    if version != version.strip():
        raise falcon.HTTPBadRequest(description='release: leading or trailing spaces')
    return version



def join_url(url, url_prefix):
    """The URL a map is stored under: url_prefix + '/' + url for a relative url, '~/path' for a
    path without a host (matches that path on any host)."""
    url = (url or '').strip()
    url_prefix = (url_prefix or '').strip()
    if not url:
        raise falcon.HTTPBadRequest(
            description='url: required (the minified file\'s URL or ~/path)')
    absolute = '://' in url or url.startswith('~/')
    if url_prefix and not absolute:
        url = url_prefix.rstrip('/') + '/' + url.lstrip('/')
    if url.startswith('/'):
        url = '~' + url
    elif '://' not in url and not url.startswith('~/'):
        url = '~/' + url
    if len(url) > MAX_URL:
        raise falcon.HTTPBadRequest(description=f'url: longer than {MAX_URL} characters')
    return url



def release_json(release, maps=None):
    body = {'id': release.id, 'project_id': release.project_id, 'version': release.version,
            'created_at': iso(release.created_at)}
    if maps is not None:
        body['sourcemaps'] = [sourcemap_json(m) for m in maps]
    return body



def sourcemap_json(row):
    return {'id': row.id, 'url': row.url, 'size': row.size, 'sha256': row.sha256,
            'resolved_count': row.resolved_count, 'created_at': iso(row.created_at)}



class Releases:
    """POST /api/v1/releases {"version": ..., "project": optional id or slug}: 201 when created,
    200 when it existed (idempotent per version)."""

    def __init__(self, writer, clock=utcnow):
        self.writer = writer
        self.clock = clock

    def on_post(self, req, resp):
        token = require_upload_token(req)
        body = req.bounded_stream.read(MAX_FIELD_BYTES * 4 + 1)
        try:
            media = orjson.loads(body or b'null')
        except orjson.JSONDecodeError as error:
            raise falcon.HTTPBadRequest(description=f'body is not valid JSON: {error}') from error
        if not isinstance(media, dict):
            raise falcon.HTTPBadRequest(description='body must be a JSON object: {"version": ...}')
        project = token_project(token, media.get('project'))
        version = check_version(media.get('version', media.get('release')))
        now = self.clock()

        def write():
            releases.touch_token(token, now)
            return releases.ensure_release(project.id, version, now)

        release, created = self.writer.call(write)
        maps = list(releases.maps_with_counts().where(SourceMap.release == release.id))
        jsonapi.send(resp, {**release_json(release, maps), 'created': created},
             falcon.HTTP_201 if created else falcon.HTTP_200)



def read_form(req):
    """The upload's fields: text ones as str, files as (bytes, filename). 413 past the limits."""
    content_type = (req.content_type or '').lower()
    if not content_type.startswith('multipart/form-data'):
        raise falcon.HTTPUnsupportedMediaType(
            description='send multipart/form-data with release, url and the sourcemap file')
    length = req.content_length
    if length is not None and length > MAX_UPLOAD_BODY:
        raise falcon.HTTPContentTooLarge(
            description=f'upload is {length} bytes; at most {MAX_UPLOAD_BODY} are accepted')
    fields = {}
    for part in req.get_media():
        name = part.name
        if name in FILE_FIELDS:
            limit = FILE_FIELDS[name]
            # Read the stream, not part.data: get_data() stops at Falcon's 1 MiB buffer option.
            data = part.stream.read(limit + 1)
            if len(data) > limit:
                raise falcon.HTTPContentTooLarge(
                    description=f'{name}: over {limit // MiB} MiB; split the bundle or drop '
                                'sourcesContent of vendored code')
            fields[name] = (data, part.filename)
        elif name in TEXT_FIELDS:
            data = part.stream.read(MAX_FIELD_BYTES + 1)
            if len(data) > MAX_FIELD_BYTES:
                raise falcon.HTTPBadRequest(
                    description=f'{name}: longer than {MAX_FIELD_BYTES} bytes')
            try:
                fields[name] = data.decode('utf-8')
            except UnicodeDecodeError:
                raise falcon.HTTPBadRequest(description=f'{name}: not UTF-8') from None
        else:
            part.stream.read()  # skipped: unknown parts are ignored, not an error
    return fields



class SourceMaps:
    """POST /api/v1/sourcemaps, multipart: release, url (or url_prefix + the file's name), the
    sourcemap file, optionally the minified file. 201 created, 200 replaced; 400 with the
    decoder's reason for a bad map, 413 over 50 MiB. The release is created when missing."""

    def __init__(self, writer, clock=utcnow):
        self.writer = writer
        self.clock = clock

    def on_post(self, req, resp):
        token = require_upload_token(req)
        fields = read_form(req)
        project = token_project(token, fields.get('project'))
        version = check_version(fields.get('release'))
        if 'sourcemap' not in fields:
            raise falcon.HTTPBadRequest(description='sourcemap: required (the .map file)')
        map_data, map_name = fields['sourcemap']
        minified_data, minified_name = fields.get('minified', (None, None))
        url = fields.get('url')
        if not url and fields.get('url_prefix'):
            # With only a prefix, the minified file's own name completes the URL.
            without_suffix = map_name[:-4] if map_name and map_name.endswith('.map') else None
            url = minified_name or without_suffix
        url = join_url(url, fields.get('url_prefix'))
        try:
            index = parse_sourcemap(map_data)
        except InvalidSourceMap as error:
            raise falcon.HTTPBadRequest(description=f'sourcemap: {error}') from error
        sources = len(index.sources)
        with_content = sum(1 for i in range(sources) if index.context(i, 1)[1] is not None)
        del index
        now = self.clock()

        def write():
            releases.touch_token(token, now)
            return releases.store_sourcemap(project.id, version, url, map_data, minified_data, now)

        map_id, release_id, created = self.writer.call(write)
        jsonapi.send(resp, {
            'id': map_id, 'release_id': release_id, 'release': version, 'url': url,
            'size': len(map_data) + len(minified_data or b''),
            'sha256': hashlib.sha256(map_data).hexdigest(),
            'sources': sources, 'sources_with_content': with_content, 'created': created,
        }, falcon.HTTP_201 if created else falcon.HTTP_200)



class ProjectReleases:
    """GET /api/v1/projects/{id}/releases (read token): every release the project's events named
    or that has uploaded source maps, newest first (release order), with its figures and maps.
    ?limit= (1-100, default 100) and ?cursor= (the previous page's next)."""

    def on_get(self, req, resp, project_id):
        token = jsonapi.require_token(req)
        project = Project.get_or_none(Project.id == project_id,
                                      Project.organization == token.organization_id)
        if project is None:
            raise falcon.HTTPNotFound(description=f'no project {project_id}')
        limit = req.get_param('limit') or '100'
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 100):
            raise falcon.HTTPBadRequest(description='limit: must be an integer from 1 to 100')
        cursor = req.get_param('cursor') or '0'
        # The cursor is the position in the release order: the order is computed, not indexed.
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 9):
            raise falcon.HTTPBadRequest(description='cursor: not a cursor of this list')
        offset, limit = int(cursor), int(limit)
        figures, total = release_stats.project_releases(project.id, offset=offset, limit=limit)
        maps = {}
        ids = [f.release_id for f in figures if f.release_id is not None]
        if ids:
            for row in releases.maps_with_counts().where(SourceMap.release.in_(ids)):
                maps.setdefault(row.release_id, []).append(row)
        jsonapi.send(resp, {
            'releases': [figures_json(project.id, f, maps.get(f.release_id, [])) for f in figures],
            'next': str(offset + limit) if offset + limit < total else None, 'total': total})


def figures_json(project_id, figures, maps):
    return {
        'version': figures.version, 'id': figures.release_id, 'project_id': project_id,
        'first_seen': iso(figures.first_seen), 'last_seen': iso(figures.last_seen),
        'event_count': figures.event_count, 'issue_count': figures.issue_count,
        'new_issues': figures.new_issues, 'regressions': figures.regressions,
        'resolved_issues': figures.resolved,
        'created_at': iso(figures.created_at),
        'sourcemap_count': figures.map_count, 'sourcemaps': [sourcemap_json(m) for m in maps]}
