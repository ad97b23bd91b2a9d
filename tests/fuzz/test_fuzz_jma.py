"""The JMA bulletin parser and the Atom feed reader against documents that are *almost* right.

``tests/ivr/jma/test_jma_hostile.py`` flips bytes and truncates; here the mutations know the structure — a value
replaced by another plausible (or absurd) one, an element dropped, repeated or renamed — so they reach the code
that reads intensities, areas, times and warning kinds. Whatever comes in: a :class:`Bulletin` the trigger rules can
evaluate, or a :class:`BulletinError` saying why; a feed, or a :class:`FeedError`. With atheris installed,
``jma_atheris.py`` also runs a few seconds of coverage-guided fuzzing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.jma.feed import FeedError, parse_feed
from ivr.jma.parse import BulletinError, parse_bulletin
from ivr.jma.rules import OrganizationContext, Site, default_ruleset, evaluate

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "fixtures" / "jma"
DOCUMENTS = {
    path.name: path.read_bytes() for path in sorted(SAMPLES.glob("*.xml")) if path.stat().st_size < 60_000
}
CONTEXT = OrganizationContext(
    sites=(Site("TKY", "13", frozenset({"1310400"})), Site("OSA", "27", frozenset({"2712700"}))),
    staff_home_prefectures=frozenset({"13", "27", "14"}),
)
NOW = datetime(2030, 4, 1, tzinfo=UTC)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALUES = st.sampled_from(
    [
        "",
        " ",
        "1",
        "4",
        "5-",
        "5+",
        "6弱",
        "7",
        "８",
        "不明",
        "震度５弱以上未入電",
        "-1",
        "99999999999999999999",
        "NaN",
        "1e309",
        "通常",
        "訓練",
        "試験",
        "発表",
        "訂正",
        "取消",
        "2030-04-01T10:00:00+09:00",
        "2030-02-30T25:61:00+09:00",
        "0001-01-01T00:00:00Z",
        "13",
        "1310400",
        "大津波警報",
        "津波警報",
        "解除",
        "大雨特別警報",
        "\u202e",
        "<![CDATA[x]]>",
    ]
) | st.text(max_size=30)


def _elements(root: ET.Element) -> list[tuple[ET.Element, ET.Element]]:
    """(parent, child) for every element below the root."""
    return [(parent, child) for parent in root.iter() for child in list(parent)]


@st.composite
def mutated(draw: Any) -> bytes:
    name = draw(st.sampled_from(sorted(DOCUMENTS)))
    root = ET.fromstring(DOCUMENTS[name])
    for _ in range(draw(st.integers(1, 6))):
        pairs = _elements(root)
        if not pairs:
            break
        parent, child = draw(st.sampled_from(pairs))
        action = draw(st.sampled_from(["text", "text", "drop", "repeat", "rename", "attribute"]))
        if action == "text":
            child.text = draw(VALUES)
        elif action == "drop":
            parent.remove(child)
        elif action == "repeat":
            parent.append(child)
        elif action == "rename":
            child.tag = draw(st.sampled_from([other.tag for _, other in pairs]))
        else:
            child.set(draw(st.sampled_from(["type", "condition", "refID", "unit"])), draw(VALUES))
    return ET.tostring(root, encoding="utf-8")


def _read(data: bytes) -> None:
    try:
        bulletin = parse_bulletin(data)
    except BulletinError as error:
        assert str(error)
        return
    json.dumps(bulletin.to_json_dict(), allow_nan=False, ensure_ascii=False)
    evaluate(bulletin, default_ruleset(), CONTEXT, NOW)


@FUZZ
@given(data=mutated())
def test_bulletins_that_are_almost_right_are_read_or_refused(data: bytes) -> None:
    _read(data)


FEED_TITLES = [
    "震度速報",
    "震源・震度に関する情報",
    "津波警報・注意報・予報a",
    "気象特別警報・警報・注意報",
    "x",
    "",
]


@st.composite
def feed(draw: Any) -> bytes:
    atom = "http://www.w3.org/2005/Atom"
    root = ET.Element(f"{{{atom}}}feed")
    for _ in range(draw(st.integers(0, 8))):
        entry = ET.SubElement(root, f"{{{atom}}}entry")
        for tag, value in (
            ("title", draw(st.sampled_from(FEED_TITLES) | st.text(max_size=20))),
            (
                "id",
                draw(
                    st.sampled_from(["urn:uuid:1", "https://www.data.jma.go.jp/x.xml", ""])
                    | st.text(max_size=20)
                ),
            ),
            ("updated", draw(VALUES)),
        ):
            if draw(st.booleans()) or tag != "updated":
                ET.SubElement(entry, f"{{{atom}}}{tag}").text = value
        if draw(st.booleans()):
            link = ET.SubElement(entry, f"{{{atom}}}link")
            link.set(
                "href",
                draw(
                    st.sampled_from(["https://www.data.jma.go.jp/a.xml", "javascript:x", ""])
                    | st.text(max_size=30)
                ),
            )
            if draw(st.booleans()):
                link.set("type", draw(st.sampled_from(["application/xml", "text/html", ""])))
    return ET.tostring(root, encoding="utf-8")


@FUZZ
@given(data=feed() | st.binary(max_size=500))
def test_feeds_are_read_or_refused(data: bytes) -> None:
    try:
        entries = parse_feed(data)
    except FeedError as error:
        assert str(error)
        return
    for entry in entries:
        assert entry.id and isinstance(entry.title, str)


@pytest.mark.slow
def test_coverage_guided_fuzzing_finds_nothing(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is optional (pip install atheris)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in DOCUMENTS.items():
        (corpus / name).write_bytes(data)
    seconds = os.environ.get("LIFELINE_FUZZ_SECONDS", "15")
    run = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("jma_atheris.py")),
            f"-max_total_time={seconds}",
            "-rss_limit_mb=2048",
            "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=int(seconds) + 120,
        check=False,
    )
    crashes = [p.name for p in tmp_path.glob("crash-*")] + [p.name for p in tmp_path.glob("timeout-*")]
    assert run.returncode == 0 and not crashes, (crashes, run.stderr[-3000:])
    assert "Done" in run.stderr or "pulse" in run.stderr or "INITED" in run.stderr, run.stderr[-2000:]


__all__ = ["shutil"]
