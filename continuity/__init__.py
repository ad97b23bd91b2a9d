"""Continuity: inbound routing and failover between sites, home agents and unmanned fallbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Plug routing into the app: board and home-agent pages, voice webhooks, heartbeat API, CLI, texts."""
    from continuity import api, cli, views, webhooks
    from continuity.i18n_ja import MESSAGES
    from core import i18n
    from core.app import csrf
    from core.auth.models import Role
    from core.web import add_nav

    i18n.register("ja", MESSAGES)
    app.register_blueprint(views.bp)
    app.register_blueprint(views.home_bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    from core.directory.openapi import register_paths

    register_paths(api.openapi_paths())
    # The carrier and the sites cannot send a CSRF token: webhooks are signed, heartbeats carry a bearer token.
    csrf.exempt(webhooks.bp)
    csrf.exempt(api.bp)
    app.cli.add_command(cli.route_group)
    app.cli.add_command(cli.site_group)
    # `lifeline start` runs this beside the web app when the demo's site tokens exist (the embedded default).
    app.extensions.setdefault("lifeline.companions", []).append(
        {"name": "heartbeats", "argv": ["site", "demo-heartbeats"], "needs": "demo_site_tokens.json"}
    )
    add_nav(app, "continuity.board", "Routing", (Role.SUPERVISOR, Role.CRISIS_MANAGER), order=30)
    _hook_into_invitations()


_hooked = False


def _hook_into_invitations() -> None:
    """People who accept the ivr part's "join the home-agent pool" invitation join the pool."""
    global _hooked
    if _hooked:
        return
    try:
        from ivr import service as ivr_service
    except ModuleNotFoundError as exc:
        if exc.name in {"ivr", "ivr.service"}:
            return  # the ivr part is not installed
        raise
    from continuity.service import on_invitation_accepted

    ivr_service.on_invite_accepted(on_invitation_accepted)
    _hooked = True
