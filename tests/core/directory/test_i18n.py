"""Every text on the kernel's and the directory's screens, and every import problem, has a Japanese version."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core.directory import views
from core.i18n_ja import MESSAGES

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_DIR = ROOT / "core" / "templates"
TEMPLATES = sorted(
    [
        *(TEMPLATE_DIR / "directory").glob("*.html"),
        *(TEMPLATE_DIR / "auth").glob("*.html"),
        TEMPLATE_DIR / "base.html",
        TEMPLATE_DIR / "error.html",
    ]
)
_CALL = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def template_messages(path: Path) -> set[str]:
    return {
        (a if a else b).replace('\\"', '"')
        for a, b in _CALL.findall(path.read_text(encoding="utf-8"))
        if a or b
    }


def python_messages(path: Path) -> set[str]:
    """String literals that reach the screen: ``_("…")`` calls, error messages of the importer and services."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if name in {"_", "FileError", "_Bad", "ValidationError", "NotFound"} and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
            elif isinstance(first, ast.IfExp):
                found |= {b.value for b in (first.body, first.orelse) if isinstance(b, ast.Constant)}
        for keyword in node.keywords:
            if name == "RowError" and keyword.arg == "message":
                value = keyword.value
                options = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
                found |= {
                    v.value for v in options if isinstance(v, ast.Constant) and isinstance(v.value, str)
                }
    return found


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_templates_are_translated(template: Path) -> None:
    missing = sorted(template_messages(template) - set(MESSAGES))
    assert missing == []


@pytest.mark.parametrize(
    "module", ["importer.py", "views.py", "service.py", "__init__.py"], ids=lambda name: f"directory/{name}"
)
def test_messages_from_code_are_translated(module: str) -> None:
    messages = python_messages(ROOT / "core" / "directory" / module)
    # Raised for the CLI only, never shown on a page.
    cli_only = {
        "several organizations: choose one with --organization",
        "no organization yet: run `lifeline demo-data`",
    }
    assert sorted(messages - cli_only - set(MESSAGES)) == []


def test_labels_used_by_name_are_translated() -> None:
    labels = {
        *views.FIELD_LABELS.values(),
        *views.KIND_LABELS.values(),
        *(label for _, label in views.ENCODING_CHOICES),
    }
    labels |= {"Staff directory", "Import staff", "Private contacts", "Family contacts"}
    assert sorted(labels - set(MESSAGES)) == []


def test_placeholders_survive_translation() -> None:
    for english, japanese in MESSAGES.items():
        assert set(re.findall(r"{(\w+)}", english)) == set(re.findall(r"{(\w+)}", japanese)), english
