"""Celery tasks of the JMA auto-trigger: poll the feeds once a minute, release held broadcasts every 15 s, and
mail the crisis managers. Thin: the poller and the service do the work."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from flask import current_app, has_app_context

from core import db
from core.celery import celery_app, periodic
from core.mail import Mail, MailError, make_mail_backend
from core.time import utcnow
from ivr.jma import poller, service
from ivr.jma.models import JmaNotification

log = logging.getLogger(__name__)

POLL_EVERY_S = 60.0
RELEASE_EVERY_S = 15.0

# A poll or a release that waited in the queue longer than its interval is dropped: the next one does its work.
periodic("ivr.jma.poll", "ivr.jma.poll", POLL_EVERY_S, options={"expires": POLL_EVERY_S})
periodic(
    "ivr.jma.release_held", "ivr.jma.release_held", RELEASE_EVERY_S, options={"expires": RELEASE_EVERY_S}
)


@celery_app.task(name="ivr.jma.poll")
def poll_task() -> list[str]:
    """One task per feed, so that a feed that hangs or a slow bulletin download never holds up the other feed."""
    if not current_app.extensions["lifeline.settings"].jma_feed_base:
        return []  # polling is off until LIFELINE_JMA_FEED_BASE names the feeds
    feeds = [name for name, _ in poller.FEEDS]
    for name in feeds:
        poll_feed_task.apply_async(args=[name], expires=POLL_EVERY_S)
    return feeds


@celery_app.task(name="ivr.jma.poll_feed")
def poll_feed_task(feed: str) -> list[dict[str, Any]]:
    settings = current_app.extensions["lifeline.settings"]
    reports = poller.poll(
        feed_base=settings.jma_feed_base, feeds=[entry for entry in poller.FEEDS if entry[0] == feed]
    )
    return [asdict(report) for report in reports]


@celery_app.task(name="ivr.jma.release_held")
def release_held_task() -> list[int]:
    """Start every held broadcast whose countdown ran out (unless it was cancelled meanwhile).

    One transaction per hold: a hold that cannot be started never keeps the others waiting."""
    released = []
    for held_id in service.due_holds(now=utcnow()):
        try:
            record = service.release_hold(held_id=held_id, now=utcnow())
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("releasing held JMA broadcast %s failed; the next beat tries again", held_id)
            continue
        if record is not None:
            released.append(record.id)
    return released


def deliver_notification(recipients: list[str], subject: str, body: str) -> int:
    """Send one e-mail per crisis manager; returns how many left. Touches no database (see queue_notification)."""
    mailer = make_mail_backend(current_app.extensions["lifeline.settings"])
    sent = 0
    for address in recipients:
        try:
            mailer.send(Mail(to=address, subject=subject, text=body))
            sent += 1
        except MailError as exc:
            log.warning("JMA notification to %s not sent: %s", address, exc)
    return sent


@celery_app.task(name="ivr.jma.notify")
def notify_task(recipients: list[str], subject: str, body: str) -> int:
    return deliver_notification(recipients, subject, body)


def queue_notification(notification: JmaNotification) -> None:
    """The service's notifier: the e-mails leave after the decision's transaction commits, never before."""
    recipients = list(notification.recipients)
    subject = notification.subject
    body = notification.body
    if has_app_context():
        base = current_app.extensions["lifeline.settings"].public_base_url.rstrip("/")
        body = f"{body}\n\n{base}/jma"

    def send() -> None:
        if celery_app.conf.task_always_eager:
            # Eager mode would run the task inside the committing session's after-commit hook, where the task
            # wrapper's own commit is not allowed; the mail itself needs no database, so send it here.
            if has_app_context():
                deliver_notification(recipients, subject, body)
            return
        try:
            notify_task.apply_async(args=[recipients, subject, body])
        except Exception:
            log.exception("could not queue the JMA notification %r", subject)

    db.after_commit(send)
