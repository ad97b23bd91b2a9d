"""Care follow-up from safety-call answers, scoped lists, and telling families (only with consent)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.service import principal_for
from core.directory.models import ContactKind, ContactPoint
from core.directory.service import ContactGroup, add_self_service_contact
from core.mail import OutboxMailBackend
from core.pacing import MemoryTokenBucket
from incidents import care, notices, outbox
from incidents.care_rules import NEED_TO_TALK_QUESTION
from incidents.models import CareCase, CareState, DeliveryState, Notification
from incidents.tasks import care_followups_task
from ivr.models import BroadcastMode
from tests.factories import csrf_from, login, make_staff, make_user, post_form
from tests.incidents.conftest import World, answer, make_broadcast
from tests.incidents.test_notices import FakeClock, FakeTelephony, fresh

T0 = datetime(2020, 4, 1, 9, 0, tzinfo=UTC)


def _cases(broadcast_id: int) -> dict[int, CareCase]:
    return {
        c.staff_id: c
        for c in db.session.scalars(select(CareCase).where(CareCase.broadcast_id == broadcast_id))
    }


def test_injured_and_help_answers_open_one_case_each_idempotently(world: World) -> None:
    broadcast = make_broadcast(world.org, created_by=world.crisis)
    safe, hurt, trapped, silent = (make_staff(world.org, site=world.tokyo) for _ in range(4))
    answer(broadcast, safe, safety="1", work="1")
    answer(broadcast, hurt, safety="2", work="3")
    answer(broadcast, trapped, safety="3")
    assert care.sync_care_followups(broadcast.id) == 2
    assert care.sync_care_followups(broadcast.id) == 0  # nothing twice
    cases = _cases(broadcast.id)
    assert set(cases) == {hurt.id, trapped.id}
    assert cases[hurt.id].reason == "injured" and cases[trapped.id].reason == "need_help"
    assert {c.state for c in cases.values()} == {CareState.OPEN}
    # Nobody's manager has an account: the crisis manager who sent the broadcast owns the cases, and is told.
    assert {c.owner_user_id for c in cases.values()} == {world.crisis.id}
    assert db.session.scalars(
        select(Notification.kind).where(Notification.user_id == world.crisis.id)
    ).all() == ["care.assigned"]
    # Someone who later changes to "injured" gets their case at the next run; changing back closes nothing.
    answer(broadcast, safe, safety="2")
    answer(broadcast, hurt, safety="1")
    assert care.sync_care_followups(broadcast.id) == 1
    assert set(_cases(broadcast.id)) == {safe.id, hurt.id, trapped.id}
    assert silent.id not in _cases(broadcast.id)


def test_the_person_s_manager_owns_the_case_when_they_have_an_account(world: World) -> None:
    boss = make_staff(world.org, email="boss@example.com")
    boss_user = make_user(world.org, *[], email="boss@example.com")
    person = make_staff(world.org, manager_id=boss.id)
    broadcast = make_broadcast(world.org, created_by=world.crisis)
    answer(broadcast, person, safety="2")
    care.sync_care_followups(broadcast.id)
    assert _cases(broadcast.id)[person.id].owner_user_id == boss_user.id


def test_someone_to_talk_to(world: World) -> None:
    from ivr.scenarios import BUILTIN

    template = {
        **BUILTIN["earthquake"],
        "questions": [*BUILTIN["earthquake"]["questions"], NEED_TO_TALK_QUESTION],
    }
    broadcast = make_broadcast(world.org)
    broadcast.template = template
    db.session.flush()
    lonely, fine = make_staff(world.org), make_staff(world.org)
    answer(broadcast, lonely, safety="1", need_to_talk="1")
    answer(broadcast, fine, safety="1", need_to_talk="2")
    care.sync_care_followups(broadcast.id)
    assert {sid: c.reason for sid, c in _cases(broadcast.id).items()} == {lonely.id: "need_to_talk"}


def test_the_periodic_task_watches_running_broadcasts(world: World) -> None:
    broadcast = make_broadcast(world.org)
    person = make_staff(world.org)
    answer(broadcast, person, safety="3")
    result = care_followups_task()
    assert result["care_cases"] >= 1
    assert person.id in _cases(broadcast.id)


def test_lists_are_scoped_to_what_the_user_may_see(world: World) -> None:
    broadcast = make_broadcast(world.org)
    tokyo_person = make_staff(world.org, site=world.tokyo, name="東京の人")
    osaka_person = make_staff(world.org, site=world.osaka, name="大阪の人")
    osaka_executive = make_staff(world.org, site=world.osaka, name="大阪の役員", hide_from_answer_views=True)
    for person in (tokyo_person, osaka_person, osaka_executive):
        answer(broadcast, person, safety="2")
    care.sync_care_followups(broadcast.id)

    everyone = {c.staff.name for c in care.list_cases(principal=principal_for(world.crisis))}
    assert everyone == {"東京の人", "大阪の人", "大阪の役員"}
    osaka_only = {c.staff.name for c in care.list_cases(principal=principal_for(world.osaka_manager))}
    assert osaka_only == {"大阪の人"}
    assert care.list_cases(principal=principal_for(world.supervisor)) == []  # supervisors do not do care


def test_the_care_page_and_its_updates(client: FlaskClient, world: World) -> None:
    broadcast = make_broadcast(world.org)
    tokyo_person = make_staff(world.org, site=world.tokyo, name="東京の人")
    osaka_person = make_staff(world.org, site=world.osaka, name="大阪の人")
    answer(broadcast, tokyo_person, safety="2")
    answer(broadcast, osaka_person, safety="3")
    care.sync_care_followups(broadcast.id)
    cases = _cases(broadcast.id)
    login(client, world.osaka_manager)
    page = client.get("/incidents/care")
    assert page.status_code == 200
    assert "大阪の人" in page.text and "東京の人" not in page.text
    # A case outside the scope cannot be touched.
    out_of_scope = client.post(
        f"/incidents/care/{cases[tokyo_person.id].id}",
        data={"state": "closed", "csrf_token": csrf_from(page.text)},
    )
    assert out_of_scope.status_code == 404
    response = post_form(
        client,
        "/incidents/care",
        f"/incidents/care/{cases[osaka_person.id].id}",
        state="contacted",
        owner=str(world.osaka_manager.id),
        note="電話で無事を確認。足を捻挫。",
    )
    assert response.status_code == 302
    case = fresh(CareCase, cases[osaka_person.id].id)
    assert case.state is CareState.CONTACTED and case.contacted_at is not None
    assert case.owner_user_id == world.osaka_manager.id
    assert "電話で無事を確認。足を捻挫。" in case.notes


# --- family notices ---------------------------------------------------------------------------------------------


def _family(app: Any, world: World, name: str = "山田 太郎") -> Any:
    person = make_staff(world.org, site=world.tokyo, name=name)
    key = app.extensions["lifeline.settings"].encryption_key
    add_self_service_contact(
        staff=person, group=ContactGroup.FAMILY, channel="phone", value="090-0000-0877", encryption_key=key
    )
    add_self_service_contact(
        staff=person,
        group=ContactGroup.FAMILY,
        channel="email",
        value="family@example.com",
        encryption_key=key,
    )
    return person


def _send(app: Any) -> tuple[FakeTelephony, OutboxMailBackend]:
    clock = FakeClock()
    phone, mail = FakeTelephony(clock), OutboxMailBackend()
    out = outbox.Outbound(
        backend=phone,
        mailer=mail,
        bucket=MemoryTokenBucket({"sms": 100.0, "email": 100.0}, clock=clock),
        settings=app.extensions["lifeline.settings"],
        worker="test",
    )
    outbox.send_due(out=out, now=datetime.now(UTC))
    return phone, mail


def test_no_family_notice_without_consent(app: Any, world: World) -> None:
    person = _family(app, world)
    broadcast = make_broadcast(world.org)
    answer(broadcast, person, safety="1")
    assert notices.queue_family_notices(broadcast_id=broadcast.id) == 0


def test_families_are_told_when_the_person_allowed_it(app: Any, client: FlaskClient, world: World) -> None:
    person = _family(app, world)
    token, person_id = person.self_service_token, person.id
    page = client.get(f"/boards/{token}")
    assert "登録されたご家族の連絡先にお知らせしてもよいですか" in page.text
    assert (
        client.post(
            f"/boards/{token}/family-notice", data={"allowed": "yes", "csrf_token": csrf_from(page.text)}
        ).status_code
        == 302
    )
    assert notices.family_consent(staff_id=person_id)

    broadcast = make_broadcast(world.org)
    answer(broadcast, person, safety="1", work="2")
    assert notices.queue_family_notices(broadcast_id=broadcast.id) == 2
    assert notices.queue_family_notices(broadcast_id=broadcast.id) == 0  # once per contact per broadcast
    notice_rows = db.session.scalars(
        select(notices.NoticeDelivery).where(notices.NoticeDelivery.staff_id == person_id)
    ).all()
    # Nothing of the address is stored before sending.
    assert {d.to_masked for d in notice_rows} == {""}
    phone, mail = _send(app)
    sms = [m for m in phone.sent if m["to"] == "+819000000877"]
    assert len(sms) == 1 and "山田 太郎さんは安否確認に「無事」と回答しました。" in sms[0]["body"]
    assert [m.to for m in mail.outbox if m.to == "family@example.com"] == ["family@example.com"]
    rows = [fresh(notices.NoticeDelivery, d.id) for d in notice_rows]
    assert {d.state for d in rows} == {DeliveryState.SENT}
    assert "0877" not in " ".join(d.to_masked for d in rows) or all("*" in d.to_masked for d in rows)
    # The stored contact point stays encrypted.
    stored = db.session.scalars(
        select(ContactPoint).where(
            ContactPoint.staff_id == person_id, ContactPoint.kind == ContactKind.FAMILY_PHONE
        )
    ).one()
    assert stored.value is None and stored.value_encrypted


def test_not_for_the_injured_nor_for_a_drill_nor_after_a_changed_answer(app: Any, world: World) -> None:
    hurt = _family(app, world, "負傷者")
    notices.set_family_consent(staff=hurt, allowed=True)
    broadcast = make_broadcast(world.org)
    answer(broadcast, hurt, safety="2")
    assert notices.queue_family_notices(broadcast_id=broadcast.id) == 0

    drill = make_broadcast(world.org, mode=BroadcastMode.DRILL)
    answer(drill, hurt, safety="1")
    assert notices.queue_family_notices(broadcast_id=drill.id) == 0

    changed = make_broadcast(world.org)
    answer(changed, hurt, safety="1")
    assert notices.queue_family_notices(broadcast_id=changed.id) == 2
    answer(changed, hurt, safety="2")  # before the worker got to it
    phone, _mail = _send(app)
    assert not [m for m in phone.sent if m["to"] == "+819000000877"]
    rows = db.session.scalars(
        select(notices.NoticeDelivery).where(notices.NoticeDelivery.staff_id == hurt.id)
    ).all()
    assert {fresh(notices.NoticeDelivery, d.id).state for d in rows} == {DeliveryState.CANCELLED}


def test_family_values_are_never_shown(app: Any, client: FlaskClient, world: World) -> None:
    person = _family(app, world)
    notices.set_family_consent(staff=person, allowed=True)
    broadcast = make_broadcast(world.org)
    answer(broadcast, person, safety="1")
    notices.queue_family_notices(broadcast_id=broadcast.id)
    notice = db.session.scalars(
        select(notices.Notice).where(notices.Notice.broadcast_id == broadcast.id)
    ).one()
    login(client, world.crisis)
    page = client.get(f"/incidents/notices/{notice.id}")
    assert page.status_code == 200
    assert "0877" not in page.text and "family@example.com" not in page.text
