"""Pure: hourly counts -> the series and bar geometry the pages draw as inline SVG (sparklines and
the issue's events-over-time chart). No I/O; the pages hand in rows the writer keeps (issue_hourly).
"""

import datetime

from markupsafe import Markup

HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


def floor_hour(value):
    return value.replace(minute=0, second=0, microsecond=0)


def floor_day(value):
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def hourly_series(rows, now, hours):
    """[(hour start, count)] for the last `hours` hours ending with the current one.
    rows: (hour, count) pairs, any order, any range."""
    last = floor_hour(now)
    first = last - HOUR * (hours - 1)
    counts = {}
    for hour, count in rows:
        if first <= hour <= last:
            counts[hour] = counts.get(hour, 0) + count
    return [(first + HOUR * i, counts.get(first + HOUR * i, 0)) for i in range(hours)]


def daily_series(rows, now, days):
    """[(day start, count)] for the last `days` UTC days ending with today."""
    last = floor_day(now)
    first = last - DAY * (days - 1)
    counts = {}
    for hour, count in rows:
        day = floor_day(hour)
        if first <= day <= last:
            counts[day] = counts.get(day, 0) + count
    return [(first + DAY * i, counts.get(first + DAY * i, 0)) for i in range(days)]


def bars(series, *, width, height, gap=1, min_height=1):
    """Bar rectangles for an SVG of width x height: [{'x', 'y', 'w', 'h', 'start', 'count'}].

    A non-zero count always gets at least min_height so a single event stays visible beside
    a spike; zero draws nothing (h == 0) but keeps its slot."""
    if not series:
        return []
    peak = max(count for _start, count in series) or 1
    slot = width / len(series)
    w = max(slot - gap, 1)
    out = []
    for i, (start, count) in enumerate(series):
        h = 0 if count == 0 else max(min_height, round(count / peak * height, 1))
        out.append({'x': round(i * slot, 2), 'y': round(height - h, 2), 'w': round(w, 2),
                    'h': h, 'start': start, 'count': count})
    return out


def share_bars(counts, total):
    """[(value, count, percent)] with percent of total (0 when total is 0), for distributions."""
    total = total or 0
    return [(value, count, round(100 * count / total, 1) if total else 0)
            for value, count in counts]


def sparkline_svg(bars, width, height, label):
    """An inline SVG of bars. Built here, not in a template: the list draws 25 of them and a
    template loop over 600 rectangles was most of its render time. Only numbers from bars()
    and label, escaped, go in, so the Markup is safe by construction."""
    total = sum(bar['count'] for bar in bars)
    rects = ''.join(
        f'<rect x="{bar["x"]}" y="{bar["y"]}" width="{bar["w"]}" height="{bar["h"]}"></rect>'
        for bar in bars if bar['count'])
    return Markup(  # noqa: S704 (markup built from numbers and escaped values only)
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'preserveAspectRatio="none" role="img" aria-label="{Markup.escape(label)}: {total}">'
        f'<title>{Markup.escape(label)}: {total:,}</title>{rects}</svg>')


def nice_ticks(peak, count=4):
    """The scale of a chart whose tallest bar is peak: [0, step, 2 * step, ...] up to peak, with a
    round step (1, 2 or 5 times a power of ten, never below 1) and at most count steps."""
    if peak <= 0:
        return [0]
    step = 1
    while peak / step > count:
        step = next_step(step)
    return [step * i for i in range(int(peak // step) + 1)]


def next_step(step):
    """1, 2, 5, 10, 20, 50, ...: the round step after step."""
    digits = len(str(step)) - 1
    lead = step // 10 ** digits
    return {1: 2, 2: 5, 5: 10}[lead] * 10 ** digits


def axis(bars, height):
    """[(value, y)] for the y-axis of bars() drawn at height: each tick's count and its height
    from the top, on the same scale as the bars (the tallest bar reaches the top)."""
    peak = max((bar['count'] for bar in bars), default=0)
    if peak <= 0:
        return [(0, height)]
    return [(value, round(height - value / peak * height, 2)) for value in nice_ticks(peak)]
