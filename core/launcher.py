"""``lifeline start``: the embedded default in one terminal — web app, worker with scheduler, phone simulator.

Each runs as a child process with the same environment; Ctrl-C (or any child dying) stops them all.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.config import PROJECT_ROOT, load_settings


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def run_all(
    *,
    host: str,
    port: int,
    simulator_port: int,
    simulator: bool = True,
    companions: list[dict[str, Any]] | None = None,
) -> int:
    settings = load_settings()
    env = dict(os.environ)
    env.setdefault("LIFELINE_PUBLIC_BASE_URL", f"http://{host}:{port}")
    env.setdefault("LIFELINE_SIMULATOR_URL", f"http://{host}:{simulator_port}")
    env.setdefault("PYTHONUNBUFFERED", "1")
    instance = settings.instance_dir
    instance.mkdir(parents=True, exist_ok=True)

    commands: list[tuple[str, list[str]]] = [
        (
            "web",
            [
                _bin("gunicorn"),
                "wsgi:app",
                "--bind",
                f"{host}:{port}",
                "--workers",
                "2",
                "--threads",
                "8",
                "--timeout",
                "60",
                "--access-logfile",
                "-",
                "--log-level",
                "warning",
            ],
        ),
        (
            "worker",
            [
                _bin("celery"),
                "-A",
                "wsgi:celery",
                "worker",
                "--beat",
                "--concurrency",
                "2",
                "--schedule",
                str(instance / "celerybeat-schedule"),
                "--loglevel",
                "INFO",
            ],
        ),
    ]
    if simulator:
        scenario = PROJECT_ROOT / "core" / "directory" / "demo_scenario.yaml"
        sim = [_bin("lifeline"), "simulator", "--host", host, "--port", str(simulator_port), "--speed", "10"]
        if scenario.exists():
            sim += ["--scenario", str(scenario)]
        commands.append(("simulator", sim))
        for companion in companions or []:
            needs = companion.get("needs")
            if needs and not (instance / needs).exists():
                continue
            commands.append((companion["name"], [_bin("lifeline"), *companion["argv"]]))

    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    for name, argv in commands:
        children.append((name, subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env)))

    credentials = instance / "demo_credentials.txt"
    print()
    print(f"  Lifeline is starting: http://{host}:{port}/")
    if simulator:
        print(f"  Telephone-network simulator: http://{host}:{simulator_port}/_sim/calls")
    if credentials.exists():
        print("  Sign in with one of the demo accounts:")
        for line in credentials.read_text(encoding="utf-8").splitlines():
            print(f"    {line}")
    print("  Press Ctrl-C to stop everything.")
    print()

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for name, proc in children:
                code = proc.poll()
                if code is not None:
                    print(f"{name} exited with code {code}; stopping the others.", file=sys.stderr)
                    exit_code = code or 1
                    stopping = True
                    break
            time.sleep(0.5)
    finally:
        for _, proc in children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc in children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    return exit_code
