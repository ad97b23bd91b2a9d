"""Routing and failover use-cases: the state ``routing.choose`` reads, every reroute (audited and undoable),
calls and what callers left behind, heartbeats and the home-agent pool.

Keyword-only arguments; ``flush()`` only — the edge (request, task, CLI) commits. An actor is either a signed-in
:class:`~core.auth.service.Principal` (whose supervisor scope is enforced here, so every edge gets the same rules)
or a plain label for the machinery acting on its own (``"system"``, ``"jma"``, ``"cli"``), which is
organization-wide.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from continuity import cache, plans, routing
from continuity.models import (
    Agent,
    CallbackRequest,
    CallLeg,
    ChangeKind,
    Emergency,
    HomeAgent,
    InboundCall,
    InboundLine,
    LegOutcome,
    LineKind,
    LineOverride,
    RoutingChange,
    RoutingPlan,
    SiteStatus,
    Voicemail,
)
from continuity.routing import EmergencyScope, SiteState, TargetKind
from core import crypto, db
from core.auth.models import Role
from core.auth.service import Principal, audit
from core.config import Settings
from core.directory.importer import normalise_phone
from core.directory.models import Organization, Site, Staff
from core.errors import Conflict, Forbidden, NotFound, ValidationError
from core.time import utcnow
from core.web import whole_number

SYSTEM = "system"
MAX_DIAL_ENDPOINTS = 10  # Twilio rings at most ten parties from one <Dial>
QUEUE_WAIT_HORIZON = timedelta(hours=2)  # a queue leg older than this was abandoned without a callback
DEFAULT_HEARTBEAT_LIMIT_S = 90
RECENT = timedelta(minutes=15)
STATE_LOOKBACK = timedelta(minutes=1)  # see load_routing_state

Actor = Principal | str


# --------------------------------------------------------------------------------------------------------------
# Actors and scope
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Who:
    label: str
    user_id: int | None
    sites: frozenset[int] | None  # None: organization-wide


def _who(actor: Actor, organization_id: int) -> _Who:
    """Who is acting, refusing anyone who may not change routing in this organization."""
    if isinstance(actor, str):
        return _Who(actor, None, None)
    if actor.organization_id != organization_id:
        raise NotFound("not found")
    if not actor.has(Role.SUPERVISOR):
        raise Forbidden("only supervisors change routing")
    scope = actor.scope_ids(Role.SUPERVISOR)
    return _Who(actor.label, actor.user_id, None if scope is None else scope[0])


def _require_site(who: _Who, site_id: int | None) -> None:
    if who.sites is not None and (site_id is None or site_id not in who.sites):
        raise Forbidden("this site is outside your scope")


def _require_org_wide(who: _Who) -> None:
    if who.sites is not None:
        raise Forbidden("only an organization-wide supervisor can do this")


def can_change_site(actor: Actor, site_id: int) -> bool:
    """For screens: whether to offer the controls for this site."""
    if isinstance(actor, str):
        return True
    if not actor.has(Role.SUPERVISOR):
        return False
    scope = actor.scope_ids(Role.SUPERVISOR)
    return scope is None or site_id in scope[0]


# --------------------------------------------------------------------------------------------------------------
# Plans and lines
# --------------------------------------------------------------------------------------------------------------


_LINE_BY_NUMBER = select(InboundLine).where(InboundLine.number == bindparam("number"))


def line_by_number(*, number: str) -> InboundLine | None:
    return db.session.scalar(_LINE_BY_NUMBER, {"number": number})


def get_line(*, organization_id: int, line_id: int) -> InboundLine:
    line = db.session.get(InboundLine, line_id)
    if line is None or line.organization_id != organization_id:
        raise NotFound("no such line")
    return line


def lines_of(*, organization_id: int) -> list[InboundLine]:
    return list(
        db.session.scalars(
            select(InboundLine)
            .where(InboundLine.organization_id == organization_id)
            .order_by(InboundLine.number)
        )
    )


def plans_of(*, organization_id: int) -> list[RoutingPlan]:
    return list(
        db.session.scalars(
            select(RoutingPlan)
            .where(RoutingPlan.organization_id == organization_id)
            .order_by(RoutingPlan.name)
        )
    )


def routing_plan(plan: RoutingPlan, line_number: str) -> routing.Plan:
    return plans.plan_from_definition(line_number, plan.definition, name=plan.name)


def plan_of_line(line: InboundLine) -> routing.Plan:
    if line.plan is None:
        raise ValidationError(f"line {line.number} has no routing plan")
    return routing_plan(line.plan, line.number)


def save_plan(
    *,
    organization_id: int,
    name: str,
    definition: dict[str, Any],
    actor: Actor,
    plan: RoutingPlan | None = None,
) -> RoutingPlan:
    who = _who(actor, organization_id)
    _require_org_wide(who)
    try:
        plans.validate_definition(definition)
    except ValueError as exc:
        raise ValidationError(f"the plan is not valid: {exc}") from None
    if plan is None:
        plan = RoutingPlan(organization_id=organization_id, name=name, definition=definition)
        db.session.add(plan)
    else:
        plan.name, plan.definition = name, definition
    db.session.flush()
    audit(
        action="continuity.plan.save",
        organization_id=organization_id,
        actor=who.label,
        actor_user_id=who.user_id,
        target_type="routing_plan",
        target_id=plan.id,
        summary=f"routing plan {name!r} saved",
        detail={"definition": definition},
    )
    return plan


def add_line(
    *,
    organization_id: int,
    number: str,
    name: str,
    plan: RoutingPlan | None,
    actor: Actor,
    kind: LineKind = LineKind.CUSTOMER,
) -> InboundLine:
    who = _who(actor, organization_id)
    _require_org_wide(who)
    if kind is LineKind.CUSTOMER and plan is None:
        raise ValidationError("a customer line needs a routing plan")
    if line_by_number(number=number) is not None:
        raise ValidationError(f"the number {number} is already a line")
    line = InboundLine(organization_id=organization_id, number=number, name=name, kind=kind, plan=plan)
    db.session.add(line)
    db.session.flush()
    audit(
        action="continuity.line.add",
        organization_id=organization_id,
        actor=who.label,
        actor_user_id=who.user_id,
        target_type="inbound_line",
        target_id=line.id,
        summary=f"line {number} ({name}) added",
    )
    return line


def _sites_by_code(organization_id: int) -> dict[str, Site]:
    return {
        s.code: s for s in db.session.scalars(select(Site).where(Site.organization_id == organization_id))
    }


def _line_site_id(line: InboundLine, sites: dict[str, Site] | None = None) -> int | None:
    """The site a line's plan starts at (the site a scoped supervisor must hold to change the line)."""
    if line.plan is None:
        return None
    home = routing_plan(line.plan, line.number).home_site
    if home is None:
        return None
    site = (sites if sites is not None else _sites_by_code(line.organization_id)).get(home)
    return site.id if site else None


def can_change_line(actor: Actor, line: InboundLine, sites: dict[str, Site] | None = None) -> bool:
    if isinstance(actor, str):
        return True
    if not actor.has(Role.SUPERVISOR):
        return False
    scope = actor.scope_ids(Role.SUPERVISOR)
    return scope is None or _line_site_id(line, sites) in scope[0]


# --------------------------------------------------------------------------------------------------------------
# The snapshot routing.choose reads
# --------------------------------------------------------------------------------------------------------------


def home_agent_label(home_agent_id: int) -> str:
    """What stands for a home agent's private number wherever a person might read the decision."""
    return f"home-agent:{home_agent_id}"


@dataclass(frozen=True)
class RoutingState:
    """What supervisors (and heartbeats, and home agents calling in) change: the part of the snapshot the inbound
    webhook takes from the per-process cache (:mod:`continuity.cache`). Queue sizes are not part of it.

    ``emergencies`` are those not ended and not past their ``ends_at`` at ``loaded_for``, with when each starts
    (which ones apply is decided for the time asked about), so the state answers for any time from
    ``loaded_for`` on. ``home_agents``: (id, encrypted number), in the order they are rung.
    """

    loaded_for: datetime
    sites: Mapping[str, routing.SiteStatus]
    home_agents: tuple[tuple[int, bytes], ...]
    emergencies: tuple[tuple[datetime, routing.Emergency], ...]
    overrides: Mapping[str, routing.LineOverride]

    def snapshot(
        self, *, at: datetime, encryption_key: str | None, queue_sizes: Mapping[str, int]
    ) -> routing.Snapshot:
        if encryption_key is None:
            home = tuple(home_agent_label(agent_id) for agent_id, _ in self.home_agents)
        else:
            home = tuple(crypto.decrypt(number, encryption_key) for _, number in self.home_agents)
        return routing.Snapshot(
            sites=self.sites,
            home_agents=routing.HomeAgentStatus(home),
            emergencies=tuple(
                emergency
                for starts_at, emergency in self.emergencies
                if starts_at <= at and (emergency.ends_at is None or emergency.ends_at > at)
            ),
            overrides=self.overrides,
            queue_sizes=queue_sizes,
        )


def load_routing_state(*, organization_id: int, at: datetime) -> RoutingState:
    """The routing state of the organization from the database, in five queries, for ``at`` and anything up to
    :data:`STATE_LOOKBACK` before it (a request that started a moment before the one that loaded the state
    can use it too)."""
    since = at - STATE_LOOKBACK
    sites: dict[str, routing.SiteStatus] = {}
    site_rows = db.session.execute(
        select(Site.id, Site.code, SiteStatus.state)
        .outerjoin(SiteStatus, SiteStatus.site_id == Site.id)
        .where(Site.organization_id == organization_id)
    ).all()
    code_of = {site_id: code for site_id, code, _ in site_rows}

    available: dict[int, list[str]] = defaultdict(list)
    everyone: dict[int, list[str]] = defaultdict(list)
    for site_id, endpoint, is_available in db.session.execute(
        select(Agent.site_id, Agent.endpoint, Agent.available)
        .where(Agent.organization_id == organization_id)
        .order_by(Agent.id)
    ):
        everyone[site_id].append(endpoint)
        if is_available:
            available[site_id].append(endpoint)
    for site_id, code, state in site_rows:
        # A site of the directory that continuity has no status for yet is taken as normal: nothing says
        # otherwise. Only a code no site has (a typo in a plan) counts as unknown, and is never rung.
        free = available.get(site_id, [])
        endpoints = free or everyone.get(site_id, [])  # nobody free: ring everyone, unless the plan says skip
        sites[code] = routing.SiteStatus(
            code, state or SiteState.NORMAL, len(free), tuple(endpoints[:MAX_DIAL_ENDPOINTS])
        )

    home_rows = db.session.execute(
        select(HomeAgent.id, HomeAgent.number_encrypted)
        .where(
            HomeAgent.organization_id == organization_id,
            HomeAgent.available.is_(True),
            HomeAgent.number_encrypted.is_not(None),
        )
        .order_by(HomeAgent.available_changed_at, HomeAgent.id)
        .limit(MAX_DIAL_ENDPOINTS)
    ).all()

    emergencies = []
    for emergency, line_number in db.session.execute(
        select(Emergency, InboundLine.number)
        .outerjoin(InboundLine, InboundLine.id == Emergency.line_id)
        .where(
            Emergency.organization_id == organization_id,
            Emergency.ended_at.is_(None),
            or_(Emergency.ends_at.is_(None), Emergency.ends_at > since),
        )
        .order_by(Emergency.starts_at)
    ):
        emergencies.append((emergency.starts_at, _routing_emergency(emergency, line_number, code_of)))

    overrides: dict[str, routing.LineOverride] = {}
    for override, line_number, plan in db.session.execute(
        select(LineOverride, InboundLine.number, RoutingPlan)
        .join(InboundLine, InboundLine.id == LineOverride.line_id)
        .outerjoin(RoutingPlan, RoutingPlan.id == LineOverride.plan_id)
        .where(LineOverride.organization_id == organization_id)
    ):
        overrides[line_number] = routing.LineOverride(
            line_number,
            plan=routing_plan(plan, line_number) if plan is not None else None,
            split=tuple(routing.SplitShare(share["site"], int(share["weight"])) for share in override.split),
        )
    return RoutingState(
        loaded_for=since,
        sites=sites,
        home_agents=tuple((agent_id, number) for agent_id, number in home_rows if number is not None),
        emergencies=tuple(emergencies),
        overrides=overrides,
    )


def queue_sizes(*, organization_id: int, at: datetime) -> dict[str, int]:
    """Callers waiting in each queue now (never cached: every call changes it, and a full queue is skipped)."""
    return {
        name: count
        for name, count in db.session.execute(
            select(CallLeg.queue_name, func.count())
            .join(InboundCall, InboundCall.id == CallLeg.call_id)
            .where(
                InboundCall.organization_id == organization_id,
                CallLeg.kind == TargetKind.QUEUE,
                CallLeg.outcome.is_(None),
                CallLeg.started_at > at - QUEUE_WAIT_HORIZON,
            )
            .group_by(CallLeg.queue_name)
        )
        if name
    }


def snapshot(*, organization_id: int, at: datetime, encryption_key: str | None = None) -> routing.Snapshot:
    """Everything ``routing.choose`` needs besides the plan and the clock, straight from the database (what a
    supervisor's explanation shows; live calls use :func:`live_snapshot`).

    Home agents' numbers are private: with ``encryption_key`` they are decrypted (to dial them); without it
    they appear as ``home-agent:<id>`` labels, which route exactly the same way (the decision looks only at
    whether there are any), so an explanation shown to a supervisor never carries them.
    """
    state = load_routing_state(organization_id=organization_id, at=at)
    sizes = queue_sizes(organization_id=organization_id, at=at)
    return state.snapshot(at=at, encryption_key=encryption_key, queue_sizes=sizes)


def live_snapshot(
    *, plan: routing.Plan, organization_id: int, at: datetime, encryption_key: str | None = None
) -> routing.Snapshot:
    """The snapshot for routing a live call to ``plan.line``: the routing state from this process's cache (a
    change committed here applies at once, one committed elsewhere within ``cache.TTL_S``), the queue sizes
    counted now, and only when the plan in effect has a queue (nothing else reads them)."""
    session = db.session()

    def load() -> RoutingState:
        return load_routing_state(organization_id=organization_id, at=at)

    state = cache.cached_state(session, organization_id, load)
    if at < state.loaded_for:  # asked about an earlier time than the cached state answers for
        state = load()
    override = state.overrides.get(plan.line)
    in_effect = override.plan if override is not None and override.plan is not None else plan
    has_queue = any(target.kind is TargetKind.QUEUE for target in in_effect.targets)
    sizes = queue_sizes(organization_id=organization_id, at=at) if has_queue else {}
    return state.snapshot(at=at, encryption_key=encryption_key, queue_sizes=sizes)


def _routing_emergency(
    emergency: Emergency, line_number: str | None, code_of: dict[int, str]
) -> routing.Emergency:
    return routing.Emergency(
        scope=emergency.scope,
        announcement=routing.Message(
            emergency.announcement_ja, emergency.announcement_en, emergency.recording_url
        ),
        ends_at=emergency.ends_at,
        line=line_number,
        site_code=code_of.get(emergency.site_id) if emergency.site_id is not None else None,
    )


def effective_plan(*, line: InboundLine) -> RoutingPlan | None:
    """The plan the line is routed by now: the one it was moved to, or its own."""
    override = _override_of(line.id)
    if override is not None and override.plan_id is not None:
        moved = db.session.get(RoutingPlan, override.plan_id)
        if moved is not None:
            return moved
    return line.plan


def faq_of_line(*, line: InboundLine) -> tuple[plans.FaqEntry, ...]:
    plan = effective_plan(line=line)
    if plan is None:
        return ()
    try:
        return plans.faq_entries(plan.definition)
    except ValueError:  # validated when saved; a hand-edited row must not break a live call
        return ()


def queue_hold_message(*, call: InboundCall, line: InboundLine, position: int) -> routing.Message | None:
    """The hold message of the queue the call waits in (from the plan in effect, else the line's own)."""
    leg = _leg_at(call, position)
    if leg is None or leg.queue_name is None:
        return None
    for plan in (effective_plan(line=line), line.plan):
        if plan is None:
            continue
        for target in routing_plan(plan, line.number).targets:
            if target.kind is TargetKind.QUEUE and target.queue_name == leg.queue_name and target.message:
                return target.message
    return None


def explain_chain(*, line: InboundLine, at: datetime) -> list[routing.RoutingDecision]:
    """The decision now, then what would be tried next each time the chosen target does not take the call."""
    plan = plan_of_line(line)
    state = snapshot(organization_id=line.organization_id, at=at)
    decisions = [routing.choose(plan, state, at)]
    while decisions[-1].chosen is not None and len(decisions) <= plans.MAX_TARGETS + 2:
        decisions.append(routing.choose(plan, state, at, attempt=decisions[-1].next_attempt))
    return decisions


def explain_route(*, line: InboundLine, at: datetime) -> routing.RoutingDecision:
    """Where a call to ``line`` would go at ``at`` and why (no call key: a split line shows its largest share;
    home agents appear as labels, never as their numbers)."""
    plan = plan_of_line(line)
    return routing.choose(plan, snapshot(organization_id=line.organization_id, at=at), at)


# --------------------------------------------------------------------------------------------------------------
# Change log: every reroute, undoable
# --------------------------------------------------------------------------------------------------------------


def _record_change(
    *,
    organization_id: int,
    who: _Who,
    kind: ChangeKind,
    subject_id: int,
    summary: str,
    reason: str,
    before: dict[str, Any],
    after: dict[str, Any],
    now: datetime,
    undoes: RoutingChange | None = None,
) -> RoutingChange:
    change = RoutingChange(
        organization_id=organization_id,
        at=now,
        actor=who.label,
        actor_user_id=who.user_id,
        kind=kind,
        subject_id=subject_id,
        summary=summary,
        reason=reason,
        before=before,
        after=after,
        undoes_id=undoes.id if undoes else None,
    )
    db.session.add(change)
    db.session.flush()
    audit(
        action=f"continuity.{kind.value}" + (".undo" if undoes else ""),
        organization_id=organization_id,
        actor=who.label,
        actor_user_id=who.user_id,
        target_type=f"continuity_{kind.value}",
        target_id=subject_id,
        summary=summary + (f": {reason}" if reason else ""),
        detail={"change_id": change.id, "before": before, "after": after, "reason": reason},
    )
    return change


def recent_changes(*, organization_id: int, limit: int = 30) -> list[RoutingChange]:
    return list(
        db.session.scalars(
            select(RoutingChange)
            .where(RoutingChange.organization_id == organization_id)
            .order_by(RoutingChange.at.desc(), RoutingChange.id.desc())
            .limit(limit)
        )
    )


def undo_change(
    *, change_id: int, organization_id: int, actor: Actor, now: datetime | None = None
) -> RoutingChange:
    """Put back what ``change_id`` changed, as a new (itself undoable) change. Refused when the subject has
    changed again since: undo the later change first."""
    now = now or utcnow()
    change = db.session.get(RoutingChange, change_id, with_for_update=True)
    if change is None or change.organization_id != organization_id:
        raise NotFound("no such change")
    who = _who(actor, organization_id)
    if change.undone_at is not None:
        raise Conflict("this change was already undone")
    reason = f"undo of change #{change.id}"
    undo: RoutingChange
    if change.kind is ChangeKind.SITE_STATE:
        status = _status_of_site(change.subject_id)
        _require_site(who, status.site_id)
        if status.state.value != change.after.get("state"):  # proposals and reasons do not count
            raise Conflict("the site has changed since; undo the later change first")
        undo = _apply_site_state(status, who, change.before, reason, now, undoes=change)
    elif change.kind is ChangeKind.LINE_OVERRIDE:
        line = get_line(organization_id=organization_id, line_id=change.subject_id)
        _require_line(who, line)
        current = _override_of(line.id)
        if _override_dict(current) != change.after.get("override"):
            raise Conflict("the line has been rerouted since; undo the later change first")
        undo = _apply_override(line, who, change.before.get("override"), reason, now, undoes=change)
    else:
        emergency = db.session.get(Emergency, change.subject_id)
        if emergency is None:
            raise NotFound("the emergency no longer exists")
        _require_emergency_scope(who, emergency)
        if _emergency_dict(emergency) != change.after:
            raise Conflict("the emergency has changed since; undo the later change first")
        undo = _set_emergency_active(
            emergency, who, bool(change.before.get("active")), reason, now, undoes=change
        )
    change.undone_at = now
    change.undone_by = who.label
    db.session.flush()
    return undo


# --------------------------------------------------------------------------------------------------------------
# Site state and heartbeats
# --------------------------------------------------------------------------------------------------------------


def site_status(*, site: Site) -> SiteStatus:
    """The site's routing status, created (normal) the first time it is needed."""
    status = db.session.scalar(select(SiteStatus).where(SiteStatus.site_id == site.id))
    if status is None:
        status = SiteStatus(
            organization_id=site.organization_id,
            site_id=site.id,
            state=SiteState.NORMAL,
            heartbeat_limit_s=DEFAULT_HEARTBEAT_LIMIT_S,
        )
        db.session.add(status)
        db.session.flush()
    return status


def _status_of_site(site_id: int) -> SiteStatus:
    status = db.session.scalar(select(SiteStatus).where(SiteStatus.site_id == site_id))
    if status is None:
        raise NotFound("no such site status")
    return status


def _state_dict(status: SiteStatus) -> dict[str, Any]:
    return {
        "state": status.state.value,
        "reason": status.state_reason,
        "down_for_silence": status.down_for_silence,
        "proposed_up": status.proposed_up,
    }


def _apply_site_state(
    status: SiteStatus,
    who: _Who,
    values: dict[str, Any],
    reason: str,
    now: datetime,
    undoes: RoutingChange | None = None,
) -> RoutingChange:
    before = _state_dict(status)
    status.state = SiteState(values["state"])
    status.state_reason = str(values.get("reason", reason))
    status.down_for_silence = bool(values.get("down_for_silence", False))
    status.proposed_up = bool(values.get("proposed_up", False))
    if not status.proposed_up:
        status.proposed_up_at = None
    status.state_changed_at = now
    db.session.flush()
    site = db.session.get(Site, status.site_id)
    code = site.code if site else str(status.site_id)
    return _record_change(
        organization_id=status.organization_id,
        who=who,
        kind=ChangeKind.SITE_STATE,
        subject_id=status.site_id,
        summary=f"site {code}: {before['state']} → {status.state.value}",
        reason=reason,
        before=before,
        after=_state_dict(status),
        now=now,
        undoes=undoes,
    )


def declare_site_state(
    *, site: Site, state: SiteState, reason: str, actor: Actor, now: datetime | None = None
) -> RoutingChange:
    """A supervisor (or the CLI) forces a site's state; traffic follows at the next call."""
    now = now or utcnow()
    who = _who(actor, site.organization_id)
    _require_site(who, site.id)
    reason = reason.strip()
    if not reason:
        raise ValidationError("say why the site's state changes", field="reason")
    status = site_status(site=site)
    return _apply_site_state(status, who, {"state": SiteState(state).value, "reason": reason}, reason, now)


def generate_site_token(*, site: Site, actor: Actor, now: datetime | None = None) -> str:
    """A new heartbeat token for the site (the old one stops working). Shown once; only its hash is kept."""
    now = now or utcnow()
    who = _who(actor, site.organization_id)
    _require_site(who, site.id)
    status = site_status(site=site)
    token = "lhb_" + secrets.token_urlsafe(32)
    status.token_hash = _hash_token(token)
    status.token_prefix = token[:10]
    status.token_created_at = now
    db.session.flush()
    audit(
        action="continuity.site.heartbeat_token",
        organization_id=site.organization_id,
        actor=who.label,
        actor_user_id=who.user_id,
        target_type="site",
        target_id=site.id,
        summary=f"new heartbeat token for site {site.code} ({status.token_prefix}…)",
    )
    return token


def update_heartbeat_settings(
    *, site: Site, heartbeat_limit_s: int, auto_return: bool, actor: Actor
) -> SiteStatus:
    who = _who(actor, site.organization_id)
    _require_site(who, site.id)
    if not 15 <= heartbeat_limit_s <= 24 * 3600:
        raise ValidationError(
            "the heartbeat limit is between 15 seconds and a day", field="heartbeat_limit_s"
        )
    status = site_status(site=site)
    before = {"heartbeat_limit_s": status.heartbeat_limit_s, "auto_return": status.auto_return}
    status.heartbeat_limit_s = heartbeat_limit_s
    status.auto_return = auto_return
    db.session.flush()
    audit(
        action="continuity.site.heartbeat_settings",
        organization_id=site.organization_id,
        actor=who.label,
        actor_user_id=who.user_id,
        target_type="site",
        target_id=site.id,
        summary=f"site {site.code}: heartbeat limit {heartbeat_limit_s}s, automatic return "
        + ("on" if auto_return else "off"),
        detail={
            "before": before,
            "after": {"heartbeat_limit_s": heartbeat_limit_s, "auto_return": auto_return},
        },
    )
    return status


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def record_heartbeat(*, site_code: str, token: str, now: datetime | None = None) -> SiteStatus | None:
    """A site says it is alive. None when the token is not this site's. A site that went down because it
    fell silent is proposed back up — or brought back up at once when its automatic return is on."""
    now = now or utcnow()
    if not token or len(token) > 200:
        return None
    status = db.session.scalar(select(SiteStatus).where(SiteStatus.token_hash == _hash_token(token)))
    if status is None:
        return None
    site = db.session.get(Site, status.site_id)
    if site is None or site.code != site_code:
        return None
    status.last_heartbeat_at = now
    if status.state is SiteState.DOWN and status.down_for_silence:
        if status.auto_return:
            _apply_site_state(
                status,
                _Who(SYSTEM, None, None),
                {"state": SiteState.NORMAL.value, "reason": "heartbeats returned (automatic return)"},
                "heartbeats returned (automatic return)",
                now,
            )
        elif not status.proposed_up:
            propose_return(status=status, now=now)
    db.session.flush()
    return status


def propose_return(*, status: SiteStatus, now: datetime | None = None) -> None:
    """Heartbeats are back at a site that went down for silence: ask a supervisor to bring it back up."""
    now = now or utcnow()
    status.proposed_up = True
    status.proposed_up_at = now
    db.session.flush()
    site = db.session.get(Site, status.site_id)
    audit(
        action="continuity.site.proposed_up",
        organization_id=status.organization_id,
        actor=SYSTEM,
        target_type="site",
        target_id=status.site_id,
        summary=f"site {site.code if site else status.site_id} sends heartbeats again: proposed back up",
    )


def mark_silent_sites_down(*, now: datetime | None = None) -> list[SiteStatus]:
    """Every monitored site silent for longer than its limit goes down (actor "system"), in every organization.

    A site is monitored once it has sent a heartbeat: one that never reported cannot be judged silent (the
    board shows it as "no heartbeat yet")."""
    now = now or utcnow()
    candidates = db.session.scalars(
        select(SiteStatus).where(
            SiteStatus.state.in_([SiteState.NORMAL, SiteState.DEGRADED]),
            SiteStatus.token_hash.is_not(None),
            SiteStatus.last_heartbeat_at.is_not(None),
            # the per-site limit is applied below; this bound only keeps the candidates few
            SiteStatus.last_heartbeat_at < now - timedelta(seconds=15),
        )
    ).all()
    downed = []
    system = _Who(SYSTEM, None, None)
    for status in candidates:
        assert status.last_heartbeat_at is not None
        silent = now - status.last_heartbeat_at
        if silent <= timedelta(seconds=status.heartbeat_limit_s):
            continue
        reason = f"no heartbeat for {int(silent.total_seconds())} s (limit {status.heartbeat_limit_s} s)"
        _apply_site_state(
            status,
            system,
            {"state": SiteState.DOWN.value, "reason": reason, "down_for_silence": True},
            reason,
            now,
        )
        downed.append(status)
    return downed


# --------------------------------------------------------------------------------------------------------------
# Line overrides: move, split, reset
# --------------------------------------------------------------------------------------------------------------


def _require_line(who: _Who, line: InboundLine) -> None:
    if who.sites is not None and _line_site_id(line) not in who.sites:
        raise Forbidden("this line is outside your scope")


def _override_of(line_id: int) -> LineOverride | None:
    return db.session.scalar(select(LineOverride).where(LineOverride.line_id == line_id))


def _override_dict(override: LineOverride | None) -> dict[str, Any] | None:
    if override is None:
        return None
    return {"plan_id": override.plan_id, "split": [dict(share) for share in override.split]}


def _apply_override(
    line: InboundLine,
    who: _Who,
    values: dict[str, Any] | None,
    reason: str,
    now: datetime,
    undoes: RoutingChange | None = None,
) -> RoutingChange:
    current = _override_of(line.id)
    before = _override_dict(current)
    if values is None or (values.get("plan_id") is None and not values.get("split")):
        if current is not None:
            db.session.delete(current)
        after = None
    else:
        if current is None:
            current = LineOverride(
                organization_id=line.organization_id, line_id=line.id, created_by=who.label
            )
            db.session.add(current)
        current.plan_id = values.get("plan_id")
        current.split = [dict(share) for share in values.get("split") or []]
        current.reason = reason
        current.created_by = who.label
        current.created_at = now
        after = _override_dict(current)
    db.session.flush()
    return _record_change(
        organization_id=line.organization_id,
        who=who,
        kind=ChangeKind.LINE_OVERRIDE,
        subject_id=line.id,
        summary=f"line {line.number}: {_describe_override(before)} → {_describe_override(after)}",
        reason=reason,
        before={"override": before},
        after={"override": after},
        now=now,
        undoes=undoes,
    )


def _describe_override(values: dict[str, Any] | None) -> str:
    if values is None:
        return "its own plan"
    parts = []
    if values.get("plan_id") is not None:
        plan = db.session.get(RoutingPlan, values["plan_id"])
        parts.append(f"plan {plan.name if plan else values['plan_id']}")
    split = values.get("split") or []
    if split:
        total = sum(int(s["weight"]) for s in split) or 1
        parts.append(" / ".join(f"{s['site']} {int(s['weight']) * 100 / total:.0f}%" for s in split))
    return ", ".join(parts) or "its own plan"


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationError("say why the line is rerouted", field="reason")
    return reason


def move_line(
    *, line: InboundLine, plan: RoutingPlan, reason: str, actor: Actor, now: datetime | None = None
) -> RoutingChange:
    """Route the line by another plan until reset (a split already in place stays)."""
    now = now or utcnow()
    who = _who(actor, line.organization_id)
    _require_line(who, line)
    if plan.organization_id != line.organization_id:
        raise NotFound("no such plan")
    current = _override_dict(_override_of(line.id)) or {"plan_id": None, "split": []}
    target_plan_id = None if plan.id == line.plan_id else plan.id  # "moving" back to its own plan clears it
    return _apply_override(line, who, {**current, "plan_id": target_plan_id}, _reason(reason), now)


def parse_split(text: str) -> list[tuple[str, int]]:
    """``"TKY=70, OSA=30"`` (or ``TKY:70 OSA:30``) → ``[("TKY", 70), ("OSA", 30)]``."""
    shares = []
    for part in text.replace(";", ",").replace(" ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        code, sep, weight = part.replace(":", "=").partition("=")
        percent = whole_number(weight.strip().rstrip("%"), maximum=100)
        if not sep or percent is None:
            raise ValidationError(f"{part!r}: write SITE=PERCENT, e.g. TKY=70, OSA=30", field="split")
        shares.append((code.strip(), percent))
    return shares


def split_line(
    *,
    line: InboundLine,
    shares: Sequence[tuple[str, int]],
    reason: str,
    actor: Actor,
    now: datetime | None = None,
) -> RoutingChange:
    """Spread the line's traffic across sites by weight (each call keeps to its site); no shares: no split."""
    now = now or utcnow()
    who = _who(actor, line.organization_id)
    _require_line(who, line)
    sites = _sites_by_code(line.organization_id)
    split: list[dict[str, Any]] = []
    for code, weight in shares:
        if code not in sites:
            raise ValidationError(f"there is no site {code}", field="split")
        if weight < 1:
            raise ValidationError("each share is at least 1", field="split")
        split.append({"site": code, "weight": int(weight)})
    try:
        routing.LineOverride(
            line.number, split=tuple(routing.SplitShare(s["site"], s["weight"]) for s in split)
        )
    except ValueError as exc:
        raise ValidationError(str(exc), field="split") from None
    current = _override_dict(_override_of(line.id)) or {"plan_id": None, "split": []}
    return _apply_override(line, who, {**current, "split": split}, _reason(reason), now)


def reset_line(*, line: InboundLine, reason: str, actor: Actor, now: datetime | None = None) -> RoutingChange:
    """Back to the line's own plan, unsplit."""
    now = now or utcnow()
    who = _who(actor, line.organization_id)
    _require_line(who, line)
    return _apply_override(line, who, None, _reason(reason), now)


def override_of_line(*, line: InboundLine) -> LineOverride | None:
    return _override_of(line.id)


# --------------------------------------------------------------------------------------------------------------
# Emergencies
# --------------------------------------------------------------------------------------------------------------


def _emergency_dict(emergency: Emergency) -> dict[str, Any]:
    return {"active": emergency.ended_at is None}


def _require_emergency_scope(who: _Who, emergency: Emergency) -> None:
    if emergency.scope is EmergencyScope.GLOBAL:
        _require_org_wide(who)
    elif emergency.scope is EmergencyScope.SITE:
        _require_site(who, emergency.site_id)
    else:
        line = db.session.get(InboundLine, emergency.line_id) if emergency.line_id else None
        if line is None:
            raise NotFound("the emergency's line no longer exists")
        _require_line(who, line)


def _set_emergency_active(
    emergency: Emergency,
    who: _Who,
    active: bool,
    reason: str,
    now: datetime,
    undoes: RoutingChange | None = None,
) -> RoutingChange:
    before = _emergency_dict(emergency)
    if active:
        emergency.ended_at, emergency.ended_by = None, None
    else:
        emergency.ended_at, emergency.ended_by = now, who.label
    db.session.flush()
    return _record_change(
        organization_id=emergency.organization_id,
        who=who,
        kind=ChangeKind.EMERGENCY,
        subject_id=emergency.id,
        summary=f"emergency mode ({_describe_emergency(emergency)}) " + ("on" if active else "off"),
        reason=reason,
        before=before,
        after=_emergency_dict(emergency),
        now=now,
        undoes=undoes,
    )


def _describe_emergency(emergency: Emergency) -> str:
    if emergency.scope is EmergencyScope.GLOBAL:
        return "everything"
    if emergency.scope is EmergencyScope.SITE:
        site = db.session.get(Site, emergency.site_id) if emergency.site_id else None
        return f"site {site.code if site else emergency.site_id}"
    line = db.session.get(InboundLine, emergency.line_id) if emergency.line_id else None
    return f"line {line.number if line else emergency.line_id}"


def start_emergency(
    *,
    organization_id: int,
    scope: EmergencyScope | str,
    announcement_ja: str,
    announcement_en: str = "",
    ends_at: datetime | None = None,
    actor: Actor,
    site_code: str | None = None,
    line_number: str | None = None,
    recording_url: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Emergency:
    """Emergency mode: callers hear the announcement (Japanese, then English), then only unmanned fallbacks.

    Also the entry point for a JMA rule (``actor="jma"``). ``site_code``/``line_number`` name the site or line
    for those scopes; ``ends_at`` (optional) ends it by itself."""
    now = now or utcnow()
    scope = EmergencyScope(scope)
    who = _who(actor, organization_id)
    if not (announcement_ja.strip() or announcement_en.strip() or recording_url):
        raise ValidationError("an emergency needs an announcement", field="announcement_ja")
    if recording_url and not recording_url.startswith(("https://", "http://")):
        raise ValidationError("the recording must be an http(s) URL", field="recording_url")
    if ends_at is not None:
        if ends_at.tzinfo is None:
            raise ValidationError("the end time needs a time zone", field="ends_at")
        if ends_at <= now:
            raise ValidationError("the end time is in the past", field="ends_at")
    emergency = Emergency(
        organization_id=organization_id,
        scope=scope,
        announcement_ja=announcement_ja.strip(),
        announcement_en=announcement_en.strip(),
        recording_url=recording_url or None,
        starts_at=now,
        ends_at=ends_at,
        created_by=who.label,
        created_at=now,
    )
    if scope is EmergencyScope.SITE:
        site = _sites_by_code(organization_id).get(site_code or "")
        if site is None:
            raise ValidationError(f"there is no site {site_code}", field="site")
        emergency.site_id = site.id
    elif scope is EmergencyScope.LINE:
        line = line_by_number(number=line_number or "")
        if line is None or line.organization_id != organization_id:
            raise ValidationError(f"there is no line {line_number}", field="line")
        emergency.line_id = line.id
    _require_emergency_scope(who, emergency)
    db.session.add(emergency)
    db.session.flush()
    _record_change(
        organization_id=organization_id,
        who=who,
        kind=ChangeKind.EMERGENCY,
        subject_id=emergency.id,
        summary=f"emergency mode ({_describe_emergency(emergency)}) on"
        + (f" until {ends_at.isoformat()}" if ends_at else ""),
        reason=reason.strip(),
        before={"active": False},
        after={"active": True},
        now=now,
    )
    return emergency


def end_emergency(
    *, emergency_id: int, organization_id: int, actor: Actor, reason: str = "", now: datetime | None = None
) -> Emergency:
    now = now or utcnow()
    emergency = db.session.get(Emergency, emergency_id)
    if emergency is None or emergency.organization_id != organization_id:
        raise NotFound("no such emergency")
    who = _who(actor, organization_id)
    _require_emergency_scope(who, emergency)
    if emergency.ended_at is not None:
        raise Conflict("this emergency has already ended")
    _set_emergency_active(emergency, who, False, reason.strip(), now)
    return emergency


def active_emergencies(*, organization_id: int, now: datetime) -> list[Emergency]:
    return list(
        db.session.scalars(
            select(Emergency)
            .where(
                Emergency.organization_id == organization_id,
                Emergency.ended_at.is_(None),
                or_(Emergency.ends_at.is_(None), Emergency.ends_at > now),
            )
            .order_by(Emergency.starts_at.desc())
        )
    )


# --------------------------------------------------------------------------------------------------------------
# Site agents
# --------------------------------------------------------------------------------------------------------------


def add_agent(*, site: Site, name: str, endpoint: str, available: bool = True, actor: Actor) -> Agent:
    who = _who(actor, site.organization_id)
    _require_site(who, site.id)
    endpoint = endpoint.strip()
    if not endpoint:
        raise ValidationError("an agent needs something to dial", field="endpoint")
    taken = db.session.scalar(
        select(Agent.id).where(Agent.organization_id == site.organization_id, Agent.endpoint == endpoint)
    )
    if taken is not None:
        raise ValidationError(f"{endpoint} is already an agent's endpoint", field="endpoint")
    agent = Agent(
        organization_id=site.organization_id,
        site_id=site.id,
        name=name,
        endpoint=endpoint,
        available=available,
    )
    db.session.add(agent)
    db.session.flush()
    audit(
        action="continuity.agent.add",
        organization_id=site.organization_id,
        actor=who.label,
        actor_user_id=who.user_id,
        target_type="agent",
        target_id=agent.id,
        summary=f"agent {name} ({endpoint}) added at site {site.code}",
    )
    return agent


def set_agent_available(*, agent_id: int, organization_id: int, available: bool, actor: Actor) -> Agent:
    agent = db.session.get(Agent, agent_id)
    if agent is None or agent.organization_id != organization_id:
        raise NotFound("no such agent")
    who = _who(actor, organization_id)
    _require_site(who, agent.site_id)
    if agent.available != available:
        agent.available = available
        agent.available_changed_at = utcnow()
        db.session.flush()
        audit(
            action="continuity.agent.availability",
            organization_id=organization_id,
            actor=who.label,
            actor_user_id=who.user_id,
            target_type="agent",
            target_id=agent.id,
            summary=f"agent {agent.name} " + ("available" if available else "away"),
        )
    return agent


# --------------------------------------------------------------------------------------------------------------
# Home agents
# --------------------------------------------------------------------------------------------------------------


def _number_hash(number: str, settings: Settings) -> str:
    """A keyed hash: recognises a number without storing it, and cannot be reversed by trying every number."""
    return hmac.new(settings.secret_key.encode(), number.encode(), hashlib.sha256).hexdigest()


def mask_number(number: str) -> str:
    """``+8190000000**`` style: enough to tell calls apart, not enough to call back."""
    if not number.startswith("+") or len(number) < 7:
        return "withheld" if not number or number.lower() in {"anonymous", "restricted", "unknown"} else "•••"
    return number[:-6] + "••••" + number[-2:]


def _normalise_number(number: str, settings: Settings) -> str:
    try:
        return normalise_phone(number, settings.default_region)
    except ValueError:
        raise ValidationError("this is not a phone number we can call", field="number") from None


def home_agent_of(*, staff_id: int) -> HomeAgent | None:
    return db.session.scalar(select(HomeAgent).where(HomeAgent.staff_id == staff_id))


def staff_by_token(*, token: str) -> Staff | None:
    if not token or len(token) > 64:
        return None
    return db.session.scalar(select(Staff).where(Staff.self_service_token == token))


def join_home_agent_pool(
    *,
    staff: Staff,
    number: str,
    settings: Settings,
    pin: str | None = None,
    via: str = "self-service",
    now: datetime | None = None,
) -> HomeAgent:
    """The person registers (or changes) the number to ring at home; the number is encrypted at once.

    Joining does not make anyone available: they say so when they are ready to take calls."""
    now = now or utcnow()
    normalised = _normalise_number(number, settings)
    agent = home_agent_of(staff_id=staff.id)
    if agent is None:
        agent = HomeAgent(
            organization_id=staff.organization_id, staff_id=staff.id, joined_at=now, available=False
        )
        db.session.add(agent)
    agent.number_encrypted = crypto.encrypt(normalised, settings.encryption_key)
    agent.number_hash = _number_hash(normalised, settings)
    if pin:
        set_home_agent_pin(home_agent=agent, pin=pin)
    db.session.flush()
    audit(
        action="continuity.home_agent.join",
        organization_id=staff.organization_id,
        actor=f"{via}:{staff.employee_id}",
        target_type="staff",
        target_id=staff.id,
        summary=f"{staff.employee_id} registered a number for the home-agent pool",  # never the number itself
    )
    return agent


def set_home_agent_pin(*, home_agent: HomeAgent, pin: str) -> None:
    pin = pin.strip()
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 8):
        raise ValidationError("the PIN is 4 to 8 digits", field="pin")
    home_agent.pin_hash = generate_password_hash(pin, method="pbkdf2:sha256:60000")


def check_home_agent_pin(*, home_agent: HomeAgent, pin: str) -> bool:
    return bool(home_agent.pin_hash) and check_password_hash(home_agent.pin_hash or "", pin.strip())


def own_number(*, home_agent: HomeAgent, settings: Settings) -> str | None:
    """The registered number, for its owner's own page only."""
    if home_agent.number_encrypted is None:
        return None
    return crypto.decrypt(home_agent.number_encrypted, settings.encryption_key)


def home_agent_by_caller(*, organization_id: int, caller: str, settings: Settings) -> HomeAgent | None:
    if not caller.startswith("+"):
        return None
    return db.session.scalar(
        select(HomeAgent).where(
            HomeAgent.organization_id == organization_id,
            HomeAgent.number_hash == _number_hash(caller, settings),
        )
    )


def set_home_agent_available(
    *, home_agent: HomeAgent, available: bool, via: str, now: datetime | None = None
) -> HomeAgent:
    """Available: calls may ring this person now. Away: they don't."""
    now = now or utcnow()
    if available and home_agent.number_encrypted is None:
        raise ValidationError("register the number to ring first", field="number")
    if home_agent.available != available:
        home_agent.available = available
        home_agent.available_changed_at = now
        db.session.flush()
        staff = db.session.get(Staff, home_agent.staff_id)
        audit(
            action="continuity.home_agent.availability",
            organization_id=home_agent.organization_id,
            actor=f"{via}:{staff.employee_id if staff else home_agent.staff_id}",
            target_type="staff",
            target_id=home_agent.staff_id,
            summary="home agent " + ("available" if available else "away") + f" (by {via})",
        )
    return home_agent


def leave_home_agent_pool(*, home_agent: HomeAgent, via: str = "self-service") -> None:
    staff = db.session.get(Staff, home_agent.staff_id)
    organization_id = home_agent.organization_id
    db.session.delete(home_agent)
    db.session.flush()
    audit(
        action="continuity.home_agent.leave",
        organization_id=organization_id,
        actor=f"{via}:{staff.employee_id if staff else ''}",
        target_type="staff",
        target_id=staff.id if staff else None,
        summary="left the home-agent pool (number deleted)",
    )


@dataclass(frozen=True)
class PoolInvitation:
    """An invitation to the home-agent pool sent after a safety broadcast (read from the ivr part)."""

    id: int
    staff: Staff
    accepted: bool
    message: str


HOME_AGENT_INVITATION = "home_agent_pool"


def invitation_by_token(*, token: str) -> PoolInvitation | None:
    """The ivr part's invitation for this token, when it invites to the home-agent pool."""
    if not token or len(token) > 64:
        return None
    try:
        from ivr.models import Invitation as IvrInvitation
    except ImportError:  # the ivr part is not installed: nobody was invited
        return None
    row = db.session.scalar(
        select(IvrInvitation).where(
            IvrInvitation.token == token, IvrInvitation.purpose == HOME_AGENT_INVITATION
        )
    )
    if row is None:
        return None
    staff = db.session.get(Staff, row.staff_id)
    if staff is None:
        return None
    return PoolInvitation(id=row.id, staff=staff, accepted=row.accepted_at is not None, message=row.message)


def accept_invitation(
    *, token: str, number: str, pin: str | None, settings: Settings, now: datetime | None = None
) -> HomeAgent:
    """Join through the invitation link: the invitation is accepted (through the ivr part, so its own record
    and hooks see it) and the number registered."""
    invitation = invitation_by_token(token=token)
    if invitation is None:
        raise NotFound("this invitation does not exist")
    normalised = _normalise_number(number, settings)  # refuse a bad number before accepting anything
    if not invitation.accepted:
        from ivr import service as ivr_service

        row = ivr_service.invitation_by_token(token)
        if row is not None:
            ivr_service.respond_to_invitation(invitation=row, accept=True, now=now)
    return join_home_agent_pool(
        staff=invitation.staff, number=normalised, pin=pin, settings=settings, via="invitation", now=now
    )


def on_invitation_accepted(invitation: Any) -> None:
    """Hook for the ivr part: whoever accepts an invitation to the home-agent pool is in it (away, until they
    register a number on their own page and say they are available)."""
    if getattr(invitation, "purpose", None) != HOME_AGENT_INVITATION:
        return
    staff = db.session.get(Staff, invitation.staff_id)
    if staff is None or home_agent_of(staff_id=staff.id) is not None:
        return
    db.session.add(HomeAgent(organization_id=staff.organization_id, staff_id=staff.id, available=False))
    db.session.flush()


# --------------------------------------------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------------------------------------------


def _get_or_create(model_query: Callable[[], Any], make: Callable[[], Any]) -> Any:
    """Fetch a row, or insert it; a concurrent insert of the same row (a retried webhook) wins quietly."""
    existing = model_query()
    if existing is not None:
        return existing
    row = make()
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:
        existing = model_query()
        if existing is None:
            raise
        return existing
    return row


def call_by_sid(*, call_sid: str) -> InboundCall | None:
    return db.session.scalar(select(InboundCall).where(InboundCall.call_sid == call_sid))


# The hot path of the voice webhooks builds its statements once (building one costs more than running it).
_CALL_AND_LINE = (
    select(InboundCall, InboundLine)
    .join(InboundLine, InboundLine.id == InboundCall.line_id)
    .where(InboundCall.call_sid == bindparam("call_sid"))
)
_CALL_ID = select(InboundCall.id).where(InboundCall.call_sid == bindparam("call_sid"))
_CALL_COLUMNS = (
    "organization_id",
    "line_id",
    "call_sid",
    "caller_hash",
    "caller_masked",
    "mode",
    "started_at",
)
_LEG_COLUMNS = (
    "call_id",
    "position",
    "kind",
    "site_code",
    "queue_name",
    "reason",
    "endpoint_count",
    "started_at",
)
_inserts: dict[tuple[str, str], Any] = {}
_legs = cast(Table, CallLeg.__table__)
_FINISH_LEG = (
    update(_legs)
    .where(
        _legs.c.call_id == bindparam("leg_call_id"),
        _legs.c.position == bindparam("leg_position"),
        _legs.c.outcome.is_(None),
    )
    .values(
        {
            name: bindparam(f"new_{name}", type_=_legs.c[name].type)
            for name in ("outcome", "ended_at", "dial_call_sid", "duration_s")
        }
    )
)
_LEG_OUTCOME = select(CallLeg.outcome).where(
    CallLeg.call_id == bindparam("leg_call_id"), CallLeg.position == bindparam("leg_position")
)


def call_and_line_by_sid(*, call_sid: str) -> tuple[InboundCall, InboundLine] | None:
    """The call and its line, in one query (a webhook coming back for a call needs both)."""
    row = db.session.execute(_CALL_AND_LINE, {"call_sid": call_sid}).first()
    return (row[0], row[1]) if row is not None else None


def _insert_unless_present(
    model: type[Any], columns: Sequence[str], key: Sequence[str], *, returning_id: bool = False
) -> Any:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` of ``columns`` (bound by name), on SQLite or PostgreSQL (the two
    databases Lifeline runs on): one statement, no savepoint, and a concurrent insert of the same row (a retried
    webhook) wins quietly. ``returning_id``: the new row's id, or no row when it was there already."""
    dialect = db.session.get_bind().dialect.name
    statement: Any = _inserts.get((model.__name__, dialect))
    if statement is not None:
        return statement
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model.__table__)
    table = cast(Table, model.__table__)
    statement = statement.values(
        {column: bindparam(column, type_=table.c[column].type) for column in columns}
    ).on_conflict_do_nothing(index_elements=list(key))
    if returning_id:
        statement = statement.returning(table.c.id)
    _inserts[(model.__name__, dialect)] = statement
    return statement


def _record_call(
    *, line: InboundLine, call_sid: str, caller: str, mode: str, settings: Settings, now: datetime
) -> int:
    """The id of the call with this SID, recorded now unless it already was (the first record is kept)."""
    values = {
        "organization_id": line.organization_id,
        "line_id": line.id,
        "call_sid": call_sid,
        "caller_hash": _number_hash(caller, settings),
        "caller_masked": mask_number(caller),
        "mode": mode,
        "started_at": now,
    }
    statement = _insert_unless_present(InboundCall, _CALL_COLUMNS, ["call_sid"], returning_id=True)
    call_id: int | None = db.session.scalar(statement, values)
    if call_id is None:  # recorded by an earlier (or concurrent) delivery of the same webhook
        call_id = db.session.scalar(_CALL_ID, {"call_sid": call_sid})
        if call_id is None:  # pragma: no cover - the conflicting row cannot disappear within the transaction
            raise Conflict("the call could not be recorded")
    return call_id


def open_call(
    *, line: InboundLine, call_sid: str, caller: str, mode: str, settings: Settings, now: datetime
) -> InboundCall:
    _record_call(line=line, call_sid=call_sid, caller=caller, mode=mode, settings=settings, now=now)
    call = call_by_sid(call_sid=call_sid)
    assert call is not None
    return call


def _leg_at(call: InboundCall, position: int) -> CallLeg | None:
    return db.session.scalar(select(CallLeg).where(CallLeg.call_id == call.id, CallLeg.position == position))


def _record_leg(*, call_id: int, chosen: routing.Candidate, now: datetime) -> None:
    """The leg for the chosen target, recorded once per position (a retried webhook changes nothing)."""
    target = chosen.target
    values = {
        "call_id": call_id,
        "position": chosen.position,
        "kind": target.kind,
        "site_code": target.site_code,
        "queue_name": target.queue_name,
        "reason": chosen.reason,
        "endpoint_count": len(chosen.endpoints),
        "started_at": now,
    }
    db.session.execute(_insert_unless_present(CallLeg, _LEG_COLUMNS, ["call_id", "position"]), values)


def route_call(
    *,
    line: InboundLine,
    call_sid: str,
    caller: str,
    attempt: int,
    settings: Settings,
    now: datetime | None = None,
    call: InboundCall | None = None,
) -> routing.RoutingDecision:
    """Where this call goes at ``attempt``; records the call (once) and the leg for the chosen target (once).

    ``call``: the call, when the caller has it already (a webhook coming back for it); otherwise it is recorded
    (or found) by ``call_sid``.
    """
    now = now or utcnow()
    plan = plan_of_line(line)
    state = live_snapshot(
        plan=plan, organization_id=line.organization_id, at=now, encryption_key=settings.encryption_key
    )
    decision = routing.choose(plan, state, now, attempt=attempt, call_key=call_sid)
    if call is not None:
        call_id = call.id
    else:
        call_id = _record_call(
            line=line, call_sid=call_sid, caller=caller, mode=decision.mode.value, settings=settings, now=now
        )
    chosen = decision.chosen
    if chosen is None:
        if call is not None:
            if call.ended_at is None:
                call.ended_at = now
                call.outcome = call.outcome or "exhausted"
        else:
            db.session.execute(
                update(InboundCall)
                .where(InboundCall.id == call_id, InboundCall.ended_at.is_(None))
                .values(ended_at=now, outcome=func.coalesce(InboundCall.outcome, "exhausted"))
                .execution_options(synchronize_session="fetch")
            )
        return decision
    _record_leg(call_id=call_id, chosen=chosen, now=now)
    return decision


def finish_leg(
    *,
    call: InboundCall,
    position: int,
    outcome: LegOutcome,
    now: datetime | None = None,
    dial_call_sid: str | None = None,
    duration_s: int | None = None,
) -> LegOutcome | None:
    """Record how the target at ``position`` ended; returns the outcome the leg keeps, None when the call has no
    leg there. The first report wins: a retried (or concurrent) callback changes nothing and gets the first
    outcome back."""
    now = now or utcnow()
    # One conditional UPDATE: "not finished yet" is checked by the database, where a concurrent report waits
    # for the first to commit and then finds the leg finished.
    finished = db.session.execute(
        _FINISH_LEG,
        {
            "leg_call_id": call.id,
            "leg_position": position,
            "new_outcome": outcome,
            "new_ended_at": now,
            "new_dial_call_sid": dial_call_sid,
            "new_duration_s": duration_s,
        },
    )
    if cast(CursorResult[Any], finished).rowcount != 1:
        recorded: LegOutcome | None = db.session.scalar(
            _LEG_OUTCOME, {"leg_call_id": call.id, "leg_position": position}
        )
        return recorded
    for loaded in list(db.session.identity_map.values()):  # the leg, if this session has it, reads the update
        if isinstance(loaded, CallLeg) and loaded.call_id == call.id and loaded.position == position:
            db.session.expire(loaded)
    if outcome is LegOutcome.COMPLETED:
        call.answered_at = call.answered_at or now
        call.outcome = "completed"
        db.session.flush()
    return outcome


def end_call(*, call: InboundCall, outcome: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    if call.ended_at is None:
        call.ended_at = now
    if call.outcome is None:
        call.outcome = outcome
    for leg in call.legs:
        if leg.outcome is None:
            leg.outcome = LegOutcome.HUNG_UP
            leg.ended_at = now
    db.session.flush()


def record_voicemail(
    *,
    call: InboundCall,
    position: int,
    caller: str,
    recording_url: str,
    recording_sid: str | None,
    duration_s: int,
    settings: Settings,
    now: datetime | None = None,
) -> Voicemail:
    """A caller left a message: it joins the callback list (the caller's number encrypted)."""
    now = now or utcnow()
    if not recording_url.startswith(("https://", "http://")):
        raise ValidationError("a recording URL is required")

    def existing() -> Voicemail | None:
        if recording_sid:
            return db.session.scalar(select(Voicemail).where(Voicemail.recording_sid == recording_sid))
        return db.session.scalar(
            select(Voicemail).where(Voicemail.call_id == call.id, Voicemail.recording_url == recording_url)
        )

    voicemail: Voicemail = _get_or_create(
        existing,
        lambda: Voicemail(
            organization_id=call.organization_id,
            line_id=call.line_id,
            call_id=call.id,
            recording_sid=recording_sid,
            recording_url=recording_url,
            duration_s=max(0, duration_s),
            caller_encrypted=crypto.encrypt(caller, settings.encryption_key),
            caller_masked=mask_number(caller),
            created_at=now,
        ),
    )
    finish_leg(call=call, position=position, outcome=LegOutcome.RECORDED, now=now)
    call.outcome = "voicemail"
    db.session.flush()
    return voicemail


def request_callback(
    *, call: InboundCall, position: int, caller: str, settings: Settings, now: datetime | None = None
) -> CallbackRequest:
    now = now or utcnow()
    request: CallbackRequest = _get_or_create(
        lambda: db.session.scalar(select(CallbackRequest).where(CallbackRequest.call_id == call.id)),
        lambda: CallbackRequest(
            organization_id=call.organization_id,
            line_id=call.line_id,
            call_id=call.id,
            caller_encrypted=crypto.encrypt(caller, settings.encryption_key),
            caller_masked=mask_number(caller),
            created_at=now,
        ),
    )
    finish_leg(call=call, position=position, outcome=LegOutcome.CALLBACK_REQUESTED, now=now)
    call.outcome = "callback_request"
    db.session.flush()
    return request


def status_page_url(*, organization_id: int, settings: Settings) -> str:
    org = db.session.get(Organization, organization_id)
    slug = org.slug if org else str(organization_id)
    return f"{settings.public_base_url.rstrip('/')}/status/{slug}"


def send_status_sms(
    *,
    call: InboundCall,
    position: int,
    caller: str,
    text: str,
    settings: Settings,
    send: Callable[[str, str], Any],
    now: datetime | None = None,
) -> bool:
    """Text the caller the status page link, once per call, after the transaction commits. False when the
    caller cannot receive one (no number) or it was already sent."""
    now = now or utcnow()
    leg = _leg_at(call, position)
    if leg is None or leg.outcome is LegOutcome.SMS_SENT or not caller.startswith("+"):
        return False
    finish_leg(call=call, position=position, outcome=LegOutcome.SMS_SENT, now=now)
    call.outcome = "sms_sent"
    body = f"{text} {status_page_url(organization_id=call.organization_id, settings=settings)}"
    db.after_commit(lambda: send(caller, body))
    audit(
        action="continuity.call.sms_link",
        organization_id=call.organization_id,
        actor=SYSTEM,
        target_type="inbound_call",
        target_id=call.id,
        summary=f"status page link sent to {call.caller_masked}",
    )
    return True


def caller_number(*, record: Voicemail | CallbackRequest, settings: Settings) -> str:
    """The number to call back. For supervisors' screens only."""
    return crypto.decrypt(record.caller_encrypted, settings.encryption_key)


def mark_handled(
    *, kind: str, record_id: int, organization_id: int, actor: Actor, now: datetime | None = None
) -> Voicemail | CallbackRequest:
    """A voicemail or callback request was dealt with (``kind``: ``voicemail`` or ``callback``)."""
    now = now or utcnow()
    record: Voicemail | CallbackRequest | None = (
        db.session.get(Voicemail, record_id)
        if kind == "voicemail"
        else db.session.get(CallbackRequest, record_id)
    )
    if record is None or record.organization_id != organization_id:
        raise NotFound("not found")
    who = _who(actor, organization_id)
    line = db.session.get(InboundLine, record.line_id)
    if line is not None:
        _require_line(who, line)
    if record.handled_at is None:
        record.handled_at = now
        record.handled_by = who.label
        db.session.flush()
        audit(
            action=f"continuity.{kind}.handled",
            organization_id=organization_id,
            actor=who.label,
            actor_user_id=who.user_id,
            target_type=kind,
            target_id=record.id,
            summary=f"{kind} from {record.caller_masked} handled",
        )
    return record


# --------------------------------------------------------------------------------------------------------------
# The supervisor's board
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteRow:
    site: Site
    status: SiteStatus | None
    agents: list[Agent]

    @property
    def state(self) -> SiteState:
        return self.status.state if self.status else SiteState.NORMAL

    def heartbeat_age_s(self, now: datetime) -> int | None:
        if self.status is None or self.status.last_heartbeat_at is None:
            return None
        return int((now - self.status.last_heartbeat_at).total_seconds())


@dataclass(frozen=True)
class LineRow:
    line: InboundLine
    decision: routing.RoutingDecision | None
    override: LineOverride | None
    override_text: str


@dataclass(frozen=True)
class TargetTraffic:
    kind: str
    site: str | None
    outcomes: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


@dataclass
class Board:
    now: datetime
    sites: list[SiteRow]
    lines: list[LineRow]
    home_agents_available: int
    home_agents_total: int
    traffic: list[TargetTraffic]
    calls_recent: int
    failovers_recent: int
    changes: list[RoutingChange]
    voicemails: list[Voicemail]
    callbacks: list[CallbackRequest]
    emergencies: list[Emergency]
    plans: list[RoutingPlan]
    site_codes: dict[int, str] = field(default_factory=dict)
    line_numbers: dict[int, str] = field(default_factory=dict)


def board(*, organization_id: int, now: datetime | None = None) -> Board:
    now = now or utcnow()
    sites = list(
        db.session.scalars(select(Site).where(Site.organization_id == organization_id).order_by(Site.code))
    )
    statuses = {
        s.site_id: s
        for s in db.session.scalars(select(SiteStatus).where(SiteStatus.organization_id == organization_id))
    }
    agents_by_site: dict[int, list[Agent]] = defaultdict(list)
    for agent in db.session.scalars(
        select(Agent).where(Agent.organization_id == organization_id).order_by(Agent.name)
    ):
        agents_by_site[agent.site_id].append(agent)
    site_rows = [SiteRow(site, statuses.get(site.id), agents_by_site.get(site.id, [])) for site in sites]

    state = snapshot(organization_id=organization_id, at=now)
    overrides = {
        o.line_id: o
        for o in db.session.scalars(
            select(LineOverride).where(LineOverride.organization_id == organization_id)
        )
    }
    line_rows = []
    for line in lines_of(organization_id=organization_id):
        decision = None
        if line.kind is LineKind.CUSTOMER and line.plan is not None:
            decision = routing.choose(routing_plan(line.plan, line.number), state, now)
        override = overrides.get(line.id)
        line_rows.append(LineRow(line, decision, override, _describe_override(_override_dict(override))))

    home_total, home_available = db.session.execute(
        select(
            func.count(HomeAgent.id), func.count(HomeAgent.id).filter(HomeAgent.available.is_(True))
        ).where(HomeAgent.organization_id == organization_id)
    ).one()

    since = now - RECENT
    recent_calls = and_(InboundCall.organization_id == organization_id, InboundCall.started_at >= since)
    traffic_rows: dict[tuple[str, str | None], dict[str, int]] = defaultdict(dict)
    for kind, site_code, outcome, count in db.session.execute(
        select(CallLeg.kind, CallLeg.site_code, CallLeg.outcome, func.count())
        .join(InboundCall, InboundCall.id == CallLeg.call_id)
        .where(recent_calls)
        .group_by(CallLeg.kind, CallLeg.site_code, CallLeg.outcome)
    ):
        traffic_rows[(kind.value, site_code)][outcome.value if outcome else "in progress"] = count
    traffic = [
        TargetTraffic(kind, site, outcomes)
        for (kind, site), outcomes in sorted(
            traffic_rows.items(), key=lambda item: (item[0][0], item[0][1] or "")
        )
    ]
    calls_recent = db.session.scalar(select(func.count(InboundCall.id)).where(recent_calls)) or 0
    legs_per_call = (
        select(CallLeg.call_id)
        .join(InboundCall, InboundCall.id == CallLeg.call_id)
        .where(recent_calls, CallLeg.kind.in_(list(routing.HUMAN_KINDS)))
        .group_by(CallLeg.call_id)
        .having(func.count(CallLeg.id) > 1)
        .subquery()
    )
    failovers = db.session.scalar(select(func.count()).select_from(legs_per_call)) or 0

    return Board(
        now=now,
        sites=site_rows,
        lines=line_rows,
        home_agents_available=home_available or 0,
        home_agents_total=home_total or 0,
        traffic=traffic,
        calls_recent=calls_recent,
        failovers_recent=failovers,
        changes=recent_changes(organization_id=organization_id),
        voicemails=_unhandled(Voicemail, organization_id),
        callbacks=_unhandled(CallbackRequest, organization_id),
        emergencies=active_emergencies(organization_id=organization_id, now=now),
        plans=plans_of(organization_id=organization_id),
        site_codes={s.id: s.code for s in sites},
        line_numbers={row.line.id: row.line.number for row in line_rows},
    )


def _unhandled(model: Any, organization_id: int, limit: int = 100) -> list[Any]:
    condition: ColumnElement[bool] = and_(
        model.organization_id == organization_id, model.handled_at.is_(None)
    )
    return list(db.session.scalars(select(model).where(condition).order_by(model.created_at).limit(limit)))


def sites_of(*, organization_id: int) -> list[Site]:
    return list(
        db.session.scalars(select(Site).where(Site.organization_id == organization_id).order_by(Site.code))
    )


def site_by_code(*, organization_id: int, code: str) -> Site:
    site = db.session.scalar(select(Site).where(Site.organization_id == organization_id, Site.code == code))
    if site is None:
        raise NotFound(f"there is no site {code}")
    return site


def get_site(*, organization_id: int, site_id: int) -> Site:
    site = db.session.get(Site, site_id)
    if site is None or site.organization_id != organization_id:
        raise NotFound("no such site")
    return site


def organizations(*, slug: str | None = None) -> list[Organization]:
    query = select(Organization).order_by(Organization.id)
    if slug:
        query = query.where(Organization.slug == slug)
    return list(db.session.scalars(query))
