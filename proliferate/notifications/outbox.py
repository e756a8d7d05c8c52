"""From the outbox to the delivery log: outbox rows -> planned alerts (cooldown, hourly cap) and
summaries of the alerts the cap held back -> delivery rows; sending what is due with retries;
pruning the old log; run_outbox, the job's body. rules.py decides, send.py sends."""

import collections
import datetime
import logging

import orjson
from peewee import EXCLUDED
from peewee import JOIN
from peewee import fn

from proliferate import db
from proliferate.ingest import payload
from proliferate.models import Delivery
from proliferate.models import Event
from proliferate.models import Issue
from proliferate.models import NotificationCooldown
from proliferate.models import Organization
from proliferate.models import Outbox
from proliferate.models import Project
from proliferate.models import Webhook
from proliferate.notifications import personal
from proliferate.notifications import rules
from proliferate.notifications import send
from proliferate.notifications.settings import active_webhooks
from proliferate.notifications.settings import load_prefs
from proliferate.notifications.settings import members
from proliferate.notifications.transactions import CHUNK
from proliferate.notifications.transactions import connection
from proliferate.notifications.transactions import write
from proliferate.notifications.triggers import detect_triggers
from proliferate.notifications.triggers import record_triggers

log = logging.getLogger(__name__)

OUTBOX_BATCH = 500
DELIVERY_BATCH = 200
# The delivery log and processed outbox rows are kept this long; each run deletes at most a
# batch, so a first prune after months never holds the writer for long.
KEEP_DAYS = 30
PRUNE_BATCH = 2000


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
            if row.kind == 'regression':  # the assignee's own mail, besides the alert
                plan['deliveries'].extend((row.id, d) for d in personal.plan(config, row, base, now)[1])
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
    if row.kind in personal.KINDS:
        return personal.plan(config, row, base, now)
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
        chosen_emails = [a for a in emails if rules.cap_status(counts, a, org_prefs) == status]
        chosen_hooks = [h for h in hooks
                        if rules.cap_status(counts, h.url[:255], org_prefs) == status]
        made.extend(send.delivery_rows(config, org.id, message, chosen_emails, chosen_hooks,
                                         issue_id=issue.id, created_at=now, status=status))
    for target in emails + [h.url[:255] for h in hooks]:
        counts[target] += 1
    return decision, made


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


# -- pruning ------------------------------------------------------------------------------------

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


# -- the job's body -----------------------------------------------------------------------------

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
