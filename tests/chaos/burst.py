"""A webhook burst: signed Twilio requests at a steady rate from a process of its own (``python -m
tests.chaos.burst PLAN.json RESULT.json``), so the load does not share a GIL with the simulator.

The plan names the app's public URL, the auth token to sign with, the rate and duration, and two lists of
requests: ``once`` (each sent exactly once — answers) and ``filler`` (sent over and over — duplicate callbacks and
page views). The result counts statuses, keeps each ``once`` request's outcome, and the latency percentiles.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from core.telephony.signature import sign_request

THREADS = 48


def _send(session: requests.Session, plan: dict[str, Any], item: dict[str, Any]) -> tuple[int, float, str]:
    url = plan["base_url"].rstrip("/") + item["path"]
    started = time.perf_counter()
    try:
        if item.get("method", "POST") == "GET":
            response = session.get(url, timeout=30)
        else:
            form = item.get("form", {})
            headers = (
                {"X-Twilio-Signature": sign_request(url, form, plan["auth_token"])}
                if item.get("signed", True)
                else {}
            )
            response = session.post(url, data=form, headers=headers, timeout=30)
        return response.status_code, time.perf_counter() - started, response.text[:300]
    except requests.RequestException as exc:
        return 0, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"


def run(plan: dict[str, Any]) -> dict[str, Any]:
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.mount("http://", HTTPAdapter(pool_maxsize=4))
        return local.session

    once = list(plan.get("once", []))
    filler = list(plan.get("filler", [])) or [{"method": "GET", "path": "/login"}]
    rate, seconds = float(plan["rate"]), float(plan["seconds"])
    total = int(rate * seconds)
    # The answers are spread evenly through the burst.
    every = max(1, total // max(1, len(once))) if once else 0
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    outcomes: dict[int, dict[str, Any]] = {}
    lock = threading.Lock()

    def task(n: int, item: dict[str, Any], once_index: int | None) -> None:
        status, latency, text = _send(session(), plan, item)
        with lock:
            statuses[status] += 1
            latencies.append(latency)
            if once_index is not None:
                outcomes[once_index] = {"status": status, "text": text}

    started = time.monotonic()
    pending = 0
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = []
        for n in range(total):
            due = started + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if once and every and n % every == 0 and (n // every) < len(once):
                index = n // every
                futures.append(pool.submit(task, n, once[index], index))
            else:
                futures.append(pool.submit(task, n, filler[n % len(filler)], None))
            pending += 1
        # Whatever did not fit in the time still goes out (answers are never dropped by the generator).
        sent_once = {
            n // every for n in range(total) if every and n % every == 0 and (n // every) < len(once)
        }
        for index in range(len(once)):
            if index not in sent_once:
                futures.append(pool.submit(task, -1, once[index], index))
        for future in futures:
            future.result()
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return {
        "sent": sum(statuses.values()),
        "seconds": elapsed,
        "achieved_rate": sum(statuses.values()) / elapsed if elapsed else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": pct(0.5) * 1000,
        "p99_ms": pct(0.99) * 1000,
        "once": [outcomes.get(i, {"status": 0, "text": "not sent"}) for i in range(len(once))],
    }


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(run(plan)))


if __name__ == "__main__":
    main()
