"""Dependencies point one way (docs/ARCHITECTURE.md): core imports no domain; only core.telephony imports twilio;
nothing imports dashboards; pure modules touch neither the database nor Flask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = {"ivr", "continuity", "stockpile", "incidents", "reports", "dashboards"}
PURE_MODULES = [
    "ivr/jma/parse.py",
    "ivr/jma/rules.py",
    "ivr/jma/feed.py",
    "ivr/ladder.py",
    "ivr/twiml.py",
    "continuity/routing.py",
    "stockpile/calculator.py",
    "reports/metrics.py",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).exists() else []


def test_core_imports_no_domain() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _python_files("core")
        for name in _imports(path)
        if name.split(".")[0] in DOMAINS
    ]
    assert offenders == []


def test_only_core_telephony_imports_twilio() -> None:
    offenders = []
    for package in ["core", *sorted(DOMAINS)]:
        for path in _python_files(package):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("core/telephony/"):
                continue
            if any(name.split(".")[0] == "twilio" for name in _imports(path)):
                offenders.append(rel)
    assert offenders == []


def test_nothing_imports_dashboards() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ["core", "ivr", "continuity", "stockpile", "incidents", "reports"]
        for path in _python_files(package)
        if any(name.split(".")[0] == "dashboards" for name in _imports(path))
    ]
    assert offenders == []


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_touch_neither_database_nor_flask(module: str) -> None:
    path = ROOT / module
    if not path.exists():
        pytest.skip(f"{module} not written yet")
    forbidden = {"flask", "sqlalchemy", "core.db", "requests", "twilio"}
    bad = {
        name for name in _imports(path) if name in forbidden or name.split(".")[0] in {"flask", "sqlalchemy"}
    }
    assert bad == set()
