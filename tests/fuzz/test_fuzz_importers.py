"""The CSV importers (staff, stockpile lots) and the HR-sync API against whatever arrives: random bytes, wrong
encodings, broken quoting, huge cells, a million rows. Each answers with a clear message (a refused file, a bad
row with its line number) and bounded work — never a crash, never a 500."""

from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.auth.models import Role
from core.auth.service import create_api_token
from core.directory import importer
from stockpile import importer as lots
from tests.factories import csrf_from, login, make_org, make_site, make_user

SITE_CODES = frozenset({"TKY", "OSA"})
KNOWN = frozenset({"E00001", "E00002"})
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_staff(data: bytes, encoding: str | None = None) -> importer.ParsedStaff | None:
    """The staff importer's answer: a parse (good rows and bad rows), or None when it refused the whole file."""
    try:
        parsed = importer.parse_staff_csv(
            data, site_codes=SITE_CODES, known_employee_ids=KNOWN, encoding=encoding
        )
    except importer.FileError as error:
        assert error.text == error.message.format(**error.params)  # every placeholder has its value
        return None
    for problem in parsed.errors:
        assert problem.text and problem.line >= 0
    return parsed


@FUZZ
@given(
    data=st.binary(max_size=4000),
    encoding=st.sampled_from([None, "utf-8", "cp932", "shift_jis", "latin-9", "nope"]),
)
def test_random_bytes_in_any_encoding_are_refused_or_read(data: bytes, encoding: str | None) -> None:
    parse_staff(data, encoding)


CELL = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(list(",\"\r\n\t'=+-@ー－０１")),
    max_size=40,
)


@st.composite
def staff_csv(draw: Any) -> tuple[bytes, int]:
    header = draw(
        st.lists(
            st.sampled_from([*importer.FIELDS, *importer.JAPANESE_HEADERS, "extra", ""]),
            min_size=1,
            max_size=8,
        )
    )
    rows = draw(st.lists(st.lists(CELL, max_size=10), max_size=30))
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\r\n", "\n", "\r"]))
    )
    writer.writerow(header)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp932", "utf-16"]))
    return buffer.getvalue().encode(encoding, errors="replace"), len(rows)


@FUZZ
@given(file=staff_csv())
def test_csv_shaped_files_give_a_line_number_for_every_bad_row(file: tuple[bytes, int]) -> None:
    data, rows = file
    parsed = parse_staff(data)
    if parsed is not None:
        assert len(parsed.records) <= parsed.rows_read <= rows + 1
        assert all(problem.line >= 1 for problem in parsed.errors)


def test_cells_larger_than_csvs_limit_are_a_clear_error() -> None:
    data = b"employee_id,name\nE1," + b'"' + b"x" * 200_000 + b'"\n'
    assert parse_staff(data) is None


def test_a_million_rows_are_refused_with_the_limit_in_the_message() -> None:
    data = b"employee_id,name\n" + b"".join(b"E%d,N\n" % n for n in range(1_000_000))
    with pytest.raises(importer.FileError) as refused:
        importer.parse_staff_csv(data, site_codes=SITE_CODES, known_employee_ids=KNOWN)
    assert f"{importer.MAX_ROWS:,}" in refused.value.text or str(importer.MAX_ROWS) in refused.value.text


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read() -> None:
    data = b"employee_id,name\n" + b"E1," + b"x" * (importer.MAX_FILE_BYTES + 1) + b"\n"
    with pytest.raises(importer.FileError, match="MB"):
        importer.decode(data)


def test_utf16_and_bom_and_cp932_still_read_as_before() -> None:
    text = "社員番号,氏名\nE00009,山田 太郎\n"
    for data in (
        text.encode("utf-8"),
        codecs.BOM_UTF8 + text.encode(),
        text.encode("cp932"),
        text.encode("utf-16"),
    ):
        parsed = parse_staff(data)
        assert parsed is not None and [r.employee_id for r in parsed.records] == ["E00009"]


@FUZZ
@given(data=st.binary(max_size=4000), site=st.sampled_from(["", "TKY"]))
def test_stockpile_lots_from_random_bytes_are_problems_with_line_numbers(data: bytes, site: str) -> None:
    parsed = lots.parse_lots(data, default_site_code=site)
    for problem in parsed.problems:
        assert problem.line >= 1 and problem.text()


def test_stockpile_lots_stop_at_the_line_limit() -> None:
    data = b"site,item,quantity\n" + b"".join(b"TKY,water,%d\n" % n for n in range(lots.MAX_LINES + 5))
    parsed = lots.parse_lots(data)
    assert parsed.lines <= lots.MAX_LINES
    assert any(f"{lots.MAX_LINES:,}" in p.text() for p in parsed.problems)


# --- through the web and the API: never a 500 ----------------------------------------------------------------------


@pytest.fixture()
def admin(app: Flask, db_session: Any) -> Any:
    org = make_org()
    make_site(org, code="TKY")
    client = app.test_client()
    login(client, make_user(org, Role.ADMIN))
    client.organization = org
    return client


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=1, max_size=3000) | staff_csv().map(lambda f: f[0]),
    encoding=st.sampled_from(["", "utf-8", "cp932"]),
)
def test_uploading_anything_to_the_staff_import_never_fails_with_a_500(
    admin: Any, data: bytes, encoding: str
) -> None:
    page = admin.get("/staff/import")
    uploaded = admin.post(
        "/staff/import",
        data={
            "csrf_token": csrf_from(page.text),
            "encoding": encoding,
            "file": (io.BytesIO(data), "staff.csv"),
        },
        content_type="multipart/form-data",
    )
    assert uploaded.status_code in (302, 400), uploaded.status_code
    if uploaded.status_code == 302:
        preview = admin.get(uploaded.headers["Location"])
        assert preview.status_code in (200, 422), preview.status_code


def test_a_million_row_upload_is_refused_clearly(admin: Any) -> None:
    data = b"employee_id,name\n" + b"".join(b"E%d,N\n" % n for n in range(1_000_000))
    page = admin.get("/staff/import")
    uploaded = admin.post(
        "/staff/import",
        data={"csrf_token": csrf_from(page.text), "file": (io.BytesIO(data), "staff.csv")},
        content_type="multipart/form-data",
    )
    preview = admin.get(uploaded.headers["Location"])
    assert preview.status_code == 422 and str(f"{importer.MAX_ROWS:,}") in preview.text


def test_the_hr_api_refuses_a_million_items_clearly(app: Flask, admin: Any) -> None:
    token = create_api_token(organization_id=admin.organization.id, name="fuzz", actor="t")
    body = json.dumps({"staff": [{"employee_id": f"E{n}", "name": "N"} for n in range(1_000_000)]})
    response = app.test_client().post(
        "/api/v1/staff",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422
    assert str(f"{importer.MAX_ROWS:,}") in response.get_json()["errors"][0]["message"]
