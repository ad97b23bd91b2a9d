"""The 47 prefectures (JIS X 0401 codes) with the names people type into HR spreadsheets."""

from __future__ import annotations

import unicodedata

# (code, official name, short name, English name)
PREFECTURES: tuple[tuple[str, str, str, str], ...] = (
    ("01", "北海道", "北海道", "Hokkaido"),
    ("02", "青森県", "青森", "Aomori"),
    ("03", "岩手県", "岩手", "Iwate"),
    ("04", "宮城県", "宮城", "Miyagi"),
    ("05", "秋田県", "秋田", "Akita"),
    ("06", "山形県", "山形", "Yamagata"),
    ("07", "福島県", "福島", "Fukushima"),
    ("08", "茨城県", "茨城", "Ibaraki"),
    ("09", "栃木県", "栃木", "Tochigi"),
    ("10", "群馬県", "群馬", "Gunma"),
    ("11", "埼玉県", "埼玉", "Saitama"),
    ("12", "千葉県", "千葉", "Chiba"),
    ("13", "東京都", "東京", "Tokyo"),
    ("14", "神奈川県", "神奈川", "Kanagawa"),
    ("15", "新潟県", "新潟", "Niigata"),
    ("16", "富山県", "富山", "Toyama"),
    ("17", "石川県", "石川", "Ishikawa"),
    ("18", "福井県", "福井", "Fukui"),
    ("19", "山梨県", "山梨", "Yamanashi"),
    ("20", "長野県", "長野", "Nagano"),
    ("21", "岐阜県", "岐阜", "Gifu"),
    ("22", "静岡県", "静岡", "Shizuoka"),
    ("23", "愛知県", "愛知", "Aichi"),
    ("24", "三重県", "三重", "Mie"),
    ("25", "滋賀県", "滋賀", "Shiga"),
    ("26", "京都府", "京都", "Kyoto"),
    ("27", "大阪府", "大阪", "Osaka"),
    ("28", "兵庫県", "兵庫", "Hyogo"),
    ("29", "奈良県", "奈良", "Nara"),
    ("30", "和歌山県", "和歌山", "Wakayama"),
    ("31", "鳥取県", "鳥取", "Tottori"),
    ("32", "島根県", "島根", "Shimane"),
    ("33", "岡山県", "岡山", "Okayama"),
    ("34", "広島県", "広島", "Hiroshima"),
    ("35", "山口県", "山口", "Yamaguchi"),
    ("36", "徳島県", "徳島", "Tokushima"),
    ("37", "香川県", "香川", "Kagawa"),
    ("38", "愛媛県", "愛媛", "Ehime"),
    ("39", "高知県", "高知", "Kochi"),
    ("40", "福岡県", "福岡", "Fukuoka"),
    ("41", "佐賀県", "佐賀", "Saga"),
    ("42", "長崎県", "長崎", "Nagasaki"),
    ("43", "熊本県", "熊本", "Kumamoto"),
    ("44", "大分県", "大分", "Oita"),
    ("45", "宮崎県", "宮崎", "Miyazaki"),
    ("46", "鹿児島県", "鹿児島", "Kagoshima"),
    ("47", "沖縄県", "沖縄", "Okinawa"),
)

_BY_CODE = {code: (name, english) for code, name, _, english in PREFECTURES}
_LOOKUP: dict[str, str] = {}
for _code, _name, _short, _english in PREFECTURES:
    for _alias in (_name, _short, _english.lower(), _english.lower() + "-ken", _code, str(int(_code))):
        _LOOKUP[_alias] = _code
_LOOKUP.update({"tokyo-to": "13", "osaka-fu": "27", "kyoto-fu": "26", "東京府": "13"})


def prefecture_code(value: str) -> str | None:
    """``"13"``, ``"13 "``, ``"１３"``, ``"東京都"``, ``"東京"`` or ``"Tokyo"`` → ``"13"``; None when unknown."""
    key = unicodedata.normalize("NFKC", value).strip().lower()
    return _LOOKUP.get(key)


def prefecture_name(code: str, language: str = "ja") -> str:
    names = _BY_CODE.get(code)
    if names is None:
        return code
    return names[1] if language == "en" else names[0]
