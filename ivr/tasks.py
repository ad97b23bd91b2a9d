"""Celery tasks of the safety broadcasts. Thin: they build the outbound adapters and call the dispatcher."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from celery.signals import worker_ready
from flask import current_app
from sqlalchemy import select

from core import db
from core.celery import celery_app, periodic
from core.directory.models import Organization
from core.errors import ValidationError
from core.mail import make_mail_backend
from core.pacing import make_bucket
from core.telephony import make_backend
from core.time import utcnow
from ivr import dispatch, service, spool

log = logging.getLogger(__name__)

DISPATCH_EVERY_S = 5.0
# Often enough that a dead worker's rows go out again soon after their lease runs out (a quarter of the lease:
# LIFELINE_DISPATCH_LEASE_SECONDS, read here because the beat schedule is fixed before any app exists).
SWEEP_EVERY_S = min(30.0, max(5.0, float(os.environ.get("LIFELINE_DISPATCH_LEASE_SECONDS") or 120) / 4))
CONTACT_CHECK_EVERY = timedelta(days=30)

# A beat that finds every worker busy is dropped rather than queued: the next one comes 5 s later anyway.
periodic("ivr.dispatch", "ivr.dispatch", DISPATCH_EVERY_S, options={"expires": DISPATCH_EVERY_S})
periodic("ivr.sweep", "ivr.sweep", SWEEP_EVERY_S)
periodic("ivr.contact_check", "ivr.contact_check", 3600.0)
periodic("ivr.spool_replay", "ivr.spool_replay", spool.REPLAY_EVERY_S)


def outbound() -> dispatch.Outbound:
    settings = current_app.extensions["lifeline.settings"]
    return dispatch.Outbound(
        backend=make_backend(settings),
        mailer=make_mail_backend(settings),
        bucket=make_bucket(settings, db.get_engine()),
        settings=settings,
    )


def kick_dispatcher(broadcast_id: int) -> None:
    """Wake a worker now instead of at the next beat (called after the broadcast's transaction commits)."""
    if celery_app.conf.task_always_eager:
        # Eager mode (tests) would run the dispatcher inside the committing session's after-commit hook;
        # tests call the dispatcher directly instead.
        return
    try:
        dispatch_task.apply_async(args=[broadcast_id])
    except Exception:  # the beat runs the dispatcher within seconds anyway
        log.exception("could not queue ivr.dispatch for broadcast %s", broadcast_id)


@celery_app.task(name="ivr.dispatch")
def dispatch_task(broadcast_id: int | None = None) -> dict[str, Any]:
    # Keep placing as pacing tokens come until the next beat: a run that stopped at the first empty bucket would
    # place one second's worth every DISPATCH_EVERY_S, a fifth of the configured rate.
    report = dispatch.run(out=outbound(), keep_pace_s=DISPATCH_EVERY_S)
    return {
        "advanced": report.advanced,
        "placed": report.placed,
        "failed": report.failed,
        "retried": report.retried,
        "finished": report.finished_broadcasts,
    }


@celery_app.task(name="ivr.sweep")
def sweep_task() -> dict[str, int]:
    requeued, failed = dispatch.sweep(now=utcnow())
    return {"requeued": requeued, "failed": failed}


@celery_app.task(name="ivr.contact_check")
def contact_check_task() -> list[int]:
    """Start the contact check of every organization whose last one is older than its interval (30 days)."""
    started = []
    now = utcnow()
    for org in db.session.scalars(select(Organization)).all():
        days = (org.settings or {}).get("contact_check_days", CONTACT_CHECK_EVERY.days)
        if not days:
            continue
        if service.contact_check_due(organization_id=org.id, every=timedelta(days=float(days)), now=now):
            try:
                broadcast = service.start_contact_check(organization_id=org.id, now=now)
            except ValidationError:
                continue  # nobody in the directory yet
            started.append(broadcast.id)
    return started


@celery_app.task(name="ivr.spool_replay")
def spool_replay_task() -> dict[str, Any]:
    """Store what the webhooks spooled while the database was unreachable (see ivr.spool)."""
    return spool.replay().as_dict()


@worker_ready.connect
def replay_spool_on_start(**_: Any) -> None:
    # A worker that starts after an outage stores the spool at once instead of at the next beat.
    try:
        spool_replay_task.apply_async()
    except Exception:
        log.warning("could not queue ivr.spool_replay at start", exc_info=True)
