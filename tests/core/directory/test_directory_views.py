"""The directory screens: who sees whom, search and filters, the edit form, navigation, Japanese."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.models import AuditEntry, Role
from core.directory import service
from core.directory.models import Staff
from tests.core.directory.conftest import World, settle
from tests.factories import login, make_department, make_staff, make_user, post_form


@pytest.fixture()
def people(world: World) -> dict[str, Staff]:
    made = {
        "tokyo": make_staff(
            world.org,
            employee_id="T001",
            name="山田 太郎",
            name_kana="ヤマダ タロウ",
            site=world.tokyo,
            department=world.tokyo_desk,
            phone="+819000000011",
            email="taro.yamada@example.com",
            can_work_from_home=True,
        ),
        "osaka": make_staff(
            world.org,
            employee_id="O001",
            name="大阪 花子",
            name_kana="オオサカ ハナコ",
            site=world.osaka,
            department=world.osaka_desk,
            phone="+819000000012",
        ),
        "hq": make_staff(
            world.org, employee_id="H001", name="本部 一郎", site=world.tokyo, department=world.center
        ),
    }
    settle()
    return made


def listed_ids(html: str) -> list[str]:
    return re.findall(r'data-label="Employee ID">([^<]+)<', html)


@pytest.mark.parametrize(
    ("role", "status"),
    [(Role.MANAGER, 200), (Role.CRISIS_MANAGER, 200), (Role.FACILITIES, 403), (Role.SUPERVISOR, 403)],
)
def test_roles_that_may_view_the_directory(
    client: FlaskClient, world: World, people: dict[str, Staff], role: Role, status: int
) -> None:
    user = make_user(world.org, role)
    settle()
    login(client, user)
    assert client.get("/staff").status_code == status
    assert client.get(f"/staff/{people['tokyo'].id}").status_code == (200 if status == 200 else 403)


def test_anonymous_visitors_are_sent_to_sign_in(client: FlaskClient, world: World) -> None:
    response = client.get("/staff")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_list_shows_work_contacts_and_nav(
    client: FlaskClient, world: World, people: dict[str, Staff]
) -> None:
    login(client, world.admin)
    page = client.get("/staff")
    assert page.status_code == 200
    assert listed_ids(page.text) == ["H001", "O001", "T001"]
    assert "+81 90-0000-0011" in page.text
    assert "taro.yamada@example.com" in page.text
    assert 'href="/staff"' in page.text and "Staff directory" in page.text
    assert 'href="/staff/import"' in page.text  # admins get the import entry


def test_osaka_scoped_manager_sees_only_osaka(
    client: FlaskClient, world: World, people: dict[str, Staff]
) -> None:
    manager = make_user(world.org, Role.MANAGER, sites=[world.osaka])
    settle()
    login(client, manager)
    page = client.get("/staff")
    assert listed_ids(page.text) == ["O001"]
    assert "山田" not in page.text
    assert client.get(f"/staff/{people['osaka'].id}").status_code == 200
    assert client.get(f"/staff/{people['tokyo'].id}").status_code == 404
    # Filters cannot widen the scope either.
    assert listed_ids(client.get(f"/staff?site={world.tokyo.id}").text) == []
    assert 'href="/staff/import"' not in page.text
    assert client.get("/staff/import").status_code == 403
    assert client.get("/staff/export.csv").status_code == 403


def test_department_scope_includes_sub_departments(
    client: FlaskClient, world: World, people: dict[str, Staff]
) -> None:
    night = make_department(world.org, "東京受付 夜間", parent=world.tokyo_desk)
    make_staff(world.org, employee_id="T002", name="夜勤 次郎", site=world.tokyo, department=night)
    manager = make_user(world.org, Role.MANAGER, departments=[world.tokyo_desk])
    settle()
    login(client, manager)
    assert listed_ids(client.get("/staff").text) == ["T001", "T002"]
    assert client.get(f"/staff/{people['hq'].id}").status_code == 404


def test_other_organizations_are_invisible(
    client: FlaskClient, world: World, people: dict[str, Staff]
) -> None:
    from tests.factories import make_org

    other = make_org()
    outsider = make_user(other, Role.ADMIN)
    settle()
    login(client, outsider)
    assert listed_ids(client.get("/staff").text) == []
    assert client.get(f"/staff/{people['tokyo'].id}").status_code == 404
    assert client.get(f"/staff/{people['tokyo'].id}/self-service-card").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=山田", ["T001"]),
        ("q=山田太郎", ["T001"]),
        ("q=やまだ", ["T001"]),
        ("q=ヤマダ タロウ", ["T001"]),
        ("q=o001", ["O001"]),
        ("q=Ｏ００１", ["O001"]),
        ("q=nobody", []),
        ("wfh=yes", ["T001"]),
        ("wfh=no", ["H001", "O001"]),
    ],
)
def test_search_and_filters(
    client: FlaskClient, world: World, people: dict[str, Staff], query: str, expected: list[str]
) -> None:
    login(client, world.admin)
    assert listed_ids(client.get(f"/staff?{query}").text) == expected


def test_site_and_department_filters(client: FlaskClient, world: World, people: dict[str, Staff]) -> None:
    login(client, world.admin)
    assert listed_ids(client.get(f"/staff?site={world.osaka.id}").text) == ["O001"]
    # A department includes its sub-departments.
    assert listed_ids(client.get(f"/staff?department={world.center.id}").text) == ["H001", "O001", "T001"]
    assert listed_ids(client.get(f"/staff?department={world.tokyo_desk.id}").text) == ["T001"]


def test_pagination(client: FlaskClient, world: World) -> None:
    for n in range(60):
        make_staff(world.org, employee_id=f"P{n:03d}", name=f"職員 {n}", site=world.tokyo)
    settle()
    login(client, world.admin)
    first = client.get("/staff")
    assert len(listed_ids(first.text)) == 50
    assert "page 1 of 2" in first.text
    second = client.get("/staff?page=2")
    assert listed_ids(second.text) == [f"P{n:03d}" for n in range(50, 60)]


def test_detail_page(client: FlaskClient, world: World, people: dict[str, Staff]) -> None:
    boss = people["hq"]
    person = db.session.get(Staff, people["tokyo"].id)
    assert person is not None
    person.manager_id = boss.id
    settle()
    login(client, world.admin)
    page = client.get(f"/staff/{person.id}")
    assert page.status_code == 200
    assert "ヤマダ タロウ" in page.text
    assert "本部 一郎" in page.text
    assert "+81 90-0000-0011" in page.text
    assert "No private or family contact registered yet" in page.text
    assert client.get("/staff/999999").status_code == 404


def test_admin_edits_a_person_with_the_import_checks(
    client: FlaskClient, world: World, people: dict[str, Staff]
) -> None:
    login(client, world.admin)
    person_id = people["tokyo"].id
    response = post_form(
        client,
        f"/staff/{person_id}/edit",
        name="山田 太郎",
        name_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
        department="東京受付",
        site="OSA",
        work_phone="０９０－００００－００９９",
        work_email="taro.yamada@example.com",
        home_prefecture="14",
        language="en",
        manager_employee_id="H001",
        hide_from_answer_views="yes",
    )
    assert response.status_code == 302, response.text
    person = db.session.get(Staff, person_id)
    assert person is not None
    db.session.refresh(person)
    assert person.site_id == world.osaka.id
    assert person.name_kana == "ヤマダ タロウ"
    assert service.work_contacts(person)["work_phone"] == "+819000000099"
    assert person.can_work_from_home is False  # unchecked box
    assert person.hide_from_answer_views is True
    assert person.manager_id == people["hq"].id
    assert (
        db.session.scalar(select(AuditEntry.action).where(AuditEntry.action == "staff.edit")) == "staff.edit"
    )


def test_edit_form_shows_errors(client: FlaskClient, world: World, people: dict[str, Staff]) -> None:
    login(client, world.admin)
    response = post_form(
        client,
        f"/staff/{people['tokyo'].id}/edit",
        name="山田 太郎",
        work_phone="12",
        work_email="nope",
        site="TKY",
    )
    assert response.status_code == 422
    assert "invalid phone number 12" in response.text
    assert "invalid e-mail address nope" in response.text
    assert 'aria-invalid="true"' in response.text


def test_admin_adds_a_person_and_cannot_reuse_an_employee_id(
    client: FlaskClient, world: World, people: dict[str, Staff]
) -> None:
    login(client, world.admin)
    created = post_form(client, "/staff/new", employee_id="N001", name="新人 三郎", site="FUK", language="ja")
    assert created.status_code == 302
    assert db.session.scalar(select(Staff.name).where(Staff.employee_id == "N001")) == "新人 三郎"
    again = post_form(client, "/staff/new", employee_id="T001", name="別人", language="ja")
    assert again.status_code == 422
    assert "already in the directory" in again.text


def test_managers_cannot_edit(client: FlaskClient, world: World, people: dict[str, Staff]) -> None:
    manager = make_user(world.org, Role.MANAGER)
    settle()
    login(client, manager)
    assert client.get(f"/staff/{people['tokyo'].id}/edit").status_code == 403
    assert client.get("/staff/new").status_code == 403
    assert client.get(f"/staff/{people['tokyo'].id}/self-service-card").status_code == 403


def test_pages_in_japanese(client: FlaskClient, world: World, people: dict[str, Staff]) -> None:
    user = make_user(world.org, Role.ADMIN, language="ja")
    settle()
    login(client, user)
    page = client.get("/staff")
    assert "職員名簿" in page.text
    assert "個人連絡先 未登録" in page.text
    assert "Staff directory" not in page.text
    assert "氏名カナ" in client.get(f"/staff/{people['tokyo'].id}").text
    assert "取り込み方法" in client.get("/staff/import").text


def test_export_download(client: FlaskClient, world: World, people: dict[str, Staff]) -> None:
    login(client, world.admin)
    response = client.get("/staff/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    text = response.data.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("employee_id,name,name_kana")
    assert "T001,山田 太郎,ヤマダ タロウ,東京受付,TKY,+819000000011" in text
