"""The directory of people and places: organization, sites, departments, staff and their contact points."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_directory(app: Flask) -> None:
    """Navigation entries for the directory; safe to call more than once (the blueprint calls it)."""
    # Imported here: models import this package, and the web helpers import the models.
    from core.auth.models import Role
    from core.web import add_nav

    entries = (
        ("directory.staff_list", "Staff directory", (Role.ADMIN, Role.CRISIS_MANAGER, Role.MANAGER), 20),
        ("directory.import_upload", "Import staff", (Role.ADMIN,), 80),
        ("auth.users", "Users and roles", (Role.ADMIN,), 90),
        ("auth.audit_log", "Audit log", (Role.ADMIN,), 91),
        ("auth.api_tokens", "API tokens", (Role.ADMIN,), 92),
    )
    present = {item["endpoint"] for item in app.extensions.get("lifeline.nav", [])}
    for endpoint, label, roles, order in entries:
        if endpoint not in present:
            add_nav(app, endpoint, label, roles, order)
