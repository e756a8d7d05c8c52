"""The test message: one message to every configured channel of an organization, sent at once
(not queued, so the settings page and `proliferate notify test` can show each result) and kept in
the delivery log. The content is rules.test_message; the sending is send.send_rows."""

import datetime

from peewee import JOIN

from proliferate.models import Delivery
from proliferate.models import Webhook
from proliferate.notifications import rules
from proliferate.notifications import send
from proliferate.notifications.settings import active_webhooks
from proliferate.notifications.settings import load_prefs
from proliferate.notifications.settings import members
from proliferate.notifications.transactions import connection
from proliferate.notifications.transactions import write


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
