"""A small call-centre application for the end-to-end tests: what the simulator calls back.

Every webhook is protected by ``@twilio_webhook`` (so a badly signed request from the simulator would be refused
and show up as a failed callback) and records what it received.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from flask import Flask, Response, abort, redirect, request, session
from werkzeug.wrappers import Response as WerkzeugResponse

from core.telephony.signature import twilio_webhook
from core.telephony.twiml import TWIML_MIMETYPE, MessagingResponse, VoiceResponse

MENU_PROMPT = "Press 1 if you are safe, 2 if you are injured."
NO_ANSWER_TEXT = "We did not receive your answer. Goodbye."
MACHINE_TEXT = "This is the safety confirmation service. Please check the SMS we sent you."
FAILOVER_TARGETS = ("+819000000011", "+819000000012", "+819000000013")


class Recorder:
    """What the application saw, per route, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def add(self, route: str, **extra: Any) -> None:
        entry = {"route": route, **request.form.to_dict(), **extra}
        with self._lock:
            self.requests.append(entry)

    def on(self, route: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["route"] == route]


def twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype=TWIML_MIMETYPE)


def make_callcentre_app(settings: Any) -> Flask:
    app = Flask(__name__)
    app.secret_key = "callcentre-test-secret"
    app.extensions["lifeline.settings"] = settings
    recorder = Recorder()
    app.extensions["recorder"] = recorder

    @app.post("/voice/menu")
    @twilio_webhook
    def menu() -> Response:
        recorder.add("menu")
        response = VoiceResponse()
        if request.form.get("AnsweredBy", "").startswith("machine"):
            response.say(MACHINE_TEXT)
            response.hangup()
            return twiml(response)
        gather = response.gather(num_digits=1, action="/voice/answer", method="POST", timeout=5)
        gather.say(MENU_PROMPT, language="en-US")
        response.say(NO_ANSWER_TEXT)
        return twiml(response)

    @app.post("/voice/answer")
    @twilio_webhook
    def answer() -> Response:
        recorder.add("answer")
        response = VoiceResponse()
        response.say("Thank you.")
        response.hangup()
        return twiml(response)

    @app.post("/status")
    @twilio_webhook
    def status() -> tuple[str, int]:
        recorder.add("status", idempotency_token=request.headers.get("I-Twilio-Idempotency-Token"))
        return "", 204

    @app.post("/sms-status")
    @twilio_webhook
    def sms_status() -> tuple[str, int]:
        recorder.add("sms-status")
        return "", 204

    def dial(step: int) -> Response:
        response = VoiceResponse()
        target = response.dial(action=f"/voice/failover-result?step={step}", timeout=10)
        target.number(FAILOVER_TARGETS[step])
        return twiml(response)

    @app.post("/voice/failover")
    @twilio_webhook
    def failover() -> Response:
        recorder.add("failover")
        return dial(0)

    @app.post("/voice/failover-result")
    @twilio_webhook
    def failover_result() -> Response:
        step = int(request.args["step"])
        recorder.add("failover-result", step=step)
        if request.form["DialCallStatus"] != "completed" and step + 1 < len(FAILOVER_TARGETS):
            return dial(step + 1)
        response = VoiceResponse()
        response.hangup()
        return twiml(response)

    @app.get("/r/<token>")
    def answer_page(token: str) -> str:
        session["csrf"] = secrets.token_hex(8)
        return f"""<!doctype html><html><body>
        <form method="get" action="/search"><input name="q"></form>
        <form method="post" action="/r/{token}">
          <input type="hidden" name="csrf_token" value="{session["csrf"]}">
          <fieldset><legend>Are you safe?</legend>
            <label><input type="radio" name="safety" value="safe"> safe</label>
            <label><input type="radio" name="safety" value="injured"> injured</label>
            <label><input type="radio" name="safety" value="need_help"> need help</label>
          </fieldset>
          <fieldset><legend>Can you work?</legend>
            <label><input type="radio" name="work" value="office"> office</label>
            <label><input type="radio" name="work" value="home"> home</label>
          </fieldset>
          <textarea name="note"></textarea>
          <button type="submit" name="action" value="send">Send</button>
        </form></body></html>"""

    @app.post("/r/<token>")
    def submit_answer(token: str) -> WerkzeugResponse:
        if not session.get("csrf") or request.form.get("csrf_token") != session["csrf"]:
            abort(400)
        recorder.add("web-answer", token=token)
        return redirect(f"/r/{token}/thanks")

    @app.get("/r/<token>/thanks")
    def thanks(token: str) -> str:
        return "Thank you, your answer is recorded."

    @app.post("/inbound/voice")
    @twilio_webhook
    def inbound_voice() -> Response:
        recorder.add("inbound")
        response = VoiceResponse()
        gather = response.gather(num_digits=1, action="/inbound/route", timeout=4)
        gather.say("Press 1 for an agent, 2 to wait in the queue.")
        response.say(NO_ANSWER_TEXT)
        return twiml(response)

    @app.post("/inbound/route")
    @twilio_webhook
    def inbound_route() -> Response:
        recorder.add("inbound-route")
        response = VoiceResponse()
        if request.form["Digits"] == "1":
            dial = response.dial(action="/inbound/dial-result", timeout=15)
            dial.client("agent-1")
            dial.client("agent-2")
        else:
            response.enqueue("support", wait_url="/queue/wait", action="/queue/result")
        return twiml(response)

    @app.post("/inbound/dial-result")
    @twilio_webhook
    def inbound_dial_result() -> Response:
        recorder.add("inbound-dial-result")
        response = VoiceResponse()
        response.hangup()
        return twiml(response)

    @app.post("/inbound/reject")
    @twilio_webhook
    def inbound_reject() -> Response:
        recorder.add("reject")
        response = VoiceResponse()
        response.reject(reason="busy")
        return twiml(response)

    @app.post("/queue/enter")
    @twilio_webhook
    def queue_enter() -> Response:
        recorder.add("queue-enter")
        response = VoiceResponse()
        response.enqueue("support", wait_url="/queue/wait-then-leave", action="/queue/result")
        response.say("Nobody could take your call.")
        return twiml(response)

    @app.post("/queue/wait-then-leave")
    @twilio_webhook
    def queue_wait_then_leave() -> Response:
        recorder.add("queue-wait")
        response = VoiceResponse()
        if int(request.form["QueueTime"]) < 20:
            response.say("Please hold.")
            response.pause(length=10)
        else:
            response.leave()
        return twiml(response)

    @app.get("/voice/get")
    @twilio_webhook
    def voice_by_get() -> Response:
        recorder.add("voice-get", **request.args.to_dict())
        response = VoiceResponse()
        response.say("Fetched with GET.")
        return twiml(response)

    @app.post("/queue/wait")
    @twilio_webhook
    def queue_wait() -> Response:
        recorder.add("queue-wait")
        response = VoiceResponse()
        response.say("All our agents are busy. Please hold.")
        response.pause(length=5)
        return twiml(response)

    @app.post("/queue/result")
    @twilio_webhook
    def queue_result() -> Response:
        recorder.add("queue-result")
        response = VoiceResponse()
        response.hangup()
        return twiml(response)

    @app.post("/agent")
    @twilio_webhook
    def agent() -> Response:
        recorder.add("agent")
        response = VoiceResponse()
        dial = response.dial(action="/agent/result", timeout=5)
        dial.queue("support")
        return twiml(response)

    @app.post("/agent/result")
    @twilio_webhook
    def agent_result() -> Response:
        recorder.add("agent-result")
        response = VoiceResponse()
        response.hangup()
        return twiml(response)

    @app.post("/voicemail")
    @twilio_webhook
    def voicemail() -> Response:
        recorder.add("voicemail")
        response = VoiceResponse()
        response.say("Please leave a message after the tone.")
        response.record(action="/voicemail/saved", max_length=30, timeout=3)
        return twiml(response)

    @app.post("/voicemail/saved")
    @twilio_webhook
    def voicemail_saved() -> Response:
        recorder.add("voicemail-saved")
        response = VoiceResponse()
        response.hangup()
        return twiml(response)

    @app.post("/hold")
    @twilio_webhook
    def hold() -> Response:
        recorder.add("hold")
        response = VoiceResponse()
        response.pause(length=120)
        response.say("Still there?")
        return twiml(response)

    @app.post("/moved")
    @twilio_webhook
    def moved() -> Response:
        recorder.add("moved")
        response = VoiceResponse()
        response.say("You were moved.")
        response.hangup()
        return twiml(response)

    @app.post("/sms/in")
    @twilio_webhook
    def sms_in() -> Response:
        recorder.add("sms-in")
        reply = MessagingResponse()
        reply.message("Received, thank you.")
        return Response(str(reply), mimetype=TWIML_MIMETYPE)

    @app.post("/broken")
    @twilio_webhook
    def broken() -> tuple[str, int]:
        recorder.add("broken")
        return "internal error", 500

    return app
