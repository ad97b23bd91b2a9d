"""The HR-master sync API: bulk upsert and listing of staff, with per-organization API tokens.

Private and family contacts are neither accepted nor returned: only the person sets them, on their own page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from core import db
from core.auth.models import ApiToken
from core.auth.service import resolve_api_token
from core.directory import importer, openapi, service
from core.directory.models import Staff
from core.time import as_utc
from core.web import whole_number

bp = Blueprint("api", __name__, url_prefix="/api/v1")

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 500


def _error(status: int, message: str, errors: list[Any] | None = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": message}
    if errors is not None:
        body["errors"] = errors
    response = jsonify(body)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="lifeline"'
    return response, status


def require_token(scope: str) -> Callable[[F], F]:
    """``Authorization: Bearer llt_…`` of a live token holding ``scope``; the token's organization is the one
    the request acts on."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            kind, _, token = header.partition(" ")
            row = resolve_api_token(token.strip()) if kind.lower() == "bearer" and token.strip() else None
            if row is None:
                return _error(401, "a valid API token is required (Authorization: Bearer llt_…)")
            if scope not in row.scopes.split():
                return _error(403, f"this token lacks the {scope} scope")
            g.api_token = row
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def _token() -> ApiToken:
    token: ApiToken = g.api_token
    return token


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(openapi.document(server_url=request.script_root + "/api/v1"))


def _item_errors(errors: list[importer.RowError]) -> list[dict[str, Any]]:
    return [
        {"index": e.line, "field": e.field, "employee_id": e.employee_id, "message": e.text} for e in errors
    ]


def _request_error(field: str, message: str) -> tuple[Response, int]:
    return _error(
        422,
        "the request is invalid; nothing was changed",
        [{"index": None, "field": field, "message": message}],
    )


@bp.post("/staff")
@require_token("staff:write")
def upsert_staff() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    unknown = sorted(set(body) - {"mode", "dry_run", "staff"})
    if unknown:
        return _request_error(unknown[0], f"unknown field {unknown[0]}")
    mode = body.get("mode", "update")
    if mode not in importer.MODES:
        return _request_error("mode", "mode must be update or replace")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        return _request_error("dry_run", "must be true or false")
    items = body.get("staff")
    if not isinstance(items, list):
        return _request_error("staff", "staff must be an array of objects")
    if len(items) > importer.MAX_ROWS:
        return _request_error(
            "staff", f"at most {importer.MAX_ROWS:,} people per request; send them in parts"
        )

    token = _token()
    rows, errors = importer.rows_from_json(items)
    plan = service.plan_rows(
        organization_id=token.organization_id,
        rows=rows,
        mode=mode,
        region=current_app.extensions["lifeline.settings"].default_region,
        errors=errors,
    )
    if plan.errors:
        bad = len(plan.bad_lines)
        return _error(422, f"{bad} items are invalid; nothing was changed", _item_errors(list(plan.errors)))
    if not dry_run:
        service.apply_import(
            plan=plan,
            skip_invalid=False,
            actor=f"api:{token.name}",
            source=f"API token {token.prefix}…",
            ip=request.remote_addr,
        )
    return jsonify(
        applied=not dry_run, dry_run=dry_run, mode=mode, counts=plan.diff.counts, diff=plan.diff.as_dict()
    )


def _positive(name: str, default: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    value = whole_number(raw, maximum=10**9)
    if value is None or value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return min(value, maximum) if maximum else value


def _parse_time(raw: str) -> datetime | None:
    # An unencoded "+09:00" in a query string arrives as " 09:00".
    for candidate in (raw, raw.replace(" ", "+")):
        try:
            return as_utc(datetime.fromisoformat(candidate))
        except ValueError:
            continue
    return None


@bp.get("/staff")
@require_token("staff:read")
def list_staff() -> Any:
    token = _token()
    try:
        page = _positive("page", 1)
        per_page = _positive("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    except ValueError as exc:
        return _error(400, str(exc))
    query = select(Staff).where(Staff.organization_id == token.organization_id)
    since_raw = request.args.get("updated_since")
    if since_raw:
        since = _parse_time(since_raw)
        if since is None:
            return _error(400, "updated_since must be an ISO 8601 date-time, e.g. 2024-04-01T00:00:00+09:00")
        query = query.where(Staff.updated_at >= since)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    people = db.session.scalars(
        query.options(selectinload(Staff.contacts))
        .order_by(Staff.employee_id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    manager_ids = {p.manager_id for p in people if p.manager_id}
    employee_ids = {
        staff_id: employee_id
        for staff_id, employee_id in db.session.execute(
            select(Staff.id, Staff.employee_id).where(Staff.id.in_(manager_ids))
        )
    }
    staff = []
    for person in people:
        registered = service.registered_contacts(person)
        staff.append(
            {
                **service.record_of(person, employee_ids).as_dict(),
                "updated_at": person.updated_at.isoformat(),
                "private_contacts_registered": len(registered),
            }
        )
    pages = math.ceil(total / per_page)
    return jsonify(
        staff=staff,
        page=page,
        per_page=per_page,
        total=total,
        next_page=page + 1 if page < pages else None,
    )
