"""Bar charts as data for an SVG template: one bar per day, a few round gridlines, dates in the active language.

The template (usage/partials/bar_chart.html) draws them with CSS classes,
not colours, so the site's light and dark themes both apply; coordinates
are strings with a dot as decimal separator whatever the language.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.utils import formats

# The SVG's coordinate system, about the size it is shown at, so its 13-unit labels read as ~13 px text.
WIDTH = 480
HEIGHT = 200
LEFT = 52  # room for the value labels
RIGHT = 8
TOP = 10
BOTTOM = 26  # room for the date labels
# A date under every this many bars.
DATE_EVERY = 10


@dataclass(frozen=True)
class Bar:
    """One day's bar: its box in the SVG's coordinates, and what its tooltip says."""

    x: str
    y: str
    width: str
    height: str
    day: str
    value: str


@dataclass(frozen=True)
class Label:
    """A text at (x, y) in the SVG's coordinates; `anchor` is SVG's text-anchor."""

    x: str
    y: str
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class BarChart:
    """What the template draws: bars, horizontal gridlines with their values, dates along the bottom."""

    title: str
    width: int
    height: int
    left: int
    right_edge: int
    baseline: str
    bars: list[Bar]
    gridlines: list[Label]
    dates: list[Label]
    rows: list[tuple[str, str]]


def _coordinate(value: float) -> str:
    return f"{value:.1f}"


def nice_step(maximum: float, *, lines: int = 4) -> int:
    """Return a round gridline step (1, 2 or 5 times a power of ten) so that about `lines` steps cover `maximum`."""
    if maximum <= 0:
        return 1
    raw = maximum / lines
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return max(int(factor * power), 1)
    raise AssertionError("unreachable: factor 10 always covers raw")


def bar_chart(*, title: str, days: Sequence[date], values: Sequence[int]) -> BarChart:
    """Return a bar chart of `values`, one per day of `days` (same length, oldest first)."""
    if len(days) != len(values):
        raise ValueError("one value per day")
    step = nice_step(max(values, default=0))
    top_value = max(step * math.ceil(max(values, default=0) / step), step)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    baseline = TOP + plot_height
    bars = []
    dates = []
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        height = plot_height * value / top_value
        x = LEFT + index * slot
        day_text = formats.date_format(day, "SHORT_DATE_FORMAT")
        bars.append(
            Bar(
                x=_coordinate(x + slot * 0.15),
                y=_coordinate(baseline - height),
                width=_coordinate(slot * 0.7),
                height=_coordinate(height),
                day=day_text,
                value=formats.number_format(value, force_grouping=True),
            )
        )
        if (len(days) - 1 - index) % DATE_EVERY == 0:  # the last day always has its date, ending at the edge
            last = index == len(days) - 1
            dates.append(
                Label(
                    x=_coordinate(x + slot if last else x + slot / 2),
                    y=_coordinate(HEIGHT - 6),
                    text=formats.date_format(day, "MONTH_DAY_FORMAT"),
                    anchor="end" if last else "middle",
                )
            )
    gridlines = [
        Label(
            x=_coordinate(LEFT - 6),
            y=_coordinate(baseline - plot_height * value / top_value),
            text=formats.number_format(value, force_grouping=True),
        )
        for value in range(0, top_value + 1, step)
    ]
    return BarChart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right_edge=WIDTH - RIGHT,
        baseline=_coordinate(baseline),
        bars=bars,
        gridlines=gridlines,
        dates=dates,
        rows=[(bar.day, bar.value) for bar in bars],
    )
