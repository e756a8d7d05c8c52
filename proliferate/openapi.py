"""The OpenAPI 3.0 document of every JSON route, served at /api/openapi.json."""

import falcon
import orjson

from proliferate import __version__


def _ref(name):
    return {'$ref': f'#/components/schemas/{name}'}


def _json(schema, description='OK'):
    return {'description': description, 'content': {'application/json': {'schema': schema}}}


ERROR = _json(_ref('Error'), 'Error')
NULLABLE_STRING = {'type': 'string', 'nullable': True}

EVENT = {
    'type': 'object',
    'description': 'An error event: the documented shape. The Python SDK 0.1.1+/0.2.x shape '
                   '(exception.value/stacktrace, context.user, context.tags, X-API-Key) is accepted too.',
    'required': ['event_id', 'timestamp'],
    'properties': {
        'api_key': {'type': 'string', 'description': 'Project ingest key (pk_...); or X-API-Key header'},
        'event_id': {'type': 'string', 'maxLength': 200},
        'timestamp': {'type': 'string', 'description': 'ISO 8601'},
        'type': {'type': 'string', 'enum': ['exception', 'message']},
        'level': {'type': 'string', 'enum': ['error', 'warning', 'info'], 'default': 'error'},
        'environment': NULLABLE_STRING, 'release': NULLABLE_STRING, 'url': NULLABLE_STRING,
        'user_agent': NULLABLE_STRING, 'message': NULLABLE_STRING,
        'session_id': NULLABLE_STRING, 'window_id': NULLABLE_STRING,
        'exception': {'type': 'object', 'nullable': True, 'properties': {
            'type': NULLABLE_STRING, 'message': NULLABLE_STRING, 'stack': NULLABLE_STRING}},
        'user': {'type': 'object', 'nullable': True},
        'account': {'type': 'object', 'nullable': True},
        'breadcrumbs': {'type': 'array', 'nullable': True, 'items': {'type': 'object'}},
        'extra': {'type': 'object', 'nullable': True},
        # An extension of the documented event (Sentry SDKs send the same field).
        'fingerprint': {
            'type': 'array', 'nullable': True, 'maxItems': 50,
            'items': {'oneOf': [{'type': 'string'}, {'type': 'number'}, {'type': 'boolean'}]},
            'description': 'Extension: replaces the grouping key (events with equal values make one '
                           'issue); "{{ default }}" stands for the key Proliferate would use. At '
                           'most 50 values count, each cut to 200 characters.'},
    },
}

# Every date the API returns: UTC, ISO 8601 with six fraction digits (times.iso), so the text has
# one width and sorts as the instants do.
DATETIME = {'type': 'string', 'format': 'date-time', 'example': '2025-01-15T10:30:00.123000Z',
            'description': 'UTC, ISO 8601 with microseconds: 2025-01-15T10:30:00.123000Z'}
NULLABLE_DATETIME = {**DATETIME, 'nullable': True}

PEOPLE_LIMIT = {'name': 'limit', 'in': 'query', 'required': False,
                'schema': {'type': 'integer', 'minimum': 1, 'maximum': 1000}}

ISSUE = {
    'type': 'object',
    'required': ['id', 'fingerprint', 'type', 'title', 'culprit', 'level', 'status', 'event_count',
                 'user_count', 'account_count', 'first_seen', 'last_seen'],
    'properties': {
        'id': {'type': 'integer'}, 'project_id': {'type': 'integer'},
        'fingerprint': {'type': 'string'}, 'type': {'type': 'string'},
        'title': {'type': 'string'}, 'culprit': {'type': 'string'},
        'level': {'type': 'string'},
        'status': {'type': 'string', 'enum': ['unresolved', 'resolved', 'ignored']},
        'event_count': {'type': 'integer'}, 'user_count': {'type': 'integer'},
        'account_count': {'type': 'integer'},
        'first_seen': DATETIME, 'last_seen': DATETIME,
        'first_release': NULLABLE_STRING, 'last_release': NULLABLE_STRING,
        'is_regressed': {'type': 'boolean'}, 'regressed_release': NULLABLE_STRING,
        'regressed_at': NULLABLE_DATETIME, 'resolved_at': NULLABLE_DATETIME,
        'fingerprints': {'type': 'array', 'items': {'type': 'string'},
                         'description': 'Every fingerprint whose events land in this issue: its '
                                        'own first, then those merged into it'},
        'tags': {'type': 'object'},
        # The issue list's: with an environment, release or period (parameters or terms), the
        # counts above are those of that slice and these are over every event.
        'total_event_count': {'type': 'integer'}, 'total_user_count': {'type': 'integer'},
        'total_account_count': {'type': 'integer'},
        'user_count_capped': {'type': 'boolean', 'description': 'more users than user_count '
                                                                '(a slice counts up to 10,000)'},
        'account_count_capped': {'type': 'boolean'},
    },
}

SLICE = {'type': 'object', 'description': 'What the counts of a filtered list count: the events '
                                          'of this environment and release since this hour',
         'properties': {'environment': NULLABLE_STRING, 'release': NULLABLE_STRING,
                        'since': {**DATETIME, 'nullable': True}}}

PROJECT = {
    'type': 'object', 'required': ['id', 'name', 'slug', 'org'],
    'properties': {'id': {'type': 'integer'}, 'name': {'type': 'string'},
                   'slug': {'type': 'string'}, 'org': {'type': 'string'},
                   'created_at': DATETIME,
                   # The DSN of the project's oldest live key, for Sentry SDKs.
                   'dsn': NULLABLE_STRING,
                   'dropped': {'type': 'object', 'additionalProperties': {'type': 'integer'}},
                   'rate_limit_per_minute': {'type': 'integer', 'nullable': True}},
}

BEARER = [{'bearer': []}]
UPLOAD = [{'upload': []}]
RELEASE = {'type': 'object', 'required': ['id', 'version'], 'properties': {
    'id': {'type': 'integer'}, 'project_id': {'type': 'integer'}, 'version': {'type': 'string'},
    'created_at': DATETIME, 'maps': {'type': 'array', 'items': {'type': 'object'}}}}
ID = {'type': 'integer'}
NULLABLE_ID = {'type': 'integer', 'nullable': True}
COUNT = {'type': 'integer', 'minimum': 0}
RELEASE_FIGURES = {
    'type': 'object',
    'required': ['version', 'id', 'first_seen', 'event_count', 'new_issues', 'regressions',
                 'resolved_issues', 'sourcemap_count', 'sourcemaps'],
    'properties': {
        'version': {'type': 'string'},
        'id': {**NULLABLE_ID, 'description': 'The uploaded release (null: only events named it)'},
        'project_id': ID,
        'first_seen': {**NULLABLE_DATETIME, 'description': 'Its first event (null: none yet)'},
        'last_seen': NULLABLE_DATETIME,
        'event_count': COUNT, 'issue_count': COUNT,
        'new_issues': {**COUNT, 'description': 'Issues first seen in this release'},
        'regressions': {**COUNT, 'description': 'Issues that came back in this release'},
        'resolved_issues': {**COUNT, 'description': 'Issues resolved in this release'},
        'created_at': {**NULLABLE_DATETIME, 'description': 'When it was uploaded'},
        'sourcemap_count': COUNT,
        'sourcemaps': {'type': 'array', 'items': {'type': 'object'}}}}


def _param(name, where='query', schema=None, required=False):
    return {'name': name, 'in': where, 'required': required or where == 'path',
            'schema': schema or {'type': 'string'}}


def _get(summary, schema, params=(), errors=(401, 404)):
    responses = {'200': _json(schema)}
    responses.update({str(code): ERROR for code in errors})
    return {'get': {'summary': summary, 'security': BEARER, 'parameters': list(params),
                    'responses': responses}}


def _ingest(summary, body, ok):
    return {'post': {
        'summary': summary, 'security': [],
        'requestBody': {'required': True, 'content': {
            'application/json': {'schema': body}, 'text/plain': {'schema': {'type': 'string'}}}},
        'responses': {'202': _json(ok, 'Accepted (committed)'), '400': ERROR, '401': ERROR,
                      '413': ERROR, '415': ERROR, '429': ERROR, '503': ERROR},
    }}


BATCH_OK = {'type': 'object', 'required': ['processed', 'results'], 'properties': {
    'processed': {'type': 'integer'},
    'results': {'type': 'array', 'items': {'type': 'object', 'properties': {
        'event_id': NULLABLE_STRING,
        'status': {'type': 'string', 'enum': ['ok', 'rejected', 'duplicate', 'rate_limited']},
        'reason': {'type': 'string'}}}}}}

# An empty value means "not given" (the default), as a cleared HTML form field sends it.
ISSUE_PARAMS = [
    _param('status', schema={'type': 'string', 'enum': ['unresolved', 'resolved', 'ignored', 'all', '']}),
    _param('environment'), _param('release'),
    _param('level', schema={'type': 'string', 'enum': ['error', 'warning', 'info', '']}),
    _param('query'),
    # The list's period: issues seen within it, counted within it (last_seen:-<period>).
    _param('period', schema={'type': 'string', 'enum': ['1h', '24h', '7d', '14d', '30d', '']}),
    _param('sort', schema={'type': 'string',
                           'enum': ['last_seen', 'first_seen', 'events', 'users', 'accounts', '']}),
    _param('cursor'), _param('limit', schema={'type': 'integer', 'minimum': 1, 'maximum': 100}),
]
PAGE = [_param('cursor'), _param('limit', schema={'type': 'integer', 'minimum': 1, 'maximum': 100})]


def _sentry(summary, media):
    """A Sentry SDK's route: the key in sentry_key, X-Sentry-Auth or the envelope's dsn."""
    return {
        'parameters': [_param('project_id', 'path', ID), _param('sentry_key'),
                       _param('X-Sentry-Auth', 'header')],
        'post': {
            'summary': summary, 'security': [],
            'requestBody': {'required': True, 'content': {
                media: {'schema': {'type': 'string', 'format': 'binary'}},
                'text/plain': {'schema': {'type': 'string'}}}},
            'responses': {'200': _json({'type': 'object', 'properties': {'id': NULLABLE_STRING}},
                                       'Accepted (committed when it holds an event)'),
                          '400': ERROR, '401': ERROR, '403': ERROR, '404': ERROR, '413': ERROR,
                          '429': ERROR, '503': ERROR}},
        'options': {'summary': 'CORS preflight', 'security': [],
                    'responses': {'204': {'description': 'Allowed'}, '404': ERROR}},
    }


def build_document():
    paths = {
        '/api/v1/errors': _ingest('Ingest one event', _ref('Event'), {
            'type': 'object', 'required': ['event_id'], 'properties': {'event_id': {'type': 'string'}}}),
        # Each item is meant to be an Event, but an item that is not one is rejected on its own
        # in `results` (202), not with the whole batch: the schema of an item is open.
        '/api/v1/errors/batch': _ingest('Ingest up to 100 events', {
            'type': 'array', 'maxItems': 100, 'items': {'anyOf': [_ref('Event'), {}]}}, BATCH_OK),
        # Sentry SDKs by DSN (a trailing slash is accepted too).
        '/api/{project_id}/envelope': _sentry('A Sentry envelope (its event is stored; sessions, '
                                              'transactions and the rest are counted)',
                                              'application/x-sentry-envelope'),
        '/api/{project_id}/store': _sentry('One Sentry event (older SDKs)', 'application/json'),
        '/healthz': {'get': {'summary': 'Health', 'security': [],
                             'responses': {'200': _json({'type': 'object'})}}},
        '/api/v1/projects': _get('Projects of the token\'s organization', {
            'type': 'object', 'properties': {'projects': {'type': 'array', 'items': _ref('Project')}}},
            errors=(401,)),
        '/api/v1/projects/{project_id}': _get('A project with its dropped-event counts', _ref('Project'),
                                              [_param('project_id', 'path', ID)]),
        '/api/v1/projects/{project_id}/issues': _get('Issues of a project', {
            'type': 'object', 'properties': {
                'issues': {'type': 'array', 'items': _ref('Issue')},
                'next': NULLABLE_STRING, 'total': {'type': 'integer'},
                'slice': {**SLICE, 'nullable': True}}},
            [_param('project_id', 'path', ID)] + ISSUE_PARAMS,
            errors=(400, 401, 404)),
        '/api/v1/projects/{project_id}/events/{event_id}': _get(
            'An event by its event_id', {'type': 'object'},
            [_param('project_id', 'path', ID), _param('event_id', 'path')]),
        '/api/v1/issues/{issue_id}': {
            **_get('An issue with its tag distributions', _ref('Issue'), [_param('issue_id', 'path', ID)]),
            'patch': {'summary': 'Change an issue\'s status', 'security': BEARER,
                      'parameters': [_param('issue_id', 'path', ID)],
                      'requestBody': {'required': True, 'content': {'application/json': {'schema': {
                          'type': 'object', 'required': ['status'], 'properties': {'status': {
                              'type': 'string', 'enum': ['unresolved', 'resolved', 'ignored']}}}}}},
                      'responses': {'200': _json(_ref('Issue')), '400': ERROR, '401': ERROR,
                                    '404': ERROR}}},
        '/api/v1/issues/{issue_id}/merge': {'post': {
            'summary': 'Merge issues of the same project into this one (events, counts, users, '
                       'accounts, tags and fingerprints move; the merged issues are deleted)',
            'security': BEARER, 'parameters': [_param('issue_id', 'path', ID)],
            'requestBody': {'required': True, 'content': {'application/json': {'schema': {
                'type': 'object', 'required': ['issues'], 'properties': {'issues': {
                    'type': 'array', 'minItems': 1, 'maxItems': 100, 'items': ID}}}}}},
            'responses': {'200': _json(_ref('Issue')), '400': ERROR, '401': ERROR,
                          '404': ERROR}}},
        '/api/v1/issues/{issue_id}/unmerge': {'post': {
            'summary': 'Take a fingerprint (not the issue\'s own) out of this issue into a new '
                       'issue, with its events',
            'security': BEARER, 'parameters': [_param('issue_id', 'path', ID)],
            'requestBody': {'required': True, 'content': {'application/json': {'schema': {
                'type': 'object', 'required': ['fingerprint'],
                'properties': {'fingerprint': {'type': 'string'}}}}}},
            'responses': {'201': _json(_ref('Issue'), 'The new issue'), '400': ERROR,
                          '401': ERROR, '404': ERROR}}},
        '/api/v1/issues/{issue_id}/events': _get('Events of an issue, newest first', {
            'type': 'object', 'properties': {'events': {'type': 'array', 'items': {'type': 'object'}},
                                             'next': NULLABLE_STRING}},
            [_param('issue_id', 'path', ID)] + PAGE, errors=(400, 401, 404)),
        '/api/v1/issues/{issue_id}/users': _get('Affected users', {
            'type': 'object', 'properties': {'users': {'type': 'array', 'items': {'type': 'object'}}}},
            [_param('issue_id', 'path', ID), PEOPLE_LIMIT],
            errors=(400, 401, 404)),
        '/api/v1/issues/{issue_id}/accounts': _get('Affected accounts', {
            'type': 'object', 'properties': {'accounts': {'type': 'array', 'items': {'type': 'object'}}}},
            [_param('issue_id', 'path', ID), PEOPLE_LIMIT],
            errors=(400, 401, 404)),
        '/api/v1/projects/{project_id}/releases': _get(
            'Every release the project\'s events named or with uploaded source maps, newest '
            'first, with events, new issues, regressions, issues resolved in it and its maps', {
                'type': 'object', 'required': ['releases', 'next', 'total'], 'properties': {
                    'releases': {'type': 'array', 'items': RELEASE_FIGURES},
                    'next': NULLABLE_STRING, 'total': COUNT}},
            [_param('project_id', 'path', ID)] + PAGE, errors=(400, 401, 404)),
        # Upload routes take a project upload token (pru_...), never a read token or pk_ key.
        '/api/v1/releases': {'post': {
            'summary': 'Create a release (idempotent per version)', 'security': UPLOAD,
            'requestBody': {'required': True, 'content': {'application/json': {'schema': {
                'type': 'object', 'required': ['version'], 'properties': {
                    'version': {'type': 'string'}, 'project': {'type': 'string'}}}}}},
            'responses': {'200': _json(RELEASE, 'Existed'), '201': _json(RELEASE, 'Created'),
                          '400': ERROR, '401': ERROR, '403': ERROR, '404': ERROR, '413': ERROR,
                          '415': ERROR}}},
        '/api/v1/sourcemaps': {'post': {
            'summary': 'Upload a source map (and optionally its minified file) for a release',
            'security': UPLOAD,
            'requestBody': {'required': True, 'content': {'multipart/form-data': {'schema': {
                'type': 'object', 'required': ['release', 'url', 'sourcemap'], 'properties': {
                    'release': {'type': 'string'}, 'url': {'type': 'string'},
                    'url_prefix': {'type': 'string'}, 'project': {'type': 'string'},
                    'sourcemap': {'type': 'string', 'format': 'binary'},
                    'minified': {'type': 'string', 'format': 'binary'}}}}}},
            'responses': {'200': _json({'type': 'object'}, 'Replaced'),
                          '201': _json({'type': 'object'}, 'Created'), '400': ERROR,
                          '401': ERROR, '403': ERROR, '404': ERROR, '413': ERROR, '415': ERROR}}},
    }
    paths.update(triage_paths())
    paths['/api/v1/issues/{issue_id}']['patch'] = TRIAGE_PATCH
    return {
        'openapi': '3.0.3',
        'info': {'title': 'Proliferate', 'version': __version__,
                 'description': 'Every date is UTC, ISO 8601 with six fraction digits: '
                                '2025-01-15T10:30:00.123000Z.'},
        'paths': paths,
        'components': {
            'securitySchemes': {'bearer': {'type': 'http', 'scheme': 'bearer'},
                                'upload': {'type': 'http', 'scheme': 'bearer',
                                           'description': 'a project upload token (pru_...)'}},
            'schemas': {
                'Error': {'type': 'object', 'required': ['detail'],
                          'properties': {'detail': {'type': 'string'}}},
                'Event': EVENT, 'Issue': ISSUE, 'Project': PROJECT,
            },
        },
    }


# Triage: the keys the issue JSON gains, the PATCH body, comments and the activity log.
ISSUE['properties'].update({
    'assignee': NULLABLE_STRING,
    'resolved_in': {**NULLABLE_STRING, 'description': '"next" or a release version'},
    'ignore_until': {'type': 'object', 'nullable': True},
    'escalating': {'type': 'boolean'},
})
POSITIVE = {'type': 'integer', 'minimum': 1}
TRIAGE_PATCH = {
    'summary': "Change an issue's status, assignee, release it is resolved in, or snooze",
    'security': BEARER, 'parameters': [_param('issue_id', 'path', ID)],
    'requestBody': {'required': True, 'content': {'application/json': {'schema': {
        'type': 'object', 'minProperties': 1, 'additionalProperties': False, 'properties': {
            'status': {'type': 'string', 'enum': ['unresolved', 'resolved', 'ignored']},
            'assignee': {**NULLABLE_STRING, 'description': "a member's email, or null"},
            'resolved_in': {**NULLABLE_STRING,
                            'description': '"next" or a release version; with status resolved'},
            'ignore_until': {'nullable': True, 'description': 'with status ignored', 'oneOf': [
                {'type': 'object', 'required': [k], 'additionalProperties': False,
                 'properties': {k: {'type': 'string', 'format': 'date-time'} if k == 'until'
                                else POSITIVE}}
                for k in ('minutes', 'until', 'events', 'users', 'accounts')]},
        }}}}},
    'responses': {'200': _json(_ref('Issue')), '400': ERROR, '401': ERROR, '404': ERROR}}
_PATCH_BODY = TRIAGE_PATCH['requestBody']['content']['application/json']['schema']
BULK_BODY = {**_PATCH_BODY,
             'properties': {'query': {'type': 'string', 'description': 'search terms'},
                            **_PATCH_BODY['properties']}}
COMMENT = {'type': 'object', 'required': ['id', 'text'], 'properties': {
    'id': {'type': 'integer'}, 'issue_id': {'type': 'integer'}, 'author': NULLABLE_STRING,
    'text': {'type': 'string'}, 'created_at': DATETIME, 'updated_at': NULLABLE_DATETIME}}
COMMENT_BODY = {'required': True, 'content': {'application/json': {'schema': {
    'type': 'object', 'required': ['text'], 'properties': {
        'text': {'type': 'string', 'minLength': 1, 'maxLength': 10000}}}}}}


def triage_paths():
    issue_id = [_param('issue_id', 'path', ID)]
    comment_id = [_param('comment_id', 'path', ID)]
    return {
        '/api/v1/issues/{issue_id}/comments': {
            **_get('Comments on an issue, oldest first', {
                'type': 'object', 'properties': {'comments': {'type': 'array', 'items': COMMENT}}},
                issue_id),
            'post': {'summary': 'Comment on an issue (@email notifies a member)',
                     'security': BEARER, 'parameters': issue_id, 'requestBody': COMMENT_BODY,
                     'responses': {'201': _json(COMMENT), '400': ERROR, '401': ERROR,
                                   '404': ERROR}}},
        '/api/v1/comments/{comment_id}': {
            'patch': {'summary': 'Change your comment', 'security': BEARER,
                      'parameters': comment_id, 'requestBody': COMMENT_BODY,
                      'responses': {'200': _json(COMMENT), '400': ERROR, '401': ERROR,
                                    '403': ERROR, '404': ERROR}},
            'delete': {'summary': 'Delete your comment', 'security': BEARER,
                       'parameters': comment_id,
                       'responses': {'204': {'description': 'Deleted'}, '401': ERROR,
                                     '403': ERROR, '404': ERROR}}},
        '/api/v1/projects/{project_id}/issues/bulk': {'post': {
            'summary': 'One change (the PATCH keys) to every issue the query matches; the '
                       'parameters filter as the list does, the body\'s status is the change',
            'security': BEARER,
            'parameters': [_param('project_id', 'path', ID)] + [
                p for p in ISSUE_PARAMS if p['name'] in ('status', 'environment', 'release',
                                                         'level')],
            'requestBody': {'required': True, 'content': {'application/json': {'schema': {
                **BULK_BODY}}}},
            'responses': {'200': _json({'type': 'object', 'required': ['changed'], 'properties': {
                'changed': {'type': 'integer', 'description': 'issues the change changed'}}}),
                '400': ERROR, '401': ERROR, '404': ERROR}}},
        '/api/v1/issues/{issue_id}/activity': _get(
            'The activity log and comments of an issue, newest first', {
                'type': 'object', 'properties': {'activity': {'type': 'array', 'items': {
                    'type': 'object', 'properties': {
                        'kind': {'type': 'string'}, 'user': NULLABLE_STRING,
                        'created_at': DATETIME}}}}},
            issue_id),
    }


class OpenAPI:
    def __init__(self):
        self.body = orjson.dumps(build_document())

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body
