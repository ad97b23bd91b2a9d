"""Dashboards: the overview every signed-in user opens first, over all the other parts. Owns no tables; nothing
imports it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """The overview page and its live numbers, the navigation entry, the Japanese texts."""
    from core import i18n
    from core.web import add_nav
    from dashboards.i18n_ja import MESSAGES
    from dashboards.views import bp

    i18n.register("ja", MESSAGES)
    app.register_blueprint(bp)
    add_nav(app, "dashboards.overview", "Overview", (), order=1)
