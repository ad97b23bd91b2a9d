"""Serving and loading the application over HTTP: gunicorn children, signed webhook requests, the load generator."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.harness import AUTH_TOKEN, PYTHON, Context, free_port, percentile, wait_for_port

# The same for the application and for the minimal baseline: two processes (one per core), eight threads each so
# a request waiting for the database does not hold a core.
GUNICORN = ("--workers", "2", "--threads", "8", "--worker-class", "gthread", "--keep-alive", "30")


def gunicorn(ctx: Context, name: str, app: str, env: Mapping[str, str], port: int | None = None) -> str:
    """Serve ``app`` with gunicorn on a loopback port; returns its URL (the process is one of ctx.children)."""
    port = port or free_port()
    proc = ctx.children.start(
        name,
        [PYTHON, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", *GUNICORN, "--log-level", "warning"],
        dict(env),
    )
    wait_for_port(port, timeout_s=60, proc=proc)
    return f"http://127.0.0.1:{port}"


def signed(base_url: str, path: str, params: Mapping[str, str]) -> dict[str, Any]:
    """A form POST signed the way Twilio signs it (over the public URL)."""
    from core.telephony.signature import sign_request

    return {
        "method": "POST",
        "path": path,
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign_request(base_url + path, params, AUTH_TOKEN),
            "User-Agent": "TwilioProxy/1.1",
        },
        "body": urlencode(params),
    }


def load(ctx: Context, base_url: str, requests: Sequence[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """Run the load generator in its own process and return its result, with p50/p99 in milliseconds."""
    port = int(base_url.rsplit(":", 1)[1])
    spec_path = ctx.scratch / f"load-{free_port()}.json"
    out_path = spec_path.with_suffix(".out.json")
    spec_path.write_text(json.dumps({"host": "127.0.0.1", "port": port, "requests": list(requests), **spec}))
    proc = ctx.children.start("loadgen", [PYTHON, "-m", "bench.loadgen", str(spec_path), str(out_path)])
    timeout = float(spec.get("seconds", 10)) + float(spec.get("warmup_s", 0)) + 120
    proc.wait(timeout=timeout)
    ctx.children.stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}); see its log in {ctx.scratch}")
    result: dict[str, Any] = json.loads(Path(out_path).read_text())
    latencies = result.pop("latencies")
    statuses = {int(k): v for k, v in result["statuses"].items()}
    result["statuses"] = statuses
    result["requests"] = sum(statuses.values())
    result["errors"] = sum(n for status, n in statuses.items() if not 200 <= status < 300)
    result["rps"] = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    result["p50_ms"] = percentile(latencies, 50) * 1000
    result["p99_ms"] = percentile(latencies, 99) * 1000
    result["max_ms"] = max(latencies) * 1000 if latencies else float("nan")
    return result
