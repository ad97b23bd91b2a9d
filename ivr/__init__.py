"""Safety-confirmation broadcasts (安否確認): templates, the channel ladder, voice/SMS/e-mail/web answers,
live aggregation — and the JMA auto-trigger (``ivr.jma``)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from core.app import csrf
    from core.auth.models import Role
    from core.i18n import register
    from core.web import add_nav
    from ivr import api, cli, spool, views, webhooks
    from ivr.i18n_ja import MESSAGES

    app.register_blueprint(views.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    from core.directory.openapi import register_paths

    register_paths(*api.openapi_paths())
    # Twilio and API clients have no session to carry a CSRF token; they are authenticated by signature/token.
    csrf.exempt(webhooks.bp)
    csrf.exempt(api.bp)
    app.cli.add_command(cli.broadcast_group)
    app.cli.add_command(cli.spool_group)
    # A spool left by an earlier process (answers kept while the database was down) is stored by this one.
    app.before_request(spool.replay_left_over_spool)
    add_nav(app, "ivr.broadcast_list", "Safety broadcasts", (Role.CRISIS_MANAGER, Role.MANAGER), order=20)
    register("ja", MESSAGES)

    from ivr.jma import init_jma

    init_jma(app)
