"""The report's two charts, drawn with reportlab.graphics so they print sharp and need no plotting library.

Both are meant for a black-and-white printer: black lines and dark bars, light grey gridlines, values written
on the chart rather than told by colour. Latin text is set in Helvetica and anything else (Japanese names) in the
CID Gothic font, because a CID font's Latin glyphs are spaced too wide by most PDF viewers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from reportlab.graphics.shapes import Drawing, Group, Line, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth

from reports.document import Translate, format_duration, identity
from reports.metrics import CurvePoint, GroupFigures

GOTHIC = "HeiseiKakuGo-W5"
LATIN = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"
INK = colors.black
GRID = colors.HexColor("#bdbdbd")
BAR = colors.HexColor("#3a3a3a")
BAR_EMPTY = colors.HexColor("#e4e4e4")
MUTED = colors.HexColor("#555555")


def is_latin(text: str) -> bool:
    """Whether Helvetica (WinAnsi) can set every character of ``text``."""
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def font_for(text: str, bold: bool = False) -> str:
    if is_latin(text):
        return LATIN_BOLD if bold else LATIN
    return GOTHIC


def fit(text: str, size: float, width: float) -> str:
    """``text`` shortened with an ellipsis so it fits ``width`` points."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def _runs(text: str) -> list[tuple[str, str]]:
    """(font, run) pieces of ``text``: Latin runs in Helvetica, the rest in the CID Gothic font."""
    out: list[tuple[str, str]] = []
    for char in text:
        font = LATIN if is_latin(char) else GOTHIC
        if out and out[-1][0] == font:
            out[-1] = (font, out[-1][1] + char)
        else:
            out.append((font, char))
    return out


def _string(
    x: float,
    y: float,
    text: str,
    size: float = 8,
    anchor: str = "start",
    bold: bool = False,
    color: colors.Color = INK,
) -> Group:
    """``text`` at (x, y), each run in the font that suits it (one String per run)."""
    runs = [(LATIN_BOLD if bold and font == LATIN else font, run) for font, run in _runs(text)]
    width = sum(stringWidth(run, font, size) for font, run in runs)
    left = x - (width if anchor == "end" else width / 2 if anchor == "middle" else 0)
    group = Group()
    for font, run in runs:
        group.add(String(left, y, run, fontName=font, fontSize=size, textAnchor="start", fillColor=color))
        left += stringWidth(run, font, size)
    return group


def text_width(text: str, size: float, bold: bool = False) -> float:
    return float(
        sum(
            stringWidth(run, LATIN_BOLD if bold and font == LATIN else font, size)
            for font, run in _runs(text)
        )
    )


def _nice_step(span: float, target_ticks: int = 6) -> float:
    raw = span / max(1, target_ticks)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def answer_curve_chart(
    curve: Sequence[CurvePoint],
    *,
    width: float,
    height: float = 210,
    times: dict[int, float | None] | None = None,
    tr: Translate = identity,
) -> Drawing:
    """Cumulative % answered over time, with 50 % and 90 % reference lines and their reaching times."""
    drawing = Drawing(width, height)
    left, right, bottom, top = 46.0, 14.0, 40.0, 12.0
    plot_w, plot_h = width - left - right, height - bottom - top
    last_minute = curve[-1].minute if curve else 0
    in_hours = last_minute > 180
    unit = 60.0 if in_hours else 1.0
    x_max_value = max(1.0, last_minute / unit)
    step = _nice_step(x_max_value)
    x_max = math.ceil(x_max_value / step) * step

    def x_of(value: float) -> float:
        return left + plot_w * value / x_max

    def y_of(percent: float) -> float:
        return bottom + plot_h * percent / 100.0

    # Gridlines and tick labels.
    for percent in range(0, 101, 10):
        y = y_of(percent)
        drawing.add(Line(left, y, left + plot_w, y, strokeColor=GRID, strokeWidth=0.4))
        drawing.add(_string(left - 4, y - 2.5, f"{percent}", size=7, anchor="end"))
    ticks = round(x_max / step)
    for index in range(ticks + 1):
        value = index * step
        x = x_of(value)
        drawing.add(Line(x, bottom, x, bottom + plot_h, strokeColor=GRID, strokeWidth=0.4))
        label = f"{value:g}"
        drawing.add(_string(x, bottom - 11, label, size=7, anchor="middle"))
    drawing.add(Rect(left, bottom, plot_w, plot_h, fillColor=None, strokeColor=INK, strokeWidth=0.8))

    # Reference lines: where half and nine in ten had answered.
    for percent in (50, 90):
        y = y_of(percent)
        drawing.add(Line(left, y, left + plot_w, y, strokeColor=INK, strokeWidth=0.6, strokeDashArray=[3, 2]))
        reached = (times or {}).get(percent)
        note = f"{percent} %: " + (format_duration(reached, tr) if reached is not None else tr("not reached"))
        drawing.add(_string(left + plot_w - 3, y + 2.5, note, size=7, anchor="end", color=MUTED))

    # The curve itself, as a step line: the count only changes when someone answers.
    if curve:
        points: list[float] = []
        previous = curve[0].percent
        points += [x_of(0), y_of(previous)]
        for point in curve[1:]:
            x = x_of(point.minute / unit)
            points += [x, y_of(previous), x, y_of(point.percent)]
            previous = point.percent
        drawing.add(PolyLine(points, strokeColor=INK, strokeWidth=1.6))
        final = curve[-1]
        # Under the last step: a cumulative curve leaves that corner empty.
        drawing.add(
            _string(
                x_of(final.minute / unit) - 3,
                max(y_of(final.percent) - 10, bottom + 3),
                f"{final.percent:.1f} %",
                size=7.5,
                anchor="end",
                bold=True,
            )
        )

    # Axis titles.
    x_title = tr("Hours since the start") if in_hours else tr("Minutes since the start")
    drawing.add(_string(left + plot_w / 2, 8, x_title, size=8, anchor="middle"))
    y_title = Group(_string(0, 0, tr("Answered (%)"), size=8, anchor="middle"))
    y_title.translate(12, bottom + plot_h / 2)
    y_title.rotate(90)
    drawing.add(y_title)
    return drawing


def department_bars(
    groups: Sequence[GroupFigures],
    *,
    width: float,
    tr: Translate = identity,
    bar_height: float = 13,
    gap: float = 5,
) -> Drawing:
    """One horizontal bar per group: its answer rate, with "answered / recipients (rate)" written on the bar."""
    label_size = 7.5
    names = [g.name for g in groups]
    label_w = min(width * 0.32, max([text_width(n, label_size) for n in names] + [30.0]) + 6)
    left = label_w + 4
    right = 8.0
    bottom, top = 30.0, 6.0
    plot_w = width - left - right
    plot_h = len(groups) * (bar_height + gap) + gap
    drawing = Drawing(width, plot_h + bottom + top)

    def x_of(percent: float) -> float:
        return left + plot_w * percent / 100.0

    for percent in range(0, 101, 25):
        x = x_of(percent)
        drawing.add(Line(x, bottom, x, bottom + plot_h, strokeColor=GRID, strokeWidth=0.4))
        drawing.add(_string(x, bottom - 10, f"{percent}", size=7, anchor="middle"))
    for index, group in enumerate(groups):
        y = bottom + plot_h - (index + 1) * (bar_height + gap)
        drawing.add(
            _string(
                left - 5, y + bar_height / 2 - 2.6, fit(group.name, label_size, label_w), label_size, "end"
            )
        )
        drawing.add(Rect(left, y, plot_w, bar_height, fillColor=BAR_EMPTY, strokeColor=None))
        filled = x_of(group.rate) - left
        if filled > 0:
            drawing.add(Rect(left, y, filled, bar_height, fillColor=BAR, strokeColor=None))
        value = f"{group.answered} / {group.recipients}  ({group.rate:.0f} %)"
        value_w = text_width(value, 7.5, bold=True)
        if value_w + 8 <= filled:
            drawing.add(
                _string(left + filled - 4, y + bar_height / 2 - 2.6, value, 7.5, "end", True, colors.white)
            )
        else:
            drawing.add(_string(left + filled + 4, y + bar_height / 2 - 2.6, value, 7.5, "start", True))
    drawing.add(Line(left, bottom, left, bottom + plot_h, strokeColor=INK, strokeWidth=0.8))
    drawing.add(_string(left + plot_w / 2, 6, tr("Answered (%)"), size=8, anchor="middle"))
    return drawing
