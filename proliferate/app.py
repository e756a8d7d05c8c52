"""create_app(): the Falcon application with its routes, middleware and error handling. The one
module that wires the web pages in.

It never reads os.environ, opens a socket or starts a thread: the server (or a test) builds the
writer and hands it in.
"""

import ipaddress
import logging

import falcon

from proliferate import api
from proliferate import check
from proliferate import db
from proliferate import jsonapi
from proliferate import logs
from proliferate import metrics
from proliferate import openapi
from proliferate import paths
from proliferate.config import metrics_networks
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
        # /healthz connects itself, so that a database away is its answer, not an error.
        if paths.kind(req.path) != paths.INGEST and req.path != '/healthz':
            super().process_request(req, resp)


class Health:
    """200 {'status': 'ok'} while the database reads and writes; 503 with the fault's kind
    ('disk_full', 'database_unavailable'), since when and the error while it does not."""

    def __init__(self, writer, leader=None):
        self.writer = writer
        self.leader = leader

    def on_get(self, req, resp):
        body = {'status': 'ok', 'writer_queue': self.writer.pending}
        if self.leader is not None:  # whether this process runs the scheduled jobs
            body['leader'] = self.leader.is_leader
        fault = self.writer.fault() if hasattr(self.writer, 'fault') else None
        try:
            db.database.connect(reuse_if_open=True)
            db.database.execute_sql('SELECT 1')
        except Exception as error:
            kind = db.classify_error(error)
            if kind is None:
                raise
            fault = fault or {'kind': kind, 'error': str(error).strip()[:300]}
        if fault is not None:
            body.update(status=fault['kind'], fault=fault)
            jsonapi.send(resp, body, falcon.HTTP_503, {'Retry-After': '5'})
            return
        jsonapi.send(resp, body)


class Metrics:
    """/metrics in the Prometheus text format: for an address in metrics_allow, or with a site
    admin's read token (the figures span every organization)."""

    CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

    def __init__(self, config, writer, job_stats, leader=None):
        self.config = config
        self.writer = writer
        self.job_stats = job_stats
        self.leader = leader
        self.networks = metrics_networks(config.metrics_allow)

    def address_allowed(self, address):
        try:
            ip = ipaddress.ip_address(address or '')
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def on_get(self, req, resp):
        if not self.address_allowed(req.remote_addr):
            token = jsonapi.require_token(req)
            if not token.user.is_admin:
                raise falcon.HTTPForbidden(description='/metrics needs a site admin\'s read token')
        resp.content_type = self.CONTENT_TYPE
        resp.text = metrics.render(writer=self.writer, job_stats=self.job_stats,
                                   database_url=self.config.database_url, leader=self.leader)


def handle_unexpected(req, resp, error, params):
    # A full disk or a database away is not a bug: the client is told to come back.
    kind = db.classify_error(error)
    if kind is not None:
        log.warning('%s %s: %s (%s)', req.method, req.path, kind, str(error).strip()[:200])
        raise falcon.HTTPServiceUnavailable(
            description=f'the database is not available ({kind.replace("_", " ")}); retry later',
            headers={'Retry-After': '5'})
    log.exception('unexpected error on %s %s', req.method, req.path)
    raise falcon.HTTPInternalServerError(description='internal error; it has been logged')


class DatabaseInt(falcon.routing.IntConverter):
    """{x:int} bounded to a 64-bit database integer: a larger id in a URL is a 404, not an
    OverflowError from the driver (a 500, which schemathesis found)."""

    def __init__(self, num_digits=None, min=-2 ** 63, max=2 ** 63 - 1):  # noqa: A002 (Falcon's names)
        super().__init__(num_digits, min, max)


def create_app(config, *, writer, drops=None, clock=utcnow, keys=None, limiter=None,
               leader=None, usage=None, job_stats=None):
    drops = drops if drops is not None else DropCounter()
    # The scheduled jobs' runs and failures (server.serve hands in the scheduler's).
    job_stats = job_stats if job_stats is not None else metrics.JobStats()
    usage = usage or KeyUsage()
    keys = keys or KeyCache(config.key_cache_seconds)
    limiter = limiter or RateLimiter(config.rate_limit_per_minute)
    # The access log comes first: it times every request, refused ones included.
    app = falcon.App(middleware=[logs.AccessLog(), ReadConnection(),
                                 guard.CrossSiteGuard(config.base_url),
                                 guard.SecurityHeaders(), jsonapi.TokenUse(writer, clock)])
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
    app.add_route('/metrics', Metrics(config, writer, job_stats, leader))
    app.add_route('/api/openapi.json', openapi.OpenAPI())
    app.add_route('/api/v1/projects', api.Projects(config.base_url))
    app.add_route('/api/v1/projects/{project_id:int}', api.ProjectItem(config.base_url))
    app.add_route('/api/v1/projects/{project_id:int}/issues', api.ProjectIssues())
    app.add_route('/api/v1/projects/{project_id:int}/events/{event_id}', api.ProjectEvent())
    app.add_route('/api/v1/projects/{project_id:int}/issues/bulk',
                  api.ProjectIssuesBulk(writer, clock))
    app.add_route('/api/v1/issues/{issue_id:int}', api.IssueItem(writer, clock))
    app.add_route('/api/v1/issues/{issue_id:int}/comments', api.IssueComments(writer, clock))
    app.add_route('/api/v1/comments/{comment_id:int}', api.CommentItem(writer, clock))
    app.add_route('/api/v1/issues/{issue_id:int}/activity', api.IssueActivityLog())
    app.add_route('/api/v1/issues/{issue_id:int}/merge', api.IssueMerge(writer))
    app.add_route('/api/v1/issues/{issue_id:int}/unmerge', api.IssueUnmerge(writer))
    app.add_route('/api/v1/issues/{issue_id:int}/events', api.IssueEvents())
    app.add_route('/api/v1/issues/{issue_id:int}/users', api.IssueUsers())
    app.add_route('/api/v1/issues/{issue_id:int}/accounts', api.IssueAccounts())
    # Source maps: uploads take a project upload token, never a pk_ key.
    app.add_route('/api/v1/releases', upload_api.Releases(writer, clock))
    app.add_route('/api/v1/sourcemaps', upload_api.SourceMaps(writer, clock))
    app.add_route('/api/v1/projects/{project_id:int}/releases', upload_api.ProjectReleases())
    # The issue browser; its errors are HTML pages, those of /api and ingest stay JSON.
    deps = base.Deps(templates=templating.make_environment(config.templates_dir), writer=writer,
                     config=config, keys=keys, clock=clock,
                     attention=check.Attention(config=config, writer=writer, job_stats=job_stats,
                                               clock=clock))
    routes.add_routes(app, deps)
    app.set_error_serializer(base.error_serializer(deps.templates, jsonapi.serialize_error))
    app.add_static_route('/static', str(config.static_dir.resolve()))
    return app
