"""End to end: the live app and the telephone-network simulator, both on loopback, with the demo routing.

A caller rings the demo support line and reaches a Tokyo agent. Tokyo stops sending heartbeats; once it has
been silent past its limit the heartbeat watch marks it down, and the next caller reaches Osaka. Each time the
parties the simulated network dialed are exactly the endpoints ``lifeline route explain`` names. Finally a
caller on a line whose plan offers the status-page SMS presses 2 and the text leaves through the carrier's
REST API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from continuity import service
from continuity.demo import SUPPORT_LINE, seed_routing, simulator_numbers
from continuity.routing import SiteState
from core import db
from core.telephony.simulator.app import create_simulator_app, simulator_of
from core.telephony.simulator.clock import ManualClock
from core.time import utcnow
from tests.factories import make_org

CALLERS = ("+819000000141", "+819000000142", "+819000000143")
SMS_LINE = "+15550100158"


class Served:
    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@dataclass
class Network:
    app: Flask
    live_url: str
    sim_url: str

    def sim(self, what: str) -> Any:
        response = requests.get(f"{self.sim_url}/_sim/{what}", timeout=10)
        response.raise_for_status()
        return response.json()

    def control(self, what: str, **data: Any) -> Any:
        response = requests.post(f"{self.sim_url}/_sim/{what}", json=data, timeout=60)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def ring(self, line: str, caller: str, digits: list[str] | None = None) -> dict[str, Any]:
        """A person calls the line; the network plays the call to its end."""
        started = self.control(
            "inbound", to=line, **{"from": caller}, **({"digits": digits} if digits else {})
        )
        self.control("advance", seconds=600)
        call: dict[str, Any] = self.sim(f"calls/{started['sid']}")
        return call

    def explain(self, line: str) -> dict[str, Any]:
        result = self.app.test_cli_runner().invoke(args=["route", "explain", "--line", line, "--json"])
        assert result.exit_code == 0, result.output
        explained: dict[str, Any] = json.loads(result.output)
        return explained

    def heartbeat(self, code: str, token: str) -> None:
        response = requests.post(
            f"{self.live_url}/api/v1/sites/{code}/heartbeat",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text


@pytest.fixture()
def network(live_app: Any) -> Iterator[Network]:
    app = live_app.app
    settings = app.extensions["lifeline.settings"]
    simulator = create_simulator_app(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        clock=ManualClock(start=utcnow().timestamp()),
        scenario={
            "seed": 3,
            "numbers": {
                "client:*": {"answer_call": {"after_s": 2, "talk_s": 30}},
                "sip:*": {"answer_call": {"after_s": 2, "talk_s": 30}},
            },
        },
    )
    served = Served(simulator)
    simulator_of(simulator).base_url = served.url
    app.extensions["lifeline.settings"] = replace(
        settings, twilio_api_base=served.url, simulator_url=served.url
    )
    try:
        yield Network(app, live_app.url, served.url)
    finally:
        app.extensions["lifeline.settings"] = settings
        simulator_of(simulator).stop()
        served.stop()


def answered_by(call: dict[str, Any]) -> list[str]:
    return [party["to"] for party in call["dialed"] if party["status"] == "completed"]


@pytest.mark.slow
def test_failover_from_tokyo_to_osaka_through_the_simulator(network: Network) -> None:
    app = network.app
    with app.app_context():
        org = make_org(slug="e2e-routing")
        demo = seed_routing(org, settings=app.extensions["lifeline.settings"])
        sms_plan = service.save_plan(
            organization_id=org.id,
            name="sms-first",
            definition={"targets": [{"kind": "sms_link"}, {"kind": "voicemail"}]},
            actor="test",
        )
        service.add_line(organization_id=org.id, number=SMS_LINE, name="status", plan=sms_plan, actor="test")
        db.session.commit()
    assert set(demo.site_tokens) == {"TKY", "OSA", "FUK"}
    for number in simulator_numbers(network.live_url):
        network.control("numbers", **number)
    network.control(
        "numbers",
        number=SMS_LINE,
        voice_url=f"{network.live_url}/hooks/voice/inbound",
        status_callback=f"{network.live_url}/hooks/voice/status",
    )
    network.heartbeat("TKY", demo.site_tokens["TKY"])

    # 1. Tokyo is up: the call reaches a Tokyo agent, and the network dialed what `route explain` said.
    expected = network.explain(SUPPORT_LINE)
    assert expected["chosen"]["site"] == "TKY"
    call = network.ring(SUPPORT_LINE, CALLERS[0])
    assert call["status"] == "completed" and call["error"] is None
    assert [party["to"] for party in call["dialed"]] == expected["chosen"]["endpoints"]
    assert answered_by(call)[0].startswith("client:tky-agent-")

    # 2. Tokyo falls silent; the heartbeat watch, run past its limit, takes it down.
    with app.app_context():
        downed = service.mark_silent_sites_down(now=utcnow() + timedelta(seconds=91))
        db.session.commit()
        assert [status.state for status in downed] == [SiteState.DOWN]

    expected = network.explain(SUPPORT_LINE)
    assert expected["chosen"]["site"] == "OSA"
    assert expected["targets"][0]["reason"] == "site TKY is down"
    call = network.ring(SUPPORT_LINE, CALLERS[1])
    assert [party["to"] for party in call["dialed"]] == expected["chosen"]["endpoints"]
    assert answered_by(call)[0].startswith("client:osa-agent-")

    # What a failover drill report reads back: the second call's first leg was Osaka.
    with app.app_context():
        recorded = service.call_by_sid(call_sid=call["sid"])
        assert recorded is not None and recorded.outcome == "completed"
        assert [(leg.site_code, leg.outcome.value if leg.outcome else None) for leg in recorded.legs] == [
            ("OSA", "completed")
        ]
        db.session.rollback()  # on SQLite an open transaction, even a reading one, holds the write lock

    # 3. "Press 2 to get an SMS with our status page": the text goes out through the carrier.
    call = network.ring(SMS_LINE, CALLERS[2], digits=["2"])
    assert "We have sent you a text message." in call["said"]
    texts = [m for m in network.sim("messages") if m["to"] == CALLERS[2]]
    assert len(texts) == 1
    assert texts[0]["body"].endswith(f"{network.live_url}/status/e2e-routing")
