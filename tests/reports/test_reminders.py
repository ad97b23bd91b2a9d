"""The recurring drill: the daily job plans the next drill, rotates the scenario and reminds the BCP office."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from core import db
from core.auth.models import AuditEntry, Role
from core.mail import OutboxMailBackend
from reports import service
from reports.models import Drill, DrillState, DrillType, Scenario
from tests.factories import make_user
from tests.reports.conftest import utc

TOKYO = ZoneInfo("Asia/Tokyo")


def scheduled(world):
    return list(
        db.session.scalars(
            select(Drill)
            .where(Drill.organization_id == world.org.id, Drill.origin == "schedule")
            .order_by(Drill.planned_start_at)
        )
    )


def test_the_daily_job_plans_reminds_once_and_rotates(world):
    make_user(world.org, Role.CRISIS_MANAGER, email="bcp@example.com", language="en")
    make_user(world.org, Role.MANAGER, email="reader@example.com")
    service.save_schedule(organization_id=world.org.id, day_of_month=15, start_hour=10, actor="tester")
    outbox = OutboxMailBackend()

    # 1 March: the March drill is planned (15th, 10:00 in Tokyo); too early to remind.
    run = service.run_drill_reminders(now=utc(2026, 3, 1, 0, 0), mailer=outbox)
    db.session.commit()
    (march,) = scheduled(world)
    assert run.created == [march.id] and run.reminded == []
    assert march.scenario is Scenario.EARTHQUAKE and march.type is DrillType.NOTIFICATION_TEST
    assert march.planned_start_at.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M") == "2026-03-15 10:00"
    assert march.state is DrillState.PLANNED and outbox.outbox == []

    # The next day nothing new: the March drill is still ahead.
    assert service.run_drill_reminders(now=utc(2026, 3, 2, 0, 0), mailer=outbox).created == []

    # 8 March, within the 7 days: one reminder to each crisis manager, in their language, audited.
    run = service.run_drill_reminders(now=utc(2026, 3, 8, 2, 0), mailer=outbox)
    db.session.commit()
    assert run.reminded == [march.id]
    recipients = sorted(m.to for m in outbox.outbox)
    assert recipients == sorted(["bcp@example.com", world.users["crisis"].email])
    english = next(m for m in outbox.outbox if m.to == "bcp@example.com")
    japanese = next(m for m in outbox.outbox if m.to == world.users["crisis"].email)
    assert english.subject.startswith("Drill reminder:") and "2026-03-15 10:00" in english.subject
    assert japanese.subject.startswith("【訓練のお知らせ】")
    assert f"/drills/{march.id}" in english.text
    audited = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "reports.drill.reminder", AuditEntry.target_id == str(march.id)
        )
    ).all()
    assert len(audited) == 1

    # The day after: no second reminder.
    sent = len(outbox.outbox)
    assert service.run_drill_reminders(now=utc(2026, 3, 9, 2, 0), mailer=outbox).reminded == []
    db.session.commit()
    assert len(outbox.outbox) == sent

    # Once the March drill has started, April's is planned with the next scenario of the rotation.
    service.run_drill_reminders(now=utc(2026, 3, 16, 0, 0), mailer=outbox)
    service.run_drill_reminders(now=utc(2026, 4, 16, 0, 0), mailer=outbox)
    service.run_drill_reminders(now=utc(2026, 5, 16, 0, 0), mailer=outbox)
    service.run_drill_reminders(now=utc(2026, 6, 16, 0, 0), mailer=outbox)
    plan = [
        (d.planned_start_at.astimezone(TOKYO).strftime("%m-%d"), d.scenario.value) for d in scheduled(world)
    ]
    assert plan == [
        ("03-15", "earthquake"),
        ("04-15", "typhoon"),
        ("05-15", "pandemic"),
        ("06-15", "cyber_attack"),
        ("07-15", "earthquake"),
    ]


def test_a_disabled_schedule_plans_nothing(world):
    service.save_schedule(organization_id=world.org.id, enabled=False, actor="tester")
    assert service.run_drill_reminders(now=utc(2026, 3, 1)).created == []
    assert scheduled(world) == []


def test_changing_the_rotation_starts_it_over(world):
    schedule = service.save_schedule(organization_id=world.org.id, actor="tester")
    service.run_drill_reminders(now=utc(2026, 3, 1))
    assert schedule.next_index == 1
    service.save_schedule(organization_id=world.org.id, scenarios=["fire", "system_outage"], actor="tester")
    assert schedule.next_index == 0 and schedule.scenarios == ["fire", "system_outage"]


def test_a_bad_schedule_is_refused_with_every_reason(world):
    import pytest

    from core.errors import ValidationError

    with pytest.raises(ValidationError) as caught:
        service.save_schedule(
            organization_id=world.org.id,
            every_months=0,
            day_of_month=40,
            scenarios=["meteor"],
            actor="tester",
        )
    assert len(caught.value.errors) == 3


def test_reminders_also_cover_drills_planned_by_hand(world):
    drill = service.create_drill(
        organization_id=world.org.id,
        type="tabletop",
        scenario="pandemic",
        title="机上訓練",
        planned_start_at=utc(2026, 3, 20, 1, 0),
        actor="tester",
    )
    run = service.run_drill_reminders(now=utc(2026, 3, 18, 0, 0) - timedelta(minutes=1))
    assert run.reminded == [drill.id] and drill.reminded_at is not None
