"""The daily drill job: plan the next scheduled drill and remind the BCP office before it."""

from __future__ import annotations

from typing import Any

from flask import current_app

from core.celery import celery_app, periodic
from core.mail import make_mail_backend
from reports import service

DAILY = 24 * 3600.0

periodic("reports.drill_reminders", "reports.drill_reminders", DAILY)


@celery_app.task(name="reports.drill_reminders")
def drill_reminders_task() -> dict[str, Any]:
    settings = current_app.extensions["lifeline.settings"]
    run = service.run_drill_reminders(mailer=make_mail_backend(settings), base_url=settings.public_base_url)
    return {"created": run.created, "reminded": run.reminded, "mails": run.mails}
