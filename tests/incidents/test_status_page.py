"""The public status page: anonymous, tiny, cacheable, one row; edited by crisis managers and supervisors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import event

from core import db
from incidents import status
from tests.factories import login, make_user, post_form
from tests.incidents.conftest import World


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _page(world: World) -> status.StatusPage:
    page = status.ensure_status_page(organization_id=world.org.id)
    status.forget(world.org.slug)
    return page


def test_anonymous_visitors_get_a_tiny_cacheable_page_from_one_row(
    app: Any, client: FlaskClient, world: World
) -> None:
    _page(world)
    with statements() as seen:
        response = client.get(f"/status/{world.org.slug}")
    assert response.status_code == 200
    text = response.text
    # Both languages at once, the default announcement, one entry per site.
    assert "通常営業中" in text and "We are open as usual." in text
    assert "東京本社" in text and "Osaka center" in text
    assert "Demo Co." in text
    # Light: no script, nothing loaded from elsewhere, a few kilobytes.
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert len(response.data) < 4000
    # Caches may keep it for half a minute.
    assert response.headers["Cache-Control"] == "public, max-age=30"
    assert response.headers.get("ETag") and response.headers.get("Last-Modified")
    # One query, on one table, without a join.
    queries = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 1 and "incident_status_pages" in queries[0] and "JOIN" not in queries[0].upper()
    # A second visitor within a few seconds is answered from memory.
    with statements() as seen_again:
        assert client.get(f"/status/{world.org.slug}").status_code == 200
    assert not [s for s in seen_again if "incident_status_pages" in s]
    # A browser revalidating with the ETag gets a 304.
    etag = response.headers["ETag"]
    assert client.get(f"/status/{world.org.slug}", headers={"If-None-Match": etag}).status_code == 304


def test_json_variant(client: FlaskClient, world: World) -> None:
    _page(world)
    response = client.get(f"/status/{world.org.slug}.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=30"
    data = response.get_json()
    assert data["organization"] == "Demo Co."
    assert data["overall"] == "normal"
    assert data["announcement"] == {"ja": "通常営業中", "en": "We are open as usual."}
    assert [(s["name"]["ja"], s["state"]) for s in data["services"]] == [
        ("大阪センター", "normal"),
        ("東京本社", "normal"),
    ]


def test_unknown_organization_is_404(client: FlaskClient, world: World) -> None:
    assert client.get("/status/no-such-org").status_code == 404
    assert client.get("/status/no-such-org.json").status_code == 404


def _form(page: status.StatusPage, **states: str) -> dict[str, str]:
    data: dict[str, str] = {}
    keys = []
    for index, entry in enumerate(page.entries):
        keys.append(entry["key"])
        data[f"label_ja_{index}"] = entry["label_ja"]
        data[f"label_en_{index}"] = entry["label_en"]
        data[f"state_{index}"] = states.get(entry["key"], entry["state"])
    data["key"] = keys  # type: ignore[assignment]
    return data


def test_an_edit_shows_at_once_on_the_public_page(client: FlaskClient, world: World) -> None:
    page = _page(world)
    assert client.get(f"/status/{world.org.slug}").status_code == 200  # now cached
    login(client, world.crisis)
    osaka_key = next(e["key"] for e in page.entries if e["site_id"] == world.osaka.id)
    data = _form(page, **{osaka_key: "outage"})
    data.update(
        announcement_ja="大阪センターは停止中です。東京で受付中。",
        announcement_en="Osaka is down; Tokyo takes your calls.",
    )
    response = post_form(client, "/incidents/status-page", **data)
    assert response.status_code == 302
    public = client.get(f"/status/{world.org.slug}")
    assert "大阪センターは停止中です。東京で受付中。" in public.text
    assert "Osaka is down; Tokyo takes your calls." in public.text
    assert public.headers["ETag"] != ""
    data = client.get(f"/status/{world.org.slug}.json").get_json()
    assert data["overall"] == "outage"
    assert {s["name"]["ja"]: s["state"] for s in data["services"]}["大阪センター"] == "outage"


def test_an_edit_can_add_and_remove_services(client: FlaskClient, world: World) -> None:
    page = _page(world)
    login(client, world.supervisor)
    data = _form(page)
    n = len(page.entries)
    data["key"] = [*data["key"], ""]  # type: ignore[list-item]
    data.update(
        {
            f"label_ja_{n}": "ウェブ受付",
            f"label_en_{n}": "Web form",
            f"state_{n}": "degraded",
            "remove_0": "1",
        }
    )
    assert post_form(client, "/incidents/status-page", **data).status_code == 302
    services = client.get(f"/status/{world.org.slug}.json").get_json()["services"]
    assert [(s["name"]["en"], s["state"]) for s in services] == [
        ("Tokyo head office", "normal"),
        ("Web form", "degraded"),
    ]


def test_a_site_scoped_supervisor_changes_only_their_own_site(world: World) -> None:
    from core.auth.models import Role
    from core.auth.service import principal_for
    from core.errors import Forbidden

    page = _page(world)
    osaka_supervisor = make_user(world.org, Role.SUPERVISOR, sites=[world.osaka])
    principal = principal_for(osaka_supervisor)
    entries = {e["site_id"]: e for e in page.entries}

    def change(site_state: dict[int, str], **kw: Any) -> None:
        status.update_status_page(
            principal=principal,
            changes=[
                status.EntryChange(
                    key=e["key"],
                    label_ja=e["label_ja"],
                    label_en=e["label_en"],
                    state=site_state.get(sid, e["state"]),
                )
                for sid, e in entries.items()
            ],
            announcement_ja=kw.get("announcement_ja"),
            announcement_en=None,
            actor=osaka_supervisor.email,
        )

    change({world.osaka.id: "degraded"})
    assert status.public_snapshot(world.org.slug).overall.value == "degraded"
    import pytest

    with pytest.raises(Forbidden):
        change({world.tokyo.id: "outage"})
    with pytest.raises(Forbidden):
        change({}, announcement_ja="勝手な告知")


def test_staff_without_the_role_cannot_edit(client: FlaskClient, world: World) -> None:
    login(client, world.manager)
    assert client.get("/incidents/status-page").status_code == 403


def test_edits_are_audited(world: World) -> None:
    from sqlalchemy import select

    from core.auth.models import AuditEntry
    from core.auth.service import principal_for

    page = _page(world)
    entry = page.entries[0]
    status.update_status_page(
        principal=principal_for(world.crisis),
        changes=[
            status.EntryChange(
                key=entry["key"], label_ja=entry["label_ja"], label_en=entry["label_en"], state="outage"
            )
        ],
        announcement_ja=None,
        announcement_en=None,
        actor=world.crisis.email,
    )
    row = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "incidents.status_page.update", AuditEntry.organization_id == world.org.id
        )
    ).one()
    assert "normal→outage" in row.summary


def test_an_organization_that_never_edited_its_page_still_has_one(client: FlaskClient, world: World) -> None:
    status.forget(world.org.slug)
    response = client.get(f"/status/{world.org.slug}")
    assert response.status_code == 200
    assert "Demo Co." in response.text and "通常営業中" in response.text
    assert status.status_page_of(organization_id=world.org.id) is None  # an anonymous visit writes nothing


def test_the_page_follows_a_renamed_organization(client: FlaskClient, world: World) -> None:
    _page(world)
    old = world.org.slug
    world.org.slug, world.org.name = "renamed-co", "Renamed Co."
    db.session.flush()
    status.ensure_status_page(organization_id=world.org.id)
    assert client.get("/status/renamed-co.json").get_json()["organization"] == "Renamed Co."
    status.forget(old)
    assert client.get(f"/status/{old}").status_code == 404
