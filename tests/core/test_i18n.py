"""Each part keeps its own Japanese: the same English word may mean different things in different parts."""

from __future__ import annotations

import pytest

from core import i18n


@pytest.fixture(autouse=True)
def catalogues():
    i18n.register("ja", {"closed": "締切", "Name": "名前"}, domain="partA")
    i18n.register("ja", {"closed": "時間外"}, domain="partB")
    i18n.register("ja", {"Sub only": "下位"}, domain="partA.sub")


@pytest.mark.parametrize(
    ("message", "domain", "expected"),
    [
        ("closed", "partA", "締切"),
        ("closed", "partB", "時間外"),
        ("closed", "partA.sub", "締切"),  # falls back to the parent part
        ("Sub only", "partA.sub", "下位"),
        ("Name", "partB", "名前"),  # not in partB: the first translation anywhere
        ("Never translated", "partA", "Never translated"),
    ],
)
def test_lookup_prefers_the_asking_part(message: str, domain: str, expected: str) -> None:
    assert i18n.translate(message, "ja", domain) == expected


def test_english_is_the_message_itself() -> None:
    assert i18n.translate("closed", "en", "partA") == "closed"


@pytest.mark.parametrize(
    ("module", "domain"),
    [("core.auth.views", "core"), ("ivr", "ivr"), ("ivr.views", "ivr"), ("ivr.jma.views", "ivr.jma")],
)
def test_domain_of_a_module(module: str, domain: str) -> None:
    assert i18n._domain_of_module(module) == domain


def test_pages_of_two_parts_translate_closed_differently(client, db_session) -> None:
    ivr_ja = i18n.translate("closed", "ja", "ivr")
    routing_ja = i18n.translate("closed", "ja", "continuity")
    assert ivr_ja != routing_ja
