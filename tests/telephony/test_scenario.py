"""Scenario files: how each number behaves, reproducibly for a given seed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.telephony.simulator.scenario import Scenario, ScenarioError


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("answer", {"voice": "answer", "answer_after_s": 3.0, "digits": [], "sms_link_after_s": None}),
        ("never", {"voice": "no_answer", "sms_link_after_s": None, "email_link_after_s": None}),
        ("no_answer", {"voice": "no_answer"}),
        ("busy", {"voice": "busy", "sms_status": "delivered"}),
        ("voicemail", {"voice": "voicemail", "answer_after_s": 15.0}),
        ("invalid", {"voice": "invalid", "sms_status": "undelivered"}),
        ({"voicemail": {"after_s": 9}}, {"voice": "voicemail", "answer_after_s": 9.0}),
        (
            {"answer_call": {"after_s": 2, "digits": ["1", "23#"], "talk_s": 60, "hangup_after_s": 30}},
            {
                "voice": "answer",
                "answer_after_s": 2.0,
                "digits": ["1", "23#"],
                "talk_s": 60.0,
                "hangup_after_s": 30.0,
            },
        ),
        (
            {"sms_link": {"after_s": 40, "answers": ["2", "1"]}},
            {
                "voice": "no_answer",
                "sms_link_after_s": 40.0,
                "email_link_after_s": None,
                "web_answers": ["2", "1"],
            },
        ),
        ({"email_link": True, "sms_status": "failed"}, {"email_link_after_s": 20.0, "sms_status": "failed"}),
        ({"answer_call": {"digits": "2"}}, {"digits": ["2"]}),
    ],
)
def test_behaviours(behaviour: Any, expected: dict[str, Any]) -> None:
    person = Scenario.from_dict({"numbers": {"+819000000001": behaviour}}).person("+819000000001").as_dict()
    assert {key: person[key] for key in expected} == expected


def test_without_a_scenario_everyone_answers_and_opens_links() -> None:
    person = Scenario().person("+819000000001")
    assert (person.voice, person.answer_after_s, person.digits) == ("answer", 3.0, ("1",))
    assert (person.sms_link_after_s, person.email_link_after_s) == (20.0, 20.0)
    assert person.form_answers == ("1",)


def test_first_matching_rule_wins_exact_then_patterns_in_order() -> None:
    scenario = Scenario.from_dict(
        {
            "default": "never",
            "numbers": {
                "+81900000002*": "busy",
                "re:^\\+8190000000[0-2]": "voicemail",
                "+819000000021": "invalid",  # exact match beats the pattern listed first
                "client:agent-*": {"answer_call": {"after_s": 4}},
                "*@example.com": {"email_link": {"after_s": 60}},
            },
        }
    )
    assert scenario.person("+819000000021").voice == "invalid"
    assert scenario.person("+819000000022").voice == "busy"
    assert scenario.person("+819000000015").voice == "voicemail"
    assert scenario.person("+819000000035").voice == "no_answer"
    assert scenario.person("client:agent-7").voice == "answer"
    assert scenario.person("kim@example.com").email_link_after_s == 60.0


MIX = {
    "seed": 7,
    "default": {
        "mix": [
            {"weight": 70, "behaviour": {"sms_link": {"after_s": [30, 300], "answers": ["1", "2"]}}},
            {"weight": 15, "behaviour": {"answer_call": {"after_s": 5, "digits": ["1", "2"]}}},
            {"weight": 10, "behaviour": "never"},
            {"weight": 5, "behaviour": "invalid"},
        ]
    },
}


def kind(scenario: Scenario, number: str) -> str:
    person = scenario.person(number)
    if person.voice == "invalid":
        return "invalid"
    if person.voice == "answer":
        return "answer"
    return "sms" if person.sms_link_after_s is not None else "never"


def test_a_mix_is_reproducible_per_number_whatever_the_order() -> None:
    numbers = [f"+81900000{i:04d}" for i in range(200)]
    first = Scenario.from_dict(MIX)
    forwards = {n: first.person(n) for n in numbers}
    second = Scenario.from_dict(MIX)
    backwards = {n: second.person(n) for n in reversed(numbers)}
    assert forwards == backwards
    reseeded = Scenario.from_dict({**MIX, "seed": 8})
    assert any(kind(first, n) != kind(reseeded, n) for n in numbers)


def test_a_mix_follows_its_weights() -> None:
    scenario = Scenario.from_dict(MIX)
    counts = Counter(kind(scenario, f"+8190{i:08d}") for i in range(4000))
    assert counts["sms"] == pytest.approx(2800, rel=0.06)
    assert counts["answer"] == pytest.approx(600, rel=0.15)
    assert counts["never"] == pytest.approx(400, rel=0.2)
    assert counts["invalid"] == pytest.approx(200, rel=0.25)
    sms_delays = [scenario.person(f"+8190{i:08d}").sms_link_after_s for i in range(4000)]
    assert all(30 <= d <= 300 for d in sms_delays if d is not None)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"numbers": {"+1": "sometimes"}}, "unknown behaviour 'sometimes'"),
        ({"numbers": {"+1": {"answer": {}}}}, "unknown behaviour keys"),
        ({"numbers": {"+1": {"answer_call": {"after_s": [5, 2]}}}}, "a range is [low, high]"),
        ({"numbers": {"+1": {"answer_call": {"after_s": -1}}}}, "cannot be negative"),
        ({"numbers": {"+1": {"answer_call": {"after_s": "soon"}}}}, "a duration is seconds"),
        ({"numbers": {"+1": {"sms_status": "lost"}}}, "sms_status must be"),
        ({"default": {"mix": []}}, "non-empty list"),
        ({"default": {"mix": [{"weight": 0, "behaviour": "busy"}]}}, "add up to zero"),
        ({"numbers": ["+1"]}, "'numbers' must map"),
        ({"network": {"speed": 3}}, "unknown network keys"),
        ({"people": {}}, "unknown scenario keys"),
    ],
)
def test_mistakes_are_reported_when_loading(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Scenario.from_dict(document)


def test_loads_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "drill.yaml"
    yaml_file.write_text(
        "seed: 3\nnetwork:\n  cps: 2\nnumbers:\n  '+819000000001': busy\n  'client:agent-*':\n"
        "    answer_call: {after_s: 4, talk_s: 90}\n",
        encoding="utf-8",
    )
    json_file = tmp_path / "drill.json"
    json_file.write_text(json.dumps({"numbers": {"+819000000001": "voicemail"}}), encoding="utf-8")

    from_yaml = Scenario.load(yaml_file)
    assert from_yaml.seed == 3
    assert from_yaml.network.cps == 2.0
    assert from_yaml.person("+819000000001").voice == "busy"
    assert from_yaml.person("client:agent-2").talk_s == 90.0
    assert Scenario.load(json_file).person("+819000000001").voice == "voicemail"
