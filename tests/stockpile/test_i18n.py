"""Every stockpile text a person can see has a Japanese translation (Japanese is the default language)."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

from stockpile.calculator import DEFAULT_ITEMS, RateKind
from stockpile.i18n import MESSAGES
from stockpile.service import SUGGESTED_ITEMS

PACKAGE = Path(__file__).resolve().parents[2] / "stockpile"
# Calls whose first argument is a message id.
MESSAGE_CALLS = {"_", "translate", "gettext", "_invalid", "RowProblem", "CellError"}


def _template_messages() -> set[str]:
    found: set[str] = set()
    for path in (PACKAGE / "templates").rglob("*.html"):
        found.update(re.findall(r'_\(\s*"((?:[^"\\]|\\.)*)"', path.read_text(encoding="utf-8")))
    return found


def _code_messages() -> set[str]:
    found: set[str] = set()
    for name in ("views.py", "cli.py", "service.py", "importer.py"):
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called in MESSAGE_CALLS:
                    found.update(
                        arg.value
                        for arg in node.args[:2]
                        if isinstance(arg, ast.Constant)
                        and isinstance(arg.value, str)
                        and not arg.value.isdigit()
                    )
            # Problems collected as (message id, parameters) pairs.
            elif (
                isinstance(node, ast.Tuple)
                and len(node.elts) == 2
                and isinstance(node.elts[0], ast.Constant)
                and isinstance(node.elts[0].value, str)
                and isinstance(node.elts[1], ast.Dict)
            ):
                found.add(node.elts[0].value)
    return found - {"{problem}"}  # the calculator's own English check messages, passed through


def test_the_scan_finds_messages() -> None:
    # Guards the test itself: a broken scan would find nothing and pass.
    assert {
        "Stockpile",
        "unknown site {code}",
        "quantity must be more than zero",
    } <= _template_messages() | _code_messages()


def test_every_message_has_japanese() -> None:
    missing = sorted((_template_messages() | _code_messages()) - set(MESSAGES))
    assert missing == []


def test_translations_keep_the_placeholders() -> None:
    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    assert [message for message, japanese in MESSAGES.items() if fields(japanese) != fields(message)] == []


def test_units_and_rate_kinds_of_the_standard_catalogue_are_translated() -> None:
    for item in (*DEFAULT_ITEMS, *SUGGESTED_ITEMS):
        assert item.unit in MESSAGES
    for kind in RateKind:
        assert kind.value in MESSAGES
