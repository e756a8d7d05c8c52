"""Notification pages: an organization's preferences, each member's own email choice, the
webhooks, a test button, and the delivery log (sent, failed with the error, pending retry).

Handlers only read; every change runs on the writer through Page.call (see base.py).
"""

import datetime

import falcon
import orjson
from peewee import JOIN
from peewee import fn

from proliferate.models import Delivery
from proliferate.models import Issue
from proliferate.models import NotificationPreference
from proliferate.models import NotificationSettings
from proliferate.models import Webhook
from proliferate.notifications import channel_check
from proliferate.notifications import rules
from proliferate.notifications import send
from proliferate.notifications import settings
from proliferate.orgs import MANAGERS
from proliferate.web import guard
from proliferate.web import urls
from proliferate.web.base import Page
from proliferate.web.base import base_url

STATUSES = ('pending', 'sent', 'failed', 'held', 'folded')
PAGE_SIZE = 50


def webhook_example(org, base):
    """A JSON webhook's alert body as this organization would get it, built by the code that
    builds the real ones (the issue and event are made up). Pure."""
    seen = datetime.datetime(2025, 1, 15, 10, 30)
    project = {'id': 1, 'slug': 'web', 'name': 'web'}
    issue = rules.issue_info({
        'id': 1, 'title': "TypeError: Cannot read property 'foo' of undefined",
        'type': 'TypeError', 'culprit': 'processData in app.js', 'level': 'error',
        'status': 'unresolved', 'event_count': 1, 'user_count': 1, 'account_count': 1,
        'first_seen': seen, 'last_seen': seen}, project, base)
    event = {'event_id': 'evt_1234567890abcdef', 'environment': 'production',
             'release': 'v1.2.3'}
    message = rules.alert_message('new_issue', rules.org_info(org), issue, event, {},
                                  seen + datetime.timedelta(seconds=1))
    return orjson.dumps(message['payload'], option=orjson.OPT_INDENT_2).decode()


def mask(secret):
    return (secret[:6] + '\u2026' + secret[-4:]) if len(secret) > 12 else ('set' if secret else '')


class NotificationPages(Page):
    @falcon.before(guard.require_login)
    def on_get(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug)
        self.show(req, resp, org, membership)

    def show(self, req, resp, org, membership, *, status=falcon.HTTP_200, error=None,
             values=None, test_report=None, new_secret=None):
        can_manage = membership.role in MANAGERS
        row = NotificationSettings.get_or_none(NotificationSettings.organization == org.id)
        prefs = rules.Prefs.from_row(row)
        form = dict(values or {})
        for field in rules.Prefs.__dataclass_fields__:
            if field not in form:
                value = getattr(prefs, field)
                form[field] = ', '.join(value) if field == 'environments' else value
        choice = (NotificationPreference.select(NotificationPreference.email)
                  .where(NotificationPreference.membership == membership.id).scalar()) or 'on'
        members = []
        hooks = []
        if can_manage:
            members = sorted(settings.members(org.id))
            hooks = list(Webhook.select().where(Webhook.organization == org.id)
                         .order_by(Webhook.id))
        self.render(req, resp, 'settings_notifications.html', status=status, org=org,
                    can_manage=can_manage, form=form, error=error,
                    choice=choice, members=members, hooks=hooks,
                    test_report=test_report, new_secret=new_secret, mask=mask,
                    email_enabled=send.email_enabled(self.config), config=self.config,
                    modes=rules.MODE_NAMES, levels=rules.LEVELS, weekdays=rules.WEEKDAYS,
                    triggers=rules.TRIGGER_NAMES, last_digest_at=prefs.last_digest_at,
                    webhook_example=(webhook_example(org, base_url(req, self.config))
                                     if can_manage else None))

    @falcon.before(guard.require_login)
    def on_post(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug, roles=MANAGERS)
        form = self.form(req)
        values, errors = rules.parse_form(form)
        if errors:
            raw = {name: form.get(name) for name in rules.Prefs.__dataclass_fields__}
            raw.update({'trigger_' + t: values['trigger_' + t] for t in rules.TRIGGERS})
            self.show(req, resp, org, membership, status=falcon.HTTP_400,
                      error=' '.join(errors), values=raw)
            return
        now = self.clock()
        self.call(lambda: settings.save_settings(org.id, values, now))
        raise falcon.HTTPSeeOther(urls.org_notifications(org.slug, notice='notifications_saved'))

    @falcon.before(guard.require_login)
    def on_post_me(self, req, resp, org_slug):
        _org, membership = self.org_for(req, org_slug)
        choice = self.form(req).get('email')
        if choice not in rules.EMAIL_CHOICES:
            raise falcon.HTTPBadRequest(description='email: on, digest or off')
        now = self.clock()
        self.call(lambda: settings.set_email_choice(membership.id, choice, now))
        raise falcon.HTTPSeeOther(urls.org_notifications(org_slug, notice='email_choice_saved'))

    @falcon.before(guard.require_login)
    def on_post_webhooks(self, req, resp, org_slug):
        org, membership = self.org_for(req, org_slug, roles=MANAGERS)
        form = self.form(req)
        url = form.get('url', limit=2000)
        kind = form.get('kind') or 'generic'
        name = form.get('name', limit=100)
        secret = form.get('secret', limit=200) or None
        now = self.clock()
        try:
            hook = self.call(lambda: settings.add_webhook(org.id, url, kind=kind, name=name,
                                                          secret=secret, now=now))
        except ValueError as error:
            self.show(req, resp, org, membership, status=falcon.HTTP_400, error=f'Webhook: {error}')
            return
        # The secret is shown in full once, here; afterwards only its ends.
        self.show(req, resp, org, membership, new_secret=(hook.id, hook.secret))

    @falcon.before(guard.require_login)
    def on_post_webhook(self, req, resp, org_slug, webhook_id):
        org, _membership = self.org_for(req, org_slug, roles=MANAGERS)
        action = self.form(req).get('action')
        if action not in ('delete', 'pause', 'resume'):
            raise falcon.HTTPBadRequest(description='action: delete, pause or resume')

        def change():
            query = Webhook.select().where(Webhook.id == webhook_id, Webhook.organization == org.id)
            if not query.exists():
                return False
            if action == 'delete':
                Webhook.delete().where(Webhook.id == webhook_id).execute()
            else:
                Webhook.update(is_active=action == 'resume').where(Webhook.id == webhook_id).execute()
            return True
        if not self.call(change):
            raise falcon.HTTPNotFound()
        done = {'delete': 'webhook_deleted', 'pause': 'webhook_paused', 'resume': 'webhook_resumed'}
        raise falcon.HTTPSeeOther(urls.org_notifications(org.slug, notice=done[action]))

    @falcon.before(guard.require_login)
    def on_post_test(self, req, resp, org_slug):
        """Sends now, from this request (bounded by the senders' timeouts), and shows each
        channel's result; every message is also in the delivery log."""
        org, membership = self.org_for(req, org_slug, roles=MANAGERS)
        report = channel_check.send_test(self.config, org, self.clock(), writer=self.writer)
        results = [{'channel': channel, 'target': target, 'ok': error is None,
                    'error': '' if error is None else str(error)}
                   for channel, target, error in report]
        self.show(req, resp, org, membership, test_report=results)

    @falcon.before(guard.require_login)
    def on_get_deliveries(self, req, resp, org_slug):
        org, _membership = self.org_for(req, org_slug, roles=MANAGERS)
        status = req.get_param('status') or ''
        if status and status not in STATUSES:
            raise falcon.HTTPBadRequest(description='status: ' + ', '.join(STATUSES))
        before = req.get_param_as_int('before', min_value=1)
        query = (Delivery.select(Delivery, Issue.id, Issue.title)
                 .join(Issue, JOIN.LEFT_OUTER)
                 .where(Delivery.organization == org.id))
        if status:
            query = query.where(Delivery.status == status)
        if before:
            query = query.where(Delivery.id < before)
        rows = list(query.order_by(Delivery.id.desc()).limit(PAGE_SIZE + 1))
        older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
        counts = dict(Delivery.select(Delivery.status, fn.COUNT(Delivery.id))
                      .where(Delivery.organization == org.id)
                      .group_by(Delivery.status).tuples())
        self.render(req, resp, 'deliveries.html', org=org,
                    rows=rows[:PAGE_SIZE], shown=status, statuses=STATUSES, counts=counts,
                    older=older, triggers=rules.TRIGGER_NAMES)
