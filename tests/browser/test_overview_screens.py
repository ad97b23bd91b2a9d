"""The overview on a desktop and on a phone, in a busy moment: a broadcast with answers, Tokyo down, an
incident, a drill coming up. Screenshots of both go to test-artifacts/ for people to look at."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from continuity import service as continuity_service
from continuity.routing import SiteState
from core import db
from core.directory.models import Site, Staff
from core.time import utcnow
from incidents import service as incident_service
from ivr import service as ivr_service
from ivr.jma import service as jma_service
from ivr.models import Recipient
from reports import service as reports_service
from tests.browser.conftest import ARTIFACTS, PHONE, Center, seed, sign_in

pytestmark = pytest.mark.browser

JMA_SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "jma"


def busy_moment(app: Any, center: Center) -> None:
    now = utcnow()
    with app.app_context():
        started = now - timedelta(minutes=7)
        broadcast = ivr_service.start_broadcast(
            organization_id=center.org_id,
            template="earthquake",
            audience={"everyone": True},
            mode="drill",
            actor="test",
            now=started,
        )
        recipients = {
            r.staff_id: r for r in db.session.query(Recipient).filter_by(broadcast_id=broadcast.id).all()
        }
        for n, (staff_id, answers) in enumerate(
            zip(
                center.staff,
                [{"safety": "1"}, {"safety": "1"}, {"safety": "2"}, {"safety": "3"}],
                strict=False,
            )
        ):
            ivr_service.record_answers(
                recipient=recipients[staff_id],
                answers=answers,
                channel="web",
                now=started + timedelta(minutes=1 + n),
            )
        tky = db.session.get(Site, center.sites["TKY"])
        assert tky is not None
        continuity_service.declare_site_state(
            site=tky, state=SiteState.DOWN, reason="power cut", actor="test"
        )
        incident_service.declare_incident(
            organization_id=center.org_id,
            type="earthquake",
            severity="major",
            title="Earthquake in Tokyo",
            actor="test",
        )
        drill = reports_service.create_drill(
            organization_id=center.org_id,
            type="notification_test",
            scenario="earthquake",
            title="Autumn notification test",
            actor="test",
            planned_start_at=now + timedelta(days=9),
        )
        reports_service.add_action(
            drill=drill,
            title="Check the Osaka call tree",
            actor="test",
            due_on=(now - timedelta(days=2)).date(),
        )
        assert db.session.query(Staff).count() >= 4
        jma_service.replay_bulletin(
            data=(JMA_SAMPLES / "32-39_11_01_120615_VXSE51.xml").read_bytes(),
            name="replay",
            now=now,
            organization_ids=[center.org_id],
        )
        db.session.commit()
        db.session.remove()


def test_overview_on_desktop_and_phone_in_both_languages(
    live_app: Any, tabs: Any, page: Any, phone: Any
) -> None:
    center = seed(live_app.app, people=8)
    busy_moment(live_app.app, center)
    ARTIFACTS.mkdir(exist_ok=True)
    phone_ja = tabs.open(PHONE, is_mobile=True, has_touch=True, device_scale_factor=2, locale="ja-JP")
    for tab, name, heading in (
        (page, "desktop", "Needs attention"),
        (phone, "phone", "Needs attention"),
        (phone_ja, "phone-ja", "対応が必要です"),
    ):
        sign_in(tab, live_app.url, center.emails["crisis_manager"])
        if name.endswith("-ja"):
            tab.goto(f"{live_app.url}/dashboard?lang=ja")
        assert tab.get_by_role("heading", name=heading).is_visible()
        tab.screenshot(path=str(ARTIFACTS / f"overview-{name}.png"), full_page=True)
        # Nothing is wider than the screen: no sideways scrolling on a phone.
        overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name}: the page is {overflow} px wider than the screen"
