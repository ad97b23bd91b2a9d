"""Heartbeats from the sites: ``POST /api/v1/sites/<code>/heartbeat`` with ``Authorization: Bearer <token>``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from continuity import service

bp = Blueprint("continuity_api", __name__, url_prefix="/api/v1")


@bp.post("/sites/<code>/heartbeat")
def heartbeat(code: str) -> tuple[Response, int]:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return jsonify(error="a site heartbeat token is required (Authorization: Bearer …)"), 401
    status = service.record_heartbeat(site_code=code, token=token.strip())
    if status is None:
        return jsonify(error="this token is not the heartbeat token of that site"), 403
    return (
        jsonify(
            site=code,
            state=status.state.value,
            proposed_up=status.proposed_up,
            heartbeat_limit_s=status.heartbeat_limit_s,
        ),
        200,
    )


def openapi_paths() -> dict[str, Any]:
    """The heartbeat's entry in ``/api/v1/openapi.json`` (registered from ``continuity.init_app``)."""
    error = {
        "description": "Refused.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return {
        "/sites/{code}/heartbeat": {
            "post": {
                "operationId": "siteHeartbeat",
                "summary": "A site says it is alive (its own heartbeat token, not an organization API token)",
                "tags": ["routing"],
                "security": [{"siteToken": []}],
                "parameters": [
                    {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "Recorded; the site's state as routing sees it.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["site", "state", "proposed_up", "heartbeat_limit_s"],
                                    "properties": {
                                        "site": {"type": "string"},
                                        "state": {"type": "string"},
                                        "proposed_up": {"type": "boolean"},
                                        "heartbeat_limit_s": {"type": "integer"},
                                    },
                                }
                            }
                        },
                    },
                    "401": error,
                    "403": error,
                },
            }
        }
    }
