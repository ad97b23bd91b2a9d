"""Celery tasks of the incidents part. Thin: they build the adapters and call the services."""

from __future__ import annotations

import logging

from flask import current_app

from core import db
from core.celery import celery_app, periodic
from core.mail import make_mail_backend
from core.pacing import make_bucket
from core.telephony import make_backend
from core.time import utcnow
from incidents import care, notices, outbox

log = logging.getLogger(__name__)

periodic("incidents.send_notices", "incidents.send_notices", 30.0)
periodic("incidents.sweep_notices", "incidents.sweep_notices", 60.0)
periodic("incidents.care_followups", "incidents.care_followups", 60.0)


def outbound() -> outbox.Outbound:
    settings = current_app.extensions["lifeline.settings"]
    return outbox.Outbound(
        backend=make_backend(settings),
        mailer=make_mail_backend(settings),
        bucket=make_bucket(settings, db.get_engine()),
        settings=settings,
    )


@celery_app.task(name="incidents.send_notices")
def send_notices_task() -> dict[str, int]:
    report = outbox.run(out=outbound())
    handled = report.sent + report.retried + report.failed + report.cancelled
    if report.waiting and handled and not celery_app.conf.task_always_eager:
        # More is due than the pace allowed just now: come back in a second rather than at the next beat.
        # A run that got no token at all stops here, so parallel chains collapse into one.
        send_notices_task.apply_async(countdown=1)
    return report.as_dict()


@celery_app.task(name="incidents.sweep_notices")
def sweep_notices_task() -> dict[str, int]:
    requeued, failed = outbox.sweep(now=utcnow())
    return {"requeued": requeued, "failed": failed}


@celery_app.task(name="incidents.care_followups")
def care_followups_task() -> dict[str, int]:
    """Every minute: care cases for new "injured / need help" answers, family notices for new "safe" ones."""
    opened = queued = 0
    for broadcast_id in care.broadcasts_to_watch():
        opened += care.sync_care_followups(broadcast_id)
        queued += notices.queue_family_notices(broadcast_id=broadcast_id)
    return {"care_cases": opened, "family_notices": queued}
