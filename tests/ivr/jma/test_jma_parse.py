"""parse_bulletin against every genuine JMA sample in tests/fixtures/jma (facts checked by reading each XML)."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ivr.jma.parse import (
    Bulletin,
    data_type_for_title,
    intensity_rank,
    normalize_intensity,
    parse_bulletin,
)

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "jma"
JST = timezone(timedelta(hours=9))


def sample(name: str) -> Bulletin:
    return parse_bulletin((SAMPLES / name).read_bytes())


# file → the facts its XML states (Control/Status, Head/InfoType, data type, kind, EventID, Observation/MaxInt).
EXPECTED: dict[str, dict[str, Any]] = {
    "15_08_04_160628_VPWW53.xml": dict(
        data_type="VPWW53", status="通常", info_type="発表", kind="weather", event_id=None, max_intensity=None
    ),
    "15_09_03_130826_VPWW53.xml": dict(
        data_type="VPWW53", status="通常", info_type="発表", kind="weather", event_id=None, max_intensity=None
    ),
    "15_14_01_170216_VPWW53.xml": dict(
        data_type="VPWW53", status="通常", info_type="発表", kind="weather", event_id=None, max_intensity=None
    ),
    "15_16_03_241226_VPWW55.xml": dict(
        data_type="VPWW55", status="通常", info_type="発表", kind="weather", event_id=None, max_intensity=None
    ),
    "32-35_01_02_240613_VXSE52.xml": dict(
        data_type="VXSE52",
        status="訓練",
        info_type="発表",
        kind="earthquake",
        event_id="20091001134500",
        max_intensity=None,
    ),
    "32-35_01_03_100514_VXSE53.xml": dict(
        data_type="VXSE53",
        status="通常",
        info_type="発表",
        kind="earthquake",
        event_id="20091109194822",
        max_intensity=None,
    ),
    "32-35_04_04_240613_VXSE53.xml": dict(
        data_type="VXSE53",
        status="通常",
        info_type="発表",
        kind="earthquake",
        event_id="20100125161517",
        max_intensity="4",
    ),
    "32-35_06_01_240613_VXSE52.xml": dict(
        data_type="VXSE52",
        status="通常",
        info_type="発表",
        kind="earthquake",
        event_id="20080614084350",
        max_intensity=None,
    ),
    "32-35_06_02_100915_VXSE52.xml": dict(
        data_type="VXSE52",
        status="通常",
        info_type="取消",
        kind="earthquake",
        event_id="20080614084350",
        max_intensity=None,
    ),
    "32-35_06_06_100915_VXSE53.xml": dict(
        data_type="VXSE53",
        status="通常",
        info_type="取消",
        kind="earthquake",
        event_id="20080614084350",
        max_intensity=None,
    ),
    "32-35_07_06_240613_VXSE53.xml": dict(
        data_type="VXSE53",
        status="通常",
        info_type="発表",
        kind="earthquake",
        event_id="20090811050711",
        max_intensity="6-",
    ),
    "32-35_08_01_100915_VXSE51.xml": dict(
        data_type="VXSE51",
        status="通常",
        info_type="発表",
        kind="earthquake",
        event_id="20100705065511",
        max_intensity="3",
    ),
    "32-39_11_01_120615_VXSE51.xml": dict(
        data_type="VXSE51",
        status="通常",
        info_type="発表",
        kind="earthquake",
        event_id="20110311144640",
        max_intensity="6+",
    ),
    "32-39_11_02_250206_VTSE41.xml": dict(
        data_type="VTSE41",
        status="通常",
        info_type="発表",
        kind="tsunami",
        event_id="20110311144640",
        max_intensity=None,
    ),
    "32-39_11_13_250206_VTSE41.xml": dict(
        data_type="VTSE41",
        status="通常",
        info_type="発表",
        kind="tsunami",
        event_id="20110311144640",
        max_intensity=None,
    ),
    "32-39_13_02_250206_VTSE41.xml": dict(
        data_type="VTSE41",
        status="訓練",
        info_type="発表",
        kind="tsunami",
        event_id="20181204180000",
        max_intensity=None,
    ),
    "37_01_01_240613_VXSE43.xml": dict(
        data_type="VXSE43",
        status="通常",
        info_type="発表",
        kind="eew",
        event_id="20240417231454",
        max_intensity=None,
    ),
    "38-39_03_01_210805_VTSE41.xml": dict(
        data_type="VTSE41",
        status="通常",
        info_type="取消",
        kind="tsunami",
        event_id="20210805103531",
        max_intensity=None,
    ),
    "54_01_01_100514_VXSE42.xml": dict(
        data_type="VXSE42",
        status="試験",
        info_type="発表",
        kind="eew",
        event_id="20090811050000",
        max_intensity=None,
    ),
}


def test_every_sample_in_the_fixture_folder_has_expectations() -> None:
    assert sorted(path.name for path in SAMPLES.glob("*.xml")) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "facts"), sorted(EXPECTED.items()))
def test_sample_facts(name: str, facts: dict[str, Any]) -> None:
    bulletin = sample(name)
    for field_name, value in facts.items():
        assert getattr(bulletin, field_name) == value, field_name
    assert bulletin.is_eew is (facts["kind"] == "eew")
    assert bulletin.report_time.tzinfo is not None
    document = bulletin.to_json_dict()
    # The JSON shape is plain JSON and carries the same facts.
    assert json.loads(json.dumps(document, ensure_ascii=False)) == document
    for key in ("title", "status", "info_type", "event_id", "report_time", "kind", "max_intensity"):
        assert key in document
    for key in ("prefectures", "tsunami_areas", "warnings"):
        assert isinstance(document[key], list)
    assert datetime.fromisoformat(document["report_time"]) == bulletin.report_time


def test_tohoku_shindo_sokuho_max_6_plus_in_miyagi() -> None:
    bulletin = sample("32-39_11_01_120615_VXSE51.xml")
    assert bulletin.title == "震度速報"
    assert bulletin.report_time == datetime(2011, 3, 11, 14, 48, tzinfo=JST)
    assert bulletin.to_json_dict()["report_time"] == "2011-03-11T14:48:00+09:00"
    assert [(p.code, p.name, p.max_intensity) for p in bulletin.prefectures] == [
        ("04", "宮城県", "6+"),
        ("03", "岩手県", "6-"),
        ("07", "福島県", "5+"),
        ("06", "山形県", "5-"),
        ("05", "秋田県", "4"),
        ("08", "茨城県", "4"),
    ]
    assert bulletin.municipalities == ()  # 震度速報 reports areas, never cities
    assert bulletin.to_json_dict()["prefectures"][0] == {
        "code": "04",
        "name": "宮城県",
        "max_intensity": "6+",
    }


def test_shindo_sokuho_max_3_has_prefecture_but_no_cities() -> None:
    bulletin = sample("32-35_08_01_100915_VXSE51.xml")
    assert [(p.code, p.max_intensity) for p in bulletin.prefectures] == [("03", "3")]
    assert bulletin.municipalities == ()
    assert bulletin.headline is not None and bulletin.headline.startswith(
        "５日０６時５５分ころ"
    )  # leading 　 stripped


def test_vxse53_max_4_with_prefectures_and_cities() -> None:
    bulletin = sample("32-35_04_04_240613_VXSE53.xml")
    assert bulletin.serial == "1"
    assert [(p.code, p.max_intensity) for p in bulletin.prefectures] == [
        ("46", "4"),
        ("45", "3"),
        ("42", "2"),
        ("43", "2"),
        ("44", "1"),
    ]
    kanoya = next(m for m in bulletin.municipalities if m.code == "4620300")
    assert (kanoya.name, kanoya.max_intensity, kanoya.prefecture_code) == ("鹿屋市", "4", "46")
    assert len(bulletin.municipalities) == 67
    assert bulletin.hypocenter is not None
    assert (bulletin.hypocenter.name, bulletin.hypocenter.magnitude) == ("大隅半島東方沖", "5.3")


def test_vxse53_max_6_minus_keeps_unreported_cities_flagged() -> None:
    bulletin = sample("32-35_07_06_240613_VXSE53.xml")
    by_code = {p.code: p for p in bulletin.prefectures}
    assert len(by_code) == 33
    assert (by_code["22"].name, by_code["22"].max_intensity) == ("静岡県", "6-")
    assert by_code["20"].max_intensity == "5-"
    assert by_code["13"].max_intensity == "4"  # Tokyo
    assert by_code["27"].max_intensity == "3"  # Osaka
    assert by_code["22"].intensity_unreported and not by_code["13"].intensity_unreported
    unreported = {m.code: m for m in bulletin.municipalities if m.intensity_unreported}
    # 富士市 and 藤枝市: <Condition>震度５弱以上未入電</Condition>; their reporting stations so far reached 4.
    assert sorted(unreported) == ["2221000", "2221400"]
    assert {m.name for m in unreported.values()} == {"富士市", "藤枝市"}
    assert {m.max_intensity for m in unreported.values()} == {"4"}
    assert len(bulletin.municipalities) == 872


def test_overseas_quake_has_no_intensity_and_empty_lists() -> None:
    bulletin = sample("32-35_01_03_100514_VXSE53.xml")
    document = bulletin.to_json_dict()
    assert document["max_intensity"] is None
    assert document["prefectures"] == document["tsunami_areas"] == document["warnings"] == []
    assert bulletin.head_title == "遠地地震に関する情報"
    assert bulletin.hypocenter is not None and bulletin.hypocenter.name == "南太平洋"
    assert bulletin.hypocenter.magnitude == "7.1"


def test_tsunami_warning_kinds_per_area_including_major_tsunami() -> None:
    bulletin = sample("32-39_11_02_250206_VTSE41.xml")
    kinds = {area.code: area.kind for area in bulletin.tsunami_areas}
    assert len(kinds) == 43
    assert {code for code, kind in kinds.items() if kind == "大津波警報"} == {"210", "220", "250"}
    assert {code for code, kind in kinds.items() if kind == "津波警報"} == {"101", "201", "300", "310", "320"}
    assert kinds["312"] == "津波予報（若干の海面変動）"  # 東京湾内湾
    assert kinds["380"] == "津波注意報"  # 静岡県
    iwate = next(area for area in bulletin.tsunami_areas if area.code == "210")
    assert (iwate.name, iwate.kind_as_written, iwate.kind_code) == ("岩手県", "大津波警報：発表", "53")
    assert iwate.last_kind == "津波なし"
    # <TsunamiHeight condition="不明" description="巨大">NaN</TsunamiHeight>
    assert iwate.max_height_m is None and iwate.max_height_description == "巨大"
    assert {
        "code": "210",
        "name": "岩手県",
        "kind": "大津波警報",
        "last_kind": "津波なし",
    } in bulletin.to_json_dict()["tsunami_areas"]
    json.dumps(bulletin.to_json_dict())  # no NaN sneaks into the JSON
    assert bulletin.hypocenter is not None and bulletin.hypocenter.magnitude is None
    assert bulletin.hypocenter.magnitude_description == "Ｍ８を超える巨大地震"


def test_tsunami_all_clear_shows_downgrade_through_last_kind() -> None:
    bulletin = sample("32-39_11_13_250206_VTSE41.xml")
    assert {area.kind for area in bulletin.tsunami_areas} == {"津波予報（若干の海面変動）"}
    downgraded = [area for area in bulletin.tsunami_areas if area.is_downgrade]
    assert len(downgraded) == 15
    assert {area.last_kind for area in downgraded} == {"津波注意報"}
    assert {area.kind_code for area in downgraded} == {"72"}


def test_tsunami_drill_headline_and_advisory_areas() -> None:
    bulletin = sample("32-39_13_02_250206_VTSE41.xml")
    assert bulletin.is_drill
    assert bulletin.headline is not None and bulletin.headline.startswith("＊＊＊これは訓練です＊＊＊")
    advisories = {area.code for area in bulletin.tsunami_areas if area.kind == "津波注意報"}
    assert {"312", "320", "380"} <= advisories


def test_tokyo_heavy_rain_emergency_warning_for_shinjuku() -> None:
    bulletin = sample("15_14_01_170216_VPWW53.xml")
    warnings = {w.code: w for w in bulletin.warnings}
    assert warnings["1310400"].name == "新宿区"
    assert warnings["1310400"].kinds == ("大雨特別警報",)
    assert warnings["1330800"].kinds == ("大雨特別警報", "洪水警報")  # 奥多摩町
    assert warnings["1311800"].kinds == ("大雨警報", "洪水警報")  # 荒川区
    assert "1310100" not in warnings  # 千代田区: 発表警報・注意報はなし
    assert sorted(warnings) == ["1310400", "1311800", "1312100", "1330800"]
    assert bulletin.warning_region_code == "130000"
    assert bulletin.event_key == "weather:130000"
    assert {"code": "1310400", "name": "新宿区", "kinds": ["大雨特別警報"]} in bulletin.to_json_dict()[
        "warnings"
    ]


def test_lifted_warnings_are_excluded_and_downgrades_kept() -> None:
    nara = {w.code: w for w in sample("15_08_04_160628_VPWW53.xml").warnings}
    assert nara["2920100"].kinds == (
        "大雨注意報",
    )  # 特別警報から注意報 kept; 雷/強風/洪水注意報 解除 dropped
    assert nara["2938500"].kinds == ("大雨特別警報",)  # 曽爾村: 継続
    assert nara["2944900"].kinds == ("大雨特別警報", "洪水警報")  # 十津川村
    assert "2920300" not in nara  # 大和郡山市: everything 解除
    wakayama = {w.code: w for w in sample("15_09_03_130826_VPWW53.xml").warnings}
    assert not any(
        "特別警報" in kind for w in wakayama.values() for kind in w.kinds
    )  # every 大雨特別警報 解除
    assert wakayama["3020100"].kinds == ("波浪警報", "強風注意報")  # 特別警報から警報 / から注意報


def test_r06_family_new_kind_names() -> None:
    bulletin = sample("15_16_03_241226_VPWW55.xml")
    assert bulletin.title == "気象警報・注意報（Ｒ０６）（大雨）"
    warnings = {w.code: w for w in bulletin.warnings}
    assert warnings["0121400"].name == "稚内市"
    assert warnings["0121400"].kinds == ("レベル４大雨危険警報",)
    assert warnings["0151100"].kinds == ("レベル３大雨警報",)
    assert len(warnings) == 10
    assert bulletin.event_key == "weather:011000"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("32-35_06_02_100915_VXSE52.xml", "earthquake:20080614084350"),
        ("32-35_06_06_100915_VXSE53.xml", "earthquake:20080614084350"),
        # The tsunami bulletin shares the EventID of its earthquake; the key keeps them apart.
        ("32-39_11_02_250206_VTSE41.xml", "tsunami:20110311144640"),
        ("32-39_11_01_120615_VXSE51.xml", "earthquake:20110311144640"),
    ],
)
def test_event_key(name: str, expected: str) -> None:
    assert sample(name).event_key == expected


def test_bulletins_are_frozen() -> None:
    bulletin = sample("32-35_08_01_100915_VXSE51.xml")
    with pytest.raises(FrozenInstanceError):
        bulletin.status = "訓練"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4", "4"),
        ("4 ", "4"),
        (" 6+\n", "6+"),
        ("5弱", "5-"),
        ("５強", "5+"),
        ("震度６弱", "6-"),
        ("震度７", "7"),
        ("6-", "6-"),
        ("震度５弱以上未入電", None),
        ("0", None),
        ("8", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_intensity(text: str | None, expected: str | None) -> None:
    assert normalize_intensity(text) == expected


def test_intensity_scale_order() -> None:
    assert (
        intensity_rank("4")
        < intensity_rank("5弱")
        < intensity_rank("5+")
        < intensity_rank("6-")
        < intensity_rank("7")
    )
    with pytest.raises(ValueError, match="not a JMA seismic intensity"):
        intensity_rank("5.5")


@pytest.mark.parametrize(
    ("title", "code"),
    [
        ("震度速報", "VXSE51"),
        ("震源・震度に関する情報", "VXSE53"),
        ("緊急地震速報（警報）", "VXSE43"),
        ("緊急地震速報配信テスト", "VXSE42"),
        ("津波警報・注意報・予報a", "VTSE41"),
        ("気象特別警報・警報・注意報", "VPWW53"),
        ("気象警報・注意報（Ｒ０６）（大雨）", "VPWW55"),
        ("気象警報・注意報（Ｒ０６）（その他注意報）", "VPWW61"),
        ("噴火に関する火山観測報", None),
    ],
)
def test_data_type_for_title(title: str, code: str | None) -> None:
    assert data_type_for_title(title) == code


def _replace(name: str, old: bytes, new: bytes) -> bytes:
    data = (SAMPLES / name).read_bytes()
    assert old in data
    return data.replace(old, new)


def test_values_with_stray_whitespace_are_stripped() -> None:
    # None of the genuine samples has padded values, so pad some the way hand-edited feeds do.
    data = _replace("32-35_08_01_100915_VXSE51.xml", b"<MaxInt>3</MaxInt>", b"<MaxInt>3 </MaxInt>")
    data = data.replace(b"<Code>03</Code>", b"<Code> 03\n</Code>").replace(b"<Status>", b"<Status> ")
    bulletin = parse_bulletin(data)
    assert bulletin.max_intensity == "3"
    assert [(p.code, p.max_intensity) for p in bulletin.prefectures] == [("03", "3")]
    assert bulletin.status == "通常"


def test_city_without_max_intensity_is_kept_as_unreported() -> None:
    # JMA omits MaxInt for a city whose only ≥5弱 stations have not reported; fake that on a real sample.
    data = _replace(
        "32-35_07_06_240613_VXSE53.xml",
        b"<City><Name>\xe8\x97\xa4\xe6\x9e\x9d\xe5\xb8\x82</Name><Code>2221400</Code><MaxInt>4</MaxInt>",
        b"<City><Name>\xe8\x97\xa4\xe6\x9e\x9d\xe5\xb8\x82</Name><Code>2221400</Code>",
    )
    city = next(m for m in parse_bulletin(data).municipalities if m.code == "2221400")
    assert (city.name, city.max_intensity, city.intensity_unreported) == ("藤枝市", None, True)


def test_namespaces_are_matched_by_uri_not_prefix() -> None:
    # Same document, prefixed Head and a newer schema version URI under JMA's namespace root.
    data = _replace(
        "32-35_08_01_100915_VXSE51.xml",
        b'<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">',
        b'<ib:Head xmlns:ib="http://xml.kishou.go.jp/jmaxml1/informationBasis2/">',
    ).replace(b"</Head>", b"</ib:Head>")
    # Children of ib:Head are now in the default (jmx) namespace — still JMA's family, still found.
    bulletin = parse_bulletin(data)
    assert (bulletin.status, bulletin.info_type, bulletin.max_intensity) == ("通常", "発表", "3")


def test_elements_from_foreign_namespaces_are_ignored() -> None:
    data = _replace(
        "32-35_08_01_100915_VXSE51.xml",
        b"<MaxInt>3</MaxInt>\n        <Pref>",
        b'<MaxInt>3</MaxInt>\n        <x:Pref xmlns:x="urn:example"><x:Code>99</x:Code></x:Pref><Pref>',
    )
    assert [p.code for p in parse_bulletin(data).prefectures] == ["03"]


def test_report_time_offset_is_kept() -> None:
    bulletin = sample("32-35_06_06_100915_VXSE53.xml")
    assert bulletin.report_time.utcoffset() == timedelta(hours=9)
    assert bulletin.report_time.astimezone(UTC) == datetime(2008, 6, 14, 0, 6, tzinfo=UTC)
