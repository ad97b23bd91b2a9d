"""The public status page (``/status/<slug>`` and ``/status/<slug>.json``) and the carrier's status callbacks.

The status page is what customers refresh while the phones are busy: no login, no script, a tiny page in both
languages at once (so every visitor gets the same cacheable bytes), rendered from one cached row, with cache
headers that let browsers and proxies carry most of the load.
"""

from __future__ import annotations

from flask import Response, abort, jsonify, make_response, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from core.i18n import gettext
from core.telephony.signature import twilio_webhook
from incidents import notices, status
from incidents.web import hooks, public

CACHE_CONTROL = "public, max-age=30"


def _cacheable(response: BaseResponse, snap: status.Snapshot) -> BaseResponse:
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.set_etag(snap.etag)
    response.last_modified = snap.updated_at
    return response.make_conditional(request)


def _snapshot(slug: str) -> status.Snapshot:
    snap = status.public_snapshot(slug) if 0 < len(slug) <= 60 else None
    if snap is None:
        abort(404)
    return snap


@public.get("/status/<slug>.json")
def status_json(slug: str) -> BaseResponse:
    snap = _snapshot(slug)
    response = jsonify(snap.as_json())
    response.headers["Access-Control-Allow-Origin"] = "*"
    return _cacheable(response, snap)


@public.get("/status/<slug>")
def status_page(slug: str) -> BaseResponse:
    snap = _snapshot(slug)
    labels = {state: (gettext(text, "ja"), gettext(text, "en")) for state, text in status.STATE_TEXT.items()}
    page = render_template("incidents/status_public.html", snap=snap, labels=labels)
    return _cacheable(make_response(page), snap)


@hooks.post("/sms-status")
@twilio_webhook
def sms_status() -> Response:
    """Twilio's status callback for a notice SMS. ``d`` (in the signed URL) names our delivery row."""
    delivery = request.args.get("d", "")
    notices.record_provider_status(
        delivery_id=int(delivery) if delivery.isdigit() else None,
        provider_id=request.form.get("MessageSid", "") or request.form.get("SmsSid", ""),
        status=request.form.get("MessageStatus", "") or request.form.get("SmsStatus", ""),
        error_code=request.form.get("ErrorCode") or None,
    )
    # Always 204: an unknown message is not something Twilio could fix by retrying.
    return Response(status=204)
