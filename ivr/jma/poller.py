"""Poll JMA's Atom feeds and fetch the new bulletins they list; each bulletin is handed to the service once.

An edge, like a task: it commits after each step, so a claim is visible to other workers at once, no transaction
stays open during a download, and one bad bulletin never undoes the others. Nothing raised by a feed — an error,
a timeout, a broken document, a bug — escapes :func:`poll`; it is recorded on the feed's state instead.

Several workers may poll at once: a bulletin's row is inserted with ON CONFLICT DO NOTHING, and a worker that
loses that race stops working on the feed (the winner handles the rest, oldest first). It also leaves the feed's
validators alone, so the next poll reads the whole feed again rather than getting a 304 for entries nobody took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin, urlsplit

import requests

from core import db
from core.time import utcnow
from ivr.jma import service
from ivr.jma.feed import DEFAULT_MAX_BYTES as MAX_FEED_BYTES
from ivr.jma.feed import FeedEntry, FeedError, is_wanted, new_entries, parse_feed
from ivr.jma.parse import DEFAULT_MAX_BYTES as MAX_BULLETIN_BYTES

log = logging.getLogger(__name__)

# eqvol: earthquakes, tsunami (and volcanoes, which are not fetched); extra: weather warnings.
FEEDS: tuple[tuple[str, str], ...] = (("eqvol", "eqvol.xml"), ("extra", "extra.xml"))
TIMEOUT_S = 10.0
USER_AGENT = "Lifeline-JMA-poller/1.0"
_CHUNK = 64 * 1024


class FetchError(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Fetched:
    status: int
    body: bytes
    etag: str | None
    last_modified: str | None


@dataclass
class FeedReport:
    feed: str
    url: str
    outcome: str = "failed"  # fetched, not_modified, failed
    http_status: int | None = None
    entries: int = 0
    new: int = 0
    processed: int = 0
    invalid: int = 0
    failed: int = 0
    skipped: int = 0  # another worker had claimed them
    retried: int = 0
    ignored_links: int = 0  # entries linking outside the feed's host
    error: str | None = None
    bulletin_ids: list[int] = field(default_factory=list)

    def describe(self) -> str:
        if self.outcome == "failed":
            return f"{self.feed}: FAILED ({self.error})"
        if self.outcome == "not_modified":
            head = f"{self.feed}: not modified (304)"
        else:
            head = f"{self.feed}: {self.entries} entries, {self.new} new"
        counts = [
            f"{value} {name}"
            for name, value in (
                ("processed", self.processed),
                ("invalid", self.invalid),
                ("failed", self.failed),
                ("taken by another worker", self.skipped),
                ("retried", self.retried),
                ("ignored (link to another host)", self.ignored_links),
            )
            if value
        ]
        return head + (f"; {', '.join(counts)}" if counts else "")


def new_http_session() -> requests.Session:
    http = requests.Session()
    http.headers["User-Agent"] = USER_AGENT
    return http


def fetch(
    http: requests.Session, url: str, *, headers: dict[str, str] | None = None, timeout: float, max_bytes: int
) -> Fetched:
    """GET with a total deadline (a server trickling bytes cannot hold us longer than ``timeout``) and a size cap."""
    deadline = time.monotonic() + timeout
    try:
        with http.get(
            url, headers=headers or {}, timeout=(min(timeout, 5.0), timeout), stream=True
        ) as response:
            body = bytearray()
            if response.status_code == 200:
                for chunk in response.iter_content(_CHUNK):
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise FetchError(f"{url}: more than {max_bytes} bytes; refusing it", status=200)
                    if time.monotonic() > deadline:
                        raise FetchError(f"{url}: took longer than {timeout:g} s", status=200)
            return Fetched(
                status=response.status_code,
                body=bytes(body),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )
    except requests.Timeout:
        raise FetchError(f"{url}: no answer within {timeout:g} s") from None
    except requests.RequestException as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None


def feed_url(feed_base: str, filename: str) -> str:
    return urljoin(feed_base if feed_base.endswith("/") else feed_base + "/", filename)


def _same_origin(link: str, url: str) -> bool:
    # Bulletins are fetched only from where the feed itself lives: a tampered feed cannot make us request
    # arbitrary hosts (an internal address, a metadata service).
    a, b = urlsplit(link), urlsplit(url)
    return a.scheme in ("http", "https") and (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


class _Poller:
    def __init__(self, http: requests.Session, timeout: float, now: Callable[[], datetime]) -> None:
        self.http = http
        self.timeout = timeout
        self.now = now

    def feed(self, name: str, url: str) -> FeedReport:
        report = FeedReport(feed=name, url=url)
        state = service.feed_state(feed=name, url=url)
        headers = service.conditional_headers(state, url)
        db.session.commit()  # no transaction stays open while we wait for JMA
        try:
            fetched = fetch(self.http, url, headers=headers, timeout=self.timeout, max_bytes=MAX_FEED_BYTES)
            report.http_status = fetched.status
            if fetched.status == 304:
                report.outcome = "not_modified"
                service.record_feed_success(feed=name, url=url, status=304, now=self.now())
                db.session.commit()
                self.retry(name, report)
                return report
            if fetched.status != 200:
                raise FetchError(f"{url}: HTTP {fetched.status}", status=fetched.status)
            entries = parse_feed(fetched.body)
        except (FetchError, FeedError) as exc:
            report.error = str(exc)
            service.record_feed_failure(
                feed=name, url=url, error=str(exc), status=getattr(exc, "status", None), now=self.now()
            )
            db.session.commit()
            return report

        report.outcome = "fetched"
        report.entries = len(entries)
        wanted = []
        for entry in entries:
            if not is_wanted(entry):
                continue
            if _same_origin(entry.link, url):
                wanted.append(entry)
            else:
                report.ignored_links += 1
        fresh = new_entries(wanted, service.known_entry_ids(entry_ids=[e.id for e in wanted]))
        db.session.commit()
        report.new = len(fresh)
        complete = True
        for entry in fresh:
            if not self.take(name, entry, report):
                report.skipped += 1
                complete = False
                break
        service.record_feed_success(
            feed=name,
            url=url,
            status=200,
            now=self.now(),
            entries=len(entries),
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            keep_validators=not complete,
        )
        db.session.commit()
        self.retry(name, report)
        return report

    def take(self, name: str, entry: FeedEntry, report: FeedReport) -> bool:
        """Claim and handle one entry; False when another worker had claimed it."""
        bulletin_id = service.claim_bulletin(
            entry_id=entry.id,
            source=name,
            url=entry.link,
            feed_title=entry.title,
            feed_updated_at=entry.updated,
            now=self.now(),
        )
        db.session.commit()
        if bulletin_id is None:
            return False
        self.handle(bulletin_id, entry.link, report)
        return True

    def retry(self, name: str, report: FeedReport) -> None:
        """Bulletins of this feed whose download or processing failed, or whose worker vanished."""
        candidates = service.retryable_bulletins(source=name, now=self.now())
        db.session.commit()
        for bulletin_id, url in candidates:
            taken = service.reclaim_bulletin(bulletin_id=bulletin_id, now=self.now())
            db.session.commit()
            if taken:
                report.retried += 1
                self.handle(bulletin_id, url, report)

    def handle(self, bulletin_id: int, url: str, report: FeedReport) -> None:
        report.bulletin_ids.append(bulletin_id)
        try:
            fetched = fetch(self.http, url, timeout=self.timeout, max_bytes=MAX_BULLETIN_BYTES)
            if fetched.status != 200:
                raise FetchError(f"{url}: HTTP {fetched.status}", status=fetched.status)
        except FetchError as exc:
            service.record_fetch_failure(bulletin_id=bulletin_id, error=str(exc), now=self.now())
            db.session.commit()
            report.failed += 1
            return
        try:
            bulletin = service.receive_bulletin(bulletin_id=bulletin_id, data=fetched.body, now=self.now())
            if bulletin is None:
                db.session.commit()
                report.invalid += 1
                return
            service.process_bulletin(bulletin_id=bulletin_id, bulletin=bulletin, now=self.now())
            db.session.commit()
            report.processed += 1
        except Exception as exc:
            # A bug or a database hiccup with one bulletin: recorded, retried on a later poll, never fatal.
            db.session.rollback()
            log.exception("processing JMA bulletin %s failed", url)
            service.record_processing_failure(
                bulletin_id=bulletin_id, error=f"{type(exc).__name__}: {exc}", now=self.now()
            )
            db.session.commit()
            report.failed += 1


def poll(
    *,
    feed_base: str,
    timeout: float = TIMEOUT_S,
    http: requests.Session | None = None,
    now: Callable[[], datetime] = utcnow,
    feeds: Sequence[tuple[str, str]] = FEEDS,
) -> list[FeedReport]:
    """Poll every feed once; one feed failing (or being slow) never stops the others."""
    session = http or new_http_session()
    poller = _Poller(session, timeout, now)
    reports = []
    try:
        for name, filename in feeds:
            url = feed_url(feed_base, filename)
            try:
                reports.append(poller.feed(name, url))
            except Exception as exc:
                db.session.rollback()
                log.exception("polling JMA feed %s failed", url)
                report = FeedReport(feed=name, url=url, error=f"{type(exc).__name__}: {exc}")
                try:
                    service.record_feed_failure(feed=name, url=url, error=report.error or "", now=now())
                    db.session.commit()
                except Exception:
                    db.session.rollback()
                    log.exception("could not record the failure of JMA feed %s", url)
                reports.append(report)
    finally:
        if http is None:
            session.close()
    return reports
