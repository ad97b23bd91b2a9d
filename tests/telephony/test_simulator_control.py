"""The simulator's own endpoints, the spec reader and the CLI entry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from core.telephony.simulator import ManualClock, contract, create_simulator_app, simulator_of
from core.telephony.simulator.cli import simulator_command
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN

PERSON = "+819000000041"


@pytest.fixture()
def sim_client() -> Iterator[FlaskClient]:
    app = create_simulator_app(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        clock=ManualClock(),
        scenario={"numbers": {PERSON: "busy"}},
    )
    yield app.test_client()
    simulator_of(app).stop()


def place(client: FlaskClient, to: str = PERSON) -> TestResponse:
    return client.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json",
        data={"To": to, "From": "+15550100100", "Twiml": "<Response><Say>hi</Say></Response>"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )


def test_health_advance_and_reset(sim_client: FlaskClient) -> None:
    assert place(sim_client).status_code == 201
    health = sim_client.get("/_sim/health").json
    assert (health["ok"], health["calls"], health["manual_clock"]) == (True, 1, True)
    assert health["pending_events"] >= 1

    advanced = sim_client.post("/_sim/advance", json={"seconds": 60}).json
    assert advanced["ran"] > 0
    [call] = sim_client.get("/_sim/calls").json
    assert call["status"] == "busy"

    assert sim_client.post("/_sim/reset").json == {"ok": True}
    assert sim_client.get("/_sim/calls").json == []
    assert sim_client.get("/_sim/health").json["pending_events"] == 0


def test_people_endpoint_shows_the_scripted_behaviour(sim_client: FlaskClient) -> None:
    assert sim_client.get(f"/_sim/people/{PERSON}").json["voice"] == "busy"
    assert sim_client.get("/_sim/people/client:agent-1").json["voice"] == "answer"


def test_inbound_needs_a_voice_url(sim_client: FlaskClient) -> None:
    refused = sim_client.post("/_sim/inbound", json={"to": "+15550100100", "from": PERSON})
    assert refused.status_code == 400
    assert refused.json["code"] == 21205


def test_unknown_api_paths_answer_like_twilio(sim_client: FlaskClient) -> None:
    response = sim_client.get(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Queues.json", auth=(ACCOUNT_SID, AUTH_TOKEN)
    )
    assert response.status_code == 404
    assert response.json["code"] == 20404


def test_speed_is_refused_for_advance_with_a_running_clock() -> None:
    app = create_simulator_app(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, speed=10)
    try:
        assert app.test_client().post("/_sim/advance", json={"seconds": 1}).status_code == 409
    finally:
        simulator_of(app).stop()


def test_openapi_nullable_and_refs_become_json_schema() -> None:
    schema = contract.operation(*contract.FETCH_CALL).response_schemas[200]
    assert schema["properties"]["sid"]["type"] == ["string", "null"]
    assert "queued" in schema["properties"]["status"]["enum"]  # $ref to call_enum_status, inlined
    create = contract.operation(*contract.CREATE_CALL)
    parsed, problems = create.parse_form(
        [
            ("To", PERSON),
            ("From", "+15550100100"),
            ("Url", "https://example.com/v"),
            ("Timeout", "30"),
            ("Record", "true"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "completed"),
            ("NotInTheSpec", "ignored"),
        ]
    )
    assert problems == []
    assert parsed["Timeout"] == 30
    assert parsed["Record"] is True
    assert parsed["StatusCallbackEvent"] == ["ringing", "completed"]
    assert "NotInTheSpec" not in parsed


def test_cli_refuses_a_broken_scenario_before_starting(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"numbers": {"+819000000001": "sometimes"}}', encoding="utf-8")
    result = CliRunner().invoke(simulator_command, ["--scenario", str(broken), "--port", "0"])
    assert result.exit_code != 0
    assert "unknown behaviour 'sometimes'" in result.output
