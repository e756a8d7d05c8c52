"""A project's releases with their figures: every release its events named (the writer's 'release'
tag shares) or that has uploaded source maps, with events, first seen, new issues, regressions,
issues resolved in it and source maps. Read-only aggregate queries over issue_tag, issue,
issue_activity and release: never the event table. No HTTP."""

import dataclasses
import datetime

from peewee import JOIN
from peewee import fn

from proliferate import db
from proliferate import times
from proliferate import versions
from proliferate.models import Issue
from proliferate.models import IssueActivity
from proliferate.models import IssueTag
from proliferate.models import Release
from proliferate.models import SourceMap


@dataclasses.dataclass
class Figures:
    version: str
    first_seen: datetime.datetime | None = None  # of its first event (None: no event yet)
    last_seen: datetime.datetime | None = None
    event_count: int = 0
    issue_count: int = 0  # issues with an event of this release
    new_issues: int = 0  # issues whose first event named it
    regressions: int = 0  # issues that came back with an event of it
    resolved: int = 0  # issues resolved in it
    release_id: int | None = None  # its Release row: made by an upload, None for events only
    created_at: datetime.datetime | None = None  # when that row was made
    map_count: int = 0

    @property
    def seen(self):
        """What orders it when its name is no version: the earlier of first event and upload."""
        times = [t for t in (self.first_seen, self.created_at) if t is not None]
        return min(times) if times else None


def _tag_shares(project_id, names=None):
    query = (IssueTag.select(IssueTag.value, fn.SUM(IssueTag.event_count), fn.MIN(IssueTag.first_seen),
                             fn.MAX(IssueTag.last_seen), fn.COUNT(IssueTag.id))
             .join(Issue, on=(IssueTag.issue == Issue.id))
             .where(Issue.project == project_id, IssueTag.key == 'release'))
    if names is not None:
        query = query.where(IssueTag.value.in_(names))
    return query.group_by(IssueTag.value).tuples()


def _uploads(project_id, names=None):
    query = (Release.select(Release.id, Release.version, Release.created_at,
                            fn.COUNT(SourceMap.id))
             .join(SourceMap, JOIN.LEFT_OUTER, on=(SourceMap.release == Release.id))
             .where(Release.project == project_id))
    if names is not None:
        query = query.where(Release.version.in_(names))
    return query.group_by(Release.id, Release.version, Release.created_at).tuples()


def collect(project_id, names=None):
    """{version: Figures} with first seen, events and source maps, for every release of the project
    (or only those of names)."""
    found = {}
    for version, events, first, last, issues in _tag_shares(project_id, names):
        found[version] = Figures(version, first_seen=times.from_sql(first), last_seen=times.from_sql(last),
                                 event_count=int(events or 0), issue_count=int(issues or 0))
    for release_id, version, created_at, maps in _uploads(project_id, names):
        item = found.setdefault(version, Figures(version))
        item.release_id, item.created_at, item.map_count = release_id, times.from_sql(created_at), int(maps)
    return found


def newest_first(figures):
    """Figures in release order, newest first (proliferate.versions: versions compare as such,
    names that are none by when each was first seen)."""
    # Every name's time, not only those of names that are no version: a name that is none is
    # placed among versions by time, and compare() takes a name without one as the newest.
    seen = {f.version: f.seen for f in figures if f.seen is not None}
    order = versions.newest_first([f.version for f in figures], seen)
    by_version = {f.version: f for f in figures}
    return [by_version[v] for v in order]


def add_issue_counts(project_id, figures):
    """Fill new issues, regressions and issues resolved in each of figures (one GROUP BY each over
    the project's issues and their regression entries, limited to these versions)."""
    by_version = {f.version: f for f in figures}
    for part in db.chunks(sorted(by_version), 500):
        for column, attribute in ((Issue.first_release, 'new_issues'),
                                  (Issue.resolved_in, 'resolved')):
            rows = (Issue.select(column, fn.COUNT(Issue.id))
                    .where(Issue.project == project_id, column.in_(part))
                    .group_by(column).tuples())
            for version, count in rows:
                setattr(by_version[version], attribute, count)
        rows = (IssueActivity.select(IssueActivity.release,
                                     fn.COUNT(IssueActivity.issue.distinct()))
                .join(Issue, on=(IssueActivity.issue == Issue.id))
                .where(Issue.project == project_id, IssueActivity.kind == 'regressed',
                       IssueActivity.release.in_(part))
                .group_by(IssueActivity.release).tuples())
        for version, count in rows:
            by_version[version].regressions = count
    return figures


def project_releases(project_id, offset=0, limit=50):
    """(the page of releases newest first with all their figures, how many releases in all)."""
    ordered = newest_first(list(collect(project_id).values()))
    page = ordered[offset:offset + limit]
    return add_issue_counts(project_id, page), len(ordered)


def release(project_id, version):
    """The Figures of one release, or None when the project never saw it."""
    found = collect(project_id, [version]).get(version)
    if found is None:
        return None
    return add_issue_counts(project_id, [found])[0]


def issues_new_in(project_id, version, limit=50):
    return list(Issue.select().where(Issue.project == project_id, Issue.first_release == version)
                .order_by(Issue.last_seen.desc(), Issue.id.desc()).limit(limit))


def issues_regressed_in(project_id, version, limit=50):
    regressed = (IssueActivity.select(IssueActivity.issue)
                 .where(IssueActivity.kind == 'regressed', IssueActivity.release == version))
    return list(Issue.select().where(Issue.project == project_id, Issue.id.in_(regressed))
                .order_by(Issue.last_seen.desc(), Issue.id.desc()).limit(limit))


def issue_releases(issue, limit=10):
    """[(version, events, first seen, last seen)] of the issue's newest `limit` releases, oldest
    first: its 'release' tag shares in the project's release order."""
    rows = list(IssueTag.select(IssueTag.value, IssueTag.event_count, IssueTag.first_seen,
                                IssueTag.last_seen)
                .where(IssueTag.issue == issue.id, IssueTag.key == 'release').tuples())
    if not rows:
        return []
    names = [r[0] for r in rows]
    seen = {}
    if not all(versions.parses(name) for name in names):
        # Ordered as on the releases page: by the project's first sight of each release.
        seen = {f.version: f.seen for f in collect(issue.project_id, names).values()
                if f.seen is not None}
    order = versions.newest_first(names, seen)[:limit]
    by_version = {r[0]: r for r in rows}
    return [by_version[v] for v in reversed(order)]
