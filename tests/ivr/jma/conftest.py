"""Fixtures for the JMA service, poller, CLI, page and end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.ivr.jma.support import LocalJma, Org, build_org


@pytest.fixture(scope="session")
def jma(app: Flask) -> Flask:
    """The app, with the JMA part plugged in by ivr.init_app → init_jma."""
    assert "jma" in app.blueprints, "ivr.init_app must call ivr.jma.init_jma"
    return app


@pytest.fixture()
def org(jma: Flask, db_session: Any) -> Org:
    return build_org()


@pytest.fixture()
def local_jma() -> Iterator[LocalJma]:
    server = LocalJma().start()
    try:
        yield server
    finally:
        server.stop()
