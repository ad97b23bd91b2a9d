"""5b. Routing: the inbound voice webhook under 200 concurrent calls, served by gunicorn.

200 calls are in progress at once; each one's carrier comes back every second (the call arrives: ``/inbound``;
its target did not answer: ``/next?attempt=1``, then ``/next?attempt=2``; then that caller hangs up and a new call
takes its place) — 200 requests/s at a fixed arrival rate, every one signed, every new call a new CallSid, so each
is a real lookup of the line, a snapshot of the sites and a recorded call and leg. A real ring timeout is 15-20 s,
so this is ten to twenty times what 200 real calls ask of the webhook. Baseline: the minimal Flask app answering
the same paths with the same TwiML, served the same way, under the same schedule.
"""

from __future__ import annotations

import json
from typing import Any

from bench.harness import Context, Figure, free_port, make_app, pending
from bench.web import gunicorn, load, signed

NAME = "routing_webhook"
USES_DATABASE = True
CALLS = 200
P99_MS = 50.0
LINE = "+15550100160"
PLAN: dict[str, Any] = {
    "site": "TKY",
    "targets": [
        {"kind": "site_agents", "site": "TKY", "ring_timeout_s": 15},
        {"kind": "site", "site": "OSA", "ring_timeout_s": 15},
        {"kind": "site", "site": "FUK", "ring_timeout_s": 15},
        {"kind": "home_agents", "ring_timeout_s": 20},
        {"kind": "voicemail"},
    ],
}


def center(ctx: Context) -> None:
    from continuity import service
    from core import db
    from core.directory.models import Organization, Site

    org = Organization(slug="bench-routing", name="Bench routing")
    db.session.add(org)
    db.session.flush()
    for code, pref in (("TKY", "13"), ("OSA", "27"), ("FUK", "40")):
        site = Site(organization_id=org.id, code=code, name=code, prefecture_code=pref)
        db.session.add(site)
        db.session.flush()
        for n in range(3):
            service.add_agent(
                site=site, name=f"{code} {n}", endpoint=f"client:{code.lower()}-agent-{n}", actor="bench"
            )
    plan = service.save_plan(organization_id=org.id, name="support", definition=PLAN, actor="bench")
    service.add_line(organization_id=org.id, number=LINE, name="support", plan=plan, actor="bench")
    db.session.commit()


def schedule(base: str, seconds: int) -> list[dict[str, Any]]:
    requests = []
    for second in range(seconds):
        for slot in range(CALLS):
            step = second % 3
            sid = f"CA{(second // 3) * CALLS + slot:032x}"
            params = {
                "CallSid": sid,
                "From": "+819000000123",
                "To": LINE,
                "Direction": "inbound",
                "AccountSid": "AC00000000000000000000000000000000",
                "CallStatus": "ringing",
            }
            if step == 0:
                requests.append(signed(base, "/hooks/voice/inbound", params))
            else:
                params |= {
                    "CallStatus": "in-progress",
                    "DialCallStatus": "no-answer",
                    "DialCallDuration": "0",
                }
                requests.append(signed(base, f"/hooks/voice/next?attempt={step}", params))
    return requests


def run(ctx: Context) -> list[Figure]:
    name = f"inbound voice webhook p99, {CALLS} concurrent calls ({CALLS} req/s)"
    target = f"p99 < {P99_MS:g} ms, 0 errors"
    try:
        from continuity import (
            service,  # noqa: F401
            webhooks,  # noqa: F401
        )
    except ImportError as exc:
        return [pending("5b", name, ctx.database, target, f"continuity webhooks not available: {exc}")]
    import requests as http

    app = make_app(ctx)
    with app.app_context():
        center(ctx)
    seconds = ctx.size(3, 21)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gunicorn(ctx, "gunicorn-app", "wsgi:app", ctx.env(public_base_url=base), port)
    first = schedule(base, 1)[0]
    sample = http.post(base + first["path"], data=first["body"], headers=first["headers"], timeout=30)
    sample.raise_for_status()
    bodies = ctx.scratch / "twiml-inbound.json"
    bodies.write_text(json.dumps({"inbound": sample.text}))
    minimal = gunicorn(ctx, "gunicorn-minimal", "bench.minimal_app:app", {"BENCH_TWIML": str(bodies)})
    spec = {
        "mode": "open",
        "rate": CALLS,
        "seconds": seconds,
        "max_connections": CALLS,
        "grace_s": ctx.size(5, 30),
    }
    baseline = load(ctx, minimal, schedule(minimal, seconds), **spec)
    # Fresh call SIDs for the application (the sample above took the first one).
    measured = load(ctx, base, schedule(base, seconds + 3)[CALLS * 3 :], **spec)
    return [
        Figure(
            item="5b",
            name=name,
            database=ctx.database,
            measured=measured["p99_ms"],
            unit="ms",
            baseline=baseline["p99_ms"],
            baseline_label="minimal endpoint, same schedule",
            ratio=measured["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] else None,
            ratio_label="measured ÷ baseline",
            target=target,
            passed=measured["p99_ms"] < P99_MS and measured["errors"] == 0,
            note=f"{measured['requests']} requests over {measured['seconds']:.1f} s, errors {measured['errors']} "
            f"{ {k: v for k, v in measured['statuses'].items() if not 200 <= k < 300} or '' }, "
            f"p50 {measured['p50_ms']:.1f} ms, max {measured['max_ms']:.0f} ms",
            extra={"measured": measured | {"ok_indexes": None}, "baseline": baseline | {"ok_indexes": None}},
        )
    ]
