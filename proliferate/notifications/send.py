"""Sending notifications: email over SMTP (STARTTLS, SSL, login) and webhooks (generic JSON signed
with HMAC-SHA256, and Slack), the email templates, and the delivery rows that carry a message to
each target. No database access, no decisions (rules.py) and no planning (outbox.py)."""

import email.message
import email.utils
import functools
import hashlib
import hmac
import http.client
import logging
import secrets
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import orjson
from jinja2 import Environment
from jinja2 import FileSystemLoader
from jinja2 import StrictUndefined
from jinja2 import select_autoescape

from proliferate import __version__
from proliferate.notifications import rules

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds per SMTP or HTTP operation: a dead server costs a run at most this
USER_AGENT = f'Proliferate/{__version__} (+notifications)'


# -- senders -------------------------------------------------------------------------------------

class SendError(Exception):
    """A failed send; permanent ones (a 4xx webhook answer, a 5xx SMTP reply) are not retried."""

    def __init__(self, message, permanent=False):
        super().__init__(message)
        self.permanent = permanent


def describe(error):
    text = str(error) or type(error).__name__
    if isinstance(error, smtplib.SMTPResponseException):
        detail = error.smtp_error
        if isinstance(detail, bytes):
            detail = detail.decode('utf-8', 'replace')
        text = f'{error.smtp_code} {detail}'
    elif isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        text = str(error.reason)
    return rules.trim(f'{type(error).__name__}: {text}', 500)


def build_email(config, to, subject, text, html):
    message = email.message.EmailMessage()
    message['From'] = config.smtp_from
    message['To'] = to
    message['Subject'] = subject
    message['Date'] = email.utils.formatdate(usegmt=True)
    domain = config.smtp_from.rpartition('@')[2] or 'localhost'
    message['Message-ID'] = email.utils.make_msgid(domain=domain)
    # RFC 3834: vacation responders must not answer machine mail.
    message['Auto-Submitted'] = 'auto-generated'
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype='html')
    return message


class SmtpSender:
    """One SMTP connection for the email of one run. connect() and send() raise SendError."""

    def __init__(self, config, *, ssl_context=None, timeout=TIMEOUT):
        self.config = config
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.smtp = None
        self.broken = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def connect(self):
        config = self.config
        if not config.smtp_host:
            raise SendError('email is not configured (PROLIFERATE_SMTP_HOST is empty)', permanent=True)
        context = self.ssl_context or ssl.create_default_context()
        smtp = None
        try:
            if config.smtp_ssl:
                smtp = smtplib.SMTP_SSL(config.smtp_host, config.smtp_port, timeout=self.timeout,
                                        context=context)
            else:
                smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=self.timeout)
                if config.smtp_starttls:
                    smtp.starttls(context=context)
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
        except (OSError, smtplib.SMTPException) as error:
            if smtp is not None:
                smtp.close()
            # Retried: a login refused today is often a password fixed tomorrow.
            raise SendError(f'SMTP {config.smtp_host}:{config.smtp_port}: {describe(error)}') from error
        self.smtp = smtp
        return self

    def send(self, to, subject, text, html=None):
        if self.broken is not None:
            raise self.broken
        message = build_email(self.config, to, subject, text, html)
        try:
            self.smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _msg in error.recipients.values()]
            raise SendError(f'recipient refused: {error.recipients}',
                            permanent=all(code >= 500 for code in codes)) from error
        except smtplib.SMTPResponseException as error:
            raise SendError(describe(error), permanent=error.smtp_code >= 500) from error
        except (OSError, smtplib.SMTPException) as error:
            # The connection is gone: the rest of this run's email fails the same way.
            self.broken = SendError(describe(error))
            raise self.broken from error

    def close(self):
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (OSError, smtplib.SMTPException):
                self.smtp.close()
            self.smtp = None


def sign(secret, timestamp, body):
    """X-Proliferate-Signature: HMAC-SHA256 over '<timestamp>.<raw body>' with the webhook's
    secret; the timestamp inside the signed text lets a receiver refuse replays."""
    mac = hmac.new(secret.encode('utf-8'), f'{timestamp}.'.encode('ascii') + body, hashlib.sha256)
    return 'sha256=' + mac.hexdigest()


def webhook_headers(kind, secret, body, message_type, delivery_id, timestamp):
    headers = {'Content-Type': 'application/json', 'User-Agent': USER_AGENT}
    if kind == 'generic':
        headers.update({
            'X-Proliferate-Event': message_type,
            'X-Proliferate-Delivery': str(delivery_id),
            'X-Proliferate-Timestamp': str(timestamp),
        })
        if secret:
            headers['X-Proliferate-Signature'] = sign(secret, timestamp, body)
    return headers


def check_webhook_url(url):
    """'' when url may be a webhook, else the reason (only http and https: urllib would also open
    file: URLs)."""
    try:
        parts = urllib.parse.urlsplit(url or '')
    except ValueError:
        return 'not a URL'
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        return 'must be an http:// or https:// URL'
    if any(ord(c) < 33 for c in url) or len(url) > 2000:
        return 'must not contain spaces or control characters (at most 2000 characters)'
    return ''


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a webhook that moved is a configuration error, not something to follow


_opener = urllib.request.build_opener(_NoRedirect)


def post_webhook(url, body, headers, timeout=TIMEOUT):
    """POST body; returns the status, raises SendError. Only 2xx is success."""
    problem = check_webhook_url(url)
    if problem:
        raise SendError(f'webhook URL {problem}', permanent=True)
    request = urllib.request.Request(url, data=body, headers=headers, method='POST')  # noqa: S310 (scheme checked to be http(s) before this)
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return response.status
    except urllib.error.HTTPError as error:
        snippet = rules.trim(error.read(300).decode('utf-8', 'replace'), 200)
        code = error.code
        # 4xx (bad URL, revoked Slack hook) will not heal by itself; 408/425/429 and 5xx may.
        permanent = 300 <= code < 500 and code not in (408, 425, 429)
        raise SendError(f'HTTP {code} {error.reason}' + (f': {snippet}' if snippet else ''),
                        permanent=permanent) from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise SendError(describe(error)) from error


def webhook_body(kind, message):
    data = rules.slack_payload(message) if kind == 'slack' else message['payload']
    return orjson.dumps(data)


def new_secret():
    return 'whsec_' + secrets.token_urlsafe(24)


# -- email content ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def email_environment(templates_dir):
    """Built once per templates directory. email/*.txt is not escaped, on purpose; *.html is."""
    env = Environment(loader=FileSystemLoader(str(templates_dir)),
                      autoescape=select_autoescape(('html', 'xml')), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters['time'] = lambda value: value.strftime('%Y-%m-%d %H:%M UTC') if value else ''
    return env


def render_email(config, message):
    env = email_environment(config.templates_dir)
    context = {'m': message, 'site_url': site_url(config), 'trigger_names': rules.TRIGGER_NAMES}
    text = env.get_template(f'email/{message["kind"]}.txt').render(context)
    html = env.get_template(f'email/{message["kind"]}.html').render(context)
    return text, html


def site_url(config):
    return config.base_url.rstrip('/') or f'http://{config.host}:{config.port}'


def email_enabled(config):
    return bool(config.smtp_host)


def delivery_rows(config, org_id, message, emails, hooks, *, issue_id=None, created_at,
                  status='pending'):
    """One Delivery row (as a dict) per target of the message."""
    rows = []
    base = {'organization': org_id, 'kind': message['kind'], 'trigger': message.get('trigger'),
            'issue': issue_id, 'subject': message['subject'][:255], 'status': status,
            'attempts': 0, 'next_attempt_at': None, 'last_error': '', 'created_at': created_at,
            'sent_at': None}
    if emails:
        text, html = render_email(config, message)
        for address in emails:
            content = {'to': address, 'subject': message['subject'], 'text': text, 'html': html}
            rows.append({**base, 'channel': 'email', 'target': address[:255], 'webhook': None,
                         'payload': orjson.dumps(content).decode()})
    for hook in hooks:
        content = {'type': message['kind'], 'body': webhook_body(hook.kind, message).decode()}
        rows.append({**base, 'channel': 'webhook', 'target': hook.url[:255], 'webhook': hook.id,
                     'payload': orjson.dumps(content).decode()})
    return rows


# -- sending ------------------------------------------------------------------------------------

def send_rows(config, rows, *, ssl_context=None, timeout=TIMEOUT):
    """-> {delivery id: None (sent) or SendError}. No database access."""
    results = {}
    emails = [row for row in rows if row.channel == 'email']
    if emails:
        sender = SmtpSender(config, ssl_context=ssl_context, timeout=timeout)
        try:
            sender.connect()
        except SendError as error:
            results.update((row.id, error) for row in emails)
        else:
            try:
                for row in emails:
                    try:
                        content = orjson.loads(row.payload)
                        sender.send(content['to'], content['subject'], content['text'],
                                    content.get('html'))
                        results[row.id] = None
                    except SendError as error:
                        results[row.id] = error
                    except (ValueError, KeyError, TypeError) as error:
                        # A message that cannot be built (a damaged row, a header with a line
                        # break) will never go out: failed at once, the others still do.
                        results[row.id] = SendError(describe(error), permanent=True)
            finally:
                sender.close()
    dead = {}
    for row in rows:
        if row.channel != 'webhook':
            continue
        hook = row.webhook
        if hook is None:
            results[row.id] = SendError('the webhook was deleted', permanent=True)
        elif not hook.is_active:
            results[row.id] = SendError('the webhook is disabled', permanent=True)
        elif hook.url in dead:
            results[row.id] = dead[hook.url]  # one dead endpoint costs one timeout per run
        else:
            try:
                content = orjson.loads(row.payload)
                body = content['body'].encode()
            except (ValueError, KeyError, TypeError) as error:
                results[row.id] = SendError(describe(error), permanent=True)
                continue
            headers = webhook_headers(hook.kind, hook.secret, body, content['type'], row.id,
                                      int(time.time()))
            try:
                post_webhook(hook.url, body, headers, timeout=timeout)
                results[row.id] = None
            except SendError as error:
                results[row.id] = error
                if not error.permanent:
                    dead[hook.url] = error
    return results
