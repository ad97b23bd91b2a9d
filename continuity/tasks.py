"""Celery tasks of routing and failover: the heartbeat watch, and texts sent to callers."""

from __future__ import annotations

import logging

from flask import current_app

from continuity import service
from core.celery import celery_app, periodic
from core.config import Settings
from core.telephony import TelephonyError, TransientTelephonyError, make_backend
from core.time import utcnow

log = logging.getLogger(__name__)

HEARTBEAT_CHECK_EVERY_S = 15.0

periodic("continuity.check_heartbeats", "continuity.check_heartbeats", HEARTBEAT_CHECK_EVERY_S)


@celery_app.task(name="continuity.check_heartbeats")
def check_heartbeats() -> list[int]:
    """Sites silent for longer than their limit go down; their traffic moves at the next call."""
    return [status.site_id for status in service.mark_silent_sites_down(now=utcnow())]


def _settings() -> Settings:
    settings: Settings = current_app.extensions["lifeline.settings"]
    return settings


def send_sms_now(to: str, body: str) -> None:
    settings = _settings()
    make_backend(settings).send_sms(to=to, from_=settings.twilio_from_number, body=body)


@celery_app.task(
    name="continuity.send_sms",
    autoretry_for=(TransientTelephonyError,),
    retry_backoff=5,
    max_retries=5,
)
def send_sms_task(to: str, body: str) -> None:
    send_sms_now(to, body)


def send_sms_after_commit(to: str, body: str) -> None:
    """Runs inside the committing session's after-commit hook: hand the text to a worker. In eager mode
    (tests, no worker) send it here and now, without the task wrapper, whose commit would re-enter the
    session that is committing."""
    try:
        if celery_app.conf.task_always_eager:
            send_sms_now(to, body)
        else:
            send_sms_task.apply_async(args=[to, body])
    except TelephonyError:
        log.exception("the status page SMS could not be sent")
    except Exception:  # the caller was told it is on its way; a broken broker must not turn into a 500
        log.exception("the status page SMS could not be queued")
