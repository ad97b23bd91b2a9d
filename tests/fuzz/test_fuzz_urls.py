"""Every URL of the application with the ids and numbers people (and scanners) put in them by hand: beyond the
database's integer range, with digits from other scripts, negative. A 404 or a clear 400, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from core.auth.models import Role
from tests.factories import login, make_org, make_site, make_user

ODD_IDS = ["9223372036854775808", "2147483648", "99999999999999999999999", "-1", "²", "٣", "1.0", "0x10"]
ODD_QUERY = {"page": "9223372036854775808", "site": "²", "line": "99999999999999999999", "department": "-1"}


@pytest.fixture()
def admin(app: Flask, db_session: Any) -> Any:
    org = make_org()
    make_site(org, code="TKY")
    client = app.test_client()
    login(client, make_user(org, Role.ADMIN))
    return client


def _get_rules(app: Flask) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if "GET" in r.methods]


def test_ids_out_of_range_are_not_found(app: Flask, admin: Any) -> None:
    problems = []
    for rule in _get_rules(app):
        if not any(type(c).__name__.endswith("IntegerConverter") for c in rule._converters.values()):
            continue
        for odd in ODD_IDS:
            path = rule.rule
            for name in rule.arguments:
                kind = type(rule._converters[name]).__name__
                path = path.replace(
                    f"<{'int:' if 'Integer' in kind else ''}{name}>", odd if "Integer" in kind else "TKY"
                )
            path = path.replace("<path:filename>", "x").replace(
                "<any(voicemail, callback):kind>", "voicemail"
            )
            response = admin.get(path)
            if response.status_code >= 500:
                problems.append(f"GET {path} ({rule.endpoint}) answered {response.status_code}")
    assert not problems, "\n".join(problems)


def test_numbers_in_query_strings_never_crash_a_page(app: Flask, admin: Any) -> None:
    problems = []
    for rule in _get_rules(app):
        if rule.arguments:
            continue
        response = admin.get(rule.rule, query_string=ODD_QUERY)
        if response.status_code >= 500:
            problems.append(f"GET {rule.rule}?… ({rule.endpoint}) answered {response.status_code}")
    assert not problems, "\n".join(problems)


def test_a_nul_character_anywhere_is_refused_with_a_400(app: Flask, admin: Any) -> None:
    # PostgreSQL cannot store it: without this every such request would be a 500 there (and only there).
    anonymous = app.test_client()
    assert anonymous.get("/r/abc%00def").status_code == 400
    assert admin.get("/staff", query_string={"q": "a\x00b"}).status_code == 400
    assert (
        anonymous.post("/hooks/ivr/sms-inbound", data={"From": "+819000000100", "Body": "1\x002"}).status_code
        == 400
    )
    assert (
        anonymous.post("/api/v1/staff", json={"staff": [{"employee_id": "E\x001", "name": "x"}]}).status_code
        == 400
    )
