"""Home agents: their own page (no login), joining through a broadcast's invitation, calling in with a PIN."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from continuity import service
from continuity.demo import SUPPORT_LINE, seed_routing
from continuity.models import Agent, HomeAgent, InboundLine, RoutingPlan
from core import db
from core.auth.models import AuditEntry, Role
from core.directory.models import Staff
from tests.continuity.conftest import AGENT_LINE, HOME_NUMBER, LINE_24H, Carrier, Center, dialed, said, twiml
from tests.factories import csrf_from, login, make_staff, make_user


@pytest.fixture()
def person(center: Center) -> Staff:
    return make_staff(center.org, site=center.tky, can_work_from_home=True, name="在宅 花子")


def page(client: FlaskClient, person: Staff) -> str:
    response = client.get(f"/home-agent/{person.self_service_token}?lang=en")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return response.text


def act(client: FlaskClient, person: Staff, **data: str) -> Any:
    data["csrf_token"] = csrf_from(page(client, person))
    return client.post(f"/home-agent/{person.self_service_token}", data=data)


def home_agent(person: Staff) -> HomeAgent | None:
    return db.session.scalar(select(HomeAgent).where(HomeAgent.staff_id == person.id))


def all_sites_down(center: Center) -> None:
    for agent in db.session.scalars(select(Agent)).all():
        agent.available = False
    db.session.flush()


def test_register_a_number_and_go_available(
    center: Center, client: FlaskClient, person: Staff, carrier: Carrier
) -> None:
    assert "Register the number to ring" in page(client, person)
    assert home_agent(person) is None  # opening the link changes nothing

    act(client, person, action="register", number="090-0000-0131", pin="2468")
    agent = home_agent(person)
    assert agent is not None and agent.number_encrypted is not None and not agent.available
    assert HOME_NUMBER.encode() not in agent.number_encrypted and HOME_NUMBER[1:] not in (
        agent.number_hash or ""
    )
    html = page(client, person)
    assert "I am available" in html and HOME_NUMBER not in html and service.mask_number(HOME_NUMBER) in html

    all_sites_down(center)
    assert dialed(twiml(carrier.call(LINE_24H)[1])) != [HOME_NUMBER]  # away: not rung
    act(client, person, action="available")
    assert dialed(twiml(carrier.call(LINE_24H)[1])) == [HOME_NUMBER]
    act(client, person, action="away")
    assert dialed(twiml(carrier.call(LINE_24H)[1])) != [HOME_NUMBER]

    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action.like("continuity.home_agent.%"))
    ).all()
    assert [e.action for e in audit] == [
        "continuity.home_agent.join",
        "continuity.home_agent.availability",
        "continuity.home_agent.availability",
    ]
    assert all(HOME_NUMBER not in f"{e.summary}{e.detail}" for e in audit)


def test_supervisors_never_see_a_home_agents_number(
    center: Center, client: FlaskClient, person: Staff, app: Flask
) -> None:
    agent = service.join_home_agent_pool(
        staff=person, number=HOME_NUMBER, settings=app.extensions["lifeline.settings"]
    )
    service.set_home_agent_available(home_agent=agent, available=True, via="test")
    all_sites_down(center)
    login(client, make_user(center.org, Role.SUPERVISOR))
    board = client.get("/continuity").text
    assert "Home agents available: 1 of 1" in board
    assert HOME_NUMBER not in board and HOME_NUMBER[-4:] not in board
    explain = client.get(f"/continuity/explain?line={center.line.id}").text
    assert HOME_NUMBER not in explain


def test_bad_number_or_pin_is_refused(center: Center, client: FlaskClient, person: Staff) -> None:
    act(client, person, action="register", number="12", pin="2468")
    assert home_agent(person) is None
    assert "this is not a phone number we can call" in page(client, person)
    act(client, person, action="register", number=HOME_NUMBER, pin="12")
    assert home_agent(person) is None


def test_only_people_who_can_work_from_home_have_the_page(center: Center, client: FlaskClient) -> None:
    office_only = make_staff(center.org, site=center.tky, can_work_from_home=False)
    assert client.get(f"/home-agent/{office_only.self_service_token}").status_code == 404
    assert client.get("/home-agent/not-a-token").status_code == 404


def test_leaving_the_pool_deletes_the_number(center: Center, client: FlaskClient, person: Staff) -> None:
    act(client, person, action="register", number=HOME_NUMBER)
    act(client, person, action="leave")
    assert home_agent(person) is None


def test_joining_through_a_broadcast_invitation(
    center: Center, client: FlaskClient, carrier: Carrier
) -> None:
    from ivr.models import Broadcast, BroadcastMode, Invitation, Recipient

    staff = make_staff(center.org, site=center.osa)  # not flagged: the invitation is what lets them in
    broadcast = Broadcast(
        organization_id=center.org.id,
        template_key="earthquake",
        template={},
        title="地震 安否確認",
        mode=BroadcastMode.DRILL,
        channels=["sms"],
        created_by="test",
    )
    db.session.add(broadcast)
    db.session.flush()
    recipient = Recipient(broadcast_id=broadcast.id, staff_id=staff.id, token="r-token-0001")
    db.session.add(recipient)
    db.session.flush()
    invitation = Invitation(
        broadcast_id=broadcast.id,
        recipient_id=recipient.id,
        staff_id=staff.id,
        purpose="home_agent_pool",
        token="invite-token-0001",
        message="在宅で受電できる方はご登録ください。",
    )
    db.session.add(invitation)
    db.session.flush()

    form = client.get("/home-agent/join/invite-token-0001")
    assert form.status_code == 200 and "在宅で受電できる方はご登録ください。" in form.text
    assert invitation.accepted_at is None  # opening the link accepts nothing
    joined = client.post(
        "/home-agent/join/invite-token-0001",
        data={"number": "+819000000132", "pin": "1357", "csrf_token": csrf_from(form.text)},
    )
    assert joined.status_code == 302 and joined.headers["Location"].endswith(
        f"/home-agent/{staff.self_service_token}"
    )
    assert db.session.get(Invitation, invitation.id).accepted_at is not None  # type: ignore[union-attr]
    agent = home_agent(staff)
    assert agent is not None and agent.pin_hash and not agent.available
    assert client.get(joined.headers["Location"]).status_code == 200  # their own page works from now on
    assert client.get("/home-agent/join/unknown-token").status_code == 404


def test_accepting_the_invitation_on_the_broadcast_page_puts_the_person_in_the_pool(center: Center) -> None:
    """The hook the ivr part calls when someone accepts: they are in the pool, away, without a number yet."""
    staff = make_staff(center.org)

    class Accepted:
        purpose = "home_agent_pool"
        staff_id = staff.id

    service.on_invitation_accepted(Accepted())
    agent = home_agent(staff)
    assert agent is not None and agent.number_encrypted is None and not agent.available


# --- calling in: the agent-login line -----------------------------------------------------------------------------


def test_call_in_with_the_pin_to_go_available_and_away(
    center: Center, carrier: Carrier, person: Staff, app: Flask
) -> None:
    settings = app.extensions["lifeline.settings"]
    service.join_home_agent_pool(staff=person, number=HOME_NUMBER, pin="2468", settings=settings)

    def call_in(pin: str, choice: str) -> list[str]:
        sid, response = carrier.call(AGENT_LINE, caller=HOME_NUMBER)
        gather = twiml(response).find("Gather")
        assert gather is not None and gather.get("finishOnKey") == "#"
        doc = twiml(
            carrier.follow(gather.get("action", ""), sid, caller=HOME_NUMBER, line=AGENT_LINE, Digits=pin)
        )
        menu = doc.find("Gather")
        assert menu is not None
        doc = twiml(
            carrier.follow(menu.get("action", ""), sid, caller=HOME_NUMBER, line=AGENT_LINE, Digits=choice)
        )
        return said(doc)

    assert "You are available. Calls will ring your phone." in call_in("2468", "1")
    assert home_agent(person).available  # type: ignore[union-attr]
    assert "You are away. Calls will not ring your phone." in call_in("2468", "2")
    assert not home_agent(person).available  # type: ignore[union-attr]


def test_call_in_with_a_wrong_pin_three_times(
    center: Center, carrier: Carrier, person: Staff, app: Flask
) -> None:
    service.join_home_agent_pool(
        staff=person, number=HOME_NUMBER, pin="2468", settings=app.extensions["lifeline.settings"]
    )
    sid, response = carrier.call(AGENT_LINE, caller=HOME_NUMBER)
    doc = twiml(response)
    for attempt in range(3):
        gather = doc.find("Gather")
        assert gather is not None, attempt
        doc = twiml(
            carrier.follow(gather.get("action", ""), sid, caller=HOME_NUMBER, line=AGENT_LINE, Digits="0000")
        )
    assert doc.find("Gather") is None and "That PIN is not correct." in said(doc)


def test_the_menu_step_cannot_be_reached_without_the_pin(
    center: Center, carrier: Carrier, person: Staff, app: Flask
) -> None:
    service.join_home_agent_pool(
        staff=person, number=HOME_NUMBER, pin="2468", settings=app.extensions["lifeline.settings"]
    )
    staff_id = person.id
    db.session.commit()
    forged = carrier.follow(
        f"/hooks/voice/agent-login/set?line={center.agent_line.id}&ok=0000",
        "CAforged",
        caller=HOME_NUMBER,
        line=AGENT_LINE,
        Digits="1",
    )
    assert forged.status_code == 403
    agent = db.session.scalar(select(HomeAgent).where(HomeAgent.staff_id == staff_id))
    assert agent is not None and not agent.available


def test_an_unregistered_phone_cannot_log_in(center: Center, carrier: Carrier) -> None:
    doc = twiml(carrier.call(AGENT_LINE, caller="+819000000199")[1])
    assert "This phone number is not registered as a home agent." in said(doc)
    assert doc.find("Gather") is None


# --- demo data --------------------------------------------------------------------------------------------------


def test_demo_routing_is_complete_and_idempotent(db_session: Any, app: Flask) -> None:
    from tests.factories import make_org

    org = make_org(slug="demo-routing")
    make_staff(org, can_work_from_home=True)
    make_staff(org, can_work_from_home=True)
    settings = app.extensions["lifeline.settings"]
    first = seed_routing(org, settings=settings)
    assert (first.plans_added, first.lines_added, first.agents_added, first.home_agents_added) == (3, 3, 6, 2)
    assert set(first.site_tokens) == {"TKY", "OSA", "FUK"}
    again = seed_routing(org, settings=settings)
    assert (again.plans_added, again.lines_added, again.agents_added, again.home_agents_added) == (0, 0, 0, 0)
    assert again.site_tokens == {}
    line = service.line_by_number(number=SUPPORT_LINE)
    assert line is not None
    decision = service.explain_route(line=line, at=datetime(2026, 6, 1, 1, tzinfo=UTC))
    assert decision.target is not None and decision.target.site_code == "TKY"
    assert (
        len(db.session.scalars(select(RoutingPlan).where(RoutingPlan.organization_id == org.id)).all()) == 3
    )
    numbers = db.session.scalars(
        select(InboundLine.number).where(InboundLine.organization_id == org.id)
    ).all()
    assert all(n.startswith("+1555010") and 100 <= int(n[-4:]) <= 199 for n in numbers)
