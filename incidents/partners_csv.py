"""Partner and customer contact lists from CSV, as Excel writes them. Pure: bytes in, dataclasses out.

Decoding (UTF-8 with or without BOM, Shift_JIS/cp932) and phone/e-mail normalisation are the staff importer's,
so both lists behave the same. A contact is keyed on company + person: importing the same list twice changes
nothing, and a changed phone number updates the contact instead of adding a second one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.directory.importer import FileError, decode, normalise_email, normalise_phone

FIELDS: tuple[str, ...] = ("company", "person", "kind", "phone", "email", "language", "note")
HEADERS: dict[str, str] = {
    "company": "company",
    "会社名": "company",
    "会社": "company",
    "取引先名": "company",
    "person": "person",
    "name": "person",
    "担当者": "person",
    "担当者名": "person",
    "氏名": "person",
    "kind": "kind",
    "区分": "kind",
    "種別": "kind",
    "phone": "phone",
    "電話": "phone",
    "電話番号": "phone",
    "email": "email",
    "e-mail": "email",
    "メール": "email",
    "メールアドレス": "email",
    "language": "language",
    "言語": "language",
    "note": "note",
    "備考": "note",
}
KINDS: dict[str, str] = {
    "": "partner",
    "partner": "partner",
    "取引先": "partner",
    "協力会社": "partner",
    "customer": "customer",
    "client": "customer",
    "顧客": "customer",
    "お客様": "customer",
}
MAX_LENGTH = {"company": 200, "person": 200, "note": 2000}

__all__ = [
    "FIELDS",
    "FileError",
    "ParsedPartners",
    "PartnerPlan",
    "PartnerRecord",
    "RowError",
    "parse",
    "plan",
]


@dataclass(frozen=True)
class RowError:
    line: int
    field: str | None
    message: str
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.message.format(**self.params) if self.params else self.message


@dataclass(frozen=True)
class PartnerRecord:
    company: str
    person: str = ""
    kind: str = "partner"
    phone: str = ""
    email: str = ""
    language: str = "ja"
    note: str = ""
    line: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return contact_key(self.company, self.person)

    def values(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FIELDS}


def contact_key(company: str, person: str) -> tuple[str, str]:
    """Company and person as compared: width, case and spacing do not make a different contact."""
    return (
        " ".join(unicodedata.normalize("NFKC", company).casefold().split()),
        " ".join(unicodedata.normalize("NFKC", person).casefold().split()),
    )


@dataclass(frozen=True)
class ParsedPartners:
    records: list[PartnerRecord]
    errors: list[RowError]
    encoding: str

    @property
    def bad_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})


def _header(cells: Sequence[str]) -> list[str | None]:
    columns: list[str | None] = []
    unknown = []
    for cell in cells:
        key = unicodedata.normalize("NFKC", cell).strip().lower()
        if not key:
            columns.append(None)
            continue
        name = HEADERS.get(key)
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
    if "company" not in columns:
        raise FileError("missing required columns: {columns}", columns="company")
    if "phone" not in columns and "email" not in columns:
        raise FileError("missing required columns: {columns}", columns="phone / email")
    return columns


def read_record(
    line: int, values: Mapping[str, str], region: str
) -> tuple[PartnerRecord | None, list[RowError]]:
    errors: list[RowError] = []
    text = {name: values.get(name, "").strip() for name in FIELDS}
    for name, limit in MAX_LENGTH.items():
        if len(text[name]) > limit:
            errors.append(
                RowError(line, name, "value too long (at most {max} characters)", {"max": str(limit)})
            )
    if not text["company"]:
        errors.append(RowError(line, "company", "the company is empty"))
    phone = ""
    if text["phone"]:
        try:
            phone = normalise_phone(text["phone"], region)
        except ValueError:
            errors.append(RowError(line, "phone", "invalid phone number {value}", {"value": text["phone"]}))
    email = ""
    if text["email"]:
        try:
            email = normalise_email(text["email"])
        except ValueError:
            errors.append(RowError(line, "email", "invalid e-mail address {value}", {"value": text["email"]}))
    if not text["phone"] and not text["email"]:
        errors.append(RowError(line, None, "a phone number or an e-mail address is required"))
    kind = KINDS.get(unicodedata.normalize("NFKC", text["kind"]).lower())
    if kind is None:
        errors.append(
            RowError(line, "kind", "kind must be customer or partner, not {value}", {"value": text["kind"]})
        )
    language = unicodedata.normalize("NFKC", text["language"]).lower()
    if language in ("", "ja", "jp", "日本語"):
        language = "ja"
    elif language in ("en", "english", "英語"):
        language = "en"
    else:
        errors.append(
            RowError(line, "language", "language must be ja or en, not {value}", {"value": text["language"]})
        )
    if errors:
        return None, errors
    record = PartnerRecord(
        company=" ".join(unicodedata.normalize("NFKC", text["company"]).split()),
        person=" ".join(unicodedata.normalize("NFKC", text["person"]).split()),
        kind=kind or "partner",
        phone=phone,
        email=email,
        language=language,
        note=text["note"],
        line=line,
    )
    return record, []


def parse(data: bytes, *, encoding: str | None = None, region: str = "JP") -> ParsedPartners:
    """Read a contact list; every bad row is reported with its line number (the file's own numbering)."""
    text, used = decode(data, encoding)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns: list[str | None] | None = None
    records: list[PartnerRecord] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    previous = 0
    for cells in reader:
        line = previous + 1
        previous = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if columns is None:
            columns = _header(cells)
            continue
        if any(c.strip() for c in cells[len(columns) :]):
            errors.append(RowError(line, None, "the row has more cells than the header has columns"))
            continue
        values = {name: cell for name, cell in zip(columns, cells, strict=False) if name is not None}
        # Excel's protection against formulas: a leading apostrophe is not part of the value.
        values = {k: v[1:] if v.startswith("'") else v for k, v in values.items()}
        record, row_errors = read_record(line, values, region)
        if record is None:
            errors.extend(row_errors)
            continue
        if record.key in seen:
            errors.append(
                RowError(
                    line,
                    "company",
                    "the same contact is already on line {other}",
                    {"other": str(seen[record.key])},
                )
            )
            continue
        seen[record.key] = line
        records.append(record)
    if columns is None:
        raise FileError("the file is empty")
    return ParsedPartners(records=records, errors=errors, encoding=used)


@dataclass(frozen=True)
class PartnerPlan:
    """What applying the list would do. Nothing is ever removed by an import."""

    added: list[PartnerRecord]
    updated: list[tuple[PartnerRecord, dict[str, tuple[str, str]]]]  # record, field → (before, after)
    unchanged: list[PartnerRecord]
    errors: list[RowError]
    encoding: str

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "bad_lines": len({e.line for e in self.errors}),
        }


def plan(parsed: ParsedPartners, existing: Mapping[tuple[str, str], Mapping[str, str]]) -> PartnerPlan:
    """Compare the list with the contacts there are (``key → current values``)."""
    added: list[PartnerRecord] = []
    updated: list[tuple[PartnerRecord, dict[str, tuple[str, str]]]] = []
    unchanged: list[PartnerRecord] = []
    for record in parsed.records:
        current = existing.get(record.key)
        if current is None:
            added.append(record)
            continue
        changes = {
            name: (str(current.get(name, "")), value)
            for name, value in record.values().items()
            if name not in ("company", "person") and str(current.get(name, "")) != value
        }
        if changes:
            updated.append((record, changes))
        else:
            unchanged.append(record)
    return PartnerPlan(
        added=added, updated=updated, unchanged=unchanged, errors=parsed.errors, encoding=parsed.encoding
    )
