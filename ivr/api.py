"""JSON API: ``POST /api/v1/broadcasts`` and ``GET /api/v1/broadcasts/<id>`` with a Bearer API token."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from flask import Blueprint, abort, g, jsonify, request

from core.auth.service import resolve_api_token
from core.errors import ValidationError
from ivr import service

bp = Blueprint("ivr_api", __name__, url_prefix="/api/v1")


@bp.before_request
def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    row = resolve_api_token(token.strip()) if scheme.lower() == "bearer" and token else None
    if row is None:
        abort(401, description="a valid API token is required (Authorization: Bearer …)")
    wanted = "broadcasts:write" if request.method == "POST" else "broadcasts:read"
    granted = row.scopes.split()
    if wanted not in granted and not (wanted == "broadcasts:read" and "broadcasts:write" in granted):
        abort(403, description=f"this token lacks the {wanted} scope")
    g.api_token = row


@cache
def _request_validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(openapi_paths()[1]["BroadcastRequest"])


@bp.post("/broadcasts")
def create_broadcast() -> Any:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("send a JSON object")
    problems = sorted(_request_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if problems:
        # Every problem at once, each with where it is: what the caller needs to fix the request.
        raise ValidationError(
            "the request is not valid",
            errors=[
                f"{'/'.join(str(p) for p in e.absolute_path) or 'body'}: {e.message}" for e in problems[:20]
            ],
        )
    closes_at = None
    if data.get("closes_at"):
        try:
            closes_at = datetime.fromisoformat(str(data["closes_at"]))
        except ValueError as exc:
            raise ValidationError(
                "closes_at must be an ISO 8601 time with a zone", field="closes_at"
            ) from exc
        if closes_at.tzinfo is None:
            raise ValidationError("closes_at must include a time zone", field="closes_at")
    token = g.api_token
    broadcast = service.start_broadcast(
        organization_id=token.organization_id,
        template=str(data.get("template", "")),
        audience=data.get("audience") or {},
        mode=str(data.get("mode", "real")),
        channels=data.get("channels") or None,
        closes_at=closes_at,
        include_family=data.get("include_family"),
        origin=str(data.get("origin") or "api")[:120],
        title=data.get("title"),
        actor=f"api:{token.name}",
    )
    return jsonify(service.broadcast_status(broadcast_id=broadcast.id)), 201


@bp.get("/broadcasts/<int:broadcast_id>")
def show_broadcast(broadcast_id: int) -> Any:
    service.get_broadcast(broadcast_id=broadcast_id, organization_id=g.api_token.organization_id)
    return jsonify(service.broadcast_status(broadcast_id=broadcast_id))


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """This API's entries in ``/api/v1/openapi.json`` (registered from ``ivr.init_app``)."""
    error = {"$ref": "#/components/schemas/Error"}
    status = {"$ref": "#/components/schemas/BroadcastStatus"}

    def body(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    names = {"type": "array", "items": {"type": "string", "minLength": 1}}
    audience = {
        "type": "object",
        "description": "Who is asked: a person matching any part is in. everyone=true means all staff.",
        "properties": {
            "everyone": {"type": "boolean"},
            "sites": {**names, "description": "Site codes."},
            "departments": {**names, "description": "Department names (their sub-departments too)."},
            "prefectures": {**names, "description": "JIS prefecture codes where people work or live."},
            "work_prefectures": names,
            "home_prefectures": names,
            "staff_ids": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}},
        },
    }
    counts = {
        "type": "object",
        "required": ["id", "name", "recipients", "answered", "unreached", "in_progress"],
        "properties": {
            "id": {"type": ["integer", "string", "null"]},
            "name": {"type": "string"},
            "recipients": {"type": "integer", "minimum": 0},
            "answered": {"type": "integer", "minimum": 0},
            "unreached": {"type": "integer", "minimum": 0},
            "in_progress": {"type": "integer"},
        },
    }
    moment = {"type": ["string", "null"], "format": "date-time"}
    schemas = {
        "BroadcastRequest": {
            "type": "object",
            "required": ["template", "audience"],
            "properties": {
                "template": {"type": "string", "description": "earthquake, tsunami, heavy_rain, …"},
                "audience": audience,
                "mode": {"type": "string", "enum": ["real", "drill"], "default": "real"},
                "channels": {"type": "array", "items": {"type": "string", "enum": ["sms", "email", "voice"]}},
                "closes_at": {"type": "string", "format": "date-time", "description": "With a time zone."},
                "include_family": {"type": ["boolean", "null"]},
                "origin": {"type": "string", "maxLength": 120},
                "title": {"type": ["string", "null"], "maxLength": 200},
            },
        },
        "BroadcastStatus": {
            "type": "object",
            "required": ["id", "state", "mode", "recipients", "answered", "unreached", "in_progress"],
            "properties": {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "template": {"type": "string"},
                "mode": {"type": "string", "enum": ["real", "drill"]},
                "state": {"type": "string", "enum": ["draft", "sending", "open", "closed", "cancelled"]},
                "origin": {"type": "string"},
                "channels": {"type": "array", "items": {"type": "string"}},
                "recipients": {"type": "integer", "minimum": 0},
                "answered": {"type": "integer", "minimum": 0},
                "unreached": {"type": "integer", "minimum": 0},
                "in_progress": {"type": "integer", "minimum": 0},
                "by_state": {"type": "object", "additionalProperties": {"type": "integer"}},
                "by_answer": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
                "by_answer_channel": {"type": "object", "additionalProperties": {"type": "integer"}},
                "by_department": {"type": "array", "items": counts},
                "by_site": {"type": "array", "items": counts},
                "by_prefecture": {"type": "array", "items": counts},
                "attempts": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
                "started_at": moment,
                "first_answer_at": moment,
                "closes_at": moment,
                "closed_at": moment,
            },
        },
    }
    refused = {
        "401": body(error, "Missing, unknown or revoked API token."),
        "403": body(error, "The token lacks the broadcasts scope."),
    }
    paths = {
        "/broadcasts": {
            "post": {
                "operationId": "startBroadcast",
                "summary": "Start a safety broadcast (needs broadcasts:write)",
                "tags": ["broadcasts"],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/BroadcastRequest"}}
                    },
                },
                "responses": {
                    "201": body(status, "Started; its live counts."),
                    "400": body(error, "The request is not valid (the message says why)."),
                    "404": body(error, "No such template."),
                    **refused,
                },
            }
        },
        "/broadcasts/{broadcast_id}": {
            "get": {
                "operationId": "showBroadcast",
                "summary": "Live counts of a broadcast (needs broadcasts:read)",
                "tags": ["broadcasts"],
                "parameters": [
                    {"name": "broadcast_id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": body(status, "The counts, by answer, department, site and prefecture."),
                    "404": body(error, "No broadcast of this organization has that id."),
                    **refused,
                },
            }
        },
    }
    return paths, schemas
