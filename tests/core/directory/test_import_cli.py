"""``lifeline staff import|export`` and the import service behind it, against the test database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core import db
from core.auth.models import AuditEntry
from core.directory import service
from core.directory.models import ContactKind, ContactPoint, Department, Staff
from tests.core.directory.conftest import World, fixture_bytes, settle
from tests.factories import make_staff


def staff_count(world: World) -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(Staff).where(Staff.organization_id == world.org.id)
        )
        or 0
    )


def employee_ids(world: World) -> list[str]:
    return list(
        db.session.scalars(
            select(Staff.employee_id).where(Staff.organization_id == world.org.id).order_by(Staff.employee_id)
        )
    )


def invoke(app: Flask, world: World, *args: str) -> Any:
    runner = app.test_cli_runner()
    return runner.invoke(args=[*args, "--organization", world.org.slug])


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_dry_run_shows_the_diff_and_changes_nothing(app: Flask, world: World, tmp_path: Path) -> None:
    path = write(tmp_path, "clean.csv", fixture_bytes("clean_utf8_bom.csv"))
    result = invoke(app, world, "staff", "import", path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "+ would add     T0001 青木 誠 (コールセンター本部, TKY)" in result.output
    assert "6 to add, 0 to change, 0 unchanged, 0 to remove, 0 bad rows" in result.output
    assert "dry run: nothing was changed" in result.output
    assert staff_count(world) == 0


def test_clean_import_applies_everything_with_managers_and_audit(
    app: Flask, world: World, tmp_path: Path
) -> None:
    path = write(tmp_path, "clean.csv", fixture_bytes("clean_utf8_bom.csv"))
    result = invoke(app, world, "staff", "import", path)
    assert result.exit_code == 0, result.output
    assert "imported: 6 added, 0 changed, 0 removed" in result.output
    people = {
        p.employee_id: p
        for p in db.session.scalars(select(Staff).where(Staff.organization_id == world.org.id))
    }
    assert sorted(people) == ["T0001", "T0002", "T0003", "T0004", "T0005", "T0006"]
    # T0003's manager comes later in the file than T0003 itself.
    assert people["T0003"].manager_id == people["T0005"].id
    assert people["T0004"].site_id == world.osaka.id
    assert people["T0004"].language.value == "en"
    assert people["T0001"].can_work_from_home is True
    phones = {
        c.value
        for c in db.session.scalars(select(ContactPoint).where(ContactPoint.kind == ContactKind.WORK_PHONE))
    }
    assert "+819000000201" in phones
    entry = db.session.scalar(
        select(AuditEntry).where(
            AuditEntry.organization_id == world.org.id, AuditEntry.action == "staff.import"
        )
    )
    assert entry is not None
    assert entry.detail["counts"]["added"] == 6
    assert entry.detail["source"] == "clean.csv"
    assert entry.detail["mode"] == "update"


def test_any_bad_row_means_nothing_is_applied(app: Flask, world: World, tmp_path: Path) -> None:
    path = write(tmp_path, "messy.csv", fixture_bytes("messy_sjis.csv"))
    result = invoke(app, world, "staff", "import", path)
    assert result.exit_code == 1
    assert "! line 6 (S1005): site: unknown site code NGY" in result.output
    assert "! line 5: employee_id: employee id is empty" in result.output
    assert "nothing was imported: 10 bad rows" in result.output
    assert staff_count(world) == 0


def test_dry_run_with_bad_rows_exits_1(app: Flask, world: World, tmp_path: Path) -> None:
    path = write(tmp_path, "messy.csv", fixture_bytes("messy_sjis.csv"))
    result = invoke(app, world, "staff", "import", path, "--dry-run")
    assert result.exit_code == 1
    assert "cp932" in result.output
    assert staff_count(world) == 0


def test_skip_invalid_applies_the_good_rows(app: Flask, world: World, tmp_path: Path) -> None:
    path = write(tmp_path, "messy.csv", fixture_bytes("messy_sjis.csv"))
    result = invoke(app, world, "staff", "import", path, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "imported: 4 added, 0 changed, 0 removed, 10 bad rows skipped" in result.output
    assert employee_ids(world) == ["S1001", "S1002", "S1003", "S1015"]
    takahashi = db.session.scalar(select(Staff).where(Staff.employee_id == "S1003"))
    assert takahashi is not None and takahashi.name == "髙橋 一郎"


def test_explicit_encoding(app: Flask, world: World, tmp_path: Path) -> None:
    path = write(tmp_path, "messy.csv", fixture_bytes("messy_sjis.csv"))
    wrong = invoke(app, world, "staff", "import", path, "--encoding", "utf-8", "--dry-run")
    assert wrong.exit_code == 2
    assert "not valid utf-8" in wrong.output
    right = invoke(app, world, "staff", "import", path, "--encoding", "Shift_JIS", "--dry-run")
    assert right.exit_code == 1  # readable, but it has bad rows


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("missing.csv", None, "cannot read"),
        ("bad-header.csv", "employee_id,氏名,給与\nA1,x,1\n".encode(), "unknown columns: 給与"),
        ("binary.csv", b"\x80\xff\xfe\xfd\x81\x00", "neither UTF-8 nor Shift_JIS"),
    ],
)
def test_unreadable_files_exit_2(
    app: Flask, world: World, tmp_path: Path, name: str, data: bytes | None, fragment: str
) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    result = invoke(app, world, "staff", "import", str(path))
    assert result.exit_code == 2
    assert fragment in result.output


def test_update_changes_only_the_fields_in_the_file(app: Flask, world: World, tmp_path: Path) -> None:
    make_staff(
        world.org,
        employee_id="T0001",
        name="青木 誠",
        site=world.tokyo,
        phone="+819000000201",
        email="old@example.com",
    )
    settle()
    path = write(
        tmp_path,
        "phones.csv",
        "社員番号,氏名,会社電話\r\nT0001,青木 誠,０９０－００００－０２９９\r\n".encode("cp932"),
    )
    result = invoke(app, world, "staff", "import", path)
    assert result.exit_code == 0, result.output
    assert "~ will change  T0001 青木 誠: work_phone: +819000000201 → +819000000299" in result.output
    person = db.session.scalar(select(Staff).where(Staff.employee_id == "T0001"))
    assert person is not None
    db.session.refresh(person)
    assert service.work_contacts(person) == {"work_phone": "+819000000299", "work_email": "old@example.com"}
    assert person.site_id == world.tokyo.id


def test_replace_mode_lists_removals_and_removes_only_when_applied(
    app: Flask, world: World, tmp_path: Path
) -> None:
    leaving = make_staff(
        world.org, employee_id="X0001", name="退職 予定", site=world.tokyo, phone="+819000000301"
    )
    make_staff(world.org, employee_id="T0001", name="青木 誠", site=world.tokyo)
    # Someone whose manager is leaving keeps their place, without a manager.
    stays = make_staff(
        world.org, employee_id="T0002", name="石井 陽子", site=world.tokyo, manager_id=leaving.id
    )
    settle()
    data = "employee_id,name\r\nT0001,青木 誠\r\nT0002,石井 陽子\r\n".encode()
    path = write(tmp_path, "all.csv", data)

    dry = invoke(app, world, "staff", "import", path, "--mode", "replace", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "- would remove  X0001 退職 予定" in dry.output
    assert employee_ids(world) == ["T0001", "T0002", "X0001"]

    update = invoke(app, world, "staff", "import", path)
    assert "X0001" not in update.output
    assert employee_ids(world) == ["T0001", "T0002", "X0001"]

    applied = invoke(app, world, "staff", "import", path, "--mode", "replace")
    assert applied.exit_code == 0, applied.output
    assert "1 removed" in applied.output
    assert employee_ids(world) == ["T0001", "T0002"]
    assert (
        db.session.scalar(
            select(func.count()).select_from(ContactPoint).where(ContactPoint.value == "+819000000301")
        )
        == 0
    )
    reloaded = db.session.get(Staff, stays.id)
    assert reloaded is not None
    db.session.refresh(reloaded)
    assert reloaded.manager_id is None
    removal = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "staff.remove"))
    assert removal is not None and removal.target_id == "X0001"


def test_replace_mode_never_removes_someone_whose_row_is_bad(
    app: Flask, world: World, tmp_path: Path
) -> None:
    make_staff(world.org, employee_id="T0001", name="青木 誠")
    make_staff(world.org, employee_id="T0002", name="石井 陽子")
    settle()
    path = write(
        tmp_path, "typo.csv", "employee_id,name,site\r\nT0001,青木 誠,TKY\r\nT0002,石井 陽子,TYK\r\n".encode()
    )
    result = invoke(app, world, "staff", "import", path, "--mode", "replace", "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "0 removed" in result.output
    assert employee_ids(world) == ["T0001", "T0002"]


def test_new_departments_are_created(app: Flask, world: World, tmp_path: Path) -> None:
    path = write(tmp_path, "dept.csv", "employee_id,name,department\r\nQ1,品質 一郎,品質管理部\r\n".encode())
    result = invoke(app, world, "staff", "import", path)
    assert result.exit_code == 0, result.output
    assert "* will create department 品質管理部" in result.output
    department = db.session.scalar(
        select(Department).where(Department.organization_id == world.org.id, Department.name == "品質管理部")
    )
    assert department is not None


def test_export_then_import_changes_nothing(app: Flask, world: World, tmp_path: Path) -> None:
    invoke(app, world, "staff", "import", write(tmp_path, "clean.csv", fixture_bytes("clean_utf8_bom.csv")))
    out = tmp_path / "export.csv"
    exported = invoke(app, world, "staff", "export", str(out))
    assert exported.exit_code == 0, exported.output
    assert "6 people written" in exported.output
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    again = invoke(app, world, "staff", "import", str(out), "--mode", "replace", "--dry-run")
    assert again.exit_code == 0, again.output
    assert "0 to add, 0 to change, 6 unchanged, 0 to remove, 0 bad rows" in again.output
