"""The purchase-list PDF itself: A4, Japanese text readable, page numbers right on every page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stockpile.pdf import Labels, Section, render_purchase_list

LABELS = Labels(
    title="備蓄品 購入リスト",
    generated="作成日 {date}",
    columns=("品目", "単位", "購入数量", "理由"),
    totals="品目別合計",
    nothing_to_buy="購入の必要はありません。",
    page="{page} / {pages} ページ",
)
ROWS = [("飲料水", "L", "1,500", "不足分"), ("毛布", "個", "110", "2027-03-31までに期限切れとなる在庫の入替")]


def render(sections: list[Section]) -> bytes:
    return render_purchase_list(
        labels=LABELS,
        generated_on="2026-04-01",
        scope="全拠点",
        sections=sections,
        totals=[("飲料水", "L", "1,500")],
    )


def text_of(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: cannot read the PDF's text")
    path = tmp_path / "out.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout


def test_a_valid_a4_pdf_without_embedded_fonts() -> None:
    data = render([Section("TKY 東京本社", "対象 110 人 × 3 日", ROWS)])
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert re.search(rb"/MediaBox \[ ?0 0 595\.27\d* 841\.88\d* ?\]", data)
    assert b"HeiseiKakuGo-W5" in data
    assert b"/FontFile" not in data  # CID fonts come with the reader; nothing is embedded


def test_text_can_be_read_back(tmp_path: Path) -> None:
    text = text_of(
        render([Section("TKY 東京本社", "対象 110 人 × 3 日", [*ROWS, ("手袋", "組", "5", "A & B <C>")])]),
        tmp_path,
    )
    for expected in (
        "備蓄品 購入リスト",
        "作成日 2026-04-01",
        "TKY 東京本社",
        "飲料水",
        "1,500",
        "品目別合計",
        "A & B <C>",
    ):
        assert expected in text


def test_every_page_is_numbered_with_the_total(tmp_path: Path) -> None:
    sections = [Section(f"S{i:02d} 拠点", "対象 110 人 × 3 日", ROWS * 6) for i in range(12)]
    pages = text_of(render(sections), tmp_path).split("\f")
    pages = [page for page in pages if page.strip()]
    assert len(pages) > 1
    for number, page in enumerate(pages, start=1):
        assert f"{number} / {len(pages)} ページ" in page


def test_a_site_with_nothing_to_buy_says_so(tmp_path: Path) -> None:
    assert "購入の必要はありません。" in text_of(
        render([Section("OSA 大阪", "対象 22 人 × 3 日", [])]), tmp_path
    )
