"""Chaos, spool and soak tests.

* ``pg_outage`` stops the PostgreSQL server for 30 s: every other test running at the time would fail with it,
  so it only runs when asked for by name (``-m pg_outage``; ``.ci/run`` runs it alone after the suite).
* ``soak`` is ``make soak``: ten thousand people and a minute of webhook bursts; only with ``-m soak``.
* The rest run in every suite; the ones driving real processes skip (saying why) unless
  ``LIFELINE_TEST_DATABASE_URL`` and ``LIFELINE_TEST_REDIS_URL`` are set, as in CI's PostgreSQL + Redis run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

# The safety-broadcast fixtures (a small organization, fake carrier adapters) serve these tests as well.
from tests.ivr.conftest import backend, outbound, world  # noqa: F401

ONLY_WHEN_ASKED = {
    "pg_outage": "stops PostgreSQL for everyone: run it alone with `pytest -m pg_outage` (.ci/run does)",
    "soak": "ten thousand people and a minute of bursts: run it with `make soak`",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pg_outage: stops the PostgreSQL server; run alone with -m pg_outage")
    config.addinivalue_line("markers", "soak: the long load run of `make soak`; only with -m soak")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = config.getoption("markexpr", "") or ""
    for item in items:
        for marker, reason in ONLY_WHEN_ASKED.items():
            if marker in item.keywords and marker not in asked:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture()
def own_instance(app: Flask, tmp_path: Path) -> Iterator[Any]:
    """The app's settings with an instance folder of this test's own (its spool starts empty)."""
    before = app.extensions["lifeline.settings"]
    settings = replace(before, instance_dir=tmp_path)
    app.extensions["lifeline.settings"] = settings
    try:
        yield settings
    finally:
        app.extensions["lifeline.settings"] = before


class _Refused(Exception):
    pass


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """Every statement fails the way it does when the server has gone (connection refused)."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise OperationalError("SELECT 1", {}, _Refused("connection to server failed: Connection refused"))

    with mock.patch.object(Session, "execute", refuse), mock.patch.object(Session, "flush", refuse):
        yield
