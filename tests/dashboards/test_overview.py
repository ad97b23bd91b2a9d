"""The overview page and its live numbers: who sees which block, scoped figures, the "everything normal" state,
blocks that fail or are missing, and figures equal to the parts' own."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from html.parser import HTMLParser
from itertools import pairwise
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from continuity import service as continuity_service
from continuity.routing import SiteState
from core import db
from core.auth.service import principal_for
from core.time import utcnow
from dashboards import queries
from incidents import care
from incidents import service as incident_service
from ivr import service as ivr_service
from reports import service as reports_service
from stockpile import service as stock_service
from tests.dashboards.conftest import World, answer, fresh, signed_in, start_broadcast
from tests.factories import make_staff

ALL_BLOCKS = {"broadcasts", "sites", "jma", "incidents", "stockpile", "drills"}
BLOCKS_OF = {
    "admin": ALL_BLOCKS,
    "crisis_manager": ALL_BLOCKS,
    "manager": {"broadcasts", "jma", "incidents", "drills"},
    "supervisor": {"sites", "incidents"},
    "facilities": {"stockpile"},
    "nobody": set(),
}


def blocks_on(html: str) -> set[str]:
    return set(re.findall(r'<section id="block-([a-z]+)"', html))


def block_html(html: str, key: str) -> str:
    match = re.search(rf'<section id="block-{key}".*?</section>', html, re.S)
    assert match, f"no {key} block"
    return match.group(0)


def live(client: FlaskClient) -> dict[str, Any]:
    response = fresh(client).get("/dashboard/live.json", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return dict(response.json)


def page(client: FlaskClient) -> str:
    response = fresh(client).get("/dashboard")
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.parametrize("role", sorted(BLOCKS_OF))
def test_each_role_sees_its_blocks_and_no_others(client: FlaskClient, world: World, role: str) -> None:
    start_broadcast(world)
    signed_in(client, world.users[role])
    html = page(client)
    assert blocks_on(html) == BLOCKS_OF[role]
    assert 'aria-current="page">Overview</a>' in html  # the navigation entry, for everyone signed in


def test_the_home_page_leads_to_the_overview(client: FlaskClient, world: World) -> None:
    signed_in(client, world.users["facilities"])
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/dashboard")


def test_signed_out_people_are_sent_to_sign_in_and_the_script_gets_a_401(
    client: FlaskClient, world: World
) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.get("/dashboard/live.json", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json["status"] == 401


def test_an_osaka_manager_sees_only_osaka_numbers(client: FlaskClient, world: World) -> None:
    broadcast = start_broadcast(world)
    tokyo, osaka = world.staff_at(world.tky), world.staff_at(world.osa)
    answer(broadcast, tokyo[0], safety="1")
    answer(broadcast, tokyo[1], safety="2")
    answer(broadcast, osaka[0], safety="3")
    care.sync_care_followups(broadcast.id)
    db.session.commit()

    signed_in(client, world.users["osaka_manager"])
    numbers = live(client)["values"]
    key = f"bc-{broadcast.id}"
    assert (numbers[f"{key}-recipients"], numbers[f"{key}-answered"]) == ("4", "1")
    assert numbers[f"{key}-g1"] == "0 (0%)"  # Tokyo's "safe" is not Osaka's
    assert numbers[f"{key}-g3"] == "1 (25%)"
    assert numbers[f"{key}-gnone"] == "3 (75%)"
    assert (numbers["care-open"], numbers["care-contacted"]) == (
        "1",
        "0",
    )  # Tokyo's injured person is not listed
    html = page(client)
    assert "1/2 (50%)" in block_html(html, "broadcasts")  # Osaka's Support: 1 of 2 answered
    assert "2/4" not in html

    other = client.application.test_client()
    signed_in(other, world.users["manager"])
    everyone = live(other)["values"]
    assert (everyone[f"{key}-recipients"], everyone[f"{key}-answered"]) == ("8", "3")
    assert everyone["care-open"] == "2"


def test_a_scoped_supervisor_sees_only_the_sites_and_lines_in_scope(
    client: FlaskClient, world: World
) -> None:
    signed_in(client, world.users["osaka_supervisor"])
    sites = block_html(page(client), "sites")
    assert "OSA" in sites and "TKY" not in sites
    assert "Support line" not in sites  # the line starts at Tokyo
    other = client.application.test_client()
    signed_in(other, world.users["supervisor"])
    sites = block_html(page(other), "sites")
    assert "OSA" in sites and "TKY" in sites and "Support line" in sites


def test_everything_normal_when_nothing_is_going_on(client: FlaskClient, world: World) -> None:
    signed_in(client, world.users["crisis_manager"])
    html = page(client)
    assert "Everything normal" in html and "Needs attention" not in html
    verdict = re.search(r'<section class="verdict ok".*?</section>', html, re.S)
    assert (
        verdict
        and "no safety broadcast running" in verdict.group(0)
        and "every site working normally" in verdict.group(0)
    )
    assert "No safety broadcast is running." in html and "No open incident." in html
    # The monthly contact check is routine: it is shown but does not spoil "everything normal".
    start_broadcast(world, template="contact_check")
    html = page(client)
    assert "Everything normal" in html and "Contact check" in html


def test_what_needs_attention_is_listed_and_links_to_its_block(client: FlaskClient, world: World) -> None:
    start_broadcast(world)
    continuity_service.declare_site_state(
        site=world.tky, state=SiteState.DOWN, reason="power cut", actor="test"
    )
    incident_service.declare_incident(
        organization_id=world.org.id, type="earthquake", severity="critical", title="Big one", actor="test"
    )
    db.session.commit()
    signed_in(client, world.users["crisis_manager"])
    html = page(client)
    assert "Everything normal" not in html
    verdict = re.search(r'<section class="verdict bad".*?</section>', html, re.S)
    assert verdict
    items = re.findall(r'<li><a href="#(block-\w+)">([^<]+)</a></li>', verdict.group(0))
    assert ("block-broadcasts", "Safety broadcasts running: 1") in items
    assert ("block-sites", "Sites not working normally: TKY") in items
    assert ("block-incidents", "Open incidents: 1") in items
    # A supervisor's verdict is about what a supervisor sees: no broadcast line.
    other = client.application.test_client()
    signed_in(other, world.users["supervisor"])
    assert "Safety broadcasts running" not in page(other)


def test_a_rerouted_site_shows_where_calls_go(client: FlaskClient, world: World) -> None:
    signed_in(client, world.users["supervisor"])
    line_id = continuity_service.lines_of(organization_id=world.org.id)[0].id
    before = live(client)
    assert before["values"][f"line-{line_id}-goes"] == "Agents at TKY"
    assert before["tones"][f"line-{line_id}-goes"] == "ok"
    continuity_service.declare_site_state(
        site=world.tky, state=SiteState.DOWN, reason="power cut", actor="test"
    )
    db.session.commit()
    after = live(client)
    assert after["values"][f"site-{world.tky.id}-state"] == "Down"
    assert after["tones"][f"site-{world.tky.id}-state"] == "bad"
    assert after["values"][f"site-{world.tky.id}-reason"] == "power cut"
    assert after["values"][f"line-{line_id}-goes"] == "Agents at OSA (another site)"
    assert after["tones"][f"line-{line_id}-goes"] == "warn"
    assert after["layout"] != before["layout"]  # the verdict changed: the page offers a reload


def test_live_figures_equal_the_parts_own_aggregates(client: FlaskClient, world: World) -> None:
    broadcast = start_broadcast(world)
    for person, value in zip(world.staff[:5], "11234", strict=True):
        answer(broadcast, person, safety=value)
    care.sync_care_followups(broadcast.id)
    drill = reports_service.create_drill(
        organization_id=world.org.id, type="tabletop", scenario="earthquake", title="Tabletop", actor="test"
    )
    today = utcnow().date()
    reports_service.add_action(
        drill=drill, title="Overdue thing", actor="test", due_on=today - timedelta(days=3)
    )
    reports_service.add_action(
        drill=drill, title="Later thing", actor="test", due_on=today + timedelta(days=30)
    )
    done = reports_service.add_action(drill=drill, title="Done thing", actor="test")
    reports_service.update_action(action=done, status="done", actor="test")
    db.session.commit()

    user = world.users["crisis_manager"]
    signed_in(client, user)
    figures = live(client)
    values, meters = figures["values"], figures["meters"]
    principal = principal_for(user)

    status = ivr_service.broadcast_status(broadcast_id=broadcast.id, principal=principal)
    key = f"bc-{broadcast.id}"
    assert values[f"{key}-recipients"] == str(status["recipients"])
    assert values[f"{key}-answered"] == str(status["answered"])
    assert values[f"{key}-unreached"] == str(status["unreached"])
    assert values[f"{key}-in-progress"] == str(status["in_progress"])
    for option, count in status["by_answer"]["safety"].items():
        assert meters[f"{key}-g{option}"] == [count, status["recipients"]]
    assert meters[f"{key}-gnone"] == [status["recipients"] - status["answered"], status["recipients"]]
    # The curve's last point is "now": everyone who has answered.
    assert queries.answered_by(broadcast_id=broadcast.id, principal=principal, edges=[utcnow()]) == [
        status["answered"]
    ]

    cases = care.list_cases(principal=principal)
    assert int(values["care-open"]) + int(values["care-contacted"]) == len(cases) == 2

    actions = reports_service.list_actions(organization_id=world.org.id, only_open=True)
    assert values["actions-open"] == str(len(actions)) == "2"
    assert values["actions-overdue"] == str(sum(reports_service.is_overdue(a, today) for a in actions)) == "1"

    statuses = stock_service.statuses_for(organization_id=world.org.id, site_ids=None)
    fully = sum(s.state == "ok" for s in statuses)
    assert values["stock-fully"] == f"{fully} of {len(statuses)}"


def test_every_live_figure_on_the_page_is_what_live_json_says(client: FlaskClient, world: World) -> None:
    broadcast = start_broadcast(world)
    answer(broadcast, world.staff[0], safety="1")
    signed_in(client, world.users["admin"])
    html = page(client)
    figures = live(client)
    printed = dict(re.findall(r'data-live="([\w-]+)"[^>]*>([^<]*)<', html))
    assert printed, "no live figure on the page"
    assert set(printed) - {"as-of"} == set(figures["values"]) - {"as-of"}
    for key, text in printed.items():
        if key != "as-of":
            assert text == figures["values"][key], key
    meters = dict(re.findall(r'data-live-meter="([\w-]+)" min="0" max="(\d+)"', html))
    assert set(meters) == set(figures["meters"])
    charts = set(re.findall(r'data-live-chart="([\w-]+)"', html))
    assert charts == set(figures["charts"]) == {f"bc-{broadcast.id}-curve", f"bc-{broadcast.id}-departments"}
    tones = set(re.findall(r'data-live-tone="([\w-]+)"', html))
    assert tones == set(figures["tones"])


def test_a_failing_part_makes_only_its_block_unavailable(
    client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kw: Any) -> Any:
        raise RuntimeError("stockpile database on fire")

    monkeypatch.setattr(stock_service, "statuses_for", broken)
    signed_in(client, world.users["crisis_manager"])
    with caplog.at_level(logging.ERROR, logger="dashboards.overview"):
        html = page(client)
    assert "Unavailable." in block_html(html, "stockpile")
    assert "the error has been logged" in block_html(html, "stockpile")
    assert "Unavailable." not in block_html(html, "sites")
    assert "Everything normal" in html  # the stockpile is not part of the verdict
    assert any("overview block stockpile failed" in r.getMessage() for r in caplog.records)
    assert "stockpile database on fire" in caplog.text
    assert live(client)["values"]["actions-open"] == "0"  # the other blocks still answer in live.json


def test_a_failing_watched_block_means_the_verdict_is_unknown(
    client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kw: Any) -> Any:
        raise RuntimeError("no board")

    monkeypatch.setattr(continuity_service, "board", broken)
    signed_in(client, world.users["crisis_manager"])
    html = page(client)
    assert "Everything normal" not in html
    assert "Some information is unavailable" in html
    assert "Unavailable." in block_html(html, "sites")


def test_a_part_that_is_not_installed_shows_as_unavailable(
    client: FlaskClient, world: World, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [p for p in app.extensions["lifeline.parts"] if p != "reports"]
    monkeypatch.setitem(app.extensions, "lifeline.parts", parts)
    signed_in(client, world.users["manager"])
    html = page(client)
    assert "This part is not installed on this server." in block_html(html, "drills")
    assert "actions-open" not in live(client)["values"]


class _Collect(HTMLParser):
    URL_ATTRIBUTES = frozenset(
        {"href", "src", "action", "formaction", "poster", "data", "xlink:href", "srcset"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.scripts: list[str] = []
        self.styles = 0
        self.handlers: list[str] = []
        self.style_attributes = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name, value in attrs:
            if name in self.URL_ATTRIBUTES and value is not None:
                self.urls.append(value)
            if name.startswith("on"):
                self.handlers.append(name)
            if name == "style":
                self.style_attributes += 1
        if tag == "script":
            self._in_script = True
            if attributes.get("src"):
                self.scripts.append(str(attributes["src"]))
        if tag == "style":
            self.styles += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def test_no_external_urls_no_inline_script_no_inline_style(client: FlaskClient, world: World) -> None:
    broadcast = start_broadcast(world)
    answer(broadcast, world.staff[0], safety="1")
    continuity_service.declare_site_state(site=world.tky, state=SiteState.DOWN, reason="test", actor="test")
    db.session.commit()
    signed_in(client, world.users["admin"])
    response = client.get("/dashboard")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    seen = _Collect()
    seen.feed(response.text)
    charts = _Collect()
    charts.feed("".join(live(client)["charts"].values()))
    for found in (seen, charts):
        assert found.inline_scripts == 0
        assert found.handlers == []
        assert found.styles == 0 and found.style_attributes == 0
        external = [u for u in found.urls if not re.match(r"^(/(?!/)|#|\?)", u) and not u.startswith("url(#")]
        assert external == []
    assert seen.scripts == ["/dashboard/static/live.js"]
    script = client.get("/dashboard/static/live.js")
    assert script.status_code == 200 and "http" not in script.text and "eval(" not in script.text
    styles = client.get("/dashboard/static/dashboard.css")
    assert styles.status_code == 200 and "@import" not in styles.text and "http" not in styles.text


def test_the_overview_in_japanese(client: FlaskClient, world: World) -> None:
    start_broadcast(world)
    user = world.users["crisis_manager"]
    user.language = "ja"
    db.session.commit()
    signed_in(client, user)
    html = page(client)
    assert '<html lang="ja">' in html
    for text in (
        "概況",
        "対応が必要です",
        "実施中の安否確認",
        "拠点と回線",
        "未回答",
        "回答の推移",
        "受付中",
    ):
        assert text in html, text
    for english in ("Needs attention", "No answer yet", "Answers over time", "Sites and lines", "Open now"):
        assert english not in html, english
    assert "無事" in html  # the template's own Japanese option label
    numbers = live(client)["values"]
    assert numbers[f"site-{world.tky.id}-state"] == "通常"


def test_the_overview_costs_the_same_queries_for_8_or_48_people(client: FlaskClient, world: World) -> None:
    broadcast = start_broadcast(world)
    answer(broadcast, world.staff[0], safety="1")
    signed_in(client, world.users["admin"])
    statements: list[str] = []

    @event.listens_for(db.get_engine(), "before_cursor_execute")
    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    try:
        live(client)  # warm-up: the stockpile seeds its catalogue on first use
        statements.clear()
        live(client)
        small = len(statements)
        for n in range(40):
            make_staff(
                world.org,
                site=world.tky if n % 2 else world.osa,
                department=world.sales if n % 3 else world.support,
                phone=f"+8190000006{n:02d}",
            )
        db.session.commit()
        ivr_service.widen_broadcast(broadcast_id=broadcast.id, audience={"everyone": True}, actor="test")
        db.session.commit()
        for person in world.staff[1:6]:
            answer(broadcast, person, safety="2")
        statements.clear()
        figures = live(client)
        large = len(statements)
    finally:
        event.remove(db.get_engine(), "before_cursor_execute", count)
    assert figures["values"][f"bc-{broadcast.id}-recipients"] == "48"
    assert large == small, json.dumps(statements[:5])


def test_headings_go_down_one_level_at_a_time_and_the_page_has_landmarks(
    client: FlaskClient, world: World
) -> None:
    broadcast = start_broadcast(world)
    answer(broadcast, world.staff[0], safety="1")
    reports_service.create_drill(
        organization_id=world.org.id,
        type="tabletop",
        scenario="fire",
        title="Fire drill",
        actor="test",
        planned_start_at=utcnow() + timedelta(days=2),
    )
    db.session.commit()
    signed_in(client, world.users["admin"])
    html = page(client)
    levels = [int(n) for n in re.findall(r"<h([1-6])[\s>]", html)]
    assert levels[0] == 1 and levels.count(1) == 1
    jumps = [(a, b) for a, b in pairwise(levels) if b > a + 1]
    assert jumps == []
    assert '<main id="main"' in html and "<nav " in html and "<header " in html
    # Every block is a region named by its heading; every meter is named by its label.
    for key in ALL_BLOCKS:
        assert (
            f'<section id="block-{key}" class="block' in html
            and f'aria-labelledby="block-{key}-title"' in html
        )
    meters = re.findall(r'<meter [^>]*aria-labelledby="([\w-]+)"', html)
    assert meters and all(f'id="{label}"' in html for label in meters)
    assert html.count('aria-live="polite"') >= 3


def test_more_running_broadcasts_than_shown_are_pointed_to(
    client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboards import overview

    monkeypatch.setattr(overview, "MAX_BROADCASTS", 1)
    older = start_broadcast(world, now=utcnow() - timedelta(minutes=20))
    newer = start_broadcast(world)
    signed_in(client, world.users["crisis_manager"])
    broadcasts = block_html(page(client), "broadcasts")
    assert f'id="bc-{newer.id}-title"' in broadcasts and f'id="bc-{older.id}-title"' not in broadcasts
    assert "More broadcasts are running: see the broadcast list" in broadcasts
