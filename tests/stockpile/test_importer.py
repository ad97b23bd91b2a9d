"""Reading lot CSV files as facilities staff produce them (pure: no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from stockpile.importer import CellError, parse_date, parse_lots, parse_quantity

ENGLISH = "site_code,item,quantity,unit,location,expiry_date,note\n"
JAPANESE = "拠点,品目,数量,単位,保管場所,賞味期限,備考\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-03-31", date(2027, 3, 31)),
        ("2027/3/31", date(2027, 3, 31)),
        ("2027/03/31 0:00", date(2027, 3, 31)),  # Excel adds a time when it re-saves a date
        ("2027.3.1", date(2027, 3, 1)),
        ("20270331", date(2027, 3, 31)),
        ("2027年3月31日", date(2027, 3, 31)),
        ("２０２７／３／３１", date(2027, 3, 31)),  # full-width digits and slash
        ("令和9年3月31日", date(2027, 3, 31)),
        ("令和９年３月３１日", date(2027, 3, 31)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("R9.3.31", date(2027, 3, 31)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("2027/02", date(2027, 2, 28)),  # month only: the last day of that month
        ("2028年2月", date(2028, 2, 29)),
        ("", None),
        ("   ", None),
    ],
)
def test_dates_written_the_ways_people_write_them(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2027-02-30", "is not a valid date"),
        ("2027-13-01", "is not a valid date"),
        ("平成32年1月1日", "outside the 平成 era"),  # 平成 ended in April 2019
        ("令和1年4月1日", "outside the 令和 era"),  # 令和 began in May 2019
        ("next spring", "is not a date"),
        ("31/03/2027", "is not a date"),  # day-first is ambiguous: refused rather than guessed
    ],
)
def test_impossible_or_unreadable_dates_are_refused(text: str, reason: str) -> None:
    with pytest.raises(CellError) as caught:
        parse_date(text)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("24", Decimal(24)), ("１，５００", Decimal(1500)), ("1,500", Decimal(1500)), ("0.5", Decimal("0.5"))],
)
def test_quantities_accept_full_width_digits_and_thousands_separators(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "missing"),
        ("abc", "not a number"),
        ("0", "more than zero"),
        ("-3", "more than zero"),
        ("1.2345", "more than three decimals"),
        ("NaN", "not a number"),
    ],
)
def test_bad_quantities_are_refused(text: str, reason: str) -> None:
    with pytest.raises(CellError) as caught:
        parse_quantity(text)
    assert reason in str(caught.value)


def test_english_file_in_utf8_without_bom() -> None:
    parsed = parse_lots((ENGLISH + "TKY,water,500,L,B1 store,2027-03-31,case of 2 L bottles\n").encode())
    assert parsed.problems == []
    assert parsed.encoding == "utf-8"
    (row,) = parsed.rows
    assert (
        row.line,
        row.site_code,
        row.item,
        row.quantity,
        row.unit,
        row.location,
        row.expires_on,
        row.note,
    ) == (
        2,
        "TKY",
        "water",
        Decimal(500),
        "L",
        "B1 store",
        date(2027, 3, 31),
        "case of 2 L bottles",
    )


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "cp932"])
def test_japanese_headers_in_every_encoding_excel_writes(encoding: str) -> None:
    text = JAPANESE + "OSA,飲料水,１２０,Ｌ,倉庫Ａ,令和9年3月31日,２Lペットボトル\r\n"
    parsed = parse_lots(text.encode(encoding))
    assert parsed.problems == []
    (row,) = parsed.rows
    assert row.item == "飲料水"
    assert row.quantity == Decimal(120)
    assert row.unit == "L"
    assert row.location == "倉庫A"  # full-width letters folded, so "倉庫Ａ" and "倉庫A" are one place
    assert row.expires_on == date(2027, 3, 31)
    assert parsed.encoding == ("cp932" if encoding == "cp932" else "utf-8")


def test_columns_in_any_order_and_optional_ones_left_out() -> None:
    parsed = parse_lots("数量,品目,拠点\n10,毛布,TKY\n".encode())
    assert parsed.problems == []
    (row,) = parsed.rows
    assert (row.site_code, row.item, row.quantity, row.unit, row.location, row.expires_on) == (
        "TKY",
        "毛布",
        Decimal(10),
        "",
        "",
        None,
    )


def test_every_bad_row_is_reported_with_its_line_number() -> None:
    data = (
        ENGLISH
        + "TKY,water,500,L,B1,2027-03-31,\n"  # line 2: fine
        + ",water,10,L,B1,,\n"  # line 3: no site
        + "TKY,food,many,meals,B1,2027-03-31,\n"  # line 4: quantity
        + "\n"  # line 5: blank, skipped
        + "TKY,food,10,meals,B1,2027-02-30,\n"  # line 6: date
        + 'TKY,blanket,5,pcs,B1,,"a note\nover two lines"\n'  # lines 7-8: fine
        + "TKY,,5,pcs,B1,,\n"  # line 9: no item
    ).encode()
    parsed = parse_lots(data)
    assert [row.line for row in parsed.rows] == [2, 7]
    assert [(p.line, p.text()) for p in parsed.problems] == [
        (3, "site code is missing"),
        (4, "quantity many is not a number"),
        (6, "2027-02-30 is not a valid date"),
        (9, "item is missing"),
    ]


def test_a_default_site_fills_rows_without_one() -> None:
    parsed = parse_lots("品目,数量\n飲料水,24\n".encode(), default_site_code="OSA")
    assert parsed.problems == []
    assert parsed.rows[0].site_code == "OSA"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        ("品目,数量,賞味期限,期限\n".encode(), "unknown column 期限"),
        ("拠点,品目,数量,数量\n".encode(), "column 数量 appears twice"),
        ("拠点,品目\n".encode(), "required columns are missing: quantity"),
        (b"\xff\xfe\x00\x81\xff", "neither UTF-8 nor Shift_JIS"),
    ],
)
def test_a_bad_header_or_file_stops_before_any_row(data: bytes, reason: str) -> None:
    parsed = parse_lots(data)
    assert parsed.rows == []
    assert parsed.problems[0].line == 1
    assert reason in parsed.problems[0].text()


def test_problems_translate_through_a_gettext_like_function() -> None:
    parsed = parse_lots((ENGLISH + "TKY,water,x,L,,,\n").encode())
    (problem,) = parsed.problems

    def shout(message: str, **params: str) -> str:
        return message.upper().format(**{k.upper(): v for k, v in params.items()})

    assert problem.text(shout) == "QUANTITY x IS NOT A NUMBER"
