"""What a drill's facts add up to. Pure: plain values in, plain values out; no database, no Flask.

Definitions (the printed report says the same in words):

* **Elapsed time** of an answer is ``answered_at - started_at`` of the broadcast, never negative.
* **Time to p %** is the elapsed time of the answer that brought the answered count to ``ceil(p × recipients /
  100)`` people; ``None`` when that many never answered. With 10 recipients, "50 %" is the 5th answer.
* **Answer curve**: for every whole minute *m* since the start, how many had answered at or before *m* minutes,
  and that as a percentage of all recipients (cumulative, so it never goes down).
* **Median time to answer**: the median elapsed time of those who answered (``None`` when nobody did).
* **Unreachable contact point**: a contact point that was tried at least once in the drill and never got
  through — every attempt on it that left ended *failed* (the carrier refused it; error code kept), *no answer*
  or *busy*. Attempts that never left (pending, cancelled because the person answered elsewhere) do not count
  either way. A voicemail pick-up or a delivered message means the contact point works.
* **Failover**: the *decision* is the reroute that moved traffic (a site marked down or evacuated, or a line
  moved). A call is *answered at the alternate site* when one of its legs at that site was taken by a person;
  the moment it was taken is the leg's end minus its talk time (the carrier reports a bridged call when it
  ends). **Lost calls** are calls that ended without any person taking them: they went to voicemail, left a
  callback request, got the SMS link, heard only an announcement, ran out of targets or the caller hung up while
  waiting. Calls still going on are neither answered nor lost.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

PERCENTILES = (25, 50, 75, 90)


# --- the safety broadcast ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientFact:
    """One person of the drill broadcast: where they belong and when (if ever) they answered."""

    department: str
    site: str
    answered_at: datetime | None = None


@dataclass(frozen=True)
class CurvePoint:
    minute: int
    answered: int
    percent: float


@dataclass(frozen=True)
class GroupFigures:
    name: str
    recipients: int
    answered: int
    rate: float  # percent, 0-100
    median_seconds: float | None


def elapsed_seconds(started_at: datetime, moments: Iterable[datetime | None]) -> list[float]:
    """Seconds from the start to each moment that exists, sorted; moments before the start count as 0."""
    return sorted(max(0.0, (m - started_at).total_seconds()) for m in moments if m is not None)


def rate(answered: int, recipients: int) -> float:
    return 100.0 * answered / recipients if recipients else 0.0


def needed_for(percent: int, recipients: int) -> int:
    """How many answers make ``percent`` of ``recipients`` (integer arithmetic: no 0.7 × 10 = 7.000001)."""
    return -(-percent * recipients // 100)


def time_to_percent(
    started_at: datetime, answered_at: Iterable[datetime | None], recipients: int, percent: int
) -> float | None:
    if recipients <= 0:
        return None
    times = elapsed_seconds(started_at, answered_at)
    need = max(1, needed_for(percent, recipients))
    return times[need - 1] if len(times) >= need else None


def times_to_percentiles(
    started_at: datetime,
    answered_at: Iterable[datetime | None],
    recipients: int,
    percents: Sequence[int] = PERCENTILES,
) -> dict[int, float | None]:
    moments = list(answered_at)
    return {p: time_to_percent(started_at, moments, recipients, p) for p in percents}


def median_seconds(started_at: datetime, answered_at: Iterable[datetime | None]) -> float | None:
    times = elapsed_seconds(started_at, answered_at)
    return float(statistics.median(times)) if times else None


def answer_curve(
    started_at: datetime,
    answered_at: Iterable[datetime | None],
    recipients: int,
    until: datetime | None = None,
) -> list[CurvePoint]:
    """Cumulative answered count and percentage at each whole minute from 0 to the last answer (or ``until``)."""
    times = elapsed_seconds(started_at, answered_at)
    last = times[-1] if times else 0.0
    if until is not None:
        last = max(last, (until - started_at).total_seconds())
    minutes = max(0, math.ceil(last / 60))
    points = []
    index = 0
    for minute in range(minutes + 1):
        while index < len(times) and times[index] <= minute * 60:
            index += 1
        points.append(CurvePoint(minute=minute, answered=index, percent=rate(index, recipients)))
    return points


def group_figures(
    started_at: datetime, facts: Iterable[RecipientFact], key: Callable[[RecipientFact], str]
) -> list[GroupFigures]:
    """Recipients, answered, rate and median time to answer per group, sorted by name ("-" for none last)."""
    groups: dict[str, list[RecipientFact]] = {}
    for fact in facts:
        groups.setdefault(key(fact) or "-", []).append(fact)
    out = []
    for name, members in groups.items():
        answered = [f.answered_at for f in members if f.answered_at is not None]
        out.append(
            GroupFigures(
                name=name,
                recipients=len(members),
                answered=len(answered),
                rate=rate(len(answered), len(members)),
                median_seconds=median_seconds(started_at, answered),
            )
        )
    return sorted(out, key=lambda g: (g.name == "-", g.name))


def medians_by(
    started_at: datetime, facts: Iterable[RecipientFact], key: Callable[[RecipientFact], str]
) -> dict[str, float | None]:
    return {g.name: g.median_seconds for g in group_figures(started_at, facts, key)}


# --- contact points ----------------------------------------------------------------------------------------------

# What an attempt that left can end as. Anything else (pending, retry, dialing, in progress, cancelled) has
# not finished or never left, and says nothing yet about the contact point.
GOT_THROUGH = frozenset({"completed", "machine"})
DID_NOT_GET_THROUGH = frozenset({"failed", "no_answer", "busy"})


@dataclass(frozen=True)
class AttemptFact:
    contact_key: str  # identifies the contact point (its id, or the masked address when it was deleted)
    person: str
    department: str
    site: str
    contact_label: str  # e.g. "work phone +81 90-****-0012" or "private phone" (never a private value)
    channel: str
    state: str
    error_code: str | None = None
    error_reason: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class UnreachableContact:
    person: str
    department: str
    site: str
    contact_label: str
    channels: tuple[str, ...]
    attempts: int
    last_state: str
    error_code: str | None
    error_reason: str | None


def unreachable_contacts(attempts: Iterable[AttemptFact]) -> list[UnreachableContact]:
    """Contact points every finished attempt of which failed; those with a carrier error code first."""
    by_contact: dict[str, list[AttemptFact]] = {}
    for attempt in attempts:
        if attempt.state in GOT_THROUGH or attempt.state in DID_NOT_GET_THROUGH:
            by_contact.setdefault(attempt.contact_key, []).append(attempt)
    out = []
    for tried in by_contact.values():
        if any(a.state in GOT_THROUGH for a in tried):
            continue
        ordered = sorted(tried, key=lambda a: (a.at is None, a.at or datetime.min))
        last = ordered[-1]
        coded = next((a for a in reversed(ordered) if a.error_code), None)
        out.append(
            UnreachableContact(
                person=last.person,
                department=last.department,
                site=last.site,
                contact_label=last.contact_label,
                channels=tuple(sorted({a.channel for a in tried})),
                attempts=len(tried),
                last_state=last.state,
                error_code=coded.error_code if coded else None,
                error_reason=(coded.error_reason if coded else last.error_reason) or None,
            )
        )
    return sorted(out, key=lambda u: (u.error_code is None, u.department, u.person, u.contact_label))


# --- failover ----------------------------------------------------------------------------------------------------

HUMAN_LEG_KINDS = frozenset({"site_agents", "site", "home_agents", "queue"})
SITE_LEG_KINDS = frozenset({"site_agents", "site"})


@dataclass(frozen=True)
class LegFact:
    kind: str  # continuity TargetKind value
    site_code: str | None
    outcome: str | None  # continuity LegOutcome value; None while ringing / waiting
    started_at: datetime
    ended_at: datetime | None = None
    duration_s: int | None = None  # talk time of a bridged call, as the carrier reported it

    @property
    def taken(self) -> bool:
        return self.outcome == "completed" and self.kind in HUMAN_LEG_KINDS

    @property
    def taken_at(self) -> datetime | None:
        """When a person picked up: the end of the bridged call minus its talk time."""
        if not self.taken or self.ended_at is None:
            return None
        if self.duration_s is not None:
            return max(self.started_at, self.ended_at - timedelta(seconds=self.duration_s))
        return self.ended_at


@dataclass(frozen=True)
class CallFact:
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None  # completed, voicemail, callback_request, sms_sent, hung_up, exhausted …
    legs: tuple[LegFact, ...] = ()

    @property
    def taken(self) -> bool:
        return any(leg.taken for leg in self.legs) or self.outcome == "completed"

    @property
    def lost(self) -> bool:
        return self.ended_at is not None and not self.taken


@dataclass(frozen=True)
class FailoverFigures:
    decision_at: datetime | None
    alternate_site: str | None
    first_alternate_answer_at: datetime | None
    seconds_to_alternate: float | None
    calls: int
    answered: int
    answered_at_alternate: int
    lost: int
    lost_by_outcome: dict[str, int] = field(default_factory=dict)
    still_open: int = 0
    calls_after_decision: int = 0
    lost_after_decision: int = 0

    @property
    def lost_rate(self) -> float:
        return rate(self.lost, self.calls)


def _at_alternate(leg: LegFact, alternate_site: str | None, down_site: str | None) -> bool:
    if leg.kind not in SITE_LEG_KINDS or not leg.taken:
        return False
    if alternate_site:
        return leg.site_code == alternate_site
    return leg.site_code is not None and leg.site_code != down_site


def failover_figures(
    *,
    decision_at: datetime | None,
    calls: Iterable[CallFact],
    alternate_site: str | None = None,
    down_site: str | None = None,
) -> FailoverFigures:
    """Time from the decision to the first call taken at the alternate site, and what happened to the calls.

    Without a named alternate site, any site other than ``down_site`` counts as the alternate.
    """
    all_calls = list(calls)
    first: datetime | None = None
    answered_at_alternate = 0
    for call in all_calls:
        moments = [
            leg.taken_at
            for leg in call.legs
            if _at_alternate(leg, alternate_site, down_site) and leg.taken_at is not None
        ]
        if not moments:
            continue
        answered_at_alternate += 1
        earliest = min(moments)
        if (decision_at is None or earliest >= decision_at) and (first is None or earliest < first):
            first = earliest
    lost = [c for c in all_calls if c.lost]
    after = [c for c in all_calls if decision_at is not None and c.started_at >= decision_at]
    return FailoverFigures(
        decision_at=decision_at,
        alternate_site=alternate_site,
        first_alternate_answer_at=first,
        seconds_to_alternate=(first - decision_at).total_seconds() if first and decision_at else None,
        calls=len(all_calls),
        answered=sum(1 for c in all_calls if c.taken),
        answered_at_alternate=answered_at_alternate,
        lost=len(lost),
        lost_by_outcome=dict(sorted(Counter(c.outcome or "ended" for c in lost).items())),
        still_open=sum(1 for c in all_calls if c.ended_at is None and not c.taken),
        calls_after_decision=len(after),
        lost_after_decision=sum(1 for c in after if c.lost),
    )


# --- comparison with earlier drills ------------------------------------------------------------------------------

# Which way is better for each figure: +1 higher is better, -1 lower is better, 0 neither.
DIRECTION: Mapping[str, int] = {
    "recipients": 0,
    "answered": 0,
    "answer_rate": 1,
    "t25": -1,
    "t50": -1,
    "t75": -1,
    "t90": -1,
    "median": -1,
    "unreachable_contacts": -1,
    "failover_seconds": -1,
    "calls_lost": -1,
}


@dataclass(frozen=True)
class ComparisonRow:
    key: str
    current: float | None
    previous: tuple[float | None, ...]  # most recent earlier drill first
    delta: float | None  # current minus the most recent earlier drill
    verdict: str  # "better", "worse", "same" or "" (not comparable / no direction)


def compare(
    current: Mapping[str, float | None],
    previous: Sequence[Mapping[str, float | None]],
    keys: Sequence[str] | None = None,
) -> list[ComparisonRow]:
    """This drill's figures beside earlier drills' (most recent first), with the change since the last one."""
    rows = []
    for key in keys if keys is not None else list(current):
        now = current.get(key)
        before = tuple(p.get(key) for p in previous)
        last = before[0] if before else None
        delta = None if now is None or last is None else now - last
        verdict = ""
        direction = DIRECTION.get(key, 0)
        if delta is not None and direction:
            verdict = "same" if abs(delta) < 1e-9 else ("better" if delta * direction > 0 else "worse")
        rows.append(ComparisonRow(key=key, current=now, previous=before, delta=delta, verdict=verdict))
    return rows
