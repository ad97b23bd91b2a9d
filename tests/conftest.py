"""Test infrastructure.

* The database is SQLite in a temporary folder by default; set ``LIFELINE_TEST_DATABASE_URL`` (e.g.
  ``postgresql+psycopg://postgres@127.0.0.1:5432/lifeline_test``) to run the same suite on PostgreSQL. Each
  pytest-xdist worker gets its own database.
* ``db_session``: each test runs in a transaction that is rolled back; the app's own commits become savepoints.
* ``live_app``: a real server on a loopback port with real commits, for end-to-end tests with the simulator;
  its tables are emptied afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from core import db
from core.app import create_app
from core.config import Settings, load_settings
from core.models import load_all_models

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
TEST_ENCRYPTION_KEY = Fernet.generate_key().decode()


def _worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _prepare_database(base_url: str | None, tmp: Path) -> str:
    if not base_url:
        return f"sqlite:///{tmp / 'test.db'}"
    url = make_url(base_url)
    name = f"{url.database or 'lifeline_test'}_{_worker_suffix()}"
    admin = db.make_engine(
        url.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tmp = tmp_path_factory.mktemp("instance")
    url = _prepare_database(os.environ.get("LIFELINE_TEST_DATABASE_URL"), tmp)
    return load_settings(
        environ={},
        instance_dir=tmp,
        database_url=url,
        secret_key="test-secret-key",
        encryption_key=TEST_ENCRYPTION_KEY,
        broker_url="memory://",
        testing=True,
        celery_eager=True,
        public_base_url="http://localhost",
        simulator_url="http://127.0.0.1:9",
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    metadata = load_all_models()
    engine = db.get_engine()
    metadata.create_all(engine)
    yield application
    engine.dispose()


@pytest.fixture()
def db_session(app: Flask) -> Iterator[Any]:
    """A transaction around the test that is rolled back; the app's own commits become savepoints."""
    engine: Engine = db.get_engine()
    connection = engine.connect()
    outer = connection.begin()
    db.session.remove()
    db.session.configure(bind=connection, join_transaction_mode="create_savepoint")
    ctx = app.app_context()
    ctx.push()
    try:
        yield db.session
    finally:
        ctx.pop()
        db.session.remove()
        if outer.is_active:
            outer.rollback()
        connection.close()
        db.session.configure(bind=engine, join_transaction_mode="conditional_savepoint")


@pytest.fixture()
def client(app: Flask, db_session: Any) -> FlaskClient:
    return app.test_client()


def _truncate_all(engine: Engine) -> None:
    metadata = load_all_models()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture()
def live_app(app: Flask) -> Iterator[LiveServer]:
    """The session app served on a free loopback port with real commits (tables emptied afterwards)."""
    db.session.remove()
    server = LiveServer(app)
    settings: Settings = app.extensions["lifeline.settings"]
    from dataclasses import replace

    app.extensions["lifeline.settings"] = replace(settings, public_base_url=server.url)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        app.extensions["lifeline.settings"] = settings
        db.session.remove()
        _truncate_all(db.get_engine())


@pytest.fixture(autouse=True)
def _fresh_routing_cache() -> Iterator[None]:
    """Organization ids come back after each test's tables are emptied: no routing state cached for an
    organization of an earlier test may serve this one's calls. Tests that move the cache's clock get the real
    one back."""
    import time

    from continuity import cache

    cache.routing_states.clear()
    yield
    cache.routing_states.clear()
    cache.routing_states.clock = time.monotonic
