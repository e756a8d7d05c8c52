"""An issue's events, users and accounts within a slice (one environment, release or period, from
search.slice_of), for a page of issues: read from what the writer keeps (issue_slice,
issue_slice_person, issue_tag), never by counting events. No HTTP.
"""

from peewee import fn

from proliferate import db
from proliferate.ingest.slice_keys import KINDS
from proliferate.ingest.slice_keys import first_hour_from
from proliferate.models import IssueSlice
from proliferate.models import IssueTag

# People of one issue in a slice are counted up to this many; beyond it the count reads
# "1,000+". A count walks the issue's index entries in that slice, and a person seen in several
# releases of an environment has an entry for each: at 1,000,000 events, a page of the biggest
# issues in their main environment took 200 ms of CPU with a cap of 10,000, 40 ms with this one.
PEOPLE_CAP = 1000


def _narrow(query, piece):
    """An issue_slice query kept to the slice's environment, release and hours."""
    if piece.environment is not None:
        query = query.where(IssueSlice.environment == piece.environment)
    if piece.release is not None:
        query = query.where(IssueSlice.release == piece.release)
    if piece.since is not None:
        query = query.where(IssueSlice.hour >= piece.since)
    return query


def event_counts(issue_ids, piece):
    """{issue id: events in the slice} (an issue without any is left out). One environment or
    one release of all time is the issue's tag share (a row per issue); otherwise the hours of
    issue_slice add up (a row per hour, environment and release: tens of thousands for a page of
    the biggest issues over a month, 25 ms)."""
    if not issue_ids:
        return {}
    if piece.since is None and (piece.environment is None) != (piece.release is None):
        key, value = (('environment', piece.environment) if piece.release is None
                      else ('release', piece.release))
        return dict(IssueTag.select(IssueTag.issue, IssueTag.event_count)
                    .where(IssueTag.issue.in_(list(issue_ids)), IssueTag.key == key,
                           IssueTag.value == value).tuples())
    query = (IssueSlice.select(IssueSlice.issue, fn.SUM(IssueSlice.event_count))
             .where(IssueSlice.issue.in_(list(issue_ids))))
    query = _narrow(query, piece)
    return dict(query.group_by(IssueSlice.issue).tuples())


def people_count(issue_id, kind, piece, cap=PEOPLE_CAP):
    """(people of kind 'user' or 'account' the issue affected in the slice, whether there are
    more than cap): one walk of issue_slice_person's key, (issue, kind, environment, release,
    person), whose B-tree holds every column it reads."""
    p = db.database.param
    where = [f'issue_id = {p}', f'kind = {p}']
    params = [issue_id, KINDS[kind]]
    for column, value in (('environment', piece.environment), ('release', piece.release)):
        if value is not None:
            where.append(f'{column} = {p}')
            params.append(value)
    if piece.since is not None:
        where.append(f'last_hour >= {p}')
        params.append(first_hour_from(piece.since))
    # Both given: a person has one row there, so no DISTINCT (and its sort) is needed.
    distinct = '' if piece.environment is not None and piece.release is not None else 'DISTINCT '
    sql = (f'SELECT COUNT(*) FROM (SELECT {distinct}person FROM issue_slice_person '  # noqa: S608 (SQL assembled from constant column names; values are parameters)
           f'WHERE {" AND ".join(where)} LIMIT {p}) AS people')
    count = db.database.execute_sql(sql, [*params, cap + 1]).fetchone()[0]
    return min(count, cap), count > cap


def counts(issues, piece, cap=PEOPLE_CAP):
    """{issue id: {'events', 'users', 'accounts', 'more_users', 'more_accounts'}} in the slice,
    for Issue rows. A slice that holds all of an issue's events (its only environment, or a
    period since before it was first seen) has all of its users and accounts: they are the
    issue's own counts, exact and read for free."""
    events = event_counts([i.id for i in issues], piece)
    out = {}
    for issue in issues:
        count = events.get(issue.id, 0)
        if count >= issue.event_count:
            out[issue.id] = {'events': issue.event_count, 'users': issue.user_count,
                             'accounts': issue.account_count, 'more_users': False,
                             'more_accounts': False}
            continue
        users, more_users = people_count(issue.id, 'user', piece, cap)
        accounts, more_accounts = people_count(issue.id, 'account', piece, cap)
        out[issue.id] = {'events': count, 'users': users, 'accounts': accounts,
                         'more_users': more_users, 'more_accounts': more_accounts}
    return out


def hourly(issue_ids, piece, start):
    """[(issue id, hour, events)] by issue and hour, of the slice's environment and release from
    start on: the sparklines of a filtered list."""
    if not issue_ids:
        return []
    query = (IssueSlice.select(IssueSlice.issue, IssueSlice.hour, fn.SUM(IssueSlice.event_count))
             .where(IssueSlice.issue.in_(list(issue_ids)), IssueSlice.hour >= start))
    query = _narrow(query, piece._replace(since=None))
    # Ordered: PostgreSQL's hashed GROUP BY returns its groups in any order.
    return list(query.group_by(IssueSlice.issue, IssueSlice.hour)
                .order_by(IssueSlice.issue, IssueSlice.hour).tuples())
