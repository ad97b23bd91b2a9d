"""Twilio's own OpenAPI description of API 2010-04-01, used as the contract for requests and responses.

The spec (``twilio_oai/twilio_api_v2010.json``, 1.9 MB) is parsed once, lazily, and each operation's schemas are
converted from OpenAPI 3.0 to plain JSON Schema for :mod:`jsonschema`:

* ``$ref`` is inlined and ``nullable: true`` becomes ``type: [T, "null"]``;
* form bodies arrive as strings, so values are coerced by the schema's type before validation (``"30"`` →
  ``30`` for an integer, ``"true"`` → ``True`` for a boolean), and ``type: array`` properties collect every
  occurrence of a repeated key (``style: form, explode: true``, which twilio-python uses but the spec does not
  declare);
* Twilio's custom formats (``phone-number``, ``endpoint``, ``date-time-rfc-2822``…) are checked loosely.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft7Validator, FormatChecker

SPEC_PATH = Path(__file__).resolve().parent / "twilio_oai" / "twilio_api_v2010.json"

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_OPENAPI_ONLY = {
    "description",
    "example",
    "examples",
    "x-twilio",
    "readOnly",
    "writeOnly",
    "deprecated",
    "xml",
}


@functools.cache
def load_spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    return spec


def is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.hostname) and "_" not in (parts.hostname or "")


def is_phone_number(value: str) -> bool:
    return bool(E164.match(value))


def is_endpoint(value: str) -> bool:
    """Where a call can go: an E.164 number, ``client:identity`` or ``sip:user@host``."""
    if value.startswith("client:"):
        return len(value) > len("client:")
    if value.startswith("sip:"):
        return "@" in value or "." in value
    return is_phone_number(value)


def _rfc2822(value: str) -> bool:
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    def register(name: str, test: Any) -> None:
        checker.checks(name)(lambda value: not isinstance(value, str) or bool(test(value)))

    register("uri", is_http_url)
    register("phone-number", lambda v: is_phone_number(v) or bool(_ALPHANUMERIC_SENDER.match(v)))
    register("endpoint", is_endpoint)
    register("date-time-rfc-2822", _rfc2822)
    register("currency", lambda v: bool(re.fullmatch(r"[A-Za-z]{3}", v)))
    register("http-method", lambda v: v.upper() in {"GET", "POST"})
    return checker


FORMATS = _format_checker()


def to_json_schema(node: Any, spec: Mapping[str, Any], _seen: tuple[str, ...] = ()) -> Any:
    """Convert an OpenAPI 3.0 schema (with ``$ref`` into ``spec``) into a self-contained JSON Schema."""
    if isinstance(node, list):
        return [to_json_schema(item, spec, _seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in _seen:  # recursive schemas do not occur in the parts we use; stop rather than loop
            return {}
        target: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        resolved = to_json_schema(target, spec, (*_seen, ref))
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if siblings.get("nullable"):
            resolved = {"anyOf": [resolved, {"type": "null"}]}
        return resolved
    out: dict[str, Any] = {}
    ignore_format = bool(node.get("x-twilio", {}).get("ignoreFormat")) if isinstance(node, dict) else False
    for key, value in node.items():
        if key in _OPENAPI_ONLY or key == "nullable":
            continue
        if key == "format" and ignore_format:
            continue
        if key in {"properties", "patternProperties"}:
            out[key] = {name: to_json_schema(sub, spec, _seen) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value, spec, _seen)
    if node.get("nullable"):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


@dataclass(frozen=True)
class Violation:
    """One reason a request would be refused: which field and which rule (required, type, enum, format…)."""

    field: str | None
    rule: str
    message: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    path_params: Mapping[str, Mapping[str, Any]]
    form_schema: Mapping[str, Any] | None
    response_schemas: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def form_properties(self) -> Mapping[str, Mapping[str, Any]]:
        if self.form_schema is None:
            return {}
        props: Mapping[str, Mapping[str, Any]] = self.form_schema.get("properties", {})
        return props

    @property
    def required_fields(self) -> tuple[str, ...]:
        if self.form_schema is None:
            return ()
        return tuple(self.form_schema.get("required", ()))

    def parse_form(self, pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, Any], list[Violation]]:
        """Read a form body as the API does: typed values, arrays from repeated keys, unknown keys ignored."""
        values: dict[str, list[str]] = {}
        for key, value in pairs:
            values.setdefault(key, []).append(value)
        parsed: dict[str, Any] = {}
        for name, prop in self.form_properties.items():
            if name not in values:
                continue
            raw = values[name]
            if prop.get("type") == "array":
                item_schema = prop.get("items", {})
                parsed[name] = [_coerce(v, item_schema) for v in raw]
            else:
                parsed[name] = _coerce(raw[0], prop)
        return parsed, self.validate_form(parsed)

    def validate_form(self, instance: Mapping[str, Any]) -> list[Violation]:
        problems = [
            Violation(name, "required", f"Missing required parameter {name} in the post body")
            for name in self.required_fields
            if instance.get(name) in (None, "", [])
        ]
        if self._form_validator is None:
            return problems
        errors = self._form_validator.iter_errors(dict(instance))
        for error in sorted(errors, key=lambda e: [str(p) for p in e.path]):
            if error.validator == "required":
                continue
            name = str(error.path[0]) if error.path else None
            problems.append(
                Violation(name, str(error.validator), _describe(name, error.validator, error.instance))
            )
        return problems

    def validate_path(self, params: Mapping[str, str]) -> list[Violation]:
        problems = []
        for name, schema in self.path_params.items():
            value = params.get(name)
            if value is None:
                problems.append(Violation(name, "required", f"Missing path parameter {name}"))
                continue
            for error in Draft7Validator(dict(schema), format_checker=FORMATS).iter_errors(value):
                problems.append(Violation(name, str(error.validator), f"{name} {value!r}: {error.message}"))
        return problems

    @cached_property
    def _form_validator(self) -> Draft7Validator | None:
        return (
            None
            if self.form_schema is None
            else Draft7Validator(dict(self.form_schema), format_checker=FORMATS)
        )

    @cached_property
    def _response_validators(self) -> dict[int, Draft7Validator]:
        return {
            status: Draft7Validator(dict(s), format_checker=FORMATS)
            for status, s in self.response_schemas.items()
        }

    def validate_response(self, status: int, body: Any) -> list[str]:
        validator = self._response_validators.get(status)
        if validator is None:
            return [f"{self.operation_id} declares no response {status}"]
        return [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in validator.iter_errors(body)]


def _coerce(value: str, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean" and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return value


def _describe(name: str | None, rule: Any, value: Any) -> str:
    label = name or "request"
    if rule == "type":
        return f"Invalid value {value!r} for parameter {label}"
    if rule == "enum":
        return f"Invalid value {value!r} for parameter {label}: not one of the allowed values"
    if rule == "format":
        return f"{label} is not valid: {value!r}"
    return f"Invalid parameter {label}: {value!r}"


@functools.cache
def operation(method: str, path: str) -> Operation:
    """The operation for ``method`` on the spec path template, e.g. ``/2010-04-01/Accounts/{AccountSid}/Calls.json``."""
    spec = load_spec()
    raw = spec["paths"][path][method.lower()]
    path_params = {
        p["name"]: to_json_schema(p.get("schema", {}), spec)
        for p in raw.get("parameters", [])
        if p.get("in") == "path"
    }
    form_schema = None
    body = raw.get("requestBody", {}).get("content", {}).get("application/x-www-form-urlencoded")
    if body is not None:
        form_schema = to_json_schema(body["schema"], spec)
    responses: dict[int, Mapping[str, Any]] = {}
    for status, response in raw.get("responses", {}).items():
        content = response.get("content", {}).get("application/json")
        if content is not None and status.isdigit():
            responses[int(status)] = to_json_schema(content["schema"], spec)
    return Operation(
        method=method.upper(),
        path=path,
        operation_id=raw.get("operationId", f"{method.upper()} {path}"),
        path_params=path_params,
        form_schema=form_schema,
        response_schemas=responses,
    )


ACCOUNT = "/2010-04-01/Accounts/{AccountSid}"
CREATE_CALL = ("POST", f"{ACCOUNT}/Calls.json")
FETCH_CALL = ("GET", f"{ACCOUNT}/Calls/{{Sid}}.json")
UPDATE_CALL = ("POST", f"{ACCOUNT}/Calls/{{Sid}}.json")
CREATE_MESSAGE = ("POST", f"{ACCOUNT}/Messages.json")
FETCH_MESSAGE = ("GET", f"{ACCOUNT}/Messages/{{Sid}}.json")
