"""The printed drill / incident report: an A4 PDF built from a :class:`~reports.document.DrillReport`.

Pure apart from reportlab: plain values in, bytes out. Static labels go through ``tr`` (the caller passes the
catalogue of the report's language); everything else is already in the report.

Japanese is set in the CID fonts every PDF reader carries (HeiseiKakuGo-W5 Gothic, HeiseiMin-W3 Mincho), so
nothing is embedded or downloaded. Latin runs are set in Helvetica: most viewers space a CID font's Latin glyphs
too wide, so mixed text is split into runs and each gets the font that suits it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from reports import charts
from reports.document import (
    DrillReport,
    Translate,
    format_duration,
    format_percent,
    identity,
    outcome_label,
)
from reports.metrics import GroupFigures

GOTHIC = charts.GOTHIC
MINCHO = "HeiseiMin-W3"
LATIN = charts.LATIN
LATIN_BOLD = charts.LATIN_BOLD
PAGE_W, PAGE_H = A4
MARGIN_X = 18 * mm
MARGIN_TOP = 20 * mm
MARGIN_BOTTOM = 20 * mm
FRAME_W = PAGE_W - 2 * MARGIN_X
HEADER_FILL = colors.HexColor("#e3e3e3")
ZEBRA = colors.HexColor("#f5f5f5")
RULE = colors.HexColor("#9e9e9e")
MUTED = colors.HexColor("#4d4d4d")
MAX_CHART_GROUPS = 20


def register_fonts() -> None:
    registered = pdfmetrics.getRegisteredFontNames()
    for name in (GOTHIC, MINCHO):
        if name not in registered:
            pdfmetrics.registerFont(UnicodeCIDFont(name))


# --- text --------------------------------------------------------------------------------------------------------


def _runs(text: str) -> Iterable[tuple[bool, str]]:
    """Split ``text`` into (is_latin, run) pieces."""
    run = ""
    latin = True
    for char in text:
        char_latin = charts.is_latin(char)
        if run and char_latin != latin:
            yield latin, run
            run = ""
        latin = char_latin
        run += char
    if run:
        yield latin, run


def markup(text: str, cjk_font: str = GOTHIC) -> str:
    """Paragraph markup for plain ``text``: escaped, line breaks kept, non-Latin runs in the CID font."""
    out = []
    for latin, run in _runs(text):
        piece = escape(run).replace("\n", "<br/>")
        out.append(piece if latin else f'<font face="{cjk_font}">{piece}</font>')
    return "".join(out)


class Styles:
    def __init__(self) -> None:
        base = ParagraphStyle("body", fontName=LATIN, fontSize=9, leading=12.5)
        self.body = base
        self.small = ParagraphStyle("small", parent=base, fontSize=7.5, leading=10, spaceBefore=1.5 * mm)
        self.muted = ParagraphStyle("muted", parent=base, fontSize=8, leading=11, textColor=MUTED)
        self.cell = ParagraphStyle("cell", parent=base, fontSize=8, leading=10.5)
        self.cell_num = ParagraphStyle("cell_num", parent=self.cell, alignment=TA_RIGHT)
        self.head = ParagraphStyle("head", parent=self.cell, fontName=LATIN_BOLD)
        self.head_num = ParagraphStyle("head_num", parent=self.head, alignment=TA_RIGHT)
        self.h1 = ParagraphStyle(
            "h1",
            parent=base,
            fontName=LATIN_BOLD,
            fontSize=14,
            leading=18,
            spaceBefore=4 * mm,
            spaceAfter=2 * mm,
        )
        self.h2 = ParagraphStyle(
            "h2",
            parent=base,
            fontName=LATIN_BOLD,
            fontSize=11,
            leading=14,
            spaceBefore=4 * mm,
            spaceAfter=1.5 * mm,
        )
        self.cover_org = ParagraphStyle("cover_org", parent=base, fontSize=13, leading=17, textColor=MUTED)
        self.cover_kind = ParagraphStyle(
            "cover_kind", parent=base, fontName=LATIN_BOLD, fontSize=15, leading=20
        )
        self.cover_title = ParagraphStyle(
            "cover_title", parent=base, fontName=LATIN_BOLD, fontSize=24, leading=31
        )
        self.figure_value = ParagraphStyle(
            "figure_value", parent=base, fontName=LATIN_BOLD, fontSize=17, leading=21, alignment=TA_CENTER
        )
        self.figure_label = ParagraphStyle(
            "figure_label", parent=base, fontSize=8, leading=10.5, alignment=TA_CENTER, textColor=MUTED
        )


def _wrap_style(style: ParagraphStyle, text: str) -> ParagraphStyle:
    """Japanese has no spaces to break at: text with CJK wraps anywhere, Latin text at spaces."""
    if charts.is_latin(text):
        return style
    return ParagraphStyle(style.name + "_cjk", parent=style, wordWrap="CJK")


def para(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(markup(text), _wrap_style(style, text))


# --- tables ------------------------------------------------------------------------------------------------------


def data_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[float],
    styles: Styles,
    numeric: Sequence[int] = (),
) -> Table:
    """A table that splits across pages with its header repeated; numeric columns right-aligned."""
    head = [para(h, styles.head_num if i in numeric else styles.head) for i, h in enumerate(header)]
    body = [
        [para(str(value), styles.cell_num if i in numeric else styles.cell) for i, value in enumerate(row)]
        for row in rows
    ]
    table = Table([head, *body], colWidths=list(widths), repeatRows=1, hAlign="LEFT")
    commands: list[tuple[Any, ...]] = [
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    for index in range(2, len(body) + 1, 2):
        commands.append(("BACKGROUND", (0, index), (-1, index), ZEBRA))
    table.setStyle(TableStyle(commands))
    return table


def facts_table(rows: Sequence[tuple[str, str]], styles: Styles, label_width: float = 42 * mm) -> Table:
    data = [[para(label, styles.head), para(value, styles.cell)] for label, value in rows]
    table = Table(data, colWidths=[label_width, FRAME_W - label_width], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def figure_boxes(figures: Sequence[tuple[str, str]], styles: Styles, per_row: int = 3) -> Table:
    """The summary figures as big numbers in boxes, ``per_row`` to a row."""
    cells = [[para(value, styles.figure_value), para(label, styles.figure_label)] for label, value in figures]
    rows = []
    for start in range(0, len(cells), per_row):
        row = cells[start : start + per_row]
        row += [["", ""]] * (per_row - len(row))
        rows.append(row)
    width = FRAME_W / per_row
    table = Table(rows, colWidths=[width] * per_row, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.8, colors.black),
                ("INNERGRID", (0, 0), (-1, -1), 0.4, RULE),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    return table


# --- page furniture ----------------------------------------------------------------------------------------------


def _canvas_class(footer_left: str, footer_right: str, header: str) -> type[Canvas]:
    """A canvas that knows the page count when it draws each page's footer ("3 / 12")."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._furniture(total)
                super().showPage()
            super().save()

        def _text(self, x: float, y: float, text: str, size: float, anchor: str = "left") -> None:
            """Mixed Japanese/Latin text, each run in its own font (see the module's note)."""
            runs = [(charts.font_for(run), run) for _, run in _runs(text)]
            width = sum(pdfmetrics.stringWidth(run, font, size) for font, run in runs)
            if anchor == "right":
                x -= width
            elif anchor == "center":
                x -= width / 2
            for font, run in runs:
                self.setFont(font, size)
                self.drawString(x, y, run)
                x += pdfmetrics.stringWidth(run, font, size)

        def _fitted(self, text: str, size: float, width: float) -> str:
            return charts.fit(text, size, width)

        def _furniture(self, total: int) -> None:
            page = self._pageNumber
            self.saveState()
            self.setFillColor(MUTED)
            self.setStrokeColor(RULE)
            self.setLineWidth(0.5)
            y = MARGIN_BOTTOM - 9 * mm
            self.line(MARGIN_X, y + 4 * mm, PAGE_W - MARGIN_X, y + 4 * mm)
            number = f"{page} / {total}"
            number_w = pdfmetrics.stringWidth(number, LATIN_BOLD, 8.5)
            self.setFillColor(colors.black)
            self.setFont(LATIN_BOLD, 8.5)
            self.drawRightString(PAGE_W - MARGIN_X, y, number)
            self.setFillColor(MUTED)
            kind_right = PAGE_W - MARGIN_X - number_w - 6 * mm
            self._text(kind_right, y, footer_right, 7.5, "right")
            kind_w = charts.text_width(footer_right, 7.5)
            self._text(
                MARGIN_X, y, self._fitted(footer_left, 7.5, kind_right - kind_w - 8 * mm - MARGIN_X), 7.5
            )
            if page > 1:
                self.setFillColor(MUTED)
                top = PAGE_H - MARGIN_TOP + 6 * mm
                self._text(MARGIN_X, top, self._fitted(header, 7.5, FRAME_W), 7.5)
                self.line(MARGIN_X, top - 2 * mm, PAGE_W - MARGIN_X, top - 2 * mm)
            self.restoreState()

    return NumberedCanvas


# --- the report --------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, report: DrillReport, tr: Translate) -> None:
        self.r = report
        self.tr = tr
        self.s = Styles()
        self.tz = ZoneInfo(report.timezone)
        self.story: list[Flowable] = []
        self.section = 0

    # formatting
    def dt(self, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return "-" if value is None else value.astimezone(self.tz).strftime(fmt)

    def day(self, value: date | None) -> str:
        return "-" if value is None else value.isoformat()

    def dur(self, seconds: float | None) -> str:
        return format_duration(seconds, self.tr)

    def reached(self, seconds: float | None) -> str:
        return self.tr("not reached") if seconds is None else self.dur(seconds)

    def heading(self, text: str) -> None:
        self.section += 1
        # A heading never sits alone at the bottom of a page.
        self.story.append(CondPageBreak(45 * mm))
        self.story.append(para(f"{self.section}. {text}", self.s.h1))

    def subheading(self, text: str) -> None:
        self.story.append(CondPageBreak(30 * mm))
        self.story.append(para(text, self.s.h2))

    def text(self, text: str, style: ParagraphStyle | None = None) -> None:
        self.story.append(para(text, style or self.s.body))

    # sections
    def cover(self) -> None:
        r, tr, s = self.r, self.tr, self.s
        kind = (
            "インシデント報告書 / Incident report" if r.kind == "incident" else "訓練報告書 / Exercise report"
        )
        self.story += [
            Spacer(1, 18 * mm),
            para(r.organization, s.cover_org),
            Spacer(1, 6 * mm),
            para(kind, s.cover_kind),
            Spacer(1, 3 * mm),
            para(r.title, s.cover_title),
            Spacer(1, 10 * mm),
        ]
        window_planned = f"{self.dt(r.planned_start)} – {self.dt(r.planned_end, '%H:%M')}"
        window_actual = f"{self.dt(r.actual_start)} – {self.dt(r.actual_end, '%H:%M')}"
        rows = [
            (tr("Type"), r.type_label),
            (tr("Scenario"), r.scenario_label),
            (tr("Planned"), window_planned if r.planned_start else "-"),
            (tr("Actual"), window_actual if r.actual_start else "-"),
            (tr("State"), r.state_label),
        ]
        if r.broadcast is not None:
            rows.append((tr("Drill broadcast"), f"#{r.broadcast.id} {r.broadcast.title}"))
        rows.append((tr("Participants"), str(len(r.participants))))
        rows.append((tr("Report generated"), self.dt(r.generated_at)))
        self.story.append(facts_table(rows, s))
        self.story.append(Spacer(1, 12 * mm))
        note = Table(
            [[para(tr("ISO 22301 §8.5 note"), s.head)], [para(self._iso_note(), s.body)]],
            colWidths=[FRAME_W],
            hAlign="LEFT",
        )
        note.setStyle(
            TableStyle(
                [
                    ("BOX", (0, 0), (-1, -1), 0.8, colors.black),
                    ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
                    ("TOPPADDING", (0, 0), (-1, -1), 5),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
                    ("LEFTPADDING", (0, 0), (-1, -1), 6),
                ]
            )
        )
        self.story.append(note)
        if r.scope_note:
            self.story += [Spacer(1, 4 * mm), para(r.scope_note, s.muted)]
        self.story += [NextPageTemplate("body"), PageBreak()]

    def _iso_note(self) -> str:
        if self.r.kind == "incident":
            return self.tr(
                "This report documents a real incident with the same record as an exercise: what happened, "
                "the figures measured, the lessons learnt and the corrective actions, so they feed the next "
                "exercises (ISO 22301 §8.5 and §10)."
            )
        return self.tr(
            "This is the post-exercise report of the business continuity exercise programme (ISO 22301 "
            "§8.5): it records the outcomes measured, the issues found, the recommendations and the "
            "actions to implement improvements, with their owners and due dates."
        )

    def summary(self) -> None:
        r, tr = self.r, self.tr
        self.heading(tr("Summary"))
        b = r.broadcast
        if b is not None:
            self.story.append(
                figure_boxes(
                    [
                        (tr("Recipients"), str(b.recipients)),
                        (tr("Answered"), str(b.answered)),
                        (tr("Answer rate"), format_percent(b.answer_rate)),
                        (tr("Time to 50 % answered"), self.reached(b.times.get(50))),
                        (tr("Time to 90 % answered"), self.reached(b.times.get(90))),
                        (tr("Median time to answer"), self.dur(b.median_seconds)),
                    ],
                    self.s,
                )
            )
            self.story.append(Spacer(1, 3 * mm))
        if r.failover is not None:
            f = r.failover.figures
            self.story.append(
                figure_boxes(
                    [
                        (
                            tr("Decision to first call answered at the alternate site"),
                            self.dur(f.seconds_to_alternate),
                        ),
                        (tr("Calls in the drill window"), str(f.calls)),
                        (tr("Calls lost"), f"{f.lost} ({f.lost_rate:.1f} %)"),
                    ],
                    self.s,
                )
            )
            self.story.append(Spacer(1, 3 * mm))
        if r.incident_figures:
            self.story.append(figure_boxes([(k.label, k.value) for k in r.incident_figures[:6]], self.s))
            self.story.append(Spacer(1, 3 * mm))
        self.subheading(tr("Objectives"))
        self.text(r.objectives or "-")
        self.subheading(tr("Outcome and recommendations"))
        self.text(r.summary or tr("Not written yet."))
        open_actions = sum(1 for a in r.actions if a.status in ("open", "in_progress"))
        self.story.append(Spacer(1, 2 * mm))
        self.text(
            tr("Issues found: {issues}. Corrective actions listed: {actions} ({open} still open).").format(
                issues=len(r.issues), actions=len(r.actions), open=open_actions
            ),
            self.s.muted,
        )

    def broadcast_section(self) -> None:
        b, tr, s = self.r.broadcast, self.tr, self.s
        if b is None:
            return
        self.heading(tr("Safety call results"))
        self.text(
            tr("Broadcast #{id} “{title}”, started {start}, {state}.").format(
                id=b.id, title=b.title, start=self.dt(b.started_at), state=b.state
            ),
            s.muted,
        )
        if b.recipients and b.curve:
            chart = charts.answer_curve_chart(b.curve, width=FRAME_W, times=b.times, tr=tr)
            self.story.append(KeepTogether([para(tr("Answer rate over time"), s.h2), chart]))
        else:
            self.subheading(tr("Answer rate over time"))
            self.text(tr("Nobody was asked."))
        times = [(f"{p} %", self.dur(b.times.get(p))) for p in sorted(b.times)]
        times.append((tr("Median"), self.dur(b.median_seconds)))
        self.story.append(Spacer(1, 2 * mm))
        self.story.append(
            data_table(
                [tr("Share answered"), *[t[0] for t in times]],
                [[tr("Time since the start"), *[t[1] for t in times]]],
                [38 * mm] + [(FRAME_W - 38 * mm) / len(times)] * len(times),
                s,
                numeric=range(1, len(times) + 1),
            )
        )
        self.text(tr("“-” means that share was never reached."), s.small)
        if b.by_department:
            heading: Flowable = para(tr("Answer rate by department"), s.h2)
            shown = sorted(b.by_department, key=lambda g: (g.rate, g.name))[:MAX_CHART_GROUPS]
            if len(b.by_department) > MAX_CHART_GROUPS:
                heading = KeepTogether(
                    [
                        heading,
                        para(
                            tr(
                                "The {n} departments with the lowest answer rate; all are in the table below."
                            ).format(n=MAX_CHART_GROUPS),
                            s.small,
                        ),
                    ]
                )
            shown = sorted(shown, key=lambda g: g.name)
            self.story.append(KeepTogether([heading, charts.department_bars(shown, width=FRAME_W, tr=tr)]))
            self.story.append(Spacer(1, 2 * mm))
            self.group_table(tr("Department"), b.by_department)
        if b.by_site:
            self.subheading(tr("By site"))
            self.group_table(tr("Site"), b.by_site)

    def group_table(self, name_label: str, groups: Sequence[GroupFigures]) -> None:
        tr = self.tr
        total_recipients = sum(g.recipients for g in groups)
        total_answered = sum(g.answered for g in groups)
        rows = [
            [g.name, str(g.recipients), str(g.answered), format_percent(g.rate), self.dur(g.median_seconds)]
            for g in groups
        ]
        rows.append(
            [
                tr("Total"),
                str(total_recipients),
                str(total_answered),
                format_percent(100.0 * total_answered / total_recipients if total_recipients else 0.0),
                "",
            ]
        )
        self.story.append(
            data_table(
                [name_label, tr("Recipients"), tr("Answered"), tr("Rate"), tr("Median time to answer")],
                rows,
                [64 * mm, 24 * mm, 24 * mm, 24 * mm, FRAME_W - 136 * mm],
                self.s,
                numeric=(1, 2, 3, 4),
            )
        )

    def unreachable_section(self) -> None:
        b, tr, s = self.r.broadcast, self.tr, self.s
        if b is None:
            return
        self.heading(tr("Unreachable contact points and people"))
        self.text(
            tr(
                "A contact point is unreachable when every message or call to it that left failed, rang "
                "unanswered or was busy. Private numbers are not printed."
            ),
            s.muted,
        )
        self.subheading(tr("Unreachable contact points ({n})").format(n=len(b.unreachable_contacts)))
        if b.unreachable_contacts:
            rows = [
                [
                    u.person,
                    u.department,
                    u.contact_label,
                    str(u.attempts),
                    outcome_label(u.last_state, tr),
                    " ".join(x for x in (u.error_code or "", u.error_reason or "") if x),
                ]
                for u in b.unreachable_contacts
            ]
            self.story.append(
                data_table(
                    [
                        tr("Name"),
                        tr("Department"),
                        tr("Contact point"),
                        tr("Tries"),
                        tr("Last result"),
                        tr("Error"),
                    ],
                    rows,
                    [30 * mm, 28 * mm, 40 * mm, 12 * mm, 22 * mm, FRAME_W - 132 * mm],
                    s,
                    numeric=(3,),
                )
            )
        else:
            self.text(tr("None: every contact point tried got through."))
        self.subheading(tr("People who never answered ({n})").format(n=b.unreached_people_total))
        if b.unreached_people:
            rows = [[p.employee_id, p.name, p.department, p.site, p.last_attempt] for p in b.unreached_people]
            self.story.append(
                data_table(
                    [tr("Employee"), tr("Name"), tr("Department"), tr("Site"), tr("Last attempt")],
                    rows,
                    [22 * mm, 38 * mm, 38 * mm, 20 * mm, FRAME_W - 118 * mm],
                    s,
                )
            )
            if b.unreached_people_total > len(b.unreached_people):
                self.text(
                    tr("… and {n} more (see the broadcast's CSV export).").format(
                        n=b.unreached_people_total - len(b.unreached_people)
                    ),
                    s.small,
                )
        elif b.answered >= b.recipients:
            self.text(tr("Everyone answered."))
        if b.in_progress:
            self.text(
                tr("{n} more have not answered yet: the broadcast was still contacting them.").format(
                    n=b.in_progress
                )
            )

    def failover_section(self) -> None:
        fo, tr, s = self.r.failover, self.tr, self.s
        if fo is None:
            return
        f = fo.figures
        self.heading(tr("Relocation to the alternate site"))
        rows = [
            (tr("Decision"), self.dt(f.decision_at, "%Y-%m-%d %H:%M:%S")),
            (tr("Site taken down"), fo.down_site_label or "-"),
            (tr("Alternate site"), fo.alternate_site_label or "-"),
            (
                tr("First call answered at the alternate site"),
                self.dt(f.first_alternate_answer_at, "%H:%M:%S"),
            ),
            (tr("Decision to first call answered at the alternate site"), self.dur(f.seconds_to_alternate)),
            (tr("Calls in the drill window"), str(f.calls)),
            (tr("Answered by a person"), str(f.answered)),
            (tr("Answered at the alternate site"), str(f.answered_at_alternate)),
            (tr("Calls lost"), f"{f.lost} ({f.lost_rate:.1f} %)"),
            (
                tr("Calls after the decision / lost among them"),
                f"{f.calls_after_decision} / {f.lost_after_decision}",
            ),
        ]
        if f.still_open:
            rows.append((tr("Calls still in progress"), str(f.still_open)))
        self.story.append(facts_table(rows, s, label_width=70 * mm))
        self.text(
            tr(
                "A call is lost when it ended without any person taking it: voicemail, callback request, SMS "
                "link, announcement only, no target left, or the caller hung up while waiting."
            ),
            s.small,
        )
        if f.lost_by_outcome:
            self.subheading(tr("Lost calls by how they ended"))
            self.story.append(
                data_table(
                    [tr("Ended as"), tr("Calls")],
                    [[outcome_label(k, tr), str(v)] for k, v in f.lost_by_outcome.items()],
                    [70 * mm, 30 * mm],
                    s,
                    numeric=(1,),
                )
            )
        self.subheading(tr("Routing changes in the drill window"))
        if fo.changes:
            rows2 = [
                [
                    self.dt(c.at, "%H:%M:%S") + (" ★" if c.is_decision else ""),
                    c.actor,
                    c.summary,
                    c.reason,
                ]
                for c in fo.changes
            ]
            self.story.append(
                data_table(
                    [tr("Time"), tr("By"), tr("Change"), tr("Reason")],
                    rows2,
                    [20 * mm, 46 * mm, 56 * mm, FRAME_W - 122 * mm],
                    s,
                )
            )
            self.text(tr("★ the change counted as the decision."), s.small)
        else:
            self.text(tr("No routing change was made in the drill window."))

    def incident_section(self) -> None:
        if not self.r.incident_figures:
            return
        self.heading(self.tr("Incident figures"))
        self.story.append(
            data_table(
                [self.tr("Figure"), self.tr("Value")],
                [[k.label, k.value] for k in self.r.incident_figures],
                [110 * mm, FRAME_W - 110 * mm],
                self.s,
                numeric=(1,),
            )
        )

    def comparison_section(self) -> None:
        c, tr, s = self.r.comparison, self.tr, self.s
        if c is None or not c.headers:
            return
        self.heading(tr("Comparison with earlier drills of the same type"))

        def show(key: str, value: float | None) -> str:
            unit = c.units.get(key, "count")
            if value is None:
                return "-"
            if unit == "seconds":
                return self.dur(value)
            if unit == "percent":
                return format_percent(value)
            return f"{value:g}"

        def delta(key: str, value: float | None) -> str:
            if value is None:
                return "-"
            unit = c.units.get(key, "count")
            sign = "+" if value > 0 else ("±" if value == 0 else "-")
            magnitude = abs(value)
            if unit == "seconds":
                return sign + self.dur(magnitude)
            if unit == "percent":
                return f"{sign}{magnitude:.1f} pt"
            return f"{sign}{magnitude:g}"

        verdicts = {"better": tr("better"), "worse": tr("worse"), "same": tr("same"), "": ""}
        rows = [
            [
                c.labels.get(row.key, row.key),
                show(row.key, row.current),
                *[show(row.key, p) for p in row.previous],
                delta(row.key, row.delta),
                verdicts.get(row.verdict, ""),
            ]
            for row in c.rows
        ]
        n_prev = len(c.headers)
        value_w = (FRAME_W - 48 * mm - 40 * mm) / (1 + n_prev)
        self.story.append(
            data_table(
                [tr("Figure"), tr("This drill"), *c.headers, tr("Change"), ""],
                rows,
                [48 * mm] + [value_w] * (1 + n_prev) + [24 * mm, 16 * mm],
                s,
                numeric=tuple(range(1, 3 + n_prev)),
            )
        )
        self.text(tr("Change: this drill minus the most recent earlier one."), s.small)

    def log_section(self) -> None:
        r, tr, s = self.r, self.tr, self.s
        self.heading(tr("Timeline and observations"))
        if not r.timeline:
            self.text(tr("Nothing was logged."))
            return
        rows = [[self.dt(t.at, "%m-%d %H:%M"), t.source, t.actor, t.text] for t in r.timeline]
        self.story.append(
            data_table(
                [tr("Time"), tr("Kind"), tr("By"), tr("What happened")],
                rows,
                [22 * mm, 24 * mm, 30 * mm, FRAME_W - 76 * mm],
                s,
            )
        )

    def actions_section(self) -> None:
        r, tr, s = self.r, self.tr, self.s
        self.heading(tr("Issues found and corrective actions"))
        self.subheading(tr("Issues found ({n})").format(n=len(r.issues)))
        if r.issues:
            self.story.append(
                data_table(
                    [tr("Time"), tr("By"), tr("Issue")],
                    [[self.dt(i.at, "%m-%d %H:%M"), i.actor, i.text] for i in r.issues],
                    [22 * mm, 30 * mm, FRAME_W - 52 * mm],
                    s,
                )
            )
        else:
            self.text(tr("No issue was recorded."))
        self.subheading(tr("Corrective actions ({n})").format(n=len(r.actions)))
        if r.actions:
            rows = []
            for a in r.actions:
                title = a.title + (f"\n{a.detail}" if a.detail else "")
                status = a.status_label + (f" ({tr('overdue')})" if a.overdue else "")
                origin = (
                    tr("carried over: {title}").format(title=a.raised_in)
                    if a.carried_over
                    else tr("this drill")
                )
                rows.append([f"#{a.id}", title, a.owner or "-", self.day(a.due_on), status, origin])
            self.story.append(
                data_table(
                    ["#", tr("Action"), tr("Owner"), tr("Due"), tr("Status"), tr("Raised in")],
                    rows,
                    [11 * mm, 52 * mm, 31 * mm, 20 * mm, 25 * mm, FRAME_W - 139 * mm],
                    s,
                )
            )
            self.text(
                tr("Actions raised by earlier drills stay on every report until they are done or cancelled."),
                s.small,
            )
        else:
            self.text(tr("No corrective action."))

    def participants_section(self) -> None:
        r, tr, s = self.r, self.tr, self.s
        self.heading(tr("Participants"))
        if r.participants:
            self.story.append(
                data_table(
                    [tr("Name"), tr("Role in the drill"), tr("Department / organization")],
                    [[p.name, p.role or "-", p.affiliation or "-"] for p in r.participants],
                    [60 * mm, 50 * mm, FRAME_W - 110 * mm],
                    s,
                )
            )
        else:
            self.text(tr("No participant was recorded."))

    def sign_off(self) -> None:
        tr, s = self.tr, self.s
        line = "_" * 34
        rows = [
            [
                para(tr("Prepared by"), s.head),
                para(line, s.body),
                para(tr("Signed on"), s.head),
                para("____________", s.body),
            ],
            [
                para(tr("Approved by"), s.head),
                para(line, s.body),
                para(tr("Signed on"), s.head),
                para("____________", s.body),
            ],
        ]
        table = Table(
            rows, colWidths=[32 * mm, 82 * mm, 18 * mm, FRAME_W - 132 * mm], rowHeights=[16 * mm] * 2
        )
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "BOTTOM")]))
        self.story.append(CondPageBreak(60 * mm))
        self.story.append(
            KeepTogether(
                [
                    para(f"{self.section + 1}. {tr('Sign-off')}", s.h1),
                    para(tr("Reviewed and approved as the record of this exercise."), s.muted)
                    if self.r.kind != "incident"
                    else para(tr("Reviewed and approved as the record of this incident."), s.muted),
                    table,
                ]
            )
        )

    def build(self) -> list[Flowable]:
        self.cover()
        self.summary()
        self.broadcast_section()
        self.unreachable_section()
        self.failover_section()
        self.incident_section()
        self.comparison_section()
        self.log_section()
        self.actions_section()
        self.participants_section()
        self.sign_off()
        return self.story


def render_pdf(report: DrillReport, tr: Translate = identity) -> bytes:
    """The report as A4 PDF bytes."""
    register_fonts()
    buffer = io.BytesIO()
    kind = (
        "訓練報告書 / Exercise report"
        if report.kind != "incident"
        else "インシデント報告書 / Incident report"
    )
    doc = BaseDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=MARGIN_TOP,
        bottomMargin=MARGIN_BOTTOM,
        title=f"{report.title} — {kind}",
        author=report.organization,
        subject=kind,
        creator="Lifeline",
    )
    frame = Frame(MARGIN_X, MARGIN_BOTTOM, FRAME_W, PAGE_H - MARGIN_TOP - MARGIN_BOTTOM, id="main")
    doc.addPageTemplates([PageTemplate(id="cover", frames=[frame]), PageTemplate(id="body", frames=[frame])])
    builder = _Builder(report, tr)
    story = builder.build()
    canvas_cls = _canvas_class(
        footer_left=f"{report.organization} · {report.title}",
        footer_right=kind,
        header=f"{report.title} — {report.type_label} / {report.scenario_label}",
    )
    doc.build(story, canvasmaker=canvas_cls)
    return buffer.getvalue()


PdfRenderer = Callable[[DrillReport, Translate], bytes]
