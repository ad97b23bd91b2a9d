"""The drill figures, table by table (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reports import metrics
from reports.metrics import AttemptFact, CallFact, LegFact, RecipientFact

T0 = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)


def at(seconds: float | None) -> datetime | None:
    return None if seconds is None else T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("answers", "recipients", "expected"),
    [
        # Four people, one every ten seconds: each quarter is one more person; 90 % of 4 needs all 4.
        ([10, 20, 30, 40], 4, {25: 10, 50: 20, 75: 30, 90: 40}),
        # Ten people, seven answered a minute apart: 75 % (8 people) and 90 % (9) are never reached.
        ([60, 120, 180, 240, 300, 360, 420, None, None, None], 10, {25: 180, 50: 300, 75: None, 90: None}),
        # The order answers arrive in the list does not matter.
        ([400, 100, 300, 200], 4, {25: 100, 50: 200, 75: 300, 90: 400}),
        # 70 % of 10 is exactly 7 people (no floating-point 7.000001 → 8).
        ([10 * n for n in range(1, 11)], 10, {25: 30, 50: 50, 75: 80, 90: 90}),
        # An answer recorded a moment before the official start counts as at the start.
        ([-5, 30], 2, {25: 0, 50: 0, 75: 30, 90: 30}),
        # Nobody answered; nobody was asked.
        ([None, None], 2, {25: None, 50: None, 75: None, 90: None}),
        ([], 0, {25: None, 50: None, 75: None, 90: None}),
    ],
)
def test_time_to_share_answered(answers, recipients, expected):
    assert metrics.times_to_percentiles(T0, [at(s) for s in answers], recipients) == expected


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([10, 20, 30], 20.0),
        ([10, 20], 15.0),
        ([300, None, 60, None, 120], 120.0),
        ([None, None], None),
        ([], None),
    ],
)
def test_median_time_to_answer(answers, expected):
    assert metrics.median_seconds(T0, [at(s) for s in answers]) == expected


def test_answer_curve_is_cumulative_per_whole_minute():
    curve = metrics.answer_curve(T0, [at(30), at(60), at(61), at(150), None], recipients=5)
    assert [(p.minute, p.answered, p.percent) for p in curve] == [
        (0, 0, 0.0),
        (1, 2, 40.0),  # 30 s and exactly 60 s
        (2, 3, 60.0),
        (3, 4, 80.0),
    ]


def test_answer_curve_extends_to_the_end_of_the_drill_when_asked():
    curve = metrics.answer_curve(T0, [at(30)], recipients=2, until=at(5 * 60))
    assert [p.minute for p in curve] == [0, 1, 2, 3, 4, 5]
    assert curve[-1].answered == 1 and curve[-1].percent == 50.0


def test_answer_curve_without_answers_is_a_flat_zero():
    assert metrics.answer_curve(T0, [None, None], recipients=2) == [metrics.CurvePoint(0, 0, 0.0)]


def test_figures_by_department():
    facts = [
        RecipientFact("営業部", "TKY", at(60)),
        RecipientFact("営業部", "OSA", at(180)),
        RecipientFact("営業部", "TKY", None),
        RecipientFact("総務部", "TKY", None),
        RecipientFact("", "OSA", at(30)),
    ]
    by_department = metrics.group_figures(T0, facts, lambda f: f.department)
    assert [
        (g.name, g.recipients, g.answered, round(g.rate, 1), g.median_seconds) for g in by_department
    ] == [
        ("営業部", 3, 2, 66.7, 120.0),
        ("総務部", 1, 0, 0.0, None),
        ("-", 1, 1, 100.0, 30.0),  # people without a department last
    ]
    by_site = metrics.group_figures(T0, facts, lambda f: f.site)
    assert [(g.name, g.recipients, g.answered) for g in by_site] == [("OSA", 2, 2), ("TKY", 3, 1)]


def attempt(
    key: str, state: str, code: str | None = None, seconds: int = 0, channel: str = "voice"
) -> AttemptFact:
    return AttemptFact(
        contact_key=key,
        person=f"person {key}",
        department="営業部",
        site="TKY",
        contact_label=f"work phone {key}",
        channel=channel,
        state=state,
        error_code=code,
        error_reason="invalid 'To' number" if code else None,
        at=at(seconds),
    )


@pytest.mark.parametrize(
    ("attempts", "unreachable"),
    [
        # Refused by the carrier every time: unreachable, with the error code.
        (
            [attempt("a", "failed", "21211"), attempt("a", "failed", "21211", 300)],
            [("a", 2, "failed", "21211")],
        ),
        # Rang out twice: unreachable, no code.
        ([attempt("b", "no_answer"), attempt("b", "busy", seconds=300)], [("b", 2, "busy", None)]),
        # Got through once (voicemail counts: the number works).
        ([attempt("c", "no_answer"), attempt("c", "machine", seconds=300)], []),
        ([attempt("d", "completed", channel="sms")], []),
        # Never left (the person answered on another channel first): says nothing about the contact point.
        ([attempt("e", "cancelled"), attempt("e", "pending")], []),
        # Error-coded ones come first.
        (
            [attempt("f", "no_answer"), attempt("g", "failed", "30006")],
            [("g", 1, "failed", "30006"), ("f", 1, "no_answer", None)],
        ),
    ],
)
def test_unreachable_contact_points(attempts, unreachable):
    found = metrics.unreachable_contacts(attempts)
    assert [
        (u.contact_label.split()[-1], u.attempts, u.last_state, u.error_code) for u in found
    ] == unreachable


DECISION = T0 + timedelta(minutes=20)


def call(
    start_min: float,
    outcome: str | None,
    *legs: LegFact,
    ended: bool = True,
) -> CallFact:
    start = DECISION + timedelta(minutes=start_min)
    return CallFact(
        started_at=start, ended_at=start + timedelta(minutes=3) if ended else None, outcome=outcome, legs=legs
    )


def leg(
    kind: str, site: str | None, outcome: str | None, start_s: float, end_s: float, talk: int | None = None
):
    return LegFact(
        kind=kind,
        site_code=site,
        outcome=outcome,
        started_at=DECISION + timedelta(seconds=start_s),
        ended_at=DECISION + timedelta(seconds=end_s),
        duration_s=talk,
    )


FAILOVER_CASES = [
    pytest.param(
        [
            # Before the decision: taken in Tokyo; does not count for the alternate site.
            call(-5, "completed", leg("site_agents", "TKY", "completed", -300, -200, 60)),
            # After: Tokyo does not answer, Osaka takes it at 150 - 60 = 90 s after the decision.
            call(
                1,
                "completed",
                leg("site_agents", "TKY", "no-answer", 60, 75),
                leg("site", "OSA", "completed", 75, 150, 60),
            ),
            # Osaka again, later.
            call(2, "completed", leg("site", "OSA", "completed", 130, 400, 200)),
            # Lost: voicemail, and a caller who hung up while waiting in the queue.
            call(
                3,
                "voicemail",
                leg("site", "OSA", "no-answer", 180, 200),
                leg("voicemail", None, "recorded", 200, 260),
            ),
            call(4, "hung_up", leg("queue", None, "hung-up", 240, 300)),
            # Still ringing: neither answered nor lost.
            call(5, None, leg("site", "OSA", None, 300, 300), ended=False),
        ],
        "OSA",
        dict(
            seconds_to_alternate=90.0,
            calls=6,
            answered=3,
            answered_at_alternate=2,
            lost=2,
            lost_by_outcome={"hung_up": 1, "voicemail": 1},
            still_open=1,
            calls_after_decision=5,
            lost_after_decision=2,
        ),
        id="osaka-takes-over",
    ),
    pytest.param(
        # No alternate named: any site but the one taken down counts; no talk time → the leg's end.
        [call(1, "completed", leg("site", "FUK", "completed", 60, 100))],
        None,
        dict(
            seconds_to_alternate=100.0,
            calls=1,
            answered=1,
            answered_at_alternate=1,
            lost=0,
            lost_by_outcome={},
        ),
        id="any-other-site",
    ),
    pytest.param(
        # Nothing ever reached the alternate site; every call ended unanswered.
        [
            call(1, "exhausted", leg("site_agents", "TKY", "no-answer", 60, 80)),
            call(2, "sms_sent", leg("sms_link", None, "sms-sent", 120, 130)),
        ],
        "OSA",
        dict(seconds_to_alternate=None, calls=2, answered=0, answered_at_alternate=0, lost=2),
        id="never-reached",
    ),
    pytest.param(
        # A home agent answering is answered, but not "at the alternate site".
        [call(1, "completed", leg("home_agents", None, "completed", 60, 120, 30))],
        "OSA",
        dict(seconds_to_alternate=None, answered=1, answered_at_alternate=0, lost=0),
        id="home-agent",
    ),
]


@pytest.mark.parametrize(("calls", "alternate", "expected"), FAILOVER_CASES)
def test_failover_timing_and_lost_calls(calls, alternate, expected):
    figures = metrics.failover_figures(
        decision_at=DECISION, calls=calls, alternate_site=alternate, down_site="TKY"
    )
    for name, value in expected.items():
        assert getattr(figures, name) == value, name


def test_failover_without_a_decision_has_no_timing():
    figures = metrics.failover_figures(
        decision_at=None, calls=[call(1, "completed", leg("site", "OSA", "completed", 60, 120, 30))]
    )
    assert figures.seconds_to_alternate is None
    assert figures.answered == 1


@pytest.mark.parametrize(
    ("key", "now", "before", "delta", "verdict"),
    [
        ("answer_rate", 92.0, 84.0, 8.0, "better"),
        ("answer_rate", 80.0, 84.0, -4.0, "worse"),
        ("t50", 300.0, 420.0, -120.0, "better"),  # faster is better
        ("t90", 1800.0, 1200.0, 600.0, "worse"),
        ("calls_lost", 2.0, 2.0, 0.0, "same"),
        ("recipients", 120.0, 110.0, 10.0, ""),  # neither better nor worse
        ("t90", None, 1200.0, None, ""),  # not reached this time: no delta
    ],
)
def test_comparison_with_the_previous_drill(key, now, before, delta, verdict):
    (row,) = metrics.compare({key: now}, [{key: before}, {key: 1.0}], [key])
    assert row.current == now
    assert row.previous == (before, 1.0)
    assert row.delta == delta
    assert row.verdict == verdict


def test_comparison_without_earlier_drills():
    (row,) = metrics.compare({"answer_rate": 90.0}, [])
    assert row.previous == () and row.delta is None and row.verdict == ""
