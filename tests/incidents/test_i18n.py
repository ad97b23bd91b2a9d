"""Every text the incidents screens show has its Japanese translation (the UI defaults to Japanese)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from incidents.i18n_ja import MESSAGES
from incidents.labels import LABELS
from incidents.status import STATE_TEXT

PACKAGE = Path(__file__).resolve().parents[2] / "incidents"
_TEMPLATE_TEXT = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
_PY_TEXT = re.compile(
    r"""(?:(?<![\w.])_\(|raise (?:ValidationError|NotFound|Forbidden|Conflict|AttachmentRefused)\(|message=|done=)\s*"((?:[^"\\]|\\.)+)\""""
)
_FIGURE = re.compile(r'^\s*\("\w+", "([^"]+)", ', re.MULTILINE)


def _texts() -> set[str]:
    found: set[str] = set()
    for path in (PACKAGE / "templates").rglob("*.html"):
        for match in _TEMPLATE_TEXT.finditer(path.read_text(encoding="utf-8")):
            found.add((match.group(1) or match.group(2) or "").replace('\\"', '"'))
    for path in PACKAGE.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found.update(m.group(1) for m in _PY_TEXT.finditer(source))
        if path.name == "service.py":
            found.update(_FIGURE.findall(source))
    found.update(LABELS.values())
    found.update(STATE_TEXT.values())
    found.discard("")
    return found


def test_the_scan_finds_the_texts() -> None:
    texts = _texts()
    assert {
        "Declare an incident",
        "Only photos (JPEG, PNG) and PDF files can be attached.",
        "Answer rate (%)",
    } <= texts
    assert len(texts) > 150


@pytest.mark.parametrize("text", sorted(_texts()))
def test_every_text_has_japanese(text: str) -> None:
    assert text in MESSAGES, text
    assert MESSAGES[text].strip()
    # Placeholders survive translation.
    assert set(re.findall(r"\{\w+\}", text)) == set(re.findall(r"\{\w+\}", MESSAGES[text]))
