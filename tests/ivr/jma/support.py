"""Test helpers for the JMA service, poller, CLI and page: a demo-like organization, bulletins, an Atom feed and a
local HTTP server that plays JMA (werkzeug on 127.0.0.1 in a thread)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import func, select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from core import db
from core.auth.models import Role
from ivr.jma.parse import parse_bulletin
from ivr.models import Broadcast, Recipient
from tests.factories import make_org, make_site, make_staff, make_user

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "jma"
JST = timezone(timedelta(hours=9))


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# --- a demo-like organization ---------------------------------------------------------------------------------


@dataclass
class Org:
    org: Any
    sites: dict[str, Any]
    # site code → staff ids working there; home prefecture → staff ids living there
    by_site: dict[str, set[int]] = field(default_factory=dict)
    by_home: dict[str, set[int]] = field(default_factory=dict)
    crisis_manager: Any = None

    def people(
        self, *, sites: Iterable[str] = (), homes: Iterable[str] = (), site_prefectures: Iterable[str] = ()
    ) -> set[int]:
        chosen: set[int] = set()
        for code in sites:
            chosen |= self.by_site.get(code, set())
        for pref in homes:
            chosen |= self.by_home.get(pref, set())
        for pref in site_prefectures:
            for code, site in self.sites.items():
                if site.prefecture_code == pref:
                    chosen |= self.by_site.get(code, set())
        return chosen


# site code, prefecture, municipality (as the demo data: 新宿区, 大阪市北区, 福岡市博多区, and 千葉市美浜区)
SITES = (
    ("TKY", "13", "1310400"),
    ("OSA", "27", "2712700"),
    ("FUK", "40", "4013200"),
    ("CHB", "12", "1210600"),
)
# site, home prefecture, how many
LAYOUT = (
    ("TKY", "13", 4),
    ("TKY", "11", 2),  # commute from Saitama
    ("TKY", "04", 2),  # live in Miyagi (Tohoku), work in Tokyo remotely
    ("OSA", "27", 3),
    ("OSA", "28", 1),
    ("OSA", "13", 1),  # works in Osaka, lives in Tokyo
    ("FUK", "40", 2),
    ("CHB", "12", 2),
)


def build_org(slug: str | None = None, *, with_chiba: bool = True) -> Org:
    org = make_org(slug=slug, name="JMA test org")
    sites = {
        code: make_site(org, code=code, prefecture=pref, municipality=muni)
        for code, pref, muni in SITES
        if with_chiba or code != "CHB"
    }
    result = Org(org=org, sites=sites)
    n = 0
    for site, home, count in LAYOUT:
        if site not in sites:
            continue
        for _ in range(count):
            person = make_staff(
                org,
                site=sites[site],
                phone=f"+8190000003{n:02d}",
                email=f"jma{n}@example.com",
                home_prefecture=home,
            )
            result.by_site.setdefault(site, set()).add(person.id)
            result.by_home.setdefault(home, set()).add(person.id)
            n += 1
    result.crisis_manager = make_user(org, Role.CRISIS_MANAGER, email=f"cm-{org.slug}@example.com")
    return result


def broadcasts_of(org: Any) -> list[Broadcast]:
    return list(
        db.session.scalars(
            select(Broadcast).where(Broadcast.organization_id == org.id).order_by(Broadcast.id)
        )
    )


def recipients_of(broadcast: Broadcast) -> list[int]:
    return list(db.session.scalars(select(Recipient.staff_id).where(Recipient.broadcast_id == broadcast.id)))


def count(model: Any, *conditions: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


# --- bulletins --------------------------------------------------------------------------------------------------


def intensity_report(
    event_id: str,
    prefectures: dict[str, str],
    *,
    status: str = "通常",
    info_type: str = "発表",
    report_time: datetime = datetime(2030, 4, 1, 10, 3, tzinfo=JST),
    title: str = "震度速報",
) -> bytes:
    """An intensity report (震度速報, or 震源・震度に関する情報 with ``title``) in the shape of the genuine VXSE51
    sample, for the events and intensities a test needs. Prefecture names are not checked by anything."""
    jma_words = {"5-": "5-", "5+": "5+", "6-": "6-", "6+": "6+"}
    order = ["1", "2", "3", "4", "5-", "5+", "6-", "6+", "7"]
    highest = max(prefectures.values(), key=order.index)
    prefs = "".join(
        f"<Pref><Name>pref {code}</Name><Code>{code}</Code><MaxInt>{jma_words.get(value, value)}</MaxInt></Pref>"
        for code, value in prefectures.items()
    )
    body = (
        ""
        if info_type == "取消"
        else f"""<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/seismology1/">
<Intensity><Observation><MaxInt>{highest}</MaxInt>{prefs}</Observation></Intensity></Body>"""
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/" xmlns:jmx="http://xml.kishou.go.jp/jmaxml1/">
<Control><Title>{title}</Title><DateTime>{report_time.astimezone(UTC).isoformat()}</DateTime>
<Status>{status}</Status><EditorialOffice>気象庁本庁</EditorialOffice><PublishingOffice>気象庁</PublishingOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">
<Title>{title}</Title><ReportDateTime>{report_time.isoformat()}</ReportDateTime>
<TargetDateTime>{report_time.isoformat()}</TargetDateTime><EventID>{event_id}</EventID>
<InfoType>{info_type}</InfoType><Serial></Serial><InfoKind>{title}</InfoKind><InfoKindVersion>1.0_1</InfoKindVersion>
<Headline><Text>Lifeline test bulletin (not from JMA)</Text></Headline></Head>
{body}
</Report>""".encode()


# --- the local JMA --------------------------------------------------------------------------------------------


@dataclass
class Entry:
    name: str  # file name under /data/
    data: bytes
    updated: datetime
    title: str


def atom_feed(base_url: str, entries: Iterable[Entry]) -> bytes:
    """An Atom feed in the shape of JMA's (newest first)."""
    items = []
    for entry in sorted(entries, key=lambda e: e.updated, reverse=True):
        link = f"{base_url}/data/{entry.name}"
        items.append(
            f"""<entry><title>{escape(entry.title)}</title><id>{link}</id>
<updated>{entry.updated.astimezone(UTC).isoformat()}</updated><author><name>気象庁</name></author>
<link type="application/xml" href="{link}"/><content type="text">test</content></entry>"""
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja"><title>Lifeline test feed</title><id>urn:lifeline:test</id>
<updated>2030-04-01T00:00:00Z</updated>{"".join(items)}</feed>""".encode()


class LocalJma:
    """Serves /feed/eqvol.xml, /feed/extra.xml (with ETag and Last-Modified) and /data/<name>; counts requests.

    ``status`` and ``delay`` per path make a feed fail or hang; ``before_feed`` runs inside the request."""

    def __init__(self) -> None:
        self.feeds: dict[str, list[Entry]] = {"eqvol": [], "extra": []}
        self.changed: dict[str, datetime] = {}
        self.status: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.before_feed: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.feed_base = f"{self.url}/feed/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LocalJma:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def publish(self, feed: str, name: str, data: bytes, updated: datetime, title: str | None = None) -> str:
        """Add a bulletin to a feed (titled as JMA titles it: its Control/Title); returns its URL (the entry id)."""
        with self._lock:
            self.feeds[feed].append(Entry(name, data, updated, title or parse_bulletin(data).title))
            self.changed[feed] = max(self.changed.get(feed, updated), updated) + timedelta(seconds=1)
        return f"{self.url}/data/{name}"

    def data_requests(self) -> Counter[str]:
        return Counter({path: n for path, n in self.requests.items() if path.startswith("/data/")})

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path
        with self._lock:
            self.requests[path] += 1
        if path in self.delay:
            time.sleep(self.delay[path])
        if path in self.status:
            return Response("broken", status=self.status[path])(environ, start_response)
        if path.startswith("/feed/") and path.endswith(".xml"):
            feed = path.removeprefix("/feed/").removesuffix(".xml")
            if feed not in self.feeds:
                return Response("no such feed", status=404)(environ, start_response)
            if self.before_feed is not None:
                self.before_feed(feed)
            with self._lock:
                entries = list(self.feeds[feed])
                changed = self.changed.get(feed, datetime(2030, 1, 1, tzinfo=UTC))
            etag = f'"{feed}-{len(entries)}-{int(changed.timestamp())}"'
            last_modified = format_datetime(changed.astimezone(UTC), usegmt=True)
            if request.headers.get("If-None-Match") == etag:
                with self._lock:
                    self.not_modified[path] += 1
                return Response(status=304, headers={"ETag": etag})(environ, start_response)
            response = Response(
                atom_feed(self.url, entries),
                content_type="application/atom+xml; charset=utf-8",
                headers={"ETag": etag, "Last-Modified": last_modified},
            )
            return response(environ, start_response)
        if path.startswith("/data/"):
            name = path.removeprefix("/data/")
            with self._lock:
                found = [e for entries in self.feeds.values() for e in entries if e.name == name]
            if not found:
                return Response("not found", status=404)(environ, start_response)
            return Response(found[0].data, content_type="application/xml")(environ, start_response)
        return Response("not found", status=404)(environ, start_response)
