"""Small helpers every blueprint uses: role checks, the current principal, navigation entries."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, g
from flask_login import current_user, login_required

from core.auth.models import Role
from core.auth.service import Principal, principal_for

F = TypeVar("F", bound=Callable[..., Any])


def whole_number(text: str | None, *, maximum: int = 2**31 - 1) -> int | None:
    """An id or a count from a URL or a form: ASCII digits up to ``maximum``, else None.

    ``str.isdigit`` alone lets "²" and "٣" through (``int()`` then fails or reads a digit no keypad has), and a
    number past the database's integer range fails inside the query: both would be a 500 instead of a 400/404.
    """
    if not text or not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    value = int(text)
    return value if value <= maximum else None


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:
        if not current_user.is_authenticated:
            abort(401)
        principal = principal_for(current_user)
        g.principal = principal
    return principal


def require_roles(*roles: Role) -> Callable[[F], F]:
    """Signed-in users holding one of ``roles`` (admins always); others get 403."""

    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_principal().has(*roles):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_roles = roles  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


def add_nav(app: Flask, endpoint: str, label: str, roles: tuple[Role, ...], order: int = 50) -> None:
    items: list[dict[str, Any]] = app.extensions.setdefault("lifeline.nav", [])
    items.append({"endpoint": endpoint, "label": label, "roles": roles, "order": order})
    items.sort(key=lambda i: i["order"])


def visible_nav(principal: Principal | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if principal is None:
        return []
    return [i for i in items if not i["roles"] or principal.has(*i["roles"])]


ALL_ROLES = tuple(Role)
