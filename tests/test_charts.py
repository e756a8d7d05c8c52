"""The chart scale of proliferate.web.charts: round ticks up to the tallest bar, on the bars' own
scale (pure functions, no server)."""

import datetime

import pytest

from proliferate.web import charts


@pytest.mark.parametrize(('peak', 'ticks'), [
    (0, [0]), (1, [0, 1]), (3, [0, 1, 2, 3]), (7, [0, 2, 4, 6]), (10, [0, 5, 10]),
    (27, [0, 10, 20]), (100, [0, 50, 100]), (1234, [0, 500, 1000]),
    (999_999, [0, 500_000]),
])
def test_ticks_are_round_steps_up_to_the_peak(peak, ticks):
    assert charts.nice_ticks(peak) == ticks


def test_the_axis_puts_each_tick_where_a_bar_of_that_count_would_end():
    start = datetime.datetime(2025, 1, 15)
    series = [(start + charts.HOUR * i, count) for i, count in enumerate([0, 4, 10, 7])]
    bars = charts.bars(series, width=40, height=80)
    axis = charts.axis(bars, 80)
    assert [value for value, _y in axis] == [0, 5, 10]
    assert axis[0][1] == 80 and axis[-1][1] == 0  # zero at the bottom, the peak at the top
    tallest = max(bars, key=lambda bar: bar['count'])
    assert tallest['y'] == axis[-1][1]
    assert charts.axis([], 80) == [(0, 80)]
