"""The overview's own SQL aggregates, the JMA block on a genuine bulletin, and the roles of each block (the same as
the parts' own pages admit)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from continuity import views as continuity_views
from core import db
from core.auth.models import Role
from core.auth.service import principal_for
from core.time import utcnow
from dashboards import overview, queries
from incidents import care
from incidents import service as incident_service
from ivr import service as ivr_service
from ivr import views as ivr_views
from ivr.jma import service as jma_service
from ivr.jma import views as jma_views
from ivr.models import Recipient
from reports import service as reports_service
from stockpile import views as stockpile_views
from tests.dashboards.conftest import World, fresh, signed_in, start_broadcast

JMA_SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "jma"


def test_answered_by_counts_people_by_their_first_answer_and_respects_scope(world: World) -> None:
    start = utcnow().replace(microsecond=0) - timedelta(minutes=30)
    broadcast = start_broadcast(world, now=start)
    tokyo, osaka = world.staff_at(world.tky), world.staff_at(world.osa)

    def answer_at(person: Any, minutes: int, value: str) -> None:
        recipient = db.session.query(Recipient).filter_by(broadcast_id=broadcast.id, staff_id=person.id).one()
        ivr_service.record_answers(
            recipient=recipient,
            answers={"safety": value},
            channel="web",
            now=start + timedelta(minutes=minutes),
        )

    answer_at(tokyo[0], 2, "1")
    answer_at(tokyo[1], 5, "1")
    answer_at(osaka[0], 12, "2")
    answer_at(tokyo[0], 20, "3")  # a changed answer: the person does not count twice, nor later
    db.session.commit()
    edges = [start + timedelta(minutes=m) for m in (0, 3, 10, 15, 30)]
    everyone = principal_for(world.users["manager"])
    osaka_only = principal_for(world.users["osaka_manager"])
    assert queries.answered_by(broadcast_id=broadcast.id, principal=everyone, edges=edges) == [0, 1, 2, 3, 3]
    assert queries.answered_by(broadcast_id=broadcast.id, principal=osaka_only, edges=edges) == [
        0,
        0,
        0,
        1,
        1,
    ]
    assert queries.answered_by(broadcast_id=broadcast.id, principal=everyone, edges=[]) == []


def test_running_broadcasts_are_those_still_taking_answers(world: World) -> None:
    first = start_broadcast(world, now=utcnow() - timedelta(hours=2))
    second = start_broadcast(world, now=utcnow() - timedelta(hours=1))
    ivr_service.close_broadcast(broadcast_id=first.id, organization_id=world.org.id, actor="test")
    db.session.commit()
    running = queries.running_broadcasts(organization_id=world.org.id, limit=5)
    assert [r.id for r in running] == [second.id]


def test_open_actions_and_the_next_drill(world: World) -> None:
    now = utcnow()
    today = now.date()
    past = reports_service.create_drill(
        organization_id=world.org.id,
        type="tabletop",
        scenario="earthquake",
        title="Last spring",
        actor="test",
        planned_start_at=now - timedelta(days=90),
    )
    later = reports_service.create_drill(
        organization_id=world.org.id,
        type="relocation",
        scenario="earthquake",
        title="Move to Osaka",
        actor="test",
        planned_start_at=now + timedelta(days=40),
    )
    soon = reports_service.create_drill(
        organization_id=world.org.id,
        type="notification_test",
        scenario="typhoon",
        title="Typhoon test",
        actor="test",
        planned_start_at=now + timedelta(days=5),
    )
    cancelled = reports_service.create_drill(
        organization_id=world.org.id,
        type="tabletop",
        scenario="fire",
        title="Called off",
        actor="test",
        planned_start_at=now + timedelta(days=1),
    )
    reports_service.cancel_drill(drill=cancelled, actor="test")
    for title, due in (
        ("No date", None),
        ("Late", today - timedelta(days=1)),
        ("Next week", today + timedelta(days=7)),
    ):
        reports_service.add_action(drill=past, title=title, actor="test", due_on=due)
    closed = reports_service.add_action(
        drill=past, title="Closed", actor="test", due_on=today - timedelta(days=9)
    )
    reports_service.update_action(action=closed, status="done", actor="test")
    db.session.commit()

    summary = queries.open_actions(organization_id=world.org.id, today=today, limit=2)
    assert (summary.open, summary.overdue) == (3, 1)
    assert [(a.title, a.overdue, a.drill_id) for a in summary.soonest] == [
        ("Late", True, past.id),
        ("Next week", False, past.id),
    ]
    upcoming = queries.next_drill(organization_id=world.org.id, now=now)
    assert upcoming is not None and (upcoming.id, upcoming.type) == (soon.id, "notification_test")
    assert later.id != upcoming.id
    reports_service.start_drill(drill=later, actor="test")
    db.session.commit()
    assert [d.id for d in queries.drills_in_progress(organization_id=world.org.id)] == [later.id]


def test_the_jma_block_shows_a_genuine_bulletin_and_what_was_decided(
    client: FlaskClient, world: World
) -> None:
    data = (JMA_SAMPLES / "32-39_11_01_120615_VXSE51.xml").read_bytes()  # 震度速報, 2011-03-11, max 6+
    row, decisions = jma_service.replay_bulletin(
        data=data, name="replay", now=utcnow(), organization_ids=[world.org.id]
    )
    db.session.commit()
    assert decisions, "the sample must lead to at least one decision for an organization with a Tokyo site"
    signed_in(client, world.users["manager"])
    html = fresh(client).get("/dashboard").text
    block = re.search(r'<section id="block-jma".*?</section>', html, re.S)
    assert block
    assert f'href="/jma/bulletins/{row.id}"' in block.group(0)
    for decision in decisions:
        assert overview.JMA_ACTION_LABELS[decision.action] in block.group(0)
    sending = {d.action for d in decisions} & set(queries.JMA_SENDING_ACTIONS)
    assert ("JMA bulletins that sent a broadcast in the last 24 hours" in html) == bool(sending)
    assert queries.jma_sending_decisions(
        organization_id=world.org.id, since=utcnow() - timedelta(hours=1)
    ) == len([d for d in decisions if d.action in queries.JMA_SENDING_ACTIONS])


def test_each_block_admits_the_roles_its_part_admits() -> None:
    assert set(overview.BROADCAST_ROLES) == set(ivr_views.READ) == set(ivr_service.VIEW_ROLES)
    assert set(queries.ANSWER_ROLES) == set(ivr_service.VIEW_ROLES)
    assert set(overview.SITE_ROLES) == set(continuity_views.READERS)
    assert set(overview.JMA_ROLES) == set(jma_views.READ)
    assert set(overview.INCIDENT_ROLES) == set(incident_service.VIEW_ROLES)
    assert set(overview.CARE_ROLES) == set(queries.CARE_ROLES) == set(care.CARE_ROLES)
    assert set(overview.STOCK_ROLES) == set(stockpile_views.READ_ROLES)
    assert set(overview.DRILL_ROLES) == set(reports_service.READ_ROLES)
    assert Role.ADMIN not in overview.START_ROLES  # admins pass every role check anyway
