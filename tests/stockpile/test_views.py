"""The facilities screens as a signed-in user sees them: roles, scopes, lots, settings, import, downloads."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.models import AuditEntry, Role
from stockpile import service
from stockpile.models import StockLot
from tests.factories import csrf_from, login, make_user, post_form
from tests.stockpile.conftest import TwoSites


def signed_in(client: FlaskClient, two_sites: TwoSites, *roles: Role, **kwargs: Any) -> None:
    login(client, make_user(two_sites.org, *roles, **kwargs))


def lots_at(site_id: int) -> list[StockLot]:
    return service.lots_of(site_ids=[site_id])


# --- roles and scopes -------------------------------------------------------------------------------------------


def test_overview_shows_every_site_with_its_state_in_words(client: FlaskClient, two_sites: TwoSites) -> None:
    service.add_lot(
        site=two_sites.osa, item_key="water", quantity="500", location="B1", expires_on=None, actor="t"
    )
    signed_in(client, two_sites, Role.FACILITIES)
    page = client.get("/stockpile")
    assert page.status_code == 200
    assert "TKY" in page.text and "OSA" in page.text
    assert 'class="card bad"' in page.text
    # Colour never alone: the state is written out.
    assert "Short: 4 items" in page.text  # Tokyo holds nothing
    assert "Short: 3 items" in page.text  # Osaka has its water
    assert 'href="/stockpile"' in page.text  # the navigation entry


def test_japanese_is_the_default_language(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES, language="ja")
    page = client.get("/stockpile/sites/TKY")
    assert "必要量と在庫" in page.text
    assert "飲料水" in page.text
    assert "不足" in page.text


def test_a_manager_without_facilities_is_refused(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.MANAGER)
    assert client.get("/stockpile").status_code == 403
    assert client.get("/stockpile/sites/TKY").status_code == 403
    assert client.get("/stockpile/purchase-list.csv").status_code == 403


def test_signed_out_visitors_are_sent_to_the_login(client: FlaskClient, two_sites: TwoSites) -> None:
    response = client.get("/stockpile")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_facilities_limited_to_osaka_never_see_tokyo(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES, sites=[two_sites.osa])
    overview = client.get("/stockpile")
    assert "OSA" in overview.text and "TKY" not in overview.text
    assert client.get("/stockpile/sites/OSA").status_code == 200
    assert client.get("/stockpile/sites/TKY").status_code == 404
    assert client.get("/stockpile/sites/TKY/status.json").status_code == 404
    assert client.get("/stockpile/purchase-list.csv?site=TKY").status_code == 404
    assert "TKY" not in client.get("/stockpile/purchase-list.csv").data.decode("utf-8-sig")

    token = csrf_from(client.get("/stockpile/sites/OSA").text)
    response = client.post(
        "/stockpile/sites/TKY/lots",
        data={"csrf_token": token, "item": "water", "quantity": "10", "location": "", "expires_on": ""},
    )
    assert response.status_code == 404
    assert lots_at(two_sites.tky.id) == []


def test_crisis_managers_read_but_do_not_change(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.CRISIS_MANAGER)
    page = client.get("/stockpile/sites/TKY")
    assert page.status_code == 200
    assert 'action="/stockpile/sites/TKY/lots"' not in page.text
    response = post_form(
        client, "/stockpile/sites/TKY", "/stockpile/sites/TKY/lots", item="water", quantity="10", location=""
    )
    assert response.status_code == 403
    assert client.get("/stockpile/import").status_code == 403
    assert lots_at(two_sites.tky.id) == []


# --- lots -----------------------------------------------------------------------------------------------------------


def test_add_edit_and_remove_a_lot(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES)
    site_page = "/stockpile/sites/TKY"
    response = post_form(
        client,
        site_page,
        f"{site_page}/lots",
        item="water",
        quantity="600",
        location="B1 倉庫",
        expires_on="2030-03-31",
        note="2 L bottles",
    )
    assert response.status_code == 302
    (lot,) = lots_at(two_sites.tky.id)
    assert (lot.item.key, lot.quantity, lot.location, lot.expires_on) == (
        "water",
        600,
        "B1 倉庫",
        date(2030, 3, 31),
    )
    page = client.get(site_page).text
    assert "short 390" in page  # 990 L needed

    edit_page = f"{site_page}/lots/{lot.id}"
    response = post_form(
        client, edit_page, item="water", quantity="990", location="B1 倉庫", expires_on="2030-03-31", note=""
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert lots_at(two_sites.tky.id)[0].quantity == 990
    assert "short 390" not in client.get(site_page).text

    response = post_form(client, site_page, f"{site_page}/lots/{lot.id}/delete")
    assert response.status_code == 302
    assert lots_at(two_sites.tky.id) == []
    actions = db.session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.target_id == str(lot.id), AuditEntry.target_type == "stockpile_lot"
        )
    ).all()
    assert actions == ["stockpile.lot.create", "stockpile.lot.update", "stockpile.lot.delete"]


def test_a_bad_lot_is_explained_and_not_saved(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES)
    response = post_form(
        client,
        "/stockpile/sites/TKY",
        "/stockpile/sites/TKY/lots",
        item="water",
        quantity="abc",
        expires_on="",
    )
    assert response.status_code == 302
    assert "quantity abc is not a number" in client.get(response.headers["Location"]).text
    assert lots_at(two_sites.tky.id) == []


def test_forms_without_the_csrf_token_are_rejected(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES)
    response = client.post("/stockpile/sites/TKY/lots", data={"item": "water", "quantity": "10"})
    assert response.status_code == 400
    assert lots_at(two_sites.tky.id) == []


def test_lot_forms_are_labelled_and_fit_a_phone(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES)
    page = client.get("/stockpile/sites/TKY").text
    assert 'name="viewport" content="width=device-width' in page
    for field in ("item", "quantity", "location", "expires_on", "note"):
        assert f'<label for="new-{field}">' in page
        assert f'id="new-{field}"' in page
    assert 'style="' not in page  # layout comes from the stylesheet (CSP forbids inline styles)


def test_site_settings_change_the_requirement(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES)
    response = post_form(
        client,
        "/stockpile/sites/OSA",
        "/stockpile/sites/OSA/settings",
        visitor_percent="0",
        extra_people="5",
        days="7",
        max_location_percent="50",
        expiry_horizon_months="6",
    )
    assert response.status_code == 302
    status = client.get("/stockpile/sites/OSA/status.json").get_json()
    assert (status["headcount"], status["days"]) == (25, 7)
    assert next(i for i in status["items"] if i["item"] == "water")["required"] == 525

    response = post_form(
        client, "/stockpile/sites/OSA", "/stockpile/sites/OSA/settings", visitor_percent="10", extra_people="0",
        days="0", max_location_percent="50", expiry_horizon_months="6",
    )  # fmt: skip
    assert "days must be between 1 and 60" in client.get(response.headers["Location"]).text
    assert service.settings_for(site_id=two_sites.osa.id).days == 7


# --- import ---------------------------------------------------------------------------------------------------------

GOOD = "拠点,品目,数量,単位,保管場所,賞味期限,備考\nTKY,飲料水,500,L,B1,2027/3/31,\nOSA,食料,66,食,2F,令和10年1月31日,\n"
BAD_LINE = "TKY,飲料水,たくさん,L,B1,,\n"


def upload(client: FlaskClient, data: bytes, **fields: str) -> Any:
    token = csrf_from(client.get("/stockpile/import").text)
    form: dict[str, Any] = {"csrf_token": token, "file": (io.BytesIO(data), "lots.csv"), **fields}
    return client.post("/stockpile/import", data=form, content_type="multipart/form-data")


def test_import_preview_then_import(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES)
    preview = upload(client, GOOD.encode("cp932"), mode="preview")
    assert preview.status_code == 200
    assert "Dry run: nothing was saved" in preview.text
    assert "2 rows can be imported, 0 problems." in preview.text
    assert lots_at(two_sites.tky.id) == []

    # The preview carries the file, so the user confirms without choosing it again.
    payload = preview.text.split('name="payload" value="')[1].split('"')[0]
    response = client.post(
        "/stockpile/import",
        data={"csrf_token": csrf_from(preview.text), "payload": payload, "mode": "import", "site": ""},
    )
    assert response.status_code == 302
    assert [lot.quantity for lot in lots_at(two_sites.tky.id)] == [500]
    assert [lot.expires_on for lot in lots_at(two_sites.osa.id)] == [date(2028, 1, 31)]


def test_import_with_a_bad_row_reports_the_line_and_imports_nothing(
    client: FlaskClient, two_sites: TwoSites
) -> None:
    signed_in(client, two_sites, Role.FACILITIES)
    response = upload(client, (GOOD + BAD_LINE).encode(), mode="import")
    assert response.status_code == 400
    assert "Nothing was imported." in response.text
    assert '<td class="num">4</td>' in response.text
    assert "quantity たくさん is not a number" in response.text
    assert lots_at(two_sites.tky.id) == [] and lots_at(two_sites.osa.id) == []

    response = upload(client, (GOOD + BAD_LINE).encode(), mode="import", skip_invalid="1")
    assert response.status_code == 302
    assert len(lots_at(two_sites.tky.id)) == 1 and len(lots_at(two_sites.osa.id)) == 1


def test_import_from_a_site_page_fills_the_site(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES, sites=[two_sites.osa])
    assert client.get("/stockpile/import?site=TKY").status_code == 404
    response = upload(client, "品目,数量\n毛布,22\n".encode(), mode="import", site="OSA")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/stockpile/sites/OSA#lots")
    assert [lot.item.key for lot in lots_at(two_sites.osa.id)] == ["blanket"]


def test_scoped_import_refuses_rows_for_other_sites(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES, sites=[two_sites.osa])
    response = upload(client, GOOD.encode(), mode="import")
    assert response.status_code == 400
    assert "unknown site TKY" in response.text
    assert lots_at(two_sites.osa.id) == []


# --- purchase lists -------------------------------------------------------------------------------------------------


def test_purchase_list_csv_opens_in_excel(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.FACILITIES, language="ja")
    response = client.get("/stockpile/purchase-list.csv?site=TKY")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="purchase-list-TKY-' in response.headers["Content-Disposition"]
    body = response.data
    assert body.startswith(b"\xef\xbb\xbf")
    rows = body.decode("utf-8-sig").split("\r\n")
    assert rows[0] == "拠点,品目,単位,購入数量,理由"
    assert rows[1:5] == [
        "TKY,飲料水,L,990,不足分",
        "TKY,食料,食,990,不足分",
        "TKY,簡易トイレ,回,1650,不足分",
        "TKY,毛布,個,110,不足分",
    ]
    assert rows[-1] == ""  # every line, the last one included, ends with CRLF


def pdf_text(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: cannot read the PDF's text")
    path = tmp_path / "list.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout


def test_purchase_list_pdf(client: FlaskClient, two_sites: TwoSites, tmp_path: Path) -> None:
    signed_in(client, two_sites, Role.FACILITIES, language="ja")
    response = client.get("/stockpile/purchase-list.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-") and response.data.rstrip().endswith(b"%%EOF")
    text = pdf_text(response.data, tmp_path)
    assert "備蓄品 購入リスト" in text
    assert "全拠点(2)" in text
    assert "TKY 東京本社" in text and "OSA 大阪センター" in text
    assert "飲料水" in text and "990" in text and "198" in text
    assert "品目別合計" in text
    assert "1,188" in text  # water for both sites together
    assert "1 / 1 ページ" in text


def test_purchase_list_pdf_in_english_for_one_site(
    client: FlaskClient, two_sites: TwoSites, tmp_path: Path
) -> None:
    signed_in(client, two_sites, Role.CRISIS_MANAGER, language="en")
    response = client.get("/stockpile/purchase-list.pdf?site=OSA")
    assert response.status_code == 200
    text = pdf_text(response.data, tmp_path)
    assert "Stockpile purchase list" in text
    assert "OSA" in text and "TKY" not in text
    assert "Page 1 of 1" in text


# --- catalogue ------------------------------------------------------------------------------------------------------


def test_catalogue_changes_need_organization_wide_facilities(
    client: FlaskClient, two_sites: TwoSites
) -> None:
    signed_in(client, two_sites, Role.FACILITIES, sites=[two_sites.osa])
    page = client.get("/stockpile/catalogue")
    assert page.status_code == 200 and "New item" not in page.text
    response = post_form(client, "/stockpile/catalogue", key="helmet", name_ja="ヘルメット", unit="pcs",
                         rate_kind="per_person", rate="1")  # fmt: skip
    assert response.status_code == 403


def test_add_a_catalogue_item_from_the_web(client: FlaskClient, two_sites: TwoSites) -> None:
    signed_in(client, two_sites, Role.ADMIN)
    response = post_form(
        client,
        "/stockpile/catalogue",
        key="helmet",
        name_ja="ヘルメット",
        name_en="Helmets",
        unit="pcs",
        rate_kind="per_n_people",
        rate="1",
        per_n_people="2",
    )
    assert response.status_code == 302
    status = client.get("/stockpile/sites/OSA/status.json").get_json()
    assert next(i for i in status["items"] if i["item"] == "helmet")["required"] == 11  # 22 people, 1 per 2
