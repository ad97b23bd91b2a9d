"""Inbound calls through the voice webhooks, as the carrier drives them (signed requests, Dial callbacks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, func, select

from continuity import service
from continuity.models import (
    Agent,
    CallbackRequest,
    CallLeg,
    HomeAgent,
    InboundCall,
    LegOutcome,
    RoutingChange,
    SiteStatus,
    Voicemail,
)
from continuity.routing import EmergencyScope, SiteState, TargetKind
from core import db
from core.auth.models import AuditEntry
from tests.continuity.conftest import (
    CALLER,
    HOME_NUMBER,
    LINE_24H,
    LINE_OFFICE,
    OSA_AGENTS,
    TKY_AGENTS,
    Carrier,
    Center,
    action_of,
    dialed,
    new_call_sid,
    said,
    settings_of,
    twiml,
)
from tests.factories import make_staff

MONDAY_10 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Moves "now" for the webhooks and the services together."""

    class Clock:
        now = MONDAY_10

        def set(self, value: datetime) -> None:
            self.now = value

    current = Clock()
    monkeypatch.setattr("continuity.webhooks.utcnow", lambda: current.now)
    monkeypatch.setattr("continuity.service.utcnow", lambda: current.now)
    return current


def legs(sid: str) -> list[tuple[int, str, str | None, str | None]]:
    call = service.call_by_sid(call_sid=sid)
    assert call is not None
    rows = db.session.scalars(select(CallLeg).where(CallLeg.call_id == call.id).order_by(CallLeg.position))
    return [
        (leg.position, leg.kind.value, leg.site_code, leg.outcome.value if leg.outcome else None)
        for leg in rows
    ]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def make_home_agent(center: Center, app: Any, *, available: bool = True) -> HomeAgent:
    person = make_staff(center.org, site=center.tky, can_work_from_home=True)
    agent = service.join_home_agent_pool(
        staff=person, number=HOME_NUMBER, pin="2468", settings=settings_of(app)
    )
    service.set_home_agent_available(home_agent=agent, available=available, via="test")
    return agent


# --- the happy path and the Dial callback ------------------------------------------------------------------------


def test_a_call_rings_the_tokyo_agents(center: Center, carrier: Carrier, clock: Any) -> None:
    sid, response = carrier.call(LINE_24H)
    doc = twiml(response)
    assert dialed(doc) == list(TKY_AGENTS)
    dial = doc.find("Dial")
    assert dial is not None and dial.get("timeout") == "15"
    assert query_of(dial.get("action", "")) == {"attempt": "1", "call": sid}
    assert legs(sid) == [(0, "site_agents", "TKY", None)]
    call = service.call_by_sid(call_sid=sid)
    assert call is not None and CALLER not in (call.caller_masked, call.caller_hash)  # never stored in clear


def test_no_answer_in_tokyo_moves_the_call_to_osaka(center: Center, carrier: Carrier, clock: Any) -> None:
    sid, response = carrier.call(LINE_24H)
    action = action_of(twiml(response), "Dial")
    doc = twiml(carrier.follow(action, sid, DialCallStatus="no-answer", DialCallDuration="0"))
    assert dialed(doc) == list(OSA_AGENTS)
    assert legs(sid) == [(0, "site_agents", "TKY", "no-answer"), (1, "site", "OSA", None)]
    # Osaka is busy too: the home agents are next, but nobody is in the pool → voicemail
    doc = twiml(carrier.follow(action_of(doc, "Dial"), sid, DialCallStatus="busy"))
    assert doc.find("Record") is not None
    assert legs(sid)[-1] == (3, "voicemail", None, None)


def test_an_answered_call_hangs_up_when_the_conversation_ends(
    center: Center, carrier: Carrier, clock: Any
) -> None:
    sid, response = carrier.call(LINE_24H)
    doc = twiml(
        carrier.follow(
            action_of(twiml(response), "Dial"), sid, DialCallStatus="completed", DialCallDuration="42"
        )
    )
    assert [el.tag for el in doc] == ["Hangup"]
    call = service.call_by_sid(call_sid=sid)
    assert call is not None and call.outcome == "completed" and call.answered_at == MONDAY_10
    leg = call.legs[0]
    assert (leg.outcome, leg.duration_s) == (LegOutcome.COMPLETED, 42)


# --- failover when a site falls silent ----------------------------------------------------------------------------


def test_tokyo_silent_past_its_limit_goes_down_and_calls_go_to_osaka(
    center: Center, carrier: Carrier, clock: Any
) -> None:
    token = service.generate_site_token(site=center.tky, actor="test")
    started = MONDAY_10
    assert service.record_heartbeat(site_code="TKY", token=token, now=started) is not None

    assert service.mark_silent_sites_down(now=started + timedelta(seconds=90)) == []  # at the limit: still up
    downed = service.mark_silent_sites_down(now=started + timedelta(seconds=91))
    assert [s.site_id for s in downed] == [center.tky.id]

    status = db.session.scalar(select(SiteStatus).where(SiteStatus.site_id == center.tky.id))
    assert status is not None and status.state is SiteState.DOWN and status.down_for_silence
    change = db.session.scalar(select(RoutingChange).where(RoutingChange.subject_id == center.tky.id))
    assert change is not None and change.actor == "system" and "no heartbeat for 91 s" in change.reason
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "continuity.site_state"))
    assert entry is not None and entry.actor == "system" and entry.organization_id == center.org.id

    clock.set(started + timedelta(seconds=95))
    sid, response = carrier.call(LINE_24H)
    assert dialed(twiml(response)) == list(OSA_AGENTS)
    leg = service.call_by_sid(call_sid=sid).legs[0]  # type: ignore[union-attr]
    assert (leg.site_code, leg.reason) == ("OSA", "site OSA is normal, 1 agent available")


def test_a_site_that_never_sent_a_heartbeat_is_not_judged_silent(center: Center) -> None:
    service.generate_site_token(site=center.tky, actor="test")
    assert service.mark_silent_sites_down(now=MONDAY_10 + timedelta(days=1)) == []


# --- home agents, and nobody at all -------------------------------------------------------------------------------


def test_no_site_agent_available_rings_the_home_agents(
    center: Center, carrier: Carrier, app: Any, clock: Any
) -> None:
    make_home_agent(center, app)
    for site in (center.tky, center.osa):
        for agent_id in db.session.scalars(select(Agent.id).where(Agent.site_id == site.id)).all():
            service.set_agent_available(
                agent_id=agent_id, organization_id=center.org.id, available=False, actor="t"
            )
    sid, response = carrier.call(LINE_24H)
    doc = twiml(response)
    assert dialed(doc) == [HOME_NUMBER]
    assert doc.find("Dial").get("timeout") == "20"  # type: ignore[union-attr]
    assert legs(sid) == [(2, "home_agents", None, None)]
    # The same decision explained to a supervisor never shows the private number
    explained = service.explain_route(line=center.line, at=MONDAY_10).explain()
    assert explained["chosen"]["kind"] == "home_agents"
    assert HOME_NUMBER not in str(explained)
    assert explained["chosen"]["endpoints"][0].startswith("home-agent:")


def test_home_agent_who_is_away_is_not_rung(center: Center, carrier: Carrier, app: Any, clock: Any) -> None:
    make_home_agent(center, app, available=False)
    service.declare_site_state(site=center.tky, state=SiteState.DOWN, reason="fire drill", actor="test")
    service.declare_site_state(site=center.osa, state=SiteState.EVACUATED, reason="fire drill", actor="test")
    _, response = carrier.call(LINE_24H)
    assert twiml(response).find("Record") is not None


def test_nobody_at_all_emergency_announcement_then_voicemail_then_sms(
    center: Center, carrier: Carrier, clock: Any, monkeypatch: pytest.MonkeyPatch, app: Any
) -> None:
    sent: list[dict[str, str]] = []

    class FakeCarrier:
        def send_sms(self, *, to: str, from_: str, body: str, status_callback_url: str | None = None) -> Any:
            sent.append({"to": to, "from": from_, "body": body})

    monkeypatch.setattr("continuity.tasks.make_backend", lambda settings: FakeCarrier())
    service.start_emergency(
        organization_id=center.org.id,
        scope=EmergencyScope.GLOBAL,
        announcement_ja="地震のため電話を受けられません。",
        announcement_en="Because of the earthquake we cannot take calls.",
        actor="jma",
    )
    sid, response = carrier.call(LINE_24H)
    doc = twiml(response)
    assert said(doc) == [
        "地震のため電話を受けられません。",
        "Because of the earthquake we cannot take calls.",
    ]
    assert doc.find("Dial") is None

    # after the announcement: voicemail (the people are skipped in emergency mode)
    doc = twiml(carrier.follow(action_of(doc, "Redirect"), sid))
    record = doc.find("Record")
    assert record is not None
    doc = twiml(
        carrier.follow(
            record.get("action", ""),
            sid,
            RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
            RecordingDuration="7",
            RecordingSid="RE1",
        )
    )
    assert doc.find("Hangup") is not None
    voicemail = db.session.scalar(select(Voicemail).where(Voicemail.line_id == center.line.id))
    assert voicemail is not None and voicemail.duration_s == 7
    assert service.caller_number(record=voicemail, settings=settings_of(app)) == CALLER
    assert CALLER.encode() not in voicemail.caller_encrypted

    # another caller skips the recording (silence: the carrier falls through to the Redirect) and presses 2
    sid2, response = carrier.call(LINE_24H, caller="+819000000124")
    doc = twiml(carrier.follow(action_of(twiml(response), "Redirect"), sid2, caller="+819000000124"))
    doc = twiml(carrier.follow(action_of(doc, "Redirect"), sid2, caller="+819000000124"))
    gather = doc.find("Gather")
    assert gather is not None and "press 2" in " ".join(said(doc))
    doc = twiml(carrier.follow(gather.get("action", ""), sid2, caller="+819000000124", Digits="2"))
    assert "We have sent you a text message." in said(doc)
    assert len(sent) == 1 and sent[0]["to"] == "+819000000124"
    assert sent[0]["body"].endswith(f"http://localhost/status/{center.org.slug}")
    assert legs(sid2)[-1] == (5, "sms_link", None, "sms-sent")


# --- emergency → holiday → closed → open --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "emergency", "expected"),
    [
        pytest.param(
            datetime(2025, 12, 31, 18, 0, tzinfo=UTC),
            True,
            "緊急のお知らせ",
            id="emergency on a holiday night",
        ),
        pytest.param(
            datetime(2025, 12, 31, 18, 0, tzinfo=UTC), False, "本日は休業日です。", id="holiday before closed"
        ),
        pytest.param(
            datetime(2026, 1, 5, 12, 0, tzinfo=UTC), False, "本日の受付は終了しました。", id="closed at 21:00"
        ),
        pytest.param(datetime(2026, 1, 5, 1, 0, tzinfo=UTC), False, None, id="open at 10:00: Tokyo rings"),
    ],
)
def test_emergency_before_holiday_before_closed(
    center: Center, carrier: Carrier, clock: Any, when: datetime, emergency: bool, expected: str | None
) -> None:
    clock.set(when)
    if emergency:
        service.start_emergency(
            organization_id=center.org.id,
            scope=EmergencyScope.LINE,
            line_number=LINE_OFFICE,
            announcement_ja="緊急のお知らせ",
            actor="test",
            now=when - timedelta(minutes=5),
        )
    doc = twiml(carrier.call(LINE_OFFICE)[1])
    if expected is None:
        assert dialed(doc) == list(TKY_AGENTS)
    else:
        assert said(doc)[0] == expected
        assert doc.find("Dial") is None


def test_closed_line_offers_faq_then_a_callback(center: Center, carrier: Carrier, clock: Any) -> None:
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))  # Monday 21:00 in Tokyo
    sid, response = carrier.call(LINE_OFFICE)
    doc = twiml(carrier.follow(action_of(twiml(response), "Redirect"), sid, line=LINE_OFFICE))
    gather = doc.find("Gather")
    assert gather is not None and "For opening hours, press 1." in said(doc)
    doc = twiml(carrier.follow(gather.get("action", ""), sid, line=LINE_OFFICE, Digits="1"))
    assert "Weekdays 9 to 6." in said(doc)
    doc = twiml(carrier.follow(action_of(doc, "Redirect"), sid, line=LINE_OFFICE))  # moves on
    gather = doc.find("Gather")
    assert gather is not None and "To have us call you back at this number, press 1." in said(doc)
    doc = twiml(carrier.follow(gather.get("action", ""), sid, line=LINE_OFFICE, Digits="1"))
    assert doc.find("Hangup") is not None
    callback = db.session.scalar(
        select(CallbackRequest).where(CallbackRequest.line_id == center.office_line.id)
    )
    assert callback is not None and callback.handled_at is None


# --- signatures, idempotency, speed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/hooks/voice/inbound",
        "/hooks/voice/next?attempt=1&call=CA1",
        "/hooks/voice/voicemail?attempt=4&call=CA1",
    ],
)
def test_unsigned_or_forged_webhooks_are_refused(center: Center, carrier: Carrier, path: str) -> None:
    params = {"CallSid": "CA1", "From": CALLER, "To": LINE_24H}
    assert carrier.post(path, params, sign=False).status_code == 403
    forged = carrier.client.post(path, data=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    assert forged.status_code == 403
    assert db.session.scalar(select(func.count(InboundCall.id))) == 0


def test_a_signature_for_other_parameters_is_refused(center: Center, carrier: Carrier) -> None:
    url = "http://localhost/hooks/voice/inbound"
    from core.telephony.signature import sign_request

    signature = sign_request(
        url, {"CallSid": "CA1", "From": CALLER, "To": LINE_24H}, carrier.settings.twilio_auth_token
    )
    tampered = carrier.client.post(
        "/hooks/voice/inbound",
        data={"CallSid": "CA1", "From": "+819000000999", "To": LINE_24H},
        headers={"X-Twilio-Signature": signature},
    )
    assert tampered.status_code == 403


def test_retried_webhooks_create_nothing_twice(center: Center, carrier: Carrier, clock: Any) -> None:
    sid = new_call_sid()
    first = carrier.call(LINE_24H, sid=sid)[1]
    again = carrier.call(LINE_24H, sid=sid)[1]
    assert dialed(twiml(again)) == dialed(twiml(first))
    action = action_of(twiml(first), "Dial")
    for _ in range(2):
        doc = twiml(carrier.follow(action, sid, DialCallStatus="no-answer"))
        assert dialed(doc) == list(OSA_AGENTS)
    # a late, contradicting duplicate does not rewrite history
    carrier.follow(action, sid, DialCallStatus="completed")
    assert db.session.scalar(select(func.count(InboundCall.id))) == 1
    assert legs(sid) == [(0, "site_agents", "TKY", "no-answer"), (1, "site", "OSA", None)]

    for _ in range(2):  # the voicemail callback retried
        carrier.follow(
            "/hooks/voice/voicemail?attempt=4&call=" + sid,
            sid,
            RecordingUrl="https://api.twilio.com/r/RE9",
            RecordingSid="RE9",
            RecordingDuration="3",
        )
    assert db.session.scalar(select(func.count(Voicemail.id))) == 1


def test_a_routing_decision_takes_a_handful_of_queries(
    center: Center, carrier: Carrier, app: Any, clock: Any
) -> None:
    make_home_agent(center, app)
    service.split_line(line=center.line, shares=[("TKY", 50), ("OSA", 50)], reason="load test", actor="test")
    service.start_emergency(
        organization_id=center.org.id,
        scope=EmergencyScope.SITE,
        site_code="FUK",
        announcement_ja="福岡",
        actor="test",
    )
    carrier.call(LINE_24H)  # warm caches (templates, plans)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = db.session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        _, response = carrier.call(LINE_24H)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert dialed(twiml(response))
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 12, selects


def test_unknown_line_is_not_in_service(center: Center, carrier: Carrier) -> None:
    doc = twiml(carrier.call("+15550100199")[1])
    assert said(doc)[-1] == "This number is not in service." and doc.find("Hangup") is not None


def test_queue_waits_with_its_hold_message_and_moves_on_when_full_or_too_long(
    center: Center, carrier: Carrier, clock: Any
) -> None:
    service.save_plan(
        organization_id=center.org.id,
        name="support",
        plan=center.plan_24h,
        definition={
            "targets": [
                {
                    "kind": "queue",
                    "queue": "q1",
                    "capacity": 1,
                    "ring_timeout_s": 30,
                    "message": {"ja": "お待ちください", "en": "Please hold"},
                },
                {"kind": "voicemail"},
            ]
        },
        actor="test",
    )
    sid, response = carrier.call(LINE_24H)
    doc = twiml(response)
    enqueue = doc.find("Enqueue")
    assert enqueue is not None and (enqueue.text or "").strip() == "q1"
    hold = twiml(carrier.follow(enqueue.get("waitUrl", ""), sid, QueueTime="5", QueuePosition="1"))
    assert said(hold) == ["お待ちください", "Please hold"]
    assert [el.tag for el in twiml(carrier.follow(enqueue.get("waitUrl", ""), sid, QueueTime="30"))] == [
        "Leave"
    ]

    # while the first caller waits, the queue is full (capacity 1): the next caller goes to voicemail
    assert twiml(carrier.call(LINE_24H)[1]).find("Record") is not None

    doc = twiml(carrier.follow(enqueue.get("action", ""), sid, QueueResult="leave", QueueTime="30"))
    assert doc.find("Record") is not None
    assert legs(sid)[0] == (0, "queue", None, "left-queue")
    # the queue has room again
    assert twiml(carrier.call(LINE_24H)[1]).find("Enqueue") is not None


def test_caller_hanging_up_closes_the_call(center: Center, carrier: Carrier, clock: Any) -> None:
    sid, _ = carrier.call(LINE_24H)
    response = carrier.follow("/hooks/voice/status", sid, CallStatus="completed", CallDuration="12")
    assert response.status_code == 204
    call = service.call_by_sid(call_sid=sid)
    assert call is not None and call.ended_at is not None and call.outcome == "hung_up"
    assert call.legs[0].outcome is LegOutcome.HUNG_UP


def test_legs_record_when_traffic_reached_the_alternate_site(
    center: Center, carrier: Carrier, clock: Any
) -> None:
    """What a failover drill report reads: per call, each target with its time and outcome."""
    sid, response = carrier.call(LINE_24H)
    clock.set(MONDAY_10 + timedelta(seconds=15))
    carrier.follow(action_of(twiml(response), "Dial"), sid, DialCallStatus="no-answer")
    call = service.call_by_sid(call_sid=sid)
    assert call is not None
    tokyo, osaka = call.legs
    assert (tokyo.kind, tokyo.started_at, tokyo.ended_at) == (
        TargetKind.SITE_AGENTS,
        MONDAY_10,
        MONDAY_10 + timedelta(seconds=15),
    )
    assert (osaka.kind, osaka.site_code, osaka.started_at) == (
        TargetKind.SITE,
        "OSA",
        MONDAY_10 + timedelta(seconds=15),
    )
