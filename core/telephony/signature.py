"""Is this webhook really from Twilio? ``X-Twilio-Signature`` checked on the URL Twilio called.

Twilio signs the URL *it* requested — the public one (``https://lifeline.example.com/ivr/voice?x=1``), not the
one the app sees behind a proxy (``http://10.0.0.5:8000/ivr/voice?x=1``). So the URL is rebuilt from the
configured public base URL + the request path + query string. The URL the app sees (with ``ProxyFix`` applied)
is tried as well, so a deployment whose public base URL is left at its default still validates when the proxy
headers are right; either way the HMAC with the auth token must match.

Usage in a domain package::

    from core.telephony.signature import twilio_webhook

    @bp.post("/ivr/voice")
    @twilio_webhook
    def voice() -> Response: ...

The decorator reads ``twilio_auth_token`` and ``public_base_url`` from the app's settings
(``app.extensions["lifeline.settings"]``) and answers 403 when the signature is missing or wrong.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from flask import Request, abort, current_app, request
from twilio.request_validator import RequestValidator
from werkzeug.urls import iri_to_uri

SIGNATURE_HEADER = "X-Twilio-Signature"

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class WebhookSettings(Protocol):
    @property
    def twilio_auth_token(self) -> str: ...

    @property
    def public_base_url(self) -> str: ...


def sign_request(url: str, params: Mapping[str, str], auth_token: str) -> str:
    """The ``X-Twilio-Signature`` value Twilio would send for a POST of ``params`` to ``url`` (GET: ``params={}``)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def public_url(req: Request, public_base_url: str | None) -> str:
    """The URL Twilio requested: public base + script root + path + query string."""
    # Twilio signs the URL in its percent-encoded form; werkzeug's req.url may show it decoded (an IRI), and
    # iri_to_uri does not undo every decoding (a "%3F" in the query stays "?"): the query is taken as sent.
    seen = urlsplit(iri_to_uri(req.url))
    query = req.query_string.decode("latin-1")
    if not public_base_url:
        return urlunsplit((seen.scheme, seen.netloc, seen.path, query, ""))
    return public_base_url.rstrip("/") + seen.path + (f"?{query}" if query else "")


def is_valid_twilio_request(req: Request, *, auth_token: str, public_base_url: str | None) -> bool:
    signature = req.headers.get(SIGNATURE_HEADER)
    if not signature or not auth_token:
        return False
    validator = RequestValidator(auth_token)
    # Twilio signs POST parameters; for GET everything is in the URL already.
    params: Any = req.form if req.method == "POST" else {}
    candidates = [public_url(req, public_base_url)]
    if public_base_url:
        candidates.append(public_url(req, None))
    return any(validator.validate(url, params, signature) for url in candidates)


def _settings() -> WebhookSettings:
    settings = current_app.extensions.get("lifeline.settings")
    if settings is None:
        raise RuntimeError(
            "twilio_webhook needs app.extensions['lifeline.settings'] (set by core.app.create_app)"
        )
    return settings


def twilio_webhook(view: Callable[P, R]) -> Callable[P, R]:
    """Flask view decorator: 403 unless the request carries a valid Twilio signature."""

    @functools.wraps(view)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        settings = _settings()
        if not is_valid_twilio_request(
            request, auth_token=settings.twilio_auth_token, public_base_url=settings.public_base_url
        ):
            log.warning(
                "refused a webhook with a missing or invalid Twilio signature: %s %s",
                request.method,
                request.path,
            )
            abort(403)
        return view(*args, **kwargs)

    return checked
