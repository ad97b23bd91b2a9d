"""Drills, incident records and the printed (PDF) exercise reports (ISO 22301 §8.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Plug the drills in: screens, the ``lifeline drill`` commands, Japanese texts, navigation."""
    from core import i18n
    from core.auth.models import Role
    from core.web import add_nav
    from reports import models  # noqa: F401  (tables known to the metadata before the first query)
    from reports.cli import drill_group
    from reports.i18n_ja import MESSAGES
    from reports.views import bp

    i18n.register("ja", MESSAGES)
    app.register_blueprint(bp)
    app.cli.add_command(drill_group)
    add_nav(app, "reports.drill_list", "Drills", (Role.CRISIS_MANAGER, Role.MANAGER), order=50)
