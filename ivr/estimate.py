"""When will a broadcast have reached everyone, at the configured rates — and will the carrier keep up? Pure.

Twilio queues outbound calls beyond the account's calls-per-second and cancels any call still queued after 24
hours; a phone number's SMS queue holds about 4 hours of messages. Lifeline paces sends itself (so nothing sits
in the carrier's queue), but the same arithmetic says whether the last person will be reached in useful time:
100,000 people at 1 call/s is 27.8 hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

CARRIER_QUEUE_LIMIT_S: dict[str, float] = {"voice": 24 * 3600.0, "sms": 4 * 3600.0}


@dataclass(frozen=True)
class ChannelEstimate:
    channel: str
    sends: int
    rate_per_second: float
    seconds: float
    over_carrier_limit: bool


@dataclass(frozen=True)
class Estimate:
    channels: tuple[ChannelEstimate, ...]
    seconds: float  # the slowest channel: channels leave in parallel, each at its own rate
    finish_at: datetime
    warnings: tuple[str, ...]

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0


def estimate_finish(sends: Mapping[str, int], rates: Mapping[str, float], *, start: datetime) -> Estimate:
    """``sends`` = how many messages/calls each channel still has to place; ``rates`` = per second."""
    per_channel: list[ChannelEstimate] = []
    warnings: list[str] = []
    for channel, count in sorted(sends.items()):
        if count <= 0:
            continue
        rate = rates.get(channel, 0.0)
        if rate <= 0:
            warnings.append(f"{channel}: no sending rate is configured, nothing will leave")
            per_channel.append(ChannelEstimate(channel, count, rate, float("inf"), True))
            continue
        seconds = count / rate
        limit = CARRIER_QUEUE_LIMIT_S.get(channel)
        over = limit is not None and seconds > limit
        if over and limit is not None:
            warnings.append(
                f"{channel}: {count:,} at {rate:g}/s take {seconds / 3600:.1f} h, more than the carrier's "
                f"{limit / 3600:.0f} h queue — raise the account's rate or narrow the audience"
            )
        per_channel.append(ChannelEstimate(channel, count, rate, seconds, over))
    total = max((c.seconds for c in per_channel), default=0.0)
    finish = (
        start + timedelta(seconds=total)
        if total != float("inf")
        else datetime.max.replace(tzinfo=start.tzinfo)
    )
    return Estimate(channels=tuple(per_channel), seconds=total, finish_at=finish, warnings=tuple(warnings))
