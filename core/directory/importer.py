"""Staff lists from HR: reading the CSV files Excel writes, checking each row, and the diff against the directory.

Pure: plain values in, dataclasses out. The service layer supplies what the database knows (site codes, who is
already employed, the current records) and applies the resulting diff.

A column missing from the file (or a key missing from an API item) leaves that field as it is; ``employee_id``
and ``name`` are always required.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import phonenumbers

from core.directory.prefectures import prefecture_code

Mode = Literal["update", "replace"]
MODES: tuple[Mode, ...] = ("update", "replace")

FIELDS: tuple[str, ...] = (
    "employee_id",
    "name",
    "name_kana",
    "department",
    "site",
    "work_phone",
    "work_email",
    "home_prefecture",
    "language",
    "can_work_from_home",
    "manager_employee_id",
)
REQUIRED_FIELDS: tuple[str, ...] = ("employee_id", "name")
JAPANESE_HEADERS: dict[str, str] = {
    "社員番号": "employee_id",
    "氏名": "name",
    "氏名カナ": "name_kana",
    "部署": "department",
    "拠点": "site",
    "会社電話": "work_phone",
    "会社メール": "work_email",
    "居住都道府県": "home_prefecture",
    "言語": "language",
    "在宅勤務可": "can_work_from_home",
    "上長社員番号": "manager_employee_id",
}
MAX_LENGTH: dict[str, int] = {
    "employee_id": 40,
    "name": 200,
    "name_kana": 200,
    "department": 200,
    "site": 20,
    "work_email": 254,
    "manager_employee_id": 40,
}
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "はい", "○", "〇", "◯"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "いいえ", "×", "✕", "", "-"})
# Dash-like characters Japanese input methods produce between digits (NFKC leaves most of them alone).
_DASHES = dict.fromkeys(map(ord, "‐‑‒–—―−ーｰ－﹣"), "-")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
# Cells Excel would run as a formula; exported with a leading apostrophe, which the importer removes again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_BOM = b"\xef\xbb\xbf"
# An organization's whole staff fits many times over; a file beyond these is a mistake (or an attack), refused
# before it costs minutes and gigabytes. The HR-sync API takes the same number of people per request.
MAX_ROWS = 100_000
MAX_FILE_BYTES = 20 * 2**20


class FileError(Exception):
    """The whole file is unusable (cannot be decoded, or its header is wrong). ``message`` is translatable."""

    def __init__(self, message: str, **params: str) -> None:
        self.message = message
        self.params = params
        super().__init__(self.text)

    @property
    def text(self) -> str:
        return self.message.format(**self.params) if self.params else self.message


@dataclass(frozen=True)
class RowError:
    """One reason a row is refused. ``line`` is the file's line number (or the item's index in an API call)."""

    line: int
    field: str | None
    message: str
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    employee_id: str = ""

    @property
    def text(self) -> str:
        return self.message.format(**self.params) if self.params else self.message

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "employee_id": self.employee_id, "message": self.text}


@dataclass(frozen=True)
class RawRow:
    """A row as written: field name → text. Fields not in the file are absent (and left unchanged)."""

    number: int
    values: Mapping[str, str]


@dataclass(frozen=True)
class StaffRecord:
    """One person as HR describes them, normalised (E.164 phone, prefecture code, ...)."""

    employee_id: str
    name: str = ""
    name_kana: str = ""
    department: str = ""
    site: str = ""
    work_phone: str = ""
    work_email: str = ""
    home_prefecture: str = ""
    language: str = "ja"
    can_work_from_home: bool = False
    manager_employee_id: str = ""
    provided: frozenset[str] = frozenset(FIELDS)
    line: int = 0

    def get(self, name: str) -> str | bool:
        value: str | bool = getattr(self, name)
        return value

    def as_dict(self) -> dict[str, str | bool]:
        return {name: self.get(name) for name in FIELDS}


@dataclass(frozen=True)
class ParsedStaff:
    records: list[StaffRecord]
    errors: list[RowError]
    encoding: str
    columns: tuple[str, ...]
    rows_read: int

    @property
    def bad_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})

    @property
    def unusable_employee_ids(self) -> frozenset[str]:
        return frozenset(e.employee_id for e in self.errors if e.employee_id)


# --- decoding -----------------------------------------------------------------------------------------------

_ENCODING_ALIASES = {
    "sjis": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "shiftjis": "cp932",
    "ms932": "cp932",
    "windows-31j": "cp932",
    "cp932": "cp932",
    "utf8": "utf-8-sig",
    "utf-8": "utf-8-sig",
    "utf-8-sig": "utf-8-sig",
    "utf_8": "utf-8-sig",
}


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Bytes → text and the encoding used. Without ``encoding``: UTF-8 (BOM or not), else Shift_JIS (cp932).

    Excel's "CSV UTF-8" adds a BOM, its plain "CSV" on Japanese Windows writes cp932 — a superset of Shift_JIS
    with the NEC/IBM extensions (①, ㈱, 髙) that strict Shift_JIS codecs refuse.
    """
    if len(data) > MAX_FILE_BYTES:
        raise FileError(
            "the file is larger than {max} MB; split it into smaller files", max=str(MAX_FILE_BYTES // 2**20)
        )
    if encoding:
        name = _ENCODING_ALIASES.get(encoding.strip().lower(), encoding.strip().lower())
        try:
            return data.decode(name), name
        except LookupError:
            raise FileError("unknown encoding {encoding}", encoding=encoding) from None
        except UnicodeDecodeError as exc:
            raise FileError(
                "the file is not valid {encoding} (byte {position})", encoding=name, position=str(exc.start)
            ) from None
    if data.startswith(_BOM):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise FileError(
                "the file is not valid {encoding} (byte {position})",
                encoding="utf-8-sig",
                position=str(exc.start),
            ) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932"), "cp932"
    except UnicodeDecodeError:
        raise FileError("the file is neither UTF-8 nor Shift_JIS (cp932); save it as CSV UTF-8") from None


# --- header -------------------------------------------------------------------------------------------------


def _header_key(cell: str) -> str:
    return unicodedata.normalize("NFKC", cell).strip().strip('"').lower().replace(" ", "_")


_HEADER_LOOKUP: dict[str, str] = {name: name for name in FIELDS}
_HEADER_LOOKUP.update({_header_key(ja): name for ja, name in JAPANESE_HEADERS.items()})


def read_header(cells: Sequence[str]) -> list[str | None]:
    """Map each header cell to a field (None for an empty trailing cell); unknown or missing columns refuse
    the whole file, since guessing would put values into the wrong field."""
    columns: list[str | None] = []
    unknown: list[str] = []
    for cell in cells:
        key = _header_key(cell)
        if not key:
            columns.append(None)
            continue
        name = _HEADER_LOOKUP.get(key)
        if name is None:
            unknown.append(cell.strip())
        elif name in columns:
            raise FileError("column {column} appears twice", column=cell.strip())
        columns.append(name)
    if unknown:
        raise FileError(
            "unknown columns: {columns} (expected {expected})",
            columns=", ".join(unknown),
            expected=", ".join(FIELDS),
        )
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        raise FileError("missing required columns: {columns}", columns=", ".join(missing))
    return columns


def _sniff_delimiter(text: str) -> str:
    first_line = text.split("\n", 1)[0]
    return "\t" if first_line.count("\t") > first_line.count(",") else ","


def read_csv_rows(text: str) -> tuple[list[str], list[RawRow], list[RowError]]:
    """Text → (columns, rows with their starting line numbers, rows with too many cells)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text))
    header: list[str] | None = None
    columns: list[str | None] = []
    rows: list[RawRow] = []
    errors: list[RowError] = []
    previous_line = 0
    try:
        for cells in reader:
            line = previous_line + 1
            previous_line = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # blank lines and Excel's ",,,,," rows
            if header is None:
                header = cells
                columns = read_header(cells)
                continue
            if len(rows) >= MAX_ROWS:
                raise FileError(
                    "the file has more than {max} people; split it into files of at most {max} rows",
                    max=f"{MAX_ROWS:,}",
                )
            _read_row(cells, line, columns, rows, errors)
    except csv.Error as exc:
        # A cell larger than the csv module takes, a stray quote at the end…: the line says where to look.
        raise FileError(
            "line {line} cannot be read as CSV ({error})", line=str(reader.line_num), error=str(exc)
        ) from None
    if header is None:
        raise FileError("the file is empty")
    return [c for c in columns if c is not None], rows, errors


def _read_row(
    cells: list[str], line: int, columns: list[str | None], rows: list[RawRow], errors: list[RowError]
) -> None:
    values: dict[str, str] = {}
    for column, cell in zip(columns, cells, strict=False):
        if column is not None:
            values[column] = _unescape_formula(cell)
    extra = cells[len(columns) :]
    if any(c.strip() for c in extra):
        errors.append(
            RowError(
                line=line,
                field=None,
                message="the row has more cells than the header has columns",
                employee_id=clean_id(values.get("employee_id", "")),
            )
        )
    rows.append(RawRow(number=line, values=values))


def _unescape_formula(cell: str) -> str:
    if cell.startswith("'") and cell[1:].startswith(_FORMULA_START):
        return cell[1:]
    return cell


# --- values -------------------------------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, message: str, **params: str) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


def clean_id(value: str) -> str:
    """Employee ids as typed: full-width digits and stray spaces removed."""
    return unicodedata.normalize("NFKC", value).strip()


def normalise_phone(value: str, region: str = "JP") -> str:
    """Any way people write a phone number → E.164; ValueError when it cannot be a phone number."""
    text = unicodedata.normalize("NFKC", value).translate(_DASHES).strip()
    if not text:
        raise ValueError("empty phone number")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(str(exc)) from None
    # Fictional numbers (090-0000-xxxx, 555-01xx) are not "valid" in the numbering plan but have the right
    # length for a mobile or fixed line; a wrong digit count is refused.
    if not (
        phonenumbers.is_valid_number(number)
        or phonenumbers.is_possible_number_for_type(number, phonenumbers.PhoneNumberType.MOBILE)
        or phonenumbers.is_possible_number_for_type(number, phonenumbers.PhoneNumberType.FIXED_LINE)
    ):
        raise ValueError("not a phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(value: str) -> str:
    """Trimmed, domain in lower case; ValueError when it is not an e-mail address."""
    text = unicodedata.normalize("NFKC", value).strip()
    if not _EMAIL.match(text) or len(text) > 254:
        raise ValueError("not an e-mail address")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def parse_bool(value: str) -> bool:
    key = unicodedata.normalize("NFKC", value).strip().lower()
    if key in TRUE_WORDS:
        return True
    if key in FALSE_WORDS:
        return False
    raise ValueError(value)


def _text(name: str, value: str) -> str:
    text = value.strip()
    limit = MAX_LENGTH.get(name)
    if limit is not None and len(text) > limit:
        raise _Bad("value too long (at most {max} characters)", max=str(limit))
    return text


def _field_value(name: str, raw: str, *, site_codes: Mapping[str, str], region: str) -> str | bool:
    if name in ("employee_id", "manager_employee_id"):
        return _text(name, clean_id(raw))
    if name == "name":
        text = _text(name, raw)
        if not text:
            raise _Bad("name is empty")
        return text
    if name == "name_kana":
        # Half-width katakana (ｶﾀｶﾅ) from old HR systems become full-width.
        return _text(name, unicodedata.normalize("NFKC", raw))
    if name == "department":
        return _text(name, raw)
    if name == "site":
        code = clean_id(raw)
        if not code:
            return ""
        known = site_codes.get(code.upper())
        if known is None:
            raise _Bad("unknown site code {value}", value=code)
        return known
    if name == "work_phone":
        if not raw.strip():
            return ""
        try:
            return normalise_phone(raw, region)
        except ValueError:
            raise _Bad("invalid phone number {value}", value=raw.strip()) from None
    if name == "work_email":
        if not raw.strip():
            return ""
        try:
            return _text(name, normalise_email(raw))
        except ValueError:
            raise _Bad("invalid e-mail address {value}", value=raw.strip()) from None
    if name == "home_prefecture":
        if not raw.strip():
            return ""
        prefecture = prefecture_code(raw)
        if prefecture is None:
            raise _Bad(
                "invalid prefecture {value} (use a code 01–47 or a name such as 東京都)", value=raw.strip()
            )
        return prefecture
    if name == "language":
        key = unicodedata.normalize("NFKC", raw).strip().lower()
        if key in ("", "ja", "jp", "日本語"):
            return "ja"
        if key in ("en", "english", "英語"):
            return "en"
        raise _Bad("language must be ja or en, not {value}", value=raw.strip())
    if name == "can_work_from_home":
        try:
            return parse_bool(raw)
        except ValueError:
            raise _Bad(
                "{value} is not yes or no (use 1/0, true/false, yes/no, はい/いいえ, ○/×)", value=raw.strip()
            ) from None
    raise _Bad("unknown field")


def validate_rows(
    rows: Sequence[RawRow],
    *,
    site_codes: Collection[str],
    known_employee_ids: Collection[str],
    region: str = "JP",
    errors: Iterable[RowError] = (),
) -> tuple[list[StaffRecord], list[RowError]]:
    """Check every row; returns the good records and every reason a row is bad (a row may have several).

    ``known_employee_ids``: people already in the directory who will still be there afterwards, so that a
    manager may be one of them (in replace mode only the file counts).
    """
    found_errors = list(errors)
    sites = {code.upper(): code for code in site_codes}
    candidates: list[StaffRecord] = []
    lines_by_id: dict[str, list[int]] = {}
    for row in rows:
        employee_id = clean_id(row.values.get("employee_id", ""))
        row_errors: list[RowError] = []
        if not employee_id:
            row_errors.append(RowError(line=row.number, field="employee_id", message="employee id is empty"))
        else:
            lines_by_id.setdefault(employee_id, []).append(row.number)
        values: dict[str, Any] = {}
        for name in FIELDS:
            if name not in row.values:
                continue
            try:
                values[name] = _field_value(name, row.values[name], site_codes=sites, region=region)
            except _Bad as bad:
                row_errors.append(
                    RowError(
                        line=row.number,
                        field=name,
                        message=bad.message,
                        params=bad.params,
                        employee_id=employee_id,
                    )
                )
        if "name" not in row.values:
            row_errors.append(
                RowError(line=row.number, field="name", message="name is empty", employee_id=employee_id)
            )
        if employee_id and values.get("manager_employee_id") == employee_id:
            row_errors.append(
                RowError(
                    line=row.number,
                    field="manager_employee_id",
                    message="a person cannot be their own manager",
                    employee_id=employee_id,
                )
            )
        found_errors.extend(row_errors)
        if employee_id:
            values.pop("employee_id", None)
            candidates.append(
                StaffRecord(
                    employee_id=employee_id,
                    line=row.number,
                    provided=frozenset(values) | {"employee_id"},
                    **values,
                )
            )

    for employee_id, lines in lines_by_id.items():
        if len(lines) > 1:
            # Every copy is refused: which one HR meant is not ours to guess.
            for line in lines:
                found_errors.append(
                    RowError(
                        line=line,
                        field="employee_id",
                        message="employee id {value} appears more than once (lines {lines})",
                        params={"value": employee_id, "lines": ", ".join(map(str, lines))},
                        employee_id=employee_id,
                    )
                )

    bad_lines = {e.line for e in found_errors}
    good = [r for r in candidates if r.line not in bad_lines]
    # A manager must exist afterwards: in a good row of this file or already in the directory. Dropping a
    # row can orphan another, so repeat until nothing changes.
    known = set(known_employee_ids)
    while True:
        present = known | {r.employee_id for r in good}
        orphans = [r for r in good if r.manager_employee_id and r.manager_employee_id not in present]
        if not orphans:
            break
        for r in orphans:
            in_file = r.manager_employee_id in lines_by_id
            found_errors.append(
                RowError(
                    line=r.line,
                    field="manager_employee_id",
                    message=(
                        "manager {value} is on a bad row"
                        if in_file
                        else "manager {value} is not in the file or the directory"
                    ),
                    params={"value": r.manager_employee_id},
                    employee_id=r.employee_id,
                )
            )
        orphan_lines = {r.line for r in orphans}
        good = [r for r in good if r.line not in orphan_lines]
    found_errors.sort(key=lambda e: (e.line, FIELDS.index(e.field) if e.field in FIELDS else -1))
    return good, found_errors


def parse_staff_csv(
    data: bytes,
    *,
    site_codes: Collection[str],
    known_employee_ids: Collection[str],
    encoding: str | None = None,
    region: str = "JP",
) -> ParsedStaff:
    """A whole CSV file → good records and bad rows. Raises :class:`FileError` when the file is unusable."""
    text, used = decode(data, encoding)
    columns, rows, errors = read_csv_rows(text)
    records, all_errors = validate_rows(
        rows, site_codes=site_codes, known_employee_ids=known_employee_ids, region=region, errors=errors
    )
    return ParsedStaff(
        records=records, errors=all_errors, encoding=used, columns=tuple(columns), rows_read=len(rows)
    )


def rows_from_json(items: Sequence[Any]) -> tuple[list[RawRow], list[RowError]]:
    """API items (JSON objects with the CSV fields as JSON types) → rows; ``line`` is the item's index."""
    rows: list[RawRow] = []
    errors: list[RowError] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(RowError(line=index, field=None, message="each item must be an object"))
            continue
        values: dict[str, str] = {}
        employee_id = item.get("employee_id")
        employee_id = employee_id.strip() if isinstance(employee_id, str) else ""
        for key, value in item.items():
            if key not in FIELDS:
                errors.append(
                    RowError(
                        line=index,
                        field=str(key),
                        message="unknown field {value}",
                        params={"value": str(key)},
                        employee_id=employee_id,
                    )
                )
            elif value is None:
                values[key] = ""
            elif key == "can_work_from_home":
                if isinstance(value, bool):
                    values[key] = "true" if value else "false"
                else:
                    errors.append(
                        RowError(
                            line=index, field=key, message="must be true or false", employee_id=employee_id
                        )
                    )
            elif isinstance(value, str):
                values[key] = value
            else:
                errors.append(
                    RowError(
                        line=index,
                        field=key,
                        message="must be a string",
                        employee_id=employee_id,
                    )
                )
        if "employee_id" not in values:
            values["employee_id"] = ""
        rows.append(RawRow(number=index, values=values))
    return rows, errors


# --- diff ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: str | bool
    after: str | bool


@dataclass(frozen=True)
class StaffChange:
    employee_id: str
    name: str
    line: int
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class Removal:
    employee_id: str
    name: str


@dataclass(frozen=True)
class ImportDiff:
    mode: Mode
    added: tuple[StaffRecord, ...]
    changed: tuple[StaffChange, ...]
    unchanged: int
    removed: tuple[Removal, ...]
    departments_to_create: tuple[str, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "departments_created": len(self.departments_to_create),
        }

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "counts": self.counts,
            "added": [{"line": r.line, **r.as_dict()} for r in self.added],
            "changed": [
                {
                    "employee_id": c.employee_id,
                    "name": c.name,
                    "line": c.line,
                    "changes": [{"field": f.field, "before": f.before, "after": f.after} for f in c.changes],
                }
                for c in self.changed
            ],
            "removed": [{"employee_id": r.employee_id, "name": r.name} for r in self.removed],
            "departments_to_create": list(self.departments_to_create),
        }

    def digest(self) -> str:
        """Fingerprint of what would happen, so an apply can refuse when the directory moved since the preview."""
        body = json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:32]


def diff_staff(
    records: Sequence[StaffRecord],
    current: Mapping[str, StaffRecord],
    *,
    mode: Mode,
    existing_departments: Collection[str],
    keep_employee_ids: Collection[str] = (),
) -> ImportDiff:
    """What applying ``records`` would do. In replace mode everyone not in the file is listed for removal —
    except ``keep_employee_ids`` (people on bad rows: a typo must not delete someone)."""
    added: list[StaffRecord] = []
    changed: list[StaffChange] = []
    unchanged = 0
    for record in records:
        before = current.get(record.employee_id)
        if before is None:
            added.append(record)
            continue
        changes = tuple(
            FieldChange(field=name, before=before.get(name), after=record.get(name))
            for name in FIELDS
            if name != "employee_id" and name in record.provided and record.get(name) != before.get(name)
        )
        if changes:
            changed.append(
                StaffChange(
                    employee_id=record.employee_id, name=record.name, line=record.line, changes=changes
                )
            )
        else:
            unchanged += 1
    removed: list[Removal] = []
    if mode == "replace":
        in_file = {r.employee_id for r in records} | set(keep_employee_ids)
        removed = [
            Removal(employee_id=eid, name=rec.name)
            for eid, rec in sorted(current.items())
            if eid not in in_file
        ]
    known_departments = set(existing_departments)
    new_departments: list[str] = []
    for record in records:
        name = record.department
        if "department" in record.provided and name and name not in known_departments:
            known_departments.add(name)
            new_departments.append(name)
    return ImportDiff(
        mode=mode,
        added=tuple(added),
        changed=tuple(changed),
        unchanged=unchanged,
        removed=tuple(removed),
        departments_to_create=tuple(new_departments),
    )


# --- export -------------------------------------------------------------------------------------------------


def _escape_formula(name: str, value: str) -> str:
    if name == "work_phone":
        return value  # E.164 starts with "+"; Excel reads it as a number, never as a formula
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_staff_csv(records: Iterable[StaffRecord]) -> bytes:
    """The directory as a CSV that Excel opens correctly (UTF-8 with BOM, CRLF) and that re-imports unchanged."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for record in records:
        row = []
        for name in FIELDS:
            value = record.get(name)
            row.append(("1" if value else "0") if isinstance(value, bool) else _escape_formula(name, value))
        writer.writerow(row)
    return _BOM + out.getvalue().encode("utf-8")


def format_phone(e164: str) -> str:
    """E.164 as people read it: ``+81 90-0000-0001``."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
