from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from continuity.routing import (
    BusinessHours,
    CandidateDecision,
    Emergency,
    EmergencyScope,
    EndpointKind,
    HomeAgentStatus,
    LineOverride,
    Message,
    Mode,
    OpeningWindow,
    Plan,
    RoutingDecision,
    SiteState,
    SiteStatus,
    Snapshot,
    SplitShare,
    Target,
    TargetKind,
    choose,
    endpoint_kind,
    zone,
)

TOKYO = zone("Asia/Tokyo")
LINE = "+819000000001"
OTHER_LINE = "+819000000002"
TKY_AGENT = "+819000000011"
OSA_AGENT = "sip:agent21@osaka.example.com"
HOME_AGENT = "+819000000031"
NEW_YEAR = date(2026, 1, 1)

# A Monday in June, inside business hours; the same day at 03:00; New Year's Day at 10:00 and 03:00.
OPEN_AT = datetime(2025, 6, 2, 10, 0, tzinfo=TOKYO)
NIGHT_AT = datetime(2025, 6, 2, 3, 0, tzinfo=TOKYO)
HOLIDAY_AT = datetime(2026, 1, 1, 10, 0, tzinfo=TOKYO)
HOLIDAY_NIGHT_AT = datetime(2026, 1, 1, 3, 0, tzinfo=TOKYO)

EMERGENCY_MESSAGE = Message(
    "地震のため、ただいま電話がつながりにくくなっています。", "Due to the earthquake, we cannot take calls."
)
CLOSED_MESSAGE = Message("本日の受付は終了しました。", "We are closed.")
HOLIDAY_MESSAGE = Message("本日は休業日です。", "We are closed for the holiday.")

PLAN = Plan(
    line=LINE,
    name="support",
    targets=(
        Target(TargetKind.SITE_AGENTS, "TKY", ring_timeout_s=20, skip_when_unavailable=True),
        Target(TargetKind.SITE, "OSA", ring_timeout_s=20, skip_when_unavailable=True),
        Target(TargetKind.HOME_AGENTS, ring_timeout_s=25),
        Target(TargetKind.VOICEMAIL),
        Target(TargetKind.SMS_LINK),
    ),
    business_hours=BusinessHours.daily(time(9), time(18)),
    holidays=frozenset({NEW_YEAR}),
    closed_message=CLOSED_MESSAGE,
    holiday_message=HOLIDAY_MESSAGE,
)


def snapshot(
    tky: SiteState = SiteState.NORMAL,
    osa: SiteState = SiteState.NORMAL,
    tky_free: int = 3,
    osa_free: int = 2,
    home: tuple[str, ...] = (HOME_AGENT,),
    emergencies: tuple[Emergency, ...] = (),
    **kwargs: object,
) -> Snapshot:
    return Snapshot(
        sites={
            "TKY": SiteStatus("TKY", tky, tky_free, (TKY_AGENT,)),
            "OSA": SiteStatus("OSA", osa, osa_free, (OSA_AGENT,)),
        },
        home_agents=HomeAgentStatus(home),
        emergencies=emergencies,
        **kwargs,  # type: ignore[arg-type]
    )


def where(decision: RoutingDecision) -> tuple[str, str | None] | None:
    target = decision.target
    return (target.kind.value, target.site_code) if target else None


def reasons(decision: RoutingDecision) -> dict[str, str]:
    return {f"{c.target.kind.value}:{c.target.site_code or ''}": c.reason for c in decision.skipped}


def global_emergency(**kwargs: object) -> Emergency:
    return Emergency(EmergencyScope.GLOBAL, EMERGENCY_MESSAGE, **kwargs)  # type: ignore[arg-type]


# --- where a call goes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "at", "mode", "chosen", "skip_reason"),
    [
        pytest.param(
            snapshot(), OPEN_AT, Mode.OPEN, ("site_agents", "TKY"), None, id="normal → Tokyo agents"
        ),
        pytest.param(
            snapshot(tky=SiteState.DOWN),
            OPEN_AT,
            Mode.OPEN,
            ("site", "OSA"),
            "site TKY is down",
            id="Tokyo down → Osaka",
        ),
        pytest.param(
            snapshot(tky=SiteState.EVACUATED),
            OPEN_AT,
            Mode.OPEN,
            ("site", "OSA"),
            "site TKY is evacuated",
            id="Tokyo evacuated → Osaka",
        ),
        pytest.param(
            snapshot(tky=SiteState.DEGRADED),
            OPEN_AT,
            Mode.OPEN,
            ("site_agents", "TKY"),
            None,
            id="degraded is tried",
        ),
        pytest.param(
            snapshot(tky_free=0, osa_free=0),
            OPEN_AT,
            Mode.OPEN,
            ("home_agents", None),
            "no agent available at OSA and skip_when_unavailable",
            id="no site agent free → home agents",
        ),
        pytest.param(
            snapshot(tky=SiteState.DOWN, osa_free=0, home=()),
            OPEN_AT,
            Mode.OPEN,
            ("voicemail", None),
            "no home agent available",
            id="nobody → voicemail",
        ),
        pytest.param(
            Snapshot(sites={}, home_agents=HomeAgentStatus()),
            OPEN_AT,
            Mode.OPEN,
            ("voicemail", None),
            "site TKY has no status (treated as down)",
            id="unknown sites are not rung",
        ),
        pytest.param(
            snapshot(emergencies=(global_emergency(),)),
            OPEN_AT,
            Mode.EMERGENCY,
            ("announcement", None),
            "emergency mode (global)",
            id="emergency → announcement",
        ),
        pytest.param(
            snapshot(emergencies=(global_emergency(),)),
            HOLIDAY_NIGHT_AT,
            Mode.EMERGENCY,
            ("announcement", None),
            "emergency mode (global)",
            id="emergency first, even on a holiday night",
        ),
        pytest.param(
            snapshot(),
            HOLIDAY_AT,
            Mode.HOLIDAY,
            ("announcement", None),
            "holiday 2026-01-01",
            id="holiday in hours",
        ),
        pytest.param(
            snapshot(),
            HOLIDAY_NIGHT_AT,
            Mode.HOLIDAY,
            ("announcement", None),
            "holiday 2026-01-01",
            id="holiday before closed",
        ),
        pytest.param(
            snapshot(),
            NIGHT_AT,
            Mode.CLOSED,
            ("announcement", None),
            "line closed: outside business hours 09:00-18:00 Asia/Tokyo",
            id="closed at 03:00 Tokyo",
        ),
        pytest.param(
            snapshot(),
            NIGHT_AT.astimezone(UTC),  # 18:00 UTC the day before
            Mode.CLOSED,
            ("announcement", None),
            None,
            id="the clock is read in the plan's time zone",
        ),
        pytest.param(
            snapshot(emergencies=(global_emergency(ends_at=OPEN_AT - timedelta(minutes=1)),)),
            OPEN_AT,
            Mode.OPEN,
            ("site_agents", "TKY"),
            None,
            id="expired emergency ignored",
        ),
        pytest.param(
            snapshot(emergencies=(global_emergency(ends_at=OPEN_AT),)),
            OPEN_AT,
            Mode.OPEN,
            ("site_agents", "TKY"),
            None,
            id="emergency ends at ends_at",
        ),
        pytest.param(
            snapshot(emergencies=(global_emergency(ends_at=OPEN_AT + timedelta(minutes=1)),)),
            OPEN_AT,
            Mode.EMERGENCY,
            ("announcement", None),
            None,
            id="emergency before ends_at",
        ),
        pytest.param(
            snapshot(emergencies=(Emergency(EmergencyScope.SITE, EMERGENCY_MESSAGE, site_code="TKY"),)),
            OPEN_AT,
            Mode.EMERGENCY,
            ("announcement", None),
            None,
            id="emergency at the home site",
        ),
        pytest.param(
            snapshot(emergencies=(Emergency(EmergencyScope.SITE, EMERGENCY_MESSAGE, site_code="OSA"),)),
            OPEN_AT,
            Mode.OPEN,
            ("site_agents", "TKY"),
            None,
            id="emergency at another site does not apply",
        ),
        pytest.param(
            snapshot(emergencies=(Emergency(EmergencyScope.LINE, EMERGENCY_MESSAGE, line=LINE),)),
            OPEN_AT,
            Mode.EMERGENCY,
            ("announcement", None),
            None,
            id="emergency on this line",
        ),
        pytest.param(
            snapshot(emergencies=(Emergency(EmergencyScope.LINE, EMERGENCY_MESSAGE, line=OTHER_LINE),)),
            OPEN_AT,
            Mode.OPEN,
            ("site_agents", "TKY"),
            None,
            id="emergency on another line does not apply",
        ),
    ],
)
def test_where_a_call_goes(
    state: Snapshot, at: datetime, mode: Mode, chosen: tuple[str, str | None], skip_reason: str | None
) -> None:
    decision = choose(PLAN, state, at)
    assert decision.mode is mode
    assert where(decision) == chosen
    if skip_reason is not None:
        assert skip_reason in reasons(decision).values()


@pytest.mark.parametrize(
    ("at", "mode", "message"),
    [
        (OPEN_AT, Mode.EMERGENCY, EMERGENCY_MESSAGE),
        (HOLIDAY_AT, Mode.HOLIDAY, HOLIDAY_MESSAGE),
        (NIGHT_AT, Mode.CLOSED, CLOSED_MESSAGE),
    ],
)
def test_announcement_then_unmanned_fallbacks_only(at: datetime, mode: Mode, message: Message) -> None:
    emergencies = (global_emergency(),) if mode is Mode.EMERGENCY else ()
    decision = choose(PLAN, snapshot(emergencies=emergencies), at)
    assert decision.target is not None and decision.target.message == message
    tried = [c.target.kind for c in decision.candidates if c.decision is CandidateDecision.TRY]
    assert tried == [TargetKind.ANNOUNCEMENT, TargetKind.VOICEMAIL, TargetKind.SMS_LINK]
    # after the announcement, the call goes on to voicemail
    then = choose(PLAN, snapshot(emergencies=emergencies), at, attempt=decision.next_attempt)
    assert where(then) == ("voicemail", None)


def test_global_emergency_wins_over_site_and_line() -> None:
    site = Emergency(EmergencyScope.SITE, Message("拠点"), site_code="TKY")
    line = Emergency(EmergencyScope.LINE, Message("回線"), line=LINE)
    world = Emergency(EmergencyScope.GLOBAL, Message("全体"))
    assert choose(PLAN, snapshot(emergencies=(line, site, world)), OPEN_AT).emergency is world
    assert choose(PLAN, snapshot(emergencies=(line, site)), OPEN_AT).emergency is site
    assert choose(PLAN, snapshot(emergencies=(line,)), OPEN_AT).emergency is line


def test_nobody_and_no_fallback_ends_with_the_unavailable_message() -> None:
    plan = replace(
        PLAN, targets=PLAN.targets[:3], unavailable_message=Message("ただいま混み合っております。")
    )
    decision = choose(plan, snapshot(tky=SiteState.DOWN, osa=SiteState.DOWN, home=()), OPEN_AT)
    assert where(decision) == ("announcement", None)
    assert decision.target is not None and decision.target.message == Message("ただいま混み合っております。")
    assert choose(plan, snapshot(), OPEN_AT, attempt=decision.next_attempt).chosen is None  # then hang up


def test_unmanned_fallbacks_come_after_people_whatever_the_plan_order() -> None:
    plan = replace(PLAN, targets=(Target(TargetKind.VOICEMAIL), *PLAN.targets[:3]))
    assert where(choose(plan, snapshot(), OPEN_AT)) == ("site_agents", "TKY")
    assert where(choose(plan, snapshot(tky=SiteState.DOWN, osa=SiteState.DOWN, home=()), OPEN_AT)) == (
        "voicemail",
        None,
    )


def test_site_with_nobody_free_is_rung_unless_told_to_skip() -> None:
    plan = replace(PLAN, targets=(Target(TargetKind.SITE_AGENTS, "TKY"), *PLAN.targets[1:]))
    decision = choose(plan, snapshot(tky_free=0), OPEN_AT)
    assert where(decision) == ("site_agents", "TKY")
    assert decision.endpoints == (TKY_AGENT,)


# --- attempts: the Dial action callback --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "chosen"),
    [
        (0, ("site_agents", "TKY")),
        (1, ("site", "OSA")),
        (2, ("home_agents", None)),
        (3, ("voicemail", None)),
        (4, ("sms_link", None)),
        (5, ("announcement", None)),
        (6, None),
        (60, None),
    ],
)
def test_attempt_moves_to_the_next_target(attempt: int, chosen: tuple[str, str | None] | None) -> None:
    assert where(choose(PLAN, snapshot(), OPEN_AT, attempt=attempt)) == chosen


def test_next_attempt_skips_targets_already_skipped() -> None:
    state = snapshot(tky=SiteState.DOWN)
    first = choose(PLAN, state, OPEN_AT)
    assert where(first) == ("site", "OSA")
    assert first.next_attempt == 2
    second = choose(PLAN, state, OPEN_AT, attempt=first.next_attempt)
    assert where(second) == ("home_agents", None)
    assert second.endpoints == (HOME_AGENT,)
    # a site coming back up meanwhile does not make the call ring it again
    assert where(choose(PLAN, snapshot(), OPEN_AT, attempt=first.next_attempt)) == ("home_agents", None)


def test_chosen_endpoints_and_ring_timeout() -> None:
    decision = choose(PLAN, snapshot(tky=SiteState.DOWN), OPEN_AT)
    assert decision.endpoints == (OSA_AGENT,)
    assert decision.target is not None and decision.target.ring_timeout_s == 20


# --- per-target hours, queues ------------------------------------------------------------------------------------


def test_target_outside_its_own_hours_is_skipped() -> None:
    evening = datetime(2025, 6, 2, 19, 30, tzinfo=TOKYO)
    plan = replace(
        PLAN,
        business_hours=BusinessHours.daily(time(8), time(22)),
        targets=(
            Target(TargetKind.SITE_AGENTS, "TKY", business_hours=BusinessHours.weekdays(time(9), time(18))),
            Target(TargetKind.HOME_AGENTS),
        ),
    )
    decision = choose(plan, snapshot(), evening)
    assert decision.mode is Mode.OPEN
    assert where(decision) == ("home_agents", None)
    assert reasons(decision) == {"site_agents:TKY": "outside business hours Mon-Fri 09:00-18:00 Asia/Tokyo"}


@pytest.mark.parametrize(
    ("waiting", "capacity", "chosen", "reason"),
    [
        (9, 10, ("queue", None), None),
        (10, 10, ("voicemail", None), "queue full 10/10"),
        (12, 10, ("voicemail", None), "queue full 12/10"),
        (500, None, ("queue", None), None),
    ],
)
def test_queue_capacity(
    waiting: int, capacity: int | None, chosen: tuple[str, None], reason: str | None
) -> None:
    queue = Target(
        TargetKind.QUEUE, queue_name="support", queue_capacity=capacity, message=Message("お待ちください。")
    )
    plan = replace(PLAN, targets=(queue, Target(TargetKind.VOICEMAIL)))
    decision = choose(plan, snapshot(queue_sizes={"support": waiting}), OPEN_AT)
    assert where(decision) == chosen
    if reason:
        assert reasons(decision) == {"queue:": reason}


@pytest.mark.parametrize(
    ("tky", "tky_free", "skip", "chosen"),
    [
        (SiteState.NORMAL, 2, True, "queue"),
        (SiteState.DOWN, 2, False, "voicemail"),
        (SiteState.NORMAL, 0, True, "voicemail"),
        (SiteState.NORMAL, 0, False, "queue"),
    ],
)
def test_queue_served_by_a_site(tky: SiteState, tky_free: int, skip: bool, chosen: str) -> None:
    queue = Target(
        TargetKind.QUEUE, "TKY", queue_name="support", queue_capacity=10, skip_when_unavailable=skip
    )
    plan = replace(PLAN, targets=(queue, Target(TargetKind.VOICEMAIL)))
    assert where(choose(plan, snapshot(tky=tky, tky_free=tky_free), OPEN_AT)) == (
        chosen,
        queue.site_code if chosen == "queue" else None,
    )


# --- overrides: moved lines and split traffic --------------------------------------------------------------------


def split_override(*shares: tuple[str, int]) -> dict[str, LineOverride]:
    return {LINE: LineOverride(LINE, split=tuple(SplitShare(site, weight) for site, weight in shares))}


def test_split_is_deterministic_per_call_and_follows_the_weights() -> None:
    state = snapshot(overrides=split_override(("TKY", 70), ("OSA", 30)))
    first_sites = Counter()
    for n in range(1000):
        key = f"CA{n:032x}"
        decision = choose(PLAN, state, OPEN_AT, call_key=key)
        assert where(choose(PLAN, state, OPEN_AT, call_key=key)) == where(decision)
        first_sites[decision.target.site_code if decision.target else None] += 1
    assert set(first_sites) == {"TKY", "OSA"}
    assert 640 <= first_sites["TKY"] <= 760  # 700 expected; binomial sd ≈ 14.5


def test_split_site_goes_first_and_the_rest_follows() -> None:
    state = snapshot(overrides=split_override(("TKY", 50), ("OSA", 50)))
    osa_key = next(
        f"CA{n}" for n in range(100) if choose(PLAN, state, OPEN_AT, call_key=f"CA{n}").split_site == "OSA"
    )
    decision = choose(PLAN, state, OPEN_AT, call_key=osa_key)
    assert [(c.target.kind.value, c.target.site_code) for c in decision.candidates[:3]] == [
        ("site", "OSA"),
        ("site_agents", "TKY"),
        ("home_agents", None),
    ]
    assert where(choose(PLAN, state, OPEN_AT, call_key=osa_key, attempt=1)) == ("site_agents", "TKY")


def test_split_onto_a_site_that_is_down_fails_over() -> None:
    state = snapshot(osa=SiteState.DOWN, overrides=split_override(("OSA", 1)))
    decision = choose(PLAN, state, OPEN_AT, call_key="CA1")
    assert decision.split_site == "OSA"
    assert where(decision) == ("site_agents", "TKY")


def test_move_to_a_site_not_in_the_plan() -> None:
    sites = {"FUK": SiteStatus("FUK", SiteState.NORMAL, 1, ("client:fukuoka-1",))}
    state = Snapshot(sites=sites, overrides=split_override(("FUK", 1)))
    decision = choose(PLAN, state, OPEN_AT)
    assert where(decision) == ("site", "FUK")
    assert endpoint_kind(decision.endpoints[0]) is EndpointKind.CLIENT


def test_split_without_call_key_takes_the_largest_share() -> None:
    state = snapshot(overrides=split_override(("TKY", 30), ("OSA", 70)))
    assert choose(PLAN, state, OPEN_AT).split_site == "OSA"


def test_line_moved_to_another_plan() -> None:
    osaka_plan = Plan(line=LINE, name="osaka", targets=(Target(TargetKind.SITE_AGENTS, "OSA"),))
    state = snapshot(overrides={LINE: LineOverride(LINE, plan=osaka_plan)})
    decision = choose(PLAN, state, NIGHT_AT)  # the Osaka plan never closes
    assert decision.mode is Mode.OPEN
    assert where(decision) == ("site_agents", "OSA")
    assert decision.plan is osaka_plan
    assert (
        choose(
            PLAN, snapshot(overrides={OTHER_LINE: LineOverride(OTHER_LINE, plan=osaka_plan)}), NIGHT_AT
        ).mode
        is Mode.CLOSED
    )


# --- explain -----------------------------------------------------------------------------------------------------


def test_explain_is_json_and_tells_why() -> None:
    decision = choose(PLAN, snapshot(tky=SiteState.DOWN, osa_free=0), datetime(2025, 6, 2, 1, 30, tzinfo=UTC))
    explained = json.loads(json.dumps(decision.explain()))
    assert explained["line"] == LINE
    assert explained["at"] == "2025-06-02T10:30:00+09:00"
    assert explained["mode"] == "open"
    assert explained["targets"][:3] == [
        {
            "position": 0,
            "kind": "site_agents",
            "site": "TKY",
            "queue": None,
            "decision": "skip",
            "reason": "site TKY is down",
        },
        {
            "position": 1,
            "kind": "site",
            "site": "OSA",
            "queue": None,
            "decision": "skip",
            "reason": "no agent available at OSA and skip_when_unavailable",
        },
        {
            "position": 2,
            "kind": "home_agents",
            "site": None,
            "queue": None,
            "decision": "try",
            "reason": "1 agent working from home available",
        },
    ]
    assert explained["chosen"]["kind"] == "home_agents"
    assert explained["chosen"]["endpoints"] == [HOME_AGENT]
    assert explained["next_attempt"] == 3


def test_explain_in_emergency() -> None:
    ends = datetime(2025, 6, 2, 12, 0, tzinfo=TOKYO)
    explained = choose(PLAN, snapshot(emergencies=(global_emergency(ends_at=ends),)), OPEN_AT).explain()
    json.dumps(explained)
    assert explained["mode"] == "emergency"
    assert explained["emergency"]["ends_at"] == "2025-06-02T12:00:00+09:00"
    assert explained["chosen"]["message"]["en"] == EMERGENCY_MESSAGE.en
    assert [t["decision"] for t in explained["targets"]] == ["try", "skip", "skip", "skip", "try", "try"]


# --- business hours ----------------------------------------------------------------------------------------------

OVERNIGHT = BusinessHours((OpeningWindow(time(22), time(6), frozenset({0})),))  # Monday night into Tuesday


@pytest.mark.parametrize(
    ("hours", "at", "is_open"),
    [
        (BusinessHours.daily(time(9), time(18)), datetime(2025, 6, 2, 9, 0, tzinfo=TOKYO), True),
        (BusinessHours.daily(time(9), time(18)), datetime(2025, 6, 2, 18, 0, tzinfo=TOKYO), False),
        (BusinessHours.daily(time(9), time(18)), datetime(2025, 6, 2, 8, 59, tzinfo=TOKYO), False),
        (
            BusinessHours.weekdays(time(9), time(18)),
            datetime(2025, 6, 7, 10, 0, tzinfo=TOKYO),
            False,
        ),  # Saturday
        (OVERNIGHT, datetime(2025, 6, 2, 23, 0, tzinfo=TOKYO), True),  # Monday 23:00
        (OVERNIGHT, datetime(2025, 6, 3, 5, 59, tzinfo=TOKYO), True),  # Tuesday 05:59
        (OVERNIGHT, datetime(2025, 6, 3, 6, 0, tzinfo=TOKYO), False),
        (OVERNIGHT, datetime(2025, 6, 3, 23, 0, tzinfo=TOKYO), False),  # Tuesday night is not open
        (
            OVERNIGHT,
            datetime(2025, 6, 2, 5, 0, tzinfo=TOKYO),
            False,
        ),  # Monday early: Sunday night is not open
        # New York hours across the DST change: 09:00 local is 14:00 UTC in January, 13:00 UTC in July
        (
            BusinessHours.daily(time(9), time(17), "America/New_York"),
            datetime(2025, 1, 6, 14, 0, tzinfo=UTC),
            True,
        ),
        (
            BusinessHours.daily(time(9), time(17), "America/New_York"),
            datetime(2025, 1, 6, 13, 30, tzinfo=UTC),
            False,
        ),
        (
            BusinessHours.daily(time(9), time(17), "America/New_York"),
            datetime(2025, 7, 7, 13, 30, tzinfo=UTC),
            True,
        ),
    ],
)
def test_business_hours(hours: BusinessHours, at: datetime, is_open: bool) -> None:
    assert hours.is_open(at) is is_open


@pytest.mark.parametrize(
    ("hours", "description"),
    [
        (BusinessHours.daily(time(9), time(18)), "09:00-18:00 Asia/Tokyo"),
        (BusinessHours.weekdays(time(9), time(18)), "Mon-Fri 09:00-18:00 Asia/Tokyo"),
        (
            BusinessHours(
                (
                    OpeningWindow(time(9), time(18), frozenset(range(5))),
                    OpeningWindow(time(10), time(15), frozenset({5})),
                ),
                "Asia/Tokyo",
            ),
            "Mon-Fri 09:00-18:00, Sat 10:00-15:00 Asia/Tokyo",
        ),
        (OVERNIGHT, "Mon 22:00-06:00 Asia/Tokyo"),
        (
            BusinessHours((OpeningWindow(time(9), time(12), frozenset({0, 2, 5, 6})),)),
            "Mon,Wed,Sat,Sun 09:00-12:00 Asia/Tokyo",
        ),
    ],
)
def test_business_hours_description(hours: BusinessHours, description: str) -> None:
    assert hours.description == description


# --- input checks and speed --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Target(TargetKind.SITE_AGENTS),
        lambda: Target(TargetKind.QUEUE),
        lambda: Target(TargetKind.QUEUE, queue_name="q", queue_capacity=0),
        lambda: Target(TargetKind.ANNOUNCEMENT),
        lambda: Emergency(EmergencyScope.SITE, EMERGENCY_MESSAGE),
        lambda: Emergency(EmergencyScope.GLOBAL, EMERGENCY_MESSAGE, ends_at=datetime(2025, 1, 1)),
        lambda: Plan(LINE, (), timezone="Mars/Olympus_Mons"),
        lambda: LineOverride(LINE, split=(SplitShare("TKY", 0),)),
        lambda: choose(PLAN, snapshot(), datetime(2025, 6, 2, 10, 0)),
        lambda: choose(PLAN, snapshot(), OPEN_AT, attempt=-1),
    ],
)
def test_bad_input_is_refused(build) -> None:
    with pytest.raises((ValueError, KeyError)):
        build()


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        (TKY_AGENT, EndpointKind.NUMBER),
        ("client:agent7", EndpointKind.CLIENT),
        ("SIP:a@b.example.com", EndpointKind.SIP),
    ],
)
def test_endpoint_kind(endpoint: str, kind: EndpointKind) -> None:
    assert endpoint_kind(endpoint) is kind
