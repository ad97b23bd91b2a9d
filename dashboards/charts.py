"""Charts as inline SVG, drawn on the server: the answer curve and the per-department bars.

Pure: plain values in, markup out. The page embeds the markup and the live endpoint sends the same markup again,
so the picture a script draws after an update is exactly the one the server draws without script. Every chart
prints its values as text and uses a hatch pattern for "not yet", so nothing depends on telling colours apart; a
``<title>`` and ``<desc>`` say in words what it shows. No ``style`` attribute anywhere (the CSP forbids them):
presentation attributes only. Markup is built from literal templates whose arguments ``Markup.format`` escapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 360
INK = "#1b1f24"
MUTED = "#57606a"
ANSWERED = "#0a5bd3"
GRID = "#d0d7de"
AXIS_STEPS_MINUTES = (10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 4320)


def percent(part: int, whole: int) -> int:
    """Whole percent, halves rounded up (1 of 8 is 13 %, as people round, not 12 % as banks do)."""
    return (200 * part + whole) // (2 * whole) if whole > 0 else 0


def axis_minutes(elapsed_minutes: float) -> int:
    """The time axis: the first round span that holds what has happened so far (a broadcast two minutes old is
    drawn on a ten-minute axis, so the curve does not pretend to be finished)."""
    for step in AXIS_STEPS_MINUTES:
        if elapsed_minutes <= step:
            return step
    return int(-(-elapsed_minutes // 1440) * 1440)


def _n(value: float) -> str:
    return f"{value:.1f}"


def _hatch(pattern_id: str, stroke: str, background: bool) -> Markup:
    # Diagonal lines: reads as "not yet" in greyscale and to people who do not tell colours apart.
    fill = Markup('<rect width="6" height="6" fill="#ffffff"/>') if background else Markup("")
    return Markup(
        '<pattern id="{}" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">'
        '{}<line x1="0" y1="0" x2="0" y2="6" stroke="{}" stroke-width="{}"/></pattern>'
    ).format(pattern_id, fill, stroke, "2" if background else "1")


def _frame(chart_id: str, height: int, title: str, desc: str, body: Markup, defs: Markup) -> Markup:
    return Markup(
        '<svg class="chart" id="{id}" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="{id}-title {id}-desc" focusable="false">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>'
        "<defs>{defs}</defs>{body}</svg>"
    ).format(id=chart_id, width=WIDTH, height=height, title=title, desc=desc, defs=defs, body=body)


@dataclass(frozen=True)
class CurvePoint:
    minutes: float  # since the broadcast started
    answered: int  # people who had answered by then


def answer_curve(
    *,
    chart_id: str,
    points: Sequence[CurvePoint],
    total: int,
    axis: float,
    title: str,
    desc: str,
    x_label: str,
    end_label: str,
) -> Markup:
    """Share of the people who had answered, over the minutes since the start (``axis`` minutes wide), with the
    latest value printed."""
    height = 190
    left, right, top, bottom = 44, WIDTH - 12, 14, 150
    span = axis or 1.0

    def x(minutes: float) -> float:
        return left + (right - left) * min(minutes, span) / span

    def y(answered: int) -> float:
        return bottom - (bottom - top) * (answered / total if total else 0)

    parts: list[Markup] = []
    for share in (0, 50, 100):
        level = bottom - (bottom - top) * share / 100
        parts.append(
            Markup(
                '<line x1="{l}" y1="{y}" x2="{r}" y2="{y}" stroke="{grid}" stroke-width="1"/>'
                '<text x="{tx}" y="{ty}" text-anchor="end" font-size="12" fill="{muted}">{share}%</text>'
            ).format(
                l=left,
                r=right,
                y=_n(level),
                grid=GRID,
                tx=left - 6,
                ty=_n(level + 4),
                muted=MUTED,
                share=share,
            )
        )
    parts.append(
        Markup(
            '<text x="{l}" y="{b}" font-size="12" fill="{muted}">0</text>'
            '<text x="{r}" y="{b}" text-anchor="end" font-size="12" fill="{muted}">{end}</text>'
            '<text x="{mid}" y="{b2}" text-anchor="middle" font-size="12" fill="{muted}">{label}</text>'
        ).format(
            l=left,
            r=right,
            b=bottom + 18,
            b2=bottom + 34,
            mid=_n((left + right) / 2),
            muted=MUTED,
            end=end_label,
            label=x_label,
        )
    )
    if points:
        line = " ".join(f"{_n(x(p.minutes))},{_n(y(p.answered))}" for p in points)
        area = f"{_n(x(points[0].minutes))},{bottom} {line} {_n(x(points[-1].minutes))},{bottom}"
        last = points[-1]
        lx, ly = x(last.minutes), y(last.answered)
        # Above the point unless it is at the top; on the side with room, so it never runs off the edge.
        ty = ly - 9 if ly - 9 > top + 4 else ly + 18
        anchor, tx = ("end", lx - 4) if lx > (left + right) / 2 else ("start", lx + 4)
        parts.append(
            Markup(
                '<polygon points="{area}" fill="url(#{id}-area)" stroke="none"/>'
                '<polyline points="{line}" fill="none" stroke="{ink}" stroke-width="3"/>'
                '<circle cx="{lx}" cy="{ly}" r="4" fill="{ink}"/>'
                '<text x="{tx}" y="{ty}" text-anchor="{anchor}" font-size="13" font-weight="700" '
                'fill="{text}">{label}</text>'
            ).format(
                area=area,
                id=chart_id,
                line=line,
                ink=ANSWERED,
                lx=_n(lx),
                ly=_n(ly),
                tx=_n(tx),
                ty=_n(ty),
                anchor=anchor,
                text=INK,
                label=f"{last.answered} ({percent(last.answered, total)}%)",
            )
        )
    defs = _hatch(f"{chart_id}-area", ANSWERED, background=False)
    return _frame(chart_id, height, title, desc, Markup("").join(parts), defs)


@dataclass(frozen=True)
class Bar:
    label: str
    answered: int
    total: int


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def department_bars(*, chart_id: str, bars: Sequence[Bar], title: str, desc: str) -> Markup:
    """One bar per department: the answered part solid, the rest hatched, ``answered/total (p%)`` printed."""
    row = 38
    height = max(row * len(bars), row) + 2
    parts: list[Markup] = []
    for n, bar in enumerate(bars):
        top = n * row
        share = bar.answered / bar.total if bar.total else 0.0
        value = f"{bar.answered}/{bar.total} ({percent(bar.answered, bar.total)}%)"
        parts.append(
            Markup(
                "<g><title>{label}: {value}</title>"
                '<text x="0" y="{t}" font-size="13" fill="{ink}">{short}</text>'
                '<text x="{w}" y="{t}" text-anchor="end" font-size="13" font-weight="700" fill="{ink}">{value}</text>'
                '<rect x="0.5" y="{b}" width="{full}" height="13" fill="url(#{id}-rest)" stroke="{muted}" '
                'stroke-width="1"/>'
                '<rect x="0.5" y="{b}" width="{done}" height="13" fill="{answered}"/></g>'
            ).format(
                label=bar.label,
                value=value,
                t=top + 13,
                ink=INK,
                short=_shorten(bar.label, 22),
                w=WIDTH,
                b=top + 18.5,
                full=WIDTH - 1,
                id=chart_id,
                muted=MUTED,
                done=_n((WIDTH - 1) * share),
                answered=ANSWERED,
            )
        )
    defs = _hatch(f"{chart_id}-rest", MUTED, background=True)
    return _frame(chart_id, height, title, desc, Markup("").join(parts), defs)
