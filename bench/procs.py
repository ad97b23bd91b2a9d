"""Entry points of the child processes the benchmarks start (``python -m bench.procs KIND …``).

* ``sink`` — a tiny HTTP server that takes the simulator's status callbacks (204), so the carrier side does the
  same work in the baseline and in the measured run without the application's webhooks in the way.
* ``bare-calls`` — the baseline of item 2: a bare loop of ``twilio.rest.Client`` calls to the simulator.
* ``dispatcher`` — the measured side of items 2 and 8: the dispatcher loop a worker runs (``ivr.dispatch.run``, what
  the ``ivr.dispatch`` task calls), against the benchmark's database and the simulator.

Workers wait for a common start time (``--start-at``, wall clock) so two of them begin together, and print one
JSON line with what they did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _wait_until(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


def sink(args: argparse.Namespace) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Sink)
    server.daemon_threads = True
    server.serve_forever()


def simulator(args: argparse.Namespace) -> None:
    """The telephone-network simulator, served the way ``lifeline simulator`` serves it."""
    from core.telephony.simulator.app import run_simulator

    run_simulator(
        "127.0.0.1",
        args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        speed=args.speed,
        scenario=args.scenario,
    )


def bare_calls(args: argparse.Namespace) -> None:
    """What a caller with no database, no ladder and no pacing achieves with the official client."""
    from twilio.rest import Client

    from core.telephony.backend import ALL_CALL_EVENTS, RebasedHttpClient

    client = Client(args.account_sid, args.auth_token, http_client=RebasedHttpClient(args.simulator))
    hooks = args.hooks.rstrip("/")
    _wait_until(args.start_at)
    started = time.time()
    for n in range(args.count):
        attempt = args.first + n
        client.calls.create(
            to=f"+8190000{attempt % 10000:05d}",
            from_="+15550100100",
            url=f"{hooks}/hooks/ivr/voice/{attempt}/start",
            method="POST",
            timeout=30,
            status_callback=f"{hooks}/hooks/ivr/voice/{attempt}/status",
            status_callback_event=list(ALL_CALL_EVENTS),
            status_callback_method="POST",
            machine_detection="Enable",
        )
    print(json.dumps({"started": started, "ended": time.time(), "placed": args.count}), flush=True)


class NullCarrier:
    """Takes every call and SMS at once and keeps nothing (item 8: the worker's memory, not the network's)."""

    def __init__(self) -> None:
        self.count = 0

    def place_call(self, **kw: Any) -> Any:
        from core.telephony import PlacedCall

        self.count += 1
        return PlacedCall(sid=f"CA{self.count:032x}", status="queued")

    def send_sms(self, **kw: Any) -> Any:
        from core.telephony import SentMessage

        self.count += 1
        return SentMessage(sid=f"SM{self.count:032x}", status="queued")

    def cancel_call(self, call_sid: str) -> None:
        pass

    def end_call(self, call_sid: str) -> None:
        pass


class NullMailer:
    def __init__(self) -> None:
        self.count = 0

    def send(self, mail: Any) -> str:
        self.count += 1
        return f"<{self.count}@bench.invalid>"


def dispatcher(args: argparse.Namespace) -> None:
    """The worker's dispatcher loop until nothing is left to place (or ``--seconds`` pass)."""
    from core import db
    from core.app import create_app
    from core.mail import make_mail_backend
    from core.pacing import UnlimitedTokenBucket, make_bucket
    from core.telephony import make_backend
    from core.time import utcnow
    from ivr import dispatch

    app = create_app()
    settings = app.extensions["lifeline.settings"]
    peak = [_rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with app.app_context():
        out = dispatch.Outbound(
            backend=NullCarrier() if args.null_carrier else make_backend(settings),
            mailer=NullMailer() if args.null_carrier else make_mail_backend(settings),
            bucket=UnlimitedTokenBucket() if args.unpaced else make_bucket(settings, db.get_engine()),
            settings=settings,
        )
        idle_rss = _rss_mb()
        _wait_until(args.start_at)
        started = time.time()
        deadline = started + args.seconds if args.seconds else None
        report = dispatch.Report()
        while True:
            # Paced: what the ivr.dispatch task does with keep_pace_s (its period); back to back, as two
            # workers with a beat every 5 s and a queue that is never empty would run it.
            round_report = dispatch.run(out=out, keep_pace_s=0.0 if args.unpaced else args.keep_pace)
            report.add(round_report)
            db.session.commit()
            if deadline is not None and time.time() >= deadline:
                break
            moved = (
                round_report.placed or round_report.advanced or round_report.failed or round_report.retried
            )
            if not moved:
                if deadline is None and not dispatch.pending_work(now=utcnow()):
                    db.session.commit()
                    break
                db.session.commit()
                time.sleep(args.idle_sleep)
        ended = time.time()
    stop.set()
    sampler.join()
    print(
        json.dumps(
            {
                "started": started,
                "ended": ended,
                "placed": report.placed,
                "advanced": report.advanced,
                "failed": report.failed,
                "retried": report.retried,
                "cancelled": report.cancelled,
                "idle_rss_mb": idle_rss,
                "peak_rss_mb": max(peak[0], _rss_mb()),
            }
        ),
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.procs")
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("sink")
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("simulator")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--account-sid", required=True)
    p.add_argument("--auth-token", required=True)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--scenario", default=None)
    p = sub.add_parser("bare-calls")
    p.add_argument("--simulator", required=True)
    p.add_argument("--hooks", required=True)
    p.add_argument("--account-sid", required=True)
    p.add_argument("--auth-token", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--start-at", type=float, default=0.0)
    p = sub.add_parser("dispatcher")
    p.add_argument("--unpaced", action="store_true")
    p.add_argument("--null-carrier", action="store_true")
    p.add_argument("--keep-pace", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--idle-sleep", type=float, default=0.02)
    p.add_argument("--start-at", type=float, default=0.0)
    args = parser.parse_args(argv)
    {"sink": sink, "simulator": simulator, "bare-calls": bare_calls, "dispatcher": dispatcher}[args.kind](
        args
    )


if __name__ == "__main__":
    main(sys.argv[1:])
