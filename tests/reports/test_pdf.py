"""The printed report, read back the way a person (or pdftotext) would read it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reports.document import format_duration
from reports.i18n_ja import MESSAGES
from reports.pdf import render_pdf
from tests.reports.sample import sample_report

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
    reason="poppler-utils (pdftotext, pdfinfo) is not installed: apt-get install poppler-utils",
)


def ja(message: str) -> str:
    return MESSAGES.get(message, message)


def text_of(pdf: bytes, tmp_path: Path, first: int | None = None, last: int | None = None) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    pages = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    done = subprocess.run(
        ["pdftotext", "-layout", *pages, str(path), "-"], capture_output=True, check=True, text=True
    )
    return done.stdout


def page_count(pdf: bytes, tmp_path: Path) -> int:
    path = tmp_path / "count.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True).stdout
    match = re.search(r"^Pages:\s+(\d+)", info, re.M)
    assert match, info
    return int(match.group(1))


def test_the_report_is_a_pdf():
    pdf = render_pdf(sample_report(), ja)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")


@needs_poppler
def test_japanese_report_shows_title_figures_and_departments(tmp_path):
    report = sample_report(language="ja")
    text = text_of(render_pdf(report, ja), tmp_path)
    squeezed = re.sub(r"\s+", "", text)
    assert "訓練報告書" in text and "Exercise report" in text
    assert "ISO22301§8.5" in squeezed
    assert re.sub(r"\s+", "", report.title) in squeezed
    assert report.organization in squeezed
    b = report.broadcast
    assert b is not None
    # Summary figures as printed.
    assert f"{b.answer_rate:.1f} %" in text
    assert str(b.recipients) in text and str(b.answered) in text
    assert format_duration(b.times[50], ja).replace(" ", "") in squeezed
    # Every department, in the chart and the table, with its counts.
    for group in b.by_department:
        assert group.name in text
        assert f"{group.answered} / {group.recipients}" in text
    # Japanese labels, not English ones.
    for label in ("安否確認の結果", "部署別の回答率", "是正処置", "作成者", "承認者", "回答率の推移"):
        assert label in squeezed, label
    assert "Safety call results" not in text


@needs_poppler
def test_every_page_has_its_number_out_of_the_total_and_the_footer(tmp_path):
    report = sample_report()
    pdf = render_pdf(report, ja)
    pages = page_count(pdf, tmp_path)
    assert 4 <= pages <= 12
    for page in range(1, pages + 1):
        text = text_of(pdf, tmp_path, page, page)
        assert re.search(rf"\b{page}\s*/\s*{pages}\b", text), f"page {page} has no 'n / N'"
        assert "Exercise report" in text  # the footer


@needs_poppler
def test_a_long_log_splits_across_pages_with_its_header_repeated(tmp_path):
    short = render_pdf(sample_report(log_lines=5), ja)
    long = render_pdf(sample_report(log_lines=400), ja)
    short_pages, long_pages = page_count(short, tmp_path), page_count(long, tmp_path)
    assert long_pages >= short_pages + 5
    log_header = re.compile(r"時刻\s+種類\s+実施者\s+内容")
    pages_with_header = [
        page for page in range(1, long_pages + 1) if log_header.search(text_of(long, tmp_path, page, page))
    ]
    assert len(pages_with_header) >= 5  # the table went on over several pages, each starting with its header
    assert "Observation 399" in text_of(long, tmp_path)  # nothing was cut off


@needs_poppler
def test_english_report_uses_english_labels(tmp_path):
    text = text_of(render_pdf(sample_report(language="en")), tmp_path)
    for label in (
        "Summary",
        "Safety call results",
        "Answer rate by department",
        "Prepared by",
        "Approved by",
    ):
        assert label in text
    assert "Time to 90 % answered" in text and "not reached" in text


@needs_poppler
def test_a_report_without_broadcast_or_failover_still_prints(tmp_path):
    report = sample_report()
    report.broadcast = None
    report.failover = None
    report.comparison = None
    report.timeline = []
    report.actions = []
    pdf = render_pdf(report, ja)
    text = text_of(pdf, tmp_path)
    assert "記録はありません" in text and "是正処置はありません" in text
    assert page_count(pdf, tmp_path) <= 3
