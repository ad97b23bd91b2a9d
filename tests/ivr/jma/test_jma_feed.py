"""Atom feed parsing on a feed written for these tests (lifeline_eqvol_feed.xml, not a JMA document)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.jma.feed import FeedEntry, FeedError, is_wanted, is_wanted_title, new_entries, parse_feed

FEED = (Path(__file__).resolve().parent / "lifeline_eqvol_feed.xml").read_bytes()
DATA = "https://www.data.jma.go.jp/developer/xml/data/"
ATOM = b'xmlns="http://www.w3.org/2005/Atom"'


def test_entries_in_feed_order_with_all_fields() -> None:
    entries = parse_feed(FEED)
    assert [entry.title for entry in entries] == [
        "震源・震度に関する情報",
        "津波警報・注意報・予報a",
        "震源に関する情報",
        "震度速報",
        "噴火に関する火山観測報",
        "地震の活動状況等に関する情報",
    ]
    first = entries[0]
    assert first.id == f"{DATA}20300401011000_0_VXSE53_010000.xml"
    assert first.link == first.id
    assert first.updated == datetime(2030, 4, 1, 1, 10, tzinfo=UTC)
    assert first.author == "気象庁"
    assert first.content == "【震源・震度に関する情報】１日１０時０６分ころ、地震がありました。"
    assert entries[4].author == "鹿児島地方気象台"


def test_only_bulletins_the_rules_act_on_are_wanted() -> None:
    entries = parse_feed(FEED)
    assert [entry.data_type for entry in entries] == [
        "VXSE53",
        "VTSE41",
        "VXSE52",
        "VXSE51",
        "VFVO56",
        "VXSE56",
    ]
    assert [entry.data_type for entry in entries if is_wanted(entry)] == ["VXSE53", "VTSE41", "VXSE51"]


@pytest.mark.parametrize(
    ("title", "wanted"),
    [
        ("震度速報", True),
        ("震源・震度に関する情報", True),
        ("津波警報・注意報・予報a", True),
        ("気象特別警報・警報・注意報", True),
        ("気象警報・注意報（Ｈ２７）", True),
        ("気象警報・注意報（Ｒ０６）（大雨）", True),
        ("気象警報・注意報（Ｒ０６）（暴風）", True),
        ("震源に関する情報", False),  # hypocentre only, no intensity
        ("津波情報a", False),
        ("緊急地震速報（警報）", False),
        ("府県天気予報（Ｒ１）", False),
        ("", False),
    ],
)
def test_is_wanted_title(title: str, wanted: bool) -> None:
    assert is_wanted_title(title) is wanted


def test_unknown_title_falls_back_to_the_file_name() -> None:
    entry = FeedEntry(
        id="x", title="気象警報・注意報（Ｒ０６）（新しい名前）", updated=datetime(2030, 1, 1, tzinfo=UTC),
        link=f"{DATA}20300101000000_0_VPWW57_130000.xml",
    )  # fmt: skip
    assert entry.data_type == "VPWW57"
    assert is_wanted(entry)


def test_new_entries_are_unseen_oldest_first_and_unique() -> None:
    entries = parse_feed(FEED)
    seen = {entries[0].id, entries[3].id}
    fresh = new_entries([*entries, entries[1]], seen)
    assert [entry.data_type for entry in fresh] == ["VXSE56", "VFVO56", "VXSE52", "VTSE41"]
    assert new_entries(entries, {entry.id for entry in entries}) == []


def _feed(entry: bytes) -> bytes:
    return b"<feed " + ATOM + b"><entry>" + entry + b"</entry></feed>"


GOOD = (
    b"<id>urn:a</id><title>t</title><updated>2030-01-01T00:00:00Z</updated>"
    b'<link type="application/xml" href="https://example.invalid/a.xml"/>'
)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty feed"),
        (b"<feed", "not well-formed"),
        (FEED[: len(FEED) // 2], "not well-formed"),
        (b"<rss/>", "not an Atom feed"),
        (b'<!DOCTYPE feed [<!ENTITY x "y">]><feed ' + ATOM + b"/>", "refused"),
        (_feed(GOOD.replace(b"<id>urn:a</id>", b"")), "entry 1 has no id"),
        (_feed(GOOD.replace(b"<title>t</title>", b"")), "has no title"),
        (_feed(GOOD.replace(b"2030-01-01T00:00:00Z", b"soon")), "not an ISO 8601 time"),
        (_feed(GOOD.replace(b"2030-01-01T00:00:00Z", b"2030-01-01T00:00:00")), "no UTC offset"),
        (_feed(GOOD.replace(b'href="https://example.invalid/a.xml"', b"")), "has no link"),
    ],
)
def test_broken_feeds_raise_feed_error(data: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_feed(data)


def test_link_without_type_is_used_as_the_alternate() -> None:
    (entry,) = parse_feed(_feed(GOOD.replace(b'type="application/xml" ', b"")))
    assert entry.link == "https://example.invalid/a.xml"


def test_empty_feed_has_no_entries() -> None:
    assert parse_feed(b"<feed " + ATOM + b"><title>x</title></feed>") == []


def test_oversized_feed_is_refused() -> None:
    with pytest.raises(FeedError, match="limit"):
        parse_feed(FEED, max_bytes=1000)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=1_000))
def test_random_bytes_only_raise_feed_error(data: bytes) -> None:
    with contextlib.suppress(FeedError):
        assert isinstance(parse_feed(data), list)


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(FEED)), noise=st.binary(max_size=8))
def test_damaged_feed_only_raises_feed_error(cut: int, noise: bytes) -> None:
    try:
        entries = parse_feed(FEED[:cut] + noise + FEED[cut + len(noise) :])
    except FeedError:
        return
    assert all(entry.id and entry.link for entry in entries)
