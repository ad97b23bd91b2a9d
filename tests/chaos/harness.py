"""Real processes for the chaos and soak tests, each started with subprocess and stopped by its PID.

A :class:`Stack` is one installation on loopback: a fresh PostgreSQL database, a Redis server of its own (so it
can be killed and restarted without touching anyone else's), the telephone-network simulator (in this process,
on a free port, its events run by a pool of threads), gunicorn serving ``wsgi:app`` and any number of Celery
workers — all configured through the same ``LIFELINE_*`` variables production uses. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from requests.adapters import HTTPAdapter
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACCOUNT_SID = "AC00000000000000000000000000000000"  # the fictional account: only ever the simulator
AUTH_TOKEN = "chaos-auth-token"
TEMPLATE_KEY = "chaos_drill"


def required_services() -> tuple[str, str]:
    """PostgreSQL and Redis URLs of CI's second run, or skip saying what is missing."""
    database_url = os.environ.get("LIFELINE_TEST_DATABASE_URL", "")
    redis_url = os.environ.get("LIFELINE_TEST_REDIS_URL", "")
    if not database_url or not redis_url:
        pytest.skip(
            "needs real PostgreSQL and Redis: set LIFELINE_TEST_DATABASE_URL and LIFELINE_TEST_REDIS_URL "
            "(CI's PostgreSQL + Redis run sets both)"
        )
    if not database_url.startswith("postgresql"):
        pytest.skip("LIFELINE_TEST_DATABASE_URL must point at PostgreSQL")
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server program, to run (and restart) a Redis of the test's own")
    return database_url, redis_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Callable[[], Any], *, timeout_s: float, every_s: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test (naming ``what``) at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (
            Exception
        ) as exc:  # the thing polled may be down for a moment: that is the point of these tests
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(
        f"timed out after {timeout_s:.0f} s waiting for {what}" + (f" ({last_error})" if last_error else "")
    )


# --- the simulator's clock, with its events run by a pool ----------------------------------------------------------


class PooledClock:
    """:class:`core.telephony.simulator.clock.ScaledClock` whose due events run on a pool of threads.

    One thread sending every webhook in turn manages a few hundred a second; a drill of thousands of people needs
    more. Each call's own steps still follow one another (a step schedules the next only when it has run).
    """

    def __init__(self, speed: float, *, workers: int = 32) -> None:
        self.speed = speed
        self._start = time.time()
        self._mono0 = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim-event")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduler: Any = None
        self.busy = 0
        self._busy_lock = threading.Lock()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._mono0) * self.speed

    def wall_of(self, virtual: float) -> float:
        return time.time() - (self.now() - virtual) / self.speed

    def attach(self, scheduler: Any) -> None:
        self._scheduler = scheduler
        self._thread = threading.Thread(target=self._loop, name="sim-clock", daemon=True)
        self._thread.start()

    def detach(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, event: Any) -> None:
        try:
            self._scheduler.run(event)
        finally:
            with self._busy_lock:
                self.busy -= 1

    def _loop(self) -> None:
        scheduler = self._scheduler
        while not self._stop.is_set():
            due = scheduler.next_due()
            if due is None:
                scheduler.wait_for_change(0.5)
                continue
            wall_wait = (due - self.now()) / self.speed
            if wall_wait > 0:
                scheduler.wait_for_change(min(wall_wait, 0.5))
                continue
            event = scheduler.pop_due(self.now())
            if event is not None:
                with self._busy_lock:
                    self.busy += 1
                self._pool.submit(self._run, event)


class Network:
    """The simulator on a free loopback port, with its scripted people."""

    def __init__(self, scenario: Mapping[str, Any], *, speed: float, workers: int = 32) -> None:
        from core.telephony.simulator.app import create_simulator_app, simulator_of

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.clock = PooledClock(speed, workers=workers)
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=workers * 2)
        session.mount("http://", adapter)
        self.app = create_simulator_app(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            scenario=dict(scenario),
            clock=self.clock,
            http=session,
            base_url=self.url,
        )
        self.sim = simulator_of(self.app)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the failure
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self.sim.stop()

    # What the network saw, straight from its records.
    def messages(self) -> list[Any]:
        with self.sim._lock:
            return [m for m in self.sim.messages.values() if m.direction == "outbound-api"]

    def calls(self) -> list[Any]:
        with self.sim._lock:
            return [c for c in self.sim.calls.values() if c.direction == "outbound-api"]

    def sends(self) -> int:
        return len(self.messages()) + len(self.calls())

    def idle(self) -> bool:
        """No call still going and nothing due within the next virtual minute (callbacks, link visits)."""
        from core.telephony.simulator.records import FINAL_CALL_STATUSES

        busy_calls = [c for c in self.calls() if c.status not in FINAL_CALL_STATUSES]
        due = self.sim.scheduler.next_due()
        soon = due is not None and due - self.clock.now() < 60
        return not busy_calls and not soon and self.clock.busy == 0


# --- children ------------------------------------------------------------------------------------------------------


class Child:
    """One process of ours, in its own process group so that killing it takes its pool children too."""

    beat = False
    concurrency = 2

    def __init__(self, name: str, argv: list[str], *, env: Mapping[str, str], logs: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group we started (the worker and its pool), by our own PID."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait(timeout=10)
        else:
            self.kill(signal.SIGKILL)  # pool children left behind by a killed parent
        self._log.close()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class RedisServer:
    """A Redis of the test's own, without persistence (a restart loses everything, as a crash would)."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.logs = logs
        self.child: Child | None = None
        self.start()

    def start(self) -> None:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.child = Child(f"redis-{time.time_ns()}", argv, env=os.environ, logs=self.logs)
        wait_until("Redis to answer", self.ping, timeout_s=15, every_s=0.05)

    def ping(self) -> bool:
        import redis

        return bool(redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())

    def kill(self) -> None:
        assert self.child is not None
        self.child.kill(signal.SIGKILL)
        self.child.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


# --- the database --------------------------------------------------------------------------------------------------


def admin_engine(database_url: str) -> Engine:
    url = make_url(database_url).set(database="postgres")
    return create_engine(
        url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )


def create_database(database_url: str) -> str:
    name = f"lifeline_chaos_{uuid.uuid4().hex[:10]}"
    admin = admin_engine(database_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    from core.models import load_all_models

    engine = create_engine(url, poolclass=NullPool)
    load_all_models().create_all(engine)
    engine.dispose()
    return url


def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = admin_engine(url)
    with contextlib.suppress(Exception), admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def phone(n: int) -> str:
    """Fictional numbers only: +81 90-0000-xxxx."""
    assert 0 <= n < 10_000
    return f"+8190000{n:05d}"


def chaos_template(*, steps: list[dict[str, Any]], after_failed_call_minutes: float = 0.05) -> dict[str, Any]:
    """The earthquake template with a ladder measured in seconds, so a drill plays out inside a test."""
    from ivr.scenarios import BUILTIN

    definition = dict(BUILTIN["earthquake"])
    definition["key"] = TEMPLATE_KEY
    definition["voice_message"] = False
    definition["ladder"] = {
        "steps": steps,
        "cycles": 1,
        "escalate_to_managers": False,
        "after_failed_call_minutes": after_failed_call_minutes,
    }
    return definition


def seed(database_url: str, *, people: int, template: dict[str, Any], email: bool = False) -> int:
    """One organization (no monthly contact check, so nothing else is sent), one site, ``people`` staff."""
    from core.directory.models import ContactKind, ContactPoint, Organization, Site, Staff
    from ivr.models import BroadcastTemplate
    from ivr.scenarios import parse_template

    parse_template(template)  # fail here, not in a worker
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        org_id = conn.execute(
            insert(Organization)
            .values(slug="chaos", name="Chaos Org", settings={"contact_check_days": 0})
            .returning(Organization.id)
        ).scalar_one()
        site_id = conn.execute(
            insert(Site)
            .values(organization_id=org_id, code="TYO", name="Tokyo", prefecture_code="13")
            .returning(Site.id)
        ).scalar_one()
        staff_rows = [
            {
                "organization_id": org_id,
                "employee_id": f"C{n:05d}",
                "name": f"Chaos {n}",
                "site_id": site_id,
                "language": "en" if n % 3 == 0 else "ja",
                "self_service_token": uuid.uuid4().hex,
            }
            for n in range(people)
        ]
        ids = conn.execute(insert(Staff).returning(Staff.id, Staff.employee_id), staff_rows).all()
        by_number = {int(employee_id[1:]): staff_id for staff_id, employee_id in ids}
        contacts = [
            {"staff_id": by_number[n], "kind": ContactKind.WORK_PHONE, "position": 0, "value": phone(n)}
            for n in range(people)
        ]
        if email:
            contacts += [
                {
                    "staff_id": by_number[n],
                    "kind": ContactKind.WORK_EMAIL,
                    "position": 1,
                    "value": f"chaos{n}@example.com",
                }
                for n in range(people)
            ]
        conn.execute(insert(ContactPoint), contacts)
        conn.execute(
            insert(BroadcastTemplate).values(
                organization_id=org_id, key=TEMPLATE_KEY, definition=template, builtin=False
            )
        )
    engine.dispose()
    return int(org_id)


# --- the installation ------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """Everything of one installation; :meth:`close` stops every process it started."""

    tmp: Path
    database_url: str
    redis: RedisServer
    network: Network
    settings: dict[str, str] = field(default_factory=dict)
    web: Child | None = None
    # Chosen up front: workers started before the web app already need the public URL for their callbacks.
    web_port: int = field(default_factory=free_port)
    workers: dict[str, Child] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    timeline: list[str] = field(default_factory=list)
    restarts: int = 0
    _killed: set[str] = field(default_factory=set)
    _closing: threading.Event = field(default_factory=threading.Event)
    _engine: Engine | None = None

    @property
    def logs(self) -> Path:
        return self.tmp / "logs"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELINE_")}
        env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                "LIFELINE_INSTANCE_DIR": str(self.tmp / "instance"),
                "LIFELINE_DATABASE_URL": self.database_url,
                "LIFELINE_BROKER_URL": f"{self.redis.url}/0",
                "LIFELINE_REDIS_URL": f"{self.redis.url}/1",
                "LIFELINE_PACING_BACKEND": "redis",
                "LIFELINE_SECRET_KEY": "chaos-secret-key",
                "LIFELINE_ENCRYPTION_KEY": self.settings.setdefault(
                    "encryption_key", Fernet.generate_key().decode()
                ),
                "LIFELINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "LIFELINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "LIFELINE_TWILIO_API_BASE": self.network.url,
                "LIFELINE_SIMULATOR_URL": self.network.url,
                "LIFELINE_MAIL_BACKEND": "simulator",
                "LIFELINE_PUBLIC_BASE_URL": self.app_url,
                # Never the real JMA feed: nothing listens on port 9.
                "LIFELINE_JMA_FEED_BASE": "http://127.0.0.1:9/",
                "LIFELINE_CALLS_PER_SECOND": "200",
                "LIFELINE_SMS_PER_SECOND": "500",
                "LIFELINE_EMAILS_PER_SECOND": "500",
            }
        )
        env.update(self.settings)
        env.pop("encryption_key", None)
        return env

    # web and workers

    def start_web(self, *, workers: int = 2, threads: int = 8) -> Child:
        argv = [
            str(BIN / "gunicorn"),
            "wsgi:app",
            "--bind",
            f"127.0.0.1:{self.web_port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "60",
            "--graceful-timeout",
            "10",
            "--log-level",
            "warning",
        ]
        self.web = Child(f"web-{time.time_ns()}", argv, env=self.env(), logs=self.logs)
        wait_until("the web app to answer", self._web_up, timeout_s=60)
        return self.web

    def _web_up(self) -> bool:
        assert self.web is not None
        if not self.web.alive():
            raise AssertionError(f"gunicorn exited:\n{self.web.tail()}")
        return requests.get(f"{self.app_url}/login", timeout=2).status_code == 200

    def supervise(self) -> None:
        """Restart any worker that exits by itself, as systemd's ``Restart=always`` does in production (see
        docs/OPERATIONS.md: a Celery worker can exit on a lost broker connection, kombu's Redis transport)."""

        def watch() -> None:
            while not self._closing.wait(0.5):
                for name, worker in list(self.workers.items()):
                    if not worker.alive() and name not in self._killed:
                        self.mark(
                            f"worker {name} exited by itself (code {worker.popen.returncode}); restarting it"
                        )
                        worker.stop()
                        self.restarts += 1
                        self.start_worker(name, beat=worker.beat, concurrency=worker.concurrency)

        threading.Thread(target=watch, name="supervisor", daemon=True).start()

    def kill_worker(self, name: str) -> Child:
        """kill -9 the worker and its pool; the supervisor leaves it dead (the test starts another)."""
        worker = self.workers[name]
        self._killed.add(name)
        worker.kill(signal.SIGKILL)
        worker.popen.wait(timeout=10)
        return worker

    def start_worker(self, name: str, *, beat: bool = True, concurrency: int = 2) -> Child:
        argv = [
            str(BIN / "celery"),
            "-A",
            "wsgi:celery",
            "worker",
            "--hostname",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ]
        if beat:
            argv += ["--beat", "--schedule", str(self.tmp / f"beat-{name}-{time.time_ns()}")]
        worker = Child(f"{name}-{time.time_ns()}", argv, env=self.env(), logs=self.logs)
        worker.beat, worker.concurrency = beat, concurrency
        self.workers[name] = worker
        return worker

    def lifeline(self, *args: str, timeout_s: float = 120) -> str:
        result = subprocess.run(
            [str(BIN / "lifeline"), *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"lifeline {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start_broadcast(self, *extra: str) -> int:
        out = self.lifeline("broadcast", "start", "--template", TEMPLATE_KEY, "--all", "--drill", *extra)
        return int(out.strip().splitlines()[-1])

    # reading the database

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.database_url, poolclass=NullPool)
        return self._engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def broadcast_state(self, broadcast_id: int) -> str:
        return str(self.scalar("SELECT state FROM ivr_broadcasts WHERE id = :id", id=broadcast_id))

    def wait_finished(self, broadcast_id: int, *, timeout_s: float) -> None:
        """The ladder is over for everyone and the network has gone quiet."""
        wait_until(
            f"broadcast {broadcast_id} to finish sending",
            lambda: self.broadcast_state(broadcast_id) == "open",
            timeout_s=timeout_s,
            every_s=0.5,
        )
        # Under load the network runs behind its clock (its callbacks queue up): give it the same time again.
        wait_until("the network to go quiet", self.network.idle, timeout_s=timeout_s, every_s=0.5)

    def mark(self, what: str) -> None:
        """A line of the run's timeline (shown with -s, and with the logs when a test fails)."""
        line = f"{time.monotonic() - self.started:7.1f} s  {what}"
        self.timeline.append(line)
        print(line, flush=True)

    def close(self) -> None:
        self._closing.set()
        for worker in self.workers.values():
            worker.stop()
        if self.web is not None:
            self.web.stop()
        self.network.stop()
        self.redis.stop()
        if self._engine is not None:
            self._engine.dispose()

    def diagnostics(self) -> str:
        parts = ["--- timeline ---", *self.timeline]
        for child in [*self.workers.values(), *([self.web] if self.web else [])]:
            parts.append(f"--- {child.name} (pid {child.pid}) ---\n{child.tail(30)}")
        return "\n".join(parts)


@contextlib.contextmanager
def one_at_a_time() -> Iterator[None]:
    """One installation at a time on this machine: pytest-xdist would otherwise run several side by side, each
    starving the others' processes of CPU, and their timing (leases, rings) would mean nothing."""
    with (Path(tempfile.gettempdir()) / "lifeline-chaos.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def stack(
    tmp: Path, *, scenario: Mapping[str, Any], speed: float, settings: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    database_url, _ = required_services()
    with one_at_a_time():
        yield from _stack(tmp, database_url, scenario=scenario, speed=speed, settings=settings)


def _stack(
    tmp: Path,
    database_url: str,
    *,
    scenario: Mapping[str, Any],
    speed: float,
    settings: Mapping[str, str] | None,
) -> Iterator[Stack]:
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    (tmp / "instance").mkdir(parents=True, exist_ok=True)
    url = create_database(database_url)
    redis_server = RedisServer(tmp / "logs")
    network = Network(scenario, speed=speed)
    installation = Stack(
        tmp=tmp, database_url=url, redis=redis_server, network=network, settings=dict(settings or {})
    )
    try:
        yield installation
    except BaseException:
        print(installation.diagnostics())
        raise
    finally:
        installation.close()
        drop_database(url)


# --- comparing the database with what the network saw -----------------------------------------------------------------


def number_of(to: str) -> int:
    return int(to[-5:])


def sends_per_number(network: Network) -> tuple[Counter[int], Counter[int]]:
    """How many SMS and how many calls each person's number received."""
    sms = Counter(number_of(m.to) for m in network.messages())
    calls = Counter(number_of(c.to) for c in network.calls())
    return sms, calls


def _confirmed_on_call(call: Any) -> dict[str, str]:
    """The keys a caller confirmed *and the application took*: each ``…/q/<i>/confirm/<key>`` fetched with 200."""
    questions = ("safety", "work")
    answers: dict[str, str] = {}
    entries = call.timeline.entries
    for index, entry in enumerate(entries):
        if entry.event != "twiml-fetched" or entry.detail.get("status") != 200:
            continue
        url = str(entry.detail.get("url", ""))
        if "/confirm/" not in url:
            continue
        pressed = next((e.detail.get("digits") for e in reversed(entries[:index]) if e.event == "gather"), "")
        question_index = int(url.split("/q/")[1].split("/")[0])
        if pressed == "1":
            answers[questions[question_index]] = url.rsplit("/", 1)[1]
    return answers


def answers_seen_by_the_network(network: Network) -> dict[int, tuple[str, dict[str, str]]]:
    """Person → (channel, answers) as the network saw the application accept them: web forms answered 200,
    keys confirmed on calls whose confirmation webhook answered 200."""
    seen: dict[int, tuple[str, dict[str, str]]] = {}
    for message in network.messages():
        for visit in message.visits:
            if visit.get("submit_status") == 200 and visit.get("error") is None:
                fields = dict(visit["submitted"])
                seen[number_of(message.to)] = (
                    "web",
                    {k: fields[k] for k in ("safety", "work") if k in fields},
                )
    for call in network.calls():
        answers = _confirmed_on_call(call)
        if answers:
            seen[number_of(call.to)] = ("voice", answers)
    return seen


def answers_in_the_database(stack: Stack, broadcast_id: int) -> dict[int, tuple[str, dict[str, str]]]:
    rows = stack.rows(
        """
        SELECT s.employee_id, r.answer_channel, a.question_key, a.value
        FROM ivr_recipients r
        JOIN staff s ON s.id = r.staff_id
        JOIN ivr_answers a ON a.recipient_id = r.id AND a.current
        WHERE r.broadcast_id = :b AND a.value <> ''
        """,
        b=broadcast_id,
    )
    out: dict[int, tuple[str, dict[str, str]]] = {}
    for employee_id, channel, key, value in rows:
        number = int(employee_id[1:])
        out.setdefault(number, (channel, {}))[1][key] = value
    return out


def duplicate_answers(stack: Stack, broadcast_id: int) -> list[Any]:
    """Answers stored twice: the same person, question, key and call (or the same web submission time)."""
    return stack.rows(
        """
        SELECT recipient_id, question_key, value, attempt_id, count(*)
        FROM ivr_answers WHERE broadcast_id = :b
        GROUP BY recipient_id, question_key, value, attempt_id, channel, CASE WHEN channel = 'web' THEN at END
        HAVING count(*) > 1
        """,
        b=broadcast_id,
    )


def call_timelines_with_errors(network: Network) -> list[tuple[str, list[str]]]:
    return [
        (c.to, c.timeline.events()) for c in network.calls() if "application-error" in c.timeline.events()
    ]


def select_count(stack: Stack, sql: str, **params: Any) -> int:
    return int(stack.scalar(sql, **params) or 0)


__all__ = ["select"]
