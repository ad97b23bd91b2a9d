"""Demo routing for the embedded default: lines, plans, site agents and heartbeat tokens (idempotent).

Numbers are fictional (+1 555-0100…0199). Site agents are softphones (``client:…``) and SIP addresses the
simulator answers for; demo home agents ring fictional +81 90-0000-09xx numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from continuity import service
from continuity.models import Agent, LineKind, RoutingPlan
from core import db
from core.config import Settings
from core.directory.models import Organization, Site, Staff

ACTOR = "demo-data"
SUPPORT_LINE = "+15550100150"
BUSINESS_LINE = "+15550100151"
AGENT_LOGIN_LINE = "+15550100152"

_HOLD = {
    "ja": "ただいま電話が大変混み合っております。順番におつなぎしますので、このままお待ちください。",
    "en": "All our agents are busy. Please stay on the line; we will answer in turn.",
}
_UNAVAILABLE = {
    "ja": "ただいまお電話がつながりにくくなっております。のちほどおかけ直しください。",
    "en": "We cannot take your call right now. Please call again later.",
}

SUPPORT_PLAN: dict[str, Any] = {
    "timezone": "Asia/Tokyo",
    "site": "TKY",
    "unavailable_message": _UNAVAILABLE,
    "targets": [
        {"kind": "site_agents", "site": "TKY", "ring_timeout_s": 15, "skip_when_unavailable": True},
        {"kind": "site", "site": "OSA", "ring_timeout_s": 15, "skip_when_unavailable": True},
        {
            "kind": "site",
            "site": "FUK",
            "ring_timeout_s": 15,
            "skip_when_unavailable": True,
            "business_hours": [{"opens": "08:00", "closes": "22:00"}],
        },
        {"kind": "home_agents", "ring_timeout_s": 20},
        {"kind": "queue", "queue": "support", "capacity": 5, "ring_timeout_s": 60, "message": _HOLD},
        {"kind": "voicemail"},
        {"kind": "sms_link"},
    ],
}

BUSINESS_HOURS_PLAN: dict[str, Any] = {
    "timezone": "Asia/Tokyo",
    "site": "TKY",
    "business_hours": [{"days": "Mon-Fri", "opens": "09:00", "closes": "18:00"}],
    # Japanese public holidays of 2026 (a real installation keeps this list up to date)
    "holidays": [
        "2026-01-01",
        "2026-01-02",
        "2026-01-12",
        "2026-02-11",
        "2026-02-23",
        "2026-03-20",
        "2026-04-29",
        "2026-05-04",
        "2026-05-05",
        "2026-05-06",
        "2026-07-20",
        "2026-08-11",
        "2026-09-21",
        "2026-09-22",
        "2026-09-23",
        "2026-10-12",
        "2026-11-03",
        "2026-11-23",
        "2026-12-31",
    ],
    "closed_message": {
        "ja": "お電話ありがとうございます。受付時間は平日9時から18時です。",
        "en": "Thank you for calling. We are open weekdays from 9 am to 6 pm.",
    },
    "holiday_message": {
        "ja": "お電話ありがとうございます。本日は休業日です。",
        "en": "Thank you for calling. We are closed today for the holiday.",
    },
    "targets": [
        {"kind": "site_agents", "site": "TKY", "ring_timeout_s": 20, "skip_when_unavailable": True},
        {"kind": "site", "site": "OSA", "ring_timeout_s": 20, "skip_when_unavailable": True},
        {"kind": "faq_menu"},
        {"kind": "callback_request"},
        {"kind": "voicemail"},
    ],
    "faq": [
        {
            "digit": "1",
            "question": {"ja": "営業時間について", "en": "our opening hours"},
            "answer": {
                "ja": "受付時間は平日9時から18時です。",
                "en": "We are open weekdays from 9 am to 6 pm.",
            },
        },
        {
            "digit": "2",
            "question": {"ja": "災害時のお問い合わせについて", "en": "enquiries during a disaster"},
            "answer": {
                "ja": "最新の状況はウェブサイトの状況ページでお知らせしています。",
                "en": "Our status page on the website has the latest news.",
            },
        },
    ],
}

OSAKA_FIRST_PLAN: dict[str, Any] = {
    "timezone": "Asia/Tokyo",
    "site": "OSA",
    "targets": [
        {"kind": "site_agents", "site": "OSA", "ring_timeout_s": 15, "skip_when_unavailable": True},
        {"kind": "site", "site": "FUK", "ring_timeout_s": 15, "skip_when_unavailable": True},
        {"kind": "home_agents", "ring_timeout_s": 20},
        {"kind": "voicemail"},
    ],
}

PLANS = (
    ("support", SUPPORT_PLAN),
    ("support-business-hours", BUSINESS_HOURS_PLAN),
    ("osaka-first", OSAKA_FIRST_PLAN),
)

# site code → (agent name, endpoint)
AGENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "TKY": (
        ("東京 1", "client:tky-agent-01"),
        ("東京 2", "client:tky-agent-02"),
        ("東京 3", "client:tky-agent-03"),
    ),
    "OSA": (("大阪 1", "client:osa-agent-01"), ("大阪 2", "client:osa-agent-02")),
    "FUK": (("福岡 1", "sip:fuk-agent-01@fukuoka.example.com"),),
}
SITES = (("TKY", "東京本社", "13"), ("OSA", "大阪コールセンター", "27"), ("FUK", "福岡コールセンター", "40"))
HOME_AGENT_NUMBERS = ("+819000000901", "+819000000902")


@dataclass
class DemoRouting:
    plans_added: int = 0
    lines_added: int = 0
    agents_added: int = 0
    home_agents_added: int = 0
    site_tokens: dict[str, str] = field(default_factory=dict)  # new tokens only: shown once


def seed_routing(org: Organization, *, settings: Settings | None = None) -> DemoRouting:
    """Create what is missing; never changes what a user already edited. With ``settings`` (for the
    encryption key) two demo home agents are registered too."""
    summary = DemoRouting()
    sites = {s.code: s for s in service.sites_of(organization_id=org.id)}
    for code, name, prefecture in SITES:
        if code not in sites:
            sites[code] = Site(organization_id=org.id, code=code, name=name, prefecture_code=prefecture)
            db.session.add(sites[code])
    db.session.flush()

    plans = {p.name: p for p in service.plans_of(organization_id=org.id)}
    for name, definition in PLANS:
        if name not in plans:
            plans[name] = service.save_plan(
                organization_id=org.id, name=name, definition=definition, actor=ACTOR
            )
            summary.plans_added += 1

    lines: tuple[tuple[str, str, RoutingPlan | None, LineKind], ...] = (
        (SUPPORT_LINE, "サポート窓口 (24時間)", plans["support"], LineKind.CUSTOMER),
        (BUSINESS_LINE, "お客様窓口 (平日日中)", plans["support-business-hours"], LineKind.CUSTOMER),
        (AGENT_LOGIN_LINE, "在宅オペレーター受付切替", None, LineKind.AGENT_LOGIN),
    )
    for number, name, plan, kind in lines:
        if service.line_by_number(number=number) is None:
            service.add_line(
                organization_id=org.id, number=number, name=name, plan=plan, kind=kind, actor=ACTOR
            )
            summary.lines_added += 1

    endpoints = set(db.session.scalars(select(Agent.endpoint).where(Agent.organization_id == org.id)))
    for code, agents in AGENTS.items():
        for name, endpoint in agents:
            if endpoint not in endpoints:
                service.add_agent(site=sites[code], name=name, endpoint=endpoint, actor=ACTOR)
                summary.agents_added += 1

    for code in AGENTS:
        status = service.site_status(site=sites[code])
        if status.token_hash is None:
            summary.site_tokens[code] = service.generate_site_token(site=sites[code], actor=ACTOR)

    if settings is not None:
        candidates = db.session.scalars(
            select(Staff)
            .where(Staff.organization_id == org.id, Staff.can_work_from_home.is_(True))
            .order_by(Staff.employee_id)
            .limit(len(HOME_AGENT_NUMBERS))
        ).all()
        for person, number in zip(candidates, HOME_AGENT_NUMBERS, strict=False):
            if service.home_agent_of(staff_id=person.id) is None:
                agent = service.join_home_agent_pool(
                    staff=person, number=number, pin="1234", settings=settings, via=ACTOR
                )
                service.set_home_agent_available(home_agent=agent, available=True, via=ACTOR)
                summary.home_agents_added += 1
    db.session.flush()
    return summary


def simulator_numbers(public_base_url: str) -> list[dict[str, str]]:
    """What to ``POST /_sim/numbers`` so the simulated network sends calls to the demo lines to this app."""
    base = public_base_url.rstrip("/")
    return [
        {
            "number": number,
            "voice_url": f"{base}/hooks/voice/inbound",
            "status_callback": f"{base}/hooks/voice/status",
        }
        for number in (SUPPORT_LINE, BUSINESS_LINE, AGENT_LOGIN_LINE)
    ]


TOKENS_FILE = "demo_site_tokens.json"
SILENT_FILE = "demo_silent_sites"


def seed_demo(org: Organization, *, settings: Settings) -> list[str]:
    """The demo-data hook: routing for the demo company; new site tokens go to ``instance/demo_site_tokens.json``
    so ``lifeline site demo-heartbeats`` (started by ``lifeline start``) can report the sites as alive."""
    summary = seed_routing(org, settings=settings)
    path = settings.instance_dir / TOKENS_FILE
    tokens: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if summary.site_tokens:
        tokens.update(summary.site_tokens)
        path.write_text(json.dumps(tokens, indent=2), encoding="utf-8")
        path.chmod(0o600)
    if not (summary.plans_added or summary.lines_added or summary.agents_added):
        return []
    return [
        f"routing: {summary.lines_added} inbound lines, {summary.plans_added} plans, "
        f"{summary.agents_added} site agents, {summary.home_agents_added} home agents"
    ]
