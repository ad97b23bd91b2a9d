"""The purchase list as an A4 PDF: pure, takes text already in the reader's language and returns bytes.

Japanese is set in the CID fonts every PDF reader ships (HeiseiKakuGo-W5 for text, HeiseiMin-W3 is available
too), so nothing is embedded or downloaded and the file stays small. Runs of Latin letters and digits are set in
Helvetica: readers that substitute a local font for the CID font often space Latin text in it unevenly ("T KY").
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Table, TableStyle

GOTHIC = "HeiseiKakuGo-W5"
MINCHO = "HeiseiMin-W3"
LATIN = "Helvetica"
_LATIN_RUN = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
MARGIN = 16 * mm
# item, unit, quantity, reason: together the A4 width between the margins (178 mm).
COLUMN_WIDTHS = (50 * mm, 18 * mm, 30 * mm, 80 * mm)


@dataclass(frozen=True)
class Labels:
    title: str
    generated: str  # e.g. "Generated on {date}"
    columns: tuple[str, str, str, str]  # item, unit, quantity, reason
    totals: str
    nothing_to_buy: str
    page: str  # e.g. "Page {page} of {pages}"


@dataclass(frozen=True)
class Section:
    """One site: its heading, a line about how the list was sized, and rows of (item, unit, quantity, reason)."""

    heading: str
    note: str
    rows: Sequence[tuple[str, str, str, str]]


def _runs(text: str) -> list[tuple[str, str]]:
    """``text`` cut into (font, text) runs: printable ASCII in Helvetica, everything else in the CID font."""
    runs: list[tuple[str, str]] = []
    position = 0
    for match in _LATIN_RUN.finditer(text):
        if match.start() > position:
            runs.append((GOTHIC, text[position : match.start()]))
        runs.append((LATIN, match.group()))
        position = match.end()
    if position < len(text):
        runs.append((GOTHIC, text[position:]))
    return runs


def _markup(text: str) -> str:
    """Paragraph markup for ``text`` with its Latin runs in Helvetica."""
    return "".join(
        f'<font face="{LATIN}">{escape(run)}</font>' if font == LATIN else escape(run)
        for font, run in _runs(text)
    )


def _draw(canvas: Canvas, x: float, y: float, text: str, size: float, *, right: bool = False) -> None:
    runs = _runs(text)
    if right:
        x -= sum(pdfmetrics.stringWidth(run, font, size) for font, run in runs)
    for font, run in runs:
        canvas.setFont(font, size)
        canvas.drawString(x, y, run)
        x += pdfmetrics.stringWidth(run, font, size)


def _register_fonts() -> None:
    registered = pdfmetrics.getRegisteredFontNames()
    for name in (GOTHIC, MINCHO):
        if name not in registered:
            pdfmetrics.registerFont(UnicodeCIDFont(name))


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=GOTHIC, fontSize=9.5, leading=13, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=17, leading=22, spaceAfter=2 * mm),
        "meta": ParagraphStyle("meta", parent=base, textColor=colors.HexColor("#444444")),
        "heading": ParagraphStyle(
            "heading",
            parent=base,
            fontSize=12.5,
            leading=17,
            spaceBefore=5 * mm,
            spaceAfter=1 * mm,
            keepWithNext=1,
        ),
        "note": ParagraphStyle(
            "note", parent=base, textColor=colors.HexColor("#444444"), spaceAfter=2 * mm, keepWithNext=1
        ),
        "body": base,
        "number": ParagraphStyle("number", parent=base, alignment=TA_RIGHT),
        "header": ParagraphStyle("header", parent=base, textColor=colors.white),
        "header_number": ParagraphStyle(
            "header_number", parent=base, textColor=colors.white, alignment=TA_RIGHT
        ),
    }


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: dict[str, ParagraphStyle],
    number_column: int,
) -> Table:
    def cells(values: Sequence[str], plain: str, number: str) -> list[Paragraph]:
        return [
            Paragraph(_markup(value), styles[number if index == number_column else plain])
            for index, value in enumerate(values)
        ]

    data = [cells(header, "header", "header_number")] + [cells(row, "body", "number") for row in rows]
    widths = COLUMN_WIDTHS if len(header) == 4 else (COLUMN_WIDTHS[0], COLUMN_WIDTHS[1], COLUMN_WIDTHS[2])
    table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#0d1b2a")),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f4f7")]),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.HexColor("#b8c0cc")),
                ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#0d1b2a")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    return table


def _numbered_canvas(labels: Labels, footer: str) -> type[Canvas]:
    """A canvas that writes "page n of N" once the number of pages is known (after the last page)."""

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
                self._footer(total)
                super().showPage()
            super().save()

        def _footer(self, total: int) -> None:
            width, _ = A4
            self.setFillColor(colors.HexColor("#444444"))
            _draw(self, MARGIN, 10 * mm, footer, 8.5)
            _draw(
                self,
                width - MARGIN,
                10 * mm,
                labels.page.format(page=self._pageNumber, pages=total),
                8.5,
                right=True,
            )

    return NumberedCanvas


def render_purchase_list(
    *,
    labels: Labels,
    generated_on: str,
    scope: str,
    sections: Sequence[Section],
    totals: Sequence[tuple[str, str, str]],
) -> bytes:
    """An A4 purchase list: title, date and scope, one table per site, then the totals per item."""
    _register_fonts()
    styles = _styles()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=labels.title,
        author="Lifeline",
        subject=scope,
    )
    story: list[Any] = [
        Paragraph(_markup(labels.title), styles["title"]),
        Paragraph(_markup(labels.generated.format(date=generated_on)), styles["meta"]),
        Paragraph(_markup(scope), styles["meta"]),
    ]
    for section in sections:
        # A site's heading never ends a page: keepWithNext moves it over with its table.
        story.append(Paragraph(_markup(section.heading), styles["heading"]))
        story.append(Paragraph(_markup(section.note), styles["note"]))
        if section.rows:
            story.append(_table(labels.columns, section.rows, styles, 2))
        else:
            story.append(Paragraph(_markup(labels.nothing_to_buy), styles["body"]))
    if totals:
        story.append(
            KeepTogether(
                [
                    Paragraph(_markup(labels.totals), styles["heading"]),
                    _table(labels.columns[:3], totals, styles, 2),
                ]
            )
        )
    document.build(story, canvasmaker=_numbered_canvas(labels, f"Lifeline · {labels.title} · {generated_on}"))
    return buffer.getvalue()
