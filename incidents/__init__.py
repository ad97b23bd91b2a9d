"""Incident command and crisis communication: incidents with their checklist and timeline, the public status page,
partner notices, bulletin boards, team conversations and care follow-up.

Read functions for the reports part: :func:`incidents.service.incident_timeline` and
:func:`incidents.service.incident_summary`; for the JMA side: :func:`incidents.service.propose_incident`;
for demo data: :func:`incidents.demo.seed_demo`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    from core import i18n
    from core.app import csrf
    from core.auth.models import Role
    from core.web import add_nav
    from incidents import public, views, views_boards, views_comms  # noqa: F401  (routes register on import)
    from incidents.i18n_ja import MESSAGES
    from incidents.web import bp, hooks
    from incidents.web import public as public_bp

    i18n.register("ja", MESSAGES)
    app.register_blueprint(bp)
    app.register_blueprint(public_bp)
    app.register_blueprint(hooks)
    # Twilio signs its callbacks; it cannot carry our CSRF token.
    csrf.exempt(hooks)
    add_nav(
        app, "incidents.index", "Incidents", (Role.CRISIS_MANAGER, Role.SUPERVISOR, Role.MANAGER), order=15
    )
