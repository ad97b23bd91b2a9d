"""Scripted people: how each number (or e-mail address, ``client:`` or ``sip:`` identity) behaves.

A scenario is a JSON or YAML document::

    seed: 7                       # makes random choices reproducible (per number: hash of seed + number)
    network:                      # optional knobs of the network itself
      cps: 1                      # calls leave at most this many per second (Twilio's default account limit); null = no limit
      ring_s: 1                   # seconds from "initiated" to "ringing"
      sms_delivery_s: 2           # seconds from "sent" to "delivered"
      duplicate_callbacks: 0.0    # probability a status callback is delivered twice
      reorder_callbacks: 0.0      # probability a status callback is held back 2-10 s (so later ones overtake it)
    default:                      # anyone not listed under `numbers`
      mix:                        # a weighted random pick per person (stable for a given seed)
        - {weight: 70, behaviour: {sms_link: {after_s: [30, 300], answers: ["1", "2"]}}}
        - {weight: 15, behaviour: {answer_call: {after_s: 5, digits: ["1", "2"]}}}
        - {weight: 10, behaviour: never}
        - {weight: 5, behaviour: invalid}
    numbers:                      # first match wins: exact key, then patterns in file order
      "+819000000001": {answer_call: {after_s: 2, digits: ["2"]}}
      "+81900000002*": busy                       # fnmatch pattern
      "re:^\\+1555010[0-4]": voicemail            # regular expression (re.match)
      "client:agent-*": {answer_call: {after_s: 4, talk_s: 90}}
      "*@example.com": {email_link: {after_s: 60, answers: ["1"]}}

A behaviour is a shorthand string or an object combining facets (a time ``T`` is seconds or ``[low, high]``,
picked uniformly per person):

* ``answer_call: {after_s: T, digits: [...], talk_s: T, speak_s: T, hangup_after_s: T}`` — picks up after
  ``after_s``; each ``<Gather>`` consumes the next entry of ``digits`` (e.g. ``"2"``, ``"123#"``; ``""`` = says
  nothing; when the list is used up the person presses nothing); stays ``talk_s`` on a bridged call (``<Dial>``);
  speaks ``speak_s`` into a ``<Record>``; optionally hangs up ``hangup_after_s`` after answering (an impatient
  caller in a queue).
* ``voicemail: {after_s: T}`` (or ``voicemail: true``) — an answering machine picks up; machine detection
  reports ``machine_start`` (``machine_end_beep`` with ``DetectMessageEnd``), no keys are ever pressed.
* ``busy: true``, ``no_answer: true``, ``invalid: true`` — the line is busy; rings until the timeout; the number
  does not exist (calls fail, SMS are undelivered with error 30003).
* ``sms_link: {after_s: T, answers: [...]}`` / ``email_link: {...}`` — opens the first link of an SMS / e-mail
  after ``after_s`` and submits the first POST form, choosing radio options in order from ``answers`` (falls
  back to ``digits``; a missing answer picks the first option).
* ``sms_status: delivered | undelivered | failed`` — the final delivery status of SMS to this person.

Shorthands: ``answer`` (pick up after 3 s), ``never`` / ``no_answer`` (never picks up, never opens links),
``busy``, ``voicemail``, ``invalid``. An object without a voice facet does not pick up calls.

Without a scenario every person picks up after 3 s, presses ``1`` at the first menu, and opens SMS/e-mail links
after 20 s choosing the first option of every question.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

VoiceBehaviour = Literal["answer", "no_answer", "busy", "voicemail", "invalid"]
SmsOutcome = Literal["delivered", "undelivered", "failed"]


class ScenarioError(ValueError):
    """The scenario document is malformed (message says where)."""


@dataclass(frozen=True)
class Person:
    """One simulated person, with every random choice already made."""

    key: str
    voice: VoiceBehaviour = "answer"
    answer_after_s: float = 3.0
    digits: tuple[str, ...] = ("1",)
    talk_s: float = 20.0
    speak_s: float = 4.0
    hangup_after_s: float | None = None
    sms_status: SmsOutcome = "delivered"
    sms_link_after_s: float | None = 20.0
    email_link_after_s: float | None = 20.0
    web_answers: tuple[str, ...] = ()

    @property
    def form_answers(self) -> tuple[str, ...]:
        return self.web_answers or self.digits

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "voice": self.voice,
            "answer_after_s": self.answer_after_s,
            "digits": list(self.digits),
            "talk_s": self.talk_s,
            "speak_s": self.speak_s,
            "hangup_after_s": self.hangup_after_s,
            "sms_status": self.sms_status,
            "sms_link_after_s": self.sms_link_after_s,
            "email_link_after_s": self.email_link_after_s,
            "web_answers": list(self.web_answers),
        }


@dataclass(frozen=True)
class NetworkSettings:
    cps: float | None = None
    ring_s: float = 1.0
    sms_delivery_s: float = 2.0
    duplicate_callbacks: float = 0.0
    reorder_callbacks: float = 0.0


_DEFAULT_SPEC: Mapping[str, Any] = {
    "answer_call": {"after_s": 3, "digits": ["1"]},
    "sms_link": {"after_s": 20},
    "email_link": {"after_s": 20},
}
_SHORTHANDS: Mapping[str, Mapping[str, Any]] = {
    "answer": {"answer_call": {}},
    "never": {"no_answer": True},
    "no_answer": {"no_answer": True},
    "busy": {"busy": True},
    "voicemail": {"voicemail": True},
    "invalid": {"invalid": True},
}
_FACETS = {
    "answer_call",
    "voicemail",
    "busy",
    "no_answer",
    "invalid",
    "sms_link",
    "email_link",
    "sms_status",
}


@dataclass(frozen=True)
class _Rule:
    pattern: str
    spec: Any

    @property
    def is_pattern(self) -> bool:
        return self.pattern.startswith("re:") or any(ch in self.pattern for ch in "*?[")

    def matches(self, key: str) -> bool:
        if self.pattern.startswith("re:"):
            return re.match(self.pattern[3:], key) is not None
        if any(ch in self.pattern for ch in "*?["):
            return fnmatch.fnmatchcase(key, self.pattern)
        return key == self.pattern


@dataclass
class Scenario:
    seed: int = 0
    default: Any = field(default_factory=lambda: dict(_DEFAULT_SPEC))
    rules: list[_Rule] = field(default_factory=list)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    _cache: dict[str, Person] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        if not isinstance(data, Mapping):
            raise ScenarioError("a scenario is a mapping with seed/default/numbers/network")
        unknown = set(data) - {"seed", "default", "numbers", "network"}
        if unknown:
            raise ScenarioError(f"unknown scenario keys: {sorted(unknown)}")
        numbers = data.get("numbers") or {}
        if not isinstance(numbers, Mapping):
            raise ScenarioError("'numbers' must map a number or pattern to a behaviour")
        scenario = cls(
            seed=int(data.get("seed", 0)),
            default=data.get("default", dict(_DEFAULT_SPEC)),
            rules=[_Rule(str(k), v) for k, v in numbers.items()],
            network=_network(data.get("network") or {}),
        )
        # Fail at load time, not in the middle of a drill: resolve every spec once.
        for rule in scenario.rules:
            scenario._build("+0", rule.spec, f"numbers[{rule.pattern!r}]")
        scenario._build("+0", scenario.default, "default")
        return scenario

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | None) -> Scenario:
        if source is None:
            return cls()
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        path = Path(source)
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) if path.suffix.lower() in {".yaml", ".yml"} else json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ScenarioError(
                f"{path.name} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}"
            ) from exc
        return cls.from_dict(data or {})

    def person(self, key: str) -> Person:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        exact = next((rule.spec for rule in self.rules if rule.pattern == key), None)
        patterns = (rule.spec for rule in self.rules if rule.is_pattern and rule.matches(key))
        spec = exact if exact is not None else next(patterns, self.default)
        person = self._build(key, spec, key)
        self._cache[key] = person
        return person

    def _rng(self, key: str) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def _build(self, key: str, spec: Any, where: str) -> Person:
        rng = self._rng(key)
        spec = _pick_from_mix(spec, rng, where)
        if isinstance(spec, str):
            if spec not in _SHORTHANDS:
                raise ScenarioError(f"{where}: unknown behaviour {spec!r} (one of {sorted(_SHORTHANDS)})")
            spec = _SHORTHANDS[spec]
        if not isinstance(spec, Mapping):
            raise ScenarioError(f"{where}: a behaviour is a string or a mapping, not {type(spec).__name__}")
        unknown = set(spec) - _FACETS
        if unknown:
            raise ScenarioError(
                f"{where}: unknown behaviour keys {sorted(unknown)} (known: {sorted(_FACETS)})"
            )
        person = Person(
            key=key,
            voice="no_answer",
            digits=(),
            sms_link_after_s=None,
            email_link_after_s=None,
        )
        answer = spec.get("answer_call")
        if answer is not None:
            answer = _facet(answer, where, "answer_call")
            person = replace(
                person,
                voice="answer",
                answer_after_s=_seconds(answer.get("after_s", 3), rng, where),
                digits=_strings(answer.get("digits", []), where),
                talk_s=_seconds(answer.get("talk_s", 20), rng, where),
                speak_s=_seconds(answer.get("speak_s", 4), rng, where),
                hangup_after_s=(
                    _seconds(answer["hangup_after_s"], rng, where)
                    if answer.get("hangup_after_s") is not None
                    else None
                ),
            )
        if spec.get("voicemail"):
            vm = _facet(spec["voicemail"], where, "voicemail")
            person = replace(
                person, voice="voicemail", answer_after_s=_seconds(vm.get("after_s", 15), rng, where)
            )
        if spec.get("busy"):
            person = replace(person, voice="busy")
        if spec.get("no_answer"):
            person = replace(person, voice="no_answer")
        if spec.get("invalid"):
            person = replace(person, voice="invalid", sms_status="undelivered")
        if "sms_status" in spec:
            status = spec["sms_status"]
            if status not in ("delivered", "undelivered", "failed"):
                raise ScenarioError(f"{where}: sms_status must be delivered, undelivered or failed")
            person = replace(person, sms_status=status)
        answers: tuple[str, ...] = ()
        for facet in ("sms_link", "email_link"):
            if spec.get(facet) is None or spec.get(facet) is False:
                continue
            link = _facet(spec[facet], where, facet)
            after = _seconds(link.get("after_s", 20), rng, where)
            answers = answers or _strings(link.get("answers", []), where)
            if facet == "sms_link":
                person = replace(person, sms_link_after_s=after)
            else:
                person = replace(person, email_link_after_s=after)
        return replace(person, web_answers=answers)


def _pick_from_mix(spec: Any, rng: random.Random, where: str) -> Any:
    if not (isinstance(spec, Mapping) and "mix" in spec):
        return spec
    entries = spec["mix"]
    if not isinstance(entries, Sequence) or not entries:
        raise ScenarioError(f"{where}: 'mix' is a non-empty list of {{weight, behaviour}}")
    weights = []
    for entry in entries:
        if not isinstance(entry, Mapping) or "behaviour" not in entry:
            raise ScenarioError(f"{where}: each mix entry needs a 'behaviour'")
        weight = float(entry.get("weight", 1))
        if weight < 0:
            raise ScenarioError(f"{where}: mix weights cannot be negative")
        weights.append(weight)
    if sum(weights) <= 0:
        raise ScenarioError(f"{where}: mix weights add up to zero")
    chosen = rng.choices(list(entries), weights=weights, k=1)[0]
    return chosen["behaviour"]


def _facet(value: Any, where: str, name: str) -> Mapping[str, Any]:
    if value is True:
        return {}
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}: {name} takes a mapping (or true)")
    return value


def _seconds(value: Any, rng: random.Random, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ScenarioError(f"{where}: durations cannot be negative")
        return float(value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        low, high = (float(v) for v in value)
        if low < 0 or high < low:
            raise ScenarioError(f"{where}: a range is [low, high] with 0 <= low <= high")
        return rng.uniform(low, high)
    raise ScenarioError(f"{where}: a duration is seconds or [low, high], not {value!r}")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str | int):
        return (str(value),)
    if not isinstance(value, Sequence):
        raise ScenarioError(f"{where}: expected a list of keys/answers")
    return tuple(str(v) for v in value)


def _network(data: Mapping[str, Any]) -> NetworkSettings:
    if not isinstance(data, Mapping):
        raise ScenarioError("'network' must be a mapping")
    unknown = set(data) - {"cps", "ring_s", "sms_delivery_s", "duplicate_callbacks", "reorder_callbacks"}
    if unknown:
        raise ScenarioError(f"unknown network keys: {sorted(unknown)}")
    cps = data.get("cps")
    return NetworkSettings(
        cps=float(cps) if cps else None,
        ring_s=float(data.get("ring_s", 1.0)),
        sms_delivery_s=float(data.get("sms_delivery_s", 2.0)),
        duplicate_callbacks=float(data.get("duplicate_callbacks", 0.0)),
        reorder_callbacks=float(data.get("reorder_callbacks", 0.0)),
    )
