"""Spend-against-budget chart, drawn server-side as inline SVG.

The same markup goes into HTML pages and WeasyPrint PDF statements, so it is self-contained: no script, no external
resources, and only presentation attributes (fill=, stroke=...), never style="" or classes, because the site's CSP
(style-src 'self') blocks inline style attributes and the PDF has none of the site's CSS. Output is deterministic (no
global counters) so golden-file tests of the pages that embed it stay stable.

Amounts are integer pence throughout, like the rest of the budgets app.
"""

import calendar
import dataclasses
import datetime
import hashlib
import math
import re
from fractions import Fraction

import markupsafe

SVG_NS = "http://www.w3.org/2000/svg"

# NHS.UK frontend palette.
BLUE = "#005eb8"
DARK_GREY = "#425563"
TEXT = "#212b32"
GRID = "#d8dde0"
WHITE = "#ffffff"
FONT_FAMILY = "'Frutiger W01', Arial, sans-serif"

FONT_SIZE = 13
# Rough advance width of a character as a fraction of the font size, for laying out text we cannot measure.
CHAR_WIDTH = 0.6
EMPTY_MESSAGE = "No spending to show yet"
EMPTY_HEIGHT = 60
MIN_WIDTH, MIN_HEIGHT = 240, 160
ZERO_SCALE_PENCE = 100_00  # £100: a scale for an all-zero chart, so nothing divides by zero
# Whole pounds only, because the axis labels show no pence: so no £2.50 step, but £25 is fine.
NICE_STEPS_POUNDS = (1, 2, 5, 10, 20, 25, 50)
MONTH_ABBREVIATIONS = tuple(calendar.month_abbr)  # fixed English names; C locale, whatever the server's
_ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclasses.dataclass(frozen=True)
class ChartPoint:
    label: str  # e.g. "Dec 2026" (a month of the budget year)
    planned_pence: int  # cumulative budget planned by the end of that month
    spent_pence: int | None  # cumulative spend by the end of that month; None for months still to come


def format_pounds(pence: int) -> str:
    """£ with thousands separators and no pence, rounded half up to the pound: 123456 -> "£1,235"."""
    pounds = (abs(pence) + 50) // 100
    return f"{'-' if pence < 0 and pounds else ''}£{pounds:,}"


def nice_scale(max_pence: int) -> tuple[int, int]:
    """(step, number of intervals) in pence: 3-5 intervals of a round step (so 4-6 gridlines) covering max_pence."""
    if max_pence <= 0:
        max_pence = ZERO_SCALE_PENCE
    magnitude = 100  # £1
    while True:
        for multiple in NICE_STEPS_POUNDS:
            step = multiple * magnitude
            intervals = -(-max_pence // step)  # ceiling division, exact on integers
            if intervals <= 5:
                # The previous step was at most 2.5 times smaller and needed 6+, so this needs 3+; the max() only
                # matters at the £1 floor, for amounts of a few pounds.
                return step, max(intervals, 3)
        magnitude *= 100  # the next pass is (100, 200, 500, 1000, ...) pounds


def spend_chart_svg(
    points: list[ChartPoint],
    *,
    title: str,
    description: str,
    width: int = 640,
    height: int = 320,
    chart_id: str = "spend-chart",
) -> markupsafe.Markup:
    """The chart as an <svg> element, safe to output unescaped in a template.

    role="img" with a title and description makes screen readers announce it as one image; pages should still show
    the figures as a table too, because the description is the only text a screen reader gets from the chart.
    Element ids are chart_id plus a hash of the title and description: two charts with the same title on one page
    need different chart_ids.
    """
    if not _ID_PATTERN.fullmatch(chart_id):
        # aria-labelledby is a space-separated list of ids, so an id with a space would silently break the label.
        raise ValueError("chart_id must be a letter followed by letters, digits, hyphens or underscores")
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"The chart must be at least {MIN_WIDTH} by {MIN_HEIGHT}")
    digest = hashlib.sha256(f"{title}\0{description}".encode()).hexdigest()[:8]
    base_id = f"{chart_id}-{digest}"

    if not points:
        body = [_text(width / 2, EMPTY_HEIGHT / 2 + _middle(16), EMPTY_MESSAGE, anchor="middle", size=16)]
        return _svg(base_id, title, description, width, EMPTY_HEIGHT, body)

    # Layout, in viewBox units. The left margin fits the widest y label we will draw.
    biggest = max(max(p.planned_pence, p.spent_pence or 0) for p in points)
    step, intervals = nice_scale(biggest)
    top_value = step * intervals
    y_labels = [format_pounds(step * i) for i in range(intervals + 1)]
    widest_label = max(len(label) for label in y_labels) * FONT_SIZE * CHAR_WIDTH
    plot_left = math.ceil(widest_label) + 12
    plot_right = width - 12
    plot_top = 44  # room for the legend above
    plot_bottom = height - 2 * FONT_SIZE - 14  # room for two-line month labels below
    plot_width = plot_right - plot_left
    plot_height = plot_bottom - plot_top
    band = plot_width / len(points)

    def y_for(pence: int) -> float:
        # Negative figures (a refund larger than the spend) are drawn at zero rather than below the axis.
        return plot_bottom - max(pence, 0) / top_value * plot_height

    def x_centre(index: int) -> float:
        return plot_left + band * (index + 0.5)

    body = [_legend(plot_left, 18)]

    grid = ['<g data-part="grid" stroke-width="1">']
    labels = [f'<g data-part="y-labels" fill="{TEXT}" font-size="{FONT_SIZE}" text-anchor="end">']
    for i, label in enumerate(y_labels):
        y = y_for(step * i)
        colour = TEXT if i == 0 else GRID  # the £0 line doubles as the x axis
        grid.append(_line(plot_left, y, plot_right, y, stroke=colour))
        labels.append(_text(plot_left - 6, y + _middle(FONT_SIZE), label))
    body += [*grid, "</g>", *labels, "</g>"]

    # More than a year's labels would collide, so show every other one.
    label_every = 1 if len(points) <= 12 else 2
    body.append(f'<g data-part="x-labels" fill="{TEXT}" font-size="{FONT_SIZE}" text-anchor="middle">')
    shown_year = None
    for index, point in enumerate(points):
        if index % label_every == 0:
            month, _, year = point.label.partition(" ")
            # The year under the first month and wherever it changes, as on a calendar: fewer letters to read,
            # and to draw (WeasyPrint lays out SVG text one letter at a time, a tenth of a statement's time).
            label = point.label if year != shown_year else month
            shown_year = year
            body.append(_month_label(x_centre(index), plot_bottom + FONT_SIZE + 4, label))
    body.append("</g>")

    bar_width = band * 0.6
    body.append(f'<g data-part="spent" fill="{BLUE}">')
    for index, point in enumerate(points):
        if point.spent_pence is None:
            continue
        y = y_for(point.spent_pence)
        tooltip = f"{point.label}: {format_pounds(point.spent_pence)} spent"
        body.append(
            f'<rect x="{_n(x_centre(index) - bar_width / 2)}" y="{_n(y)}" width="{_n(bar_width)}"'
            f' height="{_n(plot_bottom - y)}"><title>{_esc(tooltip)}</title></rect>'
        )
    body.append("</g>")

    # Drawn after the bars so it stays visible over them; a white halo keeps the grey line apart from the blue.
    coordinates = " ".join(f"{_n(x_centre(i))},{_n(y_for(p.planned_pence))}" for i, p in enumerate(points))
    body += [
        '<g data-part="planned">',
        f'<polyline points="{coordinates}" fill="none" stroke="{WHITE}" stroke-width="5" stroke-linejoin="round"/>',
        f'<polyline points="{coordinates}" fill="none" stroke="{DARK_GREY}" stroke-width="2.5"'
        ' stroke-dasharray="7 4" stroke-linejoin="round"/>',
    ]
    for index, point in enumerate(points):
        tooltip = f"{point.label}: {format_pounds(point.planned_pence)} planned"
        body.append(
            f'<circle cx="{_n(x_centre(index))}" cy="{_n(y_for(point.planned_pence))}" r="4" fill="{DARK_GREY}"'
            f' stroke="{WHITE}" stroke-width="1.5"><title>{_esc(tooltip)}</title></circle>'
        )
    body.append("</g>")

    return _svg(base_id, title, description, width, height, body)


def month_points(
    start: datetime.date, planned_annual_pence: int, spends: list[tuple[datetime.date, int]], today: datetime.date
) -> list[ChartPoint]:
    """Twelve points, one at the end of each calendar month of the budget year beginning on `start`.

    Calendar months, as the monthly statements have them, so "October" on the chart is October on the statement.
    The plan accrues a twelfth of the year each whole month; a budget starting mid-month accrues the part of its
    first month it covers. A spend on a month's last day counts in that month; spends are cumulative from before
    the first month too. Months not yet begun have no spend figure.
    """
    days_in_first = calendar.monthrange(start.year, start.month)[1]
    months_before_start = Fraction(start.day - 1, days_in_first)
    first_of_month = start.replace(day=1)
    ordered = sorted(spends)
    points = []
    spent = 0
    consumed = 0
    for n in range(12):
        month_start = _add_months(first_of_month, n)
        month_end = _add_months(first_of_month, n + 1)
        while consumed < len(ordered) and ordered[consumed][0] < month_end:
            spent += ordered[consumed][1]
            consumed += 1
        # Rounded half up to the pence; for a budget starting on the 1st the twelfth point is exactly the year.
        planned = planned_annual_pence * (n + 1 - months_before_start) / 12
        points.append(
            ChartPoint(
                label=f"{MONTH_ABBREVIATIONS[month_start.month]} {month_start.year}",
                planned_pence=int(planned + Fraction(1, 2)),
                spent_pence=None if max(month_start, start) > today else spent,
            )
        )
    return points


def _add_months(day: datetime.date, months: int) -> datetime.date:
    # Always counted from the start date, so a 31st clipped to 28 Feb comes back to 31 Mar.
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _svg(base_id: str, title: str, description: str, width: int, height: int, body: list[str]) -> markupsafe.Markup:
    title_id, desc_id = f"{base_id}-title", f"{base_id}-desc"
    head = (
        f'<svg xmlns="{SVG_NS}" role="img" aria-labelledby="{title_id} {desc_id}" focusable="false"'
        f' viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet"'
        f' font-family="{FONT_FAMILY}" fill="{TEXT}">'
        f'<title id="{title_id}">{_esc(title)}</title><desc id="{desc_id}">{_esc(description)}</desc>'
    )
    # Every piece of text in body went through _esc, so the whole is safe to mark up.
    return markupsafe.Markup(head + "".join(body) + "</svg>")  # noqa: S704


def _legend(x: float, y: float) -> str:
    planned_label, spent_label = "Planned budget", "Spent"
    spent_x = x + 32 + len(planned_label) * FONT_SIZE * CHAR_WIDTH + 24
    return "".join(
        [
            f'<g data-part="legend" font-size="{FONT_SIZE}" fill="{TEXT}">',
            f'<line x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x + 24)}" y2="{_n(y)}" stroke="{DARK_GREY}" stroke-width="2.5"'
            ' stroke-dasharray="7 4"/>',
            f'<circle cx="{_n(x + 12)}" cy="{_n(y)}" r="4" fill="{DARK_GREY}"/>',
            _text(x + 32, y + _middle(FONT_SIZE), planned_label),
            f'<rect x="{_n(spent_x)}" y="{_n(y - 7)}" width="14" height="14" fill="{BLUE}"/>',
            _text(spent_x + 22, y + _middle(FONT_SIZE), spent_label),
            "</g>",
        ]
    )


def _month_label(x: float, y: float, label: str) -> str:
    # "Dec 2026" on two lines: twelve one-line labels would overlap at the default width.
    first, _, second = label.partition(" ")
    if not second:
        return _text(x, y, label)
    return (
        f'<text x="{_n(x)}" y="{_n(y)}">{_esc(first)}'
        f'<tspan x="{_n(x)}" dy="{_n(FONT_SIZE * 1.2)}">{_esc(second)}</tspan></text>'
    )


def _middle(size: int) -> float:
    # Baseline offset that centres digits and capitals on y; dominant-baseline is not honoured by every PDF renderer.
    return size * 0.35


def _text(x: float, y: float, text: str, *, anchor: str = "", size: int = 0) -> str:
    extra = ""
    if anchor:
        extra += f' text-anchor="{anchor}"'
    if size:
        extra += f' font-size="{size}"'
    return f'<text x="{_n(x)}" y="{_n(y)}"{extra}>{_esc(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, *, stroke: str) -> str:
    return f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}"/>'


def _esc(text: str) -> str:
    return str(markupsafe.escape(text))


def _n(value: float) -> str:
    # Two decimals is far finer than a pixel and keeps the markup short and stable.
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
