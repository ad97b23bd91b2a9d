"""Decide what one JMA bulletin means for one organization: start, hold, widen, cancel, or leave it be — and why.

Pure: the caller passes the bulletin, the organization's rule set, what it knows (sites, where staff live, the
state of recent events) and the current time; nothing here reads a clock or a database.

``evaluate`` returns a list of :class:`Decision`, never empty: one decision per scenario template the bulletin
concerns (a weather bulletin can fire heavy-rain and other templates at once), or a single ``suppress`` that says
why nothing happens. Every decision carries a specific, human-readable reason for the audit log.

Audience semantics (for the service that resolves people): a person is in an :class:`Audience` when it is
``everyone``, or their site is in ``sites``, or their site's prefecture or their home prefecture is in
``prefectures``. A ``widen`` audience holds only what is new; the service must still skip anyone already in the
broadcast, so nobody is called twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from ivr.jma.parse import (
    INTENSITY_SCALE,
    Bulletin,
    PrefectureIntensity,
    intensity_rank,
    normalize_intensity,
)

__all__ = [
    "TRIGGER_DATA_TYPES",
    "Audience",
    "Decision",
    "EventState",
    "IntensityRule",
    "OrganizationContext",
    "RuleSet",
    "RuleSetError",
    "Site",
    "TsunamiRule",
    "WarningRule",
    "default_ruleset",
    "effective_intensity",
    "evaluate",
]

Scope = Literal["site_prefectures", "staff_home_prefectures", "everyone"]
Action = Literal["start", "hold", "widen", "cancel", "notify_only", "suppress", "replace"]
RealOrDrill = Literal["real", "drill"]
EventStatus = Literal["held", "sent", "cancelled"]

SCOPES: tuple[str, ...] = ("site_prefectures", "staff_home_prefectures", "everyone")
TSUNAMI_KINDS: tuple[str, ...] = ("大津波警報", "津波警報", "津波注意報", "津波予報（若干の海面変動）")
MAX_HOLD_MINUTES = 10
MAX_AFTERSHOCK_WINDOW_HOURS = 168

# Only these carry what the rules read. 震源に関する情報 (VXSE52) shares the EventID of the intensity reports, so
# letting its 取消 through would cancel a broadcast that JMA never withdrew.
TRIGGER_DATA_TYPES: dict[str, frozenset[str]] = {
    "earthquake": frozenset({"VXSE51", "VXSE53"}),
    "tsunami": frozenset({"VTSE41"}),
    "weather": frozenset({"VPWW53", "VPWW54", *(f"VPWW{n}" for n in range(55, 62))}),
}

_UNREPORTED_FLOOR = "5-"

# Demo organization (sites TKY Tokyo, OSA Osaka, FUK Fukuoka) tsunami forecast areas (津波予報区) on their coasts.
DEMO_TSUNAMI_AREAS: dict[str, frozenset[str]] = {
    "TKY": frozenset({"312"}),  # 東京湾内湾
    "OSA": frozenset({"510"}),  # 大阪府
    "FUK": frozenset({"710", "711", "712"}),  # 福岡県瀬戸内海沿岸, 福岡県日本海沿岸, 有明・八代海
}


class RuleSetError(ValueError):
    """A rule set that cannot be used; ``field`` names the offending field (``intensity_rules[0].scope``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def within(self, prefix: str) -> RuleSetError:
        return RuleSetError(f"{prefix}.{self.field}", self.message)


# --- validation helpers ----------------------------------------------------------------------------------------


def _require_str(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RuleSetError(name, f"must be a non-empty text, got {value!r}")
    return value.strip()


def _require_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise RuleSetError(name, f"must be true or false, got {value!r}")
    return value


def _require_codes(name: str, value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise RuleSetError(name, f"must be a list of codes, got {value!r}")
    codes: set[str] = set()
    for index, code in enumerate(value):
        codes.add(_require_str(f"{name}[{index}]", code))
    return frozenset(codes)


def _require_mapping(name: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RuleSetError(name, f"must be an object, got {type(value).__name__}")
    return value


def _reject_unknown_keys(name: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(str(key) for key in data if key not in set(allowed))
    if unknown:
        prefix = f"{name}." if name else ""
        raise RuleSetError(f"{prefix}{unknown[0]}", "is not a known field")


def _build(prefix: str, factory: Any, **kwargs: Any) -> Any:
    try:
        return factory(**kwargs)
    except RuleSetError as exc:
        raise exc.within(prefix) from None


# --- rules -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntensityRule:
    """Intensity at or above ``min_intensity`` in a prefecture in scope → ``template`` to that prefecture's people.

    Scope ``everyone`` fires on any prefecture and sends to everyone in the organization.
    """

    min_intensity: str = "5-"
    scope: Scope = "site_prefectures"
    template: str = "earthquake"

    def __post_init__(self) -> None:
        normalized = normalize_intensity(self.min_intensity) if isinstance(self.min_intensity, str) else None
        if normalized is None:
            raise RuleSetError(
                "min_intensity",
                f"{self.min_intensity!r} is not a JMA intensity ({', '.join(INTENSITY_SCALE)})",
            )
        object.__setattr__(self, "min_intensity", normalized)
        if self.scope not in SCOPES:
            raise RuleSetError("scope", f"{self.scope!r} is not one of {', '.join(SCOPES)}")
        object.__setattr__(self, "template", _require_str("template", self.template))

    def to_dict(self) -> dict[str, Any]:
        return {"min_intensity": self.min_intensity, "scope": self.scope, "template": self.template}

    @classmethod
    def from_dict(cls, data: object, path: str) -> IntensityRule:
        mapping = _require_mapping(path, data)
        _reject_unknown_keys(path, mapping, ("min_intensity", "scope", "template"))
        return cast(IntensityRule, _build(path, cls, **mapping))


@dataclass(frozen=True)
class TsunamiRule:
    """One of ``kinds`` on a forecast area near a site → ``template`` to that site's people."""

    # site code → 津波予報区 codes of the coasts that matter for that site
    site_areas: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    kinds: frozenset[str] = frozenset({"大津波警報", "津波警報"})
    template: str = "tsunami"

    def __post_init__(self) -> None:
        areas = _require_mapping("site_areas", self.site_areas)
        cleaned = {
            _require_str("site_areas", site): _require_codes(f"site_areas.{site}", codes)
            for site, codes in areas.items()
        }
        object.__setattr__(self, "site_areas", cleaned)
        kinds = _require_codes("kinds", self.kinds)
        if not kinds:
            raise RuleSetError("kinds", "must name at least one tsunami kind")
        for kind in sorted(kinds):
            if kind not in TSUNAMI_KINDS:
                raise RuleSetError(
                    "kinds", f"{kind!r} is not a JMA tsunami kind ({', '.join(TSUNAMI_KINDS)})"
                )
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "template", _require_str("template", self.template))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kinds": sorted(self.kinds, key=TSUNAMI_KINDS.index),
            "site_areas": {site: sorted(codes) for site, codes in sorted(self.site_areas.items())},
            "template": self.template,
        }

    @classmethod
    def from_dict(cls, data: object, path: str) -> TsunamiRule:
        mapping = _require_mapping(path, data)
        _reject_unknown_keys(path, mapping, ("kinds", "site_areas", "template"))
        return cast(TsunamiRule, _build(path, cls, **mapping))


@dataclass(frozen=True)
class WarningRule:
    """A weather warning whose JMA name contains ``kind_contains`` in a site's municipality → ``template``."""

    kind_contains: str = "特別警報"
    template: str = "heavy_rain"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind_contains", _require_str("kind_contains", self.kind_contains))
        object.__setattr__(self, "template", _require_str("template", self.template))

    def to_dict(self) -> dict[str, Any]:
        return {"kind_contains": self.kind_contains, "template": self.template}

    @classmethod
    def from_dict(cls, data: object, path: str) -> WarningRule:
        mapping = _require_mapping(path, data)
        _reject_unknown_keys(path, mapping, ("kind_contains", "template"))
        return cast(WarningRule, _build(path, cls, **mapping))


_RULESET_KEYS = (
    "version",
    "allow_drill",
    "hold_minutes",
    "aftershock_window_hours",
    "intensity_rules",
    "tsunami_rules",
    "warning_rules",
)


@dataclass(frozen=True)
class RuleSet:
    intensity_rules: tuple[IntensityRule, ...] = ()
    tsunami_rules: tuple[TsunamiRule, ...] = ()
    warning_rules: tuple[WarningRule, ...] = ()
    # 訓練 bulletins start drill broadcasts only when the organization opted in.
    allow_drill: bool = False
    hold_minutes: int = 0
    # A different earthquake this soon after one that started a broadcast is treated as an aftershock; 0 disables.
    aftershock_window_hours: float = 6.0

    def __post_init__(self) -> None:
        _require_bool("allow_drill", self.allow_drill)
        if isinstance(self.hold_minutes, bool) or not isinstance(self.hold_minutes, int):
            raise RuleSetError(
                "hold_minutes", f"must be a whole number of minutes, got {self.hold_minutes!r}"
            )
        if not 0 <= self.hold_minutes <= MAX_HOLD_MINUTES:
            raise RuleSetError(
                "hold_minutes", f"must be between 0 and {MAX_HOLD_MINUTES}, got {self.hold_minutes}"
            )
        window = self.aftershock_window_hours
        if isinstance(window, bool) or not isinstance(window, int | float) or window != window:
            raise RuleSetError("aftershock_window_hours", f"must be a number of hours, got {window!r}")
        if not 0 <= window <= MAX_AFTERSHOCK_WINDOW_HOURS:
            raise RuleSetError(
                "aftershock_window_hours",
                f"must be between 0 and {MAX_AFTERSHOCK_WINDOW_HOURS}, got {window}",
            )
        for name, kind in (
            ("intensity_rules", IntensityRule),
            ("tsunami_rules", TsunamiRule),
            ("warning_rules", WarningRule),
        ):
            rules = getattr(self, name)
            if not isinstance(rules, tuple | list):
                raise RuleSetError(name, "must be a list of rules")
            for index, rule in enumerate(rules):
                if not isinstance(rule, kind):
                    raise RuleSetError(f"{name}[{index}]", f"must be a {kind.__name__}")
            object.__setattr__(self, name, tuple(rules))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "allow_drill": self.allow_drill,
            "hold_minutes": self.hold_minutes,
            "aftershock_window_hours": self.aftershock_window_hours,
            "intensity_rules": [rule.to_dict() for rule in self.intensity_rules],
            "tsunami_rules": [rule.to_dict() for rule in self.tsunami_rules],
            "warning_rules": [rule.to_dict() for rule in self.warning_rules],
        }

    @classmethod
    def from_dict(cls, data: object) -> RuleSet:
        """Build from the JSON shape of :meth:`to_dict`; RuleSetError names the first bad field."""
        mapping = _require_mapping("ruleset", data)
        _reject_unknown_keys("", mapping, _RULESET_KEYS)
        version = mapping.get("version", 1)
        if version != 1:
            raise RuleSetError("version", f"unsupported rule-set version {version!r} (expected 1)")

        def rules(name: str, kind: Any) -> tuple[Any, ...]:
            items = mapping.get(name, [])
            if not isinstance(items, list):
                raise RuleSetError(name, f"must be a list, got {type(items).__name__}")
            return tuple(kind.from_dict(item, f"{name}[{index}]") for index, item in enumerate(items))

        return cls(
            intensity_rules=rules("intensity_rules", IntensityRule),
            tsunami_rules=rules("tsunami_rules", TsunamiRule),
            warning_rules=rules("warning_rules", WarningRule),
            allow_drill=mapping.get("allow_drill", False),
            hold_minutes=mapping.get("hold_minutes", 0),
            aftershock_window_hours=mapping.get("aftershock_window_hours", 6.0),
        )


def default_ruleset(tsunami_areas_by_site: Mapping[str, Iterable[str]] | None = None) -> RuleSet:
    """The demo organization's rules (sites in Tokyo 13, Osaka 27, Fukuoka 40).

    5弱 or more where a site is or where staff live → earthquake template to that prefecture's people; 7 anywhere →
    everyone; 大津波警報/津波警報 on a site's coast → tsunami; any 特別警報 in a site's municipality → heavy_rain.
    """
    areas = DEMO_TSUNAMI_AREAS if tsunami_areas_by_site is None else tsunami_areas_by_site
    return RuleSet(
        intensity_rules=(
            IntensityRule(min_intensity="5-", scope="site_prefectures", template="earthquake"),
            IntensityRule(min_intensity="5-", scope="staff_home_prefectures", template="earthquake"),
            IntensityRule(min_intensity="7", scope="everyone", template="earthquake"),
        ),
        tsunami_rules=(
            TsunamiRule(
                site_areas={site: frozenset(codes) for site, codes in areas.items()},
                kinds=frozenset({"大津波警報", "津波警報"}),
                template="tsunami",
            ),
        ),
        warning_rules=(WarningRule(kind_contains="特別警報", template="heavy_rain"),),
    )


# --- context and decisions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    code: str
    prefecture_code: str
    municipality_codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Audience:
    everyone: bool = False
    prefectures: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()

    @property
    def is_empty(self) -> bool:
        return not (self.everyone or self.prefectures or self.sites)

    def union(self, other: Audience) -> Audience:
        if self.everyone or other.everyone:
            return Audience(everyone=True)
        return Audience(
            everyone=self.everyone or other.everyone,
            prefectures=self.prefectures | other.prefectures,
            sites=self.sites | other.sites,
        )

    def beyond(self, already: Audience) -> Audience:
        """What this audience adds to ``already``."""
        if already.everyone:
            return Audience()
        if self.everyone:
            return Audience(everyone=True)
        return Audience(prefectures=self.prefectures - already.prefectures, sites=self.sites - already.sites)

    def describe(self) -> str:
        if self.everyone:
            return "everyone"
        parts = []
        if self.prefectures:
            parts.append(f"prefectures {', '.join(sorted(self.prefectures))}")
        if self.sites:
            parts.append(f"sites {', '.join(sorted(self.sites))}")
        return " and ".join(parts) or "nobody"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "everyone": self.everyone,
            "prefectures": sorted(self.prefectures),
            "sites": sorted(self.sites),
        }


@dataclass(frozen=True)
class EventState:
    """What was already decided for one event and template (the service stores it; the rules only read it)."""

    event_key: str
    kind: str
    template: str
    status: EventStatus
    real_or_drill: RealOrDrill
    audience: Audience
    # ReportDateTime of the bulletin that started it: the aftershock window is measured in JMA's time, so a
    # back-fill after a polling gap judges bulletins as they happened.
    report_time: datetime
    max_intensity: str | None = None
    hold_until: datetime | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class OrganizationContext:
    sites: tuple[Site, ...] = ()
    # Prefecture codes where at least one member of staff lives.
    staff_home_prefectures: frozenset[str] = frozenset()
    # States of recent events (this one included if already seen); cancelled or closed ones may be left out.
    known_events: tuple[EventState, ...] = ()


@dataclass(frozen=True)
class Decision:
    action: Action
    event_key: str
    reason: str
    real_or_drill: RealOrDrill | None = None
    template: str | None = None
    audience: Audience = field(default_factory=Audience)
    hold_until: datetime | None = None
    max_intensity: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "event_key": self.event_key,
            "reason": self.reason,
            "real_or_drill": self.real_or_drill,
            "template": self.template,
            "audience": self.audience.to_json_dict(),
            "hold_until": self.hold_until.isoformat() if self.hold_until else None,
            "max_intensity": self.max_intensity,
        }


@dataclass(frozen=True)
class _Match:
    audience: Audience
    reasons: tuple[str, ...]


# --- evaluation ------------------------------------------------------------------------------------------------


def effective_intensity(prefecture: PrefectureIntensity) -> str | None:
    """The prefecture's intensity for the rules: 震度５弱以上未入電 means JMA estimated 5弱 or more, so count it."""
    observed = prefecture.max_intensity
    if not prefecture.intensity_unreported:
        return observed
    if observed is None or intensity_rank(observed) < intensity_rank(_UNREPORTED_FLOOR):
        return _UNREPORTED_FLOOR
    return observed


def _rank(intensity: str | None) -> int:
    return -1 if intensity is None else intensity_rank(intensity)


def _bulletin_max(bulletin: Bulletin) -> str | None:
    best = bulletin.max_intensity
    for prefecture in bulletin.prefectures:
        candidate = effective_intensity(prefecture)
        if _rank(candidate) > _rank(best):
            best = candidate
    return best


def _codes(codes: Iterable[str]) -> str:
    return ", ".join(sorted(codes)) or "none"


def _match_intensity(
    bulletin: Bulletin, rules: tuple[IntensityRule, ...], context: OrganizationContext
) -> tuple[dict[str, _Match], list[str]]:
    if not bulletin.prefectures:
        return {}, ["the bulletin reports no intensity (hypocentre only, or an earthquake abroad)"]
    overall = _bulletin_max(bulletin)
    lowest = min((rule.min_intensity for rule in rules), key=intensity_rank)
    if _rank(overall) < intensity_rank(lowest):
        return {}, [f"max intensity {overall or 'unknown'} below threshold {lowest}"]
    site_prefectures = frozenset(site.prefecture_code for site in context.sites)
    matches: dict[str, _Match] = {}
    misses: list[str] = []
    for rule in rules:
        threshold = intensity_rank(rule.min_intensity)
        reached = [p for p in bulletin.prefectures if _rank(effective_intensity(p)) >= threshold]
        if rule.scope == "everyone":
            in_scope = reached
            scope_words = "anywhere"
        else:
            scope_codes = (
                site_prefectures if rule.scope == "site_prefectures" else context.staff_home_prefectures
            )
            in_scope = [p for p in reached if p.code in scope_codes]
            scope_words = (
                f"in a site prefecture ({_codes(scope_codes)})"
                if rule.scope == "site_prefectures"
                else f"in a staff home prefecture ({_codes(scope_codes)})"
            )
        if not in_scope:
            if _rank(overall) < threshold:
                misses.append(
                    f"max intensity {overall} below the {rule.min_intensity} threshold {scope_words}"
                )
            else:
                misses.append(f"no prefecture {scope_words} reached {rule.min_intensity}")
            continue
        places = ", ".join(
            f"{p.name} ({p.code}) {effective_intensity(p)}"
            + (" incl. 震度５弱以上未入電" if p.intensity_unreported else "")
            for p in in_scope
        )
        if rule.scope == "everyone":
            audience = Audience(everyone=True)
            reason = f"intensity ≥ {rule.min_intensity} {scope_words}: {places} → everyone"
        else:
            audience = Audience(prefectures=frozenset(p.code for p in in_scope))
            reason = f"intensity ≥ {rule.min_intensity} {scope_words}: {places}"
        _merge(matches, rule.template, audience, reason)
    return matches, misses


def _match_tsunami(bulletin: Bulletin, rules: tuple[TsunamiRule, ...]) -> tuple[dict[str, _Match], list[str]]:
    if not bulletin.tsunami_areas:
        return {}, ["the bulletin lists no tsunami forecast areas"]
    matches: dict[str, _Match] = {}
    misses: list[str] = []
    for rule in rules:
        kinds = "/".join(sorted(rule.kinds, key=TSUNAMI_KINDS.index))
        hit_sites: set[str] = set()
        places: list[str] = []
        for site, area_codes in sorted(rule.site_areas.items()):
            for area in bulletin.tsunami_areas:
                if area.code in area_codes and area.kind in rule.kinds:
                    hit_sites.add(site)
                    places.append(f"{area.kind} for {area.name} ({area.code}) near site {site}")
        if not hit_sites:
            misses.append(f"no {kinds} on the coasts near the sites")
            continue
        _merge(matches, rule.template, Audience(sites=frozenset(hit_sites)), "; ".join(places))
    return matches, misses


def _match_warnings(
    bulletin: Bulletin, rules: tuple[WarningRule, ...], context: OrganizationContext
) -> tuple[dict[str, _Match], list[str]]:
    matches: dict[str, _Match] = {}
    misses: list[str] = []
    for rule in rules:
        hit_sites: set[str] = set()
        places: list[str] = []
        for site in context.sites:
            for area in bulletin.warnings:
                if area.code not in site.municipality_codes:
                    continue
                for kind in area.kinds:
                    if rule.kind_contains in kind:
                        hit_sites.add(site.code)
                        places.append(f"{kind} in {area.name} ({area.code}) where site {site.code} is")
        if not hit_sites:
            misses.append(f"no warning containing {rule.kind_contains!r} in a site's municipality")
            continue
        _merge(matches, rule.template, Audience(sites=frozenset(hit_sites)), "; ".join(places))
    return matches, misses


def _merge(matches: dict[str, _Match], template: str, audience: Audience, reason: str) -> None:
    previous = matches.get(template)
    if previous is None:
        matches[template] = _Match(audience, (reason,))
    else:
        matches[template] = _Match(previous.audience.union(audience), (*previous.reasons, reason))


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else "an unknown time"


def _main_shock(
    bulletin: Bulletin, context: OrganizationContext, mode: RealOrDrill, window_hours: float
) -> EventState | None:
    if window_hours <= 0:
        return None
    window = timedelta(hours=window_hours)
    candidates = [
        state
        for state in context.known_events
        if state.kind == "earthquake"
        and state.event_key != bulletin.event_key
        and state.status in ("held", "sent")
        and state.real_or_drill == mode
        and timedelta(0) <= bulletin.report_time - state.report_time <= window
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda state: _rank(state.max_intensity))


def evaluate(
    bulletin: Bulletin, ruleset: RuleSet, context: OrganizationContext, now: datetime
) -> list[Decision]:
    """Every decision this bulletin calls for (at least one). ``now`` must be timezone-aware."""
    key = bulletin.event_key
    label = bulletin.data_type or bulletin.title

    def suppress(reason: str) -> list[Decision]:
        return [
            Decision(action="suppress", event_key=key, reason=reason, max_intensity=bulletin.max_intensity)
        ]

    if bulletin.is_test:
        return suppress(f"試験 (test) bulletins never trigger ({label})")
    if bulletin.is_eew:
        return suppress(
            f"Earthquake Early Warnings ({label}) are not a trigger; the intensity reports that follow are"
        )
    if bulletin.is_drill and not ruleset.allow_drill:
        return suppress("訓練 bulletin and the organization has not opted in to drills")
    if bulletin.data_type not in TRIGGER_DATA_TYPES.get(bulletin.kind, frozenset()):
        return suppress(f"{bulletin.title} ({label}) carries nothing the rules act on")

    mode: RealOrDrill = "drill" if bulletin.is_drill else "real"
    priors = {
        state.template: state
        for state in context.known_events
        if state.event_key == key and state.real_or_drill == mode and state.status in ("held", "sent")
    }

    if bulletin.info_type == "取消":
        return _cancellation(bulletin, priors, mode) or suppress(
            f"取消 of {label} for {key}: nothing was started for this event, so there is nothing to cancel"
        )

    matches: dict[str, _Match]
    misses: list[str]
    if bulletin.kind == "earthquake" and ruleset.intensity_rules:
        matches, misses = _match_intensity(bulletin, ruleset.intensity_rules, context)
    elif bulletin.kind == "tsunami" and ruleset.tsunami_rules:
        matches, misses = _match_tsunami(bulletin, ruleset.tsunami_rules)
    elif bulletin.kind == "weather" and ruleset.warning_rules:
        matches, misses = _match_warnings(bulletin, ruleset.warning_rules, context)
    else:
        matches, misses = {}, [f"the organization has no {bulletin.kind} rules"]

    decisions = [
        _decide(
            bulletin,
            template,
            matches.get(template),
            priors.get(template),
            misses,
            ruleset,
            context,
            now,
            mode,
        )
        for template in sorted(set(matches) | set(priors))
    ]
    if decisions:
        return decisions
    return suppress("; ".join(dict.fromkeys(misses)) or f"no {bulletin.kind} rule applies")


def _cancellation(bulletin: Bulletin, priors: Mapping[str, EventState], mode: RealOrDrill) -> list[Decision]:
    decisions = []
    for template, state in sorted(priors.items()):
        if state.status == "held":
            decisions.append(
                Decision(
                    action="cancel",
                    event_key=state.event_key,
                    reason="取消 arrived while the broadcast was held; cancelled before anyone was called",
                    real_or_drill=mode,
                    template=template,
                    audience=state.audience,
                )
            )
        else:
            decisions.append(
                Decision(
                    action="notify_only",
                    event_key=state.event_key,
                    reason=(
                        f"取消 arrived after the broadcast was sent at {_when(state.sent_at)}; calls cannot be "
                        "unsent, so the crisis managers are told to send a follow-up"
                    ),
                    real_or_drill=mode,
                    template=template,
                    audience=state.audience,
                )
            )
    return decisions


def _decide(
    bulletin: Bulletin,
    template: str,
    match: _Match | None,
    prior: EventState | None,
    misses: list[str],
    ruleset: RuleSet,
    context: OrganizationContext,
    now: datetime,
    mode: RealOrDrill,
) -> Decision:
    key = bulletin.event_key
    max_intensity = _bulletin_max(bulletin)

    def decision(action: Action, reason: str, audience: Audience = Audience(), **extra: Any) -> Decision:
        return Decision(
            action=action,
            event_key=key,
            reason=reason,
            real_or_drill=mode,
            template=template,
            audience=audience,
            max_intensity=max_intensity,
            **extra,
        )

    why_not = "; ".join(dict.fromkeys(misses)) or "the rules no longer apply"

    if prior is None:
        if match is None:  # cannot happen: every template evaluated comes from a match or a prior
            return decision("suppress", why_not)
        why = "; ".join(match.reasons)
        if bulletin.kind == "earthquake":
            main = _main_shock(bulletin, context, mode, ruleset.aftershock_window_hours)
            if main is not None:
                if _rank(max_intensity) <= _rank(main.max_intensity):
                    return decision(
                        "notify_only",
                        f"aftershock: within {ruleset.aftershock_window_hours:g} h of {main.event_key} "
                        f"(max {main.max_intensity}), which already started a broadcast; max {max_intensity} is "
                        f"not stronger ({why})",
                        match.audience,
                    )
                why = f"{why}; stronger than the earlier {main.event_key} (max {main.max_intensity})"
        if ruleset.hold_minutes > 0:
            until = now + timedelta(minutes=ruleset.hold_minutes)
            return decision(
                "hold",
                f"{why}; held for {ruleset.hold_minutes} min until {_when(until)} in case JMA withdraws it",
                match.audience,
                hold_until=until,
            )
        return decision("start", why, match.audience)

    held = prior.status == "held"
    hold_until = prior.hold_until if held else None
    if match is None:
        if bulletin.info_type == "訂正":
            if held:
                return decision(
                    "cancel",
                    f"訂正 no longer meets the rules ({why_not}); the held broadcast is cancelled before anyone "
                    "was called",
                    prior.audience,
                )
            return decision(
                "notify_only",
                f"訂正 no longer meets the rules ({why_not}) but the broadcast was sent at "
                f"{_when(prior.sent_at)}; calls cannot be unsent",
                prior.audience,
            )
        return decision(
            "notify_only",
            f"a later bulletin for this event no longer meets the rules ({why_not}); the "
            f"{'held' if held else 'sent'} broadcast stands",
        )

    why = "; ".join(match.reasons)
    if bulletin.info_type == "訂正" and held:
        if match.audience == prior.audience:
            return decision("suppress", f"訂正 leaves the held broadcast's audience unchanged ({why})")
        return decision(
            "replace",
            f"訂正 replaces the held broadcast's audience ({prior.audience.describe()} → "
            f"{match.audience.describe()}): {why}",
            match.audience,
            hold_until=hold_until,
        )

    added = match.audience.beyond(prior.audience)
    correction = "訂正 " if bulletin.info_type == "訂正" else ""
    if not added.is_empty:
        return decision(
            "widen",
            f"{correction}upgrade of the {'held' if held else 'sent'} broadcast: adds {added.describe()} "
            f"without calling anyone again ({why})",
            added,
            hold_until=hold_until,
        )
    if bulletin.info_type == "訂正" and not prior.audience.beyond(match.audience).is_empty:
        return decision(
            "notify_only",
            f"訂正 narrows the audience to {match.audience.describe()} but the broadcast was sent at "
            f"{_when(prior.sent_at)}; calls cannot be unsent",
        )
    if _rank(max_intensity) > _rank(prior.max_intensity):
        return decision(
            "notify_only",
            f"intensity upgraded from {prior.max_intensity} to {max_intensity}; everyone it concerns is already "
            f"in the {'held' if held else 'sent'} broadcast",
        )
    return decision(
        "suppress",
        f"a later bulletin for this event adds nobody; the broadcast is already {'held' if held else 'sent'}",
    )
