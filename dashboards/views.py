"""The overview page (``/dashboard``) and the numbers its script refreshes (``/dashboard/live.json``)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template
from flask_login import login_required

from core.i18n import current_language
from core.time import utcnow
from core.web import current_principal
from dashboards.overview import Overview, build_overview, live_values

bp = Blueprint(
    "dashboards",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)

LIVE_EVERY_S = 5


def _overview() -> Overview:
    return build_overview(
        principal=current_principal(),
        now=utcnow(),
        language=current_language(),
        installed=current_app.extensions.get("lifeline.parts", ()),
    )


@bp.get("/dashboard")
@login_required
def overview() -> str:
    data = _overview()
    live = live_values(data)
    return render_template(
        "dashboards/overview.html", overview=data, live=live, values=live.values, every=LIVE_EVERY_S
    )


@bp.get("/dashboard/live.json")
def live_json() -> Response:
    # No login redirect here: a script asking for numbers gets a 401 it can understand (current_principal).
    response = jsonify(live_values(_overview()).as_json())
    response.headers["Cache-Control"] = "no-store"
    return response
