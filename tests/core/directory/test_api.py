"""The HR-sync API: tokens, bulk upsert (all or nothing), listing, and conformance to its OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from core.auth.models import ApiToken, AuditEntry
from core.auth.service import create_api_token
from core.directory import openapi
from core.directory.models import Staff
from core.time import utcnow
from tests.core.directory.conftest import World, settle
from tests.factories import make_org, make_staff


@pytest.fixture()
def token(world: World) -> str:
    value = create_api_token(organization_id=world.org.id, name="HR sync", actor="test")
    settle()
    return value


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.get_json()
    return doc


def conforms(client: FlaskClient, response: Any, path: str, method: str) -> None:
    """The response matches the schema the document gives for this path, method and status."""
    doc = document(client)
    operation = doc["paths"][path][method]
    declared = operation["responses"][str(response.status_code)]
    schema = declared["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
    errors = sorted(validator.iter_errors(response.get_json()), key=str)
    assert errors == [], errors[0].message if errors else ""


def employee_ids(world: World) -> list[str]:
    return list(
        db.session.scalars(
            select(Staff.employee_id).where(Staff.organization_id == world.org.id).order_by(Staff.employee_id)
        )
    )


GOOD_ITEMS = [
    {
        "employee_id": "H001",
        "name": "人事 太郎",
        "name_kana": "ジンジ タロウ",
        "department": "人事部",
        "site": "TKY",
        "work_phone": "090-0000-0051",
        "work_email": "taro.jinji@example.com",
        "home_prefecture": "東京都",
        "language": "ja",
        "can_work_from_home": True,
        "manager_employee_id": None,
    },
    {
        "employee_id": "H002",
        "name": "人事 花子",
        "site": "OSA",
        "manager_employee_id": "H001",
        "can_work_from_home": False,
    },
]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer llt_wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}],
)
def test_missing_or_wrong_token_is_401_json(
    client: FlaskClient, world: World, token: str, headers: dict[str, str]
) -> None:
    for response, method in [
        (client.get("/api/v1/staff", headers=headers), "get"),
        (client.post("/api/v1/staff", json={"staff": []}, headers=headers), "post"),
    ]:
        assert response.status_code == 401
        assert response.is_json and "API token" in response.get_json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        conforms(client, response, "/staff", method)


def set_token(world: World, **values: Any) -> None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.organization_id == world.org.id))
    assert row is not None
    for name, value in values.items():
        setattr(row, name, value)
    settle()


def test_revoked_token_and_missing_scope(client: FlaskClient, world: World, token: str) -> None:
    set_token(world, scopes="staff:read")
    assert client.get("/api/v1/staff", headers=auth(token)).status_code == 200
    refused = client.post("/api/v1/staff", json={"staff": []}, headers=auth(token))
    assert refused.status_code == 403
    conforms(client, refused, "/staff", "post")
    set_token(world, revoked_at=utcnow())
    assert client.get("/api/v1/staff", headers=auth(token)).status_code == 401


def test_upsert_adds_then_changes_and_reports_the_diff(client: FlaskClient, world: World, token: str) -> None:
    response = client.post("/api/v1/staff", json={"staff": GOOD_ITEMS}, headers=auth(token))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["applied"] is True
    assert body["counts"] == {
        "added": 2,
        "changed": 0,
        "unchanged": 0,
        "removed": 0,
        "departments_created": 1,
    }
    conforms(client, response, "/staff", "post")
    assert employee_ids(world) == ["H001", "H002"]

    change = client.post(
        "/api/v1/staff",
        json={
            "mode": "update",
            "staff": [
                {"employee_id": "H002", "name": "人事 花子", "work_phone": "０９０－００００－００５２"}
            ],
        },
        headers=auth(token),
    )
    body = change.get_json()
    assert body["counts"]["changed"] == 1
    assert body["diff"]["changed"][0]["changes"] == [
        {"field": "work_phone", "before": "", "after": "+819000000052"}
    ]
    conforms(client, change, "/staff", "post")
    entries = db.session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "staff.import")).all()
    assert entries == ["api:HR sync", "api:HR sync"]


def test_dry_run_changes_nothing(client: FlaskClient, world: World, token: str) -> None:
    response = client.post("/api/v1/staff", json={"dry_run": True, "staff": GOOD_ITEMS}, headers=auth(token))
    assert response.status_code == 200
    assert response.get_json()["applied"] is False
    assert response.get_json()["counts"]["added"] == 2
    conforms(client, response, "/staff", "post")
    assert employee_ids(world) == []


def test_one_bad_item_is_422_and_nothing_changes(client: FlaskClient, world: World, token: str) -> None:
    items = [
        *GOOD_ITEMS,
        {"employee_id": "H003", "name": "三郎", "site": "XXX", "work_email": "bad", "salary": 5},
    ]
    response = client.post("/api/v1/staff", json={"staff": items}, headers=auth(token))
    assert response.status_code == 422
    body = response.get_json()
    assert "nothing was changed" in body["error"]
    assert sorted((e["index"], e["field"]) for e in body["errors"]) == [
        (2, "salary"),
        (2, "site"),
        (2, "work_email"),
    ]
    conforms(client, response, "/staff", "post")
    assert employee_ids(world) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "merge", "staff": []}, "mode"),
        ({"dry_run": "yes", "staff": []}, "dry_run"),
        ({"staff": {"employee_id": "x"}}, "staff"),
        ({"staff": [], "extra": 1}, "extra"),
    ],
)
def test_malformed_requests_are_422_with_a_request_level_error(
    client: FlaskClient, world: World, token: str, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/staff", json=body, headers=auth(token))
    assert response.status_code == 422
    assert response.get_json()["errors"][0] == {
        "index": None,
        "field": field,
        "message": response.get_json()["errors"][0]["message"],
    }
    conforms(client, response, "/staff", "post")


def test_non_json_body_is_400(client: FlaskClient, world: World, token: str) -> None:
    response = client.post("/api/v1/staff", data="staff", headers=auth(token))
    assert response.status_code == 400
    conforms(client, response, "/staff", "post")


def test_replace_mode_removes_people_not_sent(client: FlaskClient, world: World, token: str) -> None:
    make_staff(world.org, employee_id="OLD1", name="旧 職員")
    settle()
    dry = client.post(
        "/api/v1/staff", json={"mode": "replace", "dry_run": True, "staff": GOOD_ITEMS}, headers=auth(token)
    )
    assert dry.get_json()["diff"]["removed"] == [{"employee_id": "OLD1", "name": "旧 職員"}]
    assert employee_ids(world) == ["OLD1"]
    applied = client.post("/api/v1/staff", json={"mode": "replace", "staff": GOOD_ITEMS}, headers=auth(token))
    assert applied.get_json()["counts"]["removed"] == 1
    assert employee_ids(world) == ["H001", "H002"]


def test_list_is_paginated_and_filters_by_update_time(client: FlaskClient, world: World, token: str) -> None:
    boss = make_staff(world.org, employee_id="A000", name="上長", site=world.tokyo, phone="+819000000070")
    for n in range(1, 5):
        make_staff(world.org, employee_id=f"A{n:03d}", name=f"職員 {n}", manager_id=boss.id, site=world.osaka)
    old = db.session.scalar(select(Staff).where(Staff.employee_id == "A004"))
    assert old is not None
    old.updated_at = utcnow() - timedelta(days=30)
    make_staff(make_org(), employee_id="Z999", name="他社")
    settle()

    first = client.get("/api/v1/staff?per_page=2", headers=auth(token))
    assert first.status_code == 200
    body = first.get_json()
    assert [p["employee_id"] for p in body["staff"]] == ["A000", "A001"]
    assert (body["total"], body["page"], body["next_page"]) == (5, 1, 2)
    assert body["staff"][0]["work_phone"] == "+819000000070"
    assert body["staff"][1]["manager_employee_id"] == "A000"
    assert body["staff"][1]["site"] == "OSA"
    conforms(client, first, "/staff", "get")

    last = client.get("/api/v1/staff?per_page=2&page=3", headers=auth(token)).get_json()
    assert [p["employee_id"] for p in last["staff"]] == ["A004"] and last["next_page"] is None

    since = (utcnow() - timedelta(days=1)).isoformat()
    recent = client.get("/api/v1/staff", query_string={"updated_since": since}, headers=auth(token))
    assert [p["employee_id"] for p in recent.get_json()["staff"]] == ["A000", "A001", "A002", "A003"]
    conforms(client, recent, "/staff", "get")

    bad = client.get("/api/v1/staff?updated_since=yesterday", headers=auth(token))
    assert bad.status_code == 400
    conforms(client, bad, "/staff", "get")
    assert client.get("/api/v1/staff?page=0", headers=auth(token)).status_code == 400


def test_openapi_document_is_complete_and_extensible(client: FlaskClient) -> None:
    doc = document(client)
    assert doc["openapi"].startswith("3.1")
    jsonschema.Draft202012Validator.check_schema(doc["components"]["schemas"]["UpsertRequest"])

    # Every $ref points at a schema that exists.
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref

    # The request examples the tests send validate against the request schema.
    request_schema = {**doc["components"]["schemas"]["UpsertRequest"], "components": doc["components"]}
    jsonschema.validate(
        {"mode": "update", "staff": GOOD_ITEMS}, request_schema, cls=jsonschema.Draft202012Validator
    )

    openapi.register_paths(
        {
            "/broadcasts": {
                "get": {"operationId": "listBroadcasts", "responses": {"200": {"description": "ok"}}}
            }
        },
        {"Broadcast": {"type": "object"}},
    )
    extended = document(client)
    assert "/broadcasts" in extended["paths"] and "Broadcast" in extended["components"]["schemas"]
    assert "/staff" in extended["paths"]
