"""Whatever bytes arrive, parse_bulletin returns a Bulletin or raises BulletinError — nothing else escapes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.jma.parse import Bulletin, BulletinError, parse_bulletin
from ivr.jma.rules import OrganizationContext, Site, default_ruleset, evaluate

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "jma"
ALL_SAMPLES = {path.name: path.read_bytes() for path in sorted(SAMPLES.glob("*.xml"))}
# The fuzz loop stays fast on the smaller documents; the big VXSE53 is covered by truncation below.
SMALL_SAMPLES = {name: data for name, data in ALL_SAMPLES.items() if len(data) < 40_000}
JMX = b'xmlns="http://xml.kishou.go.jp/jmaxml1/"'

CONTEXT = OrganizationContext(
    sites=(
        Site("TKY", "13", frozenset({"1310400"})),
        Site("OSA", "27", frozenset({"2712700"})),
        Site("FUK", "40", frozenset({"4013200"})),
    ),
    staff_home_prefectures=frozenset({"11", "13", "14", "27", "28", "40"}),
)
NOW = datetime(2030, 4, 1, 1, 0, tzinfo=UTC)


def assert_bulletin_or_error(data: bytes) -> Bulletin | None:
    try:
        bulletin = parse_bulletin(data)
    except BulletinError as error:
        assert str(error)  # always a message a person can read
        return None
    json.dumps(bulletin.to_json_dict(), allow_nan=False)
    assert evaluate(bulletin, default_ruleset(), CONTEXT, NOW)
    return bulletin


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Report [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>&lol4;</Title></Control></Report>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Report [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>&secret;</Title></Control></Report>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Report SYSTEM "http://127.0.0.1:9/jmx.dtd">
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>x</Title></Control></Report>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Report [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"/>"""


def with_doctype(name: str) -> bytes:
    # A genuine bulletin with nothing but an empty internal DTD added: still refused, DTDs are forbidden outright.
    data = ALL_SAMPLES[name]
    return data.replace(b"<Report ", b"<!DOCTYPE Report>\n<Report ", 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (BILLION_LAUGHS, "DTD"),
        (EXTERNAL_ENTITY, "DTD"),
        (EXTERNAL_DTD, "DTD"),
        (PARAMETER_ENTITY, "DTD"),
        (with_doctype("32-35_08_01_100915_VXSE51.xml"), "DTD"),
        (b"", "empty"),
        (b"  \n\t ", "empty"),
        (b"hello, world", "not well-formed"),
        (b"\x00\xff\xfe\x01garbage", "not well-formed"),
        (b'{"status": "\xe9\x80\x9a\xe5\xb8\xb8"}', "not well-formed"),
        (b"<html><body>503 Service Unavailable</body></html>", "not a JMA bulletin"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"/>', "not a JMA bulletin"),
        (b"<Report><Control/></Report>", "not a JMA bulletin"),  # right name, no namespace
        (b"<Report " + JMX + b"/>", "Control or Head is missing"),
        (b'<?xml version="1.0" encoding="Shift_JIS"?><Report ' + JMX + b"/>", "encoding"),
        (b'<?xml version="1.0" encoding="x-no-such-thing"?><Report ' + JMX + b"/>", "encoding"),
        (b"<Report " + JMX + b"><Control>", "truncated"),
    ],
)
def test_hostile_or_broken_input_is_refused_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(BulletinError, match=message):
        parse_bulletin(data)


def test_external_entity_is_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = EXTERNAL_ENTITY.replace(b"file:///etc/passwd", secret.as_uri().encode())
    with pytest.raises(BulletinError) as caught:
        parse_bulletin(data)
    assert "TOP-SECRET" not in str(caught.value)


def _edit(name: str, old: bytes, new: bytes) -> bytes:
    data = ALL_SAMPLES[name]
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _edit("32-35_08_01_100915_VXSE51.xml", "<Status>通常".encode(), "<Status>本番".encode()),
            "Control/Status",
        ),
        (_edit("32-35_08_01_100915_VXSE51.xml", "<Status>通常".encode(), b"<Status>"), "Control/Status"),
        (_edit("32-35_08_01_100915_VXSE51.xml", "<InfoType>発表".encode(), b"<InfoType>X"), "InfoType"),
        (
            _edit("32-35_08_01_100915_VXSE51.xml", b"2010-07-05T06:57:00+09:00", b"yesterday"),
            "ReportDateTime",
        ),
        (
            _edit("32-35_08_01_100915_VXSE51.xml", b"2010-07-05T06:57:00+09:00", b"2010-07-05T06:57:00"),
            "UTC offset",
        ),
        (_edit("32-35_08_01_100915_VXSE51.xml", "<Title>震度速報</Title>".encode(), b""), "Control/Title"),
    ],
)
def test_jma_documents_missing_what_we_need_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(BulletinError, match=message):
        parse_bulletin(data)


def test_oversized_input_is_refused_before_parsing() -> None:
    data = ALL_SAMPLES["32-35_07_06_240613_VXSE53.xml"]
    with pytest.raises(BulletinError, match="limit"):
        parse_bulletin(data, max_bytes=100_000)
    assert parse_bulletin(data, max_bytes=len(data)).max_intensity == "6-"
    with pytest.raises(BulletinError, match="5242880-byte limit"):
        parse_bulletin(b"<" + b" " * (5 * 1024 * 1024))


def test_non_bytes_input_is_a_bulletin_error() -> None:
    with pytest.raises(BulletinError, match="bytes"):
        parse_bulletin("<Report/>")  # type: ignore[arg-type]


def test_utf16_bulletin_is_read() -> None:
    text = (
        ALL_SAMPLES["32-35_08_01_100915_VXSE51.xml"]
        .decode("utf-8")
        .replace('encoding="UTF-8"', 'encoding="UTF-16"')
    )
    assert parse_bulletin(text.encode("utf-16")).max_intensity == "3"


def _truncation_offsets(data: bytes) -> list[int]:
    end = data.rindex(b"</Report>") + len(b"</Report>") - 1  # cutting here leaves the root unclosed
    return sorted({0, 1, 2, 39, 100, end // 5, end // 3, end // 2, (3 * end) // 4, end - 20, end - 1, end})


@pytest.mark.parametrize("name", sorted(ALL_SAMPLES))
def test_every_sample_truncated_anywhere_raises_bulletin_error(name: str) -> None:
    data = ALL_SAMPLES[name]
    for offset in _truncation_offsets(data):
        with pytest.raises(BulletinError):
            parse_bulletin(data[:offset])


@pytest.mark.parametrize("name", sorted(ALL_SAMPLES))
def test_every_sample_cut_mid_multibyte_character_raises_bulletin_error(name: str) -> None:
    data = ALL_SAMPLES[name]
    first_multibyte = next(index for index, byte in enumerate(data) if byte >= 0x80)
    with pytest.raises(BulletinError):
        parse_bulletin(data[: first_multibyte + 1])


_TEXT_VALUE = re.compile(rb">([^<>]*)<")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(SMALL_SAMPLES)),
    edits=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1),
            st.sampled_from(["flip", "delete", "insert", "duplicate"]),
            st.binary(min_size=1, max_size=12),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_byte_mutations_of_real_samples(name: str, edits: list[tuple[float, str, bytes]]) -> None:
    data = bytearray(SMALL_SAMPLES[name])
    for fraction, operation, chunk in edits:
        position = min(int(fraction * len(data)), max(len(data) - 1, 0))
        if operation == "flip" and data:
            data[position] ^= chunk[0] or 0xFF
        elif operation == "delete":
            del data[position : position + len(chunk)]
        elif operation == "insert":
            data[position:position] = chunk
        else:
            data[position:position] = data[position : position + 64]
    assert_bulletin_or_error(bytes(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(SMALL_SAMPLES)), choice=st.integers(min_value=0), value=st.text(max_size=40)
)
def test_value_mutations_of_real_samples(name: str, choice: int, value: str) -> None:
    # Replace one element's text with arbitrary (escaped) text: the document stays well-formed, so this reaches
    # the value handling — intensities, times, codes, heights — rather than the XML parser.
    data = SMALL_SAMPLES[name]
    values = list(_TEXT_VALUE.finditer(data))
    target = values[choice % len(values)]
    replacement = escape(value.replace("\x00", "")).encode("utf-8", "surrogatepass")
    mutated = data[: target.start(1)] + replacement + data[target.end(1) :]
    assert_bulletin_or_error(mutated)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2_000))
def test_random_bytes(data: bytes) -> None:
    assert_bulletin_or_error(data)


@settings(max_examples=100, deadline=None)
@given(body=st.text(max_size=300))
def test_random_text_inside_a_jma_envelope(body: str) -> None:
    envelope = "<Report " + JMX.decode() + ">" + body + "</Report>"
    assert_bulletin_or_error(envelope.encode("utf-8", "surrogatepass"))
