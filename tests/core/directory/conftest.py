from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core import db
from core.auth.models import Role, User
from core.directory.models import Department, Organization, Site
from tests.factories import make_department, make_org, make_site, make_user

STAFF_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "staff"


@dataclass
class World:
    """An organization with the three demo sites and a small department tree."""

    org: Organization
    tokyo: Site
    osaka: Site
    fukuoka: Site
    center: Department
    tokyo_desk: Department
    osaka_desk: Department
    admin: User


@pytest.fixture()
def world(db_session: Any) -> World:
    org = make_org()
    tokyo = make_site(org, code="TKY", prefecture="13", municipality="1310400", name="東京本社")
    osaka = make_site(org, code="OSA", prefecture="27", municipality="2712700", name="大阪コールセンター")
    fukuoka = make_site(org, code="FUK", prefecture="40", municipality="4013200", name="福岡コールセンター")
    center = make_department(org, "コールセンター本部")
    tokyo_desk = make_department(org, "東京受付", parent=center)
    osaka_desk = make_department(org, "大阪受付", parent=center)
    admin = make_user(org, Role.ADMIN)
    settle()
    return World(org, tokyo, osaka, fukuoka, center, tokyo_desk, osaka_desk, admin)


def settle() -> None:
    """Commit the setup (a savepoint inside the test's transaction), so a request that rolls back keeps it, and
    detach the objects, so that rollback cannot expire the attributes the test still reads."""
    db.session.commit()
    db.session.expunge_all()


def fixture_bytes(name: str) -> bytes:
    return (STAFF_FIXTURES / name).read_bytes()
