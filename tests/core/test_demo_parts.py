"""`lifeline demo-data` loads every part's demo too, once: routing lines, stockpile lots, broadcast templates."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from continuity.models import InboundLine
from core import db
from core.directory.demo import ORG_SLUG
from core.directory.models import Organization
from ivr.models import BroadcastTemplate
from stockpile.models import StockLot


def _counts() -> dict[str, int]:
    def n(model: Any) -> int:
        return db.session.scalar(select(func.count()).select_from(model)) or 0

    return {"lines": n(InboundLine), "lots": n(StockLot), "templates": n(BroadcastTemplate)}


def test_demo_data_seeds_each_part_once(app: Flask, db_session: Any) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo-data"])
    assert first.exit_code == 0, first.output
    assert "routing: 3 inbound lines" in first.output
    assert "stockpile: 19 inventory lots" in first.output
    after_first = _counts()
    assert after_first["lines"] == 3
    assert after_first["lots"] == 19
    assert after_first["templates"] >= 6
    org = db.session.scalar(select(Organization).where(Organization.slug == ORG_SLUG))
    assert org is not None

    second = runner.invoke(args=["demo-data"])
    assert second.exit_code == 0, second.output
    assert "routing:" not in second.output and "stockpile:" not in second.output
    assert _counts() == after_first

    tokens = app.extensions["lifeline.settings"].instance_dir / "demo_site_tokens.json"
    assert tokens.exists()
    assert set(json.loads(tokens.read_text())) == {"TKY", "OSA", "FUK"}
