"""Which 津波予報区 (tsunami forecast areas) are the coasts of each prefecture's mainland.

Pure data for the default rules: a site in a prefecture is taken to be near that prefecture's mainland coasts.
Remote islands (伊豆諸島, 小笠原諸島, 佐渡, 隠岐, 壱岐・対馬, 種子島・屋久島, 奄美, 大東島, 宮古・八重山) are left
out because a call center on the mainland is not affected by a warning for them; a crisis manager who has a site
there adds the area on the JMA page. Codes and names as JMA writes them in VTSE41 (checked against the samples in
tests/fixtures/jma).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["PREFECTURE_COAST_AREAS", "TSUNAMI_AREA_NAMES", "coast_areas_for_sites"]

TSUNAMI_AREA_NAMES: dict[str, str] = {
    "100": "北海道太平洋沿岸東部",
    "101": "北海道太平洋沿岸中部",
    "102": "北海道太平洋沿岸西部",
    "110": "北海道日本海沿岸北部",
    "111": "北海道日本海沿岸南部",
    "120": "オホーツク海沿岸",
    "200": "青森県日本海沿岸",
    "201": "青森県太平洋沿岸",
    "202": "陸奥湾",
    "210": "岩手県",
    "220": "宮城県",
    "230": "秋田県",
    "240": "山形県",
    "250": "福島県",
    "300": "茨城県",
    "310": "千葉県九十九里・外房",
    "311": "千葉県内房",
    "312": "東京湾内湾",
    "320": "伊豆諸島",
    "321": "小笠原諸島",
    "330": "相模湾・三浦半島",
    "340": "新潟県上中下越",
    "341": "佐渡",
    "350": "富山県",
    "360": "石川県能登",
    "361": "石川県加賀",
    "370": "福井県",
    "380": "静岡県",
    "390": "愛知県外海",
    "391": "伊勢・三河湾",
    "400": "三重県南部",
    "500": "京都府",
    "510": "大阪府",
    "520": "兵庫県北部",
    "521": "兵庫県瀬戸内海沿岸",
    "522": "淡路島南部",
    "530": "和歌山県",
    "540": "鳥取県",
    "550": "島根県出雲・石見",
    "551": "隠岐",
    "560": "岡山県",
    "570": "広島県",
    "580": "徳島県",
    "590": "香川県",
    "600": "愛媛県宇和海沿岸",
    "601": "愛媛県瀬戸内海沿岸",
    "610": "高知県",
    "700": "山口県日本海沿岸",
    "701": "山口県瀬戸内海沿岸",
    "710": "福岡県瀬戸内海沿岸",
    "711": "福岡県日本海沿岸",
    "712": "有明・八代海",
    "720": "佐賀県北部",
    "730": "長崎県西方",
    "731": "壱岐・対馬",
    "740": "熊本県天草灘沿岸",
    "750": "大分県瀬戸内海沿岸",
    "751": "大分県豊後水道沿岸",
    "760": "宮崎県",
    "770": "鹿児島県東部",
    "771": "種子島・屋久島地方",
    "772": "奄美諸島・トカラ列島",
    "773": "鹿児島県西部",
    "800": "沖縄本島地方",
    "801": "大東島地方",
    "802": "宮古島・八重山地方",
}

# Prefecture code (JIS X 0401) → mainland coast areas. Inland prefectures have none.
PREFECTURE_COAST_AREAS: dict[str, frozenset[str]] = {
    "01": frozenset({"100", "101", "102", "110", "111", "120"}),
    "02": frozenset({"200", "201", "202"}),
    "03": frozenset({"210"}),
    "04": frozenset({"220"}),
    "05": frozenset({"230"}),
    "06": frozenset({"240"}),
    "07": frozenset({"250"}),
    "08": frozenset({"300"}),
    "12": frozenset({"310", "311", "312"}),
    "13": frozenset({"312"}),
    "14": frozenset({"312", "330"}),
    "15": frozenset({"340"}),
    "16": frozenset({"350"}),
    "17": frozenset({"360", "361"}),
    "18": frozenset({"370"}),
    "22": frozenset({"380"}),
    "23": frozenset({"390", "391"}),
    "24": frozenset({"391", "400"}),
    "26": frozenset({"500"}),
    "27": frozenset({"510"}),
    "28": frozenset({"520", "521", "522"}),
    "30": frozenset({"530"}),
    "31": frozenset({"540"}),
    "32": frozenset({"550"}),
    "33": frozenset({"560"}),
    "34": frozenset({"570"}),
    "35": frozenset({"700", "701"}),
    "36": frozenset({"580"}),
    "37": frozenset({"590"}),
    "38": frozenset({"600", "601"}),
    "39": frozenset({"610"}),
    "40": frozenset({"710", "711", "712"}),
    "41": frozenset({"712", "720"}),
    "42": frozenset({"712", "730"}),
    "43": frozenset({"712", "740"}),
    "44": frozenset({"750", "751"}),
    "45": frozenset({"760"}),
    "46": frozenset({"770", "773"}),
    "47": frozenset({"800"}),
}


def coast_areas_for_sites(sites: Iterable[tuple[str, str]]) -> Mapping[str, frozenset[str]]:
    """Site code → the coast areas of its prefecture, for every (site code, prefecture code) on a coast."""
    return {
        code: PREFECTURE_COAST_AREAS[prefecture]
        for code, prefecture in sites
        if prefecture in PREFECTURE_COAST_AREAS
    }
