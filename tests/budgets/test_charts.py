"""The spend chart's SVG, checked by parsing it rather than by string matching, so layout tweaks don't break tests."""

import datetime
import itertools
import re
import xml.etree.ElementTree as ET

import jinja2
import markupsafe
import pytest

from budgets.charts import ChartPoint, format_pounds, month_points, nice_scale, spend_chart_svg

NS = {"svg": "http://www.w3.org/2000/svg"}
SVG = "{http://www.w3.org/2000/svg}"
POUNDS = re.compile(r"£\d{1,3}(,\d{3})*")


def chart(points, **kwargs):
    kwargs = {"title": "Spending", "description": "Spending so far against the plan", **kwargs}
    return spend_chart_svg(points, **kwargs)


def parse(svg):
    return ET.fromstring(str(svg))  # noqa: S314 (our own output, not untrusted input)


def part(root, name):
    found = root.findall(f".//svg:g[@data-part='{name}']", NS)
    assert len(found) == 1, name
    return found[0]


def bars(root):
    return part(root, "spent").findall("svg:rect", NS)


def gridlines(root):
    """(label, y) for each horizontal gridline, bottom (£0) first."""
    labels = [t.text for t in part(root, "y-labels").findall("svg:text", NS)]
    ys = [float(line.get("y1")) for line in part(root, "grid").findall("svg:line", NS)]
    assert len(labels) == len(ys)
    return list(zip(labels, ys, strict=True))


def points_with(spent, planned=None):
    planned = planned or [100_00 * (i + 1) for i in range(len(spent))]
    return [ChartPoint(f"M{i} 2026", p, s) for i, (p, s) in enumerate(zip(planned, spent, strict=True))]


def test_root_is_labelled_by_its_own_title_and_description():
    root = parse(chart(points_with([100_00, None]), title="Ann's budget", description="Two months"))

    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("focusable") == "false"
    assert root.get("width") == "100%"
    assert root.get("preserveAspectRatio") == "xMinYMin meet"
    assert root.get("viewBox") == "0 0 640 320"
    title_id, desc_id = root.get("aria-labelledby").split()
    assert root.find(f"svg:title[@id='{title_id}']", NS).text == "Ann's budget"
    assert root.find(f"svg:desc[@id='{desc_id}']", NS).text == "Two months"
    assert "Frutiger W01" in root.get("font-family")


def test_ids_differ_between_charts_and_follow_chart_id():
    first = parse(chart([], title="One")).get("aria-labelledby")
    second = parse(chart([], title="Two")).get("aria-labelledby")
    custom = parse(chart([], chart_id="annual")).get("aria-labelledby")

    assert first != second
    assert custom.startswith("annual-")
    with pytest.raises(ValueError):
        chart([], chart_id="two words")


def test_uses_no_styles_classes_or_external_resources():
    # The CSP allows no inline style attributes, and PDFs have none of the site's CSS or network access.
    root = parse(chart(points_with([100_00, 300_00, None])))

    for element in root.iter():
        assert not {"style", "class", "href", "{http://www.w3.org/1999/xlink}href"} & set(element.attrib), element.tag
    assert root.find(".//svg:script", NS) is None


def test_one_bar_per_month_with_spend_including_zero():
    root = parse(chart(points_with([50_00, 0, 120_00, None, None])))

    assert len(bars(root)) == 3
    assert len(part(root, "planned").findall("svg:circle", NS)) == 5


def test_bar_heights_are_proportional_to_spend():
    root = parse(chart(points_with([3_000_00, 6_000_00, 1_500_00], planned=[2_000_00, 4_000_00, 9_000_00])))

    heights = [float(bar.get("height")) for bar in bars(root)]
    assert heights[0] > 10
    assert abs(heights[1] - 2 * heights[0]) <= 0.5
    assert abs(heights[2] - heights[0] / 2) <= 0.5


@pytest.mark.parametrize(
    ("planned", "spent"),
    [
        ([10_000_00, 20_000_00], [8_000_00, 12_000_00]),  # plan is the tallest
        ([10_000_00, 20_000_00], [15_000_00, 47_321_00]),  # overspend: the axis must grow to fit the spend
    ],
)
def test_tallest_value_stays_inside_the_plot_area(planned, spent):
    root = parse(chart(points_with(spent, planned=planned)))
    grid = gridlines(root)
    (_, bottom), (top_label, top) = grid[0], grid[-1]

    assert int(top_label.replace("£", "").replace(",", "")) * 100 >= max(*planned, *spent)
    for bar in bars(root):
        assert top - 0.01 <= float(bar.get("y"))
        assert float(bar.get("y")) + float(bar.get("height")) == pytest.approx(bottom, abs=0.01)
    for marker in part(root, "planned").findall("svg:circle", NS):
        assert top - 0.01 <= float(marker.get("cy")) <= bottom + 0.01
    tallest_bar = max(float(bar.get("height")) for bar in bars(root))
    expected = max(spent) / (int(top_label[1:].replace(",", "")) * 100) * (bottom - top)
    assert tallest_bar == pytest.approx(expected, abs=0.5)


@pytest.mark.parametrize("biggest", [1, 3_00, 99_00, 100_00, 101_00, 12_345_00, 1_000_000_00, 999_999_999_99])
def test_gridlines_are_four_to_six_round_increasing_amounts(biggest):
    root = parse(chart(points_with([biggest // 2], planned=[biggest])))
    grid = gridlines(root)
    amounts = [int(label[1:].replace(",", "")) for label, _ in grid]

    assert 4 <= len(grid) <= 6
    assert all(POUNDS.fullmatch(label) for label, _ in grid), grid
    assert amounts[0] == 0
    assert amounts == sorted(set(amounts))
    assert amounts[-1] * 100 >= biggest
    steps = {b - a for a, b in itertools.pairwise(amounts)}
    assert len(steps) == 1  # evenly spaced
    assert [y for _, y in grid] == sorted((y for _, y in grid), reverse=True)  # higher amounts drawn higher up


def test_nice_scale_picks_round_steps():
    assert nice_scale(10_000_00) == (2_000_00, 5)  # the finest step that needs no more than five
    assert nice_scale(10_001_00) == (2_500_00, 5)
    assert nice_scale(24_000_00) == (5_000_00, 5)
    assert nice_scale(0) == (20_00, 5)  # all zeros: £0 to £100


def test_format_pounds():
    assert format_pounds(5_000_00) == "£5,000"
    assert format_pounds(1_234_567_89) == "£1,234,568"
    assert format_pounds(49) == "£0"
    assert format_pounds(-150_00) == "-£150"


def test_malicious_text_is_escaped():
    nasty = '<script>alert("x")</script>'
    svg = chart([ChartPoint(nasty, 100_00, 50_00)], title=nasty, description=f"desc {nasty}")
    root = parse(svg)

    assert "<script" not in str(svg)
    assert root.find(".//svg:script", NS) is None
    title_id, desc_id = root.get("aria-labelledby").split()
    assert root.find(f"svg:title[@id='{title_id}']", NS).text == nasty
    assert root.find(f"svg:desc[@id='{desc_id}']", NS).text == f"desc {nasty}"


def test_returns_markup_that_jinja_outputs_unescaped():
    svg = chart(points_with([100_00]))
    rendered = jinja2.Environment(autoescape=True).from_string("{{ chart }}").render(chart=svg)

    assert isinstance(svg, markupsafe.Markup)
    assert rendered == str(svg)
    assert rendered.startswith("<svg ")


def test_empty_chart_says_so_and_keeps_title_and_description():
    root = parse(chart([], title="Nothing yet", description="No months"))
    title_id, desc_id = root.get("aria-labelledby").split()

    assert root.find(f"svg:title[@id='{title_id}']", NS).text == "Nothing yet"
    assert root.find(f"svg:desc[@id='{desc_id}']", NS).text == "No months"
    assert [t.text for t in root.iter(f"{SVG}text")] == ["No spending to show yet"]
    assert root.find(".//svg:rect", NS) is None
    assert int(root.get("viewBox").split()[3]) < 320  # small


def test_all_zero_chart_scales_to_a_hundred_pounds():
    svg = chart(points_with([0, 0, None], planned=[0, 0, 0]))
    root = parse(svg)
    grid = gridlines(root)

    assert grid[-1][0] == "£100"
    assert [float(bar.get("height")) for bar in bars(root)] == [0, 0]
    assert "nan" not in str(svg).lower()
    assert "inf" not in str(svg).lower()


def test_every_month_labelled_up_to_a_year_then_every_other():
    def labels(count):
        root = parse(chart([ChartPoint(f"L{i}", 100_00, None) for i in range(count)]))
        return [t.text for t in part(root, "x-labels").findall("svg:text", NS)]

    assert labels(12) == [f"L{i}" for i in range(12)]
    assert labels(24) == [f"L{i}" for i in range(0, 24, 2)]


def test_month_labels_split_onto_two_lines():
    root = parse(chart([ChartPoint("Dec 2026", 100_00, 10_00)]))
    (label,) = part(root, "x-labels").findall("svg:text", NS)

    assert label.text == "Dec"
    assert label.find("svg:tspan", NS).text == "2026"


def test_the_year_is_shown_under_the_first_month_and_each_january_only():
    months = ["Nov 2026", "Dec 2026", "Jan 2027", "Feb 2027", "Mar 2027"]
    root = parse(chart([ChartPoint(month, 100_00, None) for month in months]))
    labels = part(root, "x-labels").findall("svg:text", NS)

    assert [label.text for label in labels] == ["Nov", "Dec", "Jan", "Feb", "Mar"]
    years = [label.find("svg:tspan", NS) for label in labels]
    assert [year.text if year is not None else None for year in years] == ["2026", None, "2027", None, None]


def test_rejects_sizes_too_small_to_lay_out():
    with pytest.raises(ValueError):
        chart(points_with([1]), width=100)


def test_month_points_accrue_evenly_and_end_exactly_on_the_annual_amount():
    annual = 10_000_07  # not divisible by 12, so the rounding shows
    points = month_points(datetime.date(2026, 4, 1), annual, [], today=datetime.date(2026, 4, 1))
    planned = [p.planned_pence for p in points]

    assert len(points) == 12
    assert points[0].label == "Apr 2026"
    assert points[-1].label == "Mar 2027"
    assert planned[-1] == annual
    assert planned[0] == 83_334  # 1,000,007 / 12 = 83,333.92p, rounded to the pence
    assert planned[5] == 5_000_04  # exactly half of 1,000,007 is 500,003.5p, rounded half up
    increments = [b - a for a, b in itertools.pairwise([0, *planned])]
    assert sum(increments) == annual
    assert max(increments) - min(increments) <= 1


def test_month_points_spend_is_cumulative_and_none_for_months_to_come():
    spends = [(datetime.date(2026, 4, 10), 100_00), (datetime.date(2026, 6, 15), 250_00)]
    # 1 July: July has started, so it has a figure; August onwards have not.
    points = month_points(datetime.date(2026, 4, 1), 12_000_00, spends, today=datetime.date(2026, 7, 1))

    assert [p.spent_pence for p in points] == [100_00, 100_00, 350_00, 350_00] + [None] * 8


def test_month_points_spend_on_the_last_day_counts_in_that_month():
    spends = [(datetime.date(2026, 4, 30), 70_00), (datetime.date(2026, 5, 1), 5_00), (datetime.date(2027, 3, 31), 1)]
    points = month_points(datetime.date(2026, 4, 1), 12_000_00, spends, today=datetime.date(2027, 3, 31))

    assert points[0].spent_pence == 70_00
    assert points[1].spent_pence == 75_00
    assert points[-1].spent_pence == 75_01


def test_month_points_of_a_mid_month_start_are_calendar_months_as_the_statements_are():
    """A budget starting on 6 October: October's point is what was spent by 31 October, as October's statement
    says, and October accrues the 26 of its 31 days the budget covers."""
    start = datetime.date(2026, 10, 6)
    spends = [(datetime.date(2026, 10, 31), 10_00), (datetime.date(2026, 11, 2), 20_00)]
    points = month_points(start, 12_000_00, spends, today=datetime.date(2026, 12, 31))

    assert [p.label for p in points[:3]] == ["Oct 2026", "Nov 2026", "Dec 2026"]
    assert points[-1].label == "Sep 2027"
    assert [p.spent_pence for p in points[:4]] == [10_00, 30_00, 30_00, None]
    assert points[0].planned_pence == 838_71  # £1,000 a month x 26/31 = £838.709..., rounded to the pence
    assert points[1].planned_pence == 1838_71
    assert points[-1].planned_pence == 11_838_71  # the year's last 5 days fall in October 2027
    assert month_points(start, 12_000_00, [], today=datetime.date(2026, 10, 5))[0].spent_pence is None
