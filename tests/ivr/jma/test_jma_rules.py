"""Rule evaluation: which bulletins start, hold, widen, cancel or only notify — on real samples where they exist."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ivr.jma.parse import Bulletin, PrefectureIntensity, parse_bulletin
from ivr.jma.rules import (
    Audience,
    Decision,
    EventState,
    IntensityRule,
    OrganizationContext,
    RuleSet,
    RuleSetError,
    Site,
    TsunamiRule,
    WarningRule,
    default_ruleset,
    evaluate,
)

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "jma"
JST = timezone(timedelta(hours=9))
NOW = datetime(2030, 4, 1, 1, 0, tzinfo=UTC)
T0 = datetime(2030, 4, 1, 10, 0, tzinfo=JST)

# The demo organization: sites in Tokyo (新宿区), Osaka (大阪市北区), Fukuoka (福岡市博多区).
DEMO = OrganizationContext(
    sites=(
        Site("TKY", "13", frozenset({"1310400"})),
        Site("OSA", "27", frozenset({"2712700"})),
        Site("FUK", "40", frozenset({"4013200"})),
    ),
    staff_home_prefectures=frozenset({"11", "13", "14", "27", "28", "40"}),
)


def sample(name: str) -> Bulletin:
    return parse_bulletin((SAMPLES / name).read_bytes())


def quake(
    event_id: str = "20300401100000",
    *,
    prefectures: dict[str, str] | None = None,
    status: str = "通常",
    info_type: str = "発表",
    report_time: datetime = T0,
    unreported: frozenset[str] = frozenset(),
    data_type: str = "VXSE53",
) -> Bulletin:
    prefs = tuple(
        PrefectureIntensity(code, f"pref {code}", intensity, code in unreported)
        for code, intensity in (prefectures or {}).items()
    )
    highest = max((p.max_intensity for p in prefs if p.max_intensity), key=_order, default=None)
    return Bulletin(
        title="震源・震度に関する情報" if data_type == "VXSE53" else "震度速報",
        head_title="震源・震度情報",
        data_type=data_type,
        status=status,
        info_type=info_type,
        info_kind="地震情報",
        event_id=event_id,
        serial="1",
        report_time=report_time,
        kind="earthquake",
        max_intensity=highest,
        prefectures=prefs,
    )


def _order(intensity: str) -> int:
    return ["1", "2", "3", "4", "5-", "5+", "6-", "6+", "7"].index(intensity)


def state(
    event_key: str,
    status: str = "sent",
    *,
    prefectures: frozenset[str] = frozenset(),
    sites: frozenset[str] = frozenset(),
    everyone: bool = False,
    max_intensity: str | None = "5-",
    template: str = "earthquake",
    kind: str = "earthquake",
    real_or_drill: str = "real",
    report_time: datetime = T0,
) -> EventState:
    return EventState(
        event_key=event_key,
        kind=kind,
        template=template,
        status=status,  # type: ignore[arg-type]
        real_or_drill=real_or_drill,  # type: ignore[arg-type]
        audience=Audience(everyone=everyone, prefectures=prefectures, sites=sites),
        report_time=report_time,
        max_intensity=max_intensity,
        hold_until=NOW + timedelta(minutes=3) if status == "held" else None,
        sent_at=NOW - timedelta(minutes=5) if status == "sent" else None,
    )


def with_known(*states: EventState, context: OrganizationContext = DEMO) -> OrganizationContext:
    return replace(context, known_events=states)


SENDAI_AND_CHIBA = TsunamiRule(site_areas={"sendai": frozenset({"220"}), "chiba": frozenset({"310"})})
ADVISORY_TOO = TsunamiRule(
    site_areas={"TKY": frozenset({"312"})}, kinds=frozenset({"大津波警報", "津波警報", "津波注意報"})
)


@dataclass(frozen=True)
class Scenario:
    name: str
    bulletin: Bulletin
    expected: list[tuple[str, str | None, Audience]]  # (action, template, audience) in order
    reason: str  # a phrase the (first) reason must contain
    ruleset: RuleSet = field(default_factory=default_ruleset)
    context: OrganizationContext = DEMO
    real_or_drill: str | None = "real"


SCENARIOS = [
    # --- never triggers ---
    Scenario(
        "試験 never triggers",
        sample("54_01_01_100514_VXSE42.xml"),
        [("suppress", None, Audience())],
        "試験",
        real_or_drill=None,
    ),
    Scenario(
        "試験 never triggers even as an intensity report",
        quake(prefectures={"13": "7"}, status="試験"),
        [("suppress", None, Audience())],
        "試験 (test) bulletins never trigger",
        ruleset=replace(default_ruleset(), allow_drill=True),
        real_or_drill=None,
    ),
    Scenario(
        "EEW is not a trigger",
        sample("37_01_01_240613_VXSE43.xml"),
        [("suppress", None, Audience())],
        "Earthquake Early Warnings (VXSE43)",
        real_or_drill=None,
    ),
    Scenario(
        "訓練 without opt-in",
        quake(prefectures={"13": "6+"}, status="訓練"),
        [("suppress", None, Audience())],
        "訓練 bulletin and the organization has not opted in to drills",
        real_or_drill=None,
    ),
    Scenario(
        "訓練 VXSE52 sample without opt-in",
        sample("32-35_01_02_240613_VXSE52.xml"),
        [("suppress", None, Audience())],
        "has not opted in",
        real_or_drill=None,
    ),
    Scenario(
        "VXSE52 carries no intensity",
        sample("32-35_06_01_240613_VXSE52.xml"),
        [("suppress", None, Audience())],
        "carries nothing the rules act on",
        real_or_drill=None,
    ),
    Scenario(
        "overseas quake",
        sample("32-35_01_03_100514_VXSE53.xml"),
        [("suppress", None, Audience())],
        "reports no intensity",
        real_or_drill=None,
    ),
    # --- drills ---
    Scenario(
        "訓練 with opt-in starts a drill",
        quake(prefectures={"13": "6-"}, status="訓練"),
        [("start", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "intensity ≥ 5-",
        ruleset=replace(default_ruleset(), allow_drill=True),
        real_or_drill="drill",
    ),
    Scenario(
        "訓練 tsunami sample with opt-in and an advisory rule for Tokyo Bay",
        sample("32-39_13_02_250206_VTSE41.xml"),
        [("start", "tsunami", Audience(sites=frozenset({"TKY"})))],
        "津波注意報 for 東京湾内湾 (312) near site TKY",
        ruleset=replace(default_ruleset(), allow_drill=True, tsunami_rules=(ADVISORY_TOO,)),
        real_or_drill="drill",
    ),
    Scenario(
        "訓練 tsunami sample with opt-in but only warnings configured",
        sample("32-39_13_02_250206_VTSE41.xml"),
        [("suppress", None, Audience())],
        "no 大津波警報/津波警報 on the coasts near the sites",
        ruleset=replace(default_ruleset(), allow_drill=True),
        real_or_drill=None,
    ),
    # --- thresholds and scopes ---
    Scenario(
        "Tohoku 震度速報: nothing in the demo organization's prefectures",
        sample("32-39_11_01_120615_VXSE51.xml"),
        [("suppress", None, Audience())],
        "no prefecture in a site prefecture (13, 27, 40) reached 5-",
        real_or_drill=None,
    ),
    Scenario(
        "Tohoku 震度速報: staff living in Miyagi and Yamagata",
        sample("32-39_11_01_120615_VXSE51.xml"),
        [("start", "earthquake", Audience(prefectures=frozenset({"04", "06"})))],
        "宮城県 (04) 6+",
        context=replace(DEMO, staff_home_prefectures=frozenset({"04", "06", "05"})),  # 秋田 only 4
    ),
    Scenario(
        "VXSE53 max 4 below threshold",
        sample("32-35_04_04_240613_VXSE53.xml"),
        [("suppress", None, Audience())],
        "max intensity 4 below threshold 5-",
        context=replace(DEMO, sites=(*DEMO.sites, Site("kagoshima", "46"))),
        real_or_drill=None,
    ),
    Scenario(
        "VXSE53 6- in Shizuoka where a site is",
        sample("32-35_07_06_240613_VXSE53.xml"),
        [("start", "earthquake", Audience(prefectures=frozenset({"22"})))],
        "静岡県 (22) 6- incl. 震度５弱以上未入電",
        context=replace(DEMO, sites=(*DEMO.sites, Site("shizuoka", "22"))),
    ),
    Scenario(
        "exactly 5- in Tokyo",
        quake(prefectures={"13": "5-", "11": "4"}),
        [("start", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "pref 13 (13) 5-",
    ),
    Scenario(
        "4 in Tokyo",
        quake(prefectures={"13": "4"}),
        [("suppress", None, Audience())],
        "max intensity 4 below threshold 5-",
        real_or_drill=None,
    ),
    Scenario(
        "震度５弱以上未入電 counts as 5-",
        quake(prefectures={"13": "4"}, unreported=frozenset({"13"})),
        [("start", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "incl. 震度５弱以上未入電",
    ),
    Scenario(
        "7 anywhere → everyone",
        quake(prefectures={"17": "7", "16": "5+"}),
        [("start", "earthquake", Audience(everyone=True, prefectures=frozenset()))],
        "→ everyone",
    ),
    Scenario(
        "hold before sending",
        quake(prefectures={"27": "5+"}),
        [("hold", "earthquake", Audience(prefectures=frozenset({"27"})))],
        "held for 5 min",
        ruleset=replace(default_ruleset(), hold_minutes=5),
    ),
    # --- 取消 ---
    Scenario(
        "取消 inside the hold cancels",
        sample("32-35_06_06_100915_VXSE53.xml"),
        [("cancel", "earthquake", Audience(prefectures=frozenset({"03", "04"})))],
        "取消 arrived while the broadcast was held",
        context=with_known(state("earthquake:20080614084350", "held", prefectures=frozenset({"03", "04"}))),
    ),
    Scenario(
        "取消 after sending only notifies",
        sample("32-35_06_06_100915_VXSE53.xml"),
        [("notify_only", "earthquake", Audience(prefectures=frozenset({"03"})))],
        "calls cannot be unsent",
        context=with_known(state("earthquake:20080614084350", "sent", prefectures=frozenset({"03"}))),
    ),
    Scenario(
        "取消 of 震源に関する情報 leaves the intensity broadcast alone",
        sample("32-35_06_02_100915_VXSE52.xml"),
        [("suppress", None, Audience())],
        "carries nothing the rules act on",
        context=with_known(state("earthquake:20080614084350", "held", prefectures=frozenset({"03"}))),
        real_or_drill=None,
    ),
    Scenario(
        "取消 with nothing started",
        sample("32-35_06_06_100915_VXSE53.xml"),
        [("suppress", None, Audience())],
        "nothing to cancel",
        real_or_drill=None,
    ),
    Scenario(
        "tsunami 取消 inside the hold",
        sample("38-39_03_01_210805_VTSE41.xml"),
        [("cancel", "tsunami", Audience(sites=frozenset({"TKY"})))],
        "取消 arrived while the broadcast was held",
        context=with_known(
            state(
                "tsunami:20210805103531",
                "held",
                sites=frozenset({"TKY"}),
                template="tsunami",
                kind="tsunami",
            )
        ),
    ),
    Scenario(
        "a drill's state is not cancelled by a real 取消",
        sample("32-35_06_06_100915_VXSE53.xml"),
        [("suppress", None, Audience())],
        "nothing to cancel",
        context=with_known(
            state("earthquake:20080614084350", "held", prefectures=frozenset({"03"}), real_or_drill="drill")
        ),
        real_or_drill=None,
    ),
    # --- later bulletins for the same event ---
    Scenario(
        "upgrade widens to the new prefecture only",
        quake(prefectures={"13": "6-", "11": "5+", "14": "4"}),
        [("widen", "earthquake", Audience(prefectures=frozenset({"11"})))],
        "adds prefectures 11 without calling anyone again",
        context=with_known(
            state("earthquake:20300401100000", prefectures=frozenset({"13"}), max_intensity="5+")
        ),
    ),
    Scenario(
        "upgrade of a held broadcast widens it and keeps the hold",
        quake(prefectures={"13": "5-", "27": "5-"}),
        [("widen", "earthquake", Audience(prefectures=frozenset({"27"})))],
        "upgrade of the held broadcast",
        context=with_known(state("earthquake:20300401100000", "held", prefectures=frozenset({"13"}))),
    ),
    Scenario(
        "upgrade to 7 widens to everyone",
        quake(prefectures={"13": "7"}),
        [("widen", "earthquake", Audience(everyone=True))],
        "adds everyone",
        context=with_known(
            state("earthquake:20300401100000", prefectures=frozenset({"13"}), max_intensity="6+")
        ),
    ),
    Scenario(
        "higher intensity, same people",
        quake(prefectures={"13": "6+"}),
        [("notify_only", "earthquake", Audience())],
        "intensity upgraded from 5- to 6+",
        context=with_known(
            state("earthquake:20300401100000", prefectures=frozenset({"13"}), max_intensity="5-")
        ),
    ),
    Scenario(
        "repeat bulletin adds nobody",
        quake(prefectures={"13": "5-"}),
        [("suppress", "earthquake", Audience())],
        "adds nobody",
        context=with_known(state("earthquake:20300401100000", prefectures=frozenset({"13"}))),
    ),
    Scenario(
        "already everyone",
        quake(prefectures={"13": "7", "27": "6+"}),
        [("suppress", "earthquake", Audience())],
        "adds nobody",
        context=with_known(state("earthquake:20300401100000", everyone=True, max_intensity="7")),
    ),
    # --- aftershocks ---
    Scenario(
        "aftershock within the window only notifies",
        quake("20300401120000", prefectures={"13": "5+"}, report_time=T0 + timedelta(hours=2)),
        [("notify_only", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "aftershock: within 6 h of earthquake:20300401100000 (max 6-)",
        context=with_known(
            state("earthquake:20300401100000", prefectures=frozenset({"13"}), max_intensity="6-")
        ),
    ),
    Scenario(
        "aftershock stronger than the main shock starts",
        quake("20300401120000", prefectures={"13": "6+"}, report_time=T0 + timedelta(hours=2)),
        [("start", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "stronger than the earlier earthquake:20300401100000 (max 6-)",
        context=with_known(
            state("earthquake:20300401100000", prefectures=frozenset({"13"}), max_intensity="6-")
        ),
    ),
    Scenario(
        "a quake after the window is a new event",
        quake("20300401170100", prefectures={"13": "5+"}, report_time=T0 + timedelta(hours=7)),
        [("start", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "intensity ≥ 5-",
        context=with_known(
            state("earthquake:20300401100000", prefectures=frozenset({"13"}), max_intensity="6-")
        ),
    ),
    # --- 訂正 ---
    Scenario(
        "訂正 replaces a held audience",
        quake(prefectures={"13": "5-", "27": "4"}, info_type="訂正"),
        [("replace", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "訂正 replaces the held broadcast's audience (prefectures 13, 27 → prefectures 13)",
        context=with_known(state("earthquake:20300401100000", "held", prefectures=frozenset({"13", "27"}))),
    ),
    Scenario(
        "訂正 below threshold while held cancels",
        quake(prefectures={"13": "4"}, info_type="訂正"),
        [("cancel", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "訂正 no longer meets the rules (max intensity 4 below threshold 5-)",
        context=with_known(state("earthquake:20300401100000", "held", prefectures=frozenset({"13"}))),
    ),
    Scenario(
        "訂正 below threshold after sending only notifies",
        quake(prefectures={"13": "4"}, info_type="訂正"),
        [("notify_only", "earthquake", Audience(prefectures=frozenset({"13"})))],
        "calls cannot be unsent",
        context=with_known(state("earthquake:20300401100000", "sent", prefectures=frozenset({"13"}))),
    ),
    Scenario(
        "訂正 that adds a prefecture after sending widens",
        quake(prefectures={"13": "5-", "40": "5+"}, info_type="訂正"),
        [("widen", "earthquake", Audience(prefectures=frozenset({"40"})))],
        "訂正 upgrade of the sent broadcast",
        context=with_known(state("earthquake:20300401100000", "sent", prefectures=frozenset({"13"}))),
    ),
    Scenario(
        "訂正 that narrows after sending only notifies",
        quake(prefectures={"13": "5-"}, info_type="訂正"),
        [("notify_only", "earthquake", Audience())],
        "訂正 narrows the audience",
        context=with_known(state("earthquake:20300401100000", "sent", prefectures=frozenset({"13", "27"}))),
    ),
    # --- tsunami ---
    Scenario(
        "major tsunami warning on a site's coast",
        sample("32-39_11_02_250206_VTSE41.xml"),
        [("start", "tsunami", Audience(sites=frozenset({"sendai", "chiba"})))],
        "大津波警報 for 宮城県 (220) near site sendai",
        ruleset=replace(default_ruleset(), tsunami_rules=(SENDAI_AND_CHIBA,)),
    ),
    Scenario(
        "only a small sea-level change at the demo sites",
        sample("32-39_11_02_250206_VTSE41.xml"),
        [("suppress", None, Audience())],
        "no 大津波警報/津波警報 on the coasts near the sites",
        real_or_drill=None,
    ),
    Scenario(
        "all-clear after a sent tsunami broadcast only notifies",
        sample("32-39_11_13_250206_VTSE41.xml"),
        [("notify_only", "tsunami", Audience())],
        "no longer meets the rules",
        ruleset=replace(default_ruleset(), tsunami_rules=(SENDAI_AND_CHIBA,)),
        context=with_known(
            state(
                "tsunami:20110311144640",
                sites=frozenset({"sendai"}),
                template="tsunami",
                kind="tsunami",
                max_intensity=None,
            )
        ),
    ),
    # --- weather ---
    Scenario(
        "大雨特別警報 in 新宿区 where the Tokyo site is",
        sample("15_14_01_170216_VPWW53.xml"),
        [("start", "heavy_rain", Audience(sites=frozenset({"TKY"})))],
        "大雨特別警報 in 新宿区 (1310400) where site TKY is",
    ),
    Scenario(
        "大雨特別警報 lifted everywhere in Wakayama",
        sample("15_09_03_130826_VPWW53.xml"),
        [("suppress", None, Audience())],
        "no warning containing '特別警報' in a site's municipality",
        context=replace(DEMO, sites=(*DEMO.sites, Site("wakayama", "30", frozenset({"3020100"})))),
        real_or_drill=None,
    ),
    Scenario(
        "Ｒ０６ レベル４大雨危険警報 is not a 特別警報",
        sample("15_16_03_241226_VPWW55.xml"),
        [("suppress", None, Audience())],
        "no warning containing '特別警報'",
        context=replace(DEMO, sites=(*DEMO.sites, Site("wakkanai", "01", frozenset({"0121400"})))),
        real_or_drill=None,
    ),
    Scenario(
        "Ｒ０６ レベル４大雨危険警報 with a level-4 rule",
        sample("15_16_03_241226_VPWW55.xml"),
        [("start", "heavy_rain", Audience(sites=frozenset({"wakkanai"})))],
        "レベル４大雨危険警報 in 稚内市 (0121400)",
        ruleset=replace(default_ruleset(), warning_rules=(WarningRule("危険警報", "heavy_rain"),)),
        context=replace(DEMO, sites=(*DEMO.sites, Site("wakkanai", "01", frozenset({"0121400"})))),
    ),
    Scenario(
        "two weather templates fire from one bulletin",
        sample("15_08_04_160628_VPWW53.xml"),
        [
            ("start", "flood", Audience(sites=frozenset({"totsukawa"}))),
            ("start", "heavy_rain", Audience(sites=frozenset({"totsukawa"}))),
        ],
        "洪水警報 in 十津川村 (2944900)",
        ruleset=replace(default_ruleset(), warning_rules=(WarningRule(), WarningRule("洪水警報", "flood"))),
        context=replace(DEMO, sites=(*DEMO.sites, Site("totsukawa", "29", frozenset({"2944900"})))),
    ),
    Scenario(
        "a repeated 特別警報 bulletin for the same 府県予報区 calls nobody twice",
        sample("15_14_01_170216_VPWW53.xml"),
        [("suppress", "heavy_rain", Audience())],
        "adds nobody",
        context=with_known(
            state(
                "weather:130000",
                sites=frozenset({"TKY"}),
                template="heavy_rain",
                kind="weather",
                max_intensity=None,
            )
        ),
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    decisions = evaluate(scenario.bulletin, scenario.ruleset, scenario.context, NOW)
    assert [(d.action, d.template, d.audience) for d in decisions] == scenario.expected
    assert scenario.reason in decisions[0].reason, decisions[0].reason
    assert all(d.event_key == scenario.bulletin.event_key for d in decisions)
    if scenario.real_or_drill is not None:
        assert {d.real_or_drill for d in decisions} == {scenario.real_or_drill}
    for decision in decisions:
        json.dumps(decision.to_json_dict(), ensure_ascii=False)


def test_hold_until_is_now_plus_hold() -> None:
    ruleset = replace(default_ruleset(), hold_minutes=7)
    (decision,) = evaluate(quake(prefectures={"40": "6-"}), ruleset, DEMO, NOW)
    assert decision.action == "hold"
    assert decision.hold_until == NOW + timedelta(minutes=7)


def test_widen_of_held_broadcast_keeps_its_hold_time() -> None:
    prior = state("earthquake:20300401100000", "held", prefectures=frozenset({"13"}))
    (decision,) = evaluate(
        quake(prefectures={"13": "5-", "27": "6-"}), default_ruleset(), with_known(prior), NOW
    )
    assert decision.action == "widen"
    assert decision.hold_until == prior.hold_until


def test_decisions_for_every_sample_are_never_empty() -> None:
    for path in sorted(SAMPLES.glob("*.xml")):
        decisions = evaluate(parse_bulletin(path.read_bytes()), default_ruleset(), DEMO, NOW)
        assert decisions, path.name
        assert all(d.reason for d in decisions)


def test_decisions_are_plain_json() -> None:
    (decision,) = evaluate(
        quake(prefectures={"13": "7"}), replace(default_ruleset(), hold_minutes=2), DEMO, NOW
    )
    assert decision.to_json_dict() == {
        "action": "hold",
        "event_key": "earthquake:20300401100000",
        "reason": decision.reason,
        "real_or_drill": "real",
        "template": "earthquake",
        "audience": {"everyone": True, "prefectures": [], "sites": []},
        "hold_until": "2030-04-01T01:02:00+00:00",
        "max_intensity": "7",
    }


# --- rule sets as JSON ---------------------------------------------------------------------------------------


def test_default_ruleset_round_trips_through_json() -> None:
    ruleset = default_ruleset()
    document = json.loads(json.dumps(ruleset.to_dict(), ensure_ascii=False))
    assert RuleSet.from_dict(document) == ruleset
    assert document["intensity_rules"][0] == {
        "min_intensity": "5-",
        "scope": "site_prefectures",
        "template": "earthquake",
    }
    assert document["tsunami_rules"][0]["kinds"] == ["大津波警報", "津波警報"]
    assert document["tsunami_rules"][0]["site_areas"]["FUK"] == ["710", "711", "712"]


def test_japanese_intensity_words_are_accepted_and_normalised() -> None:
    ruleset = RuleSet.from_dict(
        {"intensity_rules": [{"min_intensity": "震度５強", "scope": "everyone", "template": "x"}]}
    )
    assert ruleset.intensity_rules == (IntensityRule("5+", "everyone", "x"),)


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(default_ruleset().to_dict())
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (_broken(["intensity_rules", 0, "min_intensity"], "5.5"), "intensity_rules[0].min_intensity"),
        (_broken(["intensity_rules", 1, "scope"], "city"), "intensity_rules[1].scope"),
        (_broken(["intensity_rules", 2, "template"], ""), "intensity_rules[2].template"),
        (_broken(["intensity_rules", 0, "colour"], "red"), "intensity_rules[0].colour"),
        (_broken(["intensity_rules", 0], "5-"), "intensity_rules[0]"),
        (_broken(["intensity_rules"], {"min_intensity": "5-"}), "intensity_rules"),
        (_broken(["tsunami_rules", 0, "kinds"], ["津波警報x"]), "tsunami_rules[0].kinds"),
        (_broken(["tsunami_rules", 0, "kinds"], []), "tsunami_rules[0].kinds"),
        (_broken(["tsunami_rules", 0, "site_areas", "TKY"], "312"), "tsunami_rules[0].site_areas.TKY"),
        (
            _broken(["tsunami_rules", 0, "site_areas", "TKY"], ["312", 7]),
            "tsunami_rules[0].site_areas.TKY[1]",
        ),
        (_broken(["tsunami_rules", 0, "site_areas"], ["TKY"]), "tsunami_rules[0].site_areas"),
        (_broken(["warning_rules", 0, "kind_contains"], " "), "warning_rules[0].kind_contains"),
        (_broken(["hold_minutes"], 11), "hold_minutes"),
        (_broken(["hold_minutes"], -1), "hold_minutes"),
        (_broken(["hold_minutes"], "5"), "hold_minutes"),
        (_broken(["hold_minutes"], True), "hold_minutes"),
        (_broken(["hold_minutes"], 2.5), "hold_minutes"),
        (_broken(["aftershock_window_hours"], -1), "aftershock_window_hours"),
        (_broken(["aftershock_window_hours"], "6h"), "aftershock_window_hours"),
        (_broken(["allow_drill"], "yes"), "allow_drill"),
        (_broken(["hold_minutez"], 3), "hold_minutez"),
        (_broken(["version"], 2), "version"),
    ],
)
def test_invalid_rulesets_name_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(RuleSetError) as caught:
        RuleSet.from_dict(document)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_ruleset_must_be_an_object() -> None:
    with pytest.raises(RuleSetError, match="ruleset: must be an object"):
        RuleSet.from_dict(["not", "a", "dict"])


def test_rules_validate_when_built_in_code_too() -> None:
    with pytest.raises(RuleSetError, match="hold_minutes: must be between 0 and 10"):
        RuleSet(hold_minutes=30)
    with pytest.raises(RuleSetError, match="min_intensity"):
        IntensityRule(min_intensity="strong")


def test_zero_aftershock_window_disables_aftershock_handling() -> None:
    ruleset = replace(default_ruleset(), aftershock_window_hours=0)
    main = state("earthquake:20300401100000", prefectures=frozenset({"13"}), max_intensity="6-")
    later = quake("20300401110000", prefectures={"13": "5-"}, report_time=T0 + timedelta(hours=1))
    (decision,) = evaluate(later, ruleset, with_known(main), NOW)
    assert decision.action == "start"


def test_suppress_decisions_carry_no_audience() -> None:
    decisions: list[Decision] = evaluate(sample("54_01_01_100514_VXSE42.xml"), default_ruleset(), DEMO, NOW)
    assert decisions[0].audience.is_empty
