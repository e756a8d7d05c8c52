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


def sparkline_svg(bars, width, height, label, *, daily=False, tz=None, slots=None):
    """An inline SVG of bars (one path) on a zero line, each slot with its own count on hover.
    Built here, not in a template: the list draws 25 of them and a template loop over 600
    rectangles was most of its render time. slots: spark_slots() of the bars, which every row of a
    list shares (made once a page: formatting 600 times in a zone costs milliseconds). Only
    numbers from bars(), times and label, escaped, go in, so the Markup is safe by construction."""
    total = sum(bar['count'] for bar in bars)
    if slots is None:
        slots = spark_slots(bars, height, daily, tz)
    # A full-height transparent slot carries the count, so an empty hour shows its 0 on hover.
    tips = ''.join(f'{slot}{bar["count"]:,} event{"" if bar["count"] == 1 else "s"}</title></rect>'
                   for slot, bar in zip(slots, bars, strict=True))
    shape = ''.join(f'M{bar["x"]} {bar["y"]}h{bar["w"]}V{height}H{bar["x"]}Z'
                    for bar in bars if bar['count'])
    return Markup(  # noqa: S704 (markup built from numbers and escaped values only)
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'preserveAspectRatio="none" role="img" aria-label="{Markup.escape(label)}: {total}">'
        f'<title>{Markup.escape(label)}: {total:,}</title>'
        f'<line class="zero-line" x1="0" x2="{width}" y1="{height}" y2="{height}" '
        f'vector-effect="non-scaling-stroke"></line>{tips}<path d="{shape}"></path></svg>')


def spark_slots(bars, height, daily, tz=None):
    """Each bar's hover slot up to its count: '<rect class="slot" ...><title>2025-01-15 11:00
    CET: ' (the same for every row of a list, whose bars share their positions and hours)."""
    return [f'<rect class="slot" x="{bar["x"]}" y="0" width="{bar["w"]}" height="{height}">'
            f'<title>{Markup.escape(span_text(bar["start"], daily, tz))}: ' for bar in bars]


def local(start, tz):
    """A naive UTC datetime as an aware one in tz (UTC when None)."""
    utc = start.replace(tzinfo=datetime.UTC)
    return utc.astimezone(tz) if tz is not None else utc


def span_text(start, daily, tz=None):
    """What one bar covers: '2025-01-15 11:00 CET' for an hour (in tz), '2025-01-15 (UTC)' for
    a day (the writer's hourly counts add up to UTC days)."""
    if daily:
        return f'{start:%Y-%m-%d} (UTC)'
    shown = local(start, tz)
    return f'{shown:%Y-%m-%d %H:%M} {shown.tzname()}'


def bar_label(start, count, daily, tz=None):
    """A bar's hover and screen-reader text: its span and its count."""
    return f'{span_text(start, daily, tz)}: {count:,} event{"" if count == 1 else "s"}'


def time_labels(bars, daily, tz=None, *, every_hours=6, every_days=7):
    """The labels under a chart, one per bar ('' for most): the hours that are a multiple of
    every_hours in tz ('06:00'), or every every_days-th day counting back from today ('Jan 15')."""
    out = []
    last = len(bars) - 1
    for i, bar in enumerate(bars):
        if daily:
            start = bar['start']
            out.append(f'{start:%b} {start.day}' if (last - i) % every_days == 0 else '')
        else:
            shown = local(bar['start'], tz)
            out.append(f'{shown:%H:%M}' if shown.hour % every_hours == 0 else '')
    return out


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
