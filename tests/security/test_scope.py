"""A user limited to one site never sees, nor changes, anything outside it (PRODUCT §1) — here for the people and
broadcasts of the directory and the safety calls."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select

from core import db
from core.directory.models import Staff
from ivr import service
from ivr.models import Broadcast, Recipient
from tests.factories import csrf_from
from tests.security.conftest import Installation, signed_in


def _people(world: Installation, site_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Staff)
            .where(Staff.organization_id == world.org.id, Staff.site_id == site_id)
        )
        or 0
    )


def _start(client: Any, **form: Any) -> Any:
    page = client.get("/broadcasts/new")
    return client.post(
        "/broadcasts/new",
        data={"csrf_token": csrf_from(page.text), "template": "earthquake", "mode": "drill", **form},
    )


def test_a_site_scoped_crisis_manager_starts_broadcasts_for_their_site_only(
    app: Flask, installation: Installation
) -> None:
    world = installation
    scoped = signed_in(app, world, "scoped")
    before = db.session.scalar(select(func.count()).select_from(Broadcast))
    everyone = _start(scoped, audience="all")
    assert everyone.status_code == 403
    assert "outside the sites and departments you are responsible for" in everyone.text
    other_site = _start(scoped, audience="sites", sites=[world.site_b.code])
    assert other_site.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Broadcast)) == before
    own_site = _start(scoped, audience="sites", sites=[world.site_a.code])
    assert own_site.status_code == 302
    newest = db.session.scalar(select(Broadcast).order_by(Broadcast.id.desc()).limit(1))
    assert newest is not None
    recipients = db.session.scalar(
        select(func.count()).select_from(Recipient).where(Recipient.broadcast_id == newest.id)
    )
    assert recipients == _people(world, world.site_a.id)


def test_a_broadcast_reaching_other_sites_is_read_within_scope_and_not_changed(
    app: Flask, installation: Installation
) -> None:
    world = installation
    scoped = signed_in(app, world, "scoped")
    everyone = world.broadcast_id  # the whole organization (conftest)
    status = scoped.get(f"/broadcasts/{everyone}/status.json").get_json()
    assert status["recipients"] == _people(world, world.site_a.id)  # counts of their own people only
    token = csrf_from(scoped.get(f"/broadcasts/{everyone}").text)
    for action in ("close", "resend", "message"):
        assert scoped.post(f"/broadcasts/{everyone}/{action}", data={"csrf_token": token}).status_code == 403
    assert service.get_broadcast(broadcast_id=everyone).state.value == "sending"
    # An organization-wide crisis manager may.
    crisis = signed_in(app, world, "crisis_manager")
    token = csrf_from(crisis.get(f"/broadcasts/{everyone}").text)
    assert crisis.post(f"/broadcasts/{everyone}/close", data={"csrf_token": token}).status_code == 302
    assert service.get_broadcast(broadcast_id=everyone).state.value == "closed"


def test_templates_are_changed_by_organization_wide_crisis_managers_only(
    app: Flask, installation: Installation
) -> None:
    scoped = signed_in(app, installation, "scoped")
    page = scoped.get("/broadcasts/templates")
    assert page.status_code == 200  # reading them is fine
    refused = scoped.post(
        "/broadcasts/templates", data={"csrf_token": csrf_from(page.text), "definition": "{}"}
    )
    assert refused.status_code == 403


def test_people_of_other_sites_are_not_there_for_a_scoped_user(
    app: Flask, installation: Installation
) -> None:
    world = installation
    elsewhere = db.session.execute(
        select(Staff.id, Staff.employee_id, Staff.name).where(Staff.site_id == world.site_b.id).limit(1)
    ).one()
    here = db.session.execute(select(Staff.id).where(Staff.site_id == world.site_a.id).limit(1)).one()
    scoped = signed_in(app, world, "scoped")
    assert scoped.get(f"/staff/{elsewhere.id}").status_code == 404  # not 403: they learn nothing
    assert scoped.get(f"/staff/{here.id}").status_code == 200
    listing = scoped.get(f"/staff?q={elsewhere.employee_id}")
    assert (
        listing.status_code == 200 and elsewhere.name not in listing.text
    )  # no row (the box keeps the query)
