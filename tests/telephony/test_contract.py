"""The official Twilio client against the simulator over loopback, with Twilio's OpenAPI spec as the judge.

Every request the client puts on the wire must validate against the operation it targets, and every response
the simulator sends must validate against (and fill) the operation's response schema — then the client must
turn it into the right ``CallInstance`` / ``MessageInstance``.
"""

from __future__ import annotations

import io
import json
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from flask import Flask, jsonify
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from core.telephony.backend import (
    PermanentTelephonyError,
    RebasedHttpClient,
    TelephonyError,
    TransientTelephonyError,
    TwilioBackend,
    classify,
    make_backend,
)
from core.telephony.simulator import (
    InProcessTwilioHttpClient,
    ManualClock,
    contract,
    create_simulator_app,
    simulator_of,
)
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER

PERSON = "+819000000031"
ANSWER_URL = "http://127.0.0.1:9/voice"


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response: bytes = b""


class Wiretap:
    """WSGI middleware that keeps each request and response exactly as they crossed the wire."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
        exchange = Exchange(environ["REQUEST_METHOD"], environ["PATH_INFO"], headers, body)
        with self._lock:
            self.exchanges.append(exchange)

        def record_start(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            exchange.status = int(status.split()[0])
            return start_response(status, response_headers, exc_info)

        chunks = list(self.app(environ, record_start))
        exchange.response = b"".join(chunks)
        return chunks


@dataclass
class Tapped:
    client: Client
    backend: TwilioBackend
    tap: Wiretap
    url: str

    def last(self) -> Exchange:
        return self.tap.exchanges[-1]


@pytest.fixture()
def tapped(serve: Callable[[Flask], str]) -> Iterator[Tapped]:
    sim_app = create_simulator_app(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        clock=ManualClock(),
        scenario={"numbers": {PERSON: "never"}},
    )
    tap = Wiretap(sim_app.wsgi_app)
    sim_app.wsgi_app = tap  # type: ignore[method-assign]
    url = serve(sim_app)
    backend = TwilioBackend(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base=url, timeout_s=5)
    yield Tapped(backend.client, backend, tap, url)
    simulator_of(sim_app).stop()


def operation_for(exchange: Exchange) -> contract.Operation:
    template = exchange.path.replace(ACCOUNT_SID, "{AccountSid}")
    parts = template.split("/")
    if parts[-1].startswith(("CA", "SM")):
        parts[-1] = "{Sid}.json"
    return contract.operation(exchange.method, "/".join(parts))


def assert_request_follows_the_spec(exchange: Exchange) -> contract.Operation:
    operation = operation_for(exchange)
    assert exchange.headers["User-Agent"].startswith("twilio-python/")
    assert exchange.headers["Authorization"].startswith("Basic ")
    if exchange.method == "POST":
        assert exchange.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
        _, problems = operation.parse_form(parse_qsl(exchange.body.decode(), keep_blank_values=True))
        assert problems == []
    return operation


def assert_response_follows_the_spec(exchange: Exchange, operation: contract.Operation) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exchange.response)
    assert operation.validate_response(exchange.status, body) == []
    schema = operation.response_schemas[exchange.status]
    assert set(body) == set(schema["properties"])
    return body


def test_placing_a_call_follows_the_spec_both_ways(tapped: Tapped) -> None:
    placed = tapped.backend.place_call(
        to=PERSON,
        from_=OUR_NUMBER,
        answer_url=ANSWER_URL,
        status_callback_url="http://127.0.0.1:9/status",
        timeout_s=25,
        machine_detection=True,
    )
    exchange = tapped.last()
    operation = assert_request_follows_the_spec(exchange)
    assert operation.operation_id == "CreateCall"
    sent = parse_qsl(exchange.body.decode())
    # A list goes out as repeated keys, which the contract reads back as an array.
    assert [v for k, v in sent if k == "StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    assert ("MachineDetection", "Enable") in sent
    assert ("Timeout", "25") in sent
    body = assert_response_follows_the_spec(exchange, operation)
    assert exchange.status == 201
    assert body["sid"] == placed.sid
    assert placed.status == "queued"

    call = tapped.client.calls(placed.sid).fetch()
    fetch = tapped.last()
    assert_response_follows_the_spec(fetch, assert_request_follows_the_spec(fetch))
    assert (call.sid, call.to, call._from, call.direction, call.status) == (
        placed.sid,
        PERSON,
        OUR_NUMBER,
        "outbound-api",
        "queued",
    )
    assert isinstance(call.date_created, datetime)
    assert call.account_sid == ACCOUNT_SID
    assert call.to_formatted == "090-0000-0031"


def test_cancelling_follows_the_spec(tapped: Tapped) -> None:
    placed = tapped.backend.place_call(to=PERSON, from_=OUR_NUMBER, answer_url=ANSWER_URL)
    tapped.backend.cancel_call(placed.sid)
    exchange = tapped.last()
    operation = assert_request_follows_the_spec(exchange)
    assert operation.operation_id == "UpdateCall"
    body = assert_response_follows_the_spec(exchange, operation)
    assert body["status"] == "canceled"
    assert tapped.client.calls(placed.sid).fetch().status == "canceled"


def test_sending_an_sms_follows_the_spec_both_ways(tapped: Tapped) -> None:
    sent = tapped.backend.send_sms(
        to=PERSON,
        from_=OUR_NUMBER,
        body="Are you safe? https://example.com/r/x",
        status_callback_url=ANSWER_URL,
    )
    exchange = tapped.last()
    operation = assert_request_follows_the_spec(exchange)
    assert operation.operation_id == "CreateMessage"
    assert_response_follows_the_spec(exchange, operation)

    message = tapped.client.messages(sent.sid).fetch()
    fetch = tapped.last()
    assert_response_follows_the_spec(fetch, assert_request_follows_the_spec(fetch))
    assert (message.sid, message.to, message.from_, message.body, message.status, message.direction) == (
        sent.sid,
        PERSON,
        OUR_NUMBER,
        "Are you safe? https://example.com/r/x",
        "queued",
        "outbound-api",
    )
    assert message.num_segments == "1"
    assert isinstance(message.date_created, datetime)


@pytest.mark.parametrize(
    ("create", "status", "code"),
    [
        (lambda c: c.calls.create(to="", from_=OUR_NUMBER, url=ANSWER_URL), 400, 21201),
        (lambda c: c.calls.create(to=PERSON, from_="", url=ANSWER_URL), 400, 21213),
        (lambda c: c.calls.create(to="090-0000-0031", from_=OUR_NUMBER, url=ANSWER_URL), 400, 21211),
        (lambda c: c.calls.create(to=PERSON, from_="lifeline", url=ANSWER_URL), 400, 21212),
        (lambda c: c.calls.create(to=PERSON, from_=OUR_NUMBER, url="not a url"), 400, 21205),
        (lambda c: c.calls.create(to=PERSON, from_=OUR_NUMBER), 400, 21205),
        (lambda c: c.calls.create(to=PERSON, from_=OUR_NUMBER, url=ANSWER_URL, method="PUT"), 400, 70002),
        (lambda c: c.calls.create(to=PERSON, from_=OUR_NUMBER, url=ANSWER_URL, timeout="soon"), 400, 70002),
        (
            lambda c: c.calls.create(to=PERSON, from_=OUR_NUMBER, url=ANSWER_URL, machine_detection="Maybe"),
            400,
            21234,
        ),
        (
            lambda c: c.calls.create(
                to=PERSON, from_=OUR_NUMBER, url=ANSWER_URL, status_callback_event=["answered", "hung-up"]
            ),
            400,
            70002,
        ),
        (lambda c: c.messages.create(to="", from_=OUR_NUMBER, body="x"), 400, 21604),
        (lambda c: c.messages.create(to=PERSON, body="x"), 400, 21603),
        (lambda c: c.messages.create(to=PERSON, from_=OUR_NUMBER), 400, 21602),
        (lambda c: c.messages.create(to="12345", from_=OUR_NUMBER, body="x"), 400, 21211),
        (lambda c: c.messages.create(to=PERSON, from_=OUR_NUMBER, body="x" * 1601), 400, 21617),
        (lambda c: c.calls("CA" + "f" * 32).fetch(), 404, 20404),
        (lambda c: c.calls("not-a-sid").fetch(), 404, 20404),
        (lambda c: c.messages("SM" + "f" * 32).fetch(), 404, 20404),
    ],
)
def test_what_twilio_would_refuse_is_refused_the_same_way(
    tapped: Tapped, create: Callable[[Client], Any], status: int, code: int
) -> None:
    with pytest.raises(TwilioRestException) as refused:
        create(tapped.client)
    assert (refused.value.status, refused.value.code) == (status, code)
    error = json.loads(tapped.last().response)
    assert error == {
        "code": code,
        "message": error["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def test_wrong_credentials_get_401(tapped: Tapped) -> None:
    impostor = TwilioBackend(account_sid=ACCOUNT_SID, auth_token="wrong-token", api_base=tapped.url)
    with pytest.raises(PermanentTelephonyError) as refused:
        impostor.place_call(to=PERSON, from_=OUR_NUMBER, answer_url=ANSWER_URL)
    assert (refused.value.http_status, refused.value.code) == (401, 20003)
    assert tapped.last().status == 401

    other_account = "AC" + "9" * 32
    stranger = TwilioBackend(account_sid=other_account, auth_token=AUTH_TOKEN, api_base=tapped.url)
    with pytest.raises(PermanentTelephonyError) as wrong_account:
        stranger.send_sms(to=PERSON, from_=OUR_NUMBER, body="x")
    assert wrong_account.value.http_status == 401


def test_backend_refusals_are_permanent_with_twilios_code(tapped: Tapped) -> None:
    with pytest.raises(PermanentTelephonyError) as refused:
        tapped.backend.place_call(to="+81", from_=OUR_NUMBER, answer_url=ANSWER_URL)
    assert refused.value.code == 21211
    assert "21211" in str(refused.value)


def test_rate_limits_and_outages_are_transient(serve: Callable[[Flask], str]) -> None:
    flaky = Flask(__name__)
    replies = iter(
        [
            (429, {"code": 20429, "message": "Too Many Requests", "more_info": "", "status": 429}),
            (503, {"code": 20503, "message": "Service unavailable", "more_info": "", "status": 503}),
        ]
    )

    @flaky.post("/2010-04-01/Accounts/<sid>/Calls.json")
    def overloaded(sid: str) -> Any:
        status, body = next(replies)
        return jsonify(body), status

    backend = TwilioBackend(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base=serve(flaky), timeout_s=5
    )
    for expected in ((429, 20429), (503, 20503)):
        with pytest.raises(TransientTelephonyError) as failed:
            backend.place_call(to=PERSON, from_=OUR_NUMBER, answer_url=ANSWER_URL)
        assert (failed.value.http_status, failed.value.code) == expected

    nobody = TwilioBackend(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base="http://127.0.0.1:9", timeout_s=2
    )
    with pytest.raises(TransientTelephonyError):
        nobody.send_sms(to=PERSON, from_=OUR_NUMBER, body="x")


@pytest.mark.parametrize(
    ("raised", "kind", "code"),
    [
        (TwilioRestException(429, "u", "Too many", code=20429), TransientTelephonyError, 20429),
        (TwilioRestException(500, "u", "Oops", code=20500), TransientTelephonyError, 20500),
        (TwilioRestException(502, "u", "Bad gateway"), TransientTelephonyError, None),
        (TwilioRestException(400, "u", "Invalid 'To'", code=21211), PermanentTelephonyError, 21211),
        (TwilioRestException(400, "u", "Not verified", code=21210), PermanentTelephonyError, 21210),
        (TwilioRestException(400, "u", "Unsubscribed", code=21610), PermanentTelephonyError, 21610),
        (TwilioRestException(400, "u", "Trial", code=21608), PermanentTelephonyError, 21608),
        (requests.ConnectTimeout("slow"), TransientTelephonyError, None),
        (requests.ConnectionError("refused"), TransientTelephonyError, None),
    ],
)
def test_classify(raised: Exception, kind: type[TelephonyError], code: int | None) -> None:
    error = classify(raised)
    assert type(error) is kind
    assert error.code == code


def test_errors_survive_pickling() -> None:
    error = PermanentTelephonyError("Invalid 'To' Phone Number", code=21211, http_status=400)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.http_status, str(copy)) == (type(error), 21211, 400, str(error))


def test_make_backend_follows_the_settings() -> None:
    @dataclass(frozen=True)
    class Settings:
        twilio_account_sid: str
        twilio_auth_token: str
        twilio_api_base: str

    simulated = make_backend(Settings(ACCOUNT_SID, AUTH_TOKEN, "http://127.0.0.1:5050/"))
    assert isinstance(simulated, TwilioBackend)
    assert isinstance(simulated.client.http_client, RebasedHttpClient)
    assert simulated.client.http_client.api_base == "http://127.0.0.1:5050"
    real = make_backend(Settings(ACCOUNT_SID, AUTH_TOKEN, ""))
    assert isinstance(real, TwilioBackend)
    assert not isinstance(real.client.http_client, RebasedHttpClient)


def test_in_process_client_speaks_the_same_protocol() -> None:
    sim_app = create_simulator_app(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, clock=ManualClock())
    tap = Wiretap(sim_app.wsgi_app)
    sim_app.wsgi_app = tap  # type: ignore[method-assign]
    backend = TwilioBackend(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, http_client=InProcessTwilioHttpClient(sim_app)
    )
    placed = backend.place_call(
        to=PERSON, from_=OUR_NUMBER, answer_url=ANSWER_URL, status_callback_url=ANSWER_URL
    )
    assert_response_follows_the_spec(tap.exchanges[-1], assert_request_follows_the_spec(tap.exchanges[-1]))
    assert backend.client.calls(placed.sid).fetch().to == PERSON
    simulator_of(sim_app).stop()
