"""The call script is pure TwiML: parse the XML and check what the caller hears and where keys go."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ivr import twiml
from ivr.scenarios import builtin

BASE = "https://lifeline.example/hooks/ivr/voice/7"


def script(language="ja", key="earthquake"):
    return twiml.CallScript(template=builtin(key), language=language, base=BASE)


def parse(xml: str) -> ET.Element:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    return root


@pytest.mark.parametrize(
    ("language", "voice", "lang_attr", "intro"),
    [
        ("ja", "Polly.Mizuki", "ja-JP", "地震の安否確認です。"),
        ("en", "Polly.Joanna", "en-US", "This is a safety check"),
    ],
)
def test_greeting_reads_intro_and_first_question_in_the_persons_language(language, voice, lang_attr, intro):
    root = parse(twiml.greeting(script(language)))
    say = root.find("Say")
    assert say is not None and say.text.startswith(intro)
    assert say.get("voice") == voice and say.get("language") == lang_attr
    gather = root.find("Gather")
    assert gather.get("action") == f"{BASE}/q/0" and gather.get("numDigits") == "1"
    menu = gather.find("Say").text
    options = (
        ["無事", "けがをしている", "救助が必要", "被災地域にいない"]
        if language == "ja"
        else ["Safe", "Injured"]
    )
    for option in options:
        assert option in menu
    # Silence: ask again rather than hang up.
    assert root.find("Redirect").text == f"{BASE}/ask/0?retry=1"


@pytest.mark.parametrize(
    ("language", "digits", "readback"),
    [
        ("en", "2", "You pressed 2, Injured. Press 1 to confirm, or 9 to re-enter."),
        ("ja", "1", "1、無事、が押されました。"),
    ],
)
def test_pressed_option_is_read_back_for_confirmation(language, digits, readback):
    root = parse(twiml.pressed(script(language), 0, digits))
    gather = root.find("Gather")
    assert gather.get("action") == f"{BASE}/q/0/confirm/{digits}"
    assert gather.find("Say").text.startswith(readback)


@pytest.mark.parametrize("digits", ["7", "#", "0"])
def test_key_that_is_no_option_asks_again(digits):
    root = parse(twiml.pressed(script("en"), 0, digits))
    says = [s.text for s in root.iter("Say")]
    assert says[0] == "That is not one of the choices."
    assert root.find("Gather").get("action") == f"{BASE}/q/0"


def test_silence_asks_twice_more_then_says_goodbye():
    assert parse(twiml.ask(script("en"), 0, retry=1)).find("Redirect").text == f"{BASE}/ask/0?retry=2"
    root = parse(twiml.ask(script("en"), 0, retry=2))
    assert root.find("Redirect").text == f"{BASE}/goodbye"
    root = parse(twiml.ask(script("en"), 0, retry=3))
    assert root.find("Hangup") is not None and root.find("Gather") is None


@pytest.mark.parametrize(
    ("key", "index", "expect"),
    [
        ("earthquake", 0, "next question"),
        ("earthquake", 1, "record"),  # disaster templates offer a voice message at the end
        ("system_outage", 1, "thanks"),
    ],
)
def test_after_a_confirmed_answer(key, index, expect):
    root = parse(twiml.after_answer(script("en", key), index))
    if expect == "next question":
        assert root.find("Gather").get("action") == f"{BASE}/q/{index + 1}"
    elif expect == "record":
        assert root.find("Record").get("action") == f"{BASE}/recorded"
        assert root.find("Hangup") is not None
    else:
        assert root.find("Say").text == "Thank you for answering. Stay safe."
        assert root.find("Hangup") is not None


def test_machine_gets_a_short_message_and_no_menu():
    root = parse(twiml.machine(script("ja")))
    assert "SMS" in root.find("Say").text
    assert root.find("Gather") is None and root.find("Hangup") is not None


@pytest.mark.parametrize(("digits", "confirmed"), [("1", True), ("9", False), ("", False), ("12", True)])
def test_confirm_key(digits, confirmed):
    assert twiml.confirmed_is(digits) is confirmed
