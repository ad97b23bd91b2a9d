"""``@twilio_webhook``: only requests signed with our auth token, for the URL Twilio called, get through."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import Flask, request
from twilio.request_validator import RequestValidator
from werkzeug.middleware.proxy_fix import ProxyFix

from core.telephony.signature import public_url, sign_request, twilio_webhook

TOKEN = "webhook-token-0123456789"
PUBLIC = "https://lifeline.example.com"
FORM = {"CallSid": "CA" + "a" * 32, "CallStatus": "completed", "Digits": "2", "To": "+819000000001"}


def make_app(public_base_url: str = PUBLIC) -> Flask:
    app = Flask(__name__)
    app.extensions["lifeline.settings"] = SimpleNamespace(
        twilio_auth_token=TOKEN, public_base_url=public_base_url
    )
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]

    @app.route("/ivr/status", methods=["GET", "POST"])
    @twilio_webhook
    def status() -> str:
        return f"ok {request.values.get('CallStatus')}"

    return app


def post(
    app: Flask, *, signature: str | None, form: dict[str, str] = FORM, path: str = "/ivr/status?b=2&a=1"
) -> int:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    return app.test_client().post(path, data=form, headers=headers).status_code


SIGNED_URL = f"{PUBLIC}/ivr/status?b=2&a=1"


@pytest.mark.parametrize(
    ("case", "signature", "form", "expected"),
    [
        ("valid", sign_request(SIGNED_URL, FORM, TOKEN), FORM, 200),
        ("wrong token", sign_request(SIGNED_URL, FORM, "someone-elses-token"), FORM, 403),
        ("tampered parameter", sign_request(SIGNED_URL, FORM, TOKEN), {**FORM, "Digits": "1"}, 403),
        ("added parameter", sign_request(SIGNED_URL, FORM, TOKEN), {**FORM, "Extra": "x"}, 403),
        ("wrong URL", sign_request(f"{PUBLIC}/ivr/other?b=2&a=1", FORM, TOKEN), FORM, 403),
        ("query string dropped", sign_request(f"{PUBLIC}/ivr/status", FORM, TOKEN), FORM, 403),
        ("http instead of https", sign_request(SIGNED_URL.replace("https", "http"), FORM, TOKEN), FORM, 403),
        ("missing header", None, FORM, 403),
        ("empty header", "", FORM, 403),
    ],
)
def test_signature_cases(case: str, signature: str | None, form: dict[str, str], expected: int) -> None:
    assert post(make_app(), signature=signature, form=form) == expected, case


def test_sign_request_matches_twilios_validator() -> None:
    signature = sign_request(SIGNED_URL, FORM, TOKEN)
    assert RequestValidator(TOKEN).validate(SIGNED_URL, FORM, signature)
    # Twilio's reference example (Twilio docs, "Validating signatures"): the HMAC-SHA1 of URL + sorted params.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
    }
    params |= {"To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sign_request(url, params, "12345") == RequestValidator("12345").compute_signature(url, params)


def test_get_webhooks_are_signed_over_the_full_url() -> None:
    app = make_app()
    url = f"{PUBLIC}/ivr/status?CallStatus=ringing&CallSid=CA1"
    good = app.test_client().get(
        "/ivr/status?CallStatus=ringing&CallSid=CA1",
        headers={"X-Twilio-Signature": sign_request(url, {}, TOKEN)},
    )
    assert good.status_code == 200
    assert good.text == "ok ringing"
    tampered = app.test_client().get(
        "/ivr/status?CallStatus=completed&CallSid=CA1",
        headers={"X-Twilio-Signature": sign_request(url, {}, TOKEN)},
    )
    assert tampered.status_code == 403


def test_behind_a_proxy_the_public_url_is_what_counts() -> None:
    # The app runs on an internal address; Twilio called the public one and signed that.
    app = make_app(public_base_url=PUBLIC)
    signature = sign_request(SIGNED_URL, FORM, TOKEN)
    response = app.test_client().post(
        "/ivr/status?b=2&a=1",
        base_url="http://10.0.0.5:8000",
        data=FORM,
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 200


def test_proxy_headers_are_enough_when_no_public_url_is_configured() -> None:
    app = make_app(public_base_url="")
    signature = sign_request(f"{PUBLIC}/lifeline/ivr/status", FORM, TOKEN)
    headers = {
        "X-Twilio-Signature": signature,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "lifeline.example.com",
        "X-Forwarded-Prefix": "/lifeline",
    }
    response = app.test_client().post(
        "/ivr/status", base_url="http://10.0.0.5:8000", data=FORM, headers=headers
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("base", "path", "query", "expected"),
    [
        ("https://lifeline.example.com", "/ivr/voice", "", "https://lifeline.example.com/ivr/voice"),
        (
            "https://lifeline.example.com/",
            "/ivr/voice",
            "x=1&y=%2B81",
            "https://lifeline.example.com/ivr/voice?x=1&y=%2B81",
        ),
        ("http://127.0.0.1:5000", "/r/a b", "", "http://127.0.0.1:5000/r/a%20b"),
        ("https://lifeline.example.com", "/r/%E5%AE%89", "", "https://lifeline.example.com/r/%E5%AE%89"),
    ],
)
def test_public_url(base: str, path: str, query: str, expected: str) -> None:
    app = Flask(__name__)
    with app.test_request_context(path, query_string=query, base_url="http://10.0.0.5:8000"):
        assert public_url(request, base) == expected
