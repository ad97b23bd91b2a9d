"""The blueprints of the incidents part and the small helpers their views share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, request
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from core.errors import LifelineError
from core.i18n import gettext as _

# Signed-in screens under /incidents (endpoint "incidents.*"); its static folder serves the team-chat script.
bp = Blueprint(
    "incidents",
    __name__,
    url_prefix="/incidents",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
# Anonymous pages: the public status page and the staff's boards (the link is the key).
public = Blueprint("incidents_public", __name__, template_folder="templates")
# Carrier callbacks: signed by Twilio instead of carrying a CSRF token.
hooks = Blueprint("incidents_hooks", __name__, url_prefix="/hooks/incidents")


def settings() -> Any:
    return current_app.extensions["lifeline.settings"]


def actor() -> str:
    return str(current_user.email)


def user_id() -> int:
    return int(current_user.id)


def form_int(name: str) -> int | None:
    value = request.form.get(name, "").strip()
    return int(value) if value.isdigit() else None


def form_ints(name: str) -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.strip().isdigit()]


def attempt(action: Callable[[], Any], *, done: str, back: str) -> BaseResponse:
    """Run a change; on a refusal show the reason on the page it came from and keep nothing of it."""
    try:
        action()
    except LifelineError as exc:
        g.rollback_only = True
        flash(_(str(exc)), "error")
        return redirect(back)
    if done:
        flash(_(done), "success")
    return redirect(back)


def private_headers(response: BaseResponse) -> BaseResponse:
    """Pages opened through a personal link: the URL is the key, so keep it out of caches and referrers."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response
