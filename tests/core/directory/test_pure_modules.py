"""The directory's pure modules work on plain values: no database, no Flask (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DIRECTORY = Path(__file__).resolve().parents[3] / "core" / "directory"


@pytest.mark.parametrize("module", ["importer.py", "prefectures.py", "openapi.py"])
def test_pure_modules_touch_neither_database_nor_flask(module: str) -> None:
    tree = ast.parse((DIRECTORY / module).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = {
        name
        for name in imported
        if name.split(".")[0] in {"flask", "sqlalchemy", "requests", "twilio"}
        or name in {"core.db", "core.directory.models"}
    }
    assert forbidden == set()
