"""End to end on loopback: a local JMA publishes a new bulletin, the worker's periodic tasks (run eagerly here)
poll it, start the broadcast by themselves — or hold it and release it when the countdown runs out — and the
dispatcher sends to the people it concerns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from core import db
from core.celery import celery_app
from core.time import utcnow
from ivr import dispatch
from ivr.jma import service
from ivr.jma.models import JmaDecision
from tests.ivr.jma.support import LocalJma, Org, broadcasts_of, intensity_report, recipients_of, sample


@pytest.fixture()
def worker(jma: Flask, local_jma: LocalJma) -> Iterator[Any]:
    """The worker's configuration pointed at the local JMA."""
    settings = jma.extensions["lifeline.settings"]
    jma.extensions["lifeline.settings"] = replace(settings, jma_feed_base=local_jma.feed_base)
    try:
        yield celery_app
    finally:
        jma.extensions["lifeline.settings"] = settings


def beat(app: Any, task: str) -> Any:
    """What the beat does every minute (poll) or every 15 s (release): send the task by name."""
    return app.send_task(task) if not app.conf.task_always_eager else app.tasks[task].delay()


def test_a_new_bulletin_in_the_feed_starts_the_broadcast_by_itself(
    worker: Any, org: Org, local_jma: LocalJma, outbound: Any, backend: Any
) -> None:
    beat(worker, "ivr.jma.poll")
    assert broadcasts_of(org.org) == []  # nothing in the feed yet: nothing happens

    local_jma.publish(
        "extra", "20300401010000_0_VPWW53_130000.xml", sample("15_14_01_170216_VPWW53.xml"), datetime.now(UTC)
    )
    beat(worker, "ivr.jma.poll")

    (broadcast,) = broadcasts_of(org.org)
    assert (broadcast.template_key, broadcast.mode.value, broadcast.created_by) == (
        "heavy_rain",
        "real",
        "jma",
    )
    assert set(recipients_of(broadcast)) == org.people(sites=["TKY"])

    dispatch.run(out=outbound, now=utcnow)
    reached = {m["to"] for m in backend.messages} | {c["to"] for c in backend.calls}
    assert reached, "the dispatcher sent nothing"
    tokyo_phones = {
        f"+8190000003{n:02d}" for n in range(8)
    }  # the first eight people of the layout work in Tokyo
    assert reached <= tokyo_phones

    beat(worker, "ivr.jma.poll")
    assert len(broadcasts_of(org.org)) == 1  # polled again: nothing twice


def test_a_held_broadcast_is_released_by_the_beat_when_its_countdown_runs_out(
    worker: Any, org: Org, local_jma: LocalJma, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = service.default_rules(organization_id=org.org.id).to_dict() | {"hold_minutes": 1}
    service.save_rules(
        organization_id=org.org.id,
        document=document,
        enabled=True,
        emergency_min_intensity=None,
        actor="test",
    )
    local_jma.publish(
        "eqvol", "osaka.xml", intensity_report("20300401100000", {"27": "6-"}), datetime.now(UTC)
    )
    beat(worker, "ivr.jma.poll")
    assert broadcasts_of(org.org) == []
    beat(worker, "ivr.jma.release_held")
    assert broadcasts_of(org.org) == []  # the minute has not passed

    later = utcnow() + timedelta(minutes=1, seconds=1)
    monkeypatch.setattr("ivr.jma.tasks.utcnow", lambda: later)  # the beat, a minute later
    beat(worker, "ivr.jma.release_held")
    beat(worker, "ivr.jma.release_held")

    (broadcast,) = broadcasts_of(org.org)
    (record,) = [d for d in db.session.scalars(select(JmaDecision)) if d.action == "release"]
    assert (record.broadcast_id, record.actor) == (broadcast.id, "jma")
    assert set(recipients_of(broadcast)) == org.people(site_prefectures=["27"], homes=["27"])
