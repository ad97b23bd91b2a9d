"""``lifeline stockpile …`` as an operator runs it: plan, status, import and purchase lists."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core import db
from core.directory.models import Organization
from stockpile import service
from stockpile.models import StockLot
from tests.factories import make_org, make_site, make_staff
from tests.stockpile.conftest import TODAY, TwoSites, add_staff


def run(app: Flask, *args: str, org: Organization | None = None) -> Any:
    # Naming the organization keeps these tests independent of any other rows in the database.
    extra = ["--organization", org.slug] if org is not None else []
    return app.test_cli_runner().invoke(args=["stockpile", *args, *extra], catch_exceptions=False)


def plan_json(app: Flask, *args: str, org: Organization | None = None) -> dict[str, Any]:
    result = run(app, "plan", *args, "--json", org=org)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def quantities(plan: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {row["item"]: (row["quantity"], row["unit"]) for row in plan["items"]}


@pytest.mark.parametrize(
    ("args", "water", "food", "toilet", "blankets"),
    [
        (["--headcount", "100"], 900, 900, 1500, 100),
        (["--headcount", "100", "--visitors", "0.1"], 990, 990, 1650, 110),
        (["--headcount", "100", "--visitors", "10%"], 990, 990, 1650, 110),
        (["--headcount", "100", "--days", "7"], 2100, 2100, 3500, 100),
        (["--headcount", "7", "--visitors", "0.1"], 72, 72, 120, 8),  # 7.7 people are 8
        (["--headcount", "100", "--extra", "5"], 945, 945, 1575, 105),
    ],
)
def test_plan_for_a_headcount(
    app: Flask, db_session: Any, args: list[str], water: int, food: int, toilet: int, blankets: int
) -> None:
    plan = plan_json(app, *args)
    assert quantities(plan) == {
        "water": (water, "L"),
        "food": (food, "meals"),
        "toilet": (toilet, "uses"),
        "blanket": (blankets, "pcs"),
    }


def test_plan_text_output_is_readable(app: Flask, db_session: Any) -> None:
    result = run(app, "plan", "--headcount", "100", "--language", "en")
    assert result.exit_code == 0
    assert "100 people × 3 days" in result.output
    assert "Water\t900 L" in result.output


def test_plan_needs_exactly_one_of_headcount_or_site(app: Flask, db_session: Any) -> None:
    result = app.test_cli_runner().invoke(args=["stockpile", "plan", "--json"])
    assert result.exit_code != 0
    assert "either --headcount or --site" in result.output


def test_changing_a_sites_headcount_changes_the_plan(app: Flask, two_sites: TwoSites) -> None:
    plan = plan_json(app, "--site", "TKY", org=two_sites.org)
    # 100 staff and the default 10 % visitors: 110 people for 3 days.
    assert (plan["staff"], plan["headcount"], plan["days"]) == (100, 110, 3)
    assert quantities(plan)["water"] == (990, "L")

    add_staff(two_sites.org, two_sites.tky, 10)
    plan = plan_json(app, "--site", "TKY", org=two_sites.org)
    assert (plan["staff"], plan["headcount"]) == (110, 121)
    assert quantities(plan)["water"] == (1089, "L")
    assert quantities(plan)["blanket"] == (121, "pcs")

    # Someone moves from Tokyo to Osaka: both plans follow.
    mover = make_staff(two_sites.org, site=two_sites.osa)
    assert plan_json(app, "--site", "OSA", org=two_sites.org)["staff"] == 21
    mover.site_id = two_sites.tky.id
    db.session.flush()
    assert plan_json(app, "--site", "OSA", org=two_sites.org)["staff"] == 20


def test_site_settings_shape_the_plan(app: Flask, two_sites: TwoSites) -> None:
    service.update_site_settings(
        site=two_sites.osa, visitor_ratio="0.25", extra_people=3, days=7, actor="test"
    )
    plan = plan_json(app, "--site", "OSA", org=two_sites.org)
    # 20 staff + 25 % visitors = 25, + 3 contractors = 28 people for 7 days.
    assert (plan["headcount"], plan["days"]) == (28, 7)
    assert quantities(plan)["water"] == (588, "L")
    # A command-line option overrides one setting for this run only.
    assert plan_json(app, "--site", "OSA", "--days", "3", org=two_sites.org)["days"] == 3
    assert service.settings_for(site_id=two_sites.osa.id).days == 7


def test_switched_on_catalogue_items_join_the_site_plan(app: Flask, two_sites: TwoSites) -> None:
    rows = {row.key: row for row in service.ensure_catalogue(organization_id=two_sites.org.id)}
    kit = rows["first_aid_kit"]
    service.update_item(
        item=kit,
        name_ja=kit.name_ja,
        name_en=kit.name_en,
        unit=kit.unit,
        rate_kind=kit.rate_kind.value,
        rate="1",
        per_n_people=50,
        shelf_life_months=None,
        active=True,
        actor="test",
    )
    plan = plan_json(app, "--site", "TKY", org=two_sites.org)
    assert quantities(plan)["first_aid_kit"] == (3, "kits")  # 110 people, one kit per 50: 3 kits


def test_unknown_site_is_a_clear_error(app: Flask, two_sites: TwoSites) -> None:
    result = run(app, "plan", "--site", "XXX", "--json", org=two_sites.org)
    assert result.exit_code != 0
    assert "no site 'XXX'" in result.output


def _add(site: Any, item: str, quantity: int, location: str, expires_on: date | None) -> StockLot:
    return service.add_lot(
        site=site,
        item_key=item,
        quantity=str(quantity),
        location=location,
        expires_on=expires_on,
        actor="test",
    )


def test_status_json(app: Flask, two_sites: TwoSites) -> None:
    tky = two_sites.tky  # 110 people × 3 days: 990 L water, 990 meals, 1,650 toilet uses, 110 blankets
    fresh = _add(tky, "water", 500, "B1 store", date(2026, 6, 30))  # expires within the 6-month horizon
    _add(tky, "water", 300, "3F pantry", None)
    stale = _add(tky, "water", 200, "3F pantry", date(2026, 3, 31))  # expired yesterday: not counted
    _add(tky, "food", 990, "B1 store", date(2030, 1, 31))
    _add(tky, "blanket", 60, "B1 store", None)
    _add(tky, "blanket", 50, "2F closet", None)
    _add(tky, "toilet", 1650, "B1 store", None)

    result = run(
        app,
        "status",
        "--site",
        "TKY",
        "--date",
        TODAY.isoformat(),
        "--json",
        "--language",
        "en",
        org=two_sites.org,
    )
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    items = {row["item"]: row for row in status["items"]}

    assert (status["staff"], status["headcount"], status["as_of"]) == (100, 110, "2026-04-01")
    assert (items["water"]["required"], items["water"]["usable"], items["water"]["shortfall"]) == (
        990,
        800,
        190,
    )
    assert items["water"]["expired"] == 200
    assert items["water"]["days_covered"] == 2.4  # 800 L / 330 L a day, rounded down
    assert items["food"]["shortfall"] == 0 and items["food"]["surplus"] == 0
    assert items["blanket"]["shortfall"] == 0
    assert status["state"] == "short"

    assert [lot["id"] for lot in status["expiring"]] == [fresh.id]
    assert [lot["id"] for lot in status["expired"]] == [stale.id]

    warnings = {(w["item"], w["location"]): w["percent"] for w in status["concentration_warnings"]}
    # Blankets: 60 of 110 (54.5 %) in the basement; water 500 of 800 (62.5 %); food and toilets all in one place.
    assert warnings == {
        ("blanket", "B1 store"): 54.5,
        ("water", "B1 store"): 62.5,
        ("food", "B1 store"): 100,
        ("toilet", "B1 store"): 100,
    }

    purchases = {(row["item"], row["reason"]): row["quantity"] for row in status["purchase_list"]}
    assert purchases[("water", "shortfall")] == 190
    # The 500 L expiring in June leave the site 500 L short again: replaced in staggered batches.
    assert purchases[("water", "expiry_replacement")] == 500
    water_rotation = next(r for r in status["rotation"] if r["item"] == "water")
    assert (
        sum(p["quantity"] for p in water_rotation["purchases"] if p["reason"] == "expiry_replacement") == 500
    )
    assert len({p["buy_on"] for p in water_rotation["purchases"]}) > 1


def test_status_honours_the_expiry_horizon(app: Flask, two_sites: TwoSites) -> None:
    _add(two_sites.tky, "water", 990, "B1", date(2026, 12, 31))
    base = ["status", "--site", "TKY", "--date", TODAY.isoformat(), "--json"]
    assert json.loads(run(app, *base, "--months", "6", org=two_sites.org).output)["expiring"] == []
    assert len(json.loads(run(app, *base, "--months", "9", org=two_sites.org).output)["expiring"]) == 1


# --- import -------------------------------------------------------------------------------------------------------


def _lot_count(org_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(StockLot).where(StockLot.organization_id == org_id)
    )


def _write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "lots.csv"
    path.write_bytes(text.encode(encoding))
    return path


GOOD_JA = (
    "拠点,品目,数量,単位,保管場所,賞味期限,備考\nTKY,飲料水,500,L,B1倉庫,2027/3/31,\nOSA,毛布,22,枚,2F,,\n"
)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_import_from_a_file(app: Flask, two_sites: TwoSites, tmp_path: Path, encoding: str) -> None:
    path = _write(tmp_path, GOOD_JA, encoding)
    result = run(app, "import", str(path), "--json", org=two_sites.org)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["imported"], report["problems"]) == (2, [])
    lots = service.lots_of(site_ids=[two_sites.tky.id, two_sites.osa.id])
    assert sorted((lot.site.code, lot.item.key, lot.quantity, lot.unit) for lot in lots) == [
        (
            "OSA",
            "blanket",
            22,
            "pcs",
        ),  # "枚" is how blankets are counted in Japanese: stored as the item's unit
        ("TKY", "water", 500, "L"),
    ]


def test_import_with_a_bad_row_imports_nothing(app: Flask, two_sites: TwoSites, tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_JA + "NGO,飲料水,10,L,,,\nTKY,水筒,1,個,,,\n")
    result = run(app, "import", str(path), "--json", "--language", "en", org=two_sites.org)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["imported"] == 0
    assert report["problems"] == [
        {"line": 4, "reason": "unknown site NGO"},
        {"line": 5, "reason": "unknown item 水筒"},
    ]
    assert _lot_count(two_sites.org.id) == 0


def test_import_skip_invalid_keeps_the_good_rows(app: Flask, two_sites: TwoSites, tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_JA + "TKY,飲料水,10,本,,,\n")
    result = run(app, "import", str(path), "--skip-invalid", "--language", "en", org=two_sites.org)
    assert result.exit_code == 0
    assert "2 lots imported (1 problems)" in result.output
    assert "line 4: 飲料水 is counted in L, not 本" in result.output
    assert _lot_count(two_sites.org.id) == 2


def test_import_dry_run_saves_nothing(app: Flask, two_sites: TwoSites, tmp_path: Path) -> None:
    result = run(app, "import", str(_write(tmp_path, GOOD_JA)), "--dry-run", "--json", org=two_sites.org)
    assert result.exit_code == 0
    assert json.loads(result.output)["valid_rows"] == 2
    assert _lot_count(two_sites.org.id) == 0


def test_import_is_audited_once(app: Flask, two_sites: TwoSites, tmp_path: Path) -> None:
    from core.auth.models import AuditEntry

    run(app, "import", str(_write(tmp_path, GOOD_JA)), org=two_sites.org)
    entries = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.organization_id == two_sites.org.id, AuditEntry.action == "stockpile.lot.import"
        )
    ).all()
    assert [(e.actor, e.detail["per_site"]) for e in entries] == [("cli", {"OSA": 1, "TKY": 1})]


def test_purchase_list_files(app: Flask, two_sites: TwoSites, tmp_path: Path) -> None:
    csv_path = tmp_path / "list.csv"
    result = run(app, "purchase-list", "--format", "csv", "-o", str(csv_path), org=two_sites.org)
    assert result.exit_code == 0, result.output
    lines = csv_path.read_bytes().decode("utf-8-sig").split("\r\n")
    assert lines[0] == "拠点,品目,単位,購入数量,理由"
    assert "TKY,飲料水,L,990,不足分" in lines
    assert "OSA,飲料水,L,198,不足分" in lines  # 20 staff + 10 % = 22 people × 3 L × 3 days

    pdf_path = tmp_path / "list.pdf"
    result = run(
        app, "purchase-list", "--site", "OSA", "--format", "pdf", "-o", str(pdf_path), org=two_sites.org
    )
    assert result.exit_code == 0, result.output
    assert pdf_path.read_bytes().startswith(b"%PDF-")


def test_with_several_organizations_one_must_be_named(app: Flask, two_sites: TwoSites) -> None:
    other = make_org()
    make_site(other, code="TKY")
    result = app.test_cli_runner().invoke(args=["stockpile", "plan", "--site", "TKY", "--json"])
    assert result.exit_code != 0
    assert "--organization" in result.output
