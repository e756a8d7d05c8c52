"""An organization's notification settings: the reads every job and the settings page share
(preferences, members' email choices, active webhooks) and the writes of the settings page (run
on the writer). No sending; decisions and form parsing live in rules.py."""

from peewee import JOIN

from proliferate.models import Membership
from proliferate.models import NotificationPreference
from proliferate.models import NotificationSettings
from proliferate.models import User
from proliferate.models import Webhook
from proliferate.notifications import rules
from proliferate.notifications import send
from proliferate.times import utcnow


def load_prefs(org_ids):
    """{organization id: rules.Prefs}; the defaults for an organization without settings."""
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
