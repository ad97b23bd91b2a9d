"""Demo data for the incidents part: a board for instructions, the management group, a few partner contacts and the
status page. Running it again adds only what is missing. All numbers are fictional (+81 90-0000-08xx) and all
addresses are on example.com.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core import db
from core.auth.models import User
from core.config import Settings
from core.directory.models import Organization
from incidents import status
from incidents.models import Board, Group, GroupMember, PartnerContact, PartnerKind, Post

BOARD_TITLE = "災害時の指示 / Instructions"
BOARD_PIN = (
    "【災害時の指示】まず身の安全を確保してください。安否確認が届いたら回答してください。"
    "出社の可否は上長の指示に従ってください。\n"
    "Instructions: stay safe first. Answer the safety check when it arrives. "
    "Follow your manager's instructions about coming to work."
)
GROUP_NAME = "経営陣 / Management team"
GROUP_EMAILS = ("crisis@example.com", "admin@example.com")
# kind, company, person, phone (E.164, fictional), e-mail, language
PARTNERS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("customer", "デモ商事株式会社", "山田 太郎", "+819000000801", "yamada@customer.example.com", "ja"),
    ("customer", "Example Retail K.K.", "Alex Smith", "+819000000802", "alex@retail.example.com", "en"),
    ("partner", "デモ通信サービス", "鈴木 花子", "+819000000803", "suzuki@telecom.example.com", "ja"),
    ("partner", "デモ設備保守", "佐藤 次郎", "+819000000804", "", "ja"),
    ("partner", "Demo Logistics", "Kim Lee", "", "kim@logistics.example.com", "en"),
)


def seed_incidents(org: Organization) -> dict[str, Any]:
    """Idempotent. Returns what was added, for the demo-data command to print."""
    added: dict[str, Any] = {"board": False, "group": False, "partners": 0, "status_page": False}
    users = {
        u.email: u
        for u in db.session.scalars(
            select(User).where(User.organization_id == org.id, User.email.in_(GROUP_EMAILS))
        )
    }
    admin = users.get("admin@example.com")
    board = db.session.scalar(
        select(Board).where(Board.organization_id == org.id, Board.title == BOARD_TITLE)
    )
    if board is None:
        board = Board(
            organization_id=org.id,
            title=BOARD_TITLE,
            description="災害時の会社からの指示と、従業員からの報告 / Instructions from the company and reports from staff",
            created_by_user_id=admin.id if admin else None,
        )
        db.session.add(board)
        db.session.flush()
        db.session.add(
            Post(
                board_id=board.id,
                user_id=admin.id if admin else None,
                author_name=admin.name if admin else "Lifeline",
                body=BOARD_PIN,
                pinned=True,
            )
        )
        added["board"] = True
    members = [users[e] for e in GROUP_EMAILS if e in users]
    group = db.session.scalar(select(Group).where(Group.organization_id == org.id, Group.name == GROUP_NAME))
    if group is None and members:
        group = Group(organization_id=org.id, name=GROUP_NAME, created_by_user_id=admin.id if admin else None)
        group.members = [GroupMember(user_id=u.id) for u in members]
        db.session.add(group)
        added["group"] = True
    existing = {
        (p.company, p.person)
        for p in db.session.scalars(select(PartnerContact).where(PartnerContact.organization_id == org.id))
    }
    for kind, company, person, phone, email, language in PARTNERS:
        if (company, person) in existing:
            continue
        db.session.add(
            PartnerContact(
                organization_id=org.id,
                kind=PartnerKind(kind),
                company=company,
                person=person,
                phone=phone,
                email=email,
                language=language,
            )
        )
        added["partners"] += 1
    if status.status_page_of(organization_id=org.id) is None:
        status.ensure_status_page(organization_id=org.id)
        added["status_page"] = True
    db.session.flush()
    return added


def seed_demo(org: Organization, *, settings: Settings) -> list[str]:
    """The demo-data hook: a board, the management group, partner contacts and the status page (idempotent)."""
    added = seed_incidents(org)
    if not any(added.values()):
        return []
    return [
        f"incident command: board {'added' if added['board'] else 'present'}, "
        f"{added['partners']} partner contacts, status page /status/{org.slug}"
    ]
