"""rules.py: the pure decisions of the notifications (filters, cooldown, cap, retries, digest
schedules, form parsing, message shapes)."""

import datetime

import pytest

from proliferate.notifications import rules

T = datetime.datetime(2025, 1, 15, 10, 30)  # a Wednesday


def row(kind='new_issue', level='error', environment='production', status='unresolved', issue=1):
    return {'kind': kind, 'issue_id': issue, 'issue_status': status, 'level': level,
            'environment': environment}


@pytest.mark.parametrize('mode, expected', [
    ('immediate', 'send'), ('off', 'off'), ('digest_hourly', 'digest'),
    ('digest_daily', 'digest'), ('digest_weekly', 'digest'),
])
def test_decide_by_delivery_mode(mode, expected):
    assert rules.decide(row(), rules.Prefs(delivery_mode=mode), {}, T) == expected


@pytest.mark.parametrize('trigger', rules.TRIGGERS)
def test_each_trigger_can_be_turned_off(trigger):
    on = rules.Prefs(**{'trigger_' + t: True for t in rules.TRIGGERS})
    off = rules.Prefs(**{'trigger_' + trigger: False})
    assert rules.decide(row(trigger), on, {}, T) == 'send'
    assert rules.decide(row(trigger), off, {}, T) == 'disabled'


def test_defaults_alert_new_issues_regressions_spikes_not_accounts():
    prefs = rules.Prefs()
    assert prefs.triggers() == ('new_issue', 'regression', 'spike')
    assert prefs.min_level == 'warning' and prefs.delivery_mode == 'immediate'


@pytest.mark.parametrize('min_level, level, passes', [
    ('info', 'info', True), ('warning', 'info', False), ('warning', 'warning', True),
    ('warning', 'error', True), ('error', 'warning', False), ('error', 'error', True),
])
def test_minimum_level(min_level, level, passes):
    prefs = rules.Prefs(min_level=min_level)
    assert rules.passes_filters(prefs, level, None) is passes
    assert (rules.decide(row(level=level), prefs, {}, T) == 'send') is passes


def test_environment_filter():
    prefs = rules.Prefs(environments=rules.parse_environments('production, eu-prod'))
    assert prefs.environments == ('production', 'eu-prod')
    assert rules.passes_filters(prefs, 'error', 'eu-prod')
    assert not rules.passes_filters(prefs, 'error', 'staging')
    assert not rules.passes_filters(prefs, 'error', None)
    assert rules.passes_filters(rules.Prefs(), 'error', None)


def test_ignored_issues_never_alert():
    assert rules.decide(row(status='ignored'), rules.Prefs(), {}, T) == 'ignored'


def test_cooldown_per_issue_and_trigger():
    prefs = rules.Prefs(cooldown_minutes=60)
    cooldowns = {}
    assert rules.decide(row('regression'), prefs, cooldowns, T) == 'send'
    assert cooldowns == {(1, 'regression'): T}
    # The same issue and trigger inside the hour: suppressed; another trigger or issue: not.
    assert rules.decide(row('regression'), prefs, cooldowns, T + datetime.timedelta(minutes=59)) == 'cooldown'
    assert rules.decide(row('spike'), prefs, cooldowns, T) == 'send'
    assert rules.decide(row('regression', issue=2), prefs, cooldowns, T) == 'send'
    assert rules.decide(row('regression'), prefs, cooldowns, T + datetime.timedelta(minutes=60)) == 'send'
    assert rules.decide(row('regression'), rules.Prefs(cooldown_minutes=0), {(1, 'regression'): T}, T) == 'send'


def test_spike_needs_n_events_within_m_minutes_and_recent():
    minute = datetime.timedelta(minutes=1)
    assert rules.is_spike(T - 9 * minute, T, T, 10)
    assert rules.is_spike(T - 10 * minute, T, T, 10)
    assert not rules.is_spike(T - 11 * minute, T, T, 10)
    assert not rules.is_spike(None, T, T, 10)  # fewer than N events in all
    # A burst read long after it happened (a backlog after a restart) is not a spike now.
    assert not rules.is_spike(T - 60 * minute, T - 55 * minute, T, 10)


def test_accounts_threshold_once_per_value():
    assert not rules.crossed_accounts(2, 3, set())
    assert rules.crossed_accounts(3, 3, set())
    assert not rules.crossed_accounts(4, 3, {3})
    assert rules.crossed_accounts(10, 10, {3})


def test_cap_and_retry_schedule():
    assert rules.allowed_now(0, 3) == 3
    assert rules.allowed_now(3, 3) == 0
    assert rules.allowed_now(5, 3) == 0
    assert [rules.retry_delay(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert rules.after_failure(1, False, T) == ('pending', T + datetime.timedelta(seconds=30))
    assert rules.after_failure(1, True, T) == ('failed', None)
    assert rules.after_failure(rules.MAX_ATTEMPTS, False, T) == ('failed', None)


def test_digest_periods():
    at = datetime.datetime
    assert rules.period_start('digest_hourly', 0, 0, T) == at(2025, 1, 15, 10)
    assert rules.period_start('digest_daily', 9, 0, T) == at(2025, 1, 15, 9)
    assert rules.period_start('digest_daily', 11, 0, T) == at(2025, 1, 14, 11)
    assert rules.period_start('digest_weekly', 9, 2, T) == at(2025, 1, 15, 9)   # Wednesday
    assert rules.period_start('digest_weekly', 11, 2, T) == at(2025, 1, 8, 11)
    assert rules.period_start('digest_weekly', 9, 0, T) == at(2025, 1, 13, 9)   # Monday


def test_digest_window_once_per_period():
    at = datetime.datetime
    # Never sent: the last full period.
    assert rules.digest_window('digest_daily', 9, 0, None, T) == (at(2025, 1, 14, 9), T)
    # Sent yesterday at 09:02: due, covering from then.
    last = at(2025, 1, 14, 9, 2)
    assert rules.digest_window('digest_daily', 9, 0, last, T) == (last, T)
    # Sent this period already: not due until tomorrow 09:00.
    assert rules.digest_window('digest_daily', 9, 0, at(2025, 1, 15, 9, 2), T) is None
    assert rules.digest_window('digest_daily', 9, 0, at(2025, 1, 15, 9, 2),
                                at(2025, 1, 16, 8, 59)) is None
    assert rules.digest_window('digest_daily', 9, 0, at(2025, 1, 15, 9, 2),
                                at(2025, 1, 16, 9, 0)) is not None
    # Digests off for a month: at most one period back.
    assert rules.digest_window('digest_hourly', 0, 0, at(2024, 12, 1), T)[0] == at(2025, 1, 15, 9)


def test_digest_schedule_and_recipients():
    members = [('a@x.test', 'on'), ('b@x.test', 'digest'), ('c@x.test', 'off'), ('d@x.test', None)]
    assert rules.digest_schedule(rules.Prefs(delivery_mode='digest_weekly'), False) == 'digest_weekly'
    assert rules.digest_schedule(rules.Prefs(), True) == 'digest_daily'
    assert rules.digest_schedule(rules.Prefs(), False) is None
    assert rules.digest_schedule(rules.Prefs(delivery_mode='off'), True) is None
    assert rules.email_recipients(members, 'alert', 'immediate') == ['a@x.test', 'd@x.test']
    assert rules.email_recipients(members, 'digest', 'immediate') == ['b@x.test']
    assert rules.email_recipients(members, 'digest', 'digest_daily') == ['a@x.test', 'b@x.test', 'd@x.test']
    assert 'c@x.test' not in rules.email_recipients(members, 'test', 'immediate')


def test_parse_form():
    form = {'delivery_mode': 'digest_daily', 'digest_hour': '7', 'digest_weekday': '4',
            'trigger_new_issue': 'on', 'trigger_spike': 'on', 'spike_events': '50',
            'spike_minutes': '5', 'accounts_threshold': '3', 'cooldown_minutes': '30',
            'hourly_cap': '10', 'min_level': 'error', 'environments': 'production  staging,production'}
    values, errors = rules.parse_form(form)
    assert errors == []
    assert values['delivery_mode'] == 'digest_daily' and values['digest_hour'] == 7
    assert values['trigger_new_issue'] and values['trigger_spike']
    assert not values['trigger_regression'] and not values['trigger_accounts']
    assert values['environments'] == 'production, staging'
    values, errors = rules.parse_form({**form, 'delivery_mode': 'loud', 'digest_hour': '24',
                                        'spike_events': 'many', 'min_level': 'fatal'})
    assert len(errors) == 4
    assert 'delivery_mode' not in values and 'digest_hour' not in values


def test_alert_message_and_payload():
    issue = rules.issue_info({'id': 7, 'title': 'TypeError: x is <undefined>', 'type': 'TypeError',
                               'culprit': 'f (a.js)', 'level': 'error', 'status': 'unresolved',
                               'event_count': 3, 'user_count': 2, 'account_count': 1,
                               'first_seen': T, 'last_seen': T},
                              {'id': 1, 'slug': 'web', 'name': 'Web'}, 'https://errors.test/')
    assert issue['url'] == 'https://errors.test/issues/7'
    message = rules.alert_message('regression', {'id': 1, 'slug': 'acme', 'name': 'Acme'}, issue,
                                   {'event_id': 'e1', 'environment': 'production', 'release': 'v2'},
                                   {'release': 'v2'}, T)
    assert message['subject'] == '[Proliferate] Regression in Web (release v2): TypeError: x is <undefined>'
    body = message['payload']
    assert body['type'] == 'alert' and body['trigger'] == 'regression'
    assert body['issue']['id'] == 7 and body['project']['slug'] == 'web'
    assert body['event']['environment'] == 'production'
    assert body['created_at'] == '2025-01-15T10:30:00.000000Z'
    slack = rules.slack_payload(message)
    text = slack['blocks'][0]['text']['text']
    # Slack's control characters are escaped; the link is Slack's <url|label>.
    assert '<https://errors.test/issues/7|TypeError: x is &lt;undefined&gt;>' in text
    assert slack['text'].startswith('Regression in Web')


def test_digest_content_orders_top_issues():
    def issue(i, events, users=0, accounts=0):
        return {'id': i, 'title': f'E{i}', 'url': f'/issues/{i}', 'events': events, 'users': users,
                'accounts': accounts}
    active = [issue(1, 5, 1), issue(2, 50, 0, 2), issue(3, 7, 9)]
    content = rules.digest_content([issue(3, 7)], [], [], active)
    assert [r['id'] for r in content['top_events']] == [2, 3, 1]
    assert [r['id'] for r in content['top_users']] == [3, 1]
    assert [r['id'] for r in content['top_accounts']] == [2]
    assert content['total_events'] == 62
    assert not rules.is_empty_digest(content)
    assert rules.is_empty_digest(rules.digest_content([], [], [], []))
    message = rules.digest_message({'id': 1, 'slug': 'a', 'name': 'Acme'}, content, T, T, 'digest_daily')
    assert message['headline'] == 'Daily digest for Acme: 1 new, 62 events in 3 issues'
    one = rules.digest_content([], [], [], [issue(4, 1)])
    assert rules.digest_message({'id': 1, 'slug': 'a', 'name': 'Acme'}, one, T, T,
                                 'digest_hourly')['headline'] == 'Hourly digest for Acme: 1 event in 1 issue'
