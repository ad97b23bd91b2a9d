"""Reading inventory lots from a CSV file as facilities staff write them: pure, no database.

Columns (English or Japanese headers, any order): ``site_code``/拠点, ``item``/品目, ``quantity``/数量,
``unit``/単位, ``location``/保管場所, ``expiry_date``/賞味期限, ``note``/備考. Files come from Excel as UTF-8 (with or
without BOM) or as Shift_JIS (cp932); digits may be full-width; dates may be written the Japanese way
(2027/3/31, 2027年3月31日, 令和9年3月31日, R9.3.31) or as a month only (2027/03 = the last day of March).

Every problem is reported with the file's line number (the header is line 1), as a message id plus parameters so
the edge can show it in the reader's language. Whether rows with problems stop the import is the service's call.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

COLUMNS = ("site_code", "item", "quantity", "unit", "location", "expiry_date", "note")

# Normalized header text → column. Normalization: NFKC, trimmed, lower case, spaces and hyphens as "_".
HEADER_ALIASES: dict[str, str] = {
    "site_code": "site_code",
    "site": "site_code",
    "拠点": "site_code",
    "拠点コード": "site_code",
    "item": "item",
    "品目": "item",
    "品名": "item",
    "quantity": "quantity",
    "qty": "quantity",
    "数量": "quantity",
    "unit": "unit",
    "単位": "unit",
    "location": "location",
    "storage_location": "location",
    "保管場所": "location",
    "expiry_date": "expiry_date",
    "expires_on": "expiry_date",
    "expiry": "expiry_date",
    "賞味期限": "expiry_date",
    "消費期限": "expiry_date",
    "使用期限": "expiry_date",
    "有効期限": "expiry_date",
    "note": "note",
    "lot_note": "note",
    "備考": "note",
    "メモ": "note",
}

MAX_DECIMALS = 3  # the lots table keeps three decimals
MAX_QUANTITY = Decimal("99999999999")
MAX_TEXT = {"location": 120, "site_code": 20, "unit": 20, "item": 100}
# Far more lots than any organization keeps; beyond it a file is a mistake, read no further.
MAX_LINES = 50_000

# Japanese eras still found on long-life goods: (first day, last day or None, year offset).
ERAS: dict[str, tuple[date, date | None, int]] = {
    "令和": (date(2019, 5, 1), None, 2018),
    "平成": (date(1989, 1, 8), date(2019, 4, 30), 1988),
}
ERA_LETTERS = {"r": "令和", "h": "平成"}


class CellError(ValueError):
    """A cell (or the file) cannot be read; carries a message id and its parameters like :class:`RowProblem`."""

    def __init__(self, message: str, **params: str) -> None:
        super().__init__(message.format(**params) if params else message)
        self.message = message
        self.params = params


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str  # message id, English, with {placeholders}
    params: dict[str, str] = field(default_factory=dict)

    def text(self, translate: object = None) -> str:
        """The message in English, or through ``translate(message, **params)`` (e.g. ``core.i18n.gettext``)."""
        if callable(translate):
            return str(translate(self.message, **self.params))
        return self.message.format(**self.params) if self.params else self.message


@dataclass(frozen=True)
class LotRow:
    """One well-formed line: still to be checked against the organization's sites and catalogue."""

    line: int
    site_code: str
    item: str
    quantity: Decimal
    unit: str
    location: str
    expires_on: date | None
    note: str


@dataclass
class ParsedFile:
    rows: list[LotRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    encoding: str = ""
    lines: int = 0  # data lines read (blank ones not counted)


def normalize(text: str) -> str:
    """NFKC (full-width digits and letters become ASCII), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def _header_key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", normalize(text).lower())


def decode(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read as: UTF-8 (BOM or not), else cp932 (Excel's
    "CSV" on Japanese Windows)."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932"), "cp932"
    except UnicodeDecodeError as exc:
        raise CellError("the file is neither UTF-8 nor Shift_JIS (cp932) text") from exc


def parse_quantity(text: str) -> Decimal:
    cleaned = normalize(text).replace(",", "").replace("_", "")
    if not cleaned:
        raise CellError("quantity is missing")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise CellError("quantity {value} is not a number", value=text.strip()) from None
    if not value.is_finite():
        raise CellError("quantity {value} is not a number", value=text.strip())
    if value <= 0:
        raise CellError("quantity must be more than zero")
    if value > MAX_QUANTITY:
        raise CellError("quantity {value} is too large", value=text.strip())
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise CellError("quantity {value} has more than three decimals", value=text.strip())
    return value


_TIME_SUFFIX = re.compile(r"\s+\d{1,2}:\d{2}(:\d{2})?$")
_WESTERN = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*(?:[-/.月]\s*(\d{1,2})\s*日?|月?)$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_ERA = re.compile(
    r"^(令和|平成|[RrHh])\s*(\d{1,2}|元)\s*[年./-]\s*(\d{1,2})\s*(?:[月./-]\s*(\d{1,2})\s*日?|月?)$"
)


def _last_day(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days


def _make_date(original: str, year: int, month: int, day: int | None) -> date:
    if not 1 <= month <= 12:
        raise CellError("{value} is not a valid date", value=original)
    try:
        return date(year, month, day if day is not None else _last_day(year, month))
    except ValueError:
        raise CellError("{value} is not a valid date", value=original) from None


def parse_date(text: str) -> date | None:
    """An expiry date, or None for an empty cell. A month without a day is the last day of that month (how
    long-life goods print it: 2027.03)."""
    original = text.strip()
    value = _TIME_SUFFIX.sub("", normalize(text))
    if not value:
        return None
    if match := _COMPACT.match(value):
        return _make_date(original, int(match[1]), int(match[2]), int(match[3]))
    if match := _WESTERN.match(value):
        return _make_date(original, int(match[1]), int(match[2]), int(match[3]) if match[3] else None)
    if match := _ERA.match(value):
        era = ERA_LETTERS.get(match[1].lower(), match[1])
        first, last, offset = ERAS[era]
        era_year = 1 if match[2] == "元" else int(match[2])
        if era_year < 1:
            raise CellError("{value} is not a valid date", value=original)
        result = _make_date(original, offset + era_year, int(match[3]), int(match[4]) if match[4] else None)
        if result < first.replace(day=1) or (last is not None and result > last):
            raise CellError("{value} is outside the {era} era", value=original, era=era)
        return result
    raise CellError("{value} is not a date (write 2027-03-31, 2027/3/31 or 令和9年3月31日)", value=original)


def parse_lots(data: bytes, *, default_site_code: str = "") -> ParsedFile:
    """Every line of the file as a :class:`LotRow` or as problems; blank lines are skipped.

    ``default_site_code`` fills rows that leave the site empty (or files without a site column), for uploads made
    from one site's page.
    """
    result = ParsedFile()
    try:
        text, result.encoding = decode(data)
    except CellError as exc:
        result.problems.append(RowProblem(1, exc.message, exc.params))
        return result
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        result.problems.append(RowProblem(1, "the file is empty"))
        return result
    except csv.Error as exc:
        result.problems.append(RowProblem(1, "the line cannot be read as CSV: {error}", {"error": str(exc)}))
        return result
    columns = _map_header(header, result, default_site_code=default_site_code)
    if columns is None:
        return result
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.problems.append(
                RowProblem(reader.line_num, "the line cannot be read as CSV: {error}", {"error": str(exc)})
            )
            break
        if not any(cell.strip() for cell in cells):
            continue
        if result.lines >= MAX_LINES:
            result.problems.append(
                RowProblem(
                    reader.line_num,
                    "the file has more than {max} lines; split it into smaller files",
                    {"max": f"{MAX_LINES:,}"},
                )
            )
            break
        result.lines += 1
        # A quoted cell may span lines: report the line the row starts on.
        line = reader.line_num - sum(cell.count("\n") for cell in cells)
        _parse_row(line, cells, columns, result, default_site_code=default_site_code)
    return result


def _map_header(header: list[str], result: ParsedFile, *, default_site_code: str) -> dict[str, int] | None:
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = HEADER_ALIASES.get(_header_key(name))
        if key is None:
            if name.strip():
                result.problems.append(RowProblem(1, "unknown column {name}", {"name": name.strip()}))
            continue
        if key in columns:
            result.problems.append(RowProblem(1, "column {name} appears twice", {"name": name.strip()}))
            continue
        columns[key] = index
    required = ["item", "quantity"] + ([] if default_site_code else ["site_code"])
    missing = [name for name in required if name not in columns]
    if missing:
        result.problems.append(
            RowProblem(1, "required columns are missing: {columns}", {"columns": ", ".join(missing)})
        )
    return None if result.problems else columns


def _parse_row(
    line: int, cells: list[str], columns: dict[str, int], result: ParsedFile, *, default_site_code: str
) -> None:
    if len(cells) > len(columns) and any(cell.strip() for cell in cells[max(columns.values()) + 1 :]):
        result.problems.append(RowProblem(line, "the line has more cells than the header"))
        return

    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    problems: list[RowProblem] = []
    site_code = normalize(cell("site_code")) or default_site_code
    item = normalize(cell("item"))
    if not site_code:
        problems.append(RowProblem(line, "site code is missing"))
    if not item:
        problems.append(RowProblem(line, "item is missing"))
    quantity = Decimal(0)
    try:
        quantity = parse_quantity(cell("quantity"))
    except CellError as exc:
        problems.append(RowProblem(line, exc.message, exc.params))
    expires_on = None
    try:
        expires_on = parse_date(cell("expiry_date"))
    except CellError as exc:
        problems.append(RowProblem(line, exc.message, exc.params))
    location = normalize(cell("location"))
    unit = normalize(cell("unit"))
    for name, value in (("location", location), ("site_code", site_code), ("unit", unit), ("item", item)):
        if len(value) > MAX_TEXT[name]:
            problems.append(
                RowProblem(
                    line,
                    "{column} is longer than {limit} characters",
                    {"column": name, "limit": str(MAX_TEXT[name])},
                )
            )
    if problems:
        result.problems.extend(problems)
        return
    result.rows.append(
        LotRow(
            line=line,
            site_code=site_code,
            item=item,
            quantity=quantity,
            unit=unit,
            location=location,
            expires_on=expires_on,
            note=cell("note").strip(),
        )
    )
