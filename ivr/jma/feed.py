"""Read JMA's public Atom feeds (``eqvol.xml`` for earthquakes and tsunami, ``extra.xml`` for warnings).

Pure: the poller fetches the bytes; this module says which entries exist, which are new, and which are worth
fetching. Errors raise :class:`FeedError` and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import defusedxml
import defusedxml.ElementTree as DefusedET

from ivr.jma.parse import data_type_for_title
from ivr.jma.rules import TRIGGER_DATA_TYPES

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

__all__ = [
    "WANTED_DATA_TYPES",
    "FeedEntry",
    "FeedError",
    "is_wanted",
    "is_wanted_title",
    "new_entries",
    "parse_feed",
]

ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

# The poller fetches only bulletins the rules can act on; everything else in the feed (volcano, 震源に関する情報,
# 津波情報a, forecasts ...) would cost a request a minute for nothing.
WANTED_DATA_TYPES: frozenset[str] = frozenset().union(*TRIGGER_DATA_TYPES.values())

# JMA names each bulletin file <yyyymmddhhmmss>_<n>_<data type>_<office code>.xml.
_DATA_TYPE_IN_URL = re.compile(r"_([A-Z]{4}\d{2})_[^/]*\.xml$")


class FeedError(ValueError):
    """The bytes are not a JMA Atom feed we can read; the message says why."""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    id: str
    title: str
    updated: datetime
    link: str
    author: str | None = None
    content: str | None = None

    @property
    def data_type(self) -> str | None:
        """VXSE53, VPWW55 … from the title, or from the file name in the link when the title is unknown."""
        from_title = data_type_for_title(self.title)
        if from_title is not None:
            return from_title
        match = _DATA_TYPE_IN_URL.search(self.link)
        return match.group(1) if match else None


def _atom(name: str) -> str:
    return f"{{{ATOM_NAMESPACE}}}{name}"


def _text(element: Element, name: str) -> str | None:
    child = element.find(_atom(name))
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _link(entry: Element) -> str | None:
    links = [link for link in entry.iter(_atom("link")) if (link.get("href") or "").strip()]
    # JMA marks the bulletin link type="application/xml"; prefer it, then rel="alternate" (Atom's default).
    for link in links:
        if (link.get("type") or "").strip() == "application/xml":
            return (link.get("href") or "").strip()
    for link in links:
        if (link.get("rel") or "alternate").strip() == "alternate":
            return (link.get("href") or "").strip()
    return None


def _entries(root: Element) -> Iterator[FeedEntry]:
    for index, entry in enumerate(root.findall(_atom("entry"))):
        where = f"entry {index + 1}"
        entry_id = _text(entry, "id")
        title = _text(entry, "title")
        updated_text = _text(entry, "updated")
        link = _link(entry)
        if entry_id is None:
            raise FeedError(f"{where} has no id")
        if title is None:
            raise FeedError(f"{where} ({entry_id}) has no title")
        if updated_text is None:
            raise FeedError(f"{where} ({entry_id}) has no updated time")
        if link is None:
            raise FeedError(f"{where} ({entry_id}) has no link to its bulletin")
        try:
            updated = datetime.fromisoformat(updated_text)
        except ValueError:
            raise FeedError(
                f"{where} ({entry_id}): updated {updated_text!r} is not an ISO 8601 time"
            ) from None
        if updated.tzinfo is None:
            raise FeedError(f"{where} ({entry_id}): updated {updated_text!r} has no UTC offset")
        author_element = entry.find(_atom("author"))
        yield FeedEntry(
            id=entry_id,
            title=title,
            updated=updated,
            link=link,
            author=_text(author_element, "name") if author_element is not None else None,
            content=_text(entry, "content"),
        )


def parse_feed(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[FeedEntry]:
    """Entries in feed order (JMA lists the newest first)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FeedError(f"expected the feed as bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise FeedError(
            f"feed is {len(data)} bytes, more than the {max_bytes}-byte limit; refusing to parse it"
        )
    if not bytes(data).strip():
        raise FeedError("empty feed: no bytes to parse")
    try:
        root: Element = DefusedET.fromstring(
            bytes(data), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise FeedError(
            f"refused: the feed declares a DTD, entities or external references ({exc})"
        ) from None
    except DefusedET.ParseError as exc:
        raise FeedError(f"not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:
        raise FeedError(f"unreadable XML encoding: {exc}") from None
    if root.tag != _atom("feed"):
        raise FeedError(f"not an Atom feed: the root element is {root.tag!r}")
    return list(_entries(root))


def new_entries(entries: Iterable[FeedEntry], seen_ids: Collection[str]) -> list[FeedEntry]:
    """Entries not seen before, oldest first, each id once — the order bulletins must be evaluated in."""
    fresh: dict[str, FeedEntry] = {}
    for entry in entries:
        if entry.id not in seen_ids and entry.id not in fresh:
            fresh[entry.id] = entry
    return sorted(fresh.values(), key=lambda entry: entry.updated)


def is_wanted_title(title: str) -> bool:
    """Whether an entry with this title (JMA's Control/Title) is a bulletin the rules act on."""
    return data_type_for_title(title) in WANTED_DATA_TYPES


def is_wanted(entry: FeedEntry) -> bool:
    """Whether the poller should fetch this entry's bulletin."""
    return entry.data_type in WANTED_DATA_TYPES
