"""Each test's writes vanish with it, even when the code under test commits (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core import db
from core.directory.models import Organization


@pytest.mark.parametrize("round_", [1, 2])
def test_a_committed_write_does_not_outlive_its_test(db_session, round_):
    assert (
        db.session.scalar(select(func.count()).select_from(Organization).where(Organization.slug == "leak"))
        == 0
    )
    db.session.add(Organization(slug="leak", name="written by a test"))
    db.session.commit()  # what a request or CLI command does
    with db.session.begin_nested():
        db.session.add(Organization(slug="leak-nested", name="nested"))
    db.session.commit()
    assert (
        db.session.scalar(select(func.count()).select_from(Organization).where(Organization.slug == "leak"))
        == 1
    )
