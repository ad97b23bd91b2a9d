"""Stockpile: what each site must keep in stock (water, food, toilets, blankets, …), inventory lots, expiry,
shortfalls, rotation and purchase lists."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Plugs the stockpile into the app: screens, the ``lifeline stockpile`` commands, Japanese texts, nav."""
    from core import i18n
    from core.auth.models import Role
    from core.web import add_nav
    from stockpile import models  # noqa: F401  (tables known to the metadata before the first query)
    from stockpile.cli import stockpile_group
    from stockpile.i18n import MESSAGES
    from stockpile.views import bp

    i18n.register("ja", MESSAGES)
    app.register_blueprint(bp)
    app.cli.add_command(stockpile_group)
    add_nav(app, "stockpile.overview", "Stockpile", (Role.FACILITIES, Role.CRISIS_MANAGER), order=40)
