"""``python -m bench``: run the benchmarks, print the table, write the JSON.

Each benchmark that touches a database gets a fresh one per run (a new SQLite file; a PostgreSQL database
``lifeline_bench_*`` created and dropped), so no benchmark sees another's rows. Servers and workers a benchmark
starts are its own child processes, stopped by PID when it ends, whether it passed, failed or crashed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.harness import (
    POSTGRES_ADMIN_URL,
    ROOT,
    Children,
    Context,
    Figure,
    create_schema,
    dump,
    iso_now,
    scratch_dir,
    temporary_database,
)

# In the order. Modules with USES_DATABASE = False run once, whatever --database says.
BENCHMARKS = (
    "broadcast_start",
    "dispatch",
    "webhooks",
    "live_results",
    "routing_choose",
    "routing_webhook",
    "jma_parse",
    "jma_trigger",
    "reports",
    "worker_memory",
)
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    try:
        with open("/proc/meminfo") as fh:
            total_kb = int(fh.readline().split()[1])
        facts["memory_gb"] = round(total_kb / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            models = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        facts["cpu_model"] = models[0] if models else ""
    except OSError:
        pass
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(POSTGRES_ADMIN_URL)
        with engine.connect() as conn:
            facts["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
        engine.dispose()
    except Exception as exc:  # PostgreSQL is optional for --database sqlite
        facts["postgresql"] = f"unavailable ({type(exc).__name__})"
    return facts


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"
    if unit == "µs":
        return f"{value:.0f} µs"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:.2f} {unit}".strip()


def table(figures: list[Figure]) -> str:
    """A Markdown table: readable in a terminal, pasted as is into docs/PERFORMANCE.md."""
    head = ["#", "figure", "db", "measured", "baseline", "ratio", "target", "ok"]
    rows = [head, ["---"] * len(head)]
    for f in figures:
        baseline = _fmt(f.baseline, f.unit) if f.baseline is not None else "—"
        if f.baseline_label and f.baseline is not None:
            baseline += f" ({f.baseline_label})"
        ratio = (
            "—" if f.ratio is None else f"{f.ratio:.2f}" + (f" ({f.ratio_label})" if f.ratio_label else "")
        )
        ok = {True: "yes", False: "**NO**", None: "pending"}[f.passed]
        rows.append([f.item, f.name, f.database, _fmt(f.measured, f.unit), baseline, ratio, f.target, ok])
    return "\n".join("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows)


def notes(figures: list[Figure]) -> str:
    return "\n".join(f"- {f.item} {f.name} ({f.database}): {f.note}" for f in figures if f.note)


def run_one(name: str, database: str | None, quick: bool, scratch: Path) -> list[Figure]:
    module = importlib.import_module(f"bench.{name}")
    children = Children(scratch)
    started = time.perf_counter()
    print(f"→ {name}" + (f" on {database}" if database else ""), flush=True)
    try:
        if database is None:
            ctx = Context(quick=quick, database="-", url="", scratch=scratch, children=children)
            figures: list[Figure] = module.run(ctx)
        else:
            with temporary_database(database, scratch) as url:
                create_schema(url)
                ctx = Context(quick=quick, database=database, url=url, scratch=scratch, children=children)
                try:
                    figures = module.run(ctx)
                finally:
                    children.stop_all()
                    from core import db

                    db.session.remove()
                    if db._engine is not None:
                        db._engine.dispose()
    except Exception as exc:
        traceback.print_exc()
        figures = [
            Figure(
                item="?",
                name=f"{name} crashed",
                database=database or "-",
                measured=None,
                unit="",
                passed=False,
                note=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}",
            )
        ]
    finally:
        children.stop_all()
    for f in figures:
        print("   " + table([f]).splitlines()[-1], flush=True)
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and windows (< 2 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        choices=BENCHMARKS,
        help="run only this benchmark (repeatable): " + ", ".join(BENCHMARKS),
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql", "both"),
        default=None,
        help="default: both for a full run; sqlite (the embedded default) for --quick, to stay under two minutes",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the results (default {DEFAULT_JSON.relative_to(ROOT)})",
    )
    args = parser.parse_args(argv)
    # Stopped from outside (kill, CI's timeout): unwind through every finally, so the servers this run started
    # are stopped and its temporary databases dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    database = args.database or ("sqlite" if args.quick else "both")
    databases = ["sqlite", "postgresql"] if database == "both" else [database]
    names = args.only or list(BENCHMARKS)
    scratch = scratch_dir()
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    started_at = iso_now()
    started = time.perf_counter()
    figures: list[Figure] = []
    try:
        for name in names:
            module = importlib.import_module(f"bench.{name}")
            if getattr(module, "USES_DATABASE", True):
                for database in databases:
                    figures += run_one(name, database, args.quick, scratch)
            else:
                figures += run_one(name, None, args.quick, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - started
    facts = machine_facts()
    print()
    print(table(figures))
    print()
    print(notes(figures))
    failed = [f for f in figures if f.passed is False]
    print()
    print(
        f"{len(figures)} figures, {sum(f.passed is True for f in figures)} met, {len(failed)} missed, "
        f"{sum(f.passed is None for f in figures)} pending — {elapsed:.0f} s"
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    dump(
        args.json,
        {
            "command": command,
            "started_at": started_at,
            "seconds": round(elapsed, 1),
            "quick": args.quick,
            "commit": commit,
            "machine": facts,
            "figures": [f.as_dict() for f in figures],
        },
    )
    print(f"written {args.json}")
    return 1 if failed else 0
