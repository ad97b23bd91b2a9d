"""The routing state the inbound webhook reads is cached per process for a second (``continuity.cache``).

A supervisor's reroute made on this process applies to the very next call; one made by another process (another
gunicorn worker, the CLI on another machine) applies once the cache's second has passed; one organization's state
never answers another organization's calls. The cache's clock is a seam: here it stands still unless a test moves
it, so nothing but the invalidation (or the expiry the test asks for) can make a change apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from continuity import cache, service
from continuity.models import Agent, SiteStatus
from continuity.routing import SiteState
from core import db
from core.auth.models import Role
from core.telephony.signature import sign_request
from tests.continuity.conftest import (
    CALLER,
    LINE_24H,
    OSA_AGENTS,
    PLAN_24H,
    TKY_AGENTS,
    Carrier,
    Center,
    build_center,
    dialed,
    new_call_sid,
    said,
    settings_of,
    twiml,
)
from tests.factories import csrf_from, login, make_org, make_site, make_user

OTHER_LINE = "+15550100163"
OTHER_TKY_AGENTS = ("client:other-tky-1",)
OTHER_OSA_AGENTS = ("client:other-osa-1",)
ANNOUNCEMENT = "All our lines are closed because of the earthquake."


@dataclass
class StillClock:
    """The cache's clock: it moves only when a test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def clock() -> StillClock:
    still = StillClock()
    cache.routing_states.clock = still  # put back on the real clock by the conftest's autouse fixture
    return still


@pytest.fixture()
def supervisor(center: Center, client: FlaskClient) -> FlaskClient:
    login(client, make_user(center.org, Role.SUPERVISOR, email="sv@example.com"))
    return client


def board_post(client: FlaskClient, url: str, **data: str) -> None:
    page = client.get("/continuity")
    assert page.status_code == 200
    response = client.post(url, data={**data, "csrf_token": csrf_from(page.text)})
    assert response.status_code == 302, response.text


def first_call(carrier: Carrier, line: str = LINE_24H) -> ElementTree.Element:
    return twiml(carrier.call(line)[1])


# --- a change made on this process ---------------------------------------------------------------------------


def _tokyo_down(center: Center, client: FlaskClient) -> None:
    board_post(client, f"/continuity/sites/{center.tky.id}/state", state="down", reason="power cut")


def _tokyo_agents_away(center: Center, client: FlaskClient) -> None:
    for agent_id in db.session.scalars(select(Agent.id).where(Agent.site_id == center.tky.id)).all():
        board_post(client, f"/continuity/agents/{agent_id}/availability", available="0")


def _line_moved_to_osaka(center: Center, client: FlaskClient) -> None:
    board_post(
        client, f"/continuity/lines/{center.line.id}/move", plan=str(center.plan_osaka.id), reason="drill"
    )


def _emergency(center: Center, client: FlaskClient) -> None:
    board_post(
        client,
        "/continuity/emergencies",
        scope="global",
        announcement_ja="地震のため受付を停止しています。",
        announcement_en=ANNOUNCEMENT,
        reason="earthquake",
    )


def _goes_to_osaka(doc: ElementTree.Element) -> None:
    assert dialed(doc) == list(OSA_AGENTS)


def _plays_the_announcement(doc: ElementTree.Element) -> None:
    assert dialed(doc) == []
    assert ANNOUNCEMENT in said(doc)


@pytest.mark.parametrize(
    ("change", "then"),
    [
        pytest.param(_tokyo_down, _goes_to_osaka, id="site marked down"),
        pytest.param(_tokyo_agents_away, _goes_to_osaka, id="agents marked away"),
        pytest.param(_line_moved_to_osaka, _goes_to_osaka, id="line moved to another plan"),
        pytest.param(_emergency, _plays_the_announcement, id="emergency mode"),
    ],
)
def test_a_supervisors_change_applies_to_the_very_next_call(
    center: Center,
    supervisor: FlaskClient,
    carrier: Carrier,
    clock: StillClock,
    change: Callable[[Center, FlaskClient], None],
    then: Callable[[ElementTree.Element], None],
) -> None:
    assert dialed(first_call(carrier)) == list(
        TKY_AGENTS
    )  # the state is cached now, and the clock stands still
    change(center, supervisor)
    then(first_call(carrier))


def test_undoing_a_change_applies_at_once_too(
    center: Center, supervisor: FlaskClient, carrier: Carrier, clock: StillClock
) -> None:
    _tokyo_down(center, supervisor)
    _goes_to_osaka(first_call(carrier))
    change = service.recent_changes(organization_id=center.org.id)[0]
    board_post(supervisor, f"/continuity/changes/{change.id}/undo")
    assert dialed(first_call(carrier)) == list(TKY_AGENTS)


def test_queue_sizes_are_counted_for_every_call(center: Center, carrier: Carrier, clock: StillClock) -> None:
    """Every call changes them and a full queue is skipped: they are never taken from the cache."""
    plan = service.save_plan(
        organization_id=center.org.id,
        name="queue",
        definition={"targets": [{"kind": "queue", "queue": "q1", "capacity": 1}, {"kind": "voicemail"}]},
        actor="test",
    )
    center.line.plan = plan
    db.session.commit()
    assert first_call(carrier).find("Enqueue") is not None
    # The clock has not moved: the second caller finds the queue full all the same.
    second = first_call(carrier)
    assert second.find("Enqueue") is None and second.find("Record") is not None


# --- organizations ---------------------------------------------------------------------------------------------


def test_one_organizations_state_never_answers_anothers_calls(
    center: Center, supervisor: FlaskClient, carrier: Carrier, clock: StillClock
) -> None:
    other = make_org(name="Other center")
    sites = {code: make_site(other, code=code) for code in ("TKY", "OSA")}
    for code, endpoints in (("TKY", OTHER_TKY_AGENTS), ("OSA", OTHER_OSA_AGENTS)):
        for endpoint in endpoints:
            service.add_agent(site=sites[code], name=endpoint, endpoint=endpoint, actor="test")
    plan = service.save_plan(organization_id=other.id, name="support", definition=PLAN_24H, actor="test")
    service.add_line(organization_id=other.id, number=OTHER_LINE, name="24h", plan=plan, actor="test")
    db.session.commit()

    # Same site codes, same plan, both cached: each line rings its own organization's agents.
    assert dialed(first_call(carrier)) == list(TKY_AGENTS)
    assert dialed(first_call(carrier, OTHER_LINE)) == list(OTHER_TKY_AGENTS)
    # Tokyo goes down in the first organization only.
    _tokyo_down(center, supervisor)
    assert dialed(first_call(carrier)) == list(OSA_AGENTS)
    assert dialed(first_call(carrier, OTHER_LINE)) == list(OTHER_TKY_AGENTS)
    # And once the cache's second is over, still each its own.
    clock.advance(cache.TTL_S + 0.1)
    assert dialed(first_call(carrier, OTHER_LINE)) == list(OTHER_TKY_AGENTS)
    assert dialed(first_call(carrier)) == list(OSA_AGENTS)


# --- a change made by another process ---------------------------------------------------------------------------


@pytest.fixture()
def committed_center(app: Flask, live_app: Any) -> Iterator[tuple[Center, str]]:
    """The center committed for real (the live app's tables are emptied afterwards), and the live app's URL."""
    with app.app_context():
        center = build_center()
        service.site_status(site=center.tky)  # the row another process updates
        db.session.commit()
        db.session.remove()  # on SQLite even a reading transaction holds the write lock
    yield center, live_app.url


def live_call(app: Flask, base_url: str) -> ElementTree.Element:
    """A call to the 24-hour line, over HTTP to the live app, signed the way the carrier signs it."""
    url = f"{base_url}/hooks/voice/inbound"
    params = {"CallSid": new_call_sid(), "From": CALLER, "To": LINE_24H, "CallStatus": "ringing"}
    signature = sign_request(url, params, settings_of(app).twilio_auth_token)
    response = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)
    assert response.status_code == 200, response.text
    return ElementTree.fromstring(response.text)


def test_a_change_made_by_another_process_applies_once_the_cache_expires(
    app: Flask, committed_center: tuple[Center, str], clock: StillClock
) -> None:
    center, base_url = committed_center
    assert dialed(live_call(app, base_url)) == list(TKY_AGENTS)

    # Another process takes Tokyo down: its own connection, its own commit; this process is not told.
    elsewhere = db.make_engine(db.get_engine().url.render_as_string(hide_password=False))
    try:
        with elsewhere.begin() as connection:
            connection.execute(
                update(SiteStatus)
                .where(SiteStatus.site_id == center.tky.id)
                .values(state=SiteState.DOWN, state_reason="marked down elsewhere")
            )
    finally:
        elsewhere.dispose()

    # Within the cache's second this process still routes by what it read (docs/OPERATIONS.md) ...
    assert dialed(live_call(app, base_url)) == list(TKY_AGENTS)
    # ... and once the second is over, by the change.
    clock.advance(cache.TTL_S)
    assert dialed(live_call(app, base_url)) == list(OSA_AGENTS)
