"""Models and migrations agree, and every migration can be undone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from core import db
from core.cli import alembic_config
from core.models import load_all_models


@pytest.fixture()
def empty_database_url(tmp_path: Path) -> str:
    base = os.environ.get("LIFELINE_TEST_DATABASE_URL")
    if not base:
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    from sqlalchemy.engine import make_url

    url = make_url(base)
    name = f"{url.database or 'lifeline_test'}_migrations_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = db.make_engine(
        url.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def test_upgrade_matches_models_and_downgrade_removes_everything(empty_database_url: str) -> None:
    cfg = alembic_config(empty_database_url)
    command.upgrade(cfg, "head")
    engine = db.make_engine(empty_database_url)
    metadata = load_all_models()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"models and migrations disagree; run `lifeline db revision -m ...`: {diff}"

    command.downgrade(cfg, "base")
    with engine.connect() as conn:
        remaining = set(inspect(conn).get_table_names()) - {"alembic_version"}
    engine.dispose()
    assert remaining == set()
