"""Team conversations: members only, read marks per member, a page that works with and without the script."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from core import db
from core.errors import Forbidden
from incidents import teams
from incidents.models import GroupMember
from tests.factories import login, post_form
from tests.incidents.conftest import World


def _team(world: World) -> Any:
    return teams.save_group(
        organization_id=world.org.id,
        name="経営陣 / Management team",
        member_ids=[world.crisis.id, world.manager.id, world.supervisor.id],
        actor=world.admin.email,
        actor_user_id=world.admin.id,
    )


def test_read_marks_tell_who_has_read_what(world: World) -> None:
    group = _team(world)
    first = teams.post_message(group=group, user=world.crisis, body="大阪を停止扱いにしますか?")
    second = teams.post_message(group=group, user=world.crisis, body="10分後に決めます。")
    states = teams.read_states(group, [first, second])
    assert states[first.id].read_by == () and len(states[first.id].unread_by) == 2

    teams.mark_read(group=group, user_id=world.manager.id, up_to=first.id)
    states = teams.read_states(group, [first, second])
    assert states[first.id].read_by == ("Test User",) and len(states[first.id].unread_by) == 1
    assert states[second.id].read_by == ()
    # An old tab reporting an older message does not move the mark back.
    teams.mark_read(group=group, user_id=world.manager.id, up_to=second.id)
    teams.mark_read(group=group, user_id=world.manager.id, up_to=first.id)
    member = db.session.query(GroupMember).filter_by(group_id=group.id, user_id=world.manager.id).one()
    assert member.last_read_message_id == second.id
    # Answering means having read everything before.
    reply = teams.post_message(group=group, user=world.supervisor, body="賛成です。")
    assert teams.unread_counts(user_id=world.supervisor.id)[group.id] == 0
    assert teams.unread_counts(user_id=world.crisis.id)[group.id] == 1
    assert teams.read_states(group, [second])[second.id].read_by == ("Test User", "Test User")
    assert reply.author_name == "Test User"


def test_only_members_read_and_write(world: World) -> None:
    group = _team(world)
    with pytest.raises(Forbidden):
        teams.post_message(group=group, user=world.osaka_manager, body="入れて")
    with pytest.raises(Forbidden):
        teams.mark_read(group=group, user_id=world.osaka_manager.id, up_to=1)


def test_a_non_member_gets_no_page(client: FlaskClient, world: World) -> None:
    group = _team(world)
    login(client, world.osaka_manager)
    assert client.get(f"/incidents/groups/{group.id}").status_code == 403
    assert client.get(f"/incidents/groups/{group.id}/poll?after=0").status_code == 403


def test_the_conversation_page_and_its_polling(client: FlaskClient, world: World) -> None:
    group = _team(world)
    earlier = teams.post_message(group=group, user=world.crisis, body="状況を共有します。")
    login(client, world.manager)
    page = client.get(f"/incidents/groups/{group.id}")
    assert page.status_code == 200
    # Without the script: every message is in the page and the form posts normally.
    assert "状況を共有します。" in page.text and 'action="/incidents/groups/' in page.text
    # Opening the page marks it read.
    member = (
        db.session.query(GroupMember)
        .filter_by(group_id=group.id, user_id=world.manager.id)
        .populate_existing()
        .one()
    )
    assert member.last_read_message_id == earlier.id
    # The script is ours, served locally.
    script = re.search(r'<script src="([^"]+)"', page.text)
    assert script and script.group(1).startswith("/incidents/static/")
    js = client.get(script.group(1))
    assert js.status_code == 200 and "5000" in js.text and "http" not in js.text

    assert (
        post_form(
            client,
            f"/incidents/groups/{group.id}",
            f"/incidents/groups/{group.id}/messages",
            body="了解です。",
        ).status_code
        == 302
    )
    group = teams.get_group(
        organization_id=world.org.id, group_id=group.id
    )  # the requests closed the old session
    newer = teams.post_message(group=group, user=world.crisis, body="では決定します。")
    poll = client.get(f"/incidents/groups/{group.id}/poll?after={earlier.id}").get_json()
    assert [m["body"] for m in poll["messages"]] == ["了解です。", "では決定します。"]
    assert poll["last_id"] == newer.id
    mine = poll["messages"][0]
    assert mine["mine"] is True and "Test User" in mine["read_by"]  # the crisis manager's reply read it
    assert poll["reads"][str(earlier.id)]["read_by"]


def test_admins_define_groups(client: FlaskClient, world: World) -> None:
    login(client, world.admin)
    response = post_form(
        client,
        "/incidents/groups",
        "/incidents/groups",
        name="大阪リーダー",
        members=[str(world.osaka_manager.id), str(world.supervisor.id)],
    )
    assert response.status_code == 302
    (group,) = [g for g in teams.all_groups(organization_id=world.org.id) if g.name == "大阪リーダー"]
    assert {m.user_id for m in group.members} == {world.osaka_manager.id, world.supervisor.id}


def test_others_cannot_define_groups(client: FlaskClient, world: World) -> None:
    login(client, world.crisis)
    page = client.get("/incidents/groups")
    assert page.status_code == 200
    from tests.factories import csrf_from

    assert (
        client.post(
            "/incidents/groups",
            data={"name": "x", "members": [str(world.crisis.id)], "csrf_token": csrf_from(page.text)},
        ).status_code
        == 403
    )
