"""Templates: built-ins valid, SMS texts fit one segment, definitions validated with clear errors, SMS replies."""

from __future__ import annotations

import copy

import pytest

from ivr.scenarios import (
    BUILTIN,
    BUILTIN_ORDER,
    SMS_TEXT_LIMIT,
    TemplateError,
    builtin,
    parse_sms_reply,
    parse_template,
)


@pytest.mark.parametrize("key", BUILTIN_ORDER)
@pytest.mark.parametrize("language", ["ja", "en"])
def test_sms_text_fits_before_the_link(key, language):
    # One UCS-2 SMS segment is 70 characters: the text must fit so the link is the only thing after it.
    text = builtin(key).text("sms", language)
    assert 0 < len(text) <= SMS_TEXT_LIMIT


@pytest.mark.parametrize("key", BUILTIN_ORDER)
def test_builtin_templates_are_complete_in_both_languages(key):
    template = builtin(key)
    assert template.key == key
    for question in template.questions:
        assert question.prompt("ja") and question.prompt("en")
        assert [o.value for o in question.options] == [str(i) for i in range(1, len(question.options) + 1)]
    assert parse_template(template.as_dict()) == template


def test_disaster_templates_ask_safety_and_work():
    earthquake = builtin("earthquake")
    safety, work = earthquake.questions
    assert [o.text("en") for o in safety.options] == [
        "Safe",
        "Injured",
        "Need help",
        "Not in the affected area",
    ]
    assert [o.text("en") for o in work.options] == ["Can come in", "Can work from home", "Cannot work"]


def _broken(**changes):
    data = copy.deepcopy(BUILTIN["earthquake"])
    for path, value in changes.items():
        target = data
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_broken(sms__ja="あ" * 71), "sms.ja: 71 characters, at most 70"),
        (_broken(title__en=""), "title.en: a non-empty text is required"),
        (_broken(questions=[]), "questions: at least one question is required"),
        (_broken(questions__0__options__0__value="9"), "questions[0].options[0].value: a single key 1-8"),
        (_broken(questions__1__key="safety"), "questions[1].key: 'safety' is used twice"),
        (_broken(key="Earth Quake"), "key: lower-case letters"),
        (_broken(ladder={"steps": []}), "ladder.steps: must be a non-empty list"),
    ],
)
def test_invalid_definition_names_the_field(data, message):
    with pytest.raises(TemplateError) as info:
        parse_template(data)
    assert any(e.startswith(message) for e in info.value.errors), info.value.errors


def test_all_problems_are_reported_at_once():
    data = _broken(sms__ja="あ" * 80, title__en="")
    with pytest.raises(TemplateError) as info:
        parse_template(data)
    assert len(info.value.errors) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 2", {"safety": "1", "work": "2"}),
        ("12", {"safety": "1", "work": "2"}),
        ("１、３", {"safety": "1", "work": "3"}),
        ("2", {"safety": "2"}),
        ("9 2", {"work": "2"}),  # 9 is no option of the first question
        ("hello", {}),
    ],
)
def test_sms_reply(text, expected):
    assert parse_sms_reply(text, builtin("earthquake").questions) == expected
