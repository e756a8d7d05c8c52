"""A reader's display preferences: times in their zone (pure formatting at fixed instants, then
the pages: the account's zone, else the browser's cookie, else UTC; the API stays UTC), the theme
(system, light, dark) on the account page and on <html>, bad input refused with a 400, and the
charts' per-bar counts and hour/day labels."""

import datetime
import re
from pathlib import Path

import pytest
from factories import event
from pageclient import send

from proliferate import db
from proliferate import times
from proliferate.models import Issue
from proliferate.models import IssueHourly
from proliferate.models import User
from proliferate.web import base
from proliferate.web import charts
from proliferate.web import templating

WINTER = datetime.datetime(2025, 1, 15, 10, 30)  # naive UTC, as the database holds it
SUMMER = datetime.datetime(2025, 7, 15, 10, 30)
PARIS = templating.zone('Europe/Paris')
KOLKATA = templating.zone('Asia/Kolkata')
CSS = Path(__file__).resolve().parent.parent / 'static' / 'app.css'


def iso(value):
    return value.isoformat(timespec='milliseconds') + 'Z'


# -- pure: formatting in a zone ------------------------------------------------------------------

@pytest.mark.parametrize(('value', 'tz', 'text'), [
    (WINTER, None, '2025-01-15 10:30:00 UTC'),
    (WINTER, PARIS, '2025-01-15 11:30:00 CET'),
    (SUMMER, PARIS, '2025-07-15 12:30:00 CEST'),  # the summer offset, not a fixed +1
    (WINTER, KOLKATA, '2025-01-15 16:00:00 IST'),  # a half-hour zone
    (datetime.datetime(2025, 1, 15, 23, 30), PARIS, '2025-01-16 00:30:00 CET'),  # the next day
])
def test_exact_times_are_in_the_readers_zone_and_name_it(value, tz, text):
    assert templating.exact(value, tz) == text


def test_when_is_relative_with_the_exact_zoned_time_on_hover_and_utc_in_datetime():
    now = WINTER + datetime.timedelta(hours=3)
    html = str(templating.when(WINTER, now, PARIS))
    assert html == ('<time datetime="2025-01-15T10:30:00Z" title="2025-01-15 11:30:00 CET">'
                    '3 hours ago</time>')
    # The relative part does not depend on the zone.
    assert '3 hours ago' in str(templating.when(WINTER, now, KOLKATA))
    assert 'title="2025-01-15 10:30:00 UTC"' in str(templating.when(WINTER, now))
    assert 'never' in str(templating.when(None, now, PARIS))


def test_breadcrumb_times_follow_the_zone():
    stamp = 1736938195000  # 2025-01-15 10:49:55 UTC
    assert templating.crumb_time(stamp) == '10:49:55.000'
    assert templating.crumb_time(stamp, PARIS) == '11:49:55.000'
    assert templating.crumb_time('2025-01-15T10:49:55Z', KOLKATA) == '16:19:55.000'
    assert templating.crumb_time('2025-01-15T10:49:55', PARIS) == '11:49:55.000'  # no offset: UTC
    assert templating.crumb_time('not a time') == 'not a time'


@pytest.mark.parametrize('name', ['', 'Nowhere/Land', '../../etc/passwd', '/etc/localtime',
                                  'Europe/Paris\x00', 'Europe/' + 'x' * 80, '<b>', 42, None])
def test_only_known_zone_names_are_zones(name):
    assert templating.zone(name) is None


def test_known_zone_names_are_zones():
    assert templating.zone('UTC').key == 'UTC'
    assert templating.zone('America/Argentina/Buenos_Aires') is not None
    assert templating.zone('Etc/GMT+5') is not None
    names = templating.zone_names()
    assert 'Europe/Paris' in names and 'UTC' in names and list(names) == sorted(names)


# -- pure: the charts' labels ---------------------------------------------------------------------

def hourly_bars(now, counts):
    series = charts.hourly_series(
        [(charts.floor_hour(now) - charts.HOUR * i, c) for i, c in enumerate(reversed(counts))],
        now, len(counts))
    return charts.bars(series, width=96, height=24)


def test_hour_labels_are_the_readers_round_hours():
    bars = hourly_bars(WINTER, [0] * 24)
    utc = [text for text in charts.time_labels(bars, False) if text]
    paris = [text for text in charts.time_labels(bars, False, PARIS) if text]
    assert utc == ['12:00', '18:00', '00:00', '06:00']  # the 24 hours up to 10:xx UTC
    assert paris == ['12:00', '18:00', '00:00', '06:00']
    labels = charts.time_labels(bars, False, PARIS)
    # Paris is an hour ahead: its 12:00 is the bar that starts at 11:00 UTC.
    assert bars[labels.index('12:00')]['start'].hour == 11
    assert len(labels) == 24


def test_day_labels_count_back_a_week_at_a_time_from_today():
    series = charts.daily_series([], WINTER, 30)
    bars = charts.bars(series, width=600, height=80)
    labels = charts.time_labels(bars, True)
    assert labels[-1] == 'Jan 15' and labels[-8] == 'Jan 8' and labels[-2] == ''
    assert sum(1 for text in labels if text) == 5


def test_bar_labels_name_the_span_and_the_count():
    hour = datetime.datetime(2025, 1, 15, 9)
    assert charts.bar_label(hour, 1, False, PARIS) == '2025-01-15 10:00 CET: 1 event'
    assert charts.bar_label(hour, 1234, False) == '2025-01-15 09:00 UTC: 1,234 events'
    assert charts.bar_label(hour, 0, True) == '2025-01-15 (UTC): 0 events'


def test_a_sparkline_draws_a_zero_line_and_every_slot_tells_its_count():
    bars = hourly_bars(WINTER, [0] * 20 + [1, 0, 50, 3])
    svg = str(charts.sparkline_svg(bars, 96, 24, 'events in the last 24 hours', tz=PARIS))
    assert 'class="zero-line"' in svg
    assert svg.count('class="slot"') == 24  # empty hours too, for their 0 on hover
    titles = re.findall(r'<title>([^<]+)</title>', svg)
    assert titles[0] == 'events in the last 24 hours: 54'
    assert '2025-01-15 09:00 CET: 0 events' in titles
    assert '2025-01-15 10:00 CET: 50 events' in titles
    assert '2025-01-15 11:00 CET: 3 events' in titles  # the current hour, 10:xx UTC
    # A single event beside a spike of 50 still gets a visible bar (one subpath a bar).
    shape = re.search(r'<path d="([^"]+)"></path>', svg).group(1)
    heights = [24 - float(y) for y in re.findall(r'M[\d.]+ ([\d.]+)h', shape)]
    assert len(heights) == 3 and min(heights) >= 1 and max(heights) == 24


def test_the_two_dark_palettes_of_the_stylesheet_match():
    """The system's dark preference and the account's dark theme set the same colours."""
    css = CSS.read_text()
    system = re.search(r':root:not\(\[data-theme="light"\]\) \{(.*?)\}', css, re.S).group(1)
    chosen = re.search(r':root\[data-theme="dark"\] \{(.*?)\}', css, re.S).group(1)

    def pairs(block):
        return sorted(' '.join(line.split()) for line in block.strip().splitlines())
    assert pairs(system) == pairs(chosen) and len(pairs(system)) > 20


# -- pages ----------------------------------------------------------------------------------------

def user_row(email):
    with db.database.connection_context():
        return User.get(User.email == email)


def test_the_account_page_saves_theme_and_zone(client, browser, owner):
    page = browser.get('/account').text
    assert 'id="display"' in page and 'name="timezone"' in page
    assert '<option value="Europe/Paris">' in page
    assert '<html lang="en">' in page  # system: no attribute, the stylesheet follows the OS
    result = browser.post('/account', {'action': 'display', 'theme': 'dark',
                                       'timezone': 'Europe/Paris'})
    assert result.headers['location'] == '/account?notice=display_saved'
    page = browser.get('/account?notice=display_saved').text
    assert '<html lang="en" data-theme="dark">' in page
    assert 'Display settings saved.' in page
    assert 'value="Europe/Paris"' in page and 'times in <a href="/account#display">Europe/Paris' in page
    row = user_row(owner.email)
    assert (row.theme, row.timezone) == ('dark', 'Europe/Paris')
    browser.post('/account', {'action': 'display', 'theme': 'light', 'timezone': ''})
    assert '<html lang="en" data-theme="light">' in browser.get('/account').text
    row = user_row(owner.email)
    assert (row.theme, row.timezone) == ('light', None)


@pytest.mark.parametrize(('fields', 'message'), [
    ({'theme': 'dark', 'timezone': 'Mars/Olympus_Mons'}, 'Unknown time zone: Mars/Olympus_Mons'),
    ({'theme': 'dark', 'timezone': '<script>x</script>'}, 'Unknown time zone: &lt;script&gt;'),
    ({'theme': 'sepia', 'timezone': ''}, 'Choose a theme'),
])
def test_bad_display_choices_are_refused_and_change_nothing(client, browser, owner, fields,
                                                            message):
    browser.get('/account')
    result = browser.post('/account', {'action': 'display', **fields})
    assert result.status_code == 400 and message in result.text
    assert '<script>x' not in result.text
    row = user_row(owner.email)
    assert (row.theme, row.timezone) == ('system', None)


def test_times_follow_the_account_then_the_browser_cookie_then_utc(client, browser, owner, web):
    # The pages' clock is the wall clock here (a session lives by it): an event of a minute ago.
    stamp = times.utcnow().replace(microsecond=0) - datetime.timedelta(minutes=1)
    send(client, event(web.key, timestamp=iso(stamp)))
    with db.database.connection_context():
        issue = Issue.get()
        hour = IssueHourly.get().hour
    path = f'/issues/{issue.id}'
    seen = issue.last_seen

    def bar(tz):
        return charts.bar_label(hour, 1, False, tz)

    # No choice and no cookie (a browser without script): UTC.
    page = browser.get(path).text
    assert f'({templating.exact(stamp)})' in page and bar(None) in page
    assert templating.exact(stamp).endswith(' UTC')
    # The browser's zone, as app.js sets it.
    browser.cookies[base.ZONE_COOKIE] = 'Asia/Kolkata'
    page = browser.get(path).text
    assert f'({templating.exact(stamp, KOLKATA)})' in page and bar(KOLKATA) in page
    assert 'times in <a href="/account#display">Asia/Kolkata' in page
    list_page = browser.get('/orgs/acme/issues').text
    assert f'title="{templating.exact(seen, KOLKATA)}"' in list_page
    assert bar(KOLKATA) in list_page  # the sparkline's hour on hover
    # A cookie that is no zone is ignored.
    browser.cookies[base.ZONE_COOKIE] = '../../etc/passwd'
    assert f'({templating.exact(stamp)})' in browser.get(path).text
    # The account's choice wins over the browser's.
    browser.cookies[base.ZONE_COOKIE] = 'Asia/Kolkata'
    browser.get('/account')
    browser.post('/account', {'action': 'display', 'theme': 'system',
                              'timezone': 'Europe/Paris'})
    page = browser.get(path).text
    assert f'({templating.exact(stamp, PARIS)})' in page and 'IST' not in page
    assert f'datetime="{templating.isoz(seen)}"' in page  # machine-readable stays UTC
    assert bar(PARIS) in page  # the chart's bar
    # The JSON stays in UTC whatever the reader chose.
    data = browser.get(f'/issues/{issue.id}/events/{issue.last_event}/json').json
    assert data['timestamp'].startswith(stamp.isoformat()) and data['timestamp'].endswith('Z')
