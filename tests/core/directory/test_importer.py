"""The pure CSV importer: decoding, headers, every bad-row reason with its line number, normalisation, diff."""

from __future__ import annotations

import pytest

from core.directory import importer
from core.directory.importer import FileError, StaffRecord
from tests.core.directory.conftest import fixture_bytes

SITES = ("TKY", "OSA", "FUK")
HEADER = (
    "employee_id,name,name_kana,department,site,work_phone,work_email,home_prefecture,language,"
    "can_work_from_home,manager_employee_id"
)
GOOD = "A001,山田 太郎,ヤマダ タロウ,東京受付,TKY,090-0000-0001,taro@example.com,13,ja,1,"


def parse(text: str, *, known: tuple[str, ...] = (), encoding: str = "utf-8") -> importer.ParsedStaff:
    return importer.parse_staff_csv(text.encode(encoding), site_codes=SITES, known_employee_ids=known)


def row(**changes: str) -> str:
    values = dict(zip(HEADER.split(","), GOOD.split(","), strict=True))
    values.update(changes)
    return ",".join(values.values())


# --- decoding -----------------------------------------------------------------------------------------------

TEXT = HEADER + "\r\n" + GOOD + "\r\n"


@pytest.mark.parametrize(
    ("data", "given", "expected_encoding"),
    [
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), None, "utf-8-sig"),
        (TEXT.encode("utf-8"), None, "utf-8"),
        (TEXT.encode("cp932"), None, "cp932"),
        (TEXT.encode("cp932"), "Shift_JIS", "cp932"),
        (TEXT.encode("cp932"), "sjis", "cp932"),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8", "utf-8-sig"),
        (TEXT.encode("utf-16"), None, "utf-16"),
    ],
)
def test_encodings_excel_writes_are_read(data: bytes, given: str | None, expected_encoding: str) -> None:
    parsed = importer.parse_staff_csv(data, site_codes=SITES, known_employee_ids=(), encoding=given)
    assert parsed.encoding == expected_encoding
    assert parsed.errors == []
    assert [(r.employee_id, r.name, r.department) for r in parsed.records] == [
        ("A001", "山田 太郎", "東京受付")
    ]


@pytest.mark.parametrize(
    ("data", "given", "fragment"),
    [
        (TEXT.encode("cp932"), "utf-8", "not valid utf-8-sig"),
        (TEXT.encode("utf-8"), "klingon", "unknown encoding klingon"),
        (b"\x80\xff\xfe\xfd\x81\x00", None, "neither UTF-8 nor Shift_JIS"),
    ],
)
def test_undecodable_files_are_refused_as_a_whole(data: bytes, given: str | None, fragment: str) -> None:
    with pytest.raises(FileError) as exc:
        importer.parse_staff_csv(data, site_codes=SITES, known_employee_ids=(), encoding=given)
    assert fragment in exc.value.text


# --- header -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        HEADER,
        "社員番号,氏名,氏名カナ,部署,拠点,会社電話,会社メール,居住都道府県,言語,在宅勤務可,上長社員番号",
        HEADER.upper().replace("_", " "),
        "社員番号,name,氏名カナ,department,拠点,work_phone,会社メール,home_prefecture,言語,can_work_from_home,上長社員番号",
    ],
)
def test_english_japanese_and_mixed_headers(header: str) -> None:
    parsed = parse(header + "\n" + GOOD + "\n")
    assert parsed.errors == []
    record = parsed.records[0]
    assert record.work_phone == "+819000000001"
    assert record.can_work_from_home is True
    assert record.provided == frozenset(importer.FIELDS)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("employee_id,name,salary\nA1,x,100\n", "unknown columns: salary"),
        ("employee_id,department\nA1,x\n", "missing required columns: name"),
        ("name,department\nx,y\n", "missing required columns: employee_id"),
        ("employee_id,name,社員番号\nA1,x,A1\n", "column 社員番号 appears twice"),
        ("", "the file is empty"),
        ("\n\n,,,\n", "the file is empty"),
    ],
)
def test_wrong_headers_are_file_level_errors(text: str, fragment: str) -> None:
    with pytest.raises(FileError) as exc:
        parse(text)
    assert fragment in exc.value.text


def test_a_column_left_out_is_not_provided() -> None:
    parsed = parse("employee_id,name,work_phone\nA001,山田 太郎,０９０－００００－０００９\n")
    record = parsed.records[0]
    assert record.provided == {"employee_id", "name", "work_phone"}
    assert record.work_phone == "+819000000009"


# --- every bad-row reason -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"employee_id": ""}, "employee_id", "employee id is empty"),
        ({"employee_id": "  "}, "employee_id", "employee id is empty"),
        ({"name": " "}, "name", "name is empty"),
        ({"site": "NGY"}, "site", "unknown site code NGY"),
        ({"work_phone": "12345"}, "work_phone", "invalid phone number 12345"),
        ({"work_phone": "phone"}, "work_phone", "invalid phone number phone"),
        ({"work_phone": "090-0000-00011"}, "work_phone", "invalid phone number 090-0000-00011"),
        ({"work_email": "taro.example.com"}, "work_email", "invalid e-mail address taro.example.com"),
        ({"work_email": "taro@localhost"}, "work_email", "invalid e-mail address taro@localhost"),
        ({"work_email": "ta ro@example.com"}, "work_email", "invalid e-mail address ta ro@example.com"),
        ({"home_prefecture": "48"}, "home_prefecture", "invalid prefecture 48"),
        ({"home_prefecture": "東京特別区"}, "home_prefecture", "invalid prefecture 東京特別区"),
        ({"language": "fr"}, "language", "language must be ja or en, not fr"),
        ({"can_work_from_home": "maybe"}, "can_work_from_home", "maybe is not yes or no"),
        ({"can_work_from_home": "たぶん"}, "can_work_from_home", "たぶん is not yes or no"),
        (
            {"manager_employee_id": "Z999"},
            "manager_employee_id",
            "manager Z999 is not in the file or the directory",
        ),
        ({"manager_employee_id": "A002"}, "manager_employee_id", "a person cannot be their own manager"),
        ({"name": "x" * 201}, "name", "value too long (at most 200 characters)"),
    ],
)
def test_each_bad_row_is_reported_with_its_line_and_reason(
    changes: dict[str, str], field: str, message: str
) -> None:
    employee_id = changes.get("employee_id", "A002")
    bad = row(**{"employee_id": "A002", **changes})
    parsed = parse("\n".join([HEADER, GOOD, bad, GOOD.replace("A001", "A003")]) + "\n")
    assert [(e.line, e.field) for e in parsed.errors] == [(3, field)]
    assert message in parsed.errors[0].text
    assert parsed.errors[0].employee_id == employee_id.strip()
    assert [r.employee_id for r in parsed.records] == ["A001", "A003"]


def test_a_duplicate_employee_id_refuses_every_copy() -> None:
    parsed = parse("\n".join([HEADER, GOOD, row(employee_id="A002"), row(name="別人 太郎")]) + "\n")
    assert [(e.line, e.field) for e in parsed.errors] == [(2, "employee_id"), (4, "employee_id")]
    assert "employee id A001 appears more than once (lines 2, 4)" in parsed.errors[0].text
    assert [r.employee_id for r in parsed.records] == ["A002"]


def test_one_row_can_have_several_reasons() -> None:
    parsed = parse("\n".join([HEADER, row(site="XX", language="de", work_phone="1")]) + "\n")
    assert [e.field for e in parsed.errors] == ["site", "work_phone", "language"]
    assert parsed.bad_lines == [2]


def test_line_numbers_count_blank_lines_and_multi_line_cells() -> None:
    text = "\n".join(
        [
            HEADER,
            "",
            row(employee_id="A002", name='"山田\n太郎"'),
            ",,,,,,,,,,",
            row(employee_id="A004", site="XX"),
        ]
    )
    parsed = parse(text + "\n")
    assert [(e.line, e.employee_id) for e in parsed.errors] == [(6, "A004")]
    assert parsed.records[0].name == "山田\n太郎"


def test_extra_cells_beyond_the_header_are_a_bad_row() -> None:
    parsed = parse("\n".join([HEADER, GOOD + ",surplus"]) + "\n")
    assert [(e.line, e.field) for e in parsed.errors] == [(2, None)]
    assert "more cells than the header" in parsed.errors[0].text


# --- managers -----------------------------------------------------------------------------------------------


def test_a_manager_may_be_later_in_the_same_file_or_already_in_the_directory() -> None:
    text = "\n".join(
        [
            HEADER,
            row(employee_id="A002", manager_employee_id="A003"),
            row(employee_id="A003", manager_employee_id="B100"),
        ]
    )
    parsed = parse(text + "\n", known=("B100",))
    assert parsed.errors == []
    assert {r.employee_id: r.manager_employee_id for r in parsed.records} == {"A002": "A003", "A003": "B100"}


def test_a_manager_on_a_bad_row_makes_the_subordinates_bad_too() -> None:
    text = "\n".join(
        [
            HEADER,
            row(employee_id="A002", site="XX"),
            row(employee_id="A003", manager_employee_id="A002"),
            row(employee_id="A004", manager_employee_id="A003"),
        ]
    )
    parsed = parse(text + "\n")
    assert [(e.line, e.field) for e in parsed.errors] == [
        (2, "site"),
        (3, "manager_employee_id"),
        (4, "manager_employee_id"),
    ]
    assert "manager A002 is on a bad row" in parsed.errors[1].text
    assert parsed.records == []


# --- normalisation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("090-0000-0001", "+819000000001"),
        ("０９０－００００－０００１", "+819000000001"),
        ("０９０ー００００ー０００１", "+819000000001"),
        ("090‐0000‐0001", "+819000000001"),
        ("090 0000 0001", "+819000000001"),
        ("(090)0000-0001", "+819000000001"),
        ("+81 90-0000-0001", "+819000000001"),
        ("＋８１９００００００００１", "+819000000001"),
        ("03-1234-5678", "+81312345678"),
        ("+1 555 010 0123", "+15550100123"),
    ],
)
def test_phone_numbers_become_e164(written: str, e164: str) -> None:
    assert importer.normalise_phone(written) == e164
    parsed = parse("\n".join([HEADER, row(work_phone=written)]) + "\n")
    assert parsed.records[0].work_phone == e164


@pytest.mark.parametrize(
    ("written", "code"),
    [("13", "13"), ("13 ", "13"), ("１３", "13"), ("東京都", "13"), ("東京", "13"), ("Tokyo", "13"), ("1", "01"),
     ("北海道", "01"), ("大阪府", "27"), ("大阪", "27"), ("神奈川", "14"), ("沖縄県", "47"), ("", "")],
)  # fmt: skip
def test_prefectures_accept_codes_and_names(written: str, code: str) -> None:
    parsed = parse("\n".join([HEADER, row(home_prefecture=written)]) + "\n")
    assert parsed.records[0].home_prefecture == code


@pytest.mark.parametrize(
    ("written", "value"),
    [("1", True), ("0", False), ("true", True), ("FALSE", False), ("yes", True), ("No", False), ("はい", True),
     ("いいえ", False), ("○", True), ("×", False), ("１", True), ("", False)],
)  # fmt: skip
def test_yes_no_words(written: str, value: bool) -> None:
    parsed = parse("\n".join([HEADER, row(can_work_from_home=written)]) + "\n")
    assert parsed.records[0].can_work_from_home is value


def test_other_normalisations() -> None:
    parsed = parse(
        "\n".join(
            [
                HEADER,
                row(
                    employee_id="Ａ００２",
                    name_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
                    site="tky",
                    language="EN",
                    work_email="Taro@Example.COM",
                ),
            ]
        )
        + "\n"
    )
    record = parsed.records[0]
    assert (record.employee_id, record.name_kana, record.site, record.language, record.work_email) == (
        "A002",
        "ヤマダ タロウ",
        "TKY",
        "en",
        "Taro@example.com",
    )


# --- the fixture files --------------------------------------------------------------------------------------


def test_clean_fixture_reads_without_errors() -> None:
    parsed = importer.parse_staff_csv(
        fixture_bytes("clean_utf8_bom.csv"), site_codes=SITES, known_employee_ids=()
    )
    assert parsed.encoding == "utf-8-sig"
    assert parsed.errors == []
    assert [r.employee_id for r in parsed.records] == ["T0001", "T0002", "T0003", "T0004", "T0005", "T0006"]
    assert parsed.records[3].language == "en"


def test_messy_shift_jis_fixture() -> None:
    parsed = importer.parse_staff_csv(
        fixture_bytes("messy_sjis.csv"), site_codes=SITES, known_employee_ids=()
    )
    assert parsed.encoding == "cp932"
    assert [(e.line, e.field) for e in parsed.errors] == [
        (5, "employee_id"),
        (6, "site"),
        (7, "work_phone"),
        (8, "work_email"),
        (9, "home_prefecture"),
        (10, "language"),
        (11, "can_work_from_home"),
        (12, "manager_employee_id"),
        (13, "employee_id"),
        (14, "employee_id"),
    ]
    good = {r.employee_id: r for r in parsed.records}
    assert sorted(good) == ["S1001", "S1002", "S1003", "S1015"]
    assert good["S1001"].work_phone == "+819000000101"
    assert good["S1001"].name_kana == "ヤマダ タロウ"
    assert good["S1001"].can_work_from_home is True
    assert good["S1002"].site == "TKY"
    assert good["S1002"].home_prefecture == "13"
    assert good["S1003"].name == "髙橋 一郎"
    assert good["S1003"].home_prefecture == "27"
    assert good["S1015"].name.startswith("㈱")
    assert good["S1015"].work_phone == "+819000000115"
    assert good["S1015"].site == "FUK"


# --- diff ---------------------------------------------------------------------------------------------------


def current(*records: StaffRecord) -> dict[str, StaffRecord]:
    return {r.employee_id: r for r in records}


BASE = StaffRecord(
    employee_id="A001", name="山田 太郎", department="東京受付", site="TKY", work_phone="+819000000001"
)


def test_diff_lists_additions_field_changes_and_unchanged() -> None:
    records = [
        StaffRecord(
            employee_id="A001",
            name="山田 太郎",
            department="東京受付",
            site="OSA",
            work_phone="+819000000099",
        ),
        StaffRecord(employee_id="A002", name="新人 花子", department="品質管理部"),
        StaffRecord(employee_id="A003", name="佐藤 一郎"),
    ]
    diff = importer.diff_staff(
        records,
        current(BASE, StaffRecord(employee_id="A003", name="佐藤 一郎")),
        mode="update",
        existing_departments=["東京受付"],
    )
    assert [r.employee_id for r in diff.added] == ["A002"]
    assert [(c.employee_id, [(f.field, f.before, f.after) for f in c.changes]) for c in diff.changed] == [
        ("A001", [("site", "TKY", "OSA"), ("work_phone", "+819000000001", "+819000000099")])
    ]
    assert diff.unchanged == 1
    assert diff.removed == ()
    assert diff.departments_to_create == ("品質管理部",)


def test_diff_ignores_fields_the_file_does_not_have() -> None:
    partial = StaffRecord(employee_id="A001", name="山田 太郎", provided=frozenset({"employee_id", "name"}))
    diff = importer.diff_staff([partial], current(BASE), mode="update", existing_departments=[])
    assert diff.changed == ()
    assert diff.unchanged == 1


def test_replace_mode_lists_everyone_missing_except_people_on_bad_rows() -> None:
    people = current(
        BASE, StaffRecord(employee_id="A002", name="二郎"), StaffRecord(employee_id="A003", name="三郎")
    )
    diff = importer.diff_staff(
        [BASE], people, mode="replace", existing_departments=["東京受付"], keep_employee_ids={"A003"}
    )
    assert [(r.employee_id, r.name) for r in diff.removed] == [("A002", "二郎")]
    update = importer.diff_staff([BASE], people, mode="update", existing_departments=["東京受付"])
    assert update.removed == ()


def test_digest_changes_when_the_outcome_changes() -> None:
    one = importer.diff_staff([BASE], {}, mode="update", existing_departments=[])
    same = importer.diff_staff([BASE], {}, mode="update", existing_departments=[])
    other = importer.diff_staff([BASE], current(BASE), mode="update", existing_departments=[])
    assert one.digest() == same.digest() != other.digest()


# --- export -------------------------------------------------------------------------------------------------


def test_export_reimports_to_the_same_records_even_with_formula_like_cells() -> None:
    records = [
        StaffRecord(employee_id="A001", name="=HYPERLINK(\"x\")", name_kana="@カナ", department="-部", site="TKY",
                    work_phone="+819000000001", work_email="a@example.com", home_prefecture="13", language="en",
                    can_work_from_home=True, manager_employee_id=""),
        StaffRecord(employee_id="A002", name="山田, \"太郎\"", manager_employee_id="A001"),
    ]  # fmt: skip
    data = importer.write_staff_csv(records)
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"'=HYPERLINK" in data  # Excel shows it as text instead of running it
    parsed = importer.parse_staff_csv(data, site_codes=SITES, known_employee_ids=())
    assert parsed.errors == []
    assert [r.as_dict() for r in parsed.records] == [r.as_dict() for r in records]


# --- API items ----------------------------------------------------------------------------------------------


def test_json_items_keep_absent_fields_absent_and_check_types() -> None:
    rows, errors = importer.rows_from_json(
        [
            {"employee_id": "A001", "name": "山田 太郎", "can_work_from_home": True, "work_phone": None},
            {"employee_id": "A002", "name": 5, "can_work_from_home": "yes", "salary": 1},
            "not an object",
        ]
    )
    assert rows[0].values == {
        "employee_id": "A001",
        "name": "山田 太郎",
        "can_work_from_home": "true",
        "work_phone": "",
    }
    assert [(e.line, e.field, e.text) for e in errors] == [
        (1, "name", "must be a string"),
        (1, "can_work_from_home", "must be true or false"),
        (1, "salary", "unknown field salary"),
        (2, None, "each item must be an object"),
    ]
