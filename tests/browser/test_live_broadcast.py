"""A crisis manager starts a broadcast from the UI; the telephone-network simulator delivers the SMS and its
scripted people open the answer link; the overview's numbers, gauges and curve move without a reload."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from core import db
from core.mail import SimulatorMailBackend
from core.pacing import UnlimitedTokenBucket
from core.telephony import make_backend
from core.telephony.simulator.app import create_simulator_app, simulator_of
from core.telephony.simulator.clock import ManualClock
from core.time import utcnow
from ivr import dispatch
from tests.browser.conftest import seed, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PEOPLE = 6


def phone(n: int) -> str:
    return f"+8190000007{n:02d}"


# Three are safe, one needs help; the other two never answer.
ANSWERS = {0: ["1", "1"], 1: ["1", "2"], 2: ["1", "1"], 3: ["3", "3"]}


class Simulator:
    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture()
def network(live_app: Any) -> Iterator[tuple[ManualClock, Simulator]]:
    """The simulator on loopback with a manual clock; the app's Twilio and mail point at it."""
    app = live_app.app
    settings = app.extensions["lifeline.settings"]
    clock = ManualClock(start=utcnow().timestamp())
    scenario = {
        "seed": 1,
        "default": "never",
        "numbers": {phone(n): {"sms_link": {"after_s": 30, "answers": a}} for n, a in ANSWERS.items()},
    }
    simulator = create_simulator_app(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        scenario=scenario,
        clock=clock,
    )
    served = Simulator(simulator)
    simulator_of(simulator).base_url = served.url
    app.extensions["lifeline.settings"] = replace(
        settings, twilio_api_base=served.url, simulator_url=served.url
    )
    try:
        yield clock, served
    finally:
        app.extensions["lifeline.settings"] = settings
        simulator_of(simulator).stop()
        served.stop()


def send_what_is_due(app: Any, served: Simulator) -> None:
    """One round of the dispatcher, as the worker would run it."""
    settings = app.extensions["lifeline.settings"]
    with app.app_context():
        out = dispatch.Outbound(
            backend=make_backend(settings),
            mailer=SimulatorMailBackend(simulator_url=served.url, sender=settings.mail_from),
            bucket=UnlimitedTokenBucket(),
            settings=settings,
            worker="browser-test",
        )
        dispatch.run(out=out)
        db.session.remove()


def test_start_a_broadcast_and_watch_the_answers_arrive(live_app: Any, network: Any, page: Any) -> None:
    clock, served = network
    center = seed(live_app.app, people=PEOPLE, phone=phone)
    sign_in(page, live_app.url, center.emails["crisis_manager"])

    # Everything is quiet, and the overview offers to start a broadcast.
    expect(page.get_by_role("heading", name="Everything normal")).to_be_visible()
    page.get_by_role("link", name="Start a broadcast").click()
    page.get_by_label("Template").select_option(label="Earthquake")
    page.get_by_role("radio", name="Drill").check()
    page.get_by_role("radio", name="Everyone").check()
    page.get_by_role("checkbox", name="voice").uncheck()
    page.get_by_role("button", name="Start now").click()
    page.wait_for_url(re.compile(r".*/broadcasts/\d+$"))
    broadcast_id = int(page.url.rsplit("/", 1)[1])

    page.get_by_role("link", name="Overview").click()
    key = f"bc-{broadcast_id}"
    answered = page.locator(f'[data-live="{key}-answered"]')
    expect(answered).to_have_text("0")
    expect(page.locator(f'[data-live="{key}-gnone"]')).to_have_text("6 (100%)")
    expect(page.get_by_role("heading", name="Needs attention")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")

    send_what_is_due(live_app.app, served)  # the SMS leave for the simulator
    clock.advance(60)  # the scripted people open their link and answer (the simulator posts the form)

    expect(answered).to_have_text("4", timeout=15_000)
    expect(page.locator(f'[data-live="{key}-g1"]')).to_have_text("3 (50%)")
    expect(page.locator(f'[data-live="{key}-g3"]')).to_have_text("1 (17%)")
    expect(page.locator(f'[data-live="{key}-gnone"]')).to_have_text("2 (33%)")
    expect(page.locator(f'meter[data-live-meter="{key}-g1"]')).to_have_attribute("value", "3")
    # The curve was redrawn from the server's new SVG, its description read the new figures.
    expect(page.locator(f"#{key}-curve-svg-desc")).to_contain_text("4 of 6 people (67%)")
    assert page.evaluate("window.stillTheSamePage") is True  # no reload happened
