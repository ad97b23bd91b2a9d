"""A small HTTP/1.1 load generator (asyncio, keep-alive, no dependencies), run as its own process.

``python -m bench.loadgen SPEC.json OUT.json`` where SPEC is::

    {"host": "127.0.0.1", "port": 8000,
     "mode": "closed", "connections": 16, "seconds": 10, "warmup_s": 1,      # as fast as the server answers
     "mode": "open", "rate": 500, "seconds": 20, "max_connections": 256,     # a fixed arrival rate
     "requests": [{"method": "POST", "path": "/x", "headers": {...}, "body": "a=1"}, ...]}

Requests are used in order and each at most once (a benchmark that needs more passes more). In open mode a
request's latency runs from the moment it was *due*, not from when a connection was free, so a stalled server
cannot hide its queueing (no coordinated omission). Only loopback addresses are accepted; every run ends by
itself after ``seconds`` (plus a 30 s grace for answers still in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from typing import Any

GRACE_S = 30.0


def _encode(host: str, port: int, request: dict[str, Any]) -> bytes:
    body = request.get("body", "").encode()
    lines = [f"{request.get('method', 'GET')} {request['path']} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in request.get("headers", {}).items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, payload: bytes) -> int:
        """Send one request, read its response; returns the status (0 when the connection failed)."""
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(payload)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    return 0
                continue  # a keep-alive connection the server had closed: once more on a new one
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await self.reader.readexactly(length)
            if headers.get("connection", "").lower() == "close":
                await self.close()
            return status
        return 0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def closed_loop(spec: dict[str, Any], payloads: list[bytes]) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    seconds, warmup = float(spec["seconds"]), float(spec.get("warmup_s", 0))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    sent: list[int] = []
    next_index = 0
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds

    async def worker() -> None:
        nonlocal next_index
        conn = Connection(host, port)
        while time.perf_counter() < stop_at and next_index < len(payloads):
            index = next_index
            next_index += 1
            t0 = time.perf_counter()
            status = await conn.request(payloads[index])
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                statuses[status] += 1
                latencies.append(t1 - t0)
            if 200 <= status < 300:
                sent.append(index)
        await conn.close()

    await asyncio.gather(*(worker() for _ in range(int(spec["connections"]))))
    measured = min(stop_at, time.perf_counter()) - measure_from
    return {
        "statuses": dict(statuses),
        "latencies": latencies,
        "seconds": measured,
        "ok_indexes": sent,
        "issued": next_index,
    }


async def open_loop(spec: dict[str, Any], payloads: list[bytes]) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    total = min(len(payloads), int(rate * seconds))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    ok: list[int] = []
    idle: list[Connection] = []
    opened = 0
    limit = int(spec.get("max_connections", 256))
    pending: set[asyncio.Task[None]] = set()
    gate = asyncio.Semaphore(limit)

    async def one(index: int, due: float) -> None:
        nonlocal opened
        async with gate:
            if idle:
                conn = idle.pop()
            else:
                conn = Connection(host, port)
                opened += 1
            status = await conn.request(payloads[index])
            latencies.append(time.perf_counter() - due)
            statuses[status] += 1
            if 200 <= status < 300:
                ok.append(index)
            idle.append(conn)

    started = time.perf_counter()
    for index in range(total):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(index, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=float(spec.get("grace_s", GRACE_S)))
    for conn in idle:
        await conn.close()
    lost = total - sum(statuses.values())
    if lost:
        statuses[-1] = lost  # still unanswered after the grace period
    return {
        "statuses": dict(statuses),
        "latencies": latencies,
        "seconds": time.perf_counter() - started,
        "ok_indexes": ok,
        "issued": total,
        "connections": opened,
    }


def main(argv: list[str]) -> None:
    with open(argv[0]) as fh:
        spec = json.load(fh)
    if spec["host"] not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load is generated against loopback only")
    payloads = [_encode(spec["host"], spec["port"], r) for r in spec["requests"]]
    runner = closed_loop if spec["mode"] == "closed" else open_loop
    result = asyncio.run(runner(spec, payloads))
    with open(argv[1], "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
