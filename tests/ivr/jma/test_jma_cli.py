"""``lifeline jma parse | replay | poll``: what an operator or a drill script sees, and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from core import db
from ivr.jma.models import JmaBulletin, JmaDecision
from ivr.jma.parse import parse_bulletin
from ivr.models import Broadcast
from tests.ivr.jma.support import (
    SAMPLES,
    LocalJma,
    Org,
    broadcasts_of,
    count,
    intensity_report,
    recipients_of,
)


def run(app: Flask, *args: str) -> Any:
    """``lifeline jma …`` inside the test's transaction (the command's commits become savepoints)."""
    return app.test_cli_runner().invoke(args=["jma", *args])


@pytest.mark.parametrize("name", sorted(path.name for path in SAMPLES.glob("*.xml")))
def test_parse_json_prints_the_normalised_bulletin(jma: Flask, name: str) -> None:
    result = run(jma, "parse", str(SAMPLES / name), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == parse_bulletin((SAMPLES / name).read_bytes()).to_json_dict()


def test_parse_without_json_summarises(jma: Flask) -> None:
    result = run(jma, "parse", str(SAMPLES / "32-39_11_01_120615_VXSE51.xml"))
    assert result.exit_code == 0
    assert "震度速報 (VXSE51) — 通常 / 発表" in result.stdout
    assert "宮城県 6+" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty bulletin"),
        (b"<Report", "truncated bulletin"),
        (b"<rss/>", "not a JMA bulletin"),
        (b'<!DOCTYPE r [<!ENTITY x "y">]><r/>', "refused"),
    ],
)
def test_parse_malformed_file_exits_2_with_the_reason(
    jma: Flask, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(content)
    result = run(jma, "parse", str(path), "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"Error: {path}: " in result.stderr and message in result.stderr


def test_parse_missing_file_exits_2(jma: Flask, tmp_path: Path) -> None:
    result = run(jma, "parse", str(tmp_path / "nope.xml"))
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_replay_dry_run_prints_the_decisions_and_stores_nothing(jma: Flask, org: Org, tmp_path: Path) -> None:
    first = _write(tmp_path, "first.xml", intensity_report("20300401100000", {"27": "5+"}))
    upgrade = _write(tmp_path, "upgrade.xml", intensity_report("20300401100000", {"27": "6-", "13": "5-"}))
    slug = org.org.slug

    result = run(jma, "replay", first, upgrade, "--dry-run", "--organization", slug)

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("first.xml: 震度速報") and lines[0].endswith("[dry run]")
    assert f"{slug}: START earthquake [real] → prefectures 27" in lines[1]
    assert f"{slug}: WIDEN earthquake [real] → prefectures 13" in lines[3]
    assert count(JmaBulletin) == 0 and count(Broadcast) == 0


def test_replay_stores_the_bulletin_and_starts_the_broadcast(jma: Flask, org: Org, tmp_path: Path) -> None:
    path = str(SAMPLES / "15_14_01_170216_VPWW53.xml")

    result = run(jma, "replay", path, "--organization", org.org.slug, "--now", "2030-04-01T10:00:00+09:00")

    assert result.exit_code == 0, result.stderr
    assert "START heavy_rain [real] → sites TKY" in result.stdout
    assert "done: real broadcast" in result.stdout
    (broadcast,) = broadcasts_of(org.org)
    assert set(recipients_of(broadcast)) == org.people(sites=["TKY"])
    assert (
        broadcast.started_at is not None and broadcast.started_at.isoformat() == "2030-04-01T01:00:00+00:00"
    )
    row = db.session.scalars(select(JmaBulletin)).one()
    assert (row.source, row.feed_title) == ("replay", "15_14_01_170216_VPWW53.xml")
    assert db.session.scalars(select(JmaDecision.action)).all() == ["start"]


def test_replay_with_a_bad_file_among_good_ones_does_nothing(jma: Flask, org: Org, tmp_path: Path) -> None:
    good = str(SAMPLES / "15_14_01_170216_VPWW53.xml")
    bad = _write(tmp_path, "bad.xml", b"<Report xmlns='http://xml.kishou.go.jp/jmaxml1/'/>")
    result = run(jma, "replay", good, bad)
    assert result.exit_code == 2
    assert "bad.xml: not a usable JMA bulletin" in result.stderr
    assert count(JmaBulletin) == 0 and count(Broadcast) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--organization", "no-such-org"], "no organization 'no-such-org'"),
        (["--now", "tomorrow"], "is not an ISO 8601 date and time"),
        (["--now", "2030-04-01T10:00:00"], "needs a UTC offset"),
    ],
)
def test_replay_bad_options_exit_2(jma: Flask, org: Org, options: list[str], message: str) -> None:
    result = run(jma, "replay", str(SAMPLES / "15_14_01_170216_VPWW53.xml"), *options)
    assert result.exit_code == 2
    assert message in result.stderr
    assert count(JmaBulletin) == 0


def test_poll_runs_one_poll_and_reports_each_feed(jma: Flask, org: Org, local_jma: LocalJma) -> None:
    from datetime import UTC, datetime

    local_jma.publish(
        "eqvol",
        "osaka.xml",
        intensity_report("20300401100000", {"27": "5+"}),
        datetime(2030, 4, 1, tzinfo=UTC),
    )
    result = run(jma, "poll", "--feed-base", local_jma.feed_base)
    assert result.exit_code == 0, result.stderr
    assert "eqvol: 1 entries, 1 new; 1 processed" in result.stdout
    assert "extra: 0 entries, 0 new" in result.stdout
    assert len(broadcasts_of(org.org)) == 1


def test_poll_exits_1_when_a_feed_fails(jma: Flask, org: Org, local_jma: LocalJma) -> None:
    local_jma.status["/feed/extra.xml"] = 500
    result = run(jma, "poll", "--feed-base", local_jma.feed_base, "--timeout", "2")
    assert result.exit_code == 1
    assert "extra: FAILED" in result.stdout and "HTTP 500" in result.stdout
