"""JMA auto-trigger: JMA's Atom feeds polled once a minute, each bulletin parsed (``parse``, pure) and run through
each organization's rules (``rules``, pure); the service acts on the decisions, the page ``/jma`` shows them.

:func:`init_jma` plugs it into the application (called from ``ivr.init_app``).
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from ivr.jma.service import EmergencyStarter

__all__ = ["init_jma"]

ANNOUNCEMENT_JA = "ただいま地震の影響により、お電話を受け付けることができません。恐れ入りますが、しばらくしてからおかけ直しください。"
ANNOUNCEMENT_EN = "Because of an earthquake we cannot take your call right now. Please call again later."


def _routing_emergency_starter() -> EmergencyStarter | None:
    """Emergency mode lives in the routing part; wired in only when that part is installed.

    Looked up by name at start-up so that ivr does not import continuity (the dependency points the other way)."""
    try:
        routing = importlib.import_module("continuity.service")
    except ModuleNotFoundError:
        return None
    start = getattr(routing, "start_emergency", None)
    active = getattr(routing, "active_emergencies", None)
    if start is None:
        return None

    def starter(organization_id: int, site_code: str, reason: str, now: datetime) -> bool:
        from sqlalchemy import select

        from core import db
        from core.directory.models import Site

        site_id = db.session.scalar(
            select(Site.id).where(Site.organization_id == organization_id, Site.code == site_code)
        )
        if active is not None:
            for emergency in active(organization_id=organization_id, now=now):
                scope = str(getattr(emergency, "scope", ""))
                if scope == "global" or (scope == "site" and getattr(emergency, "site_id", None) == site_id):
                    return False
        start(
            organization_id=organization_id,
            scope="site",
            site_code=site_code,
            announcement_ja=ANNOUNCEMENT_JA,
            announcement_en=ANNOUNCEMENT_EN,
            actor="jma",
            reason=reason,
            now=now,
        )
        return True

    return starter


def init_jma(app: Flask) -> None:
    """Blueprint, ``lifeline jma`` commands, tasks and their schedule, navigation, Japanese texts, hooks."""
    from core.auth.models import Role
    from core.i18n import register
    from core.web import add_nav
    from ivr.jma import service, tasks
    from ivr.jma.cli import jma_group
    from ivr.jma.messages_ja import MESSAGES
    from ivr.jma.views import bp

    app.register_blueprint(bp)
    app.cli.add_command(jma_group)
    present = {item["endpoint"] for item in app.extensions.get("lifeline.nav", [])}
    if "jma.index" not in present:
        add_nav(app, "jma.index", "JMA auto-trigger", (Role.CRISIS_MANAGER, Role.MANAGER), order=25)
    register("ja", MESSAGES)
    service.set_notifier(tasks.queue_notification)
    service.set_emergency_starter(_routing_emergency_starter())
