"""Read one JMA 防災情報XML bulletin into plain, frozen values.

Data types understood (Control/Title → code):

* earthquakes: 震度速報 (VXSE51), 震源に関する情報 (VXSE52), 震源・震度に関する情報 (VXSE53, including the
  遠地地震 variant without any intensity), plus the titles of VXSE56/60/61/62 so they are named correctly;
* Earthquake Early Warnings: 緊急地震速報（警報/予報/地震動予報） (VXSE43/44/45) and 緊急地震速報配信テスト
  (VXSE42) — recognised so that nothing downstream mistakes them for a trigger (``kind == "eew"``);
* tsunami: 津波警報・注意報・予報a (VTSE41), with 津波情報a (VTSE51) and 沖合の津波観測に関する情報 (VTSE52) named;
* weather warnings: 気象特別警報・警報・注意報 (VPWW53), 気象警報・注意報（Ｈ２７） (VPWW54) and the 2026 Ｒ０６
  family 気象警報・注意報（Ｒ０６）（大雨/土砂/高潮/暴風/波浪/大雪/その他注意報） (VPWW55-61).

Any other well-formed JMA bulletin still parses (``kind == "other"`` unless its body shows otherwise).

Every problem with the input — too large, empty, truncated, not XML, XML that is not a JMA bulletin, a DTD or
entity declaration (forbidden outright: bulletins never carry one, attackers do), a missing or unknown
Control/Status — raises :class:`BulletinError` and nothing else.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import defusedxml
import defusedxml.ElementTree as DefusedET

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

__all__ = [
    "DATA_TYPES_BY_TITLE",
    "INTENSITY_SCALE",
    "Bulletin",
    "BulletinError",
    "Hypocenter",
    "MunicipalityIntensity",
    "MunicipalityWarnings",
    "PrefectureIntensity",
    "TsunamiArea",
    "data_type_for_title",
    "intensity_rank",
    "normalize_intensity",
    "parse_bulletin",
]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024

JMA_NAMESPACE = "http://xml.kishou.go.jp/jmaxml1/"
# Head, Body (seismology1, meteorology1, volcanology1 ...) and jmx_eb/jmx_add all live under this root; matching on
# the root rather than on exact URIs keeps us working when JMA bumps a schema version.
_JMA_NS_PREFIX = JMA_NAMESPACE

STATUSES = ("通常", "訓練", "試験")
INFO_TYPES = ("発表", "訂正", "遅延", "取消")

DATA_TYPES_BY_TITLE: dict[str, str] = {
    "緊急地震速報配信テスト": "VXSE42",
    "緊急地震速報（警報）": "VXSE43",
    "緊急地震速報（予報）": "VXSE44",
    "緊急地震速報（地震動予報）": "VXSE45",
    "震度速報": "VXSE51",
    "震源に関する情報": "VXSE52",
    "震源・震度に関する情報": "VXSE53",
    "地震の活動状況等に関する情報": "VXSE56",
    "地震回数に関する情報": "VXSE60",
    "顕著な地震の震源要素更新のお知らせ": "VXSE61",
    "長周期地震動に関する観測情報": "VXSE62",
    "津波警報・注意報・予報a": "VTSE41",
    "津波情報a": "VTSE51",
    "沖合の津波観測に関する情報": "VTSE52",
    "気象特別警報・警報・注意報": "VPWW53",
    "気象警報・注意報（Ｈ２７）": "VPWW54",
    "気象警報・注意報（Ｒ０６）（大雨）": "VPWW55",
    "気象警報・注意報（Ｒ０６）（土砂）": "VPWW56",
    "気象警報・注意報（Ｒ０６）（高潮）": "VPWW57",
    "気象警報・注意報（Ｒ０６）（暴風）": "VPWW58",
    "気象警報・注意報（Ｒ０６）（波浪）": "VPWW59",
    "気象警報・注意報（Ｒ０６）（大雪）": "VPWW60",
    "気象警報・注意報（Ｒ０６）（その他注意報）": "VPWW61",
}

EEW_DATA_TYPES = frozenset({"VXSE42", "VXSE43", "VXSE44", "VXSE45"})

INTENSITY_SCALE: tuple[str, ...] = ("1", "2", "3", "4", "5-", "5+", "6-", "6+", "7")
_INTENSITY_RANK = {value: rank for rank, value in enumerate(INTENSITY_SCALE)}
_INTENSITY_WORDS = {"5弱": "5-", "5強": "5+", "6弱": "6-", "6強": "6+"}

# A municipality whose seismometer has not reported yet although the network estimated 5弱 or more.
_UNREPORTED_MARK = "未入電"

_NO_WARNING_STATUSES = frozenset({"解除", "発表警報・注意報はなし"})
_MUNICIPALITY_WARNING_TYPE_SUFFIX = "（市町村等）"
_REGION_WARNING_TYPE_SUFFIX = "（府県予報区等）"


class BulletinError(ValueError):
    """The bytes are not a JMA bulletin we can read; the message says why in plain words."""


def normalize_intensity(text: str | None) -> str | None:
    """Return the JMA seismic intensity as one of INTENSITY_SCALE, or None when it is not an intensity.

    Accepts what JMA writes in different places: ``6+``, ``５弱``, ``震度６強``, ``4 `` (stray spaces).
    """
    if text is None:
        return None
    value = unicodedata.normalize("NFKC", text).strip().replace("−", "-")
    value = value.removeprefix("震度").strip()
    value = _INTENSITY_WORDS.get(value, value)
    return value if value in _INTENSITY_RANK else None


def intensity_rank(intensity: str) -> int:
    """Position on the JMA scale (1 → 0 … 7 → 8); raises ValueError for anything else."""
    normalized = normalize_intensity(intensity)
    if normalized is None:
        raise ValueError(
            f"{intensity!r} is not a JMA seismic intensity (expected one of {', '.join(INTENSITY_SCALE)})"
        )
    return _INTENSITY_RANK[normalized]


def data_type_for_title(control_title: str | None) -> str | None:
    """The data type code (VXSE53, VPWW55 …) JMA uses for a Control/Title, or None if we do not know it."""
    if not control_title:
        return None
    return DATA_TYPES_BY_TITLE.get(control_title.strip())


@dataclass(frozen=True, slots=True)
class PrefectureIntensity:
    code: str
    name: str
    max_intensity: str | None
    # Some station in the prefecture was estimated at 5弱 or more but has not reported its value yet.
    intensity_unreported: bool = False

    def to_json_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "max_intensity": self.max_intensity}


@dataclass(frozen=True, slots=True)
class MunicipalityIntensity:
    code: str
    name: str
    max_intensity: str | None
    prefecture_code: str
    intensity_unreported: bool = False

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "max_intensity": self.max_intensity,
            "prefecture_code": self.prefecture_code,
            "intensity_unreported": self.intensity_unreported,
        }


_TSUNAMI_SEVERITY = {"大津波警報": 3, "津波警報": 2, "津波注意報": 1}


def tsunami_kind(name: str | None) -> str | None:
    """JMA writes a fresh 大津波警報 as ``大津波警報：発表``; the part after the colon is not part of the kind."""
    if name is None:
        return None
    return name.split("：", 1)[0].split(":", 1)[0].strip() or None


@dataclass(frozen=True, slots=True)
class TsunamiArea:
    code: str
    name: str
    # Category/Kind/Name without JMA's "：発表" suffix, e.g. 大津波警報, 津波警報, 津波注意報, 津波予報（若干の海面変動）.
    kind: str
    kind_code: str | None = None
    # Exactly as JMA wrote it (``大津波警報：発表``).
    kind_as_written: str | None = None
    last_kind: str | None = None
    last_kind_code: str | None = None
    # NaN (unknown / 巨大) becomes None; the description keeps JMA's words.
    max_height_m: float | None = None
    max_height_description: str | None = None

    @property
    def severity(self) -> int:
        return _TSUNAMI_SEVERITY.get(self.kind, 0)

    @property
    def is_downgrade(self) -> bool:
        """True when this bulletin lowers the area, e.g. 津波注意報 → 津波予報 (the all-clear)."""
        return self.last_kind is not None and _TSUNAMI_SEVERITY.get(self.last_kind, 0) > self.severity

    def to_json_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "kind": self.kind, "last_kind": self.last_kind}


@dataclass(frozen=True, slots=True)
class MunicipalityWarnings:
    code: str
    name: str
    # Kinds in force after this bulletin (発表, 継続 and downgrades such as 特別警報から警報), as JMA names them.
    kinds: tuple[str, ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "kinds": list(self.kinds)}


@dataclass(frozen=True, slots=True)
class Hypocenter:
    name: str | None
    code: str | None
    magnitude: str | None
    magnitude_description: str | None = None
    origin_time: datetime | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "code": self.code,
            "magnitude": self.magnitude,
            "magnitude_description": self.magnitude_description,
            "origin_time": self.origin_time.isoformat() if self.origin_time else None,
        }


@dataclass(frozen=True, slots=True)
class Bulletin:
    title: str
    head_title: str
    data_type: str | None
    status: str
    info_type: str
    info_kind: str | None
    event_id: str | None
    serial: str | None
    report_time: datetime
    kind: str
    headline: str | None = None
    editorial_office: str | None = None
    max_intensity: str | None = None
    prefectures: tuple[PrefectureIntensity, ...] = ()
    municipalities: tuple[MunicipalityIntensity, ...] = ()
    tsunami_areas: tuple[TsunamiArea, ...] = ()
    warnings: tuple[MunicipalityWarnings, ...] = ()
    # 府県予報区 code of a weather bulletin (130000 for Tokyo); weather bulletins carry no EventID.
    warning_region_code: str | None = None
    hypocenter: Hypocenter | None = None

    @property
    def is_eew(self) -> bool:
        return self.kind == "eew"

    @property
    def is_drill(self) -> bool:
        return self.status == "訓練"

    @property
    def is_test(self) -> bool:
        return self.status == "試験"

    @property
    def event_key(self) -> str:
        """What ties later bulletins to the same event.

        The kind is part of the key because JMA gives the tsunami bulletins the EventID of their earthquake.
        Weather warnings have no EventID; VPWW53/54 and the Ｒ０６ family describe the same warnings for the same
        府県予報区 in parallel, so they share one key per region.
        """
        if self.event_id:
            return f"{self.kind}:{self.event_id}"
        if self.kind == "weather" and self.warning_region_code:
            return f"weather:{self.warning_region_code}"
        return f"{self.kind}:{self.data_type or self.title}:{self.head_title}"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "head_title": self.head_title,
            "data_type": self.data_type,
            "status": self.status,
            "info_type": self.info_type,
            "info_kind": self.info_kind,
            "event_id": self.event_id,
            "event_key": self.event_key,
            "serial": self.serial,
            "report_time": self.report_time.isoformat(),
            "kind": self.kind,
            "is_eew": self.is_eew,
            "headline": self.headline,
            "max_intensity": self.max_intensity,
            "prefectures": [p.to_json_dict() for p in self.prefectures],
            "municipalities": [m.to_json_dict() for m in self.municipalities],
            "tsunami_areas": [a.to_json_dict() for a in self.tsunami_areas],
            "warnings": [w.to_json_dict() for w in self.warnings],
            "hypocenter": self.hypocenter.to_json_dict() if self.hypocenter else None,
        }


# --- element helpers: match on local name and the JMA namespace family, never on a prefix ---------------------


@functools.lru_cache(maxsize=512)
def _jma_local_name(tag: str) -> str | None:
    if not tag.startswith("{"):
        return None
    namespace, _, local = tag[1:].partition("}")
    return local if namespace.startswith(_JMA_NS_PREFIX) else None


def _local_name(element: Element) -> str | None:
    tag = element.tag
    return _jma_local_name(tag) if isinstance(tag, str) else None


def _children(element: Element | None, name: str) -> Iterator[Element]:
    if element is None:
        return
    for child in element:
        if _local_name(child) == name:
            yield child


def _child(element: Element | None, *path: str) -> Element | None:
    current = element
    for name in path:
        current = next(_children(current, name), None)
        if current is None:
            return None
    return current


def _text(element: Element | None, *path: str) -> str | None:
    target = _child(element, *path) if path else element
    if target is None or target.text is None:
        return None
    value = target.text.strip()
    return value or None


def _required_text(element: Element | None, where: str, *path: str) -> str:
    value = _text(element, *path)
    if value is None:
        raise BulletinError(f"not a usable JMA bulletin: {where}/{'/'.join(path)} is missing or empty")
    return value


def _optional_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _required_datetime(value: str | None, where: str) -> datetime:
    if value is None:
        raise BulletinError(f"not a usable JMA bulletin: {where} is missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BulletinError(f"{where} {value!r} is not an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        raise BulletinError(f"{where} {value!r} has no UTC offset")
    return parsed


def _finite_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# --- parsing --------------------------------------------------------------------------------------------------


def _load_root(data: bytes, max_bytes: int) -> Element:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BulletinError(f"expected the bulletin as bytes, got {type(data).__name__}")
    size = len(data)
    if size > max_bytes:
        raise BulletinError(
            f"bulletin is {size} bytes, more than the {max_bytes}-byte limit; refusing to parse it"
        )
    if not bytes(data).strip():
        raise BulletinError("empty bulletin: no bytes to parse")
    try:
        root: Element = DefusedET.fromstring(
            bytes(data), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DTDForbidden:
        raise BulletinError("refused: the XML declares a DTD, which JMA bulletins never do") from None
    except defusedxml.EntitiesForbidden:
        raise BulletinError("refused: the XML declares entities, which JMA bulletins never do") from None
    except defusedxml.ExternalReferenceForbidden:
        raise BulletinError("refused: the XML refers to an external resource") from None
    except DefusedET.ParseError as exc:
        message = str(exc)
        if message.startswith(("no element found", "unclosed token")):
            raise BulletinError(
                f"truncated bulletin: the XML ends before the document is complete ({message})"
            ) from None
        raise BulletinError(f"not well-formed XML: {message}") from None
    except (ValueError, LookupError) as exc:
        # expat refuses encodings it cannot decode itself (multi-byte ones such as Shift_JIS) or does not know.
        raise BulletinError(f"unreadable XML encoding: {exc}") from None
    if root.tag != f"{{{JMA_NAMESPACE}}}Report":
        raise BulletinError(f"not a JMA bulletin: the root element is {root.tag!r}, expected jmx:Report")
    return root


def _kind(data_type: str | None, body: Element | None) -> str:
    if data_type in EEW_DATA_TYPES:
        return "eew"
    if data_type is not None:
        prefix = data_type[:4]
        if prefix == "VXSE":
            return "earthquake"
        if prefix == "VTSE":
            return "tsunami"
        if prefix == "VPWW":
            return "weather"
    # Unknown title: judge from what the body contains.
    if _child(body, "Tsunami") is not None:
        return "tsunami"
    if _child(body, "Intensity") is not None or _child(body, "Earthquake") is not None:
        return "earthquake"
    if _child(body, "Warning") is not None:
        return "weather"
    return "other"


def _intensity(
    body: Element | None,
) -> tuple[str | None, tuple[PrefectureIntensity, ...], tuple[MunicipalityIntensity, ...]]:
    observation = _child(body, "Intensity", "Observation")
    if observation is None:
        return None, (), ()
    prefectures: list[PrefectureIntensity] = []
    municipalities: list[MunicipalityIntensity] = []
    for pref in _children(observation, "Pref"):
        pref_code = _text(pref, "Code")
        if pref_code is None:
            continue
        pref_unreported = _UNREPORTED_MARK in (_text(pref, "Condition") or "")
        for area in _children(pref, "Area"):
            for city in _children(area, "City"):
                city_code = _text(city, "Code")
                if city_code is None:
                    continue
                raw_max = _text(city, "MaxInt")
                unreported = _UNREPORTED_MARK in (_text(city, "Condition") or "") or (
                    raw_max is not None and _UNREPORTED_MARK in raw_max
                )
                pref_unreported = pref_unreported or unreported
                municipalities.append(
                    MunicipalityIntensity(
                        code=city_code,
                        name=_text(city, "Name") or "",
                        max_intensity=normalize_intensity(raw_max),
                        prefecture_code=pref_code,
                        intensity_unreported=unreported,
                    )
                )
        prefectures.append(
            PrefectureIntensity(
                code=pref_code,
                name=_text(pref, "Name") or "",
                max_intensity=normalize_intensity(_text(pref, "MaxInt")),
                intensity_unreported=pref_unreported,
            )
        )
    return normalize_intensity(_text(observation, "MaxInt")), tuple(prefectures), tuple(municipalities)


def _tsunami_areas(body: Element | None) -> tuple[TsunamiArea, ...]:
    forecast = _child(body, "Tsunami", "Forecast")
    areas: list[TsunamiArea] = []
    for item in _children(forecast, "Item"):
        code = _text(item, "Area", "Code")
        written = _text(item, "Category", "Kind", "Name")
        kind = tsunami_kind(written)
        if code is None or kind is None:
            continue
        height = _child(item, "MaxHeight", "TsunamiHeight")
        areas.append(
            TsunamiArea(
                code=code,
                name=_text(item, "Area", "Name") or "",
                kind=kind,
                kind_code=_text(item, "Category", "Kind", "Code"),
                kind_as_written=written,
                last_kind=tsunami_kind(_text(item, "Category", "LastKind", "Name")),
                last_kind_code=_text(item, "Category", "LastKind", "Code"),
                max_height_m=_finite_float(_text(height)),
                max_height_description=(height.get("description") or "").strip() or None
                if height is not None
                else None,
            )
        )
    return tuple(areas)


def _warnings(body: Element | None) -> tuple[str | None, tuple[MunicipalityWarnings, ...]]:
    region_code: str | None = None
    municipalities: list[MunicipalityWarnings] = []
    for warning in _children(body, "Warning"):
        warning_type = (warning.get("type") or "").strip()
        if warning_type.endswith(_REGION_WARNING_TYPE_SUFFIX) and region_code is None:
            region_code = _text(warning, "Item", "Area", "Code")
        if not warning_type.endswith(_MUNICIPALITY_WARNING_TYPE_SUFFIX):
            continue
        for item in _children(warning, "Item"):
            code = _text(item, "Area", "Code")
            if code is None:
                continue
            kinds: list[str] = []
            for kind in _children(item, "Kind"):
                name = _text(kind, "Name")
                if name is None or (_text(kind, "Status") or "") in _NO_WARNING_STATUSES:
                    continue
                if name not in kinds:
                    kinds.append(name)
            if kinds:
                municipalities.append(
                    MunicipalityWarnings(
                        code=code, name=_text(item, "Area", "Name") or "", kinds=tuple(kinds)
                    )
                )
    return region_code, tuple(municipalities)


def _hypocenter(body: Element | None) -> Hypocenter | None:
    earthquake = _child(body, "Earthquake")
    if earthquake is None:
        return None
    magnitude_element = _child(earthquake, "Magnitude")
    magnitude = _text(magnitude_element)
    if magnitude is not None and _finite_float(magnitude) is None:
        # "NaN" with description "Ｍ８を超える巨大地震": the number is unknown, the words are not.
        magnitude = None
    description = None
    if magnitude_element is not None:
        description = (magnitude_element.get("description") or "").strip() or None
    return Hypocenter(
        name=_text(earthquake, "Hypocenter", "Area", "Name"),
        code=_text(earthquake, "Hypocenter", "Area", "Code"),
        magnitude=magnitude,
        magnitude_description=description,
        origin_time=_optional_datetime(_text(earthquake, "OriginTime")),
    )


def parse_bulletin(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Bulletin:
    """Parse one bulletin; raise BulletinError (and nothing else) when the bytes are not a usable bulletin."""
    root = _load_root(data, max_bytes)
    control = _child(root, "Control")
    head = _child(root, "Head")
    if control is None or head is None:
        raise BulletinError("not a usable JMA bulletin: Control or Head is missing")
    body = _child(root, "Body")

    title = _required_text(control, "Control", "Title")
    status = _required_text(control, "Control", "Status")
    if status not in STATUSES:
        raise BulletinError(f"unknown Control/Status {status!r} (expected one of {', '.join(STATUSES)})")
    info_type = _required_text(head, "Head", "InfoType")
    if info_type not in INFO_TYPES:
        raise BulletinError(f"unknown Head/InfoType {info_type!r} (expected one of {', '.join(INFO_TYPES)})")
    report_time = _required_datetime(_text(head, "ReportDateTime"), "Head/ReportDateTime")

    data_type = data_type_for_title(title)
    kind = _kind(data_type, body)
    max_intensity, prefectures, municipalities = _intensity(body)
    region_code, warnings = _warnings(body)
    return Bulletin(
        title=title,
        head_title=_text(head, "Title") or title,
        data_type=data_type,
        status=status,
        info_type=info_type,
        info_kind=_text(head, "InfoKind"),
        event_id=_text(head, "EventID"),
        serial=_text(head, "Serial"),
        report_time=report_time,
        kind=kind,
        headline=_text(head, "Headline", "Text"),
        editorial_office=_text(control, "EditorialOffice"),
        max_intensity=max_intensity,
        prefectures=prefectures,
        municipalities=municipalities,
        tsunami_areas=_tsunami_areas(body),
        warnings=warnings,
        warning_region_code=region_code,
        hypocenter=_hypocenter(body),
    )
