"""Issues: status changes with their activity log, and the JSON form of issues and events that
the read API and the event JSON page share. No HTTP; status changes run on the writer."""

import orjson

from proliferate.ingest.payload import decode_event
from proliferate.models import Issue
from proliferate.models import IssueActivity
from proliferate.models import User
from proliferate.times import iso
from proliferate.times import utcnow

STATUSES = ('unresolved', 'resolved', 'ignored')
ACTIVITY_KINDS = {'resolved': 'resolved', 'ignored': 'ignored', 'unresolved': 'reopened'}


def set_status(issue_id, status, *, user_id=None, now=None):
    """Change an issue's status and record it in its activity; runs on the writer."""
    now = now or utcnow()
    issue = Issue.get_by_id(issue_id)
    if issue.status == status:
        return issue
    values = {Issue.status: status}
    if status == 'resolved':
        values.update({Issue.resolved_at: now, Issue.is_regressed: False})
    elif issue.status == 'resolved':
        values[Issue.resolved_at] = None
    Issue.update(values).where(Issue.id == issue_id).execute()
    IssueActivity.create(issue=issue_id, kind=ACTIVITY_KINDS[status], user=user_id, created_at=now)
    return issue


def issue_json(issue):
    return {
        'id': issue.id, 'project_id': issue.project_id, 'fingerprint': issue.fingerprint,
        'type': issue.type, 'title': issue.title, 'culprit': issue.culprit,
        'level': issue.level, 'status': issue.status,
        'event_count': issue.event_count, 'user_count': issue.user_count,
        'account_count': issue.account_count,
        'first_seen': iso(issue.first_seen), 'last_seen': iso(issue.last_seen),
        'first_release': issue.first_release, 'last_release': issue.last_release,
        'is_regressed': bool(issue.is_regressed), 'regressed_release': issue.regressed_release,
        'regressed_at': iso(issue.regressed_at), 'resolved_at': iso(issue.resolved_at),
        **triage_json(issue),
    }


def event_json(row):
    event = decode_event(row.data)
    event.update({'id': row.id, 'issue_id': row.issue_id, 'project_id': row.project_id,
                  'received_at': iso(row.received_at)})
    return event


# Triage (proliferate/triage.py writes these columns): the keys the issue JSON gains.
COUNT_COLUMNS = {'events': 'event_count', 'users': 'user_count', 'accounts': 'account_count'}


def assignee_email(issue):
    if issue.assignee_id is None:
        return None
    user = User.get_or_none(User.id == issue.assignee_id)
    return user.email if user else None


def triage_json(issue):
    """The keys the issue JSON gains: assignee, resolved_in, ignore_until, escalating."""
    resolved_in = None
    if issue.status == 'resolved':
        resolved_in = 'next' if issue.resolved_in_next else issue.resolved_in
    snooze = None
    if issue.status == 'ignored' and issue.ignore_until:
        snooze = orjson.loads(issue.ignore_until)
        if issue.snooze_kind:
            column = COUNT_COLUMNS[issue.snooze_kind]
            snooze['remaining'] = max(0, issue.snooze_target - getattr(issue, column))
    return {'assignee': assignee_email(issue), 'resolved_in': resolved_in,
            'ignore_until': snooze, 'escalating': bool(issue.escalating)}
