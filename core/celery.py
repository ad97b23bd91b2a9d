"""The Celery app. Tasks import ``celery_app`` from here; ``init_celery`` configures it for a Flask app.

Embedded default: a file-backed broker under ``instance/broker`` (no service to install); production: Redis
(``LIFELINE_BROKER_URL=redis://...``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from celery import Celery, Task

if TYPE_CHECKING:
    from flask import Flask

celery_app = Celery("lifeline")

_beat_schedule: dict[str, dict[str, Any]] = {}


def periodic(name: str, task: str, seconds: float, **options: Any) -> None:
    """Domains declare their periodic tasks here (collected into the beat schedule)."""
    _beat_schedule[name] = {"task": task, "schedule": seconds, **options}


class AppTask(Task):
    """Runs every task inside the Flask app context and owns its transaction: commit once, roll back on error."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from core import db

        flask_app = self.app.conf.get("flask_app")
        if flask_app is None:
            return super().__call__(*args, **kwargs)
        with flask_app.app_context():
            try:
                result = super().__call__(*args, **kwargs)
                db.session.commit()
                return result
            except Exception:
                db.session.rollback()
                raise
            finally:
                if not self.app.conf.task_always_eager:
                    db.session.remove()


celery_app.Task = AppTask


def init_celery(app: Flask, task_modules: list[str]) -> Celery:
    settings = app.extensions["lifeline.settings"]
    broker_options: dict[str, Any] = {}
    broker = settings.broker_url
    if broker.startswith("filesystem"):
        folder = settings.instance_dir / "broker"
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        broker_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
        }
    celery_app.conf.update(
        broker_url=broker,
        broker_transport_options=broker_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_always_eager=settings.celery_eager,
        task_eager_propagates=True,
        timezone="UTC",
        beat_schedule=dict(_beat_schedule),
        flask_app=app,
    )
    for module in task_modules:
        importlib.import_module(module)
    celery_app.conf.beat_schedule = dict(_beat_schedule)
    app.extensions["celery"] = celery_app
    return celery_app
