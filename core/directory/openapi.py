"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``.

The directory describes its own endpoints here; other parts add theirs with :func:`register_paths` (from their
``init_app``), so there is one document for the whole ``/api/v1``. Tests validate real responses against it.
"""

from __future__ import annotations

import copy
from typing import Any

from core.directory.importer import FIELDS, MAX_LENGTH, MODES

_registered_paths: dict[str, dict[str, Any]] = {}
_registered_schemas: dict[str, dict[str, Any]] = {}


def register_paths(
    paths: dict[str, dict[str, Any]], schemas: dict[str, dict[str, Any]] | None = None
) -> None:
    """Add path items (keys relative to the server, e.g. ``"/broadcasts"``) and component schemas.

    Registering the same path again replaces it, so calling this from ``init_app`` for every app is harmless.
    """
    _registered_paths.update(copy.deepcopy(paths))
    _registered_schemas.update(copy.deepcopy(schemas or {}))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_FIELD_DESCRIPTIONS = {
    "employee_id": "Key of the person in HR's master; full-width digits are normalised.",
    "name": "Full name as shown to people, e.g. 山田 太郎.",
    "name_kana": "Reading in katakana; half-width kana are normalised.",
    "department": "Department name; unknown names create a department.",
    "site": "Site code, e.g. TKY.",
    "work_phone": "Any common notation; stored as E.164 (default region JP).",
    "work_email": "Work e-mail address.",
    "home_prefecture": "JIS X 0401 code (01–47) or a name such as 東京都; returned as the code.",
    "language": "ja or en.",
    "can_work_from_home": "Whether the person can work from home.",
    "manager_employee_id": "Employee id of the manager: in the same request or already in the directory.",
}


def _staff_input() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name in FIELDS:
        if name == "can_work_from_home":
            schema: dict[str, Any] = {"type": ["boolean", "null"]}
        else:
            schema = {"type": ["string", "null"]}
            if name in MAX_LENGTH:
                schema["maxLength"] = MAX_LENGTH[name]
        schema["description"] = _FIELD_DESCRIPTIONS[name]
        properties[name] = schema
    properties["employee_id"]["type"] = "string"
    properties["name"]["type"] = "string"
    return {
        "type": "object",
        "description": "A field left out keeps its current value; null or an empty string clears it.",
        "required": ["employee_id", "name"],
        "additionalProperties": False,
        "properties": properties,
    }


def _staff_record() -> dict[str, Any]:
    properties: dict[str, Any] = {name: {"type": "string"} for name in FIELDS}
    properties["can_work_from_home"] = {"type": "boolean"}
    properties["language"] = {"type": "string", "enum": ["ja", "en"]}
    properties["home_prefecture"] = {"type": "string", "pattern": "^([0-4][0-9])?$"}
    properties["work_phone"] = {"type": "string", "pattern": r"^(\+[1-9][0-9]{6,14})?$"}
    return {
        "type": "object",
        "required": list(FIELDS),
        "additionalProperties": False,
        "properties": properties,
    }


def _schemas() -> dict[str, Any]:
    record = _staff_record()
    staff = copy.deepcopy(record)
    staff["properties"]["updated_at"] = {"type": "string", "format": "date-time"}
    staff["properties"]["private_contacts_registered"] = {
        "type": "integer",
        "minimum": 0,
        "description": "How many private/family contacts the person registered (their values are never given).",
    }
    staff["required"] = [*record["required"], "updated_at", "private_contacts_registered"]
    added = copy.deepcopy(record)
    added["properties"]["line"] = {"type": "integer", "description": "Index of the item in the request."}
    added["required"] = [*record["required"], "line"]
    counts = {
        "type": "object",
        "required": ["added", "changed", "unchanged", "removed", "departments_created"],
        "additionalProperties": False,
        "properties": {
            k: {"type": "integer", "minimum": 0}
            for k in ("added", "changed", "unchanged", "removed", "departments_created")
        },
    }
    value = {"type": ["string", "boolean"]}
    return {
        "StaffInput": _staff_input(),
        "Staff": staff,
        "StaffPage": {
            "type": "object",
            "required": ["staff", "page", "per_page", "total", "next_page"],
            "additionalProperties": False,
            "properties": {
                "staff": {"type": "array", "items": _ref("Staff")},
                "page": {"type": "integer", "minimum": 1},
                "per_page": {"type": "integer", "minimum": 1},
                "total": {"type": "integer", "minimum": 0},
                "next_page": {"type": ["integer", "null"]},
            },
        },
        "UpsertRequest": {
            "type": "object",
            "required": ["staff"],
            "additionalProperties": False,
            "properties": {
                "mode": {
                    "type": "string",
                    "enum": list(MODES),
                    "default": "update",
                    "description": "replace removes everyone not in the request (listed in the diff first).",
                },
                "dry_run": {"type": "boolean", "default": False},
                "staff": {"type": "array", "items": _ref("StaffInput")},
            },
        },
        "Counts": counts,
        "Diff": {
            "type": "object",
            "required": ["mode", "counts", "added", "changed", "removed", "departments_to_create"],
            "additionalProperties": False,
            "properties": {
                "mode": {"type": "string", "enum": list(MODES)},
                "counts": _ref("Counts"),
                "added": {"type": "array", "items": added},
                "changed": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["employee_id", "name", "line", "changes"],
                        "additionalProperties": False,
                        "properties": {
                            "employee_id": {"type": "string"},
                            "name": {"type": "string"},
                            "line": {"type": "integer"},
                            "changes": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["field", "before", "after"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "field": {"type": "string", "enum": list(FIELDS)},
                                        "before": value,
                                        "after": value,
                                    },
                                },
                            },
                        },
                    },
                },
                "removed": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["employee_id", "name"],
                        "additionalProperties": False,
                        "properties": {"employee_id": {"type": "string"}, "name": {"type": "string"}},
                    },
                },
                "departments_to_create": {"type": "array", "items": {"type": "string"}},
            },
        },
        "UpsertResult": {
            "type": "object",
            "required": ["applied", "dry_run", "mode", "counts", "diff"],
            "additionalProperties": False,
            "properties": {
                "applied": {"type": "boolean", "description": "false for a dry run"},
                "dry_run": {"type": "boolean"},
                "mode": {"type": "string", "enum": list(MODES)},
                "counts": _ref("Counts"),
                "diff": _ref("Diff"),
            },
        },
        "ItemError": {
            "type": "object",
            "required": ["index", "field", "message"],
            "additionalProperties": False,
            "properties": {
                "index": {
                    "type": ["integer", "null"],
                    "description": "Index in the staff array; null for a problem with the request itself.",
                },
                "field": {"type": ["string", "null"]},
                "employee_id": {"type": "string"},
                "message": {"type": "string"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "status": {"type": "integer"},
                "errors": {"type": "array", "items": {"anyOf": [_ref("ItemError"), {"type": "string"}]}},
            },
        },
    }


def _directory_paths() -> dict[str, Any]:
    unauthorized = _json(_ref("Error"), "Missing, unknown or revoked API token.")
    forbidden = _json(_ref("Error"), "The token lacks the scope this operation needs.")
    return {
        "/openapi.json": {
            "get": {
                "operationId": "openapiDocument",
                "summary": "This document",
                "tags": ["meta"],
                "security": [],
                "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
            }
        },
        "/staff": {
            "get": {
                "operationId": "listStaff",
                "summary": "List staff (work contacts only; private contacts are never returned)",
                "tags": ["directory"],
                "parameters": [
                    {
                        "name": "page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "default": 1},
                    },
                    {
                        "name": "per_page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                    },
                    {
                        "name": "updated_since",
                        "in": "query",
                        "description": "Only people changed at or after this time (ISO 8601; no zone means UTC).",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                ],
                "responses": {
                    "200": _json(_ref("StaffPage"), "One page of staff, ordered by employee id."),
                    "400": _json(_ref("Error"), "A query parameter is malformed."),
                    "401": unauthorized,
                    "403": forbidden,
                },
            },
            "post": {
                "operationId": "upsertStaff",
                "summary": "Bulk upsert from the HR master (all or nothing)",
                "tags": ["directory"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("UpsertRequest")}},
                },
                "responses": {
                    "200": _json(_ref("UpsertResult"), "Applied (or, for a dry run, what would be applied)."),
                    "400": _json(_ref("Error"), "The body is not a JSON object."),
                    "401": unauthorized,
                    "403": forbidden,
                    "422": _json(_ref("Error"), "Some items are invalid; nothing was changed."),
                },
            },
        },
    }


def document(server_url: str = "/api/v1") -> dict[str, Any]:
    paths = _directory_paths()
    paths.update(copy.deepcopy(_registered_paths))
    schemas = _schemas()
    schemas.update(copy.deepcopy(_registered_schemas))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lifeline API",
            "version": "1",
            "description": "Authenticate with an organization's API token: `Authorization: Bearer llt_…`.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "llt_…"},
                # A site's own heartbeat token (routing), distinct from the organization's API tokens.
                "siteToken": {"type": "http", "scheme": "bearer", "bearerFormat": "lhb_…"},
            },
        },
    }
