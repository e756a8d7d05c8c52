"""The release pages of the issue browser: a project's releases with their uploaded source maps
and how many frames each map resolved. Read-only; uploads happen through the API or the CLI.
"""

import falcon
from peewee import fn

from proliferate.models import Issue
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.sourcemaps import releases
from proliferate.web import guard
from proliferate.web import urls
from proliferate.web.base import Page

LIST_LIMIT = 200


class Releases(Page):
    """/projects/{id}/releases and /projects/{id}/releases/{release_id}."""

    @falcon.before(guard.require_login)
    def on_get(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id)
        rows = []
        for item, maps in releases.project_releases(project.id, limit=LIST_LIMIT):
            rows.append({
                'release': item, 'url': urls.release(project.id, item.id), 'maps': len(maps),
                'size': sum(m.size for m in maps),
                'resolved': sum(m.resolved_count for m in maps),
            })
        self.render(req, resp, 'release_list.html', org=project.organization, project=project,
                    rows=rows, limit=LIST_LIMIT, config=self.config)

    @falcon.before(guard.require_login)
    def on_get_item(self, req, resp, project_id, release_id):
        project, _membership = self.project_for(req, project_id)
        item = Release.get_or_none(Release.id == release_id, Release.project == project.id)
        if item is None:
            raise falcon.HTTPNotFound()
        maps = list(releases.maps_with_counts().where(SourceMap.release == item.id))
        first_seen = (Issue.select(fn.COUNT(Issue.id))
                      .where(Issue.project == project.id, Issue.first_release == item.version)
                      .scalar())
        self.render(req, resp, 'release_detail.html', org=project.organization, project=project,
                    release=item, maps=maps, new_issues=first_seen or 0,
                    resolved=sum(m.resolved_count for m in maps),
                    retention_days=self.config.sourcemap_retention_days,
                    keep_releases=self.config.sourcemap_keep_releases)
