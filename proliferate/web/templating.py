"""The Jinja2 environment of the issue browser (autoescaped, strict), its filters and globals, and
render(). Built once at start-up and never changed afterwards.

Everything an event carries is hostile: templates print it through autoescaping only, and the
filters here return plain strings (never Markup) so nothing they produce skips escaping.
"""

import datetime
import functools
import json
import re
import zoneinfo
from urllib.parse import urlsplit

import falcon
from jinja2 import Environment
from jinja2 import FileSystemLoader
from jinja2 import StrictUndefined
from jinja2 import pass_context
from jinja2 import select_autoescape
from markupsafe import Markup

from proliferate import __version__
from proliferate.web import charts
from proliferate.web import urls

# The header navigation of an organization: (label, function of the organization's slug -> URL).
# A new section adds one row here; a page marks its row with {% set section = 'Label' %}.
NAV = [
    ('Issues', urls.org_issues),
    ('Assigned to me', urls.assigned_to_me),
    ('Projects', urls.org_projects),
    ('Members', urls.org_members),
    ('Notifications', urls.org_notifications),
]
# The tabs of a project's pages: (label, function of the project id -> URL); a page marks its
# tab with {% set project_tab = 'Label' %}.
PROJECT_NAV = [
    ('Issues', urls.project_issues),
    ('Releases', urls.project_releases),
    ('Keys & setup', urls.project_settings),
]
# Links of the user menu (right-hand side): (label, function -> URL).
USER_NAV = [
    ('API tokens', urls.tokens),
    ('Account', urls.account),
]


def make_environment(directory):
    env = Environment(
        loader=FileSystemLoader(str(directory)),
        autoescape=select_autoescape(('html', 'xml')),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static=static, urls=urls, nav=NAV, project_nav=PROJECT_NAV,
                       user_nav=USER_NAV, version=__version__, chart_axis=charts.axis,
                       zone_label=zone_label, chart_bar_label=charts.bar_label,
                       chart_time_labels=charts.time_labels)
    env.filters.update(
        ago=ago, exact=exact_filter, isoz=isoz, number=number, compact=compact,
        when=when_filter, pretty_json=pretty_json, crumb_time=crumb_time_filter,
        http_url=http_url, plural=plural,
    )
    return env


# -- the reader's time zone ------------------------------------------------------------------
# Pages show times in the reader's zone (`tz` in the render context, a ZoneInfo; UTC when a
# template is rendered without one, as e-mails and error pages are). The database and the JSON
# API stay in UTC: only these filters convert.

UTC = datetime.UTC
THEMES = ('system', 'light', 'dark')
# The shape of an IANA name (Europe/Paris, America/Argentina/Buenos_Aires, Etc/GMT+5): checked
# before zoneinfo sees the text, which a cookie or a form may carry.
_ZONE_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$')


def zone(name):
    """The ZoneInfo of an IANA name, or None when name is not one this system knows."""
    if not isinstance(name, str) or len(name) > 64 or not _ZONE_NAME.match(name):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


@functools.cache
def zone_names():
    """Every IANA zone name this system knows, sorted (the account page's suggestions)."""
    return tuple(sorted(name for name in zoneinfo.available_timezones()
                        if (_ZONE_NAME.match(name) and '/' in name) or name == 'UTC'))


def local(value, tz):
    """A naive UTC datetime (what the database holds) as an aware one in tz (UTC when None)."""
    return value.replace(tzinfo=UTC).astimezone(tz or UTC)


def zone_label(tz):
    """The name a page gives tz: its IANA key (UTC when None)."""
    return getattr(tz, 'key', None) or 'UTC'


@pass_context
def exact_filter(context, value):
    return exact(value, context.get('tz'))


@pass_context
def when_filter(context, value, now):
    return when(value, now, context.get('tz'))


@pass_context
def crumb_time_filter(context, value):
    return crumb_time(value, context.get('tz'))


def render(resp, template, **ctx):
    """Render a jinja2 Template (env.get_template(name), cached by Jinja) into resp as HTML."""
    resp.content_type = falcon.MEDIA_HTML
    resp.text = template.render(**ctx)


def static(path):
    # The version busts browser caches after an upgrade.
    return f'/static/{path}?v={__version__}'


def isoz(value):
    if value is None:
        return ''
    return value.replace(microsecond=0).isoformat() + 'Z'


def exact(value, tz=None):
    """'2025-01-15 11:30:00 CET': the instant in tz (UTC when None), its zone named."""
    if value is None:
        return ''
    shown = local(value, tz)
    return shown.strftime('%Y-%m-%d %H:%M:%S ') + (shown.tzname() or zone_label(tz))


def ago(value, now):
    """'just now', '5 min ago', '3 hours ago', '2 days ago', '4 months ago', '2 years ago'."""
    if value is None:
        return 'never'
    seconds = (now - value).total_seconds()
    if seconds < 0:
        return 'in the future' if seconds < -300 else 'just now'
    if seconds < 60:
        return 'just now'
    minutes = seconds / 60
    if minutes < 60:
        return f'{int(minutes)} min ago'
    hours = minutes / 60
    if hours < 24:
        return plural(int(hours), 'hour') + ' ago'
    days = hours / 24
    if days < 45:
        return plural(int(days), 'day') + ' ago'
    if days < 365:
        return plural(int(days / 30.4), 'month') + ' ago'
    return plural(int(days / 365.25), 'year') + ' ago'


def when(value, now, tz=None):
    """<time> with the relative time, the exact one (in tz) on hover; its datetime attribute stays
    UTC. Markup built from a datetime of ours only (never event text); a filter, not a macro,
    because lists print it per row."""
    if value is None:
        return Markup('<span class="muted">never</span>')
    title = Markup.escape(exact(value, tz))
    return Markup(f'<time datetime="{isoz(value)}" title="{title}">{ago(value, now)}</time>')  # noqa: S704 (markup built from numbers and escaped values only)


def plural(count, word, words=None):
    return f'{count} {word if count == 1 else (words or word + "s")}'


def number(value):
    return f'{value or 0:,}'


def compact(value):
    """1234 -> '1.2k', 3400000 -> '3.4M'; exact below 10,000."""
    value = value or 0
    if value < 10_000:
        return f'{value:,}'
    if value < 1_000_000:
        return f'{value / 1000:.1f}k'.replace('.0k', 'k')
    return f'{value / 1_000_000:.1f}M'.replace('.0M', 'M')


def pretty_json(value):
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def crumb_time(value, tz=None):
    """A breadcrumb's timestamp (epoch ms or s, or an ISO string) -> 'HH:MM:SS.mmm' in tz (UTC
    when None; an ISO string without an offset is taken as UTC)."""
    if isinstance(value, bool) or value is None:
        return ''
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value
        try:
            stamp = datetime.datetime.fromtimestamp(seconds, UTC).astimezone(tz or UTC)
        except (OverflowError, OSError, ValueError):
            return str(value)
        return stamp.strftime('%H:%M:%S.') + f'{stamp.microsecond // 1000:03d}'
    text = str(value)
    try:
        stamp = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        stamp = stamp.astimezone(tz or UTC)
    except (ValueError, OverflowError):
        return text[:32]
    return stamp.strftime('%H:%M:%S.') + f'{stamp.microsecond // 1000:03d}'


def http_url(value):
    """The URL when it is http(s) and may be a link; '' otherwise (javascript:, data:, ...)."""
    if not isinstance(value, str):
        return ''
    text = value.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return ''
    if parts.scheme.lower() not in ('http', 'https') or not parts.netloc:
        return ''
    # Control characters and whitespace inside a URL are how filters get confused.
    if any(ord(c) < 33 or c == '\x7f' for c in text):
        return ''
    return text
