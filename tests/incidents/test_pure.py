"""Pure decisions of the incidents part: care reasons, "safe" answers, file sniffing, timeline folding, playbooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from incidents import checklists
from incidents.care_rules import (
    NEED_TO_TALK_QUESTION,
    CareReason,
    answered_safe,
    care_options,
    is_safe_option,
    reason_for_option,
    reasons_for,
    safe_options,
)
from incidents.sniff import PDF, PNG, AttachmentRefused, check_attachment, safe_filename, sniff
from incidents.timeline import TimelineEntry, fold, merge, part_of
from ivr.scenarios import BUILTIN


def _q(key: str, ja: str, en: str) -> dict[str, Any]:
    return {"key": key, "text": {"ja": ja, "en": en}}


def _o(ja: str, en: str) -> dict[str, Any]:
    return {"value": "1", "label": {"ja": ja, "en": en}}


SAFETY = _q("safety", "あなたの状況を選んでください。", "How are you?")
HEALTH = _q("health", "体調を選んでください。", "How is your health?")
WORK = _q("work", "出勤できますか。", "Can you work?")


@pytest.mark.parametrize(
    ("question", "option", "expected"),
    [
        (SAFETY, _o("無事", "Safe"), None),
        (SAFETY, _o("けがをしている", "Injured"), CareReason.INJURED),
        (SAFETY, _o("負傷", ""), CareReason.INJURED),
        (SAFETY, _o("救助が必要", "Need help"), CareReason.NEED_HELP),
        (SAFETY, _o("", "I need support"), CareReason.NEED_HELP),
        (SAFETY, _o("被災地域にいない", "Not in the affected area"), None),
        (SAFETY, _o("支援は不要", "No help needed"), None),
        (HEALTH, _o("症状なし", "No symptoms"), None),
        (HEALTH, _o("症状あり", "Have symptoms"), None),
        (HEALTH, _o("陽性と診断された", "Tested positive"), CareReason.UNWELL),
        (HEALTH, _o("濃厚接触者", "Close contact"), None),
        (WORK, _o("勤務できない", "Cannot work"), None),
        (WORK, _o("在宅勤務できる", "Can work from home"), None),
        (NEED_TO_TALK_QUESTION, NEED_TO_TALK_QUESTION["options"][0], CareReason.NEED_TO_TALK),
        (NEED_TO_TALK_QUESTION, NEED_TO_TALK_QUESTION["options"][1], None),
        # A question whose text asks about talking, whatever its key.
        (
            _q("q3", "誰かに相談したいですか", "Would you like to talk to someone?"),
            _o("はい", "Yes"),
            CareReason.NEED_TO_TALK,
        ),
        # "Yes" to any other question means nothing for care.
        (WORK, _o("はい", "Yes"), None),
    ],
)
def test_reason_for_option(
    question: dict[str, Any], option: dict[str, Any], expected: CareReason | None
) -> None:
    assert reason_for_option(question, option) is expected


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (_o("無事", "Safe"), True),
        (_o("無事", ""), True),
        (_o("被災地域にいない", "Not in the affected area"), True),
        (_o("けがをしている", "Injured"), False),
        (_o("", "Unsafe"), False),
        (_o("出社できる", "Can come in"), False),
    ],
)
def test_is_safe_option(option: dict[str, Any], expected: bool) -> None:
    assert is_safe_option(option) is expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("earthquake", {("safety", "2"): CareReason.INJURED, ("safety", "3"): CareReason.NEED_HELP}),
        ("tsunami", {("safety", "2"): CareReason.INJURED, ("safety", "3"): CareReason.NEED_HELP}),
        ("infectious_disease", {("health", "3"): CareReason.UNWELL}),
        ("system_outage", {}),
        ("contact_check", {}),
    ],
)
def test_care_options_of_the_builtin_templates(template: str, expected: dict[Any, CareReason]) -> None:
    assert care_options(BUILTIN[template]) == expected


def test_care_options_follow_the_labels_not_the_digits() -> None:
    # A crisis manager reordered the options: "2" is now "safe", "1" is "injured".
    template = {
        "questions": [
            {
                "key": "safety",
                "text": SAFETY["text"],
                "options": [
                    {"value": "1", "label": {"ja": "けがをしている", "en": "Injured"}},
                    {"value": "2", "label": {"ja": "無事", "en": "Safe"}},
                ],
            },
            NEED_TO_TALK_QUESTION,
        ]
    }
    assert care_options(template) == {
        ("safety", "1"): CareReason.INJURED,
        ("need_to_talk", "1"): CareReason.NEED_TO_TALK,
    }
    assert safe_options(template) == {("safety", "2")}


@pytest.mark.parametrize(
    ("answers", "reasons", "safe"),
    [
        ([("safety", "1"), ("work", "1")], [], True),
        ([("safety", "2"), ("work", "3")], [CareReason.INJURED], False),
        ([("safety", "3")], [CareReason.NEED_HELP], False),
        ([("safety", "4")], [], True),
        ([("work", "2")], [], False),  # answered only the work question: not known to be safe
        ([], [], False),
    ],
)
def test_reasons_and_safety_of_one_person(
    answers: list[tuple[str, str]], reasons: list[CareReason], safe: bool
) -> None:
    template = BUILTIN["earthquake"]
    options = care_options(template)
    assert reasons_for(answers, options) == reasons
    assert answered_safe(answers, safe_options(template), options) is safe


# --- attachments ------------------------------------------------------------------------------------------------

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG_BYTES = b"\xff\xd8\xff\xe0" + b"\x00" * 32
PDF_BYTES = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 32
EXE_BYTES = b"MZ\x90\x00" + b"\x00" * 32


@pytest.mark.parametrize(
    ("name", "data", "content_type", "shown_as"),
    [
        ("photo.png", PNG_BYTES, "image/png", "photo.png"),
        ("IMG_0001.JPG", JPEG_BYTES, "image/jpeg", "IMG_0001.jpg"),
        ("photo.png", PDF_BYTES, "application/pdf", "photo.pdf"),  # the bytes decide, not the name
        ("報告書.pdf", PDF_BYTES, "application/pdf", "報告書.pdf"),
        ("../../etc/passwd.pdf", PDF_BYTES, "application/pdf", "passwd.pdf"),
        ("C:\\Users\\me\\scan.pdf", PDF_BYTES, "application/pdf", "scan.pdf"),
        ("", PNG_BYTES, "image/png", "attachment.png"),
    ],
)
def test_attachments_are_typed_by_their_bytes(
    name: str, data: bytes, content_type: str, shown_as: str
) -> None:
    kind, display = check_attachment(name, data)
    assert kind.content_type == content_type
    assert display == shown_as


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("setup.exe", EXE_BYTES, "Only photos"),
        ("photo.png", EXE_BYTES, "Only photos"),
        ("page.html", b"<html><script>alert(1)</script>", "Only photos"),
        ("empty.png", b"", "empty"),
        ("huge.pdf", b"%PDF-" + b"0" * (10 * 1024 * 1024), "10 MB"),
    ],
)
def test_other_files_are_refused(name: str, data: bytes, message: str) -> None:
    with pytest.raises(AttachmentRefused, match=message):
        check_attachment(name, data)


def test_sniff_and_safe_filename() -> None:
    assert sniff(PDF_BYTES) is PDF
    assert sniff(PNG_BYTES) is PNG
    assert sniff(b"GIF89a") is None
    assert safe_filename("a<b>c\x00.png", PNG) == "a_b_c.png"
    assert "/" not in safe_filename("x/y/z.png", PNG)


# --- timeline ---------------------------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def _audit(minutes: float, action: str, text: str = "") -> TimelineEntry:
    return TimelineEntry(
        at=T0 + timedelta(minutes=minutes),
        source="audit",
        kind=action,
        actor="x",
        text=text,
        part=part_of(action),
    )


def test_per_person_entries_are_folded_per_quarter_hour() -> None:
    entries = [
        _audit(0, "ivr.broadcast.start", "started"),
        *[_audit(1 + i, "ivr.answer") for i in range(10)],
        _audit(20, "ivr.answer"),
        _audit(21, "continuity.reroute", "OSA → FUK"),
    ]
    folded = fold(entries)
    assert [(e.kind, e.count) for e in folded] == [
        ("ivr.broadcast.start", 1),
        ("ivr.answer", 10),
        ("ivr.answer", 1),
        ("continuity.reroute", 1),
    ]
    assert folded[1].text == "10 × ivr.answer"
    assert folded[1].at == T0 + timedelta(minutes=1)


def test_merge_orders_by_time_and_drops_sign_ins() -> None:
    own = [
        TimelineEntry(
            at=T0 + timedelta(minutes=5), source="incident", kind="declared", actor="a", text="declared"
        )
    ]
    logged = [_audit(5, "ivr.broadcast.start"), _audit(2, "login"), _audit(1, "continuity.site.state")]
    merged = merge(own, logged)
    assert [e.kind for e in merged] == ["continuity.site.state", "declared", "ivr.broadcast.start"]


@pytest.mark.parametrize(
    ("action", "part"),
    [
        ("ivr.broadcast.start", "ivr"),
        ("continuity.reroute", "continuity"),
        ("user.roles", "admin"),
        ("contact.add", "directory"),
    ],
)
def test_part_of(action: str, part: str) -> None:
    assert part_of(action) == part


# --- playbooks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "incident_type", ["earthquake", "tsunami", "heavy_rain", "pandemic", "system_outage", "other"]
)
def test_every_playbook_covers_the_four_phases_in_order(incident_type: str) -> None:
    steps = checklists.default_steps(incident_type)
    phases = [s.phase for s in steps]
    assert list(dict.fromkeys(phases)) == list(checklists.PHASES)
    assert all(s.title_ja and s.title_en for s in steps)
    assert len({s.title_ja for s in steps}) == len(steps)


def test_earthquake_playbook_names_the_essentials() -> None:
    titles = [s.title_ja for s in checklists.default_steps("earthquake")]
    for expected in (
        "従業員の安全確保・避難",
        "安否確認の実施",
        "被害状況の把握",
        "取引先・顧客への連絡",
        "代替拠点への切替",
        "復旧計画の策定",
    ):
        assert expected in titles
    assert (
        titles.index("従業員の安全確保・避難")
        < titles.index("取引先・顧客への連絡")
        < titles.index("復旧計画の策定")
    )
