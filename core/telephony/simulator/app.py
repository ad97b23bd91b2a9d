"""The simulator's HTTP face: Twilio's REST API (the subset Lifeline uses) plus ``/_sim`` for people and tests.

Twilio REST (HTTP Basic auth: account SID + auth token)::

    POST /2010-04-01/Accounts/{AccountSid}/Calls.json            create a call        → 201 Call
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json      fetch                → 200 Call
    POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json      cancel / hang up / redirect
    POST /2010-04-01/Accounts/{AccountSid}/Messages.json         send an SMS          → 201 Message
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   fetch                → 200 Message
    GET  /2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}      a second of silence (what <Record> "recorded")

Each request is checked against the operation in Twilio's OpenAPI spec; what Twilio would refuse gets a 400 with
Twilio's error JSON (``{"code", "message", "more_info", "status"}``).

Simulator control (JSON; no auth — bind it to loopback)::

    GET  /_sim/health                 clock, pending events, counts
    GET  /_sim/calls[/<sid>]          calls with timeline, digits pressed, Say texts, dialed parties
    GET  /_sim/messages[/<sid>]       SMS with delivery timeline and web visits
    GET  /_sim/mail, POST /_sim/mail  the e-mail mailbox ({to, subject, body, from})
    GET  /_sim/numbers, POST /_sim/numbers   the application's inbound numbers ({number, voice_url, …})
    POST /_sim/inbound                a person calls in ({to, from, voice_url?, method?, digits?, hangup_after_s?})
    POST /_sim/inbound_sms            a person texts in ({to, from, body, sms_url?})
    GET  /_sim/people/<key>           how the scenario makes this number behave
    POST /_sim/advance                ({seconds}) move a manual clock forward
    POST /_sim/reset                  forget calls, messages, mail and queues
"""

from __future__ import annotations

import hmac
import logging
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.serving import make_server

from core.telephony.simulator import contract
from core.telephony.simulator.clock import Clock
from core.telephony.simulator.contract import Operation, Violation
from core.telephony.simulator.network import Simulator, SimulatorError
from core.telephony.simulator.records import InboundNumber, iso
from core.telephony.simulator.scenario import Scenario
from core.telephony.simulator.transport import Transport

log = logging.getLogger(__name__)

EXTENSION = "lifeline.telephony_simulator"

# Twilio's error codes for the rules a request can break, by (operation, field, rule).
_ERROR_CODES: Mapping[tuple[str, str, str], tuple[int, str]] = {
    ("CreateCall", "To", "required"): (21201, "No 'To' number is specified"),
    ("CreateCall", "From", "required"): (21213, "No 'From' number is specified"),
    ("CreateCall", "To", "format"): (21211, "Invalid 'To' Phone Number: {value}"),
    ("CreateCall", "From", "format"): (21212, "Invalid 'From' Phone Number: {value}"),
    ("CreateCall", "Url", "format"): (21205, "Url is not a valid URL: {value}"),
    ("CreateCall", "FallbackUrl", "format"): (21205, "FallbackUrl is not a valid URL: {value}"),
    ("CreateCall", "StatusCallback", "format"): (21609, "Invalid StatusCallback url: {value}"),
    ("UpdateCall", "Url", "format"): (21205, "Url is not a valid URL: {value}"),
    ("CreateMessage", "To", "required"): (21604, "A 'To' phone number is required."),
    ("CreateMessage", "To", "format"): (21211, "Invalid 'To' Phone Number: {value}"),
    ("CreateMessage", "From", "format"): (21212, "Invalid 'From' Phone Number: {value}"),
    ("CreateMessage", "StatusCallback", "format"): (21609, "Invalid StatusCallback url: {value}"),
}
# Anything else the schema rejects (a wrong type, an unknown enum value): Twilio's generic "Bad request".
_GENERIC_CODE = 70002


def twilio_error(code: int, message: str, status: int) -> Response:
    response = jsonify(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    )
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


def simulator_of(app: Flask) -> Simulator:
    sim: Simulator = app.extensions[EXTENSION]
    return sim


def _sim() -> Simulator:
    return simulator_of(current_app)


def _authenticate(operation: Operation, account_sid: str, sid: str | None = None) -> Response | None:
    sim = _sim()
    auth = request.authorization
    if (
        auth is None
        or auth.type != "basic"
        or not hmac.compare_digest(auth.username or "", sim.account_sid)
        or not hmac.compare_digest(auth.password or "", sim.auth_token)
    ):
        return twilio_error(20003, "Authenticate", 401)
    path = {"AccountSid": account_sid} if sid is None else {"AccountSid": account_sid, "Sid": sid}
    if operation.validate_path(path) or account_sid != sim.account_sid:
        return twilio_error(20404, f"The requested resource {request.path} was not found", 404)
    return None


def _refuse(operation: Operation, form: Mapping[str, Any], problems: list[Violation]) -> Response:
    problem = problems[0]
    known = _ERROR_CODES.get((operation.operation_id, problem.field or "", problem.rule))
    if known is not None:
        code, template = known
        return twilio_error(code, template.format(value=form.get(problem.field or "", "")), 400)
    return twilio_error(_GENERIC_CODE, problem.message, 400)


def _form_pairs() -> list[tuple[str, str]]:
    return list(request.form.items(multi=True))


def _resource(operation: Operation, status: int, body: dict[str, Any]) -> Response:
    problems = operation.validate_response(status, body)
    if problems:  # a simulator bug: the client would choke on it exactly like on a broken Twilio
        log.error("simulator response for %s breaks the schema: %s", operation.operation_id, problems)
    response = jsonify(body)
    response.status_code = status
    return response


def _json_input() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        return data
    return request.form.to_dict()


def _digits(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",")]


def _silent_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    samples = int(seconds * rate)
    data = b"\x00\x00" * samples
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        len(data),
    )
    return header + data


api = Blueprint("twilio_api", __name__, url_prefix="/2010-04-01/Accounts/<account_sid>")
control = Blueprint("simulator_control", __name__, url_prefix="/_sim")


@api.errorhandler(SimulatorError)
@control.errorhandler(SimulatorError)
def _simulator_error(exc: SimulatorError) -> Response:
    return twilio_error(exc.code, exc.message, exc.status)


@api.post("/Calls.json")
def create_call(account_sid: str) -> Response:
    operation = contract.operation(*contract.CREATE_CALL)
    refused = _authenticate(operation, account_sid)
    if refused is not None:
        return refused
    params, problems = operation.parse_form(_form_pairs())
    if problems:
        return _refuse(operation, params, problems)
    call = _sim().create_call(params)
    return _resource(operation, 201, call.resource())


@api.get("/Calls/<sid>.json")
def fetch_call(account_sid: str, sid: str) -> Response:
    operation = contract.operation(*contract.FETCH_CALL)
    refused = _authenticate(operation, account_sid, sid)
    if refused is not None:
        return refused
    return _resource(operation, 200, _sim().get_call(sid).resource())


@api.post("/Calls/<sid>.json")
def update_call(account_sid: str, sid: str) -> Response:
    operation = contract.operation(*contract.UPDATE_CALL)
    refused = _authenticate(operation, account_sid, sid)
    if refused is not None:
        return refused
    params, problems = operation.parse_form(_form_pairs())
    if problems:
        return _refuse(operation, params, problems)
    call = _sim().update_call(sid, params)
    return _resource(operation, 200, call.resource())


@api.post("/Messages.json")
def create_message(account_sid: str) -> Response:
    operation = contract.operation(*contract.CREATE_MESSAGE)
    refused = _authenticate(operation, account_sid)
    if refused is not None:
        return refused
    params, problems = operation.parse_form(_form_pairs())
    if problems:
        return _refuse(operation, params, problems)
    message = _sim().create_message(params)
    return _resource(operation, 201, message.resource())


@api.get("/Messages/<sid>.json")
def fetch_message(account_sid: str, sid: str) -> Response:
    operation = contract.operation(*contract.FETCH_MESSAGE)
    refused = _authenticate(operation, account_sid, sid)
    if refused is not None:
        return refused
    return _resource(operation, 200, _sim().get_message(sid).resource())


@api.get("/Recordings/<recording>")
def fetch_recording(account_sid: str, recording: str) -> Response:
    # Recordings are public media URLs on Twilio too (unless the account turns on auth): serve a second of silence.
    return Response(_silent_wav(), mimetype="audio/x-wav")


@control.get("/health")
def health() -> Response:
    sim = _sim()
    return jsonify(
        ok=True,
        now=iso(sim.now()),
        pending_events=sim.scheduler.pending(),
        calls=len(sim.calls),
        messages=len(sim.messages),
        mail=len(sim.mail),
        manual_clock=sim.manual_clock is not None,
    )


@control.get("/calls")
def list_calls() -> Response:
    return jsonify(_sim().calls_summary())


@control.get("/calls/<sid>")
def show_call(sid: str) -> Response:
    return jsonify(_sim().get_call(sid).summary())


@control.get("/messages")
def list_messages() -> Response:
    return jsonify(_sim().messages_summary())


@control.get("/messages/<sid>")
def show_message(sid: str) -> Response:
    return jsonify(_sim().get_message(sid).summary())


@control.get("/mail")
def list_mail() -> Response:
    return jsonify(_sim().mail_summary())


@control.post("/mail")
def receive_mail() -> tuple[Response, int]:
    data = _json_input()
    if not data.get("to"):
        return jsonify(error="'to' is required"), 400
    mail = _sim().receive_mail(
        to=str(data["to"]),
        subject=str(data.get("subject", "")),
        body=str(data.get("body", "")),
        from_=str(data.get("from", "")),
    )
    return jsonify(mail.summary()), 201


@control.get("/numbers")
def list_numbers() -> Response:
    return jsonify([number.as_dict() for number in _sim().numbers.values()])


@control.post("/numbers")
def register_number() -> tuple[Response, int]:
    data = _json_input()
    if not data.get("number"):
        return jsonify(error="'number' is required"), 400
    number = InboundNumber(
        number=str(data["number"]),
        voice_url=data.get("voice_url"),
        voice_method=str(data.get("voice_method", "POST")).upper(),
        status_callback=data.get("status_callback"),
        status_callback_method=str(data.get("status_callback_method", "POST")).upper(),
        sms_url=data.get("sms_url"),
        sms_method=str(data.get("sms_method", "POST")).upper(),
    )
    _sim().register_number(number)
    return jsonify(number.as_dict()), 201


@control.post("/inbound")
def inbound_call() -> tuple[Response, int]:
    data = _json_input()
    if not data.get("to") or not data.get("from"):
        return jsonify(error="'to' and 'from' are required"), 400
    hangup = data.get("hangup_after_s")
    call = _sim().inbound_call(
        to=str(data["to"]),
        from_=str(data["from"]),
        voice_url=data.get("voice_url"),
        method=data.get("method"),
        digits=_digits(data.get("digits")),
        hangup_after_s=float(hangup) if hangup not in (None, "") else None,
        status_callback=data.get("status_callback"),
    )
    return jsonify(call.summary()), 201


@control.post("/inbound_sms")
def inbound_sms() -> tuple[Response, int]:
    data = _json_input()
    if not data.get("to") or not data.get("from"):
        return jsonify(error="'to' and 'from' are required"), 400
    message = _sim().inbound_sms(
        to=str(data["to"]),
        from_=str(data["from"]),
        body=str(data.get("body", "")),
        sms_url=data.get("sms_url"),
    )
    return jsonify(message.summary()), 201


@control.get("/people/<path:key>")
def show_person(key: str) -> Response:
    return jsonify(_sim().scenario.person(key).as_dict())


@control.post("/advance")
def advance() -> tuple[Response, int]:
    clock = _sim().manual_clock
    if clock is None:
        return jsonify(error="the clock runs by itself; /_sim/advance needs a manual clock"), 409
    seconds = float(_json_input().get("seconds", 0))
    ran = clock.advance(seconds)
    return jsonify(ran=ran, now=iso(clock.now())), 200


@control.post("/reset")
def reset() -> Response:
    _sim().reset()
    return jsonify(ok=True)


def create_simulator_app(
    *,
    account_sid: str,
    auth_token: str,
    speed: float = 1.0,
    scenario: Scenario | str | Path | Mapping[str, Any] | None = None,
    clock: Clock | None = None,
    http: Transport | requests.Session | Flask | None = None,
    base_url: str = "http://127.0.0.1:5050",
    webhook_timeout_s: float = 15.0,
) -> Flask:
    """A Flask app speaking Twilio's REST API backed by a simulated network (its clock starts now).

    ``http`` is how the network reaches the application: a :class:`Transport`, a ``requests.Session``, or a Flask
    app called in-process. Call ``simulator_of(app).stop()`` when done.
    """
    sim = Simulator(
        account_sid=account_sid,
        auth_token=auth_token,
        speed=speed,
        scenario=scenario if isinstance(scenario, Scenario) else Scenario.load(scenario),
        clock=clock,
        transport=http,
        base_url=base_url,
        webhook_timeout_s=webhook_timeout_s,
    )
    app = Flask(__name__, static_folder=None)
    app.extensions[EXTENSION] = sim
    app.register_blueprint(api)
    app.register_blueprint(control)

    @app.errorhandler(404)
    def not_found(exc: Exception) -> Response:
        return twilio_error(20404, f"The requested resource {request.path} was not found", 404)

    @app.errorhandler(405)
    def not_allowed(exc: Exception) -> Response:
        return twilio_error(20004, "Method not allowed", 405)

    return app


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 5050,
    *,
    account_sid: str,
    auth_token: str,
    speed: float = 1.0,
    scenario: Scenario | str | Path | Mapping[str, Any] | None = None,
) -> None:
    """Serve the simulator until interrupted (``lifeline simulator``)."""
    loaded = scenario if isinstance(scenario, Scenario) else Scenario.load(scenario)
    app = create_simulator_app(
        account_sid=account_sid,
        auth_token=auth_token,
        speed=speed,
        scenario=loaded,
        base_url=f"http://{host}:{port}",
    )
    server = make_server(host, port, app, threaded=True)
    log.info("telephone-network simulator on http://%s:%s (speed ×%s)", host, port, speed)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        simulator_of(app).stop()
