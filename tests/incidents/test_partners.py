"""Partner and customer lists from CSV: Excel's encodings, bad rows with their line numbers, all or nothing."""

from __future__ import annotations

import base64
import io
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.directory.importer import FileError
from incidents import notices, partners_csv
from incidents.models import PartnerContact, PartnerKind
from tests.factories import csrf_from, login
from tests.incidents.conftest import World

GOOD = (
    "会社名,担当者,区分,電話番号,メールアドレス,言語\n"
    "デモ商事株式会社,山田 太郎,顧客,090-0000-0801,yamada@customer.example.com,日本語\n"
    "Example Retail K.K.,Alex Smith,customer,＋８１　９０－００００－０８０２,Alex@Retail.Example.com,en\n"
    "デモ設備保守,佐藤 次郎,取引先,09000000804,,\n"
)


def _contacts(world: World) -> list[PartnerContact]:
    return list(
        db.session.scalars(
            select(PartnerContact)
            .where(PartnerContact.organization_id == world.org.id)
            .order_by(PartnerContact.id)
        )
    )


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (GOOD.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + GOOD.encode("utf-8"), "utf-8-sig"),
        (GOOD.encode("cp932"), "cp932"),
        (GOOD.replace("\n", "\r\n").encode("cp932"), "cp932"),
    ],
)
def test_excel_files_in_every_encoding(data: bytes, encoding: str) -> None:
    parsed = partners_csv.parse(data)
    assert parsed.encoding == encoding
    assert parsed.errors == []
    assert [(r.company, r.kind, r.phone, r.email, r.language) for r in parsed.records] == [
        ("デモ商事株式会社", "customer", "+819000000801", "yamada@customer.example.com", "ja"),
        ("Example Retail K.K.", "customer", "+819000000802", "Alex@retail.example.com", "en"),
        ("デモ設備保守", "partner", "+819000000804", "", "ja"),
    ]


def test_bad_rows_are_reported_with_their_line_numbers() -> None:
    data = (
        b"company,person,kind,phone,email\n"
        b"Good Co.,A,partner,+1 555 0100,a@example.com\n"
        b",nobody,partner,+1 555 0101,\n"  # line 3: no company
        b"Bad Phone Co.,B,partner,12,\n"  # line 4
        b"Bad Mail Co.,C,partner,,not-an-address\n"  # line 5
        b"Nothing Co.,D,partner,,\n"  # line 6: no way to reach them
        b"Kind Co.,E,supplier,+1 555 0102,\n"  # line 7
        b'"Multi\nline Co.",F,partner,+1 555 0103,\n'  # lines 8-9: one record over two lines
        b"Good Co.,A,partner,+1 555 0104,\n"  # line 10: the same contact again
    )
    parsed = partners_csv.parse(data)
    assert [(e.line, e.field) for e in parsed.errors] == [
        (3, "company"),
        (4, "phone"),
        (5, "email"),
        (6, None),
        (7, "kind"),
        (10, "company"),
    ]
    assert [r.company for r in parsed.records] == ["Good Co.", "Multi line Co."]
    assert parsed.records[1].line == 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"name,phone\nx,1\n", "missing required columns"),
        (b"company,fax\nx,1\n", "unknown columns"),
        (b"company,company,phone\n", "appears twice"),
        (b"company,phone\n\x81\x7f,1\n", "neither UTF-8 nor Shift_JIS"),
    ],
)
def test_unusable_files(data: bytes, message: str) -> None:
    with pytest.raises(FileError, match=message):
        partners_csv.parse(data)


def test_dry_run_changes_nothing_and_apply_is_all_or_nothing(world: World) -> None:
    plan = notices.plan_partner_import(organization_id=world.org.id, data=GOOD.encode("cp932"))
    assert plan.counts == {"added": 3, "updated": 0, "unchanged": 0, "bad_lines": 0}
    assert _contacts(world) == []

    notices.apply_partner_import(organization_id=world.org.id, data=GOOD.encode("utf-8"), actor="admin")
    assert len(_contacts(world)) == 3

    # A changed phone updates; one bad line stops everything, including the good change.
    changed = GOOD.replace("090-0000-0801", "090-0000-0899") + "Broken Co.,X,partner,123,\n"
    with pytest.raises(notices.BadPartnerRows) as refused:
        notices.apply_partner_import(
            organization_id=world.org.id, data=changed.encode("utf-8"), actor="admin"
        )
    assert [e.line for e in refused.value.plan.errors] == [5]
    assert {c.phone for c in _contacts(world)} == {"+819000000801", "+819000000802", "+819000000804"}

    fixed = GOOD.replace("090-0000-0801", "090-0000-0899")
    plan = notices.apply_partner_import(
        organization_id=world.org.id, data=fixed.encode("utf-8"), actor="admin"
    )
    assert plan.counts == {"added": 0, "updated": 1, "unchanged": 2, "bad_lines": 0}
    assert plan.updated[0][1] == {"phone": ("+819000000801", "+819000000899")}
    assert len(_contacts(world)) == 3
    # Importing the same list again changes nothing.
    again = notices.plan_partner_import(organization_id=world.org.id, data=fixed.encode("utf-8"))
    assert again.counts["unchanged"] == 3


def test_import_through_the_screens(client: FlaskClient, world: World) -> None:
    login(client, world.crisis)
    page = client.get("/incidents/partners")
    preview = client.post(
        "/incidents/partners/import",
        data={
            "csrf_token": csrf_from(page.text),
            "encoding": "",
            "file": (io.BytesIO(GOOD.encode("cp932")), "list.csv"),
        },
        content_type="multipart/form-data",
    )
    assert preview.status_code == 200
    assert "デモ商事株式会社" in preview.text
    assert _contacts(world) == []  # the preview is a dry run
    form = dict(re.findall(r'name="(data|digest|encoding)" value="([^"]*)"', preview.text))
    response = client.post(
        "/incidents/partners/import/apply", data={"csrf_token": csrf_from(preview.text), **form}
    )
    assert response.status_code == 302
    assert {c.kind for c in _contacts(world)} == {PartnerKind.CUSTOMER, PartnerKind.PARTNER}
    # Tampering with the previewed bytes is refused.
    form["data"] = base64.b64encode(b"company,phone\nEvil,+15550100199\n").decode()
    assert (
        client.post(
            "/incidents/partners/import/apply", data={"csrf_token": csrf_from(preview.text), **form}
        ).status_code
        == 400
    )


def test_bad_file_preview_lists_the_lines_and_offers_no_import(client: FlaskClient, world: World) -> None:
    login(client, world.crisis)
    page = client.get("/incidents/partners")
    bad = GOOD + "Broken Co.,X,partner,123,\n"
    preview = client.post(
        "/incidents/partners/import",
        data={"csrf_token": csrf_from(page.text), "file": (io.BytesIO(bad.encode()), "list.csv")},
        content_type="multipart/form-data",
    )
    assert preview.status_code == 200
    assert "line 5" in preview.text
    assert "/incidents/partners/import/apply" not in preview.text
