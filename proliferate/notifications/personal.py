"""Mail to one member about one issue: assigned to them, @-mentioned in a comment, their issue
regressed, or a snoozed issue escalated (its assignee, else every member who takes alerts).
Outbox rows -> delivery rows; not held by the hourly cap or the cooldown (each is one person's
own business). A member whose email choice is 'off' gets none. No sending here."""

import orjson

from proliferate.models import Membership
from proliferate.models import NotificationPreference
from proliferate.models import User
from proliferate.notifications import rules
from proliferate.notifications import send
from proliferate.notifications.settings import members

KINDS = ('assigned', 'mention', 'escalating')
REASONS = {'time': 'its snooze time is over', 'events': 'it reached the events you waited for',
           'users': 'it reached the users you waited for',
           'accounts': 'it reached the accounts you waited for'}


def email_choice(org_id, address):
    row = (NotificationPreference.select(NotificationPreference.email)
           .join(Membership).join(User)
           .where(Membership.organization == org_id, User.email == address).first())
    return row.email if row else 'on'


def headline(kind, issue, data):
    title = issue['title']
    if kind == 'assigned':
        by = data.get('by')
        return f'Assigned to you{" by " + by if by else ""}: {title}'
    if kind == 'mention':
        return f'{data.get("by") or "Someone"} mentioned you: {title}'
    if kind == 'regression':
        release = data.get('release')
        return f'Your issue regressed{" in " + release if release else ""}: {title}'
    return f'Escalating ({REASONS.get(data.get("reason"), "snooze over")}): {title}'


def recipients(row, data):
    org_id = row.project.organization_id
    if row.kind in ('assigned', 'mention'):
        wanted = data.get('to') or []
    elif row.issue.assignee_id is not None:
        wanted = [User.get_by_id(row.issue.assignee_id).email]
    elif row.kind == 'escalating':
        wanted = rules.email_recipients(members(org_id), 'alert', 'immediate')
    else:
        wanted = []
    return [a for a in wanted if email_choice(org_id, a) != 'off']


def plan(config, row, base, now):
    """One outbox row -> (decision, delivery rows). Regressions reach the assignee this way
    besides the organization's alert."""
    if row.issue_id is None or not send.email_enabled(config):
        return 'no_email', []
    data = orjson.loads(row.data or '{}')
    emails = recipients(row, data)
    if not emails:
        return 'no_recipient', []
    issue = rules.issue_info(row.issue, row.project, base)
    text = headline(row.kind, issue, data)
    message = {'kind': 'personal', 'trigger': row.kind, 'subject': rules.trim(f'[Proliferate] {text}'),
               'headline': text, 'issue': issue, 'comment': data.get('text'),
               'organization': rules.org_info(row.project.organization),
               'payload': {'type': 'personal', 'text': text}}
    return 'personal', send.delivery_rows(config, row.project.organization_id, message, emails, [],
                                          issue_id=row.issue_id, created_at=now)
