"""Load, on loopback: a drill of many people at 100 calls a second shared by two workers, while webhooks arrive
in bursts (duplicated carrier callbacks, answer pages opened, SMS replies that are answers). Zero 5xx, zero lost
answers, and the results equal to what the telephone network saw.

``make soak`` runs the full size (10,000 people, 60 s of bursts at 1,000 requests/s; ``LIFELINE_SOAK_*`` change
it); the CI's PostgreSQL + Redis run has a small version (1,000 people, 10 s of bursts). What was achieved —
calls/s, requests/s, latencies — is printed (tests never assert timings; on a small machine the offered rate may
not all be served, and that is reported, not failed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ivr.webhooks import SMS_THANKS
from tests.chaos import harness
from tests.chaos.harness import (
    answers_in_the_database,
    answers_seen_by_the_network,
    call_timelines_with_errors,
    duplicate_answers,
    sends_per_number,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

VOICE_ONLY = [{"channels": ["voice"], "wait_minutes": 0.2, "contact": 0}]


def scenario() -> dict[str, Any]:
    return {
        "seed": 21,
        "network": {"ring_s": 1},
        "default": {
            "mix": [
                {
                    "weight": 50,
                    "behaviour": {"answer_call": {"after_s": [2, 6], "digits": ["1", "1", "2", "1"]}},
                },
                {
                    "weight": 15,
                    "behaviour": {"answer_call": {"after_s": [2, 6], "digits": ["3", "1", "3", "1"]}},
                },
                {"weight": 25, "behaviour": "never"},
                {"weight": 10, "behaviour": "voicemail"},
            ]
        },
    }


def soak(
    tmp_path: Path, *, people: int, calls_per_second: int, burst_rate: int, burst_seconds: int
) -> dict[str, Any]:
    report: dict[str, Any] = {"people": people, "calls_per_second": calls_per_second}
    with harness.stack(
        tmp_path,
        scenario=scenario(),
        speed=10,
        settings={"LIFELINE_CALLS_PER_SECOND": str(calls_per_second)},
    ) as stack:
        harness.seed(stack.database_url, people=people, template=harness.chaos_template(steps=VOICE_ONLY))
        stack.start_worker("w1", beat=True)
        stack.start_worker("w2", beat=False)
        stack.supervise()
        stack.start_web(workers=2, threads=16)
        broadcast_id = stack.start_broadcast()
        started = time.monotonic()
        stack.mark("broadcast started")
        # The people who will answer by SMS: early ones (already called when the burst starts) who never pick up.
        never = [
            n
            for n in range(min(people, 1000))
            if stack.network.sim.scenario.person(harness.phone(n)).voice == "no_answer"
        ]
        wait_until(
            "the first 300 calls", lambda: len(stack.network.calls()) >= min(300, people), timeout_s=120
        )
        wait_until(
            "the SMS answerers to have been called",
            lambda: {harness.number_of(c.to) for c in stack.network.calls()} >= set(never[: people // 10]),
            timeout_s=180,
        )
        repliers = never[: people // 10]
        # Duplicates of callbacks the carrier did send: for calls already placed (a callback for a call still
        # waiting to leave would tell the dispatcher it left — Twilio never sends one).
        attempts = [
            row[0]
            for row in stack.rows(
                "SELECT id FROM ivr_attempts WHERE broadcast_id = :b AND provider_sid IS NOT NULL",
                b=broadcast_id,
            )
        ]
        tokens = [
            row[0]
            for row in stack.rows(
                "SELECT token FROM ivr_recipients WHERE broadcast_id = :b LIMIT 200", b=broadcast_id
            )
        ]
        filler: list[dict[str, Any]] = []
        for n, attempt_id in enumerate(attempts):
            status = ("initiated", "ringing")[n % 2]  # never a final one: duplicates must change nothing
            filler.append(
                {
                    "path": f"/hooks/ivr/voice/{attempt_id}/status",
                    "form": {"CallSid": f"CAdup{n}", "CallStatus": status},
                }
            )
            if n % 5 == 0:
                filler.append({"method": "GET", "path": f"/r/{tokens[n % len(tokens)]}"})
        plan = {
            "base_url": stack.app_url,
            "auth_token": harness.AUTH_TOKEN,
            "rate": burst_rate,
            "seconds": burst_seconds,
            "once": [
                {
                    "path": "/hooks/ivr/sms-inbound",
                    "form": {"From": harness.phone(n), "To": "+15550100100", "Body": "1 2"},
                }
                for n in repliers
            ],
            "filler": filler,
        }
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        stack.mark(
            f"burst: {burst_rate} requests/s for {burst_seconds} s, {len(repliers)} SMS answers among them"
        )
        burst = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.chaos.burst",
                str(tmp_path / "plan.json"),
                str(tmp_path / "burst.json"),
            ],
            cwd=harness.ROOT,
            timeout=burst_seconds * 10 + 300,
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads((tmp_path / "burst.json").read_text())
        stack.mark(f"burst over: {result['sent']} requests in {result['seconds']:.1f} s {result['statuses']}")
        stack.wait_finished(broadcast_id, timeout_s=max(300, people / calls_per_second * 4))
        stack.mark("finished")
        calls = stack.network.calls()
        first = min(stack.network.clock.wall_of(c.created_at) for c in calls)
        last = max(stack.network.clock.wall_of(c.created_at) for c in calls)
        report.update(
            {
                "calls": len(calls),
                "calls_per_second_achieved": round(len(calls) / max(last - first, 1e-9), 1),
                "drill_seconds": round(time.monotonic() - started, 1),
                "burst_requests": result["sent"],
                "burst_rate_offered": burst_rate,
                "burst_rate_achieved": round(result["achieved_rate"], 1),
                "burst_p50_ms": round(result["p50_ms"], 1),
                "burst_p99_ms": round(result["p99_ms"], 1),
                "burst_statuses": result["statuses"],
                "worker_restarts": stack.restarts,
            }
        )
        print("\nSOAK " + json.dumps(report), flush=True)
        assert burst.returncode == 0
        # Zero 5xx: not in the burst, not to the network (its callbacks and TwiML fetches).
        assert not [s for s in result["statuses"] if s == "0" or s.startswith("5")], result["statuses"]
        failed_callbacks = [
            (c.to, e.detail)
            for c in calls
            for e in c.timeline.entries
            if e.event == "callback-failed" and "HTTP 5" in str(e.detail.get("error", ""))
        ]
        assert failed_callbacks == [] and call_timelines_with_errors(stack.network) == []
        # Everyone reached once, every answer kept, and exactly what the network saw.
        _, per_number = sends_per_number(stack.network)
        assert set(per_number) == set(range(people)) and max(per_number.values()) == 1
        unthanked = [
            (n, o)
            for n, o in zip(repliers, result["once"], strict=True)
            if o["status"] != 200 or not any(thanks in o["text"] for thanks in SMS_THANKS.values())
        ]
        assert unthanked == [], unthanked[:5]
        seen = answers_seen_by_the_network(stack.network) | {
            n: ("sms", {"safety": "1", "work": "2"}) for n in repliers
        }
        stored = answers_in_the_database(stack, broadcast_id)
        assert {n: a for n, a in stored.items() if stored.get(n) != seen.get(n)} == {}
        assert stored == seen
        assert duplicate_answers(stack, broadcast_id) == []
        report["answers"] = len(stored)
    return report


def test_a_thousand_people_and_ten_seconds_of_bursts(tmp_path: Path) -> None:
    soak(tmp_path, people=1000, calls_per_second=100, burst_rate=150, burst_seconds=10)


@pytest.mark.soak
def test_soak(tmp_path: Path) -> None:
    soak(
        tmp_path,
        people=int(os.environ.get("LIFELINE_SOAK_PEOPLE", "10000")),
        calls_per_second=int(os.environ.get("LIFELINE_SOAK_CALLS_PER_SECOND", "100")),
        burst_rate=int(os.environ.get("LIFELINE_SOAK_BURST_RATE", "1000")),
        burst_seconds=int(os.environ.get("LIFELINE_SOAK_BURST_SECONDS", "60")),
    )
