"""Stored plan documents → routing.Plan: what is accepted, and every mistake refused with where it is."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest

from continuity.plans import faq_entries, plan_from_definition, validate_definition
from continuity.routing import Message, TargetKind

LINE = "+15550100180"
MINIMAL: dict[str, Any] = {"targets": [{"kind": "site_agents", "site": "TKY"}]}


def test_a_full_plan() -> None:
    plan = plan_from_definition(
        LINE,
        {
            "timezone": "Asia/Tokyo",
            "site": "TKY",
            "business_hours": [
                {"days": "Mon-Fri", "opens": "09:00", "closes": "18:00"},
                {"days": "Sat", "opens": "10:00", "closes": "24:00"},
            ],
            "holidays": ["2026-01-01"],
            "closed_message": {"ja": "終了", "en": "closed"},
            "targets": [
                {"kind": "site_agents", "site": "TKY", "ring_timeout_s": 12, "skip_when_unavailable": True},
                {"kind": "queue", "queue": "q", "capacity": 3, "message": "お待ちください"},
                {"kind": "announcement", "message": {"recording_url": "https://example.com/a.mp3"}},
                {"kind": "site", "site": "FUK", "business_hours": [{"opens": "22:00", "closes": "06:00"}]},
            ],
        },
        name="main",
    )
    assert (plan.line, plan.name, plan.home_site) == (LINE, "main", "TKY")
    assert plan.business_hours is not None
    assert plan.business_hours.description == "Mon-Fri 09:00-18:00, Sat 10:00-00:00 Asia/Tokyo"
    assert plan.business_hours.is_open(datetime(2026, 1, 10, 14, 59, tzinfo=UTC))  # Saturday 23:59 JST
    assert plan.closed_message == Message("終了", "closed")
    first, queue, announcement, night = plan.targets
    assert (first.kind, first.ring_timeout_s, first.skip_when_unavailable) == (
        TargetKind.SITE_AGENTS,
        12,
        True,
    )
    assert (queue.queue_name, queue.queue_capacity, queue.message) == ("q", 3, Message("お待ちください"))
    assert (
        announcement.message is not None and announcement.message.recording_url == "https://example.com/a.mp3"
    )
    assert night.business_hours is not None and night.business_hours.windows[0].opens == time(22)


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({}, "a plan needs a non-empty list of targets"),
        ({"targets": []}, "a plan needs a non-empty list of targets"),
        ({"targets": [{"kind": "teleport"}]}, "targets[0]: kind must be one of"),
        ({"targets": [{"kind": "site_agents"}]}, "targets[0]: a site_agents target needs a site code"),
        ({"targets": [{"kind": "queue"}]}, "targets[0]: a queue target needs a queue name"),
        ({"targets": [{"kind": "queue", "queue": "q", "capacity": 0}]}, "capacity must be at least 1"),
        ({"targets": [{"kind": "announcement"}]}, "an announcement target needs a message"),
        (
            {"targets": [{"kind": "voicemail", "ring_timeout_s": 0}]},
            "ring timeout must be at least one second",
        ),
        ({"targets": [{"kind": "voicemail", "colour": "red"}]}, "targets[0]: unknown keys ['colour']"),
        ({**MINIMAL, "timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({**MINIMAL, "holidays": ["2026-13-01"]}, "holidays: '2026-13-01' is not a YYYY-MM-DD date"),
        (
            {**MINIMAL, "business_hours": [{"opens": "9", "closes": "18:00"}]},
            "business_hours[0].opens: a time is HH:MM",
        ),
        (
            {**MINIMAL, "business_hours": [{"days": "Funday", "opens": "09:00", "closes": "18:00"}]},
            "days are like",
        ),
        (
            {**MINIMAL, "closed_message": {"ja": ""}},
            "closed_message: a message needs ja, en or recording_url",
        ),
        (
            {"targets": [{"kind": "announcement", "message": {"recording_url": "ftp://x"}}]},
            "recording_url must be an http(s) URL",
        ),
        (
            {**MINIMAL, "faq": [{"digit": "0", "question": "q", "answer": "a"}]},
            "faq[0]: digit must be one of 1-9",
        ),
        (
            {
                **MINIMAL,
                "faq": [
                    {"digit": "1", "question": "q", "answer": "a"},
                    {"digit": "1", "question": "q", "answer": "a"},
                ],
            },
            "faq[1]: digit 1 is used twice",
        ),
        ({**MINIMAL, "faq": [{"digit": "1", "question": "q"}]}, "faq[0]: question and answer are required"),
    ],
)
def test_mistakes_are_refused_with_where_they_are(definition: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        validate_definition(definition)
    assert problem in str(refused.value)


def test_faq_entries_in_order() -> None:
    entries = faq_entries(
        {
            "faq": [
                {"digit": "2", "question": {"ja": "場所", "en": "where"}, "answer": "東京です"},
                {"digit": "1", "question": "時間", "answer": {"en": "9 to 6"}},
            ]
        }
    )
    assert [(e.digit, e.question.text("en"), e.answer.text("ja")) for e in entries] == [
        ("2", "where", "東京です"),
        ("1", "時間", "9 to 6"),
    ]
