"""Every text of the drill screens, report and e-mails has its Japanese (Japanese is the default language)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from reports import labels
from reports.document import OUTCOME_LABELS
from reports.i18n_ja import MESSAGES

PACKAGE = Path(__file__).resolve().parents[2] / "reports"
TRANSLATING_CALLS = {"_", "tr", "gettext"}
TEMPLATE_CALL = re.compile(r"""\b_\(\s*(?:"([^"]+)"|'([^']+)')""")


def _python_messages() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            first = node.args[0]
            if name in TRANSLATING_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
    return found


def _template_messages() -> set[str]:
    found = set()
    for path in (PACKAGE / "templates").rglob("*.html"):
        for match in TEMPLATE_CALL.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(1) or match.group(2))
    return found


def test_every_message_has_a_japanese_translation():
    wanted = _python_messages() | _template_messages()
    for table in (
        labels.TYPE_LABELS,
        labels.SCENARIO_LABELS,
        labels.STATE_LABELS,
        labels.ENTRY_LABELS,
        labels.ACTION_LABELS,
        labels.KIND_LABELS,
        OUTCOME_LABELS,
    ):
        wanted |= set(table.values())
    wanted |= {label for label, _unit in labels.FIGURES.values()}
    assert len(wanted) > 150  # the extraction found the texts at all
    missing = sorted(m for m in wanted if m not in MESSAGES)
    assert missing == []


def test_placeholders_survive_translation():
    for english, japanese in MESSAGES.items():
        assert set(re.findall(r"\{(\w+)\}", english)) == set(re.findall(r"\{(\w+)\}", japanese)), english
