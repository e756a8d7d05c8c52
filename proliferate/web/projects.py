"""Project pages of the issue browser: an organization's projects (list, create), a project's
settings (rename, rate limit, delete), its ingest keys with the install snippets, its source-map
upload tokens with the upload command, and its dropped-event counts.

Handlers only read; each change runs on the writer through Page.call (see pages.py).
"""


import shlex

import falcon
from peewee import fn

from proliferate import orgs
from proliferate import regroup
from proliferate import triage
from proliferate.ingest.admission import clean_patterns
from proliferate.ingest.admission import rules_for
from proliferate.models import ApiToken
from proliferate.models import DroppedCount
from proliferate.models import Issue
from proliferate.models import Project
from proliferate.models import ProjectKey
from proliferate.models import User
from proliferate.orgs import MANAGERS
from proliferate.web import guard
from proliferate.web import urls
from proliferate.web.base import Page
from proliferate.web.base import base_url

DROP_REASONS = {
    'rate_limited': 'over the project\'s rate limit',
    'too_large': 'body over the size limit',
    'invalid': 'failed validation',
    'duplicate': 'event_id already stored (SDK retries)',
    'backpressure': 'server busy (writer queue full)',
    'sdk_init': 'SDK start-up pings (not errors)',
}


# The documented example's stack, as it appears inside the shell-quoted JSON of the curl snippet.
SEED_STACK = ("TypeError: Cannot read property '\\''foo'\\'' of undefined\\n"
              "    at processData (app.js:42:15)\\n    at handleClick (app.js:120:5)")


def snippets(base, key, project_id=None):
    """The install snippets of an ingest key: curl (the published single-event example), the
    Python SDK (0.2.x and 0.1.x) and the browser SDK. Pure."""
    # The documented example, with the shell making a fresh event_id and timestamp each paste
    # (a repeated event_id would be stored once: SDK retries must not double-count).
    curl = f'''curl -X POST {base}/api/v1/errors \\
  -H "Content-Type: application/json" \\
  -d '{{
    "api_key": "{key}",
    "event_id": "evt_'$(date +%s)$RANDOM'",
    "timestamp": "'$(date -u +%Y-%m-%dT%H:%M:%SZ)'",
    "type": "exception",
    "level": "error",
    "environment": "production",
    "release": "v1.2.3",
    "url": "https://example.com/dashboard",
    "user_agent": "Mozilla/5.0...",
    "exception": {{
      "type": "TypeError",
      "message": "Cannot read property '\\''foo'\\'' of undefined",
      "stack": "{SEED_STACK}"
    }},
    "user": {{
      "id": "user_abc123",
      "email": "jane@example.com"
    }},
    "account": {{
      "id": "acct_xyz789",
      "name": "Acme Corp"
    }},
    "session_id": "sess_abcdef123456",
    "window_id": "win_ghijkl789012",
    "breadcrumbs": [
      {{
        "timestamp": 1736938195000,
        "category": "navigation",
        "message": "Navigated to /dashboard",
        "level": "info"
      }},
      {{
        "timestamp": 1736938198000,
        "category": "click",
        "message": "Clicked button#submit",
        "level": "info",
        "data": {{
          "element": "button#submit"
        }}
      }}
    ],
    "extra": {{
      "component": "Dashboard",
      "props": {{
        "view": "overview"
      }}
    }}
  }}'
'''
    python = f'''pip install 'proliferate-ai>=0.2,<0.3'

import proliferate

proliferate.init(
    api_key='{key}',
    endpoint='{base}/api',  # the SDK posts to {{endpoint}}/v1/errors
    environment='production',
)
'''
    python_01 = f'''proliferate.init(endpoint='{base}/api/v1/errors', api_key='{key}')
'''
    browser = f'''<script src="{base}/static/proliferate.js"></script>
<script>
  Proliferate.init({{ apiKey: '{key}', environment: 'production' }});
</script>
'''
    out = {'curl': curl, 'python': python, 'python_01': python_01, 'browser': browser}
    if project_id is not None:
        out.update(sentry_snippets(orgs.dsn(base, key, project_id)))
    return out


def sentry_snippets(dsn):
    """The DSN and the Sentry SDKs' set-up with it (Python, browser, Node). Pure."""
    python = f'''pip install sentry-sdk

import sentry_sdk

sentry_sdk.init(dsn='{dsn}', environment='production', release='my-app@1.0.0')
sentry_sdk.set_user({{'id': 'user_abc123', 'email': 'jane@example.com'}})
sentry_sdk.set_context('account', {{'id': 'acct_xyz789', 'name': 'Acme Corp'}})
'''
    browser = f'''npm install @sentry/browser

import * as Sentry from '@sentry/browser';

Sentry.init({{ dsn: '{dsn}', environment: 'production', release: 'my-app@1.0.0' }});
Sentry.setUser({{ id: 'user_abc123', email: 'jane@example.com' }});
Sentry.setContext('account', {{ id: 'acct_xyz789', name: 'Acme Corp' }});
'''
    node = f'''npm install @sentry/node

const Sentry = require('@sentry/node');

Sentry.init({{ dsn: '{dsn}', environment: 'production', release: 'my-app@1.0.0' }});
'''
    return {'dsn': dsn, 'sentry_python': python, 'sentry_browser': browser,
            'sentry_node': node}


def upload_command(base, project_slug, token=None):
    """The shell lines that upload a build's source maps to this server for the project: the
    token goes in PROLIFERATE_UPLOAD_TOKEN (a CI secret), the release is the version events
    send. Pure."""
    secret = (f'export PROLIFERATE_UPLOAD_TOKEN={shlex.quote(token)}' if token else
              '# PROLIFERATE_UPLOAD_TOKEN: an upload token of this project (a CI secret)')
    return f"""{secret}
proliferate sourcemaps upload --server {shlex.quote(base)} --project {shlex.quote(project_slug)} \\
    --release "$VERSION" --url-prefix '~/static/js' dist/static/js
"""


# -- writes (each runs on the writer) --------------------------------------------------------


# -- resources -------------------------------------------------------------------------------


def parse_rate_limit(text):
    if text == '':
        return None
    if not text.isdigit() or int(text) > 10_000_000:
        raise orgs.Refused('The rate limit is a whole number of events per minute (0: no limit; '
                        'empty: the server default).')
    return int(text)


class Projects(Page):
    """/orgs/{slug}/projects: the list, and POST to create one."""

    @falcon.before(guard.require_login)
    def on_get_projects(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug)
        self.show_projects(req, resp, org, membership)

    def show_projects(self, req, resp, org, membership, *, error=None, status=falcon.HTTP_200):
        projects = list(Project.select().where(Project.organization == org.id)
                        .order_by(Project.name, Project.id))
        stats = {}
        if projects:
            ids = [p.id for p in projects]
            # Issue rows only (the writer keeps their counts): no event is counted here.
            query = (Issue.select(Issue.project, fn.COUNT(Issue.id), fn.MAX(Issue.last_seen))
                     .where(Issue.project.in_(ids), Issue.status == 'unresolved')
                     .group_by(Issue.project).tuples())
            stats = {project_id: (count, last) for project_id, count, last in query}
        self.render(req, resp, 'project_list.html', status=status, org=org, projects=projects,
                    stats=stats, can_manage=membership.role in MANAGERS, error=error)

    @falcon.before(guard.require_login)
    def on_post_projects(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug, roles=MANAGERS)
        form = self.form(req)
        name = form.get('name', limit=100)
        if not name:
            self.show_projects(req, resp, org, membership, error='Name the project.',
                               status=falcon.HTTP_400)
            return
        project_id = self.call(lambda: orgs.create_project(org.id, name, self.clock()).id)
        raise falcon.HTTPSeeOther(urls.project_settings(project_id, welcome=1))

class ProjectItem(Page):
    """/projects/{id}/settings, /delete, /keys, /keys/{key_id}/revoke."""

    @falcon.before(guard.require_login)
    def on_get_settings(self, req, resp, project_id):
        project, membership = self.project_for(req, project_id)
        self.show(req, resp, project, membership)

    def show(self, req, resp, project, membership, *, error=None, status=falcon.HTTP_200,
             preview=None, pending=None, new_upload_token=None, upload_error=None):
        keys = list(ProjectKey.select().where(ProjectKey.project == project.id)
                    .order_by(ProjectKey.revoked_at.is_null(False), ProjectKey.id))
        active = [k for k in keys if k.revoked_at is None]
        chosen = active[0] if active else None
        wanted = req.get_param_as_int('key')
        for key in active:
            if key.id == wanted:
                chosen = key
        dropped = list(DroppedCount.select().where(DroppedCount.project == project.id)
                       .order_by(DroppedCount.count.desc()))
        upload_tokens = list(ApiToken.select(ApiToken, User).join(User)
                             .where(ApiToken.project == project.id, ApiToken.kind == 'upload')
                             .order_by(ApiToken.revoked_at.is_null(False), ApiToken.id.desc()))
        if new_upload_token is not None:
            resp.set_header('Cache-Control', 'no-store')
        base = base_url(req, self.config)
        self.render(
            req, resp, 'project_settings.html', status=status, org=project.organization,
            project=project, keys=keys, chosen=chosen, error=error,
            snippets=snippets(base, chosen.key, project.id) if chosen else None,
            upload_tokens=upload_tokens, new_upload_token=new_upload_token,
            upload_error=upload_error,
            upload_command=upload_command(base, project.slug, new_upload_token),
            dropped=dropped, drop_reasons=DROP_REASONS, can_manage=membership.role in MANAGERS,
            welcome=req.get_param('welcome') == '1',
            default_rate_limit=self.config.rate_limit_per_minute, preview=preview,
            pending=pending or {'name': project.name,
                                'rate_limit_per_minute': project.rate_limit_per_minute,
                                'in_app_patterns': project.in_app_patterns,
                                'library_patterns': project.library_patterns,
                                'auto_resolve_days': project.auto_resolve_days})

    @falcon.before(guard.require_login)
    def on_post_settings(self, req, resp, project_id):
        project, membership = self.project_for(req, project_id, roles=MANAGERS)
        form = self.form(req)
        name = form.get('name', limit=100)
        try:
            if not name:
                raise orgs.Refused('A project needs a name.')
            rate_limit = parse_rate_limit(form.get('rate_limit_per_minute'))
            auto_days = triage.parse_auto_resolve_days(form.get('auto_resolve_days', limit=20))
        except (orgs.Refused, triage.Invalid) as error:
            self.show(req, resp, project, membership, error=str(error), status=falcon.HTTP_400)
            return
        in_app = clean_patterns(form.get('in_app_patterns', limit=20000))
        library = clean_patterns(form.get('library_patterns', limit=20000))
        changed = (in_app, library) != (project.in_app_patterns, project.library_patterns)
        if changed and form.get('confirm') != 'grouping':
            # Grouping changes with the patterns: first show what the newest events would make.
            figures = regroup.preview(project.id, rules_for(in_app, library))
            pending = {'name': name, 'rate_limit_per_minute': rate_limit,
                       'in_app_patterns': in_app, 'library_patterns': library,
                       'auto_resolve_days': auto_days}
            self.show(req, resp, project, membership, preview=figures, pending=pending)
            return
        self.call(lambda: orgs.save_project(project.id, name, rate_limit))
        self.call(lambda: triage.set_auto_resolve(project.id, auto_days))
        if changed:
            self.call(lambda: Project.update(in_app_patterns=in_app, library_patterns=library)
                      .where(Project.id == project.id).execute())
        # The ingest key cache holds the project's rate limit and in-app patterns: drop it so the
        # new ones apply now.
        self.keys.forget()
        if changed:
            regroup.regroup_project(self.writer, project.id)
        raise falcon.HTTPSeeOther(urls.project_settings(project.id, notice='project_saved'))

    @falcon.before(guard.require_login)
    def on_get_delete(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        self.render(req, resp, 'project_delete.html', org=project.organization, project=project,
                    error=None)

    @falcon.before(guard.require_login)
    def on_post_delete(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        form = self.form(req)
        if form.get('confirm') != project.name:
            self.render(req, resp, 'project_delete.html', status=falcon.HTTP_400,
                        org=project.organization, project=project,
                        error='Type the project name exactly to confirm.')
            return
        now = self.clock()
        keys = [k.key for k in ProjectKey.select().where(ProjectKey.project == project.id)]
        # Keys first, so that nothing new arrives while the events go.
        self.call(lambda: ProjectKey.update(revoked_at=now).where(
            ProjectKey.project == project.id, ProjectKey.revoked_at.is_null()).execute())
        for key in keys:
            self.keys.forget(key)
        # Bounded loops: 100,000 slices cover 500 million events, 50 million issues.
        for _slice in range(100_000):
            if self.call(lambda: orgs.delete_event_slice(project.id)) < orgs.DELETE_SLICE:
                break
        for _slice in range(100_000):
            if self.call(lambda: orgs.delete_issue_slice(project.id)) < orgs.DELETE_SLICE // 10:
                break
        self.call(lambda: Project.delete().where(Project.id == project.id).execute())
        raise falcon.HTTPSeeOther(urls.with_query(urls.org_projects(project.organization.slug),
                                                  {'notice': 'project_deleted'}))

    @falcon.before(guard.require_login)
    def on_post_keys(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        label = self.form(req).get('label', limit=100)
        self.call(lambda: orgs.create_key(project.id, label))
        raise falcon.HTTPSeeOther(urls.project_settings(project.id, notice='key_created'))

    @falcon.before(guard.require_login)
    def on_post_key_revoke(self, req, resp, project_id, key_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        key = self.call(lambda: orgs.revoke_key(project.id, key_id, self.clock()))
        if key is None:
            raise falcon.HTTPNotFound()
        # The ingest key cache would trust the key for a few more seconds: not after a revoke.
        self.keys.forget(key)
        raise falcon.HTTPSeeOther(urls.project_settings(project.id, notice='key_revoked'))

    @falcon.before(guard.require_login)
    def on_post_upload_tokens(self, req, resp, project_id):
        project, membership = self.project_for(req, project_id, roles=MANAGERS)
        name = self.form(req).get('name', limit=100)
        if not name:
            self.show(req, resp, project, membership, status=falcon.HTTP_400,
                      upload_error='Name the token after what uses it (e.g. the CI job).')
            return
        token = self.call(lambda: orgs.create_upload_token(membership.user_id, project, name))
        # Shown once, on this response: only the token's hash is stored.
        self.show(req, resp, project, membership, new_upload_token=token)

    @falcon.before(guard.require_login)
    def on_post_upload_token_revoke(self, req, resp, project_id, token_id):
        project, _membership = self.project_for(req, project_id, roles=MANAGERS)
        if not self.call(lambda: orgs.revoke_upload_token(project.id, token_id, self.clock())):
            raise falcon.HTTPNotFound()
        raise falcon.HTTPSeeOther(urls.project_settings(project.id, notice='upload_token_revoked')
                                  + '#source-maps')
