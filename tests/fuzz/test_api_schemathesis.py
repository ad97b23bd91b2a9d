"""The JSON API (``/api/v1``) against its own OpenAPI document, with schemathesis: requests generated from the
document — valid ones, and ones that break it — sent in-process with a valid token. No 500, answers that match
the document, and invalid input refused with a clear error."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core import db
from core.auth.models import ApiToken
from core.auth.service import create_api_token
from tests.factories import make_org, make_site

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is a dev dependency (pip install schemathesis)"
)


@pytest.fixture()
def bearer(db_session: Any) -> dict[str, str]:
    org = make_org()
    make_site(org, code="TKY")
    token = create_api_token(organization_id=org.id, name="schemathesis", actor="t")
    row = db.session.scalar(select(ApiToken).order_by(ApiToken.id.desc()).limit(1))
    assert row is not None
    row.scopes = "staff:read staff:write broadcasts:read broadcasts:write"
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


_OPERATIONS: dict[int, list[Any]] = {}


def _operations(app: Flask) -> list[Any]:
    """The document's operations, read once per application (reading it again for every example is slow)."""
    if id(app) not in _OPERATIONS:
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
        _OPERATIONS[id(app)] = [result.ok() for result in schema.get_all_operations()]
    return _OPERATIONS[id(app)]


def test_the_document_describes_every_api_route(app: Flask) -> None:
    documented = {(op.method.upper(), op.path) for op in _operations(app)}
    routes = {
        (method, rule.rule.removeprefix("/api/v1").replace("<int:", "{").replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and not rule.rule.endswith("openapi.json")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes <= documented, (
        f"API routes missing from /api/v1/openapi.json: {sorted(routes - documented)}"
    )


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_api_holds_to_its_document(app: Flask, bearer: dict[str, str], data: Any) -> None:
    operation = data.draw(st.sampled_from(_operations(app)), label="operation")
    # Mostly valid requests, and some that break the document on purpose (they must be refused, not crash).
    mode = data.draw(st.sampled_from(["positive", "positive", "negative"]), label="mode")
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    case = data.draw(strategy, label="case")
    # Left out: a request valid by the document may still be refused by the directory's own rules (a string that
    # is no phone number), and one breaking it may still be served (an unknown query parameter is ignored, the
    # token header is always sent). Checked: no 5xx, documented status codes, content types and response bodies —
    # and every refusal says why.
    from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

    response = case.call_and_validate(
        headers=bearer, excluded_checks=[positive_data_acceptance, negative_data_rejection]
    )
    if response.status_code >= 400:
        assert isinstance(response.json().get("error"), str) and response.json()["error"], response.text
