"""A small contact center for the routing tests: three sites with agents, a 24-hour line and a business-hours
line, and a way to post correctly signed Twilio webhooks through the Flask test client."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.etree import ElementTree

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from continuity import service
from continuity.models import InboundLine, LineKind, RoutingPlan
from core import db
from core.config import Settings
from core.directory.models import Organization, Site
from core.telephony.signature import sign_request
from tests.factories import make_org, make_site

CALLER = "+819000000123"
LINE_24H = "+15550100160"
LINE_OFFICE = "+15550100161"
AGENT_LINE = "+15550100162"
TKY_AGENTS = ("client:t-agent-1", "client:t-agent-2")
OSA_AGENTS = ("sip:o-agent-1@osaka.example.com",)
FUK_AGENTS = ("+15550100171",)
HOME_NUMBER = "+819000000131"

PLAN_24H: dict[str, Any] = {
    "site": "TKY",
    "targets": [
        {"kind": "site_agents", "site": "TKY", "ring_timeout_s": 15, "skip_when_unavailable": True},
        {"kind": "site", "site": "OSA", "ring_timeout_s": 16, "skip_when_unavailable": True},
        {"kind": "home_agents", "ring_timeout_s": 20},
        {"kind": "voicemail"},
        {"kind": "sms_link"},
    ],
}
PLAN_OFFICE: dict[str, Any] = {
    "site": "TKY",
    "business_hours": [{"days": "Mon-Fri", "opens": "09:00", "closes": "18:00"}],
    "holidays": ["2026-01-01"],
    "closed_message": {"ja": "本日の受付は終了しました。", "en": "We are closed now."},
    "holiday_message": {"ja": "本日は休業日です。", "en": "We are closed for the holiday."},
    "targets": [
        {"kind": "site_agents", "site": "TKY", "skip_when_unavailable": True},
        {"kind": "faq_menu"},
        {"kind": "callback_request"},
        {"kind": "voicemail"},
    ],
    "faq": [
        {
            "digit": "1",
            "question": {"ja": "営業時間", "en": "opening hours"},
            "answer": {"ja": "平日9時から18時です。", "en": "Weekdays 9 to 6."},
        }
    ],
}
PLAN_OSAKA: dict[str, Any] = {
    "site": "OSA",
    "targets": [{"kind": "site_agents", "site": "OSA"}, {"kind": "voicemail"}],
}


_sids = itertools.count(1)


def new_call_sid() -> str:
    return f"CA{next(_sids):032x}"


@dataclass
class Center:
    org: Organization
    tky: Site
    osa: Site
    fuk: Site
    plan_24h: RoutingPlan
    plan_office: RoutingPlan
    plan_osaka: RoutingPlan
    line: InboundLine
    office_line: InboundLine
    agent_line: InboundLine

    @property
    def sites(self) -> dict[str, Site]:
        return {"TKY": self.tky, "OSA": self.osa, "FUK": self.fuk}


@pytest.fixture()
def center(db_session: Any) -> Center:
    return build_center()


def build_center() -> Center:
    """The center, committed (in the ``center`` fixture, inside the test's outer transaction)."""
    org = make_org(name="Routing Test")
    tky = make_site(org, code="TKY", prefecture="13")
    osa = make_site(org, code="OSA", prefecture="27")
    fuk = make_site(org, code="FUK", prefecture="40")
    for site, endpoints in ((tky, TKY_AGENTS), (osa, OSA_AGENTS), (fuk, FUK_AGENTS)):
        for n, endpoint in enumerate(endpoints):
            service.add_agent(site=site, name=f"{site.code} {n + 1}", endpoint=endpoint, actor="test")
    plan_24h = service.save_plan(organization_id=org.id, name="support", definition=PLAN_24H, actor="test")
    plan_office = service.save_plan(
        organization_id=org.id, name="office", definition=PLAN_OFFICE, actor="test"
    )
    plan_osaka = service.save_plan(organization_id=org.id, name="osaka", definition=PLAN_OSAKA, actor="test")
    line = service.add_line(organization_id=org.id, number=LINE_24H, name="24h", plan=plan_24h, actor="test")
    office = service.add_line(
        organization_id=org.id, number=LINE_OFFICE, name="office", plan=plan_office, actor="test"
    )
    agent_line = service.add_line(
        organization_id=org.id,
        number=AGENT_LINE,
        name="agent login",
        plan=None,
        kind=LineKind.AGENT_LOGIN,
        actor="test",
    )
    # Committed (inside the test's outer transaction, which is still rolled back): a request that fails and
    # rolls back must not take the center with it.
    db.session.commit()
    return Center(org, tky, osa, fuk, plan_24h, plan_office, plan_osaka, line, office, agent_line)


def settings_of(app: Flask) -> Settings:
    settings: Settings = app.extensions["lifeline.settings"]
    return settings


class Carrier:
    """Posts webhooks the way Twilio does: form-encoded, signed with the auth token over the public URL."""

    def __init__(self, client: FlaskClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def post(self, path: str, params: Mapping[str, str], *, sign: bool = True) -> TestResponse:
        url = self.settings.public_base_url.rstrip("/") + path
        headers = (
            {"X-Twilio-Signature": sign_request(url, params, self.settings.twilio_auth_token)} if sign else {}
        )
        return self.client.post(path, data=dict(params), headers=headers)

    def call(self, line: str, *, sid: str | None = None, caller: str = CALLER) -> tuple[str, TestResponse]:
        sid = sid or new_call_sid()
        response = self.post(
            "/hooks/voice/inbound",
            {"CallSid": sid, "From": caller, "To": line, "CallStatus": "ringing", "Direction": "inbound"},
        )
        return sid, response

    def follow(
        self, url: str, sid: str, caller: str = CALLER, line: str = LINE_24H, **params: str
    ) -> TestResponse:
        return self.post(url, {"CallSid": sid, "From": caller, "To": line, **params})


@pytest.fixture()
def carrier(client: FlaskClient, app: Flask) -> Carrier:
    return Carrier(client, settings_of(app))


def twiml(response: TestResponse) -> ElementTree.Element:
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/xml"
    return ElementTree.fromstring(response.text)


def dialed(doc: ElementTree.Element) -> list[str]:
    """What a <Dial> rings, written the way plans and the simulator write endpoints."""
    dial = doc.find("Dial")
    if dial is None:
        return []
    out = []
    for child in dial:
        text = (child.text or "").strip()
        out.append(f"client:{text}" if child.tag == "Client" else text)
    return out


def said(doc: ElementTree.Element) -> list[str]:
    return [(el.text or "").strip() for el in doc.iter("Say")]


def action_of(doc: ElementTree.Element, verb: str) -> str:
    element = doc.find(verb) if verb != "Redirect" else doc.find("Redirect")
    assert element is not None, f"no <{verb}> in {ElementTree.tostring(doc, encoding='unicode')}"
    return (element.text or "").strip() if verb == "Redirect" else element.get("action", "")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
