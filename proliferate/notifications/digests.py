"""The hourly, daily and weekly digests: what happened in an organization's window (with its
filters), which digests are due, their deliveries and last_digest_at written together, and
run_digests, the job's body (which also sends what is due and prunes the old log)."""

import collections

from peewee import fn

from proliferate import db
from proliferate.models import Delivery
from proliferate.models import Issue
from proliferate.models import IssueAccount
from proliferate.models import IssueHourly
from proliferate.models import IssueTag
from proliferate.models import IssueUser
from proliferate.models import NotificationSettings
from proliferate.models import Organization
from proliferate.models import Outbox
from proliferate.models import Project
from proliferate.notifications import rules
from proliferate.notifications import send
from proliferate.notifications.outbox import deliver_pending
from proliferate.notifications.outbox import expired
from proliferate.notifications.outbox import prune
from proliferate.notifications.settings import active_webhooks
from proliferate.notifications.settings import load_prefs
from proliferate.notifications.settings import members
from proliferate.notifications.transactions import CHUNK
from proliferate.notifications.transactions import connection
from proliferate.notifications.transactions import write


def issue_environments(issue_ids):
    """{issue id: the environments its events were seen in}."""
    found = collections.defaultdict(set)
    for part in db.chunks(issue_ids, CHUNK):
        query = (IssueTag.select(IssueTag.issue, IssueTag.value)
                 .where(IssueTag.issue.in_(part), IssueTag.key == 'environment'))
        for issue_id, value in query.tuples():
            found[issue_id].add(value)
    return found


def digest_data(config, org_id, prefs, since, until):
    """The digest's sections for one organization's window, with the organization's filters
    (minimum level, environments) applied to every section."""
    base = send.site_url(config)
    projects = {p.id: p for p in Project.select().where(Project.organization == org_id)}
    if not projects:
        return rules.digest_content([], [], [], [])
    happened = collections.defaultdict(list)
    query = (Outbox.select(Outbox.kind, Outbox.issue)
             .where(Outbox.project.in_(list(projects)), Outbox.created_at >= since,
                    Outbox.created_at < until, Outbox.issue.is_null(False))
             .order_by(Outbox.id))
    for kind, issue_id in query.tuples():
        if issue_id not in happened[kind]:
            happened[kind].append(issue_id)
    # Issues with events in the window (last_seen is indexed with project and status).
    active_ids = [issue_id for (issue_id,) in Issue.select(Issue.id)
                  .where(Issue.project.in_(list(projects)),
                         Issue.status.in_(('unresolved', 'resolved')), Issue.last_seen >= since)
                  .tuples()]
    ids = set(active_ids).union(*happened.values())
    issues = {}
    for part in db.chunks(ids, CHUNK):
        issues.update((i.id, i) for i in Issue.select().where(Issue.id.in_(part)))
    envs = issue_environments(list(issues))

    def keep(issue):
        return rules.in_digest(prefs, issue.status, issue.level, envs.get(issue.id, set()))

    def info(issue):
        return rules.issue_info(issue, projects[issue.project_id], base)

    counts = {'events': collections.Counter(), 'users': collections.Counter(),
              'accounts': collections.Counter()}
    active = [i for i in active_ids if i in issues and keep(issues[i])]
    first_hour = rules.hour_start(since)
    for part in db.chunks(active, CHUNK):
        counts['events'].update(dict(
            IssueHourly.select(IssueHourly.issue, fn.SUM(IssueHourly.event_count))
            .where(IssueHourly.issue.in_(part), IssueHourly.hour >= first_hour,
                   IssueHourly.hour < until)
            .group_by(IssueHourly.issue).tuples()))
        for key, model in (('users', IssueUser), ('accounts', IssueAccount)):
            counts[key].update(dict(
                model.select(model.issue, fn.COUNT(model.id))
                .where(model.issue.in_(part), model.last_seen >= since)
                .group_by(model.issue).tuples()))
    rows = []
    for issue_id in active:
        row = info(issues[issue_id])
        row.update({key: int(counts[key][issue_id] or 0) for key in counts})
        rows.append(row)
    sections = {kind: [info(issues[i]) for i in happened[kind] if i in issues and keep(issues[i])]
                for kind in ('new_issue', 'regression', 'spike')}
    return rules.digest_content(sections['new_issue'], sections['regression'], sections['spike'],
                                 rows)


def plan_digests(config, now):
    plans = []
    orgs = list(Organization.select().order_by(Organization.id))
    prefs = load_prefs([org.id for org in orgs])
    for org in orgs:
        org_prefs = prefs[org.id]
        people = members(org.id)
        schedule = rules.digest_schedule(org_prefs, any(c == 'digest' for _e, c in people))
        if schedule is None:
            continue
        window = rules.digest_window(schedule, org_prefs.digest_hour, org_prefs.digest_weekday,
                                      org_prefs.last_digest_at, now)
        if window is None:
            continue
        since, until = window
        content = digest_data(config, org.id, org_prefs, since, until)
        emails = (rules.email_recipients(people, 'digest', org_prefs.delivery_mode)
                  if send.email_enabled(config) else [])
        hooks = active_webhooks(org.id) if org_prefs.delivery_mode in rules.PERIODS else []
        deliveries = []
        if not rules.is_empty_digest(content):
            message = rules.digest_message(rules.org_info(org), content, since, until, schedule)
            deliveries = send.delivery_rows(config, org.id, message, emails, hooks, created_at=now)
        plans.append({'organization': org.id, 'last': org_prefs.last_digest_at, 'until': until,
                      'deliveries': deliveries})
    return plans


def apply_digests(plans, now):
    """On the writer: the digest's deliveries and the organization's last_digest_at together; a
    plan whose organization moved on meanwhile is dropped."""
    made = 0
    for plan in plans:
        settings, _created = NotificationSettings.get_or_create(
            organization=plan['organization'], defaults={'updated_at': now})
        if settings.last_digest_at != plan['last']:
            continue
        (NotificationSettings.update(last_digest_at=plan['until'])
         .where(NotificationSettings.id == settings.id).execute())
        for part in db.chunks(plan['deliveries'], 100):
            Delivery.insert_many(part).execute()
        made += len(plan['deliveries'])
    return made


# -- the job's body -----------------------------------------------------------------------------

def run_digests(config, now, *, writer=None, ssl_context=None):
    """The digests that are due, then the log's old rows (this job runs every few minutes)."""
    stats = collections.Counter()
    with connection():
        plans = plan_digests(config, now)
        if plans:
            stats['digests'] = write(writer, lambda: apply_digests(plans, now))
        stats.update(deliver_pending(config, now, writer=writer, ssl_context=ssl_context))
        old = expired(now)
        if old[0] or old[1]:
            stats['pruned'] = write(writer, lambda: prune(*old))
    return +stats
