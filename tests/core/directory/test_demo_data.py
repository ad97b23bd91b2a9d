"""``lifeline demo-data``: the fictional company, and that running it twice changes nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core import crypto, db
from core.auth.models import ApiToken, AuditEntry, Role, User
from core.auth.service import authenticate, principal_for
from core.directory import demo, service
from core.directory.models import ContactKind, ContactPoint, Department, Organization, Site, Staff


def counts() -> dict[str, int]:
    def n(model: Any) -> int:
        return db.session.scalar(select(func.count()).select_from(model)) or 0

    return {
        "organizations": n(Organization),
        "sites": n(Site),
        "departments": n(Department),
        "staff": n(Staff),
        "contacts": n(ContactPoint),
        "users": n(User),
        "tokens": n(ApiToken),
        "audit": n(AuditEntry),
    }


def run(app: Flask) -> Any:
    return app.test_cli_runner().invoke(args=["demo-data"])


def demo_org() -> Organization:
    org = db.session.scalar(select(Organization).where(Organization.slug == "demo"))
    assert org is not None
    return org


def test_demo_data_twice_changes_nothing(app: Flask, db_session: Any) -> None:
    first = run(app)
    assert first.exit_code == 0, first.output
    assert "3 sites, 8 departments, 300 staff added" in first.output
    after_first = counts()
    credentials = app.extensions["lifeline.settings"].instance_dir / demo.CREDENTIALS_FILE
    text = credentials.read_text(encoding="utf-8")

    second = run(app)
    assert second.exit_code == 0, second.output
    assert "nothing changed" in second.output
    assert counts() == after_first
    assert credentials.read_text(encoding="utf-8") == text
    assert after_first["staff"] == 300
    assert after_first["sites"] == 3
    assert after_first["departments"] == 8


def test_demo_company_shape(app: Flask, db_session: Any) -> None:
    assert run(app).exit_code == 0
    org = demo_org()
    assert org.name == "Lifeline デモ株式会社"
    sites = {s.code: s for s in service.sites_of(organization_id=org.id)}
    assert {code: (s.prefecture_code, s.municipality_code) for code, s in sites.items()} == {
        "TKY": ("13", "1310400"),  # 新宿区, as in the JMA heavy-rain sample
        "OSA": ("27", "2712700"),
        "FUK": ("40", "4013200"),
    }
    departments = {d.name: d for d in service.departments_of(organization_id=org.id)}
    center = departments["コールセンター本部"]
    assert {d.name for d in departments.values() if d.parent_id == center.id} == {
        "東京受付",
        "大阪受付",
        "福岡受付",
    }

    people = db.session.scalars(select(Staff).where(Staff.organization_id == org.id)).all()
    by_site = Counter(p.site.code for p in people if p.site)
    assert by_site["TKY"] > by_site["OSA"] > 0 and by_site["FUK"] > 0
    assert sum(by_site.values()) == 300
    english = [p for p in people if p.language.value == "en"]
    assert 5 <= len(english) <= 20
    wfh = sum(p.can_work_from_home for p in people)
    assert 60 <= wfh <= 120
    assert sorted(p.employee_id for p in people if p.hide_from_answer_views) == ["E0001", "E0002", "E0003"]
    tokyo_homes = Counter(p.home_prefecture for p in people if p.site and p.site.code == "TKY")
    assert tokyo_homes.most_common(1)[0][0] == "13"
    assert {"11", "12", "14"} <= set(tokyo_homes)
    assert sum(1 for p in people if p.manager_id is None) == 1  # only the president

    records = service.staff_records(organization_id=org.id)
    phones = sorted(r.work_phone for r in records.values())
    assert phones[0] == "+819000000001" and phones[-1] == "+819000000300"
    assert all(r.work_email.endswith("@example.com") for r in records.values())
    assert len({r.work_email for r in records.values()}) == 300


def test_demo_private_contacts_are_encrypted(app: Flask, db_session: Any) -> None:
    assert run(app).exit_code == 0
    private = db.session.scalars(
        select(ContactPoint).where(ContactPoint.kind == ContactKind.PRIVATE_PHONE)
    ).all()
    assert len(private) == len(demo.PRIVATE_PHONES)
    key = app.extensions["lifeline.settings"].encryption_key
    assert all(c.value is None and c.verified_at is not None for c in private)
    assert sorted(crypto.decrypt(c.value_encrypted, key) for c in private) == sorted(
        demo.PRIVATE_PHONES.values()
    )


def test_demo_users_can_sign_in_with_the_written_passwords(app: Flask, db_session: Any) -> None:
    assert run(app).exit_code == 0
    credentials = app.extensions["lifeline.settings"].instance_dir / demo.CREDENTIALS_FILE
    passwords, token = demo.read_credentials(credentials)
    assert set(passwords) == {email for email, *_ in demo.USERS}
    assert token is not None and token.startswith("llt_")
    for line in credentials.read_text(encoding="utf-8").splitlines()[:1]:
        assert line.startswith("admin@example.com") and line.endswith("(system admin)")
    user = authenticate(
        email="osaka.manager@example.com", password=passwords["osaka.manager@example.com"], ip=None
    )
    principal = principal_for(user)
    osaka = db.session.scalar(select(Site).where(Site.code == "OSA", Site.organization_id == demo_org().id))
    assert osaka is not None
    assert principal.scope_ids(Role.MANAGER) is not None
    visible = db.session.scalars(select(Staff.site_id).where(principal.staff_filter(Role.MANAGER))).all()
    assert visible and set(visible) == {osaka.id}
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"


def test_demo_data_passes_its_own_import_round_trip(app: Flask, db_session: Any) -> None:
    assert run(app).exit_code == 0
    org = demo_org()
    exported = service.export_csv(organization_id=org.id)
    plan = service.plan_csv_import(organization_id=org.id, data=exported, mode="replace")
    assert plan.errors == ()
    assert plan.diff.counts == {
        "added": 0,
        "changed": 0,
        "unchanged": 300,
        "removed": 0,
        "departments_created": 0,
    }


def test_demo_scenario_scripts_the_demo_staff_for_the_simulator() -> None:
    scenario_module = pytest.importorskip("core.telephony.simulator.scenario")
    path = Path(demo.__file__).with_name("demo_scenario.yaml")
    scenario = scenario_module.Scenario.load(path)
    people = [scenario.person(r.work_phone) for r in demo.demo_staff()]
    voices = Counter(p.voice for p in people)
    # A demo broadcast meets people who answer and people who do not.
    assert voices["answer"] > 0 and sum(voices.values()) - voices["answer"] > 0
