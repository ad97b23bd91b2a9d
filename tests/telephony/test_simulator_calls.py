"""End to end: the real Twilio client → the simulator → a real Flask app over loopback, on a virtual clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from core.telephony.backend import ALL_CALL_EVENTS, TwilioBackend
from core.telephony.simulator import (
    InProcessTwilioHttpClient,
    ManualClock,
    ScaledClock,
    create_simulator_app,
    simulator_of,
)
from core.telephony.simulator.network import APPLICATION_ERROR_TEXT
from tests.telephony.callcentre import MACHINE_TEXT, MENU_PROMPT, NO_ANSWER_TEXT, make_callcentre_app
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, Network

SAFE = "+819000000001"
INJURED = "+819000000002"

NetworkFactory = Callable[..., Network]


def test_menu_answer_is_recorded_and_every_status_callback_is_signed(network: NetworkFactory) -> None:
    net = network({"numbers": {INJURED: {"answer_call": {"after_s": 4, "digits": ["2"]}}}})

    sid = net.place_call(INJURED, machine_detection=False)
    net.clock.run_until_idle()

    assert [r["Digits"] for r in net.recorder.on("answer")] == ["2"]
    statuses = net.recorder.on("status")
    assert [s["CallStatus"] for s in statuses] == ["initiated", "ringing", "in-progress", "completed"]
    assert [s["SequenceNumber"] for s in statuses] == ["0", "1", "2", "3"]
    assert {s["CallSid"] for s in statuses} == {sid}
    assert statuses[-1]["CallDuration"] == str(net.sim.get_call(sid).duration_s)
    assert all(
        s["AccountSid"] == ACCOUNT_SID and s["From"] == OUR_NUMBER and s["To"] == INJURED for s in statuses
    )
    assert "AnsweredBy" not in statuses[-1]

    call = net.sim_get(f"/_sim/calls/{sid}")
    assert call["status"] == "completed"
    assert call["digits"] == ["2"]
    assert call["said"] == [MENU_PROMPT, "Thank you."]
    events = [e["event"] for e in call["timeline"]]
    assert (
        events.index("ringing")
        < events.index("answered")
        < events.index("gather")
        < events.index("completed")
    )
    assert "callback-failed" not in events  # the app's @twilio_webhook accepted every signature
    answered_at = next(e["t"] for e in call["timeline"] if e["event"] == "answered")
    assert answered_at == pytest.approx(1.0 + 4.0)  # rings after 1 s, picked up 4 s later


def test_no_keys_pressed_falls_through_to_the_next_verb(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 1, "digits": []}}}})

    sid = net.place_call(SAFE)
    net.clock.run_until_idle()

    assert net.recorder.on("answer") == []
    assert net.sim.get_call(sid).summary()["said"] == [MENU_PROMPT, NO_ANSWER_TEXT]


def test_keys_are_consumed_one_gather_at_a_time(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 1, "digits": ["", "1"]}}}})
    action = f"{net.app_url}/voice/answer"
    twiml = (
        "<Response>"
        f'<Gather numDigits="1" action="{action}"><Say>first</Say></Gather>'
        f'<Gather numDigits="1" action="{action}"><Say>second</Say></Gather>'
        "</Response>"
    )
    placed = net.backend.client.calls.create(to=SAFE, from_=OUR_NUMBER, twiml=twiml)
    net.clock.run_until_idle()

    # Nothing was pressed at the first menu, so the call went on to the second one.
    assert net.sim.get_call(str(placed.sid)).summary()["said"] == ["first", "second", "Thank you."]
    assert [r["Digits"] for r in net.recorder.on("answer")] == ["1"]


def test_finish_on_key_ends_input_without_the_key(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 1, "digits": ["42#"]}}}})
    twiml = f'<Response><Gather action="{net.app_url}/voice/answer"><Say>Your code</Say></Gather></Response>'
    net.backend.client.calls.create(to=SAFE, from_=OUR_NUMBER, twiml=twiml)
    net.clock.run_until_idle()

    [answer] = net.recorder.on("answer")
    assert answer["Digits"] == "42"
    assert answer["FinishedOnKey"] == "#"


def test_dial_failover_moves_to_the_next_party_after_no_answer(network: NetworkFactory) -> None:
    net = network(
        {
            "numbers": {
                SAFE: {"answer_call": {"after_s": 1}},
                "+819000000011": "no_answer",
                "+819000000012": {"answer_call": {"after_s": 3, "talk_s": 25}},
            }
        }
    )

    sid = net.place_call(SAFE, path="/voice/failover")
    net.clock.run_until_idle()

    results = net.recorder.on("failover-result")
    assert [(r["step"], r["DialCallStatus"]) for r in results] == [(0, "no-answer"), (1, "completed")]
    assert results[1]["DialCallDuration"] == "25"
    assert results[1]["DialBridged"] == "true"
    dialed = net.sim_get(f"/_sim/calls/{sid}")["dialed"]
    assert [(d["to"], d["status"]) for d in dialed] == [
        ("+819000000011", "no-answer"),
        ("+819000000012", "completed"),
    ]
    legs = [c for c in net.sim_get("/_sim/calls") if c["parent_call_sid"] == sid]
    assert {leg["direction"] for leg in legs} == {"outbound-dial"}
    # The first target rang for the whole Dial timeout (10 s) before the app moved on.
    first_leg = next(leg for leg in legs if leg["to"] == "+819000000011")
    assert first_leg["timeline"][-1]["t"] == pytest.approx(10.0)


def test_busy_and_unanswered_parties_give_their_dial_status(network: NetworkFactory) -> None:
    net = network(
        {
            "numbers": {
                SAFE: {"answer_call": {"after_s": 1}},
                "+819000000011": "busy",
                "+819000000012": "invalid",
                "+819000000013": "never",
            }
        }
    )
    net.place_call(SAFE, path="/voice/failover")
    net.clock.run_until_idle()

    assert [r["DialCallStatus"] for r in net.recorder.on("failover-result")] == [
        "busy",
        "failed",
        "no-answer",
    ]


def test_voicemail_is_detected_and_gets_the_short_message(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"voicemail": {"after_s": 8}}}})

    sid = net.place_call(SAFE, machine_detection=True)
    net.clock.run_until_idle()

    [menu] = net.recorder.on("menu")
    assert menu["AnsweredBy"] == "machine_start"
    completed = net.recorder.on("status")[-1]
    assert completed["CallStatus"] == "completed"
    assert completed["AnsweredBy"] == "machine_start"
    call = net.sim_get(f"/_sim/calls/{sid}")
    assert call["answered_by"] == "machine_start"
    assert call["said"] == [MACHINE_TEXT]


def test_a_human_is_reported_as_human_with_machine_detection(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 2, "digits": ["1"]}}}})
    net.place_call(SAFE, machine_detection=True)
    net.clock.run_until_idle()

    assert net.recorder.on("menu")[0]["AnsweredBy"] == "human"
    assert [r["Digits"] for r in net.recorder.on("answer")] == ["1"]


def test_voicemail_without_detection_hears_the_menu_and_presses_nothing(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: "voicemail"}})
    sid = net.place_call(SAFE)
    net.clock.run_until_idle()

    assert net.recorder.on("answer") == []
    assert net.sim.get_call(sid).summary()["said"] == [MENU_PROMPT, NO_ANSWER_TEXT]


@pytest.mark.parametrize(
    ("behaviour", "final_status", "sip_code"),
    [("busy", "busy", "486"), ("invalid", "failed", "404"), ("never", "no-answer", "487")],
)
def test_unreached_people_end_with_their_status(
    network: NetworkFactory, behaviour: str, final_status: str, sip_code: str
) -> None:
    net = network({"numbers": {SAFE: behaviour}})
    sid = net.place_call(SAFE, timeout_s=20)
    net.clock.run_until_idle()

    final = net.recorder.on("status")[-1]
    assert (final["CallStatus"], final["CallDuration"], final["SipResponseCode"]) == (
        final_status,
        "0",
        sip_code,
    )
    assert net.recorder.on("menu") == []  # nobody answered, so the TwiML was never fetched
    fetched = net.backend.client.calls(sid).fetch()
    assert fetched.status == final_status


def test_ring_timeout_is_honoured(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 25}}}})
    sid = net.place_call(SAFE, timeout_s=15)
    net.clock.advance(15.5)
    assert net.sim.get_call(sid).status == "ringing"  # rings from t=1 s for 15 s
    net.clock.advance(1)
    assert net.recorder.on("status")[-1]["CallStatus"] == "no-answer"
    assert net.recorder.on("menu") == []


def test_cancelling_a_ringing_call(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 30}}}})
    sid = net.place_call(SAFE)
    net.clock.advance(5)

    net.backend.cancel_call(sid)
    net.clock.advance(1)

    assert net.recorder.on("status")[-1]["CallStatus"] == "canceled"
    assert net.backend.client.calls(sid).fetch().status == "canceled"
    net.clock.run_until_idle()
    assert net.recorder.on("menu") == []


def test_a_live_call_can_be_redirected_and_hung_up_over_rest(network: NetworkFactory) -> None:
    net = network(
        {"numbers": {SAFE: {"answer_call": {"after_s": 1}}, INJURED: {"answer_call": {"after_s": 1}}}}
    )
    moved = net.place_call(SAFE, path="/hold")
    ended = net.place_call(INJURED, path="/hold")
    net.clock.advance(10)

    net.backend.client.calls(moved).update(url=f"{net.app_url}/moved", method="POST")
    net.backend.end_call(ended)
    net.clock.run_until_idle()

    assert net.sim.get_call(moved).summary()["said"] == ["You were moved."]
    hung_up = net.sim.get_call(ended)
    assert hung_up.status == "completed"
    assert hung_up.duration_s == 8  # answered at 2 s, hung up at 10 s
    with pytest.raises(TwilioRestException) as refused:
        net.backend.client.calls(ended).update(url=f"{net.app_url}/moved")
    assert (refused.value.status, refused.value.code) == (400, 21220)


def test_application_error_is_played_and_the_call_ends(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 1}}}})
    sid = net.place_call(SAFE, path="/broken")
    net.clock.run_until_idle()

    call = net.sim_get(f"/_sim/calls/{sid}")
    assert call["said"] == [APPLICATION_ERROR_TEXT]
    assert call["error"]["code"] == 11200
    assert "application-error" in [e["event"] for e in call["timeline"]]
    assert net.recorder.on("status")[-1]["CallStatus"] == "completed"


def test_unreachable_application_is_an_application_error(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 1}}}})
    placed = net.backend.place_call(to=SAFE, from_=OUR_NUMBER, answer_url="http://127.0.0.1:9/voice")
    net.clock.run_until_idle()
    assert net.sim.get_call(placed.sid).summary()["said"] == [APPLICATION_ERROR_TEXT]


def test_failed_status_callbacks_are_retried(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: "busy"}})
    sid = net.place_call(SAFE, status_callback_url="http://127.0.0.1:9/status")
    net.clock.run_until_idle()

    failures = [e for e in net.sim.get_call(sid).summary()["timeline"] if e["event"] == "callback-failed"]
    # "initiated", "ringing", "completed" each tried three times (once + two retries).
    assert len(failures) == 3 * len(("initiated", "ringing", "completed"))
    assert sorted({f["detail"]["attempt"] for f in failures}) == [0, 1, 2]


def test_voicemail_message_is_recorded(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 1, "speak_s": 12}}}})
    net.place_call(SAFE, path="/voicemail")
    net.clock.run_until_idle()

    [saved] = net.recorder.on("voicemail-saved")
    assert saved["RecordingDuration"] == "12"
    assert saved["RecordingSid"].startswith("RE")
    audio = requests.get(saved["RecordingUrl"], timeout=5)
    assert audio.status_code == 200
    assert audio.content[:4] == b"RIFF"


def test_inbound_call_reaches_an_agent_on_the_web_client(network: NetworkFactory) -> None:
    net = network({"numbers": {"client:agent-1": "never", "client:agent-2": {"answer_call": {"after_s": 4}}}})
    net.sim_post("/_sim/numbers", {"number": OUR_NUMBER, "voice_url": f"{net.app_url}/inbound/voice"})

    call = net.sim_post("/_sim/inbound", {"to": OUR_NUMBER, "from": SAFE, "digits": ["1"]})
    net.clock.run_until_idle()

    [inbound] = net.recorder.on("inbound")
    assert (inbound["Direction"], inbound["From"], inbound["To"], inbound["CallStatus"]) == (
        "inbound",
        SAFE,
        OUR_NUMBER,
        "ringing",
    )
    [result] = net.recorder.on("inbound-dial-result")
    assert result["DialCallStatus"] == "completed"
    shown = net.sim_get(f"/_sim/calls/{call['sid']}")
    assert shown["status"] == "completed"
    assert [(d["to"], d["status"]) for d in shown["dialed"]] == [
        ("client:agent-1", "canceled"),
        ("client:agent-2", "completed"),
    ]


def test_inbound_call_can_be_rejected(network: NetworkFactory) -> None:
    net = network()
    call = net.sim_post(
        "/_sim/inbound", {"to": OUR_NUMBER, "from": SAFE, "voice_url": f"{net.app_url}/inbound/reject"}
    )
    net.clock.run_until_idle()
    shown = net.sim_get(f"/_sim/calls/{call['sid']}")
    assert shown["status"] == "busy"
    assert shown["start_time"] is None


def test_queued_caller_is_picked_up_by_an_agent(network: NetworkFactory) -> None:
    agent = "+819000000050"
    net = network({"numbers": {agent: {"answer_call": {"after_s": 2, "talk_s": 40}}}})
    caller = net.sim_post(
        "/_sim/inbound",
        {"to": OUR_NUMBER, "from": SAFE, "voice_url": f"{net.app_url}/inbound/voice", "digits": "2"},
    )
    net.clock.advance(30)
    assert net.sim_get(f"/_sim/calls/{caller['sid']}")["queue"] == "support"

    net.place_call(agent, path="/agent")
    net.clock.run_until_idle()

    [queue_result] = net.recorder.on("queue-result")
    assert queue_result["QueueResult"] == "bridged"
    [agent_result] = net.recorder.on("agent-result")
    assert (agent_result["DialCallStatus"], agent_result["DialCallSid"]) == ("completed", caller["sid"])
    assert net.recorder.on("queue-wait"), "the caller heard the wait music while holding"


def test_impatient_caller_leaves_the_queue(network: NetworkFactory) -> None:
    net = network()
    net.sim_post(
        "/_sim/inbound",
        {
            "to": OUR_NUMBER,
            "from": SAFE,
            "voice_url": f"{net.app_url}/inbound/voice",
            "digits": ["2"],
            "hangup_after_s": 40,
        },
    )
    net.clock.run_until_idle()
    # Twilio tells the Enqueue action about the hang-up (its TwiML goes nowhere: the caller is gone).
    assert [r["QueueResult"] for r in net.recorder.on("queue-result")] == ["hangup"]
    [call] = net.sim_get("/_sim/calls")
    assert call["status"] == "completed"
    assert call["duration"] == 40


def test_duplicate_and_reordered_callbacks_when_asked(network: NetworkFactory) -> None:
    net = network(
        {
            "seed": 3,
            "network": {"duplicate_callbacks": 1.0},
            "numbers": {SAFE: {"answer_call": {"after_s": 1, "digits": ["1"]}}},
        }
    )
    net.place_call(SAFE)
    net.clock.run_until_idle()
    statuses = net.recorder.on("status")
    assert len(statuses) == 2 * len(ALL_CALL_EVENTS)
    # A duplicate is the same delivery again: same idempotency token, same sequence number.
    by_token: dict[str, set[str]] = {}
    for s in statuses:
        by_token.setdefault(s["idempotency_token"], set()).add(s["SequenceNumber"])
    assert len(by_token) == len(ALL_CALL_EVENTS)
    assert all(len(seqs) == 1 for seqs in by_token.values())

    reordered = network({"seed": 3, "network": {"reorder_callbacks": 1.0}, "numbers": {SAFE: "busy"}})
    reordered.place_call(SAFE)
    reordered.clock.run_until_idle()
    arrived = [int(s["SequenceNumber"]) for s in reordered.recorder.on("status")]
    assert sorted(arrived) == [0, 1, 2]
    assert arrived != [0, 1, 2]


def test_calls_wait_for_the_account_rate_limit(network: NetworkFactory) -> None:
    net = network({"network": {"cps": 1}, "numbers": {"+8190000001*": "busy"}})
    sids = [net.place_call(f"+81900000010{i}") for i in range(3)]
    net.clock.run_until_idle()
    initiated = [
        next(e["t"] for e in net.sim.get_call(sid).summary()["timeline"] if e["event"] == "initiated")
        for sid in sids
    ]
    assert initiated == pytest.approx([0.0, 1.0, 2.0])
    assert [net.backend.client.calls(sid).fetch().queue_time for sid in sids] == ["0", "1000", "2000"]


def test_speed_plays_virtual_minutes_in_wall_seconds(network: NetworkFactory) -> None:
    net = network(
        {"numbers": {SAFE: {"answer_call": {"after_s": 25, "digits": ["1"]}}}}, clock=ScaledClock(speed=200)
    )
    started = time.monotonic()
    sid = net.place_call(SAFE)
    while net.sim.get_call(sid).end_time is None and time.monotonic() - started < 10:
        time.sleep(0.02)
    elapsed = time.monotonic() - started

    call = net.sim.get_call(sid)
    assert call.status == "completed"
    assert call.end_time is not None
    virtual = call.end_time - call.created_at
    assert virtual > 30  # 1 s ringing + 25 s before answering + the menu
    assert elapsed < virtual / 20
    assert [r["Digits"] for r in net.recorder.on("answer")] == ["1"]


def test_leave_takes_the_caller_out_of_the_queue(network: NetworkFactory) -> None:
    net = network()
    caller = net.sim_post(
        "/_sim/inbound", {"to": OUR_NUMBER, "from": SAFE, "voice_url": f"{net.app_url}/queue/enter"}
    )
    net.clock.run_until_idle()

    [result] = net.recorder.on("queue-result")
    assert result["QueueResult"] == "leave"
    assert int(result["QueueTime"]) >= 20
    shown = net.sim_get(f"/_sim/calls/{caller['sid']}")
    assert shown["queue"] is None
    assert [e["event"] for e in shown["timeline"]].count("enqueued") == 1


def test_answer_url_fetched_with_get_is_signed_over_the_query(network: NetworkFactory) -> None:
    net = network({"numbers": {SAFE: {"answer_call": {"after_s": 1}}}})
    placed = net.backend.client.calls.create(
        to=SAFE, from_=OUR_NUMBER, url=f"{net.app_url}/voice/get", method="GET"
    )
    net.clock.run_until_idle()

    [fetched] = net.recorder.on("voice-get")
    assert (fetched["CallSid"], fetched["CallStatus"], fetched["To"]) == (placed.sid, "in-progress", SAFE)
    assert net.sim.get_call(str(placed.sid)).summary()["said"] == ["Fetched with GET."]


def test_the_whole_network_can_run_in_process_without_sockets() -> None:
    settings = SimpleNamespace(twilio_auth_token=AUTH_TOKEN, public_base_url="http://callcentre.test")
    app = make_callcentre_app(settings)
    clock = ManualClock()
    sim_app = create_simulator_app(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        clock=clock,
        http=app,
        scenario={
            "numbers": {SAFE: {"answer_call": {"after_s": 2, "digits": ["1"]}, "sms_link": {"after_s": 5}}}
        },
    )
    backend = TwilioBackend(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, http_client=InProcessTwilioHttpClient(sim_app)
    )
    try:
        backend.place_call(
            to=SAFE,
            from_=OUR_NUMBER,
            answer_url="http://callcentre.test/voice/menu",
            status_callback_url="http://callcentre.test/status",
        )
        backend.send_sms(to=SAFE, from_=OUR_NUMBER, body="Are you safe? http://callcentre.test/r/in-proc")
        clock.run_until_idle()
    finally:
        simulator_of(sim_app).stop()

    recorder = app.extensions["recorder"]
    assert [r["Digits"] for r in recorder.on("answer")] == ["1"]
    assert [s["CallStatus"] for s in recorder.on("status")][-1] == "completed"
    [web] = recorder.on("web-answer")  # the CSRF cookie travelled from the GET to the POST
    assert (web["token"], web["safety"]) == ("in-proc", "safe")
