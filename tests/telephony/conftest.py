"""Loopback servers, a manual clock and the simulator wired to a small call-centre app (``callcentre.py``).

Nothing here needs the Lifeline app or its database: the telephony package stands on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from core.telephony.backend import TwilioBackend
from core.telephony.simulator import ManualClock, Simulator, create_simulator_app, simulator_of
from core.telephony.simulator.clock import Clock
from tests.telephony.callcentre import Recorder, make_callcentre_app

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789"
OUR_NUMBER = "+15550100100"


class LoopbackServer:
    def __init__(self, app: Flask) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture()
def serve() -> Iterator[Callable[[Flask], str]]:
    """``serve(app)`` → base URL of ``app`` running on a free loopback port (stopped after the test)."""
    servers: list[LoopbackServer] = []

    def start(app: Flask) -> str:
        server = LoopbackServer(app)
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@dataclass
class Network:
    """The call-centre app and the simulator, both on loopback, and the real Twilio client between them."""

    app: Flask
    app_url: str
    sim: Simulator
    sim_url: str
    backend: TwilioBackend
    recorder: Recorder

    @property
    def clock(self) -> ManualClock:
        clock = self.sim.manual_clock
        assert clock is not None
        return clock

    def place_call(self, to: str, path: str = "/voice/menu", **options: Any) -> str:
        options.setdefault("status_callback_url", f"{self.app_url}/status")
        placed = self.backend.place_call(
            to=to, from_=OUR_NUMBER, answer_url=f"{self.app_url}{path}", **options
        )
        return placed.sid

    def sim_get(self, path: str) -> Any:
        response = requests.get(f"{self.sim_url}{path}", timeout=5)
        response.raise_for_status()
        return response.json()

    def sim_post(self, path: str, payload: Mapping[str, Any]) -> Any:
        response = requests.post(f"{self.sim_url}{path}", json=dict(payload), timeout=5)
        assert response.status_code < 300, response.text
        return response.json()


@pytest.fixture()
def network(serve: Callable[[Flask], str]) -> Iterator[Callable[..., Network]]:
    """``network(scenario={...})`` → a fresh :class:`Network` with a manual clock (or the given ``clock``)."""
    simulators: list[Simulator] = []

    def build(scenario: Mapping[str, Any] | None = None, clock: Clock | None = None) -> Network:
        settings = SimpleNamespace(twilio_auth_token=AUTH_TOKEN, public_base_url="")
        app = make_callcentre_app(settings)
        app_url = serve(app)
        settings.public_base_url = app_url
        sim_app = create_simulator_app(
            account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, clock=clock or ManualClock(), scenario=scenario
        )
        sim_url = serve(sim_app)
        sim = simulator_of(sim_app)
        sim.base_url = sim_url
        simulators.append(sim)
        backend = TwilioBackend(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base=sim_url, timeout_s=5)
        return Network(app, app_url, sim, sim_url, backend, app.extensions["recorder"])

    yield build
    for sim in simulators:
        sim.stop()
