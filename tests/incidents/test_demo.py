"""The demo data of the incidents part: what a new user finds, added once."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from core import db
from core.auth.models import Role
from incidents import status
from incidents.demo import seed_incidents
from incidents.models import Board, Group, PartnerContact, Post
from tests.factories import make_org, make_site, make_user

FICTIONAL_PHONE = re.compile(r"^(\+819000000\d{3}|\+1555010\d{2}|\+15550199)$")


def test_seed_incidents_is_idempotent(db_session: Any) -> None:
    org = make_org(name="Lifeline デモ株式会社")
    make_site(org, code="TKY", name="東京本社")
    crisis = make_user(org, Role.CRISIS_MANAGER, email="crisis@example.com")
    admin = make_user(org, Role.ADMIN, email="admin@example.com")

    first = seed_incidents(org)
    assert first == {"board": True, "group": True, "partners": 5, "status_page": True}
    board = db.session.scalars(select(Board).where(Board.organization_id == org.id)).one()
    assert board.title == "災害時の指示 / Instructions" and board.created_by_user_id == admin.id
    (pinned,) = db.session.scalars(select(Post).where(Post.board_id == board.id)).all()
    assert pinned.pinned
    group = db.session.scalars(select(Group).where(Group.organization_id == org.id)).one()
    assert {m.user_id for m in group.members} == {crisis.id, admin.id}
    partners = db.session.scalars(
        select(PartnerContact).where(PartnerContact.organization_id == org.id)
    ).all()
    assert all(FICTIONAL_PHONE.match(p.phone) for p in partners if p.phone)
    assert all(p.email.endswith("example.com") for p in partners if p.email)
    page = status.status_page_of(organization_id=org.id)
    assert page is not None and page.announcement_ja == "通常営業中"

    assert seed_incidents(org) == {"board": False, "group": False, "partners": 0, "status_page": False}
    assert (
        len(db.session.scalars(select(PartnerContact).where(PartnerContact.organization_id == org.id)).all())
        == 5
    )
