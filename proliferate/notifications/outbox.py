"""From the outbox to the delivery log (issue 5): spike and account-threshold detection, alerts
(cooldown, hourly cap, summaries), digests, retries of failed deliveries, the test message and the
settings writes. It reads beside ingestion and hands every write to the writer; rules.py decides,
send.py sends."""

import collections
import contextlib
import datetime
import logging

import orjson
from peewee import EXCLUDED
from peewee import JOIN
from peewee import fn

from proliferate import db
from proliferate.notifications import rules
from proliferate.notifications import send
from proliferate.ingest import payload
from proliferate.db import database
from proliferate.times import utcnow
from proliferate.models import Delivery
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import IssueAccount
from proliferate.models import IssueHourly
from proliferate.models import IssueTag
from proliferate.models import IssueUser
from proliferate.models import Membership
from proliferate.models import NotificationCooldown
from proliferate.models import NotificationCursor
from proliferate.models import NotificationPreference
from proliferate.models import NotificationSettings
from proliferate.models import Organization
from proliferate.models import Outbox
from proliferate.models import Project
from proliferate.models import User
from proliferate.models import Webhook

log = logging.getLogger(__name__)

OUTBOX_BATCH = 500
DELIVERY_BATCH = 200
# Events the trigger detector reads per run (by primary key, so the range scan stays cheap).
DETECT_BATCH = 100_000
CHUNK = 500
# The delivery log and processed outbox rows are kept this long; each run deletes at most a
# batch, so a first prune after months never holds the writer for long.
KEEP_DAYS = 30
PRUNE_BATCH = 2000


# -- reads shared by the jobs and the pages -----------------------------------------------------

@contextlib.contextmanager
def connection():
    """A connection for a job; reuses (and leaves open) one the caller already holds."""
    if database.is_closed():
        with database.connection_context():
            yield
    else:
        yield


def write(writer, fn_):
    """Run fn_ in a write transaction: on the writer thread when there is one (the server), or
    here (CLI, tests without a server)."""
    if writer is not None:
        return writer.call(fn_)
    with database.atomic():
        return fn_()



def load_prefs(org_ids):
    rows = NotificationSettings.select().where(NotificationSettings.organization.in_(list(org_ids)))
    found = {row.organization_id: rules.Prefs.from_row(row) for row in rows}
    return {org_id: found.get(org_id, rules.Prefs()) for org_id in org_ids}


def members(org_id):
    """[(email, choice)] of the organization's members."""
    query = (Membership.select(User.email, NotificationPreference.email)
             .join(User)
             .join_from(Membership, NotificationPreference, JOIN.LEFT_OUTER)
             .where(Membership.organization == org_id))
    return [(address, choice or 'on') for address, choice in query.tuples()]


def active_webhooks(org_id):
    return list(Webhook.select().where(Webhook.organization == org_id, Webhook.is_active)
                .order_by(Webhook.id))


def event_context(project_id, event_id):
    """What an alert says about its event: id, environment, release."""
    if not event_id:
        return {'event_id': None, 'environment': None, 'release': None}
    row = (Event.select(Event.data)
           .where(Event.project == project_id, Event.event_id == event_id).first())
    data = {}
    if row is not None:
        try:
            data = payload.decode_event(row.data)
        except Exception:  # a damaged row must not stop the alert
            log.exception('cannot decode event %s', event_id)
    return {'event_id': event_id, 'environment': data.get('environment'),
            'release': data.get('release')}


def issue_environments(issue_ids):
    found = collections.defaultdict(set)
    for part in db.chunks(issue_ids, CHUNK):
        query = (IssueTag.select(IssueTag.issue, IssueTag.value)
                 .where(IssueTag.issue.in_(part), IssueTag.key == 'environment'))
        for issue_id, value in query.tuples():
            found[issue_id].add(value)
    return found


# -- spike and account-threshold detection ------------------------------------------------------

def detect_triggers(now, *, limit=DETECT_BATCH):
    """Issues that got events since the cursor and now cross the spike (N events within M
    minutes) or account (K) threshold -> (outbox rows, cursor before, cursor after).

    Read-only: it runs in the job, beside ingestion, so the writer's transaction stays as short
    as before; record_triggers() then writes the rows and moves the cursor in one transaction."""
    cursor = NotificationCursor.get_or_none(NotificationCursor.name == 'triggers')
    start = cursor.event_id if cursor is not None else 0
    newest_id = Event.select(fn.MAX(Event.id)).scalar() or 0
    upto = min(newest_id, start + limit)
    if upto <= start:
        return [], start, start
    touched = dict(Event.select(Event.issue, fn.MAX(Event.received_at))
                   .where(Event.id > start, Event.id <= upto)
                   .group_by(Event.issue).tuples())
    issues = []
    for part in db.chunks(touched, CHUNK):
        issues.extend(Issue.select(Issue, Project).join(Project).where(Issue.id.in_(part)))
    prefs = load_prefs({issue.project.organization_id for issue in issues})
    rows = []
    spike_candidates = []
    account_candidates = []
    for issue in issues:
        org_prefs = prefs[issue.project.organization_id]
        if org_prefs.delivery_mode == 'off' or issue.status == 'ignored':
            continue
        if org_prefs.trigger_spike and issue.event_count >= org_prefs.spike_events:
            spike_candidates.append((issue, org_prefs))
        if org_prefs.trigger_accounts and issue.account_count >= org_prefs.accounts_threshold:
            account_candidates.append((issue, org_prefs))
    if spike_candidates:
        recent = {}
        ids = [issue.id for issue, _p in spike_candidates]
        for part in db.chunks(ids, CHUNK):
            query = (Outbox.select(Outbox.issue, fn.MAX(Outbox.created_at))
                     .where(Outbox.issue.in_(part), Outbox.kind == 'spike').group_by(Outbox.issue))
            recent.update(query.tuples())
        for issue, org_prefs in spike_candidates:
            # One spike row per cooldown (at least per window): a spike that lasts an hour is
            # one spike, not one per run.
            quiet = max(org_prefs.cooldown_minutes, org_prefs.spike_minutes)
            if rules.in_cooldown(recent.get(issue.id), now, quiet):
                continue
            # The N-th newest event of the issue, through the (issue, id) index: N rows at most.
            nth = (Event.select(Event.received_at).where(Event.issue == issue.id)
                   .order_by(Event.id.desc()).offset(org_prefs.spike_events - 1).limit(1).scalar())
            if rules.is_spike(nth, touched[issue.id], now, org_prefs.spike_minutes):
                rows.append(outbox_row('spike', issue, now, events=org_prefs.spike_events,
                                       minutes=org_prefs.spike_minutes))
    if account_candidates:
        alerted = collections.defaultdict(set)
        ids = [issue.id for issue, _p in account_candidates]
        for part in db.chunks(ids, CHUNK):
            query = (Outbox.select(Outbox.issue, Outbox.data)
                     .where(Outbox.issue.in_(part), Outbox.kind == 'accounts'))
            for issue_id, data in query.tuples():
                alerted[issue_id].add(orjson.loads(data).get('threshold'))
        for issue, org_prefs in account_candidates:
            if rules.crossed_accounts(issue.account_count, org_prefs.accounts_threshold,
                                       alerted[issue.id]):
                rows.append(outbox_row('accounts', issue, now,
                                       threshold=org_prefs.accounts_threshold,
                                       accounts=issue.account_count))
    return rows, start, upto


def outbox_row(kind, issue, now, **data):
    return {'kind': kind, 'project': issue.project_id, 'issue': issue.id,
            'data': orjson.dumps(data).decode(), 'created_at': now}


def record_triggers(rows, start, upto, now):
    """On the writer: the detected rows and the cursor move together, or not at all."""
    moved = (NotificationCursor.update(event_id=upto, updated_at=now)
             .where(NotificationCursor.name == 'triggers', NotificationCursor.event_id == start)
             .execute())
    if not moved:
        if NotificationCursor.get_or_none(NotificationCursor.name == 'triggers') is not None:
            return 0  # another run moved it first
        NotificationCursor.create(name='triggers', event_id=upto, updated_at=now)
    for part in db.chunks(rows, 100):
        Outbox.insert_many(part).execute()
    return len(rows)


# -- outbox -> deliveries -----------------------------------------------------------------------

def cap_counts(targets, since):
    """Messages counted against the hourly cap, per target, since the start of the hour."""
    counts = collections.Counter()
    for part in db.chunks(targets, CHUNK):
        query = (Delivery.select(Delivery.target, fn.COUNT(Delivery.id))
                 .where(Delivery.target.in_(part), Delivery.created_at >= since,
                        Delivery.kind.in_(('alert', 'summary')),
                        Delivery.status.not_in(('held', 'folded')))
                 .group_by(Delivery.target))
        counts.update(dict(query.tuples()))
    return counts


def plan_outbox(config, now, *, limit=OUTBOX_BATCH):
    """Read the unprocessed outbox rows and decide -> a plan for apply_outbox()."""
    rows = list(Outbox.select(Outbox, Issue, Project, Organization)
                .join_from(Outbox, Issue, JOIN.LEFT_OUTER)
                .join_from(Outbox, Project).join_from(Project, Organization)
                .where(Outbox.processed_at.is_null())
                .order_by(Outbox.id).limit(limit))
    plan = {'outbox': [row.id for row in rows], 'deliveries': [], 'cooldowns': [],
            'decisions': collections.Counter()}
    if not rows:
        return plan
    org_ids = {row.project.organization_id for row in rows}
    prefs = load_prefs(org_ids)
    cooldowns = {}
    issue_ids = [row.issue_id for row in rows if row.issue_id]
    for part in db.chunks(issue_ids, CHUNK):
        query = NotificationCooldown.select().where(NotificationCooldown.issue.in_(part))
        cooldowns.update({(c.issue_id, c.trigger): c.last_sent_at for c in query})
    targets = {}
    base = send.site_url(config)
    for org_id in org_ids:
        emails = (rules.email_recipients(members(org_id), 'alert', prefs[org_id].delivery_mode)
                  if send.email_enabled(config) else [])
        targets[org_id] = (emails, active_webhooks(org_id))
    counts = cap_counts({t for emails, hooks in targets.values()
                         for t in emails + [h.url[:255] for h in hooks]}, rules.hour_start(now))
    for row in rows:
        try:
            decision, made = plan_row(config, row, prefs, cooldowns, targets, counts, base, now)
        except Exception:
            # One row that cannot be planned (a damaged payload, a template error) must not
            # stop every alert behind it: it is logged, counted and marked processed.
            log.exception('outbox row %s (%s) could not be planned', row.id, row.kind)
            decision, made = 'error', []
        plan['decisions'][decision] += 1
        if decision == 'send':
            plan['cooldowns'].append((row.id, row.issue_id, row.kind))
        plan['deliveries'].extend((row.id, delivery) for delivery in made)
    return plan


def plan_row(config, row, prefs, cooldowns, targets, counts, base, now):
    """One outbox row -> (decision, the deliveries of its alert)."""
    org = row.project.organization
    org_prefs = prefs[org.id]
    if row.issue_id is None:
        return 'no_issue', []
    data = orjson.loads(row.data or '{}')
    event = event_context(row.project_id, data.get('event_id'))
    issue = row.issue
    decision = rules.decide(
        {'kind': row.kind, 'issue_id': issue.id, 'issue_status': issue.status,
         'level': issue.level, 'environment': event['environment']},
        org_prefs, cooldowns, now)
    if decision != 'send':
        return decision, []
    detail = {k: v for k, v in data.items() if k != 'event_id'}
    message = rules.alert_message(row.kind, rules.org_info(org),
                                   rules.issue_info(issue, row.project, base), event,
                                   detail, row.created_at)
    emails, hooks = targets[org.id]
    made = []
    for status in ('pending', 'held'):
        chosen_emails = [a for a in emails if cap_status(counts, a, org_prefs) == status]
        chosen_hooks = [h for h in hooks if cap_status(counts, h.url[:255], org_prefs) == status]
        made.extend(send.delivery_rows(config, org.id, message, chosen_emails, chosen_hooks,
                                         issue_id=issue.id, created_at=now, status=status))
    for target in emails + [h.url[:255] for h in hooks]:
        counts[target] += 1
    return decision, made


def cap_status(counts, target, prefs):
    return 'pending' if rules.allowed_now(counts[target], prefs.hourly_cap) > 0 else 'held'


def apply_outbox(plan, now):
    """On the writer: deliveries, cooldowns and processed_at in one transaction, for the rows
    still unprocessed, so every outbox row is handled exactly once."""
    still = set()
    for part in db.chunks(plan['outbox'], CHUNK):
        still.update(row_id for (row_id,) in Outbox.select(Outbox.id)
                     .where(Outbox.id.in_(part), Outbox.processed_at.is_null()).tuples())
    deliveries = [row for outbox_id, row in plan['deliveries'] if outbox_id in still]
    for part in db.chunks(deliveries, 100):
        Delivery.insert_many(part).execute()
    cooldowns = {(issue_id, trigger): {'issue': issue_id, 'trigger': trigger, 'last_sent_at': now}
                 for outbox_id, issue_id, trigger in plan['cooldowns'] if outbox_id in still}
    for part in db.chunks(list(cooldowns.values()), 200):
        (NotificationCooldown.insert_many(part)
         .on_conflict(conflict_target=[NotificationCooldown.issue, NotificationCooldown.trigger],
                      update={NotificationCooldown.last_sent_at: EXCLUDED.last_sent_at})
         .execute())
    for part in db.chunks(still, CHUNK):
        Outbox.update(processed_at=now).where(Outbox.id.in_(part)).execute()
    return len(still)


def plan_summaries(config, now):
    """Alerts held back by the cap in earlier hours -> one summary per target."""
    start = rules.hour_start(now)
    held = list(Delivery.select(Delivery, Webhook, Organization)
                .join_from(Delivery, Webhook, JOIN.LEFT_OUTER)
                .join_from(Delivery, Organization)
                .where(Delivery.status == 'held', Delivery.created_at < start)
                .order_by(Delivery.id))
    groups = collections.OrderedDict()
    for row in held:
        groups.setdefault((row.organization_id, row.channel, row.target, row.webhook_id), []).append(row)
    base = send.site_url(config)
    titles = {}
    for part in db.chunks({row.issue_id for row in held if row.issue_id}, CHUNK):
        titles.update(Issue.select(Issue.id, Issue.title).where(Issue.id.in_(part)).tuples())
    plan = {'held': [row.id for row in held], 'deliveries': []}
    for (org_id, channel, target, _hook_id), rows in groups.items():
        org = rows[0].organization
        items = [{'trigger': row.trigger, 'headline': row.subject.replace('[Proliferate] ', '', 1),
                  'issue': {'id': row.issue_id, 'url': rules.issue_url(base, row.issue_id),
                            'title': titles.get(row.issue_id, row.subject)}}
                 for row in rows]
        message = rules.summary_message(rules.org_info(org), items, rows[0].created_at,
                                         rows[-1].created_at)
        hook = rows[0].webhook
        if channel == 'webhook' and hook is None:
            continue  # the webhook was deleted; its held alerts are only folded
        made = send.delivery_rows(config, org_id, message, [target] if channel == 'email' else [],
                             [hook] if channel == 'webhook' else [], created_at=now)
        plan['deliveries'].extend(made)
    return plan


def apply_summaries(plan, now):
    for part in db.chunks(plan['deliveries'], 100):
        Delivery.insert_many(part).execute()
    for part in db.chunks(plan['held'], CHUNK):
        (Delivery.update(status='folded').where(Delivery.id.in_(part), Delivery.status == 'held')
         .execute())
    return len(plan['deliveries'])


# -- sending ------------------------------------------------------------------------------------

def deliver_pending(config, now, *, writer=None, ssl_context=None, limit=DELIVERY_BATCH,
                    timeout=send.TIMEOUT):
    """Send the deliveries that are due, then record each result (sent, or failed with the
    error and the next attempt)."""
    rows = list(Delivery.select(Delivery, Webhook)
                .join(Webhook, JOIN.LEFT_OUTER)
                .where(Delivery.status == 'pending',
                       Delivery.next_attempt_at.is_null() | (Delivery.next_attempt_at <= now))
                .order_by(Delivery.id).limit(limit))
    if not rows:
        return collections.Counter()
    results = send.send_rows(config, rows, ssl_context=ssl_context, timeout=timeout)
    write(writer, lambda: record_results(rows, results, now))
    return collections.Counter('sent' if error is None else 'failed' for error in results.values())


def record_results(rows, results, now):
    for row in rows:
        if row.id not in results:
            continue
        error = results[row.id]
        attempts = row.attempts + 1
        if error is None:
            values = {'status': 'sent', 'sent_at': now, 'attempts': attempts,
                      'next_attempt_at': None, 'last_error': ''}
        else:
            status, next_at = rules.after_failure(attempts, error.permanent, now)
            values = {'status': status, 'attempts': attempts, 'next_attempt_at': next_at,
                      'last_error': str(error)}
            log.warning('delivery %s to %s failed (attempt %s): %s', row.id, row.target,
                        attempts, error)
        Delivery.update(values).where(Delivery.id == row.id, Delivery.status == 'pending').execute()


# -- digests ------------------------------------------------------------------------------------

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
        if issue.status == 'ignored' or rules.level_rank(issue.level) < rules.level_rank(prefs.min_level):
            return False
        return not prefs.environments or bool(envs.get(issue.id, set()) & set(prefs.environments))

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


# -- the jobs' bodies ---------------------------------------------------------------------------

def run_outbox(config, now, *, writer=None, ssl_context=None, timeout=send.TIMEOUT):
    """Detect spikes and thresholds, fold held alerts into summaries, turn the outbox into
    deliveries, and send what is due. Returns counts for logs and tests."""
    stats = collections.Counter()
    with connection():
        rows, start, upto = detect_triggers(now)
        if upto != start:
            stats['detected'] = write(writer, lambda: record_triggers(rows, start, upto, now))
        summaries = plan_summaries(config, now)
        if summaries['held']:
            stats['summaries'] = write(writer, lambda: apply_summaries(summaries, now))
        plan = plan_outbox(config, now)
        if plan['outbox']:
            stats['processed'] = write(writer, lambda: apply_outbox(plan, now))
            stats.update(plan['decisions'])
        stats.update(deliver_pending(config, now, writer=writer, ssl_context=ssl_context,
                                     timeout=timeout))
    return +stats  # only what happened: the job logs a line when this is not empty


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


def expired(now, *, keep_days=KEEP_DAYS, limit=PRUNE_BATCH):
    """Ids of finished deliveries and processed outbox rows older than keep_days (read here, so
    the writer's part is a delete by primary key). Outbox rows of the accounts trigger stay: they
    remember which thresholds an issue has alerted for."""
    cutoff = now - datetime.timedelta(days=keep_days)
    deliveries = [i for (i,) in Delivery.select(Delivery.id)
                  .where(Delivery.created_at < cutoff,
                         Delivery.status.in_(('sent', 'failed', 'folded')))
                  .limit(limit).tuples()]
    rows = [i for (i,) in Outbox.select(Outbox.id)
            .where(Outbox.processed_at < cutoff, Outbox.kind != 'accounts')
            .limit(limit).tuples()]
    return deliveries, rows


def prune(deliveries, rows):
    for part in db.chunks(deliveries, CHUNK):
        Delivery.delete().where(Delivery.id.in_(part)).execute()
    for part in db.chunks(rows, CHUNK):
        Outbox.delete().where(Outbox.id.in_(part)).execute()
    return len(deliveries) + len(rows)


def send_test(config, org, now, *, writer=None, ssl_context=None, to=None):
    """A test message to every configured channel of org, sent at once (not queued) and logged.
    -> [(channel, target, error or None)]."""
    with connection():
        prefs = load_prefs([org.id])[org.id]
        message = rules.test_message(rules.org_info(org), send.site_url(config), now)
        emails = []
        if send.email_enabled(config):
            emails = [to] if to else rules.email_recipients(members(org.id), 'test',
                                                             prefs.delivery_mode)
        rows = send.delivery_rows(config, org.id, message, emails, active_webhooks(org.id),
                             created_at=now)
        for row in rows:
            # Logged before sending (so the webhook sees its delivery id), out of the job's
            # reach while this request sends it.
            row['next_attempt_at'] = now + datetime.timedelta(days=1)
        ids = write(writer, lambda: [Delivery.insert(**row).execute() for row in rows])
        staged = list(Delivery.select(Delivery, Webhook).join(Webhook, JOIN.LEFT_OUTER)
                      .where(Delivery.id.in_(ids or [0])).order_by(Delivery.id))
        results = send.send_rows(config, staged, ssl_context=ssl_context)

        def finish():
            for row in staged:
                error = results.get(row.id)
                (Delivery.update(status='sent' if error is None else 'failed', attempts=1,
                                 sent_at=now if error is None else None, next_attempt_at=None,
                                 last_error='' if error is None else str(error))
                 .where(Delivery.id == row.id).execute())
        if staged:
            write(writer, finish)
        report = [(row.channel, row.target, results.get(row.id)) for row in staged]
        if not send.email_enabled(config):
            report.insert(0, ('email', '', send.SendError('email is not configured '
                                                     '(PROLIFERATE_SMTP_HOST is empty)')))
    return report


# -- settings writes (run on the writer; the settings page and tests use them) -------------------

def save_settings(org_id, values, now):
    """Store the organization's preferences (rules.parse_form values). Switching to a digest
    starts its window now: what came before was already alerted."""
    settings, _created = NotificationSettings.get_or_create(
        organization=org_id, defaults={'updated_at': now})
    changes = dict(values, updated_at=now)
    mode = values.get('delivery_mode', settings.delivery_mode)
    if mode in rules.PERIODS and mode != settings.delivery_mode:
        changes['last_digest_at'] = now
    NotificationSettings.update(changes).where(NotificationSettings.id == settings.id).execute()
    return NotificationSettings.get_by_id(settings.id)


def set_email_choice(membership_id, choice, now):
    if choice not in rules.EMAIL_CHOICES:
        raise ValueError(f'email choice must be one of {rules.EMAIL_CHOICES}')
    (NotificationPreference.insert(membership=membership_id, email=choice, updated_at=now)
     .on_conflict(conflict_target=[NotificationPreference.membership],
                  update={NotificationPreference.email: choice,
                          NotificationPreference.updated_at: now})
     .execute())


def add_webhook(org_id, url, *, kind='generic', name='', secret=None, now=None):
    problem = send.check_webhook_url(url)
    if problem:
        raise ValueError(f'URL {problem}')
    if kind not in rules.WEBHOOK_KINDS:
        raise ValueError('kind must be generic or slack')
    if secret is None:
        secret = send.new_secret() if kind == 'generic' else ''
    return Webhook.create(organization=org_id, url=url, kind=kind, name=name[:100],
                          secret=secret, is_active=True, created_at=now or utcnow())
