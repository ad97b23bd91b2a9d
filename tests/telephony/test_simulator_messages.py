"""SMS and e-mail through the simulator: delivery callbacks and people answering the web form behind a link."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.telephony.conftest import OUR_NUMBER, Network

NetworkFactory = Callable[..., Network]
PERSON = "+819000000021"


def send(net: Network, to: str, body: str) -> str:
    return net.backend.send_sms(
        to=to, from_=OUR_NUMBER, body=body, status_callback_url=f"{net.app_url}/sms-status"
    ).sid


def test_sms_link_is_opened_and_the_form_answered_with_the_persons_choices(network: NetworkFactory) -> None:
    net = network({"numbers": {PERSON: {"sms_link": {"after_s": 90, "answers": ["injured", "2"]}}}})

    sid = send(net, PERSON, f"Earthquake. Are you safe? {net.app_url}/r/tok-123 .")
    net.clock.advance(60)
    assert net.recorder.on("web-answer") == []  # delivered, not opened yet
    net.clock.run_until_idle()

    [answer] = net.recorder.on("web-answer")
    assert answer["token"] == "tok-123"
    # "injured" is a value; "2" is not, so the second option of the second question is chosen.
    assert (answer["safety"], answer["work"], answer["action"], answer["note"]) == (
        "injured",
        "home",
        "send",
        "",
    )
    message = net.sim_get(f"/_sim/messages/{sid}")
    [visit] = message["visits"]
    assert visit["submit_status"] == 200  # the POST redirected to the thank-you page, followed like a browser
    assert visit["error"] is None
    events = [e["event"] for e in message["timeline"]]
    assert events.index("delivered") < events.index("link-opened") < events.index("form-submitted")
    opened = next(e for e in message["timeline"] if e["event"] == "link-opened")
    delivered = next(e for e in message["timeline"] if e["event"] == "delivered")
    assert opened["t"] - delivered["t"] == pytest.approx(90)


def test_sms_status_callbacks_go_queued_sent_delivered(network: NetworkFactory) -> None:
    net = network({"numbers": {PERSON: "never"}})
    sid = send(net, PERSON, "Drill: no answer needed.")
    net.clock.run_until_idle()

    callbacks = net.recorder.on("sms-status")
    assert [c["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    assert {c["MessageSid"] for c in callbacks} == {sid}
    assert "ErrorCode" not in callbacks[-1]
    fetched = net.backend.client.messages(sid).fetch()
    assert (fetched.status, fetched.body, fetched.to) == ("delivered", "Drill: no answer needed.", PERSON)


@pytest.mark.parametrize(
    ("behaviour", "statuses", "error_code"),
    [
        ("invalid", ["queued", "sent", "undelivered"], "30003"),
        ({"sms_status": "failed"}, ["queued", "failed"], "30008"),
    ],
)
def test_undeliverable_sms_report_the_error(
    network: NetworkFactory, behaviour: object, statuses: list[str], error_code: str
) -> None:
    net = network({"numbers": {PERSON: behaviour}})
    sid = send(net, PERSON, f"Are you safe? {net.app_url}/r/tok-9")
    net.clock.run_until_idle()

    callbacks = net.recorder.on("sms-status")
    assert [c["MessageStatus"] for c in callbacks] == statuses
    assert callbacks[-1]["ErrorCode"] == error_code
    assert net.backend.client.messages(sid).fetch().error_code == int(error_code)
    assert net.recorder.on("web-answer") == []


def test_japanese_sms_counts_ucs2_segments(network: NetworkFactory) -> None:
    net = network({"numbers": {PERSON: "never"}})
    placed = net.backend.send_sms(to=PERSON, from_=OUR_NUMBER, body="安否確認です。" * 11)  # 77 characters
    assert placed.segments == 2


def test_mail_link_is_opened_like_an_sms_link(network: NetworkFactory) -> None:
    address = "staff1@example.com"
    net = network({"numbers": {"*@example.com": {"email_link": {"after_s": 30, "answers": ["3", "1"]}}}})

    net.sim_post(
        "/_sim/mail",
        {
            "to": address,
            "from": "lifeline@example.invalid",
            "subject": "Safety check",
            "body": f"{net.app_url}/r/m-1",
        },
    )
    net.clock.run_until_idle()

    [answer] = net.recorder.on("web-answer")
    assert (answer["token"], answer["safety"], answer["work"]) == ("m-1", "need_help", "office")
    [mail] = net.sim_get("/_sim/mail")
    assert mail["to"] == address
    assert mail["visits"][0]["submit_status"] == 200


def test_a_page_without_a_post_form_is_reported(network: NetworkFactory) -> None:
    net = network({"numbers": {PERSON: {"sms_link": {"after_s": 5}}}})
    sid = send(net, PERSON, f"See {net.app_url}/r/tok/thanks")
    net.clock.run_until_idle()
    [visit] = net.sim_get(f"/_sim/messages/{sid}")["visits"]
    assert visit["error"] == "no POST form on the page"
    assert net.recorder.on("web-answer") == []


def test_inbound_sms_reaches_the_app_and_a_reply_goes_back(network: NetworkFactory) -> None:
    net = network()
    net.sim_post("/_sim/numbers", {"number": OUR_NUMBER, "sms_url": f"{net.app_url}/sms/in"})
    net.sim_post("/_sim/inbound_sms", {"to": OUR_NUMBER, "from": PERSON, "body": "1 2"})
    net.clock.run_until_idle()

    [received] = net.recorder.on("sms-in")
    assert (received["Body"], received["From"], received["To"]) == ("1 2", PERSON, OUR_NUMBER)
    messages = net.sim_get("/_sim/messages")
    assert [(m["direction"], m["to"], m["body"]) for m in messages] == [
        ("inbound", OUR_NUMBER, "1 2"),
        ("outbound-reply", PERSON, "Received, thank you."),
    ]
