"""Safety broadcasts: every change and every read the screens, webhooks, API, CLI and JMA trigger need.

Keyword-only arguments, ``flush()`` only (the edge commits), side effects (waking the dispatcher) after commit.
Aggregates are SQL ``GROUP BY``; nothing here loads every recipient of a broadcast into Python at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)

from core import db
from core.auth.models import Role, RoleAssignment, User
from core.auth.service import Principal, audit
from core.directory.models import ContactKind, ContactPoint, Department, Site, Staff
from core.errors import Conflict, NotFound, ValidationError
from core.time import utcnow
from ivr import ladder as ladder_mod
from ivr.estimate import Estimate, estimate_finish
from ivr.models import (
    Answer,
    AnswerChannel,
    Attempt,
    AttemptChannel,
    AttemptState,
    Broadcast,
    BroadcastMode,
    BroadcastState,
    BroadcastTemplate,
    Invitation,
    Recipient,
    RecipientState,
    ladder_attempt_row,
)
from ivr.scenarios import (
    BUILTIN,
    BUILTIN_ORDER,
    ScenarioTemplate,
    TemplateError,
    parse_sms_reply,
    parse_template,
)

INSERT_CHUNK = 5000
ANALYZE_AFTER = 5000  # recipients added at once (see _insert_recipients)
DEFAULT_SUMMARY_MINUTES = 10
DEFAULT_DEADLINE = timedelta(hours=72)
VIEW_ROLES = (Role.CRISIS_MANAGER, Role.MANAGER)
ACTIVE_RECIPIENT_STATES = (RecipientState.PENDING, RecipientState.CONTACTING)
NOT_ANSWERED_STATES = (RecipientState.PENDING, RecipientState.CONTACTING, RecipientState.UNREACHED)

# Twilio error codes that mean "this address will never work on this channel": the ladder stops using it.
# 21211 invalid 'To' number, 21214 'To' cannot be reached, 21217 not a valid phone number, 21610 recipient
# unsubscribed (STOP), 21612 cannot route to this number, 21614 not a mobile number, 30005 unknown destination
# handset, 30006 landline or unreachable carrier.
PERMANENT_ERROR_CODES = frozenset({"21211", "21214", "21217", "21610", "21612", "21614", "30005", "30006"})


# --- templates ---------------------------------------------------------------------------------------------------


def ensure_templates(*, organization_id: int) -> int:
    """Seed the built-in templates an organization does not have yet (idempotent). Returns how many were added."""
    have = set(
        db.session.scalars(
            select(BroadcastTemplate.key).where(BroadcastTemplate.organization_id == organization_id)
        )
    )
    added = 0
    for key in BUILTIN_ORDER:
        if key not in have:
            db.session.add(
                BroadcastTemplate(
                    organization_id=organization_id, key=key, definition=BUILTIN[key], builtin=True
                )
            )
            added += 1
    if added:
        db.session.flush()
    return added


def list_templates(*, organization_id: int) -> list[BroadcastTemplate]:
    ensure_templates(organization_id=organization_id)
    rows = db.session.scalars(
        select(BroadcastTemplate).where(BroadcastTemplate.organization_id == organization_id)
    ).all()
    order = {k: i for i, k in enumerate(BUILTIN_ORDER)}
    return sorted(rows, key=lambda t: (order.get(t.key, 99), t.key))


def get_template(*, organization_id: int, key: str) -> ScenarioTemplate:
    ensure_templates(organization_id=organization_id)
    row = db.session.scalar(
        select(BroadcastTemplate).where(
            BroadcastTemplate.organization_id == organization_id, BroadcastTemplate.key == key
        )
    )
    if row is None:
        raise NotFound(f"no template {key!r}")
    return parse_template(row.definition)


def save_template(
    *, organization_id: int, definition: Mapping[str, Any], actor: str, actor_user_id: int | None = None
) -> BroadcastTemplate:
    """Create or replace a template from its JSON definition; raises ValidationError listing every problem."""
    try:
        parsed = parse_template(definition)
    except TemplateError as exc:
        raise ValidationError("the template is not valid", errors=exc.errors) from exc
    ensure_templates(organization_id=organization_id)
    row = db.session.scalar(
        select(BroadcastTemplate).where(
            BroadcastTemplate.organization_id == organization_id, BroadcastTemplate.key == parsed.key
        )
    )
    created = row is None
    if row is None:
        row = BroadcastTemplate(organization_id=organization_id, key=parsed.key, builtin=False, definition={})
        db.session.add(row)
    row.definition = parsed.as_dict()
    db.session.flush()
    audit(
        action="ivr.template.create" if created else "ivr.template.update",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="ivr_template",
        target_id=parsed.key,
        summary=f"template {parsed.key} {'created' if created else 'changed'}",
    )
    return row


def snapshot(broadcast: Broadcast) -> ScenarioTemplate:
    return parse_template(broadcast.template)


# --- audience ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """Who a broadcast reaches: a person matching any of the parts is in (``everyone`` means all staff)."""

    everyone: bool = False
    sites: frozenset[str] = frozenset()  # site codes
    departments: frozenset[str] = frozenset()  # department names (their sub-departments included)
    prefectures: frozenset[str] = frozenset()  # where they work or where they live
    work_prefectures: frozenset[str] = frozenset()
    home_prefectures: frozenset[str] = frozenset()
    staff_ids: frozenset[int] = frozenset()

    @classmethod
    def of(cls, value: Any) -> Audience:
        """Accepts an :class:`Audience`, a dict (API/JSON) or any object with the same attributes (the JMA rules')."""
        if isinstance(value, Audience):
            return value
        get: Callable[[str], Any]
        if isinstance(value, Mapping):
            get = value.get
        else:

            def get(name: str) -> Any:
                return getattr(value, name, None)

        return cls(
            everyone=bool(get("everyone")),
            sites=frozenset(str(s) for s in get("sites") or ()),
            departments=frozenset(str(d) for d in get("departments") or ()),
            prefectures=frozenset(str(p).zfill(2) for p in get("prefectures") or ()),
            work_prefectures=frozenset(str(p).zfill(2) for p in get("work_prefectures") or ()),
            home_prefectures=frozenset(str(p).zfill(2) for p in get("home_prefectures") or ()),
            staff_ids=frozenset(int(i) for i in get("staff_ids") or ()),
        )

    @property
    def is_empty(self) -> bool:
        return not self.everyone and not any(
            (
                self.sites,
                self.departments,
                self.prefectures,
                self.work_prefectures,
                self.home_prefectures,
                self.staff_ids,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "everyone": self.everyone,
            "sites": sorted(self.sites),
            "departments": sorted(self.departments),
            "prefectures": sorted(self.prefectures),
            "work_prefectures": sorted(self.work_prefectures),
            "home_prefectures": sorted(self.home_prefectures),
            "staff_ids": sorted(self.staff_ids),
        }

    def describe(self) -> str:
        if self.everyone:
            return "everyone"
        parts = [
            f"{label} {', '.join(sorted(map(str, values)))}"
            for label, values in (
                ("sites", self.sites),
                ("departments", self.departments),
                ("prefectures", self.prefectures),
                ("work prefectures", self.work_prefectures),
                ("home prefectures", self.home_prefectures),
            )
            if values
        ]
        if self.staff_ids:
            parts.append(f"{len(self.staff_ids)} listed people")
        return "; ".join(parts) or "nobody"


def _audience_condition(organization_id: int, audience: Audience) -> ColumnElement[bool]:
    from core.auth.service import department_descendants

    if audience.everyone:
        return true()
    conditions: list[ColumnElement[bool]] = []
    if audience.sites:
        known = dict(
            db.session.execute(
                select(Site.code, Site.id).where(
                    Site.organization_id == organization_id, Site.code.in_(audience.sites)
                )
            ).all()
        )
        missing = sorted(audience.sites - set(known))
        if missing:
            raise ValidationError(f"unknown site codes: {', '.join(missing)}", field="sites")
        conditions.append(Staff.site_id.in_(known.values()))
    if audience.departments:
        known_depts = dict(
            db.session.execute(
                select(Department.name, Department.id).where(
                    Department.organization_id == organization_id, Department.name.in_(audience.departments)
                )
            ).all()
        )
        missing = sorted(audience.departments - set(known_depts))
        if missing:
            raise ValidationError(f"unknown departments: {', '.join(missing)}", field="departments")
        conditions.append(
            Staff.department_id.in_(department_descendants(organization_id, known_depts.values()))
        )
    work = audience.prefectures | audience.work_prefectures
    home = audience.prefectures | audience.home_prefectures
    if work:
        conditions.append(
            Staff.site_id.in_(
                select(Site.id).where(Site.organization_id == organization_id, Site.prefecture_code.in_(work))
            )
        )
    if home:
        conditions.append(Staff.home_prefecture.in_(home))
    if audience.staff_ids:
        conditions.append(Staff.id.in_(audience.staff_ids))
    return or_(*conditions) if conditions else false()


def count_audience(*, organization_id: int, audience: Any) -> int:
    condition = _audience_condition(organization_id, Audience.of(audience))
    return int(
        db.session.scalar(
            select(func.count()).select_from(Staff).where(Staff.organization_id == organization_id, condition)
        )
        or 0
    )


def people_outside_scope(
    *, organization_id: int, principal: Principal, audience: Any = None, broadcast_id: int | None = None
) -> int:
    """How many people of ``audience`` (or of a broadcast's recipients) a crisis manager's scope does not cover.

    A crisis manager limited to some sites or departments starts and runs broadcasts for their people only.
    """
    if principal.is_org_wide(Role.CRISIS_MANAGER):
        return 0
    covered = principal.staff_filter(Role.CRISIS_MANAGER)
    if broadcast_id is not None:
        query = (
            select(func.count())
            .select_from(Recipient)
            .join(Staff, Staff.id == Recipient.staff_id)
            .where(Recipient.broadcast_id == broadcast_id, ~covered)
        )
    else:
        query = (
            select(func.count())
            .select_from(Staff)
            .where(
                Staff.organization_id == organization_id,
                _audience_condition(organization_id, Audience.of(audience)),
                ~covered,
            )
        )
    return int(db.session.scalar(query) or 0)


# --- starting and widening ---------------------------------------------------------------------------------------


def new_token() -> str:
    """128 random bits: the answer link is the only thing that identifies the person."""
    return secrets.token_urlsafe(16)


def _kick_dispatcher(broadcast_id: int) -> None:
    from ivr import tasks

    db.after_commit(lambda: tasks.kick_dispatcher(broadcast_id))


def _insert_recipients(
    broadcast: Broadcast,
    condition: ColumnElement[bool],
    *,
    exclude_existing: bool,
    now: datetime,
    first_steps: ladder_mod.FirstSteps | None = None,
) -> int:
    """Add the people matching ``condition``; returns how many.

    With ``first_steps`` each person is written already past their first ladder step, as the dispatcher's first
    run would leave them, and that step's attempts are written with them; without it they are ``pending`` and
    the dispatcher takes their first step.
    """
    query = (
        select(
            Staff.id,
            Staff.site_id,
            Staff.department_id,
            Staff.home_prefecture,
            Staff.language,
            Site.prefecture_code,
        )
        .outerjoin(Site, Site.id == Staff.site_id)
        .where(Staff.organization_id == broadcast.organization_id, condition)
        .order_by(Staff.id)
    )
    if exclude_existing:
        query = query.where(
            ~Staff.id.in_(select(Recipient.staff_id).where(Recipient.broadcast_id == broadcast.id))
        )
    total = 0
    chunk: list[dict[str, Any]] = []
    for staff_id, site_id, department_id, home_pref, language, site_pref in db.session.execute(
        query.execution_options(yield_per=INSERT_CHUNK)
    ):
        chunk.append(
            {
                "broadcast_id": broadcast.id,
                "staff_id": staff_id,
                "token": new_token(),
                "language": str(language.value if hasattr(language, "value") else language),
                "state": RecipientState.PENDING,
                "cycle": 0,
                "step": 0,
                "next_action_at": now,
                "site_id": site_id,
                "department_id": department_id,
                "prefecture": site_pref or "",
                "home_prefecture": home_pref or "",
                "created_at": now,
            }
        )
        if len(chunk) >= INSERT_CHUNK:
            total += _flush_recipients(chunk, first_steps)
            chunk = []
    if chunk:
        total += _flush_recipients(chunk, first_steps)
    if total >= ANALYZE_AFTER and db.session.get_bind().dialect.name == "postgresql":
        # Thousands of new people where the statistics say there are hardly any: until autovacuum
        # notices (a minute or more), the planner would pick nested loops for the dispatcher's queries that cost
        # minutes per round at 100,000 people. Fresh statistics, taken inside this transaction, prevent that.
        db.session.execute(text(f"ANALYZE {Recipient.__tablename__}"))
    return total


def _flush_recipients(rows: list[dict[str, Any]], first_steps: ladder_mod.FirstSteps | None = None) -> int:
    # Core executemany: one round trip per chunk, no ORM object per person (100,000 people must fit).
    attempts = [] if first_steps is None else _take_first_steps(rows, first_steps)
    db.session.execute(insert(cast(Table, Recipient.__table__)), rows)
    if attempts:
        db.session.execute(insert(cast(Table, Attempt.__table__)), attempts)
    return len(rows)


def _take_first_steps(rows: list[dict[str, Any]], first_steps: ladder_mod.FirstSteps) -> list[dict[str, Any]]:
    """Put each new recipient row where the dispatcher's first run would (``advance_ladders``: position, state,
    ``next_action_at``) and return the attempts that run would have written. Gives the rows their ids."""
    now = first_steps.now
    contact_ids: dict[int, list[int]] = {}
    kinds: dict[int, list[str]] = {}
    for staff_id, contact_id, kind in db.session.execute(
        select(ContactPoint.staff_id, ContactPoint.id, ContactPoint.kind)
        .where(ContactPoint.staff_id.in_([row["staff_id"] for row in rows]))
        .order_by(ContactPoint.staff_id, ContactPoint.position, ContactPoint.id)
    ):
        contact_ids.setdefault(staff_id, []).append(contact_id)
        kinds.setdefault(staff_id, []).append(kind)  # a StrEnum: the kind's value as it is
    # Per pattern of contact kinds: the recipient's new position and the attempt rows, less whose they are.
    plans: dict[tuple[str, ...], tuple[dict[str, Any], list[tuple[dict[str, Any], int]]]] = {}
    attempts: list[dict[str, Any]] = []
    for row, recipient_id in zip(rows, _new_recipient_ids(len(rows)), strict=True):
        staff_id = row["staff_id"]
        pattern = tuple(kinds.get(staff_id, ()))
        plan = plans.get(pattern)
        if plan is None:
            decision = first_steps.pattern(pattern)
            plan = plans[pattern] = (
                {
                    "state": RecipientState.UNREACHED if decision.finished else RecipientState.CONTACTING,
                    "cycle": decision.cycle,
                    "step": decision.step,
                    "next_action_at": decision.next_action_at,
                },
                [
                    (
                        ladder_attempt_row(
                            broadcast_id=row["broadcast_id"],
                            channel=send.channel,
                            cycle=decision.ran_cycle,
                            step=decision.ran_step,
                            now=now,
                        ),
                        send.contact_id,  # an index into the person's contact points
                    )
                    for send in decision.sends
                ],
            )
        position, sends = plan
        row.update(position)
        row["id"] = recipient_id
        if sends:
            mine = contact_ids[staff_id]
            attempts.extend(
                {**attempt, "recipient_id": recipient_id, "contact_point_id": mine[index]}
                for attempt, index in sends
            )
    return attempts


def _new_recipient_ids(count: int) -> list[int]:
    """Ids for ``count`` recipient rows about to be inserted, so their attempts can name them without RETURNING.

    PostgreSQL: taken from the table's sequence (safe with concurrent writers). SQLite: after the highest id, which
    nobody else can take meanwhile — this transaction holds the database's write lock (``BEGIN IMMEDIATE``, and
    the broadcast row is already written).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        return list(
            db.session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence('ivr_recipients', 'id')) FROM generate_series(1, :n)"
                ),
                {"n": count},
            )
        )
    highest = int(db.session.scalar(select(func.max(Recipient.id))) or 0)
    return list(range(highest + 1, highest + 1 + count))


def _channels(template: ScenarioTemplate, channels: Iterable[str] | None) -> list[str]:
    in_ladder = {c for step in template.ladder.steps for c in step.channels}
    chosen: list[str] = (
        list(dict.fromkeys(channels)) if channels else [c for c in ladder_mod.CHANNELS if c in in_ladder]
    )
    unknown = [c for c in chosen if c not in ladder_mod.CHANNELS]
    if unknown:
        raise ValidationError(f"unknown channels: {', '.join(unknown)} (sms, email, voice)", field="channels")
    if not chosen:
        raise ValidationError("choose at least one channel", field="channels")
    return chosen


def start_broadcast(
    *,
    organization_id: int,
    template: str,
    audience: Any,
    actor: str,
    actor_user_id: int | None = None,
    mode: BroadcastMode | str = BroadcastMode.REAL,
    channels: Iterable[str] | None = None,
    closes_at: datetime | None = None,
    include_family: bool | None = None,
    origin: str = "manual",
    title: str | None = None,
    summary_minutes: float | None = DEFAULT_SUMMARY_MINUTES,
    now: datetime | None = None,
) -> Broadcast:
    """Write the broadcast, one recipient per person and their first ladder step's attempts in the caller's
    transaction; sending starts after commit."""
    now = now or utcnow()
    mode = BroadcastMode(mode)
    who = Audience.of(audience)
    if who.is_empty:
        raise ValidationError("choose who the broadcast goes to", field="audience")
    scenario = get_template(organization_id=organization_id, key=template)
    chosen_channels = _channels(scenario, channels)
    if closes_at is not None and closes_at <= now:
        raise ValidationError("the deadline must be in the future", field="closes_at")
    broadcast = Broadcast(
        organization_id=organization_id,
        template_key=scenario.key,
        template=scenario.as_dict(),
        title=title or scenario.text("title", "ja"),
        mode=mode,
        state=BroadcastState.SENDING,
        channels=chosen_channels,
        audience=who.as_dict(),
        # Families are paged in a real emergency; a drill reaches them only when asked to.
        include_family=(mode is BroadcastMode.REAL) if include_family is None else include_family,
        origin=origin,
        created_by=actor,
        created_by_user_id=actor_user_id,
        created_at=now,
        started_at=now,
        closes_at=closes_at or now + DEFAULT_DEADLINE,
        summary_due_at=None if summary_minutes is None else now + timedelta(minutes=summary_minutes),
    )
    db.session.add(broadcast)
    db.session.flush()
    # Each person's first ladder step is taken here, in this transaction, exactly as the dispatcher would take it
    # (its decision is the same pure function, worked out once per pattern of contact kinds); the dispatcher
    # places the attempts after commit and runs the later steps.
    first_steps = ladder_mod.FirstSteps(
        snapshot(broadcast).ladder,
        now=now,
        channels=tuple(c for c in ladder_mod.CHANNELS if c in broadcast.channels),
        include_family=broadcast.include_family,
    )
    count = _insert_recipients(
        broadcast,
        _audience_condition(organization_id, who),
        exclude_existing=False,
        now=now,
        first_steps=first_steps,
    )
    if count == 0:
        raise ValidationError(f"nobody matches the audience ({who.describe()})", field="audience")
    audit(
        action="ivr.broadcast.start",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"{mode.value} broadcast {scenario.key!r} started to {count} people ({who.describe()})",
        detail={
            "origin": origin,
            "channels": chosen_channels,
            "audience": who.as_dict(),
            "recipients": count,
        },
    )
    _kick_dispatcher(broadcast.id)
    return broadcast


def widen_broadcast(
    *,
    broadcast_id: int,
    audience: Any,
    actor: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Add the people of ``audience`` who are not recipients yet; nobody already in it is contacted again."""
    now = now or utcnow()
    broadcast = _broadcast(broadcast_id)
    if broadcast.state not in (BroadcastState.SENDING, BroadcastState.OPEN):
        raise Conflict(f"broadcast {broadcast_id} is {broadcast.state.value}; it cannot be widened")
    who = Audience.of(audience)
    added = _insert_recipients(
        broadcast, _audience_condition(broadcast.organization_id, who), exclude_existing=True, now=now
    )
    if added:
        broadcast.state = BroadcastState.SENDING
        _merge_audience(broadcast, who)
        _kick_dispatcher(broadcast.id)
    audit(
        action="ivr.broadcast.widen",
        organization_id=broadcast.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"broadcast widened to {who.describe()}: {added} more people",
        detail={"audience": who.as_dict(), "added": added},
    )
    db.session.flush()
    return added


def _merge_audience(broadcast: Broadcast, extra: Audience) -> None:
    merged = dict(broadcast.audience)
    for key, values in extra.as_dict().items():
        if key == "everyone":
            merged[key] = bool(merged.get(key)) or bool(values)
        else:
            merged[key] = sorted(set(merged.get(key, [])) | set(values))
    broadcast.audience = merged


def _broadcast(broadcast_id: int, organization_id: int | None = None) -> Broadcast:
    broadcast = db.session.get(Broadcast, broadcast_id)
    if broadcast is None or (organization_id is not None and broadcast.organization_id != organization_id):
        raise NotFound(f"no broadcast {broadcast_id}")
    return broadcast


def get_broadcast(*, broadcast_id: int, organization_id: int | None = None) -> Broadcast:
    return _broadcast(broadcast_id, organization_id)


def list_broadcasts(*, organization_id: int, limit: int = 50) -> list[Broadcast]:
    return list(
        db.session.scalars(
            select(Broadcast)
            .where(Broadcast.organization_id == organization_id)
            .order_by(Broadcast.id.desc())
            .limit(limit)
        )
    )


def _cancel_pending_attempts(condition: ColumnElement[bool], reason: str, now: datetime) -> int:
    result = db.session.execute(
        update(Attempt)
        .where(condition, Attempt.state.in_((AttemptState.PENDING, AttemptState.RETRY)))
        .values(state=AttemptState.CANCELLED, error_reason=reason, updated_at=now, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def close_broadcast(
    *,
    broadcast_id: int,
    actor: str,
    actor_user_id: int | None = None,
    organization_id: int | None = None,
    cancel: bool = False,
    now: datetime | None = None,
) -> Broadcast:
    """No more sends; answers are refused from now on. ``cancel`` marks it stopped rather than finished."""
    now = now or utcnow()
    broadcast = _broadcast(broadcast_id, organization_id)
    if broadcast.state in (BroadcastState.CLOSED, BroadcastState.CANCELLED):
        return broadcast
    before = broadcast.state
    broadcast.state = BroadcastState.CANCELLED if cancel else BroadcastState.CLOSED
    broadcast.closed_at = now
    cancelled = _cancel_pending_attempts(Attempt.broadcast_id == broadcast.id, "broadcast closed", now)
    db.session.execute(
        update(Recipient)
        .where(Recipient.broadcast_id == broadcast.id, Recipient.state.in_(ACTIVE_RECIPIENT_STATES))
        .values(state=RecipientState.UNREACHED, next_action_at=None)
        .execution_options(synchronize_session=False)
    )
    audit(
        action="ivr.broadcast.cancel" if cancel else "ivr.broadcast.close",
        organization_id=broadcast.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"broadcast {broadcast.id} {broadcast.state.value} (was {before.value}); "
        f"{cancelled} queued sends dropped",
    )
    db.session.flush()
    return broadcast


def close_expired(*, now: datetime | None = None) -> list[int]:
    """Close broadcasts whose deadline has passed (run by the beat)."""
    now = now or utcnow()
    ids = list(
        db.session.scalars(
            select(Broadcast.id).where(
                Broadcast.state.in_((BroadcastState.SENDING, BroadcastState.OPEN)), Broadcast.closes_at <= now
            )
        )
    )
    for broadcast_id in ids:
        close_broadcast(broadcast_id=broadcast_id, actor="system: deadline", now=now)
    return ids


# --- answers -----------------------------------------------------------------------------------------------------


class AnswerRefused(ValidationError):
    """The broadcast no longer takes answers (closed, cancelled, past its deadline)."""

    status_code = 410


def recipient_by_token(token: str) -> Recipient | None:
    if not token or len(token) > 64:
        return None
    return db.session.scalar(select(Recipient).where(Recipient.token == token))


def accepts_answers(broadcast: Broadcast, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return broadcast.state.accepts_answers and (broadcast.closes_at is None or broadcast.closes_at > now)


def current_answers(*, recipient_id: int) -> dict[str, Answer]:
    rows = db.session.scalars(
        select(Answer).where(Answer.recipient_id == recipient_id, Answer.current.is_(True))
    ).all()
    return {a.question_key: a for a in rows}


def answer_history(*, recipient_id: int) -> list[Answer]:
    return list(
        db.session.scalars(select(Answer).where(Answer.recipient_id == recipient_id).order_by(Answer.id))
    )


FREE_TEXT_KEY = "_free_text"
VOICE_MESSAGE_KEY = "_voice_message"


def record_answers(
    *,
    recipient: Recipient,
    answers: Mapping[str, str],
    channel: AnswerChannel | str,
    free_text: str | None = None,
    attempt_id: int | None = None,
    now: datetime | None = None,
) -> list[Answer]:
    """Record what a person chose (one or more questions); earlier answers stay in the history, the latest counts."""
    now = now or utcnow()
    channel = AnswerChannel(channel)
    broadcast = _broadcast(recipient.broadcast_id)
    if not accepts_answers(broadcast, now):
        raise AnswerRefused("this safety check is closed; answers are no longer accepted")
    scenario = snapshot(broadcast)
    errors = []
    for key, value in answers.items():
        question = scenario.question(key)
        if question is None:
            errors.append(f"unknown question {key!r}")
        elif question.option(str(value)) is None:
            errors.append(f"{value!r} is not an option of {key!r}")
    if errors:
        raise ValidationError("the answer is not valid", errors=errors)
    items: list[tuple[str, str, str | None]] = [(k, str(v), None) for k, v in answers.items()]
    text = (free_text or "").strip()
    if text:
        key = VOICE_MESSAGE_KEY if channel is AnswerChannel.VOICE else FREE_TEXT_KEY
        items.append((key, "", text[:2000]))
    if not items:
        raise ValidationError("nothing was answered")
    attempt = db.session.get(Attempt, attempt_id) if attempt_id else None
    if attempt is not None and attempt.recipient_id != recipient.id:
        attempt = None  # a link forwarded from someone else's message: the answer counts, the attribution not
    recorded: list[Answer] = []
    latest = False
    for key, value, note in items:
        # The latest answer counts by when it was given, not when it got here: one kept in the spool during a
        # database outage (ivr.spool) never overrides what the person answered after it.
        newer = (
            db.session.scalar(
                select(Answer.id)
                .where(
                    Answer.recipient_id == recipient.id,
                    Answer.question_key == key,
                    Answer.current.is_(True),
                    Answer.at > now,
                )
                .limit(1)
            )
            is not None
        )
        if not newer:
            latest = True
            db.session.execute(
                update(Answer)
                .where(
                    Answer.recipient_id == recipient.id, Answer.question_key == key, Answer.current.is_(True)
                )
                .values(current=False)
                .execution_options(synchronize_session=False)
            )
        answer = Answer(
            broadcast_id=broadcast.id,
            recipient_id=recipient.id,
            question_key=key,
            value=value,
            free_text=note,
            channel=channel,
            attempt_id=attempt.id if attempt else None,
            current=not newer,
            at=now,
        )
        db.session.add(answer)
        recorded.append(answer)
    changed = recipient.state is RecipientState.ANSWERED
    if recipient.answered_at is None or recipient.answered_at > now:
        recipient.answered_at = now
    recipient.state = RecipientState.ANSWERED
    if latest or recipient.answer_channel is None:
        recipient.answer_channel = channel
    recipient.next_action_at = None
    if broadcast.first_answer_at is None or broadcast.first_answer_at > now:
        broadcast.first_answer_at = now
    # The ladder stops for this person: whatever was still queued for them does not leave.
    _cancel_pending_attempts(
        and_(Attempt.recipient_id == recipient.id, Attempt.purpose != "invite"), "answered", now
    )
    if attempt is not None and attempt.contact_point_id is not None:
        _mark_contact(attempt.contact_point_id, "answered", now, verified=True)
    db.session.flush()
    audit(
        action="ivr.answer.change" if changed else "ivr.answer",
        organization_id=broadcast.organization_id,
        actor=f"recipient:{recipient.id}",
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"answer via {channel.value}: "
        + ", ".join(f"{k}={v}" for k, v, note in items if not note)
        + (" (+text)" if text else ""),
        detail={"recipient_id": recipient.id, "channel": channel.value},
    )
    return recorded


def _mark_contact(contact_point_id: int, status: str, now: datetime, *, verified: bool) -> None:
    values: dict[str, Any] = {"last_check_status": status}
    if verified:
        values["verified_at"] = now
    db.session.execute(
        update(ContactPoint)
        .where(ContactPoint.id == contact_point_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def address_digest(value: str, secret: str) -> str:
    """Lets an inbound SMS be matched to the attempt that reached that number, without storing the number."""
    normalised = value.strip().lower().replace(" ", "").replace("-", "")
    return hmac.new(secret.encode(), normalised.encode(), hashlib.sha256).hexdigest()


def record_sms_reply(
    *, from_number: str, body: str, secret: str, now: datetime | None = None
) -> Recipient | None:
    """An inbound SMS like ``1 2`` from a number we messaged: answers to that person's newest open broadcast."""
    now = now or utcnow()
    digest = address_digest(from_number, secret)
    row = db.session.execute(
        select(Recipient, Attempt.id)
        .join(Attempt, Attempt.recipient_id == Recipient.id)
        .join(Broadcast, Broadcast.id == Recipient.broadcast_id)
        .where(
            Attempt.to_digest == digest,
            Broadcast.state.in_((BroadcastState.SENDING, BroadcastState.OPEN)),
        )
        .order_by(Broadcast.started_at.desc(), Attempt.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    recipient, attempt_id = row
    answers = parse_sms_reply(body, snapshot(_broadcast(recipient.broadcast_id)).questions)
    if not answers:
        return None
    record_answers(
        recipient=recipient, answers=answers, channel=AnswerChannel.SMS, attempt_id=attempt_id, now=now
    )
    return recipient


# --- provider callbacks ------------------------------------------------------------------------------------------

# How far along a Twilio status is. A callback never moves an attempt backwards: Twilio retries webhooks and
# delivers them out of order, so a late "ringing" after "completed" is ignored.
PROVIDER_RANK: dict[str, int] = {
    "queued": 1,
    "accepted": 1,
    "initiated": 2,
    "sending": 2,
    "ringing": 3,
    "sent": 3,
    "in-progress": 4,
    "answered": 4,
    "completed": 10,
    "delivered": 10,
    "busy": 10,
    "no-answer": 10,
    "failed": 10,
    "undelivered": 10,
    "canceled": 10,
}

_FINAL_STATE_OF: dict[str, AttemptState] = {
    "completed": AttemptState.COMPLETED,
    "delivered": AttemptState.COMPLETED,
    "busy": AttemptState.BUSY,
    "no-answer": AttemptState.NO_ANSWER,
    "failed": AttemptState.FAILED,
    "undelivered": AttemptState.FAILED,
    "canceled": AttemptState.CANCELLED,
}


def is_machine(answered_by: str | None) -> bool:
    return bool(answered_by) and (answered_by or "").startswith(("machine", "fax"))


def record_provider_status(
    *,
    attempt_id: int,
    status: str,
    provider_sid: str | None = None,
    error_code: str | None = None,
    error_reason: str | None = None,
    answered_by: str | None = None,
    now: datetime | None = None,
) -> Attempt | None:
    """A status callback for a call or a message. Idempotent and order-insensitive."""
    now = now or utcnow()
    # Locked: two callbacks of one message handled at once ("sent" and "delivered" in two web processes) would
    # otherwise each write what they read, and the later write could take the status back.
    attempt = db.session.get(Attempt, attempt_id, with_for_update=True, populate_existing=True)
    if attempt is None:
        return None
    if provider_sid and attempt.provider_sid is None:
        attempt.provider_sid = provider_sid
    if answered_by and not attempt.answered_by:
        attempt.answered_by = answered_by
    status = status.lower()
    new_rank = PROVIDER_RANK.get(status)
    old_rank = PROVIDER_RANK.get(attempt.provider_status or "", 0)
    if new_rank is None or new_rank <= old_rank or attempt.state.is_final:
        db.session.flush()
        return attempt
    attempt.provider_status = status
    attempt.updated_at = now
    if error_code:
        attempt.error_code = str(error_code)
        attempt.error_reason = error_reason or attempt.error_reason
    final = _FINAL_STATE_OF.get(status)
    if final is None:
        attempt.state = AttemptState.IN_PROGRESS
        attempt.lease_owner = None
        attempt.lease_until = None
    else:
        if (
            final is AttemptState.COMPLETED
            and attempt.channel is AttemptChannel.VOICE
            and is_machine(attempt.answered_by)
        ):
            final = AttemptState.MACHINE
        _finish_attempt(attempt, final, now)
    db.session.flush()
    return attempt


def _finish_attempt(attempt: Attempt, state: AttemptState, now: datetime) -> None:
    attempt.state = state
    attempt.ended_at = now
    attempt.lease_owner = None
    attempt.lease_until = None
    broadcast = _broadcast(attempt.broadcast_id)
    if broadcast.template_key == "contact_check" and attempt.contact_point_id is not None:
        status = {AttemptState.COMPLETED: "delivered", AttemptState.FAILED: "failed"}.get(state, state.value)
        _mark_contact(attempt.contact_point_id, status, now, verified=False)
    if attempt.channel is not AttemptChannel.VOICE or state is AttemptState.COMPLETED:
        return
    recipient = db.session.get(Recipient, attempt.recipient_id)
    if recipient is None or recipient.state not in ACTIVE_RECIPIENT_STATES:
        return
    scenario = snapshot(broadcast)
    recipient.next_action_at = ladder_mod.after_failed_call(
        scenario.ladder, now=now, next_action_at=recipient.next_action_at
    )


def machine_answered(*, attempt_id: int, answered_by: str, now: datetime | None = None) -> Attempt | None:
    """Voicemail picked up: it hears a short message; the answer link goes out by SMS to the same phone."""
    now = now or utcnow()
    attempt = db.session.get(Attempt, attempt_id, with_for_update=True, populate_existing=True)
    if attempt is None:
        return None
    attempt.answered_by = answered_by
    if attempt.state.is_final:
        return attempt
    _finish_attempt(attempt, AttemptState.MACHINE, now)
    recipient = db.session.get(Recipient, attempt.recipient_id)
    already = db.session.scalar(
        select(func.count())
        .select_from(Attempt)
        .where(Attempt.recipient_id == attempt.recipient_id, Attempt.purpose == "machine_followup")
    )
    if recipient is not None and recipient.state in ACTIVE_RECIPIENT_STATES and not already:
        db.session.add(
            Attempt(
                broadcast_id=attempt.broadcast_id,
                recipient_id=attempt.recipient_id,
                channel=AttemptChannel.SMS,
                contact_point_id=attempt.contact_point_id,
                cycle=attempt.cycle,
                step=attempt.step,
                purpose="machine_followup",
                state=AttemptState.PENDING,
                due_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    db.session.flush()
    return attempt


# --- reading results ---------------------------------------------------------------------------------------------


def _scoped(query: Any, principal: Principal | None) -> Any:
    if principal is None or principal.is_org_wide(*VIEW_ROLES):
        return query
    return query.join(Staff, Staff.id == Recipient.staff_id).where(principal.staff_filter(*VIEW_ROLES))


def _needs_scope(principal: Principal | None) -> bool:
    return principal is not None and not principal.is_org_wide(*VIEW_ROLES)


def _recipient_cube(broadcast_id: int, principal: Principal | None) -> list[Any]:
    """Recipients counted by department, site, prefecture, state and answer channel: one scan of the broadcast's
    people gives every per-person figure of the status (a few hundred groups, never a row per person)."""
    query = (
        select(
            Recipient.department_id,
            Recipient.site_id,
            Recipient.prefecture,
            Recipient.state,
            Recipient.answer_channel,
            func.count(),
        )
        .where(Recipient.broadcast_id == broadcast_id)
        .group_by(
            Recipient.department_id,
            Recipient.site_id,
            Recipient.prefecture,
            Recipient.state,
            Recipient.answer_channel,
        )
    )
    return list(db.session.execute(_scoped(query, principal)).all())


def _state_counts(cube: list[Any], position: int) -> list[tuple[Any, int, int, int]]:
    """(key, recipients, answered, unreached) per value of the cube's column ``position``."""
    totals: dict[Any, list[int]] = {}
    for row in cube:
        counts = totals.setdefault(row[position], [0, 0, 0])
        n = int(row[5])
        counts[0] += n
        if row[3] is RecipientState.ANSWERED:
            counts[1] += n
        elif row[3] is RecipientState.UNREACHED:
            counts[2] += n
    return [(key, n, a, u) for key, (n, a, u) in totals.items()]


def _group_rows(rows: list[Any], names: Mapping[Any, str]) -> list[dict[str, Any]]:
    out = [
        {
            "id": key,
            "name": names.get(key, "") if key not in (None, "") else "-",
            "recipients": int(n),
            "answered": int(a or 0),
            "unreached": int(u or 0),
            "in_progress": int(n) - int(a or 0) - int(u or 0),
        }
        for key, n, a, u in rows
    ]
    return sorted(out, key=lambda r: (r["name"] == "-", str(r["name"])))


def broadcast_status(*, broadcast_id: int, principal: Principal | None = None) -> dict[str, Any]:
    """Live counts (everything a status page, the API and ``broadcast status --json`` show)."""
    broadcast = _broadcast(broadcast_id, principal.organization_id if principal else None)
    cube = _recipient_cube(broadcast_id, principal)
    states: dict[Any, int] = {}
    by_channel: dict[str, int] = {}
    for _dept, _site, _pref, state, channel, count in cube:
        states[state] = states.get(state, 0) + int(count)
        if state is RecipientState.ANSWERED:
            key = channel.value if channel is not None else "-"
            by_channel[key] = by_channel.get(key, 0) + int(count)
    by_answer: dict[str, dict[str, int]] = {}
    scenario = snapshot(broadcast)
    for question in scenario.questions:
        by_answer[question.key] = {o.value: 0 for o in question.options}
    answer_query = (
        select(Answer.question_key, Answer.value, func.count())
        .where(Answer.broadcast_id == broadcast_id, Answer.current.is_(True), Answer.value != "")
        .group_by(Answer.question_key, Answer.value)
    )
    if _needs_scope(principal):
        answer_query = _scoped(answer_query.join(Recipient, Recipient.id == Answer.recipient_id), principal)
    for key, value, count in db.session.execute(answer_query).all():
        by_answer.setdefault(key, {})[value] = int(count)
    dept_rows = _state_counts(cube, 0)
    dept_names = dict(
        db.session.execute(
            select(Department.id, Department.name).where(
                Department.id.in_([r[0] for r in dept_rows if r[0] is not None])
            )
        ).all()
    )
    site_rows = _state_counts(cube, 1)
    site_names = dict(
        db.session.execute(
            select(Site.id, Site.code).where(Site.id.in_([r[0] for r in site_rows if r[0] is not None]))
        ).all()
    )
    pref_rows = _state_counts(cube, 2)
    total = sum(int(v) for v in states.values())
    answered = int(states.get(RecipientState.ANSWERED, 0))
    unreached = int(states.get(RecipientState.UNREACHED, 0))
    return {
        "id": broadcast.id,
        "title": broadcast.title,
        "template": broadcast.template_key,
        "mode": broadcast.mode.value,
        "state": broadcast.state.value,
        "origin": broadcast.origin,
        "channels": list(broadcast.channels),
        "recipients": total,
        "answered": answered,
        "unreached": unreached,
        "in_progress": total - answered - unreached,
        "by_state": {s.value: int(states.get(s, 0)) for s in RecipientState},
        "by_answer": by_answer,
        "by_answer_channel": by_channel,
        "by_department": _group_rows(dept_rows, dept_names),
        "by_site": _group_rows(site_rows, site_names),
        "by_prefecture": _group_rows(pref_rows, {r[0]: r[0] for r in pref_rows}),
        "attempts": attempt_counts(broadcast_id=broadcast_id, principal=principal),
        "started_at": _iso(broadcast.started_at),
        "first_answer_at": _iso(broadcast.first_answer_at),
        "closes_at": _iso(broadcast.closes_at),
        "closed_at": _iso(broadcast.closed_at),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def attempt_counts(*, broadcast_id: int, principal: Principal | None = None) -> dict[str, dict[str, int]]:
    query = (
        select(Attempt.channel, Attempt.state, func.count())
        .where(Attempt.broadcast_id == broadcast_id)
        .group_by(Attempt.channel, Attempt.state)
    )
    if _needs_scope(principal):
        # Only a scoped reader needs each attempt's person (to keep the others out).
        query = _scoped(query.join(Recipient, Recipient.id == Attempt.recipient_id), principal)
    out: dict[str, dict[str, int]] = {}
    for channel, state, count in db.session.execute(query).all():
        out.setdefault(channel.value, {})[state.value] = int(count)
    return out


HIDDEN_NAME = "(hidden)"


@dataclass
class PersonRow:
    recipient_id: int
    employee_id: str
    name: str
    department: str
    site: str
    state: str
    answers: dict[str, str] = field(default_factory=dict)
    free_text: str = ""
    answered_at: datetime | None = None
    answer_channel: str = ""
    last_attempt: str = ""


def unreached(
    *, broadcast_id: int, principal: Principal | None = None, limit: int = 200, offset: int = 0
) -> list[PersonRow]:
    """The people not reached (ladder ran out) with their last attempt; executives flagged hidden are unnamed."""
    query = (
        select(Recipient, Staff, Department.name, Site.code, Attempt)
        .join(Staff, Staff.id == Recipient.staff_id)
        .outerjoin(Department, Department.id == Recipient.department_id)
        .outerjoin(Site, Site.id == Recipient.site_id)
        .outerjoin(Attempt, Attempt.id == Recipient.last_attempt_id)
        .where(Recipient.broadcast_id == broadcast_id, Recipient.state == RecipientState.UNREACHED)
        .order_by(Department.name, Staff.employee_id)
        .limit(limit)
        .offset(offset)
    )
    if principal is not None and not principal.is_org_wide(*VIEW_ROLES):
        query = query.where(principal.staff_filter(*VIEW_ROLES))
    rows = []
    for recipient, staff, dept, site, attempt in db.session.execute(query).all():
        last = ""
        if attempt is not None:
            last = f"{attempt.channel.value} {attempt.state.value}"
            if attempt.error_code:
                last += f" ({attempt.error_code})"
        rows.append(
            PersonRow(
                recipient_id=recipient.id,
                employee_id="" if staff.hide_from_answer_views else staff.employee_id,
                name=HIDDEN_NAME if staff.hide_from_answer_views else staff.name,
                department=dept or "",
                site=site or "",
                state=recipient.state.value,
                last_attempt=last,
            )
        )
    return rows


EXPORT_CHUNK = 2000  # people per query of export_rows


def export_rows(*, broadcast_id: int, principal: Principal | None = None) -> Iterator[PersonRow]:
    """Every recipient with their current answers, streamed in id order (for CSV).

    The people are read ``EXPORT_CHUNK`` at a time in id order (``id > last``, so every chunk starts from the
    index), and the current answers of each chunk with one more query: memory stays flat however large the
    broadcast, and no person's row is repeated once per answer."""
    chunk = EXPORT_CHUNK
    scope = (
        principal.staff_filter(*VIEW_ROLES)
        if principal is not None and not principal.is_org_wide(*VIEW_ROLES)
        else None
    )
    people = (
        select(
            Recipient.id,
            Recipient.state,
            Recipient.answered_at,
            Recipient.answer_channel,
            Staff.employee_id,
            Staff.name,
            Staff.hide_from_answer_views,
            Department.name,
            Site.code,
        )
        .join(Staff, Staff.id == Recipient.staff_id)
        .outerjoin(Department, Department.id == Recipient.department_id)
        .outerjoin(Site, Site.id == Recipient.site_id)
        .where(Recipient.broadcast_id == broadcast_id)
        .order_by(Recipient.id)
        .limit(chunk)
    )
    if scope is not None:
        people = people.where(scope)
    last = 0
    while True:
        rows = db.session.execute(people.where(Recipient.id > last)).all()
        if not rows:
            return
        first, last = rows[0][0], rows[-1][0]
        # Everyone of the broadcast between the chunk's first and last id is in the chunk, unless the reader is
        # scoped: then only the chunk's own ids (the others' answers are not theirs to read).
        of_chunk = (
            Answer.recipient_id.in_([row[0] for row in rows])
            if scope is not None
            else Answer.recipient_id.between(first, last)
        )
        answers: dict[int, list[tuple[str, str, str | None]]] = {}
        for rid, qkey, value, free in db.session.execute(
            select(Answer.recipient_id, Answer.question_key, Answer.value, Answer.free_text)
            .where(Answer.broadcast_id == broadcast_id, Answer.current.is_(True), of_chunk)
            .order_by(Answer.recipient_id, Answer.id)
        ):
            answers.setdefault(rid, []).append((qkey, value, free))
        for rid, state, answered_at, channel, emp, name, hidden, dept, site in rows:
            person = PersonRow(
                recipient_id=rid,
                employee_id="" if hidden else emp,
                name=HIDDEN_NAME if hidden else name,
                department=dept or "",
                site=site or "",
                state=state.value,
                answered_at=answered_at,
                answer_channel=channel.value if channel else "",
            )
            for qkey, value, free in answers.get(rid, ()):
                if free:
                    # Free text of a hidden person would name them as surely as their name.
                    if not hidden:
                        person.free_text = (person.free_text + " " + free).strip()
                else:
                    person.answers[qkey] = value
            yield person
        if len(rows) < chunk:
            return


def recipients_for_principal(*, broadcast_id: int, principal: Principal, limit: int = 100) -> list[PersonRow]:
    """The answer list on the watch page: scoped, executives unnamed."""
    return list(_take(export_rows(broadcast_id=broadcast_id, principal=principal), limit))


def _take(rows: Iterator[PersonRow], limit: int) -> Iterator[PersonRow]:
    for index, row in enumerate(rows):
        if index >= limit:
            return
        yield row


# --- follow-ups --------------------------------------------------------------------------------------------------


def _first_contacts(staff_ids: Sequence[int], include_family: bool) -> dict[int, dict[str, int]]:
    """staff id → {"phone": contact id, "email": contact id} of their first usable phone / e-mail."""
    out: dict[int, dict[str, int]] = {}
    rows = db.session.execute(
        select(ContactPoint.staff_id, ContactPoint.id, ContactPoint.kind)
        .where(ContactPoint.staff_id.in_(staff_ids))
        .order_by(ContactPoint.staff_id, ContactPoint.position, ContactPoint.id)
    ).all()
    for staff_id, contact_id, kind in rows:
        if not include_family and kind in (ContactKind.FAMILY_PHONE, ContactKind.FAMILY_EMAIL):
            continue
        slot = "phone" if kind.is_phone else "email"
        out.setdefault(staff_id, {}).setdefault(slot, contact_id)
    return out


def _queue_messages(
    broadcast: Broadcast,
    recipients: Sequence[tuple[int, int]],
    *,
    channels: Sequence[str],
    purpose: str,
    body: str | None,
    now: datetime,
) -> int:
    contacts = _first_contacts([staff_id for _, staff_id in recipients], broadcast.include_family)
    rows = []
    for recipient_id, staff_id in recipients:
        mine = contacts.get(staff_id, {})
        for channel in channels:
            contact_id = mine.get("email" if channel == "email" else "phone")
            if contact_id is None:
                continue
            rows.append(
                {
                    "broadcast_id": broadcast.id,
                    "recipient_id": recipient_id,
                    "channel": AttemptChannel(channel),
                    "contact_point_id": contact_id,
                    "cycle": -1,
                    "step": -1,
                    "purpose": purpose,
                    "state": AttemptState.PENDING,
                    "due_at": now,
                    "body": body,
                    "tries": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    for start in range(0, len(rows), INSERT_CHUNK):
        db.session.execute(insert(Attempt), rows[start : start + INSERT_CHUNK])
    return len(rows)


def resend_unanswered(
    *,
    broadcast_id: int,
    actor: str,
    actor_user_id: int | None = None,
    channels: Sequence[str] = ("sms", "email"),
    organization_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Send the answer link again to everyone who has not answered (and only to them). Returns messages queued."""
    now = now or utcnow()
    broadcast = _broadcast(broadcast_id, organization_id)
    if not accepts_answers(broadcast, now):
        raise Conflict("the broadcast is closed")
    channels = [c for c in channels if c in ("sms", "email", "voice")]
    queued = 0
    last_id = 0
    while True:
        batch = list(
            db.session.execute(
                select(Recipient.id, Recipient.staff_id)
                .where(
                    Recipient.broadcast_id == broadcast.id,
                    Recipient.state.in_(NOT_ANSWERED_STATES),
                    Recipient.id > last_id,
                )
                .order_by(Recipient.id)
                .limit(INSERT_CHUNK)
            ).all()
        )
        if not batch:
            break
        last_id = batch[-1][0]
        queued += _queue_messages(broadcast, batch, channels=channels, purpose="resend", body=None, now=now)
    if broadcast.state is BroadcastState.OPEN and queued:
        broadcast.state = BroadcastState.SENDING
    audit(
        action="ivr.broadcast.resend",
        organization_id=broadcast.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"answer link sent again to those who have not answered: {queued} messages",
        detail={"channels": list(channels), "messages": queued},
    )
    _kick_dispatcher(broadcast.id)
    db.session.flush()
    return queued


InviteHook = Callable[[Invitation], None]
_invite_hooks: list[InviteHook] = []


def on_invite_accepted(hook: InviteHook) -> InviteHook:
    """Register ``hook(invitation)`` to run (inside the transaction) when someone accepts an invitation."""
    _invite_hooks.append(hook)
    return hook


def message_answered(
    *,
    broadcast_id: int,
    question_key: str,
    value: str,
    text: str,
    actor: str,
    actor_user_id: int | None = None,
    purpose: str = "home_agent_pool",
    channels: Sequence[str] = ("sms", "email"),
    organization_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Message everyone whose current answer to ``question_key`` is ``value`` (e.g. can work from home → join
    the home-agent pool) with a link to accept. Returns how many people were invited."""
    now = now or utcnow()
    broadcast = _broadcast(broadcast_id, organization_id)
    scenario = snapshot(broadcast)
    question = scenario.question(question_key)
    if question is None or question.option(value) is None:
        raise ValidationError(f"{question_key}={value} is not an answer of this broadcast")
    if not text.strip():
        raise ValidationError("write the message", field="text")
    people = list(
        db.session.execute(
            select(Recipient.id, Recipient.staff_id)
            .join(Answer, Answer.recipient_id == Recipient.id)
            .where(
                Recipient.broadcast_id == broadcast.id,
                Answer.current.is_(True),
                Answer.question_key == question_key,
                Answer.value == value,
                ~Recipient.id.in_(
                    select(Invitation.recipient_id).where(
                        Invitation.broadcast_id == broadcast.id, Invitation.purpose == purpose
                    )
                ),
            )
        ).all()
    )
    for recipient_id, staff_id in people:
        invitation = Invitation(
            broadcast_id=broadcast.id,
            recipient_id=recipient_id,
            staff_id=staff_id,
            purpose=purpose,
            token=new_token(),
            message=text.strip(),
            created_at=now,
        )
        db.session.add(invitation)
    db.session.flush()
    _queue_messages(broadcast, people, channels=channels, purpose="invite", body=text.strip(), now=now)
    if people and broadcast.state is BroadcastState.OPEN:
        broadcast.state = BroadcastState.SENDING
    audit(
        action="ivr.broadcast.message_answered",
        organization_id=broadcast.organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"{len(people)} people who answered {question_key}={value} invited ({purpose})",
    )
    _kick_dispatcher(broadcast.id)
    return len(people)


def invitation_by_token(token: str) -> Invitation | None:
    if not token or len(token) > 64:
        return None
    return db.session.scalar(select(Invitation).where(Invitation.token == token))


def respond_to_invitation(*, invitation: Invitation, accept: bool, now: datetime | None = None) -> Invitation:
    now = now or utcnow()
    if invitation.accepted_at or invitation.declined_at:
        return invitation
    if accept:
        invitation.accepted_at = now
        for hook in _invite_hooks:
            hook(invitation)
    else:
        invitation.declined_at = now
    broadcast = _broadcast(invitation.broadcast_id)
    audit(
        action="ivr.invitation.accept" if accept else "ivr.invitation.decline",
        organization_id=broadcast.organization_id,
        actor=f"recipient:{invitation.recipient_id}",
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"invitation {invitation.purpose} {'accepted' if accept else 'declined'}",
    )
    db.session.flush()
    return invitation


def invitation_for_invite_attempt(attempt: Attempt) -> Invitation | None:
    return db.session.scalar(
        select(Invitation).where(
            Invitation.recipient_id == attempt.recipient_id, Invitation.broadcast_id == attempt.broadcast_id
        )
    )


# --- estimates, summary, escalation ------------------------------------------------------------------------------


def remaining_sends(*, broadcast_id: int) -> dict[str, int]:
    """How many first-round messages/calls the people still to be contacted need, per channel (upper bound)."""
    broadcast = _broadcast(broadcast_id)
    queued = dict(
        db.session.execute(
            select(Attempt.channel, func.count())
            .where(
                Attempt.broadcast_id == broadcast_id,
                Attempt.state.in_((AttemptState.PENDING, AttemptState.RETRY, AttemptState.DIALING)),
            )
            .group_by(Attempt.channel)
        ).all()
    )
    waiting = int(
        db.session.scalar(
            select(func.count())
            .select_from(Recipient)
            .where(Recipient.broadcast_id == broadcast_id, Recipient.state.in_(ACTIVE_RECIPIENT_STATES))
        )
        or 0
    )
    out = {c.value: int(n) for c, n in queued.items()}
    for channel in broadcast.channels:
        # Everyone not yet answered may still need one of each channel in the ladder.
        out[channel] = max(out.get(channel, 0), waiting)
    return out


def estimate_for_audience(
    *, organization_id: int, audience: Any, channels: Sequence[str], rates: Mapping[str, float], now: datetime
) -> tuple[int, Estimate]:
    people = count_audience(organization_id=organization_id, audience=audience)
    return people, estimate_finish({c: people for c in channels}, rates, start=now)


def estimate_for_broadcast(*, broadcast_id: int, rates: Mapping[str, float], now: datetime) -> Estimate:
    return estimate_finish(remaining_sends(broadcast_id=broadcast_id), rates, start=now)


def crisis_manager_emails(*, organization_id: int) -> list[str]:
    return sorted(
        set(
            db.session.scalars(
                select(User.email)
                .join(RoleAssignment, RoleAssignment.user_id == User.id)
                .where(
                    User.organization_id == organization_id,
                    User.is_active.is_(True),
                    RoleAssignment.role == Role.CRISIS_MANAGER,
                )
            )
        )
    )


def summary_text(*, broadcast_id: int) -> tuple[str, str]:
    """Subject and body of the summary mailed to the crisis managers."""
    status = broadcast_status(broadcast_id=broadcast_id)
    broadcast = _broadcast(broadcast_id)
    scenario = snapshot(broadcast)
    lines = [
        f"{broadcast.title} ({broadcast.mode.value}) — {status['state']}",
        f"Recipients: {status['recipients']}  answered: {status['answered']}  "
        f"unreached: {status['unreached']}  in progress: {status['in_progress']}",
        "",
    ]
    for question in scenario.questions:
        lines.append(question.prompt("en"))
        for option in question.options:
            lines.append(
                f"  {option.value} {option.text('en')}: {status['by_answer'][question.key].get(option.value, 0)}"
            )
    lines.append("")
    lines.append("By site:")
    for row in status["by_site"]:
        lines.append(f"  {row['name']}: {row['answered']}/{row['recipients']} answered")
    return f"[Lifeline] Summary: {broadcast.title}", "\n".join(lines)


def due_summaries(*, now: datetime) -> list[int]:
    return list(
        db.session.scalars(
            select(Broadcast.id).where(
                Broadcast.summary_due_at <= now,
                Broadcast.summary_sent_at.is_(None),
                Broadcast.state != BroadcastState.DRAFT,
            )
        )
    )


def mark_summary_sent(*, broadcast_id: int, to: Sequence[str], now: datetime) -> None:
    broadcast = _broadcast(broadcast_id)
    broadcast.summary_sent_at = now
    audit(
        action="ivr.broadcast.summary",
        organization_id=broadcast.organization_id,
        actor="system",
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"summary sent to {len(to)} crisis managers",
        detail={"to": list(to)},
    )


def unreached_by_manager(*, broadcast_id: int) -> dict[int, list[str]]:
    """Manager staff id → names of their unreached people (hidden executives are listed as such)."""
    rows = db.session.execute(
        select(Staff.manager_id, Staff.name, Staff.hide_from_answer_views)
        .join(Recipient, Recipient.staff_id == Staff.id)
        .where(
            Recipient.broadcast_id == broadcast_id,
            Recipient.state == RecipientState.UNREACHED,
            Staff.manager_id.is_not(None),
        )
        .order_by(Staff.manager_id, Staff.name)
    ).all()
    out: dict[int, list[str]] = {}
    for manager_id, name, hidden in rows:
        if manager_id is not None:
            out.setdefault(manager_id, []).append(HIDDEN_NAME if hidden else name)
    return out


def work_email(*, staff_id: int) -> str | None:
    return db.session.scalar(
        select(ContactPoint.value)
        .where(ContactPoint.staff_id == staff_id, ContactPoint.kind == ContactKind.WORK_EMAIL)
        .order_by(ContactPoint.position)
        .limit(1)
    )


def finish_if_done(*, broadcast_id: int, now: datetime) -> bool:
    """sending → open once nobody is waiting for the ladder and nothing is left to send."""
    broadcast = _broadcast(broadcast_id)
    if broadcast.state is not BroadcastState.SENDING:
        return False
    active = db.session.scalar(
        select(func.count())
        .select_from(Recipient)
        .where(Recipient.broadcast_id == broadcast_id, Recipient.state.in_(ACTIVE_RECIPIENT_STATES))
    )
    queued = db.session.scalar(
        select(func.count())
        .select_from(Attempt)
        .where(
            Attempt.broadcast_id == broadcast_id,
            # Handed to the carrier is sent, whether or not its final status ever comes back.
            Attempt.state.in_((AttemptState.PENDING, AttemptState.RETRY, AttemptState.DIALING)),
        )
    )
    if active or queued:
        return False
    broadcast.state = BroadcastState.OPEN
    audit(
        action="ivr.broadcast.sent",
        organization_id=broadcast.organization_id,
        actor="system",
        target_type="broadcast",
        target_id=broadcast.id,
        summary="every ladder has finished; answers are still accepted until the deadline",
        detail={"at": now.isoformat()},
    )
    db.session.flush()
    return True


def contact_check_due(*, organization_id: int, every: timedelta, now: datetime) -> bool:
    last = db.session.scalar(
        select(func.max(Broadcast.started_at)).where(
            Broadcast.organization_id == organization_id, Broadcast.template_key == "contact_check"
        )
    )
    return last is None or last + every <= now


def start_contact_check(
    *, organization_id: int, actor: str = "system: contact check", now: datetime | None = None
) -> Broadcast:
    """A test message to every contact point of everyone; answers and delivery reports mark which ones work."""
    return start_broadcast(
        organization_id=organization_id,
        template="contact_check",
        audience=Audience(everyone=True),
        actor=actor,
        mode=BroadcastMode.DRILL,
        origin="contact_check",
        now=now,
    )
