"""The channel ladder: which channel and contact point to try next for one person, and when.

Pure: the caller passes the ladder definition, the person's contact points (in their order), the attempts made so
far and ``now``; nothing here reads a clock or a database. The dispatcher stores the returned position and
``next_action_at`` on the recipient row and creates one attempt per :class:`Send`.

A ladder is a list of steps run in order, repeated ``cycles`` times::

    step 0: sms + email to the first phone / e-mail, then wait 5 min for an answer
    step 1: voice call to the first phone, wait 5 min
    step 2: voice + sms to the next phone, wait 5 min
    (pause ``cycle_gap_minutes``, then the whole list again)

A step that has nobody to reach (no second phone, channel not chosen for this broadcast, the number failed for
good) is skipped at once rather than waited for. When the last step's wait is over the person is unreached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

Channel = Literal["sms", "email", "voice"]
CHANNELS: tuple[Channel, ...] = ("sms", "email", "voice")

PHONE_KINDS = frozenset({"work_phone", "private_phone", "family_phone"})
EMAIL_KINDS = frozenset({"work_email", "private_email", "family_email"})
FAMILY_KINDS = frozenset({"family_phone", "family_email"})


class LadderError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Step:
    channels: tuple[Channel, ...]
    wait_minutes: float = 5.0
    # Which phone / e-mail of the person: 0 = the first, 1 = the next one…; None = every one (contact checks).
    contact: int | None = 0

    def as_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "wait_minutes": self.wait_minutes, "contact": self.contact}


@dataclass(frozen=True)
class Ladder:
    steps: tuple[Step, ...]
    cycles: int = 1
    cycle_gap_minutes: float = 10.0
    escalate_to_managers: bool = True
    # A call that ends busy / unanswered moves the ladder on after this pause instead of the step's full wait.
    after_failed_call_minutes: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.as_dict() for s in self.steps],
            "cycles": self.cycles,
            "cycle_gap_minutes": self.cycle_gap_minutes,
            "escalate_to_managers": self.escalate_to_managers,
            "after_failed_call_minutes": self.after_failed_call_minutes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "ladder") -> Ladder:
        if not isinstance(data, Mapping):
            raise LadderError(path, "must be an object with steps")
        unknown = set(data) - {
            "steps",
            "cycles",
            "cycle_gap_minutes",
            "escalate_to_managers",
            "after_failed_call_minutes",
        }
        if unknown:
            raise LadderError(path, f"unknown keys {sorted(unknown)}")
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise LadderError(f"{path}.steps", "must be a non-empty list")
        steps = tuple(_step(raw, f"{path}.steps[{i}]") for i, raw in enumerate(raw_steps))
        cycles = data.get("cycles", 1)
        if not isinstance(cycles, int) or isinstance(cycles, bool) or not 1 <= cycles <= 5:
            raise LadderError(f"{path}.cycles", f"must be a whole number from 1 to 5, got {cycles!r}")
        return cls(
            steps=steps,
            cycles=cycles,
            cycle_gap_minutes=_minutes(data.get("cycle_gap_minutes", 10), f"{path}.cycle_gap_minutes"),
            escalate_to_managers=_bool(
                data.get("escalate_to_managers", True), f"{path}.escalate_to_managers"
            ),
            after_failed_call_minutes=_minutes(
                data.get("after_failed_call_minutes", 1), f"{path}.after_failed_call_minutes"
            ),
        )


def _minutes(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 24 * 60:
        raise LadderError(path, f"must be minutes between 0 and 1440, got {value!r}")
    return float(value)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise LadderError(path, f"must be true or false, got {value!r}")
    return value


def _step(raw: Any, path: str) -> Step:
    if not isinstance(raw, Mapping):
        raise LadderError(path, "must be an object with channels and wait_minutes")
    unknown = set(raw) - {"channels", "wait_minutes", "contact"}
    if unknown:
        raise LadderError(path, f"unknown keys {sorted(unknown)}")
    channels = raw.get("channels")
    if not isinstance(channels, list) or not channels:
        raise LadderError(f"{path}.channels", "must be a non-empty list of sms, email, voice")
    for channel in channels:
        if channel not in CHANNELS:
            raise LadderError(f"{path}.channels", f"unknown channel {channel!r} (sms, email, voice)")
    contact = raw.get("contact", 0)
    if contact is not None and (isinstance(contact, bool) or not isinstance(contact, int) or contact < 0):
        raise LadderError(f"{path}.contact", f"must be 0, 1, 2… or null (every contact), got {contact!r}")
    return Step(
        channels=tuple(dict.fromkeys(channels)),
        wait_minutes=_minutes(raw.get("wait_minutes", 5), f"{path}.wait_minutes"),
        contact=contact,
    )


@dataclass(frozen=True)
class Contact:
    id: int
    kind: str  # core.directory.models.ContactKind value

    @property
    def is_phone(self) -> bool:
        return self.kind in PHONE_KINDS

    @property
    def is_email(self) -> bool:
        return self.kind in EMAIL_KINDS

    @property
    def is_family(self) -> bool:
        return self.kind in FAMILY_KINDS


@dataclass(frozen=True)
class PastAttempt:
    channel: Channel
    contact_id: int
    cycle: int
    step: int
    failed_for_good: bool = False  # e.g. Twilio 21211 "invalid number": never try this channel there again


@dataclass(frozen=True)
class Send:
    channel: Channel
    contact_id: int


@dataclass(frozen=True)
class Decision:
    sends: tuple[Send, ...]
    cycle: int  # position of the *next* step to run
    step: int
    next_action_at: datetime | None  # None: the ladder is over
    ran_cycle: int = 0  # the step these sends belong to
    ran_step: int = 0

    @property
    def finished(self) -> bool:
        return self.next_action_at is None


def _targets(
    step: Step,
    contacts: Sequence[Contact],
    *,
    channels: Iterable[Channel],
    include_family: bool,
    dead: set[tuple[Channel, int]],
    done: set[tuple[Channel, int]],
) -> tuple[Send, ...]:
    usable = [c for c in contacts if include_family or not c.is_family]
    phones = [c for c in usable if c.is_phone]
    emails = [c for c in usable if c.is_email]
    allowed = set(channels)
    sends: list[Send] = []
    for channel in step.channels:
        if channel not in allowed:
            continue
        pool = emails if channel == "email" else phones
        chosen = pool if step.contact is None else pool[step.contact : step.contact + 1]
        for contact in chosen:
            key = (channel, contact.id)
            if key in dead or key in done:
                continue
            sends.append(Send(channel, contact.id))
    return tuple(sends)


def decide(
    ladder: Ladder,
    contacts: Sequence[Contact],
    attempts: Sequence[PastAttempt],
    *,
    cycle: int,
    step: int,
    now: datetime,
    channels: Iterable[Channel] = CHANNELS,
    include_family: bool = False,
) -> Decision:
    """Run the step at (``cycle``, ``step``) — or the first later one that reaches someone — and say what's next."""
    channels = tuple(channels)
    dead = {(a.channel, a.contact_id) for a in attempts if a.failed_for_good}
    while cycle < ladder.cycles:
        if step >= len(ladder.steps):
            cycle, step = cycle + 1, 0
            continue
        current = ladder.steps[step]
        # A retried dispatcher run must not send the same step twice.
        done = {(a.channel, a.contact_id) for a in attempts if a.cycle == cycle and a.step == step}
        sends = _targets(
            current, contacts, channels=channels, include_family=include_family, dead=dead, done=done
        )
        if not sends:
            step += 1
            continue
        wait = timedelta(minutes=current.wait_minutes)
        next_cycle, next_step = cycle, step + 1
        if next_step >= len(ladder.steps):
            next_cycle, next_step = cycle + 1, 0
            if next_cycle < ladder.cycles:
                wait += timedelta(minutes=ladder.cycle_gap_minutes)
        return Decision(
            sends=sends,
            cycle=next_cycle,
            step=next_step,
            next_action_at=now + wait,
            ran_cycle=cycle,
            ran_step=step,
        )
    return Decision(sends=(), cycle=cycle, step=0, next_action_at=None, ran_cycle=cycle, ran_step=0)


@dataclass
class FirstSteps:
    """Every new person's first ladder step, as the dispatcher's first run would take it — worked out once per
    pattern of contact kinds.

    For someone just added to a broadcast nothing has been sent yet, so :func:`decide` at the start of the ladder
    depends on nothing but the kinds of their contact points, in their order: two people whose lists read
    ``work_phone, work_email`` get the same channels, to the same positions in their lists, and the same next
    position and time. ``start_broadcast`` uses this to write each person's recipient row already in that position,
    together with their first attempts, in the same transaction.
    """

    ladder: Ladder
    now: datetime
    channels: tuple[Channel, ...] = CHANNELS
    include_family: bool = False
    _by_kinds: dict[tuple[str, ...], Decision] = field(default_factory=dict, init=False, repr=False)

    def pattern(self, kinds: Sequence[str]) -> Decision:
        """The first step for contact points of these ``kinds``; each send's ``contact_id`` is an index into them."""
        key = tuple(kinds)
        decision = self._by_kinds.get(key)
        if decision is None:
            decision = self._by_kinds[key] = decide(
                self.ladder,
                [Contact(id=index, kind=kind) for index, kind in enumerate(key)],
                (),
                cycle=0,
                step=0,
                now=self.now,
                channels=self.channels,
                include_family=self.include_family,
            )
        return decision


def after_failed_call(ladder: Ladder, *, now: datetime, next_action_at: datetime | None) -> datetime | None:
    """A call ended busy / unanswered / failed: move on sooner than the step's full wait, never later."""
    if next_action_at is None:
        return None
    return min(next_action_at, now + timedelta(minutes=ladder.after_failed_call_minutes))
