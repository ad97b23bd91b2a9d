"""Where an inbound call goes: a pure function of the line's routing plan, the state of the sites and the time.

``choose(plan, snapshot, at)`` answers both the live webhook and a supervisor's "where would a call to this
line go at 03:00 tomorrow", so it reads nothing but its arguments.

Evaluation order:

1. Line override: the line may be moved to another plan, and traffic split by weight across sites (the site a
   call falls on is tried first; a given ``call_key`` always falls on the same site).
2. Mode, first match wins: an active emergency (global, then the plan's home site, then the line) → a holiday
   in the plan's time zone → closed (outside the plan's business hours) → open.
3. Line-up. Open: the plan's targets, people first (site agents, other sites, home agents, queues) and the
   unmanned fallbacks after them (FAQ menu, voicemail, SMS link, callback request, announcements), each group
   in plan order; a final announcement (the plan's "unavailable" message) closes the line-up so a caller
   never meets silence. Emergency, holiday and closed: the mode's announcement, then the plan's targets with
   every human one skipped, so only the unmanned fallbacks remain.
4. Each target is tried or skipped, with the reason. Skipped: outside its own business hours; a site (or a
   queue's site) that is down, evacuated or unknown; nobody available and ``skip_when_unavailable``; nothing
   to dial; a full queue. Degraded sites are tried.

``attempt`` is a position in that line-up: targets before it were already dealt with in this call. The chosen
target is the first one tried at or after ``attempt``; the Dial ``action`` callback passes
``decision.next_attempt`` (the chosen position + 1) so that skipped targets are not counted twice. ``chosen`` is
None when the line-up is exhausted: the call should be hung up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Tokyo"
DEFAULT_RING_TIMEOUT_S = 20

_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The named time zone, loaded once per process (``ZoneInfo`` lookups are not free on a hot path)."""
    return ZoneInfo(name)


class TargetKind(StrEnum):
    SITE_AGENTS = "site_agents"  # the line's own site
    SITE = "site"  # another site's agents
    HOME_AGENTS = "home_agents"
    QUEUE = "queue"
    FAQ_MENU = "faq_menu"
    VOICEMAIL = "voicemail"
    SMS_LINK = "sms_link"
    CALLBACK_REQUEST = "callback_request"
    ANNOUNCEMENT = "announcement"


HUMAN_KINDS = frozenset({TargetKind.SITE_AGENTS, TargetKind.SITE, TargetKind.HOME_AGENTS, TargetKind.QUEUE})
SITE_KINDS = frozenset({TargetKind.SITE_AGENTS, TargetKind.SITE})
UNMANNED_KINDS = frozenset(
    {TargetKind.FAQ_MENU, TargetKind.VOICEMAIL, TargetKind.SMS_LINK, TargetKind.CALLBACK_REQUEST}
)


class SiteState(StrEnum):
    NORMAL = "normal"
    DEGRADED = "degraded"
    DOWN = "down"
    EVACUATED = "evacuated"


UNREACHABLE_STATES = frozenset({SiteState.DOWN, SiteState.EVACUATED})


class Mode(StrEnum):
    EMERGENCY = "emergency"
    HOLIDAY = "holiday"
    CLOSED = "closed"
    OPEN = "open"


class EmergencyScope(StrEnum):
    LINE = "line"
    SITE = "site"
    GLOBAL = "global"


class CandidateDecision(StrEnum):
    TRY = "try"
    SKIP = "skip"


class EndpointKind(StrEnum):
    NUMBER = "number"
    CLIENT = "client"
    SIP = "sip"


def endpoint_kind(endpoint: str) -> EndpointKind:
    """How to dial an agent endpoint: ``sip:…`` → Sip, ``client:…`` → Client, anything else → Number."""
    lowered = endpoint[:7].lower()
    if lowered.startswith("sip:"):
        return EndpointKind.SIP
    if lowered.startswith("client:"):
        return EndpointKind.CLIENT
    return EndpointKind.NUMBER


@dataclass(frozen=True)
class Message:
    """Something said to the caller, in Japanese and English, or played from a recording."""

    ja: str
    en: str = ""
    recording_url: str | None = None

    def text(self, language: str = "ja") -> str:
        if language == "ja":
            return self.ja or self.en
        return self.en or self.ja

    def as_dict(self) -> dict[str, str | None]:
        return {"ja": self.ja, "en": self.en, "recording_url": self.recording_url}


DEFAULT_CLOSED_MESSAGE = Message(
    ja="お電話ありがとうございます。ただいまお電話をお受けできません。",
    en="Thank you for calling. We cannot take your call right now.",
)


# --------------------------------------------------------------------------------------------------------------
# Business hours
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpeningWindow:
    """Open from ``opens`` to ``closes`` on ``weekdays`` (0 = Monday). A window whose ``closes`` is not after
    ``opens`` runs past midnight into the next day (22:00-06:00; 09:00-00:00 means until midnight)."""

    opens: time
    closes: time
    weekdays: frozenset[int] = frozenset(range(7))

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise ValueError("weekdays must be a non-empty set of 0 (Monday) to 6 (Sunday)")

    def is_open(self, weekday: int, at: time) -> bool:
        if self.opens < self.closes:
            return weekday in self.weekdays and self.opens <= at < self.closes
        if weekday in self.weekdays and at >= self.opens:
            return True
        return (weekday - 1) % 7 in self.weekdays and at < self.closes

    def describe(self) -> str:
        hours = f"{self.opens:%H:%M}-{self.closes:%H:%M}"
        days = _describe_weekdays(self.weekdays)
        return f"{days} {hours}" if days else hours


def _describe_weekdays(weekdays: frozenset[int]) -> str:
    if len(weekdays) == 7:
        return ""
    runs: list[list[int]] = []
    for day in sorted(weekdays):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{_WEEKDAY_NAMES[run[0]]}-{_WEEKDAY_NAMES[run[-1]]}")
        else:
            parts.extend(_WEEKDAY_NAMES[day] for day in run)
    return ",".join(parts)


@dataclass(frozen=True)
class BusinessHours:
    """A weekly schedule in a time zone; open when any window is open."""

    windows: tuple[OpeningWindow, ...]
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        zone(self.timezone)  # an unknown zone fails when the plan is built, not when a call comes in

    @classmethod
    def daily(cls, opens: time, closes: time, timezone: str = DEFAULT_TIMEZONE) -> BusinessHours:
        return cls((OpeningWindow(opens, closes),), timezone)

    @classmethod
    def weekdays(cls, opens: time, closes: time, timezone: str = DEFAULT_TIMEZONE) -> BusinessHours:
        """Monday to Friday."""
        return cls((OpeningWindow(opens, closes, frozenset(range(5))),), timezone)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(zone(self.timezone))
        weekday, clock = local.weekday(), local.time()
        return any(window.is_open(weekday, clock) for window in self.windows)

    @cached_property
    def description(self) -> str:
        """E.g. ``09:00-18:00 Asia/Tokyo`` or ``Mon-Fri 09:00-18:00, Sat 10:00-15:00 Asia/Tokyo``."""
        return f"{', '.join(window.describe() for window in self.windows)} {self.timezone}"


# --------------------------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One step of a routing plan.

    ``site_code`` names the site for ``site_agents`` and ``site`` (required) and, optionally, the site whose
    agents serve a ``queue``. ``business_hours`` None means always. ``skip_when_unavailable``: do not ring a
    site (or send to a queue) whose agents are all unavailable. ``queue_name``/``queue_capacity`` (None:
    unlimited) apply to queues. ``message`` is what the caller hears: the announcement, the queue's hold
    message, the FAQ menu's or the voicemail's greeting.
    """

    kind: TargetKind
    site_code: str | None = None
    ring_timeout_s: int = DEFAULT_RING_TIMEOUT_S
    business_hours: BusinessHours | None = None
    skip_when_unavailable: bool = False
    queue_name: str | None = None
    queue_capacity: int | None = None
    message: Message | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TargetKind(self.kind))
        if self.kind in SITE_KINDS and not self.site_code:
            raise ValueError(f"a {self.kind.value} target needs a site code")
        if self.kind is TargetKind.QUEUE:
            if not self.queue_name:
                raise ValueError("a queue target needs a queue name")
            if self.queue_capacity is not None and self.queue_capacity < 1:
                raise ValueError("a queue's capacity must be at least 1")
        if self.kind is TargetKind.ANNOUNCEMENT and self.message is None:
            raise ValueError("an announcement target needs a message")
        if self.ring_timeout_s < 1:
            raise ValueError("ring timeout must be at least one second")

    @property
    def is_human(self) -> bool:
        return self.kind in HUMAN_KINDS


@dataclass(frozen=True)
class Plan:
    """The routing plan of one inbound line (``line`` is its E.164 number).

    ``site_code`` is the plan's home site, which a site-wide emergency applies to; when not given, it is the
    site of the first ``site_agents`` target. ``business_hours`` None means the line never closes.
    ``holiday_message`` and ``unavailable_message`` default to ``closed_message``.
    """

    line: str
    targets: tuple[Target, ...]
    closed_message: Message = DEFAULT_CLOSED_MESSAGE
    timezone: str = DEFAULT_TIMEZONE
    holidays: frozenset[date] = frozenset()
    business_hours: BusinessHours | None = None
    name: str = ""
    site_code: str | None = None
    holiday_message: Message | None = None
    unavailable_message: Message | None = None

    def __post_init__(self) -> None:
        zone(self.timezone)
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "holidays", frozenset(self.holidays))

    @cached_property
    def ordered_targets(self) -> tuple[Target, ...]:
        """People first, unmanned fallbacks after them, each in plan order."""
        return tuple(t for t in self.targets if t.is_human) + tuple(t for t in self.targets if not t.is_human)

    @cached_property
    def home_site(self) -> str | None:
        if self.site_code:
            return self.site_code
        return next((t.site_code for t in self.targets if t.kind is TargetKind.SITE_AGENTS), None)

    @cached_property
    def final_announcement(self) -> Target:
        return Target(TargetKind.ANNOUNCEMENT, message=self.unavailable_message or self.closed_message)

    @cached_property
    def closed_announcement(self) -> Target:
        return Target(TargetKind.ANNOUNCEMENT, message=self.closed_message)

    @cached_property
    def holiday_announcement(self) -> Target:
        return Target(TargetKind.ANNOUNCEMENT, message=self.holiday_message or self.closed_message)


# --------------------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteStatus:
    """A site's state and its agents right now. ``endpoints`` are what to dial: E.164 numbers,
    ``client:…`` or ``sip:…`` addresses."""

    code: str
    state: SiteState = SiteState.NORMAL
    agents_available: int = 0
    endpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", SiteState(self.state))
        object.__setattr__(self, "endpoints", tuple(self.endpoints))


@dataclass(frozen=True)
class HomeAgentStatus:
    """Endpoints of the home agents who are available now."""

    endpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(self.endpoints))


@dataclass(frozen=True)
class Emergency:
    """Emergency mode, switched on by a supervisor or the JMA trigger; ignored from ``ends_at`` on.

    ``line`` is required for line scope, ``site_code`` for site scope.
    """

    scope: EmergencyScope
    announcement: Message
    ends_at: datetime | None = None
    line: str | None = None
    site_code: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", EmergencyScope(self.scope))
        if self.scope is EmergencyScope.LINE and not self.line:
            raise ValueError("a line emergency needs the line")
        if self.scope is EmergencyScope.SITE and not self.site_code:
            raise ValueError("a site emergency needs the site code")
        if self.ends_at is not None and self.ends_at.utcoffset() is None:
            raise ValueError("ends_at must be timezone-aware")

    def is_active(self, at: datetime) -> bool:
        return self.ends_at is None or at < self.ends_at

    def applies_to(self, line: str, home_site: str | None) -> bool:
        if self.scope is EmergencyScope.GLOBAL:
            return True
        if self.scope is EmergencyScope.SITE:
            return home_site is not None and self.site_code == home_site
        return self.line == line

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope.value,
            "line": self.line,
            "site": self.site_code,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "announcement": self.announcement.as_dict(),
        }


@dataclass(frozen=True)
class SplitShare:
    site_code: str
    weight: int


def stable_bucket(call_key: str, buckets: int) -> int:
    """A number in ``range(buckets)`` that depends only on ``call_key`` (unlike ``hash()``, which is salted
    per process), so every webhook for the same call lands in the same bucket on any worker."""
    digest = hashlib.blake2b(call_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


@dataclass(frozen=True)
class LineOverride:
    """A supervisor's reroute of one line: to another ``plan``, and/or traffic split across sites by weight
    (a single share moves the line to that site)."""

    line: str
    plan: Plan | None = None
    split: tuple[SplitShare, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "split", tuple(self.split))
        if any(share.weight < 1 for share in self.split):
            raise ValueError("split weights must be positive integers")
        if len({share.site_code for share in self.split}) != len(self.split):
            raise ValueError("a site appears twice in the split")

    @cached_property
    def total_weight(self) -> int:
        return sum(share.weight for share in self.split)

    def site_for(self, call_key: str | None) -> str:
        """The site a call falls on; without a call key, the site with the largest share (the first of equals)."""
        if not self.split:
            raise ValueError("this override does not split traffic")
        if call_key is None:
            return max(self.split, key=lambda share: share.weight).site_code
        bucket = stable_bucket(call_key, self.total_weight)
        for share in self.split:
            if bucket < share.weight:
                return share.site_code
            bucket -= share.weight
        raise AssertionError("bucket beyond the total weight")  # pragma: no cover

    def describe_split(self) -> str:
        return " / ".join(
            f"{share.site_code} {share.weight * 100 / self.total_weight:.0f}%" for share in self.split
        )


@dataclass(frozen=True)
class Snapshot:
    """Everything ``choose`` looks at besides the plan and the clock. ``queue_sizes``: callers waiting per
    queue name; ``overrides``: per line number."""

    sites: Mapping[str, SiteStatus] = field(default_factory=dict)
    home_agents: HomeAgentStatus = HomeAgentStatus()
    emergencies: tuple[Emergency, ...] = ()
    overrides: Mapping[str, LineOverride] = field(default_factory=dict)
    queue_sizes: Mapping[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# Decision
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    position: int
    target: Target
    decision: CandidateDecision
    reason: str
    endpoints: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        target = self.target
        return {
            "position": self.position,
            "kind": target.kind.value,
            "site": target.site_code,
            "queue": target.queue_name,
            "decision": self.decision.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RoutingDecision:
    """Where a call goes (``chosen``) and why, with every target of the line-up and its reason.

    ``at`` is the time asked about, in the plan's time zone. ``plan`` is the plan actually used (after an
    override). ``chosen`` None: nothing is left to try; hang up.
    """

    line: str
    at: datetime
    mode: Mode
    plan: Plan
    attempt: int
    candidates: tuple[Candidate, ...]
    chosen: Candidate | None
    emergency: Emergency | None = None
    split_site: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def next_attempt(self) -> int:
        """The ``attempt`` to pass when the chosen target did not take the call."""
        return self.chosen.position + 1 if self.chosen else len(self.candidates)

    @property
    def target(self) -> Target | None:
        return self.chosen.target if self.chosen else None

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self.chosen.endpoints if self.chosen else ()

    @property
    def skipped(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.decision is CandidateDecision.SKIP)

    def explain(self) -> dict[str, Any]:
        """JSON-serialisable account of the decision, as printed by ``lifeline route explain --json``."""
        chosen = self.chosen
        return {
            "line": self.line,
            "at": self.at.isoformat(),
            "timezone": self.plan.timezone,
            "plan": self.plan.name,
            "mode": self.mode.value,
            "attempt": self.attempt,
            "emergency": self.emergency.as_dict() if self.emergency else None,
            "split_site": self.split_site,
            "notes": list(self.notes),
            "targets": [candidate.as_dict() for candidate in self.candidates],
            "chosen": (
                {
                    "position": chosen.position,
                    "kind": chosen.target.kind.value,
                    "site": chosen.target.site_code,
                    "queue": chosen.target.queue_name,
                    "endpoints": list(chosen.endpoints),
                    "message": chosen.target.message.as_dict() if chosen.target.message else None,
                }
                if chosen
                else None
            ),
            "next_attempt": self.next_attempt,
        }


_UNMANNED_REASONS = {
    TargetKind.FAQ_MENU: "unmanned fallback: FAQ menu",
    TargetKind.VOICEMAIL: "unmanned fallback: voicemail",
    TargetKind.SMS_LINK: "unmanned fallback: SMS with the status page link",
    TargetKind.CALLBACK_REQUEST: "unmanned fallback: callback request",
    TargetKind.ANNOUNCEMENT: "announcement",
}


def choose(
    plan: Plan, snapshot: Snapshot, at: datetime, *, attempt: int = 0, call_key: str | None = None
) -> RoutingDecision:
    """Route a call to ``plan.line`` at ``at`` (timezone-aware); see the module docstring for the rules."""
    if at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    if attempt < 0:
        raise ValueError("attempt cannot be negative")
    line = plan.line
    notes: list[str] = []
    override = snapshot.overrides.get(line)
    if override is not None and override.plan is not None:
        plan = override.plan
        notes.append(f"line moved to plan {plan.name or plan.line} by override")
    targets = plan.ordered_targets
    split_site = None
    if override is not None and override.split:
        split_site = override.site_for(call_key)
        targets = _with_site_first(targets, split_site)
        how = "this call" if call_key is not None else "no call key, largest share"
        notes.append(f"traffic split {override.describe_split()}: {how} → {split_site}")

    local = at.astimezone(zone(plan.timezone))
    emergency = _active_emergency(snapshot.emergencies, line, plan.home_site, at)
    lineup: tuple[Target, ...]
    if emergency is not None:
        mode = Mode.EMERGENCY
        closed_reason = f"emergency mode ({emergency.scope.value})"
        lineup = (Target(TargetKind.ANNOUNCEMENT, message=emergency.announcement), *targets)
    elif local.date() in plan.holidays:
        mode = Mode.HOLIDAY
        closed_reason = f"holiday {local.date().isoformat()}"
        lineup = (plan.holiday_announcement, *targets)
    elif plan.business_hours is not None and not plan.business_hours.is_open(at):
        mode = Mode.CLOSED
        closed_reason = f"line closed: outside business hours {plan.business_hours.description}"
        lineup = (plan.closed_announcement, *targets)
    else:
        mode = Mode.OPEN
        closed_reason = ""
        lineup = (*targets, plan.final_announcement)

    last = len(lineup) - 1
    candidates = []
    chosen = None
    for position, target in enumerate(lineup):
        if position < attempt:
            candidate = Candidate(position, target, CandidateDecision.SKIP, "already passed in this call")
        elif closed_reason and target.is_human:
            candidate = Candidate(position, target, CandidateDecision.SKIP, closed_reason)
        else:
            decision, reason, endpoints = _evaluate(target, snapshot, at)
            if mode is not Mode.OPEN and position == 0:
                reason = f"{mode.value} announcement"
            elif mode is Mode.OPEN and position == last:
                reason = "unavailable message, then hang up: nobody before took the call"
            candidate = Candidate(position, target, decision, reason, endpoints)
            if chosen is None and decision is CandidateDecision.TRY:
                chosen = candidate
        candidates.append(candidate)

    return RoutingDecision(
        line=line,
        at=local,
        mode=mode,
        plan=plan,
        attempt=attempt,
        candidates=tuple(candidates),
        chosen=chosen,
        emergency=emergency,
        split_site=split_site,
        notes=tuple(notes),
    )


def _active_emergency(
    emergencies: tuple[Emergency, ...], line: str, home_site: str | None, at: datetime
) -> Emergency | None:
    if not emergencies:
        return None
    for scope in (EmergencyScope.GLOBAL, EmergencyScope.SITE, EmergencyScope.LINE):
        for emergency in emergencies:
            if emergency.scope is scope and emergency.is_active(at) and emergency.applies_to(line, home_site):
                return emergency
    return None


def _with_site_first(targets: tuple[Target, ...], site_code: str) -> tuple[Target, ...]:
    existing = next((t for t in targets if t.kind in SITE_KINDS and t.site_code == site_code), None)
    if existing is None:
        return (Target(TargetKind.SITE, site_code=site_code), *targets)
    return (existing, *(t for t in targets if t is not existing))


def _evaluate(
    target: Target, snapshot: Snapshot, at: datetime
) -> tuple[CandidateDecision, str, tuple[str, ...]]:
    hours = target.business_hours
    if hours is not None and not hours.is_open(at):
        return CandidateDecision.SKIP, f"outside business hours {hours.description}", ()
    kind = target.kind
    if kind in SITE_KINDS:
        return _evaluate_site(target, snapshot)
    if kind is TargetKind.HOME_AGENTS:
        endpoints = snapshot.home_agents.endpoints
        if not endpoints:
            return CandidateDecision.SKIP, "no home agent available", ()
        return CandidateDecision.TRY, f"{_agents(len(endpoints))} working from home available", endpoints
    if kind is TargetKind.QUEUE:
        return _evaluate_queue(target, snapshot)
    return CandidateDecision.TRY, _UNMANNED_REASONS[kind], ()


def _agents(count: int) -> str:
    return f"{count} agent" if count == 1 else f"{count} agents"


def _reachable_site(code: str, snapshot: Snapshot) -> SiteStatus | str:
    """The site's status, or why it cannot take calls."""
    site = snapshot.sites.get(code)
    if site is None:
        return f"site {code} has no status (treated as down)"
    if site.state in UNREACHABLE_STATES:
        return f"site {code} is {site.state.value}"
    return site


def _evaluate_site(target: Target, snapshot: Snapshot) -> tuple[CandidateDecision, str, tuple[str, ...]]:
    assert target.site_code is not None
    code = target.site_code
    site = _reachable_site(code, snapshot)
    if isinstance(site, str):
        return CandidateDecision.SKIP, site, ()
    if site.agents_available <= 0 and target.skip_when_unavailable:
        return CandidateDecision.SKIP, f"no agent available at {code} and skip_when_unavailable", ()
    if not site.endpoints:
        return CandidateDecision.SKIP, f"no agent endpoint to ring at {code}", ()
    if site.agents_available <= 0:
        reason = f"site {code} is {site.state.value}, no agent available (ringing anyway)"
    else:
        reason = f"site {code} is {site.state.value}, {_agents(site.agents_available)} available"
    return CandidateDecision.TRY, reason, site.endpoints


def _evaluate_queue(target: Target, snapshot: Snapshot) -> tuple[CandidateDecision, str, tuple[str, ...]]:
    assert target.queue_name is not None
    code = target.site_code
    if code is not None:
        site = _reachable_site(code, snapshot)
        if isinstance(site, str):
            return CandidateDecision.SKIP, site, ()
        if site.agents_available <= 0 and target.skip_when_unavailable:
            return CandidateDecision.SKIP, f"no agent available at {code} and skip_when_unavailable", ()
    waiting = snapshot.queue_sizes.get(target.queue_name, 0)
    capacity = target.queue_capacity
    if capacity is None:
        return CandidateDecision.TRY, f"queue {target.queue_name}: {waiting} waiting", ()
    if waiting >= capacity:
        return CandidateDecision.SKIP, f"queue full {waiting}/{capacity}", ()
    return CandidateDecision.TRY, f"queue {target.queue_name}: {waiting}/{capacity} waiting", ()
