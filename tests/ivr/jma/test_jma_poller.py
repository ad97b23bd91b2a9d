"""The poller against a local JMA (werkzeug on 127.0.0.1): conditional requests, each bulletin fetched and processed
once (also with two pollers racing), back-fill in order after a gap, and feeds that fail or hang."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select

from core import db
from core.auth.models import AuditEntry
from core.models import load_all_models
from ivr.jma import poller, service
from ivr.jma.models import BulletinState, FeedState, HeldState, HeldTrigger, JmaBulletin, JmaDecision
from ivr.models import Broadcast
from tests.ivr.jma.support import (
    JST,
    LocalJma,
    Org,
    broadcasts_of,
    build_org,
    count,
    intensity_report,
    recipients_of,
    sample,
)

T0 = datetime(2030, 4, 1, 1, 0, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def poll(server: LocalJma, clock: Clock | None = None, timeout: float = 5.0) -> dict[str, poller.FeedReport]:
    reports = poller.poll(feed_base=server.feed_base, timeout=timeout, now=clock or Clock())
    return {report.feed: report for report in reports}


def publish_samples(server: LocalJma) -> dict[str, str]:
    """Genuine samples in the feeds, as JMA would list them (the unwanted ones too)."""
    urls = {}
    for feed, name, minute in (
        ("eqvol", "32-39_11_01_120615_VXSE51.xml", 1),  # 6+ in Tohoku: staff live in Miyagi
        ("eqvol", "32-35_06_01_240613_VXSE52.xml", 2),  # 震源に関する情報: not wanted, never fetched
        ("eqvol", "54_01_01_100514_VXSE42.xml", 3),  # 試験 EEW test: not wanted either
        ("extra", "15_14_01_170216_VPWW53.xml", 4),  # 大雨特別警報 for 新宿区
    ):
        urls[name] = server.publish(feed, name, sample(name), T0 + timedelta(minutes=minute))
    return urls


def test_one_poll_processes_each_new_bulletin_once_and_the_next_gets_304(
    org: Org, local_jma: LocalJma
) -> None:
    publish_samples(local_jma)

    reports = poll(local_jma)

    assert reports["eqvol"].outcome == "fetched" and reports["extra"].outcome == "fetched"
    assert (reports["eqvol"].entries, reports["eqvol"].new, reports["eqvol"].processed) == (3, 1, 1)
    assert (reports["extra"].new, reports["extra"].processed) == (1, 1)
    assert local_jma.data_requests() == {
        "/data/32-39_11_01_120615_VXSE51.xml": 1,
        "/data/15_14_01_170216_VPWW53.xml": 1,
    }
    rows = db.session.scalars(select(JmaBulletin).order_by(JmaBulletin.id)).all()
    assert [(r.data_type, r.state) for r in rows] == [
        ("VXSE51", BulletinState.PROCESSED),
        ("VPWW53", BulletinState.PROCESSED),
    ]
    templates = sorted(b.template_key for b in broadcasts_of(org.org))
    assert templates == ["earthquake", "heavy_rain"]

    again = poll(local_jma)

    assert again["eqvol"].outcome == again["extra"].outcome == "not_modified"
    assert local_jma.not_modified == {"/feed/eqvol.xml": 1, "/feed/extra.xml": 1}
    assert sum(local_jma.data_requests().values()) == 2
    assert count(JmaBulletin) == 2
    assert count(JmaDecision) == 2
    assert len(broadcasts_of(org.org)) == 2
    health = {state.feed: state for state in service.feed_health()}
    assert health["eqvol"].last_status == 304 and health["eqvol"].consecutive_failures == 0
    assert health["eqvol"].etag and health["eqvol"].last_modified


def test_a_new_entry_after_a_gap_is_back_filled_oldest_first(org: Org, local_jma: LocalJma) -> None:
    service.save_rules(
        organization_id=org.org.id,
        document={**service.default_rules(organization_id=org.org.id).to_dict(), "hold_minutes": 5},
        enabled=True,
        emergency_min_intensity=None,
        actor="test",
    )
    poll(local_jma)  # empty feeds
    # While the poller was away JMA issued an intensity report and then withdrew it. The feed lists the 取消
    # first (newest first); processed in that order the 取消 would find nothing and the report would be held.
    event_time = datetime(2008, 6, 14, 8, 45, tzinfo=JST)
    local_jma.publish(
        "eqvol", "report.xml", intensity_report("20080614084350", {"27": "6-"}, report_time=event_time), T0
    )
    local_jma.publish(
        "eqvol", "cancel.xml", sample("32-35_06_06_100915_VXSE53.xml"), T0 + timedelta(minutes=3)
    )

    report = poll(local_jma, Clock(T0 + timedelta(minutes=4)))["eqvol"]

    assert (report.new, report.processed) == (2, 2)
    decisions = db.session.scalars(select(JmaDecision).order_by(JmaDecision.id)).all()
    assert [d.action for d in decisions] == ["hold", "cancel"]
    assert db.session.scalars(select(HeldTrigger.state)).all() == [HeldState.CANCELLED]
    assert count(Broadcast) == 0


def test_a_failed_download_is_retried_on_a_later_poll(org: Org, local_jma: LocalJma) -> None:
    url = local_jma.publish("eqvol", "late.xml", intensity_report("20300401100000", {"27": "5+"}), T0)
    local_jma.status["/data/late.xml"] = 503
    clock = Clock()

    first = poll(local_jma, clock)["eqvol"]
    assert (first.new, first.failed, first.processed) == (1, 1, 0)
    row = db.session.scalars(select(JmaBulletin)).one()
    assert (row.state, row.url, row.attempts) == (BulletinState.FETCH_FAILED, url, 1)
    assert "HTTP 503" in (row.error or "")

    del local_jma.status["/data/late.xml"]
    clock.now += timedelta(minutes=1)
    second = poll(local_jma, clock)["eqvol"]  # the feed itself answers 304: the retry does not depend on it

    assert second.outcome == "not_modified"
    assert (second.retried, second.processed) == (1, 1)
    db.session.refresh(row)
    assert row.state is BulletinState.PROCESSED
    (broadcast,) = broadcasts_of(org.org)
    assert set(recipients_of(broadcast)) == org.people(site_prefectures=["27"], homes=["27"])


def test_a_bulletin_that_is_not_xml_is_recorded_and_never_retried(org: Org, local_jma: LocalJma) -> None:
    # The feed says 震源・震度に関する情報, so the entry is fetched; what comes back is not a bulletin.
    local_jma.publish("eqvol", "broken.xml", b"<html>maintenance</html>", T0, title="震源・震度に関する情報")
    clock = Clock()
    assert poll(local_jma, clock)["eqvol"].invalid == 1
    row = db.session.scalars(select(JmaBulletin)).one()
    assert row.state is BulletinState.INVALID
    assert "not a JMA bulletin" in (row.error or "")
    assert row.sha256 is not None
    clock.now += timedelta(hours=1)
    assert poll(local_jma, clock)["eqvol"].retried == 0
    assert db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.action == "jma.bulletin.invalid")
    ).all()


def test_a_failing_feed_is_recorded_and_never_stops_the_other(org: Org, local_jma: LocalJma) -> None:
    publish_samples(local_jma)
    local_jma.status["/feed/eqvol.xml"] = 500

    reports = poll(local_jma)
    reports = poll(local_jma, Clock(T0 + timedelta(minutes=1)))

    assert reports["eqvol"].outcome == "failed" and "HTTP 500" in (reports["eqvol"].error or "")
    assert reports["extra"].outcome == "not_modified"
    eqvol = db.session.scalars(select(FeedState).where(FeedState.feed == "eqvol")).one()
    assert eqvol.consecutive_failures == 2
    assert eqvol.last_success_at is None
    assert "HTTP 500" in (eqvol.last_error or "")
    assert [b.template_key for b in broadcasts_of(org.org)] == [
        "heavy_rain"
    ]  # extra.xml was read all the same

    del local_jma.status["/feed/eqvol.xml"]
    recovered = poll(local_jma, Clock(T0 + timedelta(minutes=2)))["eqvol"]
    assert recovered.processed == 1
    db.session.refresh(eqvol)
    assert eqvol.consecutive_failures == 0 and eqvol.last_success_at == T0 + timedelta(minutes=2)
    audited = db.session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "jma_feed")).all()
    assert audited == ["jma.feed.failing", "jma.feed.recovered"]


def test_a_feed_that_hangs_times_out_and_is_recorded(org: Org, local_jma: LocalJma) -> None:
    local_jma.delay["/feed/eqvol.xml"] = 3.0
    started = time.monotonic()

    reports = poll(local_jma, timeout=0.5)

    assert time.monotonic() - started < 2.5  # the slow feed costs its timeout, not its delay
    assert reports["eqvol"].outcome == "failed"
    assert "no answer within 0.5 s" in (reports["eqvol"].error or "")
    assert reports["extra"].outcome == "fetched"
    state = db.session.scalars(select(FeedState).where(FeedState.feed == "eqvol")).one()
    assert state.consecutive_failures == 1 and state.last_status is None


def test_an_unreachable_feed_base_is_recorded(org: Org) -> None:
    reports = poller.poll(feed_base="http://127.0.0.1:9/feed/", timeout=1.0)
    assert [r.outcome for r in reports] == ["failed", "failed"]
    assert all(state.consecutive_failures == 1 for state in service.feed_health())


def test_bulletins_on_another_host_are_not_fetched(org: Org, local_jma: LocalJma) -> None:
    local_jma.publish("eqvol", "x.xml", intensity_report("20300401100000", {"27": "6+"}), T0)
    original = local_jma.url
    local_jma.url = "http://127.0.0.2:9"  # the feed now links elsewhere
    try:
        report = poll(local_jma)["eqvol"]
    finally:
        local_jma.url = original
    assert (report.ignored_links, report.new) == (1, 0)
    assert count(JmaBulletin) == 0


# --- two pollers at once, with real commits ---------------------------------------------------------------------


def _empty_tables() -> None:
    metadata = load_all_models()
    engine = db.get_engine()
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture()
def committed_org(jma: Flask) -> Iterator[Org]:
    """An organization committed for real (threads do not share the test's transaction); emptied afterwards."""
    db.session.remove()
    with jma.app_context():
        built = build_org(slug="race")
        db.session.commit()
        yield built
    db.session.remove()
    _empty_tables()


def test_two_pollers_racing_process_each_bulletin_once(committed_org: Org, local_jma: LocalJma) -> None:
    publish_samples(local_jma)
    local_jma.publish(
        "eqvol", "osaka.xml", intensity_report("20300401100000", {"27": "5+"}), T0 + timedelta(minutes=5)
    )
    # Both pollers read the feed before either claims anything.
    barrier = threading.Barrier(2, timeout=10)
    feed_reads: list[str] = []

    def both_read_the_feed(feed: str) -> None:
        feed_reads.append(feed)
        if feed == "eqvol":
            barrier.wait()

    local_jma.before_feed = both_read_the_feed
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(poller.poll(feed_base=local_jma.feed_base, feeds=(("eqvol", "eqvol.xml"),)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert feed_reads.count("eqvol") == 2
    reports = [report for batch in results for report in batch]
    assert sum(r.processed for r in reports) == 2  # VXSE51 (Tohoku) and the Osaka report, each by one poller
    assert all(path_count == 1 for path_count in local_jma.data_requests().values())
    assert set(local_jma.data_requests()) == {"/data/32-39_11_01_120615_VXSE51.xml", "/data/osaka.xml"}
    db.session.remove()
    rows = db.session.scalars(select(JmaBulletin)).all()
    assert sorted(r.state for r in rows) == [BulletinState.PROCESSED, BulletinState.PROCESSED]
    decisions = db.session.scalars(select(JmaDecision.action)).all()
    assert sorted(decisions) == ["start", "start"]
    assert db.session.scalar(select(Broadcast.id).where(Broadcast.origin == "jma:earthquake:20300401100000"))
    assert len(db.session.scalars(select(Broadcast.id)).all()) == 2
