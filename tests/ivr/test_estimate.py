"""Finish-time estimate at the configured rates, with the carrier's queue limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.estimate import estimate_finish

START = datetime(2026, 1, 1, tzinfo=UTC)
RATES = {"voice": 1.0, "sms": 10.0, "email": 20.0}


@pytest.mark.parametrize(
    ("sends", "rates", "hours", "warn_channels"),
    [
        ({"voice": 100_000}, RATES, 27.78, {"voice"}),  # 100,000 calls at 1/s: past Twilio's 24 h
        ({"voice": 86_400}, RATES, 24.0, set()),  # exactly 24 h still fits
        ({"voice": 1_000, "sms": 1_000, "email": 1_000}, RATES, 0.28, set()),  # channels run in parallel
        ({"sms": 200_000}, RATES, 5.56, {"sms"}),  # the SMS queue holds about 4 h
        ({"voice": 100_000}, {**RATES, "voice": 5.0}, 5.56, set()),  # a faster account fits
        ({}, RATES, 0.0, set()),
    ],
)
def test_estimate(sends, rates, hours, warn_channels):
    estimate = estimate_finish(sends, rates, start=START)
    assert estimate.hours == pytest.approx(hours, abs=0.01)
    assert estimate.finish_at == START + timedelta(seconds=estimate.seconds)
    assert {c.channel for c in estimate.channels if c.over_carrier_limit} == warn_channels
    assert len(estimate.warnings) == len(warn_channels)


def test_missing_rate_is_a_warning_not_a_crash():
    estimate = estimate_finish({"voice": 10}, {"voice": 0.0}, start=START)
    assert estimate.warnings and "no sending rate" in estimate.warnings[0]
