"""Pure decisions of the notifications: which outbox rows become which messages given the
organization's preferences, cooldowns and the hourly cap; digest schedules; message content
(email context, generic webhook JSON, Slack). Pure: no I/O (the other modules read, write, send)."""

import dataclasses
import datetime
import re

import orjson

from proliferate.times import iso

TRIGGERS = ('new_issue', 'regression', 'spike', 'accounts')
TRIGGER_NAMES = {
    'new_issue': 'New issue', 'regression': 'Regression', 'spike': 'Spike',
    'accounts': 'Accounts threshold',
}
MODES = ('immediate', 'digest_hourly', 'digest_daily', 'digest_weekly', 'off')
MODE_NAMES = {
    'immediate': 'Immediately', 'digest_hourly': 'Hourly digest',
    'digest_daily': 'Daily digest', 'digest_weekly': 'Weekly digest', 'off': 'Off',
}
LEVELS = ('info', 'warning', 'error')  # normalize.LEVELS, in rising order
EMAIL_CHOICES = ('on', 'digest', 'off')
WEEKDAYS = ('Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday')
WEBHOOK_KINDS = ('generic', 'slack')
PERIODS = {
    'digest_hourly': datetime.timedelta(hours=1),
    'digest_daily': datetime.timedelta(days=1),
    'digest_weekly': datetime.timedelta(days=7),
}
# Retries of a failed delivery: 30 s, 1, 2, 4, 8, 16, 32 min, then 1 h apart; 8 attempts
# (about 2 hours) before it is marked failed for good.
MAX_ATTEMPTS = 8
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
TOP_ISSUES = 5


@dataclasses.dataclass(frozen=True)
class Prefs:
    """An organization's notification settings as plain values; the defaults are what an
    organization without a NotificationSettings row gets."""
    delivery_mode: str = 'immediate'
    digest_hour: int = 9
    digest_weekday: int = 0
    trigger_new_issue: bool = True
    trigger_regression: bool = True
    trigger_spike: bool = True
    spike_events: int = 100
    spike_minutes: int = 60
    trigger_accounts: bool = False
    accounts_threshold: int = 10
    min_level: str = 'warning'
    environments: tuple = ()
    cooldown_minutes: int = 60
    hourly_cap: int = 20
    last_digest_at: datetime.datetime = None

    @classmethod
    def from_row(cls, row):
        if row is None:
            return cls()
        values = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls)}
        values['environments'] = parse_environments(row.environments)
        return cls(**values)

    def triggers(self):
        return tuple(t for t in TRIGGERS if getattr(self, 'trigger_' + t))


def parse_environments(text):
    """'production, staging' -> ('production', 'staging'); empty = every environment."""
    return tuple(dict.fromkeys(part for part in re.split(r'[\s,]+', text or '') if part))


def parse_form(form):
    """The settings form (strings, checkboxes present or absent) -> (field values, errors)."""
    values = {}
    errors = []

    def number(name, low, high, label):
        raw = str(form.get(name, '')).strip()
        try:
            value = int(raw)
        except ValueError:
            errors.append(f'{label}: a whole number between {low} and {high}')
            return
        if not low <= value <= high:
            errors.append(f'{label}: a whole number between {low} and {high}')
            return
        values[name] = value

    mode = form.get('delivery_mode')
    if mode not in MODES:
        errors.append('Delivery: choose one of the listed modes')
    else:
        values['delivery_mode'] = mode
    number('digest_hour', 0, 23, 'Digest hour')
    number('digest_weekday', 0, 6, 'Digest weekday')
    for trigger in TRIGGERS:
        values['trigger_' + trigger] = form.get('trigger_' + trigger) in ('on', '1', 'true', 'yes')
    number('spike_events', 1, 1_000_000, 'Spike events')
    number('spike_minutes', 1, 7 * 24 * 60, 'Spike minutes')
    number('accounts_threshold', 1, 1_000_000, 'Accounts threshold')
    number('cooldown_minutes', 0, 7 * 24 * 60, 'Cooldown minutes')
    number('hourly_cap', 1, 10_000, 'Messages per channel per hour')
    level = form.get('min_level')
    if level not in LEVELS:
        errors.append('Minimum level: info, warning or error')
    else:
        values['min_level'] = level
    environments = parse_environments(form.get('environments', ''))
    if any(len(e) > 200 for e in environments):
        errors.append('Environments: each name at most 200 characters')
    values['environments'] = ', '.join(environments)
    return values, errors


def level_rank(level):
    return LEVELS.index(level) if level in LEVELS else len(LEVELS) - 1


def passes_filters(prefs, level, environment):
    """Minimum level, and the environments filter (an event without an environment passes
    only when no filter is set)."""
    if level_rank(level) < level_rank(prefs.min_level):
        return False
    return not prefs.environments or environment in prefs.environments


def in_digest(prefs, status, level, environments):
    """Whether an issue counts in the digest: not ignored, at least the minimum level, and (when
    the organization filters environments) seen in one of them. environments: a set."""
    if status == 'ignored' or level_rank(level) < level_rank(prefs.min_level):
        return False
    return not prefs.environments or bool(environments & set(prefs.environments))


def in_cooldown(last_sent_at, now, minutes):
    return last_sent_at is not None and now - last_sent_at < datetime.timedelta(minutes=minutes)


def decide(row, prefs, cooldowns, now):
    """One outbox row -> 'send' or the reason it is not sent as an alert now. row: dict with
    kind, issue_id, issue_status, level, environment. cooldowns: {(issue_id, trigger): last
    alert} (updated here for 'send', so one run sends one alert per issue and trigger)."""
    if prefs.delivery_mode == 'off':
        return 'off'
    if prefs.delivery_mode != 'immediate':
        return 'digest'
    if row['kind'] not in TRIGGERS or not getattr(prefs, 'trigger_' + row['kind']):
        return 'disabled'
    if row['issue_status'] == 'ignored':
        return 'ignored'
    if not passes_filters(prefs, row['level'], row['environment']):
        return 'filtered'
    key = (row['issue_id'], row['kind'])
    if in_cooldown(cooldowns.get(key), now, prefs.cooldown_minutes):
        return 'cooldown'
    cooldowns[key] = now
    return 'send'


def is_spike(nth_received_at, newest_received_at, now, minutes):
    """At least N events within M minutes: the N-th newest event of the issue is at most M
    minutes older than the newest, and the newest is recent (a backlog of old events read
    after a restart is not a spike now)."""
    if nth_received_at is None or newest_received_at is None:
        return False
    window = datetime.timedelta(minutes=minutes)
    return newest_received_at - nth_received_at <= window and newest_received_at >= now - window


def crossed_accounts(account_count, threshold, alerted_thresholds):
    """An issue reaching K affected accounts alerts once per threshold value."""
    return account_count >= threshold and threshold not in alerted_thresholds


def outbox_row(kind, issue, now, **data):
    """The outbox row (as a dict) of a detected trigger; data is what its alert will say."""
    return {'kind': kind, 'project': issue.project_id, 'issue': issue.id,
            'data': orjson.dumps(data).decode(), 'created_at': now}


def hour_start(now):
    return now.replace(minute=0, second=0, microsecond=0)


def allowed_now(sent_this_hour, cap):
    """How many more messages a channel may get this clock hour."""
    return max(0, cap - sent_this_hour)


def cap_status(counts, target, prefs):
    """'pending' while the target is under the hourly cap, else 'held' (for the summary).
    counts: a Counter of messages per target this clock hour."""
    return 'pending' if allowed_now(counts[target], prefs.hourly_cap) > 0 else 'held'


def retry_delay(attempts):
    """Seconds before the next attempt after `attempts` failed ones (exponential, bounded)."""
    return min(FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1), MAX_RETRY_SECONDS)


def after_failure(attempts, permanent, now):
    """-> (status, next_attempt_at) once attempt number `attempts` has failed."""
    if permanent or attempts >= MAX_ATTEMPTS:
        return 'failed', None
    return 'pending', now + datetime.timedelta(seconds=retry_delay(attempts))


def period_start(mode, hour, weekday, now):
    """The start of the digest period that contains now."""
    if mode == 'digest_hourly':
        return hour_start(now)
    start = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if mode == 'digest_daily':
        return start if start <= now else start - datetime.timedelta(days=1)
    if mode == 'digest_weekly':
        start -= datetime.timedelta(days=(now.weekday() - weekday) % 7)
        return start if start <= now else start - datetime.timedelta(days=7)
    raise ValueError(f'not a digest mode: {mode!r}')


def digest_window(mode, hour, weekday, last_sent_at, now):
    """(since, until) of the digest due now, or None when this period's digest went out.
    It covers the time since the last digest, at most one period back."""
    start = period_start(mode, hour, weekday, now)
    if last_sent_at is not None and last_sent_at >= start:
        return None
    earliest = start - PERIODS[mode]
    since = earliest if last_sent_at is None or last_sent_at < earliest else last_sent_at
    return since, now


def digest_schedule(prefs, has_digest_only_members):
    """Which digest an organization gets: its own mode, or a daily one for members who chose
    digest-only while the organization is on immediate alerts."""
    if prefs.delivery_mode in PERIODS:
        return prefs.delivery_mode
    if prefs.delivery_mode == 'immediate' and has_digest_only_members:
        return 'digest_daily'
    return None


def email_recipients(members, purpose, org_mode):
    """members: [(email, choice)] -> addresses. purpose: 'alert' | 'digest' | 'test'."""
    wanted = {
        'alert': ('on',),
        'digest': ('on', 'digest') if org_mode in PERIODS else ('digest',),
        'test': ('on', 'digest'),
    }[purpose]
    return sorted({email for email, choice in members if (choice or 'on') in wanted})


# Message content -------------------------------------------------------------------------

def issue_url(base_url, issue_id):
    return f'{base_url.rstrip("/")}/issues/{issue_id}'


def issue_info(issue, project, base_url):
    """issue, project: objects or dicts with the Issue/Project fields used below."""
    get = _getter(issue)
    return {
        'id': get('id'), 'title': get('title'), 'type': get('type'), 'culprit': get('culprit'),
        'level': get('level'), 'status': get('status'), 'event_count': get('event_count'),
        'user_count': get('user_count'), 'account_count': get('account_count'),
        'first_seen': iso(get('first_seen')), 'last_seen': iso(get('last_seen')),
        'project': project_info(project), 'url': issue_url(base_url, get('id')),
    }


def project_info(project):
    get = _getter(project)
    return {'id': get('id'), 'slug': get('slug'), 'name': get('name')}


def org_info(org):
    get = _getter(org)
    return {'id': get('id'), 'slug': get('slug'), 'name': get('name')}


def _getter(thing):
    if isinstance(thing, dict):
        return thing.get
    return lambda name: getattr(thing, name, None)


def alert_headline(trigger, issue, detail):
    project = issue['project']['name']
    if trigger == 'new_issue':
        what = f'New issue in {project}'
    elif trigger == 'regression':
        release = detail.get('release')
        what = f'Regression in {project}' + (f' (release {release})' if release else '')
    elif trigger == 'spike':
        what = (f'Spike in {project}: {detail.get("events")} events in '
                f'{detail.get("minutes")} min')
    elif trigger == 'accounts':
        what = f'{project}: {detail.get("threshold")} accounts affected'
    else:
        what = f'{TRIGGER_NAMES.get(trigger, trigger)} in {project}'
    return f'{what}: {issue["title"]}'


def alert_message(trigger, org, issue, event, detail, created_at):
    """The alert as one dict: `payload` is the generic webhook body, the rest feeds the email
    templates and Slack."""
    headline = alert_headline(trigger, issue, detail)
    payload = {
        'type': 'alert', 'trigger': trigger, 'text': headline, 'organization': org,
        'project': issue['project'], 'issue': {k: v for k, v in issue.items() if k != 'project'},
        'event': event, 'detail': detail, 'created_at': iso(created_at),
    }
    return {'kind': 'alert', 'trigger': trigger, 'subject': trim(f'[Proliferate] {headline}'),
            'headline': headline, 'issue': issue, 'event': event, 'detail': detail,
            'organization': org, 'payload': payload}


def summary_message(org, alerts, since, until):
    """alerts: [{'trigger', 'issue': {id, title, url}, 'headline'}] held back by the cap."""
    count = len(alerts)
    headline = f'{count} more alert{"s" if count != 1 else ""} for {org["name"]} (hourly cap reached)'
    payload = {'type': 'summary', 'text': headline, 'organization': org, 'count': count,
               'since': iso(since), 'until': iso(until), 'alerts': alerts}
    return {'kind': 'summary', 'subject': trim(f'[Proliferate] {headline}'),
            'headline': headline, 'alerts': alerts, 'organization': org, 'since': since,
            'until': until, 'payload': payload}


def digest_message(org, content, since, until, schedule):
    name = {'digest_hourly': 'Hourly', 'digest_daily': 'Daily', 'digest_weekly': 'Weekly'}[schedule]
    parts = []
    for key, label in (('new', 'new'), ('regressed', 'regressed'), ('spiking', 'spiking')):
        if content[key]:
            parts.append(f'{len(content[key])} {label}')
    active = len(content['top_events'])
    total = content['total_events']
    parts.append(f'{total} event{"s" if total != 1 else ""} in {active} issue{"s" if active != 1 else ""}')
    headline = f'{name} digest for {org["name"]}: ' + ', '.join(parts)
    payload = {'type': 'digest', 'text': headline, 'organization': org, 'schedule': schedule,
               'since': iso(since), 'until': iso(until), **content}
    return {'kind': 'digest', 'subject': trim(f'[Proliferate] {headline}'), 'headline': headline,
            'organization': org, 'since': since, 'until': until, 'content': content,
            'payload': payload}


def test_message(org, base_url, now):
    headline = f'Test message from Proliferate for {org["name"]}'
    payload = {'type': 'test', 'text': headline, 'organization': org, 'url': base_url,
               'created_at': iso(now)}
    return {'kind': 'test', 'subject': f'[Proliferate] {headline}', 'headline': headline,
            'organization': org, 'base_url': base_url, 'payload': payload}


def is_empty_digest(content):
    return not (content['new'] or content['regressed'] or content['spiking']
                or content['top_events'])


def digest_content(new, regressed, spiking, active):
    """new, regressed, spiking: issue dicts; active: issue dicts with 'events', 'users',
    'accounts' counted in the digest's window. -> the digest's sections."""
    def top(key):
        rows = [row for row in active if row.get(key)]
        return sorted(rows, key=lambda row: (-row[key], row['id']))[:TOP_ISSUES]
    return {
        'new': new, 'regressed': regressed, 'spiking': spiking,
        'top_events': top('events'), 'top_users': top('users'), 'top_accounts': top('accounts'),
        'total_events': sum(row.get('events', 0) for row in active),
    }


def trim(text, limit=200):
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + '\u2026'


def slack_escape(text):
    return str(text).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')


def slack_link(url, text):
    label = slack_escape(trim(text, 150)).replace('|', '\u2758')
    return f'<{url}|{label}>'


def slack_payload(message):
    """The Slack incoming-webhook body: `text` (notification fallback) and mrkdwn blocks."""
    kind = message['kind']
    lines = []
    if kind == 'alert':
        issue = message['issue']
        lines.append(f'*{slack_escape(message["headline"].split(": ", 1)[0])}*')
        lines.append(slack_link(issue['url'], issue['title']))
        env = (message.get('event') or {}).get('environment')
        lines.append(f'{issue["level"]} \u00b7 {issue["event_count"]} events \u00b7 '
                     f'{issue["user_count"]} users \u00b7 {issue["account_count"]} accounts'
                     + (f' \u00b7 {slack_escape(env)}' if env else ''))
    elif kind == 'summary':
        lines.append(f'*{slack_escape(message["headline"])}*')
        for alert in message['alerts'][:20]:
            lines.append(f'\u2022 {slack_escape(TRIGGER_NAMES.get(alert["trigger"], alert["trigger"]))}: '
                         f'{slack_link(alert["issue"]["url"], alert["issue"]["title"])}')
    elif kind == 'digest':
        content = message['content']
        lines.append(f'*{slack_escape(message["headline"])}*')
        for key, label in (('new', 'New'), ('regressed', 'Regressed'), ('spiking', 'Spiking'),
                           ('top_events', 'Most events')):
            for row in content[key][:TOP_ISSUES]:
                extra = f' ({row["events"]} events)' if key == 'top_events' else ''
                lines.append(f'\u2022 {label}: {slack_link(row["url"], row["title"])}{extra}')
    else:
        lines.append(slack_escape(message['headline']))
    text = '\n'.join(lines)
    return {'text': slack_escape(message['headline']),
            'blocks': [{'type': 'section', 'text': {'type': 'mrkdwn', 'text': text[:2900]}}]}
