"""create_app(): the Falcon application with its routes, middleware and error handling. The one
module that wires the web pages in.

It never reads os.environ, opens a socket or starts a thread: the server (or a test) builds the
writer and hands it in.
"""

import logging

import falcon

from proliferate import api
from proliferate import db
from proliferate import jsonapi
from proliferate import openapi
from proliferate import paths
from proliferate.ingest import resources
from proliferate.ingest import sentry_api
from proliferate.ingest.admission import DropCounter
from proliferate.ingest.admission import KeyCache
from proliferate.ingest.admission import KeyUsage
from proliferate.ingest.admission import RateLimiter
from proliferate.sourcemaps import upload_api
from proliferate.times import utcnow
from proliferate.web import base
from proliferate.web import guard
from proliferate.web import routes
from proliferate.web import templating

log = logging.getLogger(__name__)

class ReadConnection(db.ConnectionPerRequest):
    """A connection per request, except on ingest: it needs the database only on a key-cache
    miss, and opening SQLite (with its pragmas) on every event would cost more than the event."""

    def process_request(self, req, resp):
        if paths.kind(req.path) != paths.INGEST:
            super().process_request(req, resp)


class Health:
    def __init__(self, writer, leader=None):
        self.writer = writer
        self.leader = leader

    def on_get(self, req, resp):
        db.database.execute_sql('SELECT 1')
        body = {'status': 'ok', 'writer_queue': self.writer.pending}
        if self.leader is not None:  # whether this process runs the scheduled jobs
            body['leader'] = self.leader.is_leader
        jsonapi.send(resp, body)


def handle_unexpected(req, resp, error, params):
    log.exception('unexpected error on %s %s', req.method, req.path)
    raise falcon.HTTPInternalServerError(description='internal error; it has been logged')


class DatabaseInt(falcon.routing.IntConverter):
    """{x:int} bounded to a 64-bit database integer: a larger id in a URL is a 404, not an
    OverflowError from the driver (a 500, which schemathesis found)."""

    def __init__(self, num_digits=None, min=-2 ** 63, max=2 ** 63 - 1):  # noqa: A002 (Falcon's names)
        super().__init__(num_digits, min, max)


def create_app(config, *, writer, drops=None, clock=utcnow, keys=None, limiter=None,
               leader=None, usage=None):
    drops = drops if drops is not None else DropCounter()
    usage = usage or KeyUsage()
    keys = keys or KeyCache(config.key_cache_seconds)
    limiter = limiter or RateLimiter(config.rate_limit_per_minute)
    app = falcon.App(middleware=[ReadConnection(), guard.CrossSiteGuard(config.base_url),
                                 guard.SecurityHeaders()])
    app.req_options.strip_url_path_trailing_slash = True
    app.router_options.converters['int'] = DatabaseInt
    app.add_error_handler(Exception, handle_unexpected)

    services = (writer, config, keys, limiter, drops, clock, usage)
    errors = resources.Errors(*services)
    batch = resources.ErrorBatch(*services)
    # /v1/errors: the Python SDK 0.1.1+ posts to {endpoint}/v1/errors.
    for prefix in ('/api/v1', '/v1'):
        app.add_route(f'{prefix}/errors', errors)
        app.add_route(f'{prefix}/errors/batch', batch)
    # Sentry SDKs, by DSN (trailing slashes are stripped before routing).
    envelope = sentry_api.Envelope(*services)
    store = sentry_api.Store(*services)
    for prefix in sentry_api.route_prefixes(config.base_url):
        app.add_route(f'{prefix}/api/{{project_id}}/envelope', envelope)
        app.add_route(f'{prefix}/api/{{project_id}}/store', store)

    app.add_route('/healthz', Health(writer, leader))
    app.add_route('/api/openapi.json', openapi.OpenAPI())
    app.add_route('/api/v1/projects', api.Projects(config.base_url))
    app.add_route('/api/v1/projects/{project_id:int}', api.ProjectItem(config.base_url))
    app.add_route('/api/v1/projects/{project_id:int}/issues', api.ProjectIssues())
    app.add_route('/api/v1/projects/{project_id:int}/events/{event_id}', api.ProjectEvent())
    app.add_route('/api/v1/issues/{issue_id:int}', api.IssueItem(writer, clock))
    app.add_route('/api/v1/issues/{issue_id:int}/comments', api.IssueComments(writer, clock))
    app.add_route('/api/v1/comments/{comment_id:int}', api.CommentItem(writer, clock))
    app.add_route('/api/v1/issues/{issue_id:int}/activity', api.IssueActivityLog())
    app.add_route('/api/v1/issues/{issue_id:int}/events', api.IssueEvents())
    app.add_route('/api/v1/issues/{issue_id:int}/users', api.IssueUsers())
    app.add_route('/api/v1/issues/{issue_id:int}/accounts', api.IssueAccounts())
    # Source maps: uploads take a project upload token, never a pk_ key.
    app.add_route('/api/v1/releases', upload_api.Releases(writer, clock))
    app.add_route('/api/v1/sourcemaps', upload_api.SourceMaps(writer, clock))
    app.add_route('/api/v1/projects/{project_id:int}/releases', upload_api.ProjectReleases())
    # The issue browser; its errors are HTML pages, those of /api and ingest stay JSON.
    deps = base.Deps(templates=templating.make_environment(config.templates_dir), writer=writer,
                     config=config, keys=keys, clock=clock)
    routes.add_routes(app, deps)
    app.set_error_serializer(base.error_serializer(deps.templates, jsonapi.serialize_error))
    app.add_static_route('/static', str(config.static_dir.resolve()))
    return app
