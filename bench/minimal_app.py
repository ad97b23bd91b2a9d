"""The baseline of items 3 and 5: a minimal Flask app answering the same webhook paths with the same TwiML, with no
database, no signature check and no extensions — served by gunicorn exactly like the real application.

``gunicorn bench.minimal_app:app``; the TwiML bodies come from the file named by ``BENCH_TWIML`` (JSON: path
prefix → body), captured from the real application's answers in the same run.
"""

from __future__ import annotations

import json
import os

from flask import Flask, Response

app = Flask(__name__)
_BODIES: dict[str, str] = {}
if os.environ.get("BENCH_TWIML"):
    with open(os.environ["BENCH_TWIML"]) as fh:
        _BODIES = json.load(fh)


@app.post("/hooks/ivr/voice/<int:attempt_id>/q/<int:index>/confirm/<value>")
def confirm(attempt_id: int, index: int, value: str) -> Response:
    return Response(_BODIES.get("confirm", "<Response/>"), mimetype="text/xml")


@app.post("/hooks/ivr/voice/<int:attempt_id>/status")
def status(attempt_id: int) -> tuple[str, int]:
    return "", 204


@app.post("/hooks/voice/inbound")
def inbound() -> Response:
    return Response(_BODIES.get("inbound", "<Response/>"), mimetype="text/xml")


@app.post("/hooks/voice/next")
def next_target() -> Response:
    return Response(_BODIES.get("inbound", "<Response/>"), mimetype="text/xml")
