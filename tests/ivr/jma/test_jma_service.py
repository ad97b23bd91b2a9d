"""Bulletins replayed through the service: genuine JMA samples (tests/fixtures/jma) and intensity reports built in
their shape give the broadcasts a crisis manager expects — and none where none is due."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core import db
from core.auth.models import AuditEntry
from core.mail import make_mail_backend
from ivr import dispatch
from ivr.jma import service
from ivr.jma.models import (
    BulletinState,
    EventStatus,
    HeldState,
    HeldTrigger,
    JmaBulletin,
    JmaDecision,
    JmaEvent,
    JmaNotification,
)
from ivr.jma.parse import parse_bulletin
from ivr.jma.rules import RuleSet, RuleSetError, TsunamiRule
from ivr.models import Attempt, Broadcast, BroadcastMode, Recipient
from tests.factories import make_site, make_staff
from tests.ivr.jma.support import JST, Org, broadcasts_of, count, intensity_report, recipients_of, sample

NOW = datetime(2030, 4, 1, 1, 5, tzinfo=UTC)
EVENT = "20300401100000"


def replay(org: Org, data: bytes, *, now: datetime = NOW, name: str = "bulletin.xml") -> list[JmaDecision]:
    _, decisions = service.replay_bulletin(data=data, name=name, now=now, organization_ids=[org.org.id])
    return decisions


def use_rules(org: Org, *, enabled: bool = True, emergency: str | None = None, **changes: Any) -> RuleSet:
    ruleset = replace(service.default_rules(organization_id=org.org.id), **changes)
    service.save_rules(
        organization_id=org.org.id,
        document=ruleset.to_dict(),
        enabled=enabled,
        emergency_min_intensity=emergency,
        actor="test",
    )
    return ruleset


def actions(decisions: list[JmaDecision]) -> list[tuple[str, str | None]]:
    return [(d.action, d.template) for d in decisions]


def attempts_by_recipient(broadcast: Broadcast) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for attempt_id, staff_id in db.session.execute(
        select(Attempt.id, Recipient.staff_id)
        .join(Recipient, Recipient.id == Attempt.recipient_id)
        .where(Attempt.broadcast_id == broadcast.id)
    ):
        out.setdefault(staff_id, set()).add(attempt_id)
    return out


# --- what never starts a real broadcast -----------------------------------------------------------------------


def test_drill_bulletin_starts_a_drill_only_when_the_organization_opted_in(org: Org) -> None:
    drill = sample("32-39_13_02_250206_VTSE41.xml")  # 訓練: 津波注意報 for 東京湾内湾 among others

    (decision,) = replay(org, drill)
    assert decision.action == "suppress" and "not opted in" in decision.reason
    assert broadcasts_of(org.org) == []

    advisories_for_tokyo_bay = TsunamiRule(
        site_areas={"TKY": frozenset({"312"})}, kinds=frozenset({"大津波警報", "津波警報", "津波注意報"})
    )
    use_rules(org, allow_drill=True, tsunami_rules=(advisories_for_tokyo_bay,))
    (decision,) = replay(org, drill)
    assert (decision.action, decision.template, decision.mode) == ("start", "tsunami", "drill")
    (broadcast,) = broadcasts_of(org.org)
    assert broadcast.mode is BroadcastMode.DRILL
    assert not broadcast.include_family  # drills never page family contacts
    assert set(recipients_of(broadcast)) == org.people(sites=["TKY"])


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("54_01_01_100514_VXSE42.xml", "試験 (test) bulletins never trigger"),
        ("37_01_01_240613_VXSE43.xml", "Earthquake Early Warnings (VXSE43) are not a trigger"),
        ("32-35_01_02_240613_VXSE52.xml", "carries nothing the rules act on"),  # 訓練 震源に関する情報
    ],
)
def test_test_eew_and_hypocentre_bulletins_never_trigger(org: Org, name: str, reason: str) -> None:
    use_rules(org, allow_drill=True)
    (decision,) = replay(org, sample(name))
    assert decision.action == "suppress"
    assert reason in decision.reason
    assert broadcasts_of(org.org) == []
    assert count(JmaEvent, JmaEvent.organization_id == org.org.id) == 0


def test_intensity_below_threshold_and_overseas_quake_send_nothing(org: Org) -> None:
    for name in (
        "32-35_04_04_240613_VXSE53.xml",
        "32-35_01_03_100514_VXSE53.xml",
        "32-35_08_01_100915_VXSE51.xml",
    ):
        (decision,) = replay(org, sample(name))
        assert decision.action == "suppress", name
    assert broadcasts_of(org.org) == []


# --- real bulletins that start broadcasts -----------------------------------------------------------------------


def test_real_6_lower_in_a_site_prefecture_reaches_that_prefecture_only(org: Org) -> None:
    shizuoka = make_site(org.org, code="SZO", prefecture="22", municipality="2210000")
    people = {
        make_staff(org.org, site=shizuoka, home_prefecture="22", phone=f"+819000000{n}90").id
        for n in range(2)
    }

    (decision,) = replay(org, sample("32-35_07_06_240613_VXSE53.xml"))  # 静岡県 6-, 東京都 4, 大阪府 3

    assert (decision.action, decision.template, decision.mode) == ("start", "earthquake", "real")
    assert "静岡県 (22) 6-" in decision.reason
    (broadcast,) = broadcasts_of(org.org)
    assert broadcast.mode is BroadcastMode.REAL
    assert broadcast.origin == "jma:earthquake:20090811050711"
    assert set(recipients_of(broadcast)) == people
    assert decision.broadcast_id == broadcast.id
    assert f"broadcast {broadcast.id}" in decision.outcome and "2 people" in decision.outcome


def test_tohoku_6_upper_reaches_the_staff_who_live_there(org: Org) -> None:
    (decision,) = replay(org, sample("32-39_11_01_120615_VXSE51.xml"))  # 宮城県 6+, 岩手県 6-, 山形県 5- …

    assert (decision.action, decision.template) == ("start", "earthquake")
    assert "宮城県 (04) 6+" in decision.reason
    (broadcast,) = broadcasts_of(org.org)
    assert set(recipients_of(broadcast)) == org.people(homes=["04"])
    assert len(recipients_of(broadcast)) == 2


def test_heavy_rain_emergency_warning_for_shinjuku_goes_to_the_tokyo_site(org: Org) -> None:
    (decision,) = replay(org, sample("15_14_01_170216_VPWW53.xml"))  # 大雨特別警報 for 新宿区 (1310400)

    assert (decision.action, decision.template) == ("start", "heavy_rain")
    assert service.audience_from_json(decision.audience).sites == {"TKY"}
    (broadcast,) = broadcasts_of(org.org)
    assert broadcast.template_key == "heavy_rain"
    # The site's people — not someone who merely lives in Tokyo and works in Osaka.
    assert set(recipients_of(broadcast)) == org.people(sites=["TKY"])


def test_tsunami_warning_on_a_site_coast_goes_to_that_site(org: Org) -> None:
    (decision,) = replay(
        org, sample("32-39_11_02_250206_VTSE41.xml")
    )  # 津波警報 for 千葉県九十九里・外房 (310)

    assert (decision.action, decision.template) == ("start", "tsunami")
    assert "津波警報 for 千葉県九十九里・外房 (310) near site CHB" in decision.reason
    (broadcast,) = broadcasts_of(org.org)
    assert set(recipients_of(broadcast)) == org.people(sites=["CHB"])  # 東京湾内湾 only had a 津波予報


# --- holds, withdrawals, corrections and upgrades ---------------------------------------------------------------


def test_cancellation_inside_the_hold_sends_nothing(org: Org) -> None:
    use_rules(org, hold_minutes=5)
    first = intensity_report(
        "20080614084350", {"27": "6-"}, report_time=datetime(2008, 6, 14, 8, 45, tzinfo=JST)
    )
    (held,) = replay(org, first)
    assert held.action == "hold"
    assert held.hold_until == NOW + timedelta(minutes=5)
    (trigger,) = db.session.scalars(
        select(HeldTrigger).where(HeldTrigger.organization_id == org.org.id)
    ).all()
    assert trigger.send_at == NOW + timedelta(minutes=5)

    (cancelled,) = replay(
        org, sample("32-35_06_06_100915_VXSE53.xml"), now=NOW + timedelta(minutes=2)
    )  # 取消

    assert cancelled.action == "cancel"
    assert "held broadcast cancelled" in cancelled.outcome
    assert service.release_due(now=NOW + timedelta(minutes=10)) == []
    db.session.refresh(trigger)
    assert trigger.state is HeldState.CANCELLED
    assert trigger.resolved_by == "jma"
    assert count(Broadcast, Broadcast.organization_id == org.org.id) == 0
    assert count(Recipient) == 0
    assert count(Attempt) == 0
    event = db.session.scalars(select(JmaEvent).where(JmaEvent.organization_id == org.org.id)).one()
    assert event.status is EventStatus.CANCELLED


def test_a_hold_is_released_once_when_it_runs_out(org: Org) -> None:
    use_rules(org, hold_minutes=3)
    replay(org, intensity_report(EVENT, {"27": "5+"}))

    assert service.release_due(now=NOW + timedelta(minutes=2)) == []
    assert broadcasts_of(org.org) == []
    (released,) = service.release_due(now=NOW + timedelta(minutes=3))
    assert service.release_due(now=NOW + timedelta(minutes=4)) == []

    assert released.action == "release" and released.bulletin_id is None
    (broadcast,) = broadcasts_of(org.org)
    assert released.broadcast_id == broadcast.id
    assert set(recipients_of(broadcast)) == org.people(site_prefectures=["27"], homes=["27"])
    trigger = db.session.scalars(select(HeldTrigger)).one()
    assert (trigger.state, trigger.broadcast_id) == (HeldState.RELEASED, broadcast.id)
    assert service.cancel_hold(held_id=trigger.id, actor="someone", now=NOW + timedelta(minutes=5)) is None


def test_upgrade_of_the_same_event_widens_without_contacting_anyone_twice(org: Org) -> None:
    (started,) = replay(org, intensity_report(EVENT, {"27": "5+"}))
    assert started.action == "start"
    (broadcast,) = broadcasts_of(org.org)
    osaka = org.people(site_prefectures=["27"], homes=["27"])
    assert set(recipients_of(broadcast)) == osaka
    dispatch.advance_ladders(now=NOW)
    before = attempts_by_recipient(broadcast)
    assert set(before) == osaka  # everyone of the first audience has been sent something

    upgrade = intensity_report(EVENT, {"27": "6-", "13": "5-"}, title="震源・震度に関する情報")
    (widened,) = replay(org, upgrade, now=NOW + timedelta(minutes=1))
    assert (widened.action, widened.broadcast_id) == ("widen", broadcast.id)
    assert service.audience_from_json(widened.audience).prefectures == {"13"}
    dispatch.advance_ladders(now=NOW + timedelta(minutes=1))

    assert broadcasts_of(org.org) == [broadcast]
    people = recipients_of(broadcast)
    assert len(people) == len(set(people))  # nobody twice
    tokyo = org.people(site_prefectures=["13"], homes=["13"])
    assert set(people) == osaka | tokyo
    assert len(people) > len(osaka)
    after = attempts_by_recipient(broadcast)
    for staff_id in osaka:
        assert after[staff_id] == before[staff_id], "someone already in the broadcast was contacted again"
    assert set(after) == osaka | tokyo

    (again,) = replay(org, upgrade, now=NOW + timedelta(minutes=2))
    assert again.action == "suppress" and "adds nobody" in again.reason
    assert sorted(recipients_of(broadcast)) == sorted(people)


def test_correction_replaces_the_audience_of_a_held_broadcast(org: Org) -> None:
    use_rules(org, hold_minutes=5)
    (held,) = replay(org, intensity_report(EVENT, {"27": "5+", "13": "5-"}))
    assert held.action == "hold"
    (corrected,) = replay(org, intensity_report(EVENT, {"27": "5+", "13": "4"}, info_type="訂正"))
    assert corrected.action == "replace"
    assert "prefectures 13, 27 → prefectures 27" in corrected.reason

    service.release_due(now=NOW + timedelta(minutes=5))
    (broadcast,) = broadcasts_of(org.org)
    assert set(recipients_of(broadcast)) == org.people(site_prefectures=["27"], homes=["27"])


def test_aftershock_notifies_the_crisis_managers_unless_it_is_stronger(app: Any, org: Org) -> None:
    settings = app.extensions["lifeline.settings"]
    app.extensions["lifeline.settings"] = replace(settings, mail_backend="memory")
    outbox = make_mail_backend(app.extensions["lifeline.settings"]).outbox  # type: ignore[attr-defined]
    outbox.clear()
    try:
        replay(org, intensity_report(EVENT, {"27": "6-"}))
        later = datetime(2030, 4, 1, 11, 3, tzinfo=JST)
        (aftershock,) = replay(org, intensity_report("20300401110000", {"27": "5+"}, report_time=later))
        db.session.commit()  # the e-mail leaves after commit
    finally:
        app.extensions["lifeline.settings"] = settings

    assert aftershock.action == "notify_only"
    assert "aftershock" in aftershock.reason
    assert len(broadcasts_of(org.org)) == 1
    note = db.session.scalars(
        select(JmaNotification).where(JmaNotification.decision_id == aftershock.id)
    ).one()
    assert note.recipients == [org.crisis_manager.email]
    assert [mail.to for mail in outbox if mail.subject == note.subject] == [org.crisis_manager.email]

    stronger = datetime(2030, 4, 1, 12, 3, tzinfo=JST)
    (decision,) = replay(org, intensity_report("20300401120000", {"27": "6+"}, report_time=stronger))
    assert decision.action == "start" and "stronger than the earlier" in decision.reason
    assert len(broadcasts_of(org.org)) == 2


def test_a_lifted_weather_warning_ends_the_event_and_a_new_one_starts_again(org: Org) -> None:
    warning = sample("15_14_01_170216_VPWW53.xml")
    lifted = warning.replace("大雨特別警報".encode(), "大雨警報".encode())
    assert replay(org, warning)[0].action == "start"
    assert replay(org, warning)[0].action == "suppress"  # the same warning again calls nobody twice
    (all_clear,) = replay(org, lifted)
    assert all_clear.action == "notify_only"
    event = db.session.scalars(select(JmaEvent).where(JmaEvent.organization_id == org.org.id)).one()
    assert event.status is EventStatus.ENDED
    (again,) = replay(org, warning)
    assert again.action == "start"
    assert len(broadcasts_of(org.org)) == 2


def test_switched_off_rules_record_the_decision_but_send_nothing(org: Org) -> None:
    use_rules(org, enabled=False)
    (decision,) = replay(org, intensity_report(EVENT, {"27": "6+"}))
    assert decision.action == "suppress"
    assert "switched off" in decision.reason and "would have started earthquake" in decision.reason
    assert broadcasts_of(org.org) == []


def test_nobody_in_the_audience_is_recorded_not_raised(org: Org) -> None:
    empty = make_site(org.org, code="NGO", prefecture="23", municipality="2310000")
    del empty
    (decision,) = replay(org, intensity_report(EVENT, {"23": "6-"}))
    assert decision.action == "start"
    assert decision.outcome.startswith("nothing sent: nobody in the directory matches")
    assert broadcasts_of(org.org) == []


def test_a_failure_with_one_organization_never_keeps_the_bulletin_from_another(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ivr.jma.support import build_org

    other = build_org(with_chiba=False)
    real_context = service.organization_context

    def broken_for_the_first(*, organization_id: int, around: datetime) -> Any:
        if organization_id == org.org.id:
            raise ValueError("corrupt site data")
        return real_context(organization_id=organization_id, around=around)

    monkeypatch.setattr(service, "organization_context", broken_for_the_first)
    _, decisions = service.replay_bulletin(
        data=intensity_report(EVENT, {"27": "6-"}),
        name="q.xml",
        now=NOW,
        organization_ids=[org.org.id, other.org.id],
    )

    by_org = {d.organization_id: d for d in decisions}
    assert by_org[org.org.id].action == "suppress"
    assert (
        "processing failed for this organization (ValueError: corrupt site data)" in by_org[org.org.id].reason
    )
    assert by_org[other.org.id].action == "start"
    assert broadcasts_of(org.org) == [] and len(broadcasts_of(other.org)) == 1


# --- records and audit -----------------------------------------------------------------------------------------


def test_every_bulletin_and_decision_is_stored_and_audited(org: Org) -> None:
    data = sample("32-39_11_01_120615_VXSE51.xml")
    row, decisions = service.replay_bulletin(
        data=data, name="tohoku.xml", now=NOW, organization_ids=[org.org.id]
    )

    stored = db.session.get(JmaBulletin, row.id)
    assert stored is not None and stored.state is BulletinState.PROCESSED
    assert service.raw_bytes(stored) == data
    assert stored.document == parse_bulletin(data).to_json_dict()
    assert stored.event_key == "earthquake:20110311144640"
    (decision,) = decisions
    entry = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.target_type == "jma_decision", AuditEntry.target_id == str(decision.id)
        )
    ).one()
    assert (entry.actor, entry.action, entry.organization_id) == ("jma", "jma.started", org.org.id)
    assert entry.detail["reason"] == decision.reason
    assert "宮城県 (04) 6+" in entry.summary or "started" in entry.summary

    (suppressed,) = replay(org, sample("54_01_01_100514_VXSE42.xml"))
    audited = db.session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.target_type == "jma_decision", AuditEntry.target_id == str(suppressed.id)
        )
    ).all()
    assert audited == ["jma.suppressed"]


def test_unreadable_bulletin_is_refused_before_anything_is_stored(org: Org) -> None:
    from ivr.jma.parse import BulletinError

    with pytest.raises(BulletinError):
        replay(org, b"<Report>")
    assert count(JmaBulletin) == 0


# --- emergency mode ----------------------------------------------------------------------------------------------


def test_strong_quake_switches_routing_emergency_mode_on_for_the_site(org: Org) -> None:
    routing = pytest.importorskip("continuity.service")
    if not service.emergency_available():
        pytest.skip("the routing part offers no start_emergency")
    use_rules(org, emergency="6-")

    (decision,) = replay(org, intensity_report(EVENT, {"27": "6-", "13": "5+"}))

    assert "emergency mode switched on for OSA" in decision.outcome
    active = routing.active_emergencies(organization_id=org.org.id, now=NOW)
    assert [(str(e.scope), e.site_id) for e in active] == [("site", org.sites["OSA"].id)]
    # Tokyo was already in the broadcast at 5+; reaching 6- there switches its site over too — once.
    (upgraded,) = replay(
        org, intensity_report(EVENT, {"27": "6+", "13": "6-"}), now=NOW + timedelta(minutes=1)
    )
    assert upgraded.action == "notify_only"
    assert "emergency mode switched on for TKY" in upgraded.outcome
    assert "OSA" not in upgraded.outcome
    (repeat,) = replay(org, intensity_report(EVENT, {"27": "6+", "13": "6-"}), now=NOW + timedelta(minutes=2))
    assert "emergency" not in repeat.outcome
    assert len(routing.active_emergencies(organization_id=org.org.id, now=NOW)) == 2


def test_drills_never_switch_emergency_mode_on(org: Org) -> None:
    use_rules(org, emergency="5-", allow_drill=True)
    (decision,) = replay(org, intensity_report(EVENT, {"27": "7"}, status="訓練"))
    assert decision.mode == "drill"
    assert "emergency" not in decision.outcome


# --- rules -------------------------------------------------------------------------------------------------------


def test_default_rules_follow_the_organization_sites(org: Org) -> None:
    ruleset = service.default_rules(organization_id=org.org.id)
    (tsunami,) = ruleset.tsunami_rules
    assert tsunami.site_areas == {
        "TKY": {"312"},
        "OSA": {"510"},
        "FUK": {"710", "711", "712"},
        "CHB": {"310", "311", "312"},
    }
    assert service.ruleset_for(organization_id=org.org.id) == ruleset  # nothing saved yet: the defaults


def _document(org: Org, path: list[Any], value: Any) -> dict[str, Any]:
    document = service.default_rules(organization_id=org.org.id).to_dict()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["warning_rules", 0, "template"], "flood_x", "warning_rules[0].template"),
        (["intensity_rules", 1, "template"], "nope", "intensity_rules[1].template"),
        (["tsunami_rules", 0, "site_areas", "XXX"], ["312"], "tsunami_rules[0].site_areas.XXX"),
        (["tsunami_rules", 0, "site_areas", "TKY"], ["999"], "tsunami_rules[0].site_areas.TKY"),
        (["hold_minutes"], 12, "hold_minutes"),
    ],
)
def test_saving_rules_names_the_bad_field(org: Org, path: list[Any], value: Any, field: str) -> None:
    with pytest.raises(RuleSetError) as caught:
        service.save_rules(
            organization_id=org.org.id,
            document=_document(org, path, value),
            enabled=True,
            emergency_min_intensity=None,
            actor="test",
        )
    assert caught.value.field == field
    assert service.rules_row(organization_id=org.org.id) is None


def test_saved_rules_are_used_and_audited(org: Org) -> None:
    use_rules(org, hold_minutes=2, allow_drill=True)
    assert service.ruleset_for(organization_id=org.org.id).hold_minutes == 2
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "jma.rules.update")).one()
    assert "hold 2 min" in entry.summary and entry.organization_id == org.org.id


def test_seed_demo_rules_is_idempotent(org: Org) -> None:
    first = service.seed_demo_rules(org.org)
    assert first.enabled and first.emergency_min_intensity == "6-"
    assert RuleSet.from_dict(first.rules).allow_drill
    use_rules(org, hold_minutes=4)
    again = service.seed_demo_rules(org.org)
    assert again.id == first.id
    assert RuleSet.from_dict(again.rules).hold_minutes == 4  # what the crisis manager changed stays


# --- dry run ----------------------------------------------------------------------------------------------------


def test_dry_run_sees_earlier_bulletins_and_stores_nothing(org: Org) -> None:
    first = parse_bulletin(intensity_report(EVENT, {"27": "5+"}))
    upgrade = parse_bulletin(intensity_report(EVENT, {"27": "6-", "13": "5-"}))
    results = service.dry_run(bulletins=[first, upgrade], now=NOW, organization_ids=[org.org.id])
    assert [[d.action for d in r.decisions] for r in results] == [["start"], ["widen"]]
    assert count(JmaBulletin) == 0
    assert count(Broadcast) == 0
    assert count(JmaDecision) == 0
