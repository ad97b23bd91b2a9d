"""What every benchmark shares: figures, temporary databases, the application, seed data, child processes.

Nothing here runs at import time. A benchmark receives a :class:`Context` (sizes, database URL, where to put
scratch files) and returns :class:`Figure` rows; the runner prints and saves them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The fictional Twilio account of the embedded default: the simulator accepts it, the real Twilio never sees it.
ACCOUNT_SID = "AC00000000000000000000000000000000"
AUTH_TOKEN = "bench-auth-token"
POSTGRES_ADMIN_URL = os.environ.get(
    "LIFELINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LIFELINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


# --- figures -----------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One line of the table: a measured value, the baseline it is compared with, and the target."""

    item: str  # "1", "2a", … (the numbering)
    name: str
    database: str  # "sqlite", "postgresql" or "-" for figures that touch no database
    measured: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None  # how the target is expressed: measured ÷ baseline (or baseline ÷ measured)
    ratio_label: str = ""
    target: str = ""
    passed: bool | None = None  # None: not measured (pending)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pending(item: str, name: str, database: str, target: str, reason: str) -> Figure:
    return Figure(item=item, name=name, database=database, measured=None, unit="", target=target, note=reason)


# --- small measuring helpers -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``; the p99 of 100 samples is the 99th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def best_of(runs: int, fn: Callable[[], Any]) -> float:
    """The fastest of ``runs`` timings of ``fn`` (seconds); the minimum is the least noisy estimate."""
    timings = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return min(timings)


def median_of(runs: int, fn: Callable[[], Any]) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process {proc.args!r} exited with {proc.returncode} before listening on {port}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


# --- child processes ---------------------------------------------------------------------------------------------


class Children:
    """Processes started by a benchmark; :meth:`stop_all` ends each by its own PID (and its process group)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[Any]] = []

    def start(
        self, name: str, args: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[Any]:
        log = open(self.log_dir / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: gunicorn's workers are stopped with it
        )
        proc._bench_log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        log = getattr(proc, "_bench_log", None)
        if log is not None:
            log.close()

    def wait_json(self, proc: subprocess.Popen[Any], timeout_s: float) -> dict[str, Any]:
        """Wait for a worker to finish and return the JSON line it printed last."""
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise TimeoutError(f"{proc.args!r} still running after {timeout_s} s") from None
        log = getattr(proc, "_bench_log", None)
        if log is not None:
            log.flush()
        text = Path(log.name).read_text(errors="replace") if log is not None else ""
        for line in reversed(text.splitlines()):
            if line.startswith("{"):
                return dict(json.loads(line))
        raise RuntimeError(
            f"{proc.args!r} exited with {proc.returncode} and printed no result:\n{text[-2000:]}"
        )

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()


# --- databases ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def temporary_database(kind: str, scratch: Path) -> Iterator[str]:
    """A fresh, empty database URL: a new SQLite file, or a PostgreSQL database ``lifeline_bench_*`` dropped after."""
    if kind == "sqlite":
        path = scratch / f"bench-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{path}{suffix}").unlink()
        return
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from core import db

    admin_url = make_url(POSTGRES_ADMIN_URL)
    name = f"lifeline_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = db.make_engine(admin_url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        from core import db as core_db

        core_db.session.remove()
        if core_db._engine is not None and core_db._engine.url.database == name:
            core_db._engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def create_schema(url: str) -> None:
    from core import db
    from core.models import load_all_models

    engine = db.make_engine(url)
    load_all_models().create_all(engine)
    engine.dispose()


# --- the application ---------------------------------------------------------------------------------------------


@dataclass
class Context:
    quick: bool
    database: str  # sqlite / postgresql
    url: str
    scratch: Path
    children: Children
    encryption_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))

    def size(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def env(self, **extra: str) -> dict[str, str]:
        """LIFELINE_* variables for a child process (gunicorn, a worker) pointed at this run's database."""
        base = {
            "LIFELINE_DATABASE_URL": self.url,
            "LIFELINE_INSTANCE_DIR": str(self.scratch / "instance"),
            "LIFELINE_SECRET_KEY": self.secret_key,
            "LIFELINE_ENCRYPTION_KEY": self.encryption_key,
            "LIFELINE_BROKER_URL": "memory://",
            "LIFELINE_CELERY_EAGER": "true",  # start_broadcast's "wake the dispatcher" is a no-op here
            "LIFELINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "LIFELINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PYTHONPATH": str(ROOT),
        }
        base.update({f"LIFELINE_{k.upper()}": v for k, v in extra.items()})
        return base

    def settings(self, **overrides: Any) -> Any:
        from core.config import load_settings

        values = {
            "instance_dir": self.scratch / "instance",
            "database_url": self.url,
            "secret_key": self.secret_key,
            "encryption_key": self.encryption_key,
            "broker_url": "memory://",
            "celery_eager": True,
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
        }
        values.update(overrides)
        return load_settings(environ={}, **values)


def make_app(ctx: Context, **overrides: Any) -> Any:
    from core.app import create_app

    return create_app(ctx.settings(**overrides))


# --- seed data ---------------------------------------------------------------------------------------------------

SITES = (("TYO", "13"), ("OSA", "27"), ("NGY", "23"), ("SDJ", "04"), ("FUK", "40"), ("SPK", "01"))
DEPARTMENTS = 20


def phone_of(n: int) -> str:
    """Fictional numbers only: +81 90-0000-xxxx, 10,000 of them, shared round-robin by larger directories."""
    return f"+8190000{n % 10000:05d}"


def email_of(n: int) -> str:
    return f"p{n}@example.com"


@dataclass
class Directory:
    organization_id: int
    staff_ids: list[int]
    site_ids: list[int]
    department_ids: list[int]


def seed_directory(people: int, *, slug: str | None = None, chunk: int = 5000) -> Directory:
    """An organization with six sites, twenty departments and ``people`` staff, each with a work phone and a work
    e-mail — inserted with Core in bulk (seeding is not what is measured). Needs an app context; commits."""
    from sqlalchemy import insert, select

    from core import db
    from core.directory.models import ContactKind, ContactPoint, Department, Organization, Site, Staff
    from core.time import utcnow

    now = utcnow()
    org = Organization(slug=slug or f"bench-{uuid.uuid4().hex[:6]}", name="Bench Org")
    db.session.add(org)
    db.session.flush()
    sites = [
        Site(organization_id=org.id, code=code, name=code, prefecture_code=pref, seats=100)
        for code, pref in SITES
    ]
    departments = [Department(organization_id=org.id, name=f"Dept {n:02d}") for n in range(DEPARTMENTS)]
    db.session.add_all(sites + departments)
    db.session.flush()
    site_ids = [s.id for s in sites]
    dept_ids = [d.id for d in departments]
    prefs = [pref for _, pref in SITES]
    for start in range(0, people, chunk):
        rows = [
            {
                "organization_id": org.id,
                "employee_id": f"E{n:06d}",
                "name": f"Staff {n}",
                "name_kana": "",
                "site_id": site_ids[n % len(site_ids)],
                "department_id": dept_ids[n % len(dept_ids)],
                "home_prefecture": prefs[(n // 7) % len(prefs)],
                "language": "en" if n % 5 == 0 else "ja",
                "can_work_from_home": n % 3 == 0,
                "hide_from_answer_views": False,
                "self_service_token": secrets.token_urlsafe(16),
                "created_at": now,
                "updated_at": now,
            }
            for n in range(start, min(people, start + chunk))
        ]
        db.session.execute(insert(Staff), rows)
    staff_ids = list(
        db.session.scalars(select(Staff.id).where(Staff.organization_id == org.id).order_by(Staff.id))
    )
    for start in range(0, len(staff_ids), chunk):
        contacts = []
        for n, staff_id in enumerate(staff_ids[start : start + chunk], start=start):
            contacts.append(
                {
                    "staff_id": staff_id,
                    "kind": ContactKind.WORK_PHONE,
                    "position": 0,
                    "value": phone_of(n),
                    "label": "",
                    "created_at": now,
                }
            )
            contacts.append(
                {
                    "staff_id": staff_id,
                    "kind": ContactKind.WORK_EMAIL,
                    "position": 1,
                    "value": email_of(n),
                    "label": "",
                    "created_at": now,
                }
            )
        db.session.execute(insert(ContactPoint), contacts)
    db.session.commit()
    return Directory(organization_id=org.id, staff_ids=staff_ids, site_ids=site_ids, department_ids=dept_ids)


def analyze(url: str) -> None:
    """Fresh statistics after a bulk load, as autovacuum / a DBA would have them in production."""
    from sqlalchemy import text

    from core import db

    engine = db.get_engine()
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def iso_now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lifeline-bench-"))


def dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
