"""Imports every model module so metadata is complete (for Alembic, create_all and the drift test).

Every ``models.py`` inside a part (``ivr/models.py``, ``ivr/jma/models.py`` …) is found by walking the packages.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sqlalchemy import MetaData

from core.config import PROJECT_ROOT


def _model_modules(package: str) -> list[str]:
    root = PROJECT_ROOT / package
    if not root.is_dir():
        return []
    modules = []
    for path in sorted(root.rglob("models.py")):
        relative = path.relative_to(PROJECT_ROOT).with_suffix("")
        if relative.parts != ("core", "models") and all(
            (PROJECT_ROOT / Path(*relative.parts[:i]) / "__init__.py").exists()
            for i in range(1, len(relative.parts))
        ):
            modules.append(".".join(relative.parts))
    return modules


def load_all_models() -> MetaData:
    from core.app import PARTS
    from core.db import Base

    for package in ("core", *PARTS):
        for module in _model_modules(package):
            importlib.import_module(module)
    return Base.metadata
