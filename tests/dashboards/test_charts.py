"""The server-drawn charts: values printed, described for screen readers, escaped, no inline style."""

from __future__ import annotations

import re

import pytest

from dashboards import charts


@pytest.mark.parametrize(
    ("part", "whole", "expected"),
    [(0, 0, 0), (0, 8, 0), (1, 8, 13), (1, 3, 33), (2, 3, 67), (1, 200, 1), (1, 201, 0), (8, 8, 100)],
)
def test_percent_rounds_halves_up(part: int, whole: int, expected: int) -> None:
    assert charts.percent(part, whole) == expected


@pytest.mark.parametrize(
    ("elapsed", "axis"),
    [(0, 10), (2.5, 10), (10, 10), (10.1, 15), (59, 60), (61, 120), (1000, 1440), (4321, 5760)],
)
def test_the_time_axis_is_the_first_round_span_that_holds_what_happened(elapsed: float, axis: int) -> None:
    assert charts.axis_minutes(elapsed) == axis


def _curve(**changes: object) -> str:
    arguments: dict[str, object] = {
        "chart_id": "c1",
        "points": [charts.CurvePoint(0, 0), charts.CurvePoint(3, 2), charts.CurvePoint(6, 5)],
        "total": 8,
        "axis": 10,
        "title": "Answers over time",
        "desc": "5 of 8 answered",
        "x_label": "minutes",
        "end_label": "10 min",
    }
    arguments.update(changes)
    return str(charts.answer_curve(**arguments))  # type: ignore[arg-type]


def test_the_curve_prints_the_latest_value_and_describes_itself() -> None:
    svg = _curve()
    assert 'role="img"' in svg and 'aria-labelledby="c1-title c1-desc"' in svg
    assert '<title id="c1-title">Answers over time</title>' in svg
    assert '<desc id="c1-desc">5 of 8 answered</desc>' in svg
    assert ">5 (63%)</text>" in svg
    assert ">10 min</text>" in svg and ">100%</text>" in svg
    # Six minutes on a ten-minute axis: the curve stops short of the right edge (x from 44 to 348).
    points = re.search(r'<polyline points="([^"]+)"', svg)
    assert points and points.group(1).split()[-1].split(",")[0] == f"{44 + 304 * 0.6:.1f}"


def test_chart_texts_are_escaped_and_no_style_attribute_is_used() -> None:
    svg = _curve(title="<script>x</script>", desc='"quoted" & more')
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "&#34;quoted&#34; &amp; more" in svg
    bars = str(
        charts.department_bars(
            chart_id="d1", bars=[charts.Bar("<b>Sales</b>", 1, 4)], title="By department", desc="d"
        )
    )
    for markup in (svg, bars):
        assert "style=" not in markup and "<style" not in markup


def test_department_bars_print_answered_of_total_and_shorten_long_names() -> None:
    bars = str(
        charts.department_bars(
            chart_id="d1",
            bars=[
                charts.Bar("Sales", 1, 4),
                charts.Bar("Customer support, second line, night shift", 0, 3),
                charts.Bar("Empty", 0, 0),
            ],
            title="Answers by department",
            desc="Answered of asked",
        )
    )
    assert ">1/4 (25%)</text>" in bars and ">0/3 (0%)</text>" in bars and ">0/0 (0%)</text>" in bars
    assert ">Customer support, sec…</text>" in bars
    assert "<title>Customer support, second line, night shift: 0/3 (0%)</title>" in bars  # full name on hover
    assert 'fill="url(#d1-rest)"' in bars  # "not yet" is hatched, not only a colour
    widths = re.findall(r'<rect x="0.5" y="[\d.]+" width="([\d.]+)" height="13" fill="#', bars)
    assert widths == [f"{359 * 0.25:.1f}", "0.0", "0.0"]
