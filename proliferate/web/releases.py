"""The release pages of the issue browser: every release a project's events named or that has
uploaded source maps, newest first, with its events, new issues, regressions, issues resolved in
it and source maps; a release's own page; the issue page's "seen in releases" chart. Read-only:
uploads happen through the API or the CLI."""

import falcon

from proliferate import release_stats
from proliferate.models import Release
from proliferate.models import SourceMap
from proliferate.sourcemaps import releases
from proliferate.web import charts
from proliferate.web import guard
from proliferate.web import urls
from proliferate.web.base import Page

PAGE_SIZE = 50
ISSUE_LIMIT = 50  # issues listed as new in (or regressed in) a release
MAX_VERSION = 200  # as ingest and the upload API cut release names
CHART_RELEASES = 10  # the issue page's chart: its newest releases
CHART_SLOT, CHART_HEIGHT = 24, 48  # a release's width and the bars' height, in pixels


def page_number(req):
    """?page=N (1 and up); anything else is the first page, as the list's other filters fall back."""
    raw = req.get_param('page') or ''
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 1_000_000 else 1


class Releases(Page):
    """/projects/{id}/releases, /projects/{id}/releases/show?version=... and the older
    /projects/{id}/releases/{release_id} of an uploaded release."""

    @falcon.before(guard.require_login)
    def on_get(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id)
        page = page_number(req)
        figures, total = release_stats.project_releases(
            project.id, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        rows = [{'figures': f, 'url': urls.release_version(project.id, f.version)}
                for f in figures]
        pages = max(1, -(-total // PAGE_SIZE))
        self.render(req, resp, 'release_list.html', org=project.organization, project=project,
                    rows=rows, total=total, page=page, pages=pages, config=self.config)

    @falcon.before(guard.require_login)
    def on_get_item(self, req, resp, project_id, release_id):
        project, _membership = self.project_for(req, project_id)
        item = Release.get_or_none(Release.id == release_id, Release.project == project.id)
        if item is None:
            raise falcon.HTTPNotFound()
        self.detail(req, resp, project, item.version)

    @falcon.before(guard.require_login)
    def on_get_version(self, req, resp, project_id):
        project, _membership = self.project_for(req, project_id)
        version = req.get_param('version') or ''
        if not version:
            raise falcon.HTTPBadRequest(description='version: name the release (?version=1.4.2)')
        if len(version) > MAX_VERSION:
            raise falcon.HTTPBadRequest(description=f'version: longer than {MAX_VERSION} characters')
        self.detail(req, resp, project, version)

    def detail(self, req, resp, project, version):
        figures = release_stats.release(project.id, version)
        if figures is None:
            raise falcon.HTTPNotFound(description='this project has seen no release of that name')
        maps = []
        if figures.release_id is not None:
            maps = list(releases.maps_with_counts().where(SourceMap.release == figures.release_id))
        self.render(req, resp, 'release_detail.html', org=project.organization, project=project,
                    release=figures, maps=maps, resolved=sum(m.resolved_count for m in maps),
                    new=release_stats.issues_new_in(project.id, version, ISSUE_LIMIT),
                    regressed=release_stats.issues_regressed_in(project.id, version, ISSUE_LIMIT),
                    issue_limit=ISSUE_LIMIT, config=self.config,
                    retention_days=self.config.sourcemap_retention_days,
                    keep_releases=self.config.sourcemap_keep_releases)


def issue_chart(issue):
    """What templates/_release_chart.html draws for an issue: its events in each of its newest
    releases (from the writer's release tag shares), oldest first, as bars."""
    rows = release_stats.issue_releases(issue, CHART_RELEASES)
    series = [(version, count) for version, count, _first, _last in rows]
    # A fixed width a release: one release draws one slim bar, not a block across the card.
    width = CHART_SLOT * len(series)
    bars = charts.bars(series, width=width, height=CHART_HEIGHT, gap=6)
    for bar in bars:
        bar['url'] = urls.release_version(issue.project_id, bar['start'])
    return {'bars': bars, 'size': (width, CHART_HEIGHT), 'limit': CHART_RELEASES}
