"""End to end: the live app, the telephone-network simulator on loopback, 20 scripted people.

Some answer through the SMS link on the web, some press keys on the call, two through the e-mail link, some have
voicemail, some never answer. The dispatcher runs step by step on a clock kept in step with the simulator's
manual clock; afterwards ``broadcast status --json`` must say exactly what the simulator saw happen.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from core import db
from core.mail import SimulatorMailBackend
from core.pacing import UnlimitedTokenBucket
from core.telephony import make_backend
from core.telephony.simulator.app import create_simulator_app, simulator_of
from core.telephony.simulator.clock import ManualClock
from core.time import utcnow
from ivr import dispatch, service
from ivr.models import Recipient
from tests.factories import make_org, make_site, make_staff

WEB = range(0, 6)  # open the SMS link after 30 s: safe, can work from home
VOICE = range(6, 12)  # pick up and press 2 (confirm 1), 3 (confirm 1)
EMAIL = range(12, 14)  # open the e-mail link after 60 s: need help, cannot work
VOICEMAIL = range(14, 16)
NEVER = range(16, 20)


def phone(n: int) -> str:
    return f"+8190000002{n:02d}"


def mail(n: int) -> str:
    return f"person{n}@example.com"


def scenario() -> dict[str, Any]:
    numbers: dict[str, Any] = {}
    for n in WEB:
        numbers[phone(n)] = {"sms_link": {"after_s": 30, "answers": ["1", "2"]}}
    for n in VOICE:
        numbers[phone(n)] = {"answer_call": {"after_s": 3, "digits": ["2", "1", "3", "1"], "speak_s": 2}}
    for n in EMAIL:
        numbers[mail(n)] = {"email_link": {"after_s": 60, "answers": ["3", "3"]}}
    for n in VOICEMAIL:
        numbers[phone(n)] = "voicemail"
    return {"seed": 1, "default": "never", "numbers": numbers}


class Served:
    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture()
def network(live_app: Any) -> Iterator[tuple[Any, ManualClock, Served]]:
    app = live_app.app
    settings = app.extensions["lifeline.settings"]
    clock = ManualClock(start=utcnow().timestamp())
    simulator = create_simulator_app(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        scenario=scenario(),
        clock=clock,
    )
    served = Served(simulator)
    simulator_of(simulator).base_url = served.url
    app.extensions["lifeline.settings"] = replace(
        settings, twilio_api_base=served.url, simulator_url=served.url
    )
    try:
        yield app, clock, served
    finally:
        app.extensions["lifeline.settings"] = settings
        simulator_of(simulator).stop()
        served.stop()


def sim(served: Served, what: str) -> list[dict[str, Any]]:
    response = requests.get(f"{served.url}/_sim/{what}", timeout=10)
    response.raise_for_status()
    return list(response.json())


def status_json(app: Any, broadcast_id: int) -> dict[str, Any]:
    result = app.test_cli_runner().invoke(args=["broadcast", "status", str(broadcast_id), "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


@pytest.mark.slow
def test_broadcast_to_twenty_people_through_the_simulator(network: Any) -> None:
    app, clock, served = network
    settings = app.extensions["lifeline.settings"]
    offset = [0.0]

    def now() -> Any:
        return utcnow() + timedelta(seconds=offset[0])

    with app.app_context():
        org = make_org()
        site = make_site(org, code="TYO")
        people = [
            make_staff(org, site=site, phone=phone(n), email=mail(n), language="en" if n % 3 == 0 else "ja")
            for n in range(20)
        ]
        staff_of = {p.id: n for n, p in enumerate(people)}
        db.session.commit()
        broadcast = service.start_broadcast(
            organization_id=org.id,
            template="earthquake",
            audience={"everyone": True},
            mode="drill",
            actor="e2e",
            now=now(),
        )
        broadcast_id = broadcast.id
        db.session.commit()
        out = dispatch.Outbound(
            backend=make_backend(settings),
            mailer=SimulatorMailBackend(simulator_url=served.url, sender=settings.mail_from),
            bucket=UnlimitedTokenBucket(),
            settings=app.extensions["lifeline.settings"],
            worker="e2e",
        )
        for _ in range(45):  # 45 simulated minutes: both cycles of the ladder and its last wait
            dispatch.run(out=out, now=now)
            db.session.remove()
            clock.advance(60)
            offset[0] += 60
        dispatch.run(out=out, now=now)
        db.session.remove()

    calls, messages, mails = sim(served, "calls"), sim(served, "messages"), sim(served, "mail")
    number_of = {phone(n): n for n in range(20)} | {mail(n): n for n in range(20)}

    # What the network saw people answer: web forms submitted (from SMS and e-mail), keys confirmed on calls.
    seen: dict[int, dict[str, str]] = {}
    channel: dict[int, str] = {}
    for item in [*messages, *mails]:
        for visit in item["visits"]:
            if visit["submit_status"] == 200:
                fields = dict(visit["submitted"])
                seen[number_of[item["to"]]] = {k: fields[k] for k in ("safety", "work")}
                channel[number_of[item["to"]]] = "web"
    for call in calls:
        keys = call["digits"]
        if len(keys) >= 4 and keys[1] == "1" and keys[3] == "1":
            seen[number_of[call["to"]]] = {"safety": keys[0], "work": keys[2]}
            channel[number_of[call["to"]]] = "voice"
    assert set(seen) == set(WEB) | set(VOICE) | set(EMAIL)  # the scenario played out as scripted

    status = status_json(app, broadcast_id)
    assert status["recipients"] == 20
    assert status["answered"] == len(seen)
    assert status["unreached"] == 20 - len(seen)
    assert status["in_progress"] == 0
    for question in ("safety", "work"):
        expected = Counter(answers[question] for answers in seen.values())
        assert {k: v for k, v in status["by_answer"][question].items() if v} == dict(expected)
    assert status["by_answer_channel"] == dict(Counter(channel.values()))
    assert status["by_site"] == [
        {
            "id": site.id,
            "name": "TYO",
            "recipients": 20,
            "answered": len(seen),
            "unreached": 20 - len(seen),
            "in_progress": 0,
        }
    ]
    # Every send the app recorded is one the network received, and the other way round.
    attempts = status["attempts"]
    sms_sent = sum(n for state, n in attempts.get("sms", {}).items() if state != "cancelled")
    calls_placed = sum(n for state, n in attempts.get("voice", {}).items() if state != "cancelled")
    mail_sent = sum(n for state, n in attempts.get("email", {}).items() if state != "cancelled")
    assert (sms_sent, calls_placed, mail_sent) == (len(messages), len(calls), len(mails))
    # Voicemail got the short message and then the SMS link; nobody who answered was called afterwards.
    machine_calls = [c for c in calls if c["answered_by"] and c["answered_by"].startswith("machine")]
    assert {number_of[c["to"]] for c in machine_calls} == set(VOICEMAIL)
    assert attempts["voice"].get("machine") == len(machine_calls)
    assert not {number_of[c["to"]] for c in calls} & (set(WEB) | set(EMAIL))
    assert status["first_answer_at"] is not None and status["state"] == "open"

    # Resend to those who have not answered reaches only them.
    with app.app_context():
        service.resend_unanswered(broadcast_id=broadcast_id, actor="e2e", now=now())
        db.session.commit()
        dispatch.run(out=out, now=now)
        unreached_people = {
            staff_of[r.staff_id]
            for r in db.session.scalars(select(Recipient).where(Recipient.broadcast_id == broadcast_id))
            if r.state.value == "unreached"
        }
        db.session.remove()
    assert unreached_people == set(VOICEMAIL) | set(NEVER)
    new_messages = sim(served, "messages")[len(messages) :]
    new_mails = sim(served, "mail")[len(mails) :]
    assert {number_of[m["to"]] for m in new_messages} == unreached_people
    assert {number_of[m["to"]] for m in new_mails} == unreached_people
    assert len(new_messages) == len(new_mails) == len(unreached_people)
