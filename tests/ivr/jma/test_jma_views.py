"""The JMA page: who sees it, what it shows, the rules form with its errors, and "send now" / "cancel"."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.models import Role
from core.time import utcnow
from ivr.jma import service
from ivr.jma.models import FeedState, HeldState, HeldTrigger
from tests.factories import csrf_from, login, make_user, post_form
from tests.ivr.jma.support import Org, broadcasts_of, intensity_report, recipients_of, sample

EVENT = "20300401100000"


@pytest.fixture()
def browser(jma: Any, org: Org, client: FlaskClient) -> FlaskClient:
    login(client, org.crisis_manager)
    return client


def hold(org: Org, minutes: int = 5) -> HeldTrigger:
    document = service.default_rules(organization_id=org.org.id).to_dict() | {"hold_minutes": minutes}
    service.save_rules(
        organization_id=org.org.id,
        document=document,
        enabled=True,
        emergency_min_intensity=None,
        actor="test",
    )
    service.replay_bulletin(
        data=intensity_report(EVENT, {"27": "6-"}), name="q.xml", now=utcnow(), organization_ids=[org.org.id]
    )
    return db.session.scalars(select(HeldTrigger).where(HeldTrigger.organization_id == org.org.id)).one()


def reload(trigger: HeldTrigger) -> HeldTrigger:
    """Requests end their session; read the row again as it is now."""
    fresh = db.session.get(HeldTrigger, trigger.id)
    assert fresh is not None
    return fresh


def test_page_shows_feed_health_bulletins_decisions_and_rules(browser: FlaskClient, org: Org) -> None:
    db.session.add(
        FeedState(
            feed="eqvol",
            url="http://127.0.0.1:9/feed/eqvol.xml",
            consecutive_failures=4,
            last_error="HTTP 500",
        )
    )
    service.replay_bulletin(
        data=sample("15_14_01_170216_VPWW53.xml"),
        name="rain.xml",
        now=utcnow(),
        organization_ids=[org.org.id],
    )
    service.replay_bulletin(
        data=sample("54_01_01_100514_VXSE42.xml"),
        name="test.xml",
        now=utcnow(),
        organization_ids=[org.org.id],
    )

    page = browser.get("/jma?lang=en")

    assert page.status_code == 200
    text = page.text
    assert "eqvol" in text and "Failing" in text and "HTTP 500" in text
    assert "気象特別警報・警報・注意報" in text
    assert (
        "Started" in text
        and "heavy_rain" in text
        and "大雨特別警報 in 新宿区 (1310400) where site TKY is" in text
    )
    (broadcast,) = broadcasts_of(org.org)
    assert f"/broadcasts/{broadcast.id}" in text
    assert "Nothing sent" in text and "試験 (test) bulletins never trigger" in text
    assert 'name="intensity_rules"' in text and "Save rules" in text


def test_manager_reads_but_cannot_change(jma: Any, org: Org, client: FlaskClient) -> None:
    manager = make_user(org.org, Role.MANAGER)
    login(client, manager)
    page = client.get("/jma?lang=en")
    assert page.status_code == 200
    assert "Save rules" not in page.text
    response = client.post("/jma/rules", data={"csrf_token": csrf_from(page.text), "hold_minutes": "3"})
    assert response.status_code == 403
    assert service.rules_row(organization_id=org.org.id) is None


@pytest.mark.parametrize("roles", [(Role.FACILITIES,), (Role.SUPERVISOR,)])
def test_other_roles_are_refused(jma: Any, org: Org, client: FlaskClient, roles: tuple[Role, ...]) -> None:
    login(client, make_user(org.org, *roles))
    assert client.get("/jma").status_code == 403


def test_anonymous_is_sent_to_sign_in(jma: Any, client: FlaskClient) -> None:
    response = client.get("/jma")
    assert response.status_code in (302, 401)


def test_scoped_crisis_manager_cannot_change_rules(jma: Any, org: Org, client: FlaskClient) -> None:
    scoped = make_user(org.org, Role.CRISIS_MANAGER, sites=[org.sites["OSA"]])
    login(client, scoped)
    page = client.get("/jma?lang=en")
    assert page.status_code == 200 and "Save rules" not in page.text
    response = client.post("/jma/rules", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 403


def _form(org: Org, **changes: str) -> dict[str, str]:
    ruleset = service.default_rules(organization_id=org.org.id).to_dict()
    form = {
        "enabled": "on",
        "hold_minutes": "2",
        "aftershock_window_hours": "12",
        "emergency_min_intensity": "6-",
        **{name: json.dumps(ruleset[name], ensure_ascii=False) for name in service_lists()},
    }
    form.update(changes)
    return form


def service_lists() -> tuple[str, ...]:
    return ("intensity_rules", "tsunami_rules", "warning_rules")


def test_crisis_manager_saves_the_rules(browser: FlaskClient, org: Org) -> None:
    response = post_form(browser, "/jma", "/jma/rules", **_form(org, allow_drill="on"))
    assert response.status_code == 302
    row = service.rules_row(organization_id=org.org.id)
    assert row is not None and row.enabled and row.emergency_min_intensity == "6-"
    ruleset = service.ruleset_for(organization_id=org.org.id)
    assert (ruleset.hold_minutes, ruleset.aftershock_window_hours, ruleset.allow_drill) == (2, 12.0, True)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"hold_minutes": "11"}, "hold_minutes", "hold_minutes: must be between 0 and 10"),
        ({"hold_minutes": "soon"}, "hold_minutes", "hold_minutes: must be a whole number"),
        (
            {"aftershock_window_hours": "-1"},
            "aftershock_window_hours",
            "aftershock_window_hours: must be between",
        ),
        (
            {"intensity_rules": '[{"min_intensity": "5-", "scope": "city", "template": "earthquake"}]'},
            "intensity_rules",
            "intensity_rules[0].scope: &#39;city&#39; is not one of",
        ),
        (
            {"warning_rules": '[{"kind_contains": "特別警報"'},
            "warning_rules",
            "warning_rules: not valid JSON",
        ),
        (
            {"warning_rules": '[{"kind_contains": "特別警報", "template": "typhoon"}]'},
            "warning_rules",
            "warning_rules[0].template: the organization has no template &#39;typhoon&#39;",
        ),
        (
            {
                "tsunami_rules": '[{"kinds": ["津波警報"], "site_areas": {"ZZZ": ["312"]}, "template": "tsunami"}]'
            },
            "tsunami_rules",
            "tsunami_rules[0].site_areas.ZZZ: there is no site with code",
        ),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(
    browser: FlaskClient, org: Org, changes: dict[str, str], field: str, message: str
) -> None:
    response = post_form(browser, "/jma", "/jma/rules", **_form(org, **changes))
    assert response.status_code == 400
    assert f'id="err-{field}"' in response.text
    assert message in response.text
    assert service.rules_row(organization_id=org.org.id) is None


def test_reset_brings_the_defaults_back(browser: FlaskClient, org: Org) -> None:
    post_form(browser, "/jma", "/jma/rules", **_form(org, warning_rules="[]"))
    assert service.ruleset_for(organization_id=org.org.id).warning_rules == ()
    response = post_form(browser, "/jma", "/jma/rules/reset")
    assert response.status_code == 302
    assert service.ruleset_for(organization_id=org.org.id) == service.default_rules(
        organization_id=org.org.id
    )


def test_held_broadcast_shows_a_countdown_and_can_be_sent_now(browser: FlaskClient, org: Org) -> None:
    trigger = hold(org)
    page = browser.get("/jma?lang=en")
    assert "data-countdown=" in page.text and "Send now" in page.text
    assert 'src="/jma/static/countdown.js"' in page.text
    assert browser.get("/jma/static/countdown.js").status_code == 200

    response = post_form(browser, "/jma", f"/jma/held/{trigger.id}/send-now")

    assert response.status_code == 302
    trigger = reload(trigger)
    assert trigger.state is HeldState.RELEASED and trigger.resolved_by == org.crisis_manager.email
    (broadcast,) = broadcasts_of(org.org)
    assert set(recipients_of(broadcast)) == org.people(site_prefectures=["27"], homes=["27"])
    again = post_form(browser, "/jma", f"/jma/held/{trigger.id}/send-now")
    assert again.status_code == 302
    assert len(broadcasts_of(org.org)) == 1


def test_held_broadcast_can_be_cancelled(browser: FlaskClient, org: Org) -> None:
    trigger = hold(org)
    response = post_form(
        browser, "/jma", f"/jma/held/{trigger.id}/cancel", reason="a drill at the Osaka site"
    )
    assert response.status_code == 302
    trigger = reload(trigger)
    assert trigger.state is HeldState.CANCELLED
    assert trigger.resolution == "a drill at the Osaka site"
    assert broadcasts_of(org.org) == []
    assert service.release_due(now=utcnow() + timedelta(minutes=10)) == []
    page = browser.get("/jma?lang=en")
    assert "Nothing is on hold." in page.text and "a drill at the Osaka site" in page.text


def test_holds_of_another_organization_cannot_be_touched(jma: Any, org: Org, client: FlaskClient) -> None:
    from tests.ivr.jma.support import build_org

    trigger = hold(org)
    other = build_org(with_chiba=False)
    login(client, other.crisis_manager)
    response = post_form(client, "/jma", f"/jma/held/{trigger.id}/cancel")
    assert response.status_code == 302
    trigger = reload(trigger)
    assert trigger.state is HeldState.WAITING


def test_bulletin_page_shows_the_normalised_document(browser: FlaskClient, org: Org) -> None:
    row, _ = service.replay_bulletin(
        data=sample("32-39_11_01_120615_VXSE51.xml"),
        name="t.xml",
        now=utcnow(),
        organization_ids=[org.org.id],
    )
    page = browser.get(f"/jma/bulletins/{row.id}?lang=en")
    assert page.status_code == 200
    assert "earthquake:20110311144640" in page.text and "宮城県" in page.text and row.sha256 in page.text
    assert browser.get("/jma/bulletins/999999").status_code == 404


def test_japanese_page(browser: FlaskClient, org: Org) -> None:
    page = browser.get("/jma?lang=ja")
    assert "気象庁情報による自動発信" in page.text
