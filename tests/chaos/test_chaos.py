"""Chaos with real processes: a worker killed mid-broadcast, Redis and the web app restarted under the carrier's
duplicated and reordered callbacks, PostgreSQL stopped while answers arrive. Each run compares what the database
says with what the telephone network (the simulator) saw happen.

Needs PostgreSQL and Redis (``LIFELINE_TEST_DATABASE_URL``, ``LIFELINE_TEST_REDIS_URL``); skipped otherwise. The
PostgreSQL outage stops the server itself: it runs only when asked for (``-m pg_outage``, see conftest.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import make_url

from ivr.twiml import PHRASES
from tests.chaos import harness
from tests.chaos.harness import (
    answers_in_the_database,
    answers_seen_by_the_network,
    call_timelines_with_errors,
    duplicate_answers,
    select_count,
    sends_per_number,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SMS_THEN_CALL = [
    {"channels": ["sms"], "wait_minutes": 0.25, "contact": 0},
    {"channels": ["voice"], "wait_minutes": 0.1, "contact": 0},
]
# How long a broadcast of the chaos tests may take to finish sending before the test gives up on it.
FINISH_WITHIN_S = 600
# What a caller hears once their last answer is taken, in either language.
THANKS = {phrases["thanks"] for phrases in PHRASES.values()}


def people_scenario(*, chaos: float = 0.0) -> dict[str, Any]:
    """Most never answer (so every step of the ladder runs for them), some press keys, some use the link."""
    return {
        "seed": 11,
        "network": {
            "ring_s": 1,
            "sms_delivery_s": 2,
            "duplicate_callbacks": chaos,
            "reorder_callbacks": chaos,
        },
        "default": {
            "mix": [
                {"weight": 60, "behaviour": "never"},
                {"weight": 25, "behaviour": {"answer_call": {"after_s": 3, "digits": ["2", "1", "1", "1"]}}},
                {"weight": 15, "behaviour": {"sms_link": {"after_s": [10, 30], "answers": ["1", "2"]}}},
            ]
        },
    }


def explain(stack: harness.Stack, numbers: set[int]) -> None:
    """What the network and the database say about these people (printed when a check fails)."""
    for item in [*stack.network.messages(), *stack.network.calls()]:
        if harness.number_of(item.to) in numbers:
            print(item.to, item.sid, [(e.event, e.detail) for e in item.timeline.entries])
    if numbers:
        wanted = ",".join(f"'C{n:05d}'" for n in sorted(numbers)[:20])
        for row in stack.rows(
            "SELECT s.employee_id, a.id, a.channel, a.state, a.tries, a.error_reason, a.provider_sid, r.state,"
            " a.created_at, a.placed_at FROM ivr_recipients r JOIN staff s ON s.id = r.staff_id"
            f" LEFT JOIN ivr_attempts a ON a.recipient_id = r.id WHERE s.employee_id IN ({wanted})"
        ):
            print(row)


def check_reached_once_per_step(stack: harness.Stack, broadcast_id: int, people: int) -> None:
    """The simulator's log against the ladder: one SMS each (the first step), one call each for whoever had not
    answered by the link before the second, and the answers stored are exactly the ones the network saw the
    application accept — none lost, none counted twice."""
    sms, calls = sends_per_number(stack.network)
    missing = set(range(people)) - set(sms)
    twice = {n for n, c in [*sms.items(), *calls.items()] if c > 1}
    seen = answers_seen_by_the_network(stack.network)
    web_answerers = {n for n, (channel, _) in seen.items() if channel == "web"}
    not_called = set(range(people)) - set(calls) - web_answerers
    stored = answers_in_the_database(stack, broadcast_id)
    differ = {n for n in set(stored) | set(seen) if stored.get(n) != seen.get(n)}
    explain(stack, missing | twice | not_called | differ)
    assert not missing, f"{len(missing)} people never got their SMS: {sorted(missing)[:10]}"
    assert not twice, f"reached twice in one step: {sorted(twice)[:10]}"
    assert not not_called, f"{len(not_called)} people who had not answered were never called"
    assert stored == seen
    assert duplicate_answers(stack, broadcast_id) == []
    # Every send the database counts is one the network received, and the other way round.
    placed = dict(
        stack.rows(
            "SELECT channel, count(*) FROM ivr_attempts WHERE broadcast_id = :b AND provider_sid IS NOT NULL"
            " AND state NOT IN ('cancelled', 'pending', 'retry') GROUP BY channel",
            b=broadcast_id,
        )
    )
    assert placed == {"sms": sum(sms.values()), **({"voice": sum(calls.values())} if calls else {})}
    failed = select_count(
        stack,
        "SELECT count(*) FROM ivr_attempts WHERE broadcast_id = :b AND state = 'failed'",
        b=broadcast_id,
    )
    assert failed == 0


def test_a_worker_killed_mid_broadcast_is_replaced_and_nobody_is_reached_twice(tmp_path: Path) -> None:
    people = 2000
    with harness.stack(
        tmp_path,
        scenario=people_scenario(),
        speed=10,
        # A short lease, so the rows the dead worker held go out again within the test's minute.
        settings={"LIFELINE_DISPATCH_LEASE_SECONDS": "15"},
    ) as stack:
        harness.seed(stack.database_url, people=people, template=harness.chaos_template(steps=SMS_THEN_CALL))
        stack.start_worker("w1")
        stack.start_web()
        broadcast_id = stack.start_broadcast()
        stack.mark("broadcast started")
        wait_until("the first 600 SMS", lambda: len(stack.network.messages()) >= 600, timeout_s=90)
        stack.kill_worker("w1")  # kill -9, the worker and its pool, mid-batch
        killed_at = time.monotonic()
        time.sleep(0.5)  # requests already on the wire land
        sent_at_kill = stack.network.sends()
        stack.mark(f"worker killed after {sent_at_kill} sends")
        assert sent_at_kill < people, "the broadcast was over before the worker could be killed"
        stack.start_worker("w2")
        wait_until("sending to resume", lambda: stack.network.sends() > sent_at_kill, timeout_s=30)
        resumed_after = time.monotonic() - killed_at
        stack.mark(f"sending resumed {resumed_after:.1f} s after the kill")
        # The bound is on resuming (below); finishing only has to happen. 75 s on a quiet machine, 130 s at
        # a load average of 15: the generous limit keeps a busy CI machine from failing a run that is correct.
        stack.wait_finished(broadcast_id, timeout_s=FINISH_WITHIN_S)
        stack.mark("finished")
        assert call_timelines_with_errors(stack.network) == []  # the web app answered every webhook
        check_reached_once_per_step(stack, broadcast_id, people)
    assert resumed_after < 30


def test_redis_and_the_web_app_restarted_under_duplicated_callbacks_it_completes_counting_nothing_twice(
    tmp_path: Path,
) -> None:
    people = 1000
    with harness.stack(tmp_path, scenario=people_scenario(chaos=0.1), speed=10) as stack:
        harness.seed(stack.database_url, people=people, template=harness.chaos_template(steps=SMS_THEN_CALL))
        stack.start_worker("w1")
        stack.supervise()
        stack.start_web()
        broadcast_id = stack.start_broadcast()
        stack.mark("broadcast started")
        wait_until("the first 300 SMS", lambda: len(stack.network.messages()) >= 300, timeout_s=90)
        stack.redis.kill()  # broker, pacing and answer context gone at once; it comes back empty
        stack.mark(f"Redis killed after {stack.network.sends()} sends")
        time.sleep(2)
        stack.redis.start()
        stack.mark("Redis back")
        wait_until("the first calls", lambda: len(stack.network.calls()) >= 50, timeout_s=120)
        # The web app goes away under the callbacks for a few seconds: the network retries them (Twilio does).
        assert stack.web is not None
        stack.web.stop()
        stack.mark(f"web app stopped after {stack.network.sends()} sends")
        stack.start_web()
        stack.mark("web app back")
        stack.wait_finished(broadcast_id, timeout_s=FINISH_WITHIN_S)
        stack.mark("finished")
        retried = [
            m
            for m in stack.network.messages() + stack.network.calls()
            if "callback-failed" in m.timeline.events()
        ]
        duplicated = [
            m
            for m in stack.network.messages() + stack.network.calls()
            if "callback-duplicated" in m.timeline.events()
        ]
        stack.mark(f"{len(retried)} with a callback retried, {len(duplicated)} with one delivered twice")
        assert duplicated, "the scenario should have duplicated some callbacks"
        check_reached_once_per_step(stack, broadcast_id, people)
        # Status callbacks (retried, duplicated, late) never moved an attempt backwards: every SMS whose
        # "delivered" got through is delivered in the database.
        states = dict(
            stack.rows(
                "SELECT provider_sid, state || '/' || provider_status FROM ivr_attempts"
                " WHERE broadcast_id = :b AND channel = 'sms'",
                b=broadcast_id,
            )
        )
        wrong = [
            (m.to, states.get(m.sid))
            for m in stack.network.messages()
            if any(
                e.event == "callback" and e.detail.get("event") == "sms-delivered" for e in m.timeline.entries
            )
            and states.get(m.sid) != "completed/delivered"
        ]
        assert wrong == []


# --- PostgreSQL stopped for 30 s while people answer ------------------------------------------------------------------


class PostgresCluster:
    """The local cluster serving the test database, stopped and started with Debian's pg_ctlcluster."""

    def __init__(self, database_url: str) -> None:
        port = make_url(database_url).port or 5432
        if shutil.which("pg_lsclusters") is None or shutil.which("pg_ctlcluster") is None:
            pytest.skip("needs pg_lsclusters / pg_ctlcluster to stop and start PostgreSQL")
        listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True)
        for line in listing.stdout.splitlines():
            version, name, cluster_port, *_ = line.split()
            if int(cluster_port) == port:
                self.version, self.name = version, name
                return
        pytest.skip(f"no local PostgreSQL cluster listens on port {port}")

    def _ctl(self, action: str) -> None:
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                self.version,
                self.name,
                action,
                *(["-m", "fast"] if action == "stop" else []),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop(self) -> None:
        self._ctl("stop")

    def start(self) -> None:
        self._ctl("start")


def spool_lines(folder: Path) -> int:
    return sum(
        sum(1 for line in path.read_text().splitlines() if line.strip())
        for path in [folder / "pending.jsonl", *folder.glob("batch-*.jsonl")]
        if path.exists()
    )


VOICE_ONLY = [{"channels": ["voice"], "wait_minutes": 0.5, "contact": 0}]


@pytest.mark.pg_outage
def test_postgresql_outage_while_answers_arrive_loses_nothing(tmp_path: Path) -> None:
    callers, web = 300, 20
    scenario = {
        "seed": 5,
        "network": {"ring_s": 1},
        # People 300-319 never pick up: the test answers for them on the web, during the outage.
        "numbers": {"re:^\\+8190000003[01]\\d$": "never"},
        "default": {
            "mix": [
                {
                    "weight": 2,
                    "behaviour": {"answer_call": {"after_s": [2, 8], "digits": ["2", "1", "1", "1"]}},
                },
                {
                    "weight": 1,
                    "behaviour": {"answer_call": {"after_s": [2, 8], "digits": ["3", "1", "2", "1"]}},
                },
            ]
        },
    }
    database_url, _ = harness.required_services()
    cluster = PostgresCluster(database_url)
    with harness.stack(tmp_path, scenario=scenario, speed=1) as stack:
        harness.seed(
            stack.database_url, people=callers + web, template=harness.chaos_template(steps=VOICE_ONLY)
        )
        stack.start_worker("w1")
        stack.start_web()
        broadcast_id = stack.start_broadcast()
        stack.mark("broadcast started")
        wait_until("every call placed", lambda: len(stack.network.calls()) == callers + web, timeout_s=60)
        tokens = dict(
            stack.rows(
                "SELECT s.employee_id, r.token FROM ivr_recipients r JOIN staff s ON s.id = r.staff_id"
                " WHERE r.broadcast_id = :b",
                b=broadcast_id,
            )
        )
        pages: dict[int, tuple[requests.Session, str]] = {}
        for n in range(callers, callers + web):  # opened before the outage, sent during it
            browser = requests.Session()
            page = browser.get(f"{stack.app_url}/r/{tokens[f'C{n:05d}']}?lang=en", timeout=10)
            assert page.status_code == 200
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            pages[n] = (browser, csrf.group(1))
        cluster.stop()  # the callers are listening to their first question
        stopped_at = time.monotonic()
        down_from = datetime.now(UTC)
        stack.mark("PostgreSQL stopped")
        try:
            # The load balancer's question: this region cannot take writes now.
            assert requests.get(f"{stack.app_url}/healthz", timeout=10).status_code == 503
            web_sent: dict[int, dict[str, str]] = {}
            for n, (browser, csrf) in pages.items():
                answers = {"safety": str(1 + n % 3), "work": str(1 + n % 2)}
                reply = browser.post(
                    f"{stack.app_url}/r/{tokens[f'C{n:05d}']}",
                    data={"csrf_token": csrf, "lang": "en", **answers},
                    timeout=20,
                )
                assert reply.status_code == 200, reply.text[:500]
                assert "Thank you. Your answer has been recorded." in reply.text
                web_sent[n] = answers
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
        finally:
            down_until = datetime.now(UTC)
            cluster.start()
        spooled = spool_lines(tmp_path / "instance" / "spool")
        stack.mark(f"PostgreSQL started again; {spooled} answers and callbacks were kept in the spool")
        wait_until(
            "the health check to pass",
            lambda: requests.get(f"{stack.app_url}/healthz", timeout=5).ok,
            timeout_s=30,
        )
        assert spooled > web  # the callers' keys and the carrier's callbacks arrived during the outage too
        stack.wait_finished(broadcast_id, timeout_s=120)  # every call over, every callback delivered
        seen = answers_seen_by_the_network(stack.network) | {n: ("web", a) for n, a in web_sent.items()}
        wait_until(
            "every answer given during the outage to be stored",
            lambda: answers_in_the_database(stack, broadcast_id) == seen,
            timeout_s=90,
            every_s=1,
        )
        stack.mark("answers stored")
        # Callers heard everything they would have heard: no "application error", and their thanks.
        assert call_timelines_with_errors(stack.network) == []
        answered_calls = [c for c in stack.network.calls() if c.digits_pressed]
        assert len(answered_calls) == callers
        assert all(THANKS & {s["text"] for s in c.said} for c in answered_calls)
        stored = answers_in_the_database(stack, broadcast_id)
        assert stored == seen
        assert len(seen) == callers + web
        assert duplicate_answers(stack, broadcast_id) == []
        # The web answers carry the time they were given (during the outage), not the time they were stored.
        given = [
            at
            for (at,) in stack.rows(
                "SELECT at FROM ivr_answers WHERE broadcast_id = :b AND channel = 'web'", b=broadcast_id
            )
        ]
        assert len(given) == 2 * web and all(down_from <= at <= down_until for at in given)
        spool = tmp_path / "instance" / "spool"
        assert not list(spool.glob("batch-*.jsonl")) and not (spool / "rejected.jsonl").exists()
        assert not (spool / "pending.jsonl").exists() or (spool / "pending.jsonl").stat().st_size == 0
        # The carrier's final statuses from the outage reached the attempts too.
        in_progress = select_count(
            stack,
            "SELECT count(*) FROM ivr_attempts WHERE broadcast_id = :b AND state IN ('in_progress', 'dialing')",
            b=broadcast_id,
        )
        assert in_progress == 0
