"""The JMA auto-trigger's use cases: store a bulletin once, run it through every organization's rules, act on each
decision (start, hold, widen, cancel, replace, notify, suppress) and record and audit it; release or cancel held
broadcasts; read and save an organization's rules.

Keyword-only arguments, ``flush()`` only: the poller, the tasks, the CLI and the views own the transaction.

Audience mapping: a decision's :class:`ivr.jma.rules.Audience` (everyone / site codes / prefecture codes) goes to
:func:`ivr.service.start_broadcast` as it is — there a person is in it when it is everyone, or their site is one of
the sites, or their site's prefecture or their home prefecture is one of the prefectures, which is exactly what
the rules mean.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from core import db
from core.auth.service import audit
from core.directory.models import Organization, Site, Staff
from core.errors import Conflict, LifelineError, NotFound, ValidationError
from core.time import to_local
from ivr import service as broadcasts
from ivr.jma.areas import TSUNAMI_AREA_NAMES, coast_areas_for_sites
from ivr.jma.models import (
    BulletinState,
    EventStatus,
    FeedState,
    HeldState,
    HeldTrigger,
    JmaBulletin,
    JmaDecision,
    JmaEvent,
    JmaNotification,
    JmaRuleSet,
)
from ivr.jma.parse import Bulletin, BulletinError, intensity_rank, normalize_intensity, parse_bulletin
from ivr.jma.rules import (
    Audience,
    Decision,
    EventState,
    OrganizationContext,
    RuleSet,
    RuleSetError,
    default_ruleset,
    effective_intensity,
    evaluate,
)
from ivr.jma.rules import Site as RuleSite
from ivr.models import Broadcast, Recipient

log = logging.getLogger(__name__)

ACTOR = "jma"
# Events older than this (in JMA's clock) are no longer offered to the rules: the longest aftershock window.
KNOWN_EVENT_SPAN = timedelta(hours=168)
# A bulletin is taken (claimed) at most this many times: its download or processing is retried, a worker that died
# with it is replaced, and then it is left for a person to look at.
MAX_ATTEMPTS = 3
# A claim older than this belongs to a worker that died; another worker may take the bulletin over.
CLAIM_LEASE = timedelta(minutes=5)
# Between two tries of a failed bulletin.
RETRY_AFTER = timedelta(seconds=30)

AUDIT_ACTIONS = {
    "start": "jma.started",
    "hold": "jma.held",
    "widen": "jma.widened",
    "cancel": "jma.cancelled",
    "notify_only": "jma.notify_only",
    "suppress": "jma.suppressed",
    "replace": "jma.replaced",
    "release": "jma.released",
}
# Decisions that send (or prepare to send); an organization that switched automatic broadcasts off gets none.
SENDING_ACTIONS = frozenset({"start", "hold", "widen", "replace"})
_PAST = {"start": "started", "hold": "held", "widen": "widened", "replace": "replaced"}


# --- hooks the application wires in (ivr.jma.init_jma) -----------------------------------------------------------

# organization id, site code, reason, now → True if emergency mode was switched on, False if it already was.
EmergencyStarter = Callable[[int, str, str, datetime], bool]
# Called inside the transaction for every notification; queues the e-mails after commit.
Notifier = Callable[[JmaNotification], None]

_hooks: dict[str, Any] = {"emergency": None, "notifier": None}


def set_emergency_starter(starter: EmergencyStarter | None) -> None:
    _hooks["emergency"] = starter


def set_notifier(notifier: Notifier | None) -> None:
    _hooks["notifier"] = notifier


def emergency_available() -> bool:
    return _hooks["emergency"] is not None


# --- small conversions ---------------------------------------------------------------------------------------------


def audience_from_json(data: Mapping[str, Any] | None) -> Audience:
    data = data or {}
    return Audience(
        everyone=bool(data.get("everyone")),
        prefectures=frozenset(str(p) for p in data.get("prefectures") or ()),
        sites=frozenset(str(s) for s in data.get("sites") or ()),
    )


def _rank(intensity: str | None) -> int:
    return -1 if intensity is None else intensity_rank(intensity)


def _higher(a: str | None, b: str | None) -> str | None:
    return a if _rank(a) >= _rank(b) else b


def bulletin_label(bulletin: Bulletin) -> str:
    when = to_local(bulletin.report_time).strftime("%Y-%m-%d %H:%M")
    drill = "" if bulletin.status == "通常" else f"[{bulletin.status}] "
    info = "" if bulletin.info_type == "発表" else f" ({bulletin.info_type})"
    return f"{drill}{bulletin.title}{info} {when}"


# --- rules per organization ----------------------------------------------------------------------------------------


def default_rules(*, organization_id: int) -> RuleSet:
    """default_ruleset with the tsunami coasts of this organization's own sites."""
    rows = db.session.execute(
        select(Site.code, Site.prefecture_code)
        .where(Site.organization_id == organization_id)
        .order_by(Site.code)
    )
    return default_ruleset(coast_areas_for_sites((code, prefecture) for code, prefecture in rows))


def rules_row(*, organization_id: int) -> JmaRuleSet | None:
    return db.session.scalar(select(JmaRuleSet).where(JmaRuleSet.organization_id == organization_id))


def ruleset_for(*, organization_id: int) -> RuleSet:
    """The stored rules, or the defaults for the organization's sites when it never saved any."""
    row = rules_row(organization_id=organization_id)
    if row is None:
        return default_rules(organization_id=organization_id)
    return RuleSet.from_dict(row.rules)


def validate_rules(*, organization_id: int, document: object) -> RuleSet:
    """RuleSet.from_dict plus what only the database knows: templates and site codes must exist.

    Raises RuleSetError naming the field (``warning_rules[0].template``)."""
    ruleset = RuleSet.from_dict(document)
    templates = [t.key for t in broadcasts.list_templates(organization_id=organization_id)]
    for name in ("intensity_rules", "tsunami_rules", "warning_rules"):
        for index, rule in enumerate(getattr(ruleset, name)):
            if rule.template not in templates:
                raise RuleSetError(
                    f"{name}[{index}].template",
                    f"the organization has no template {rule.template!r} ({', '.join(templates)})",
                )
    site_codes = set(db.session.scalars(select(Site.code).where(Site.organization_id == organization_id)))
    for index, tsunami_rule in enumerate(ruleset.tsunami_rules):
        for site, areas in sorted(tsunami_rule.site_areas.items()):
            field = f"tsunami_rules[{index}].site_areas.{site}"
            if site not in site_codes:
                raise RuleSetError(
                    field, f"there is no site with code {site!r} ({', '.join(sorted(site_codes))})"
                )
            for area in sorted(areas):
                if area not in TSUNAMI_AREA_NAMES:
                    raise RuleSetError(field, f"{area!r} is not a JMA tsunami forecast area code")
    return ruleset


def save_rules(
    *,
    organization_id: int,
    document: object,
    enabled: bool,
    emergency_min_intensity: str | None,
    actor: str,
    actor_user_id: int | None = None,
) -> JmaRuleSet:
    ruleset = validate_rules(organization_id=organization_id, document=document)
    threshold = None
    if emergency_min_intensity not in (None, ""):
        threshold = normalize_intensity(emergency_min_intensity)
        if threshold is None:
            raise RuleSetError(
                "emergency_min_intensity", f"{emergency_min_intensity!r} is not a JMA intensity"
            )
    row = rules_row(organization_id=organization_id)
    before = (
        None
        if row is None
        else {"rules": row.rules, "enabled": row.enabled, "emergency": row.emergency_min_intensity}
    )
    if row is None:
        row = JmaRuleSet(organization_id=organization_id, rules={})
        db.session.add(row)
    row.rules = ruleset.to_dict()
    row.enabled = enabled
    row.emergency_min_intensity = threshold
    row.updated_by = actor
    db.session.flush()
    audit(
        action="jma.rules.update",
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="jma_rules",
        target_id=row.id,
        summary=(
            f"JMA rules saved: automatic broadcasts {'on' if enabled else 'off'}, hold {ruleset.hold_minutes} min, "
            f"drills {'allowed' if ruleset.allow_drill else 'not allowed'}, "
            f"aftershock window {ruleset.aftershock_window_hours:g} h"
        ),
        detail={
            "before": before,
            "after": {"rules": row.rules, "enabled": enabled, "emergency": threshold},
        },
    )
    return row


def seed_demo_rules(org: Organization, *, actor: str = "demo-data") -> JmaRuleSet:
    """Rules for the demo organization (idempotent: existing rules are left as they are).

    The defaults for its sites, drills allowed (the demo replays 訓練 bulletins), no hold, and emergency mode for a
    site whose prefecture reaches 6弱."""
    row = rules_row(organization_id=org.id)
    if row is not None:
        return row
    ruleset = replace(default_rules(organization_id=org.id), allow_drill=True)
    return save_rules(
        organization_id=org.id,
        document=ruleset.to_dict(),
        enabled=True,
        emergency_min_intensity="6-",
        actor=actor,
    )


# --- what the rules need to know ------------------------------------------------------------------------------------


def organization_context(*, organization_id: int, around: datetime) -> OrganizationContext:
    sites = tuple(
        RuleSite(code, prefecture, frozenset({municipality}) if municipality else frozenset())
        for code, prefecture, municipality in db.session.execute(
            select(Site.code, Site.prefecture_code, Site.municipality_code)
            .where(Site.organization_id == organization_id)
            .order_by(Site.code)
        )
    )
    homes = frozenset(
        db.session.scalars(
            select(Staff.home_prefecture)
            .where(Staff.organization_id == organization_id, Staff.home_prefecture != "")
            .distinct()
        )
    )
    return OrganizationContext(
        sites=sites,
        staff_home_prefectures=homes,
        known_events=known_events(organization_id=organization_id, around=around),
    )


def known_events(*, organization_id: int, around: datetime) -> tuple[EventState, ...]:
    events = db.session.scalars(
        select(JmaEvent)
        .where(
            JmaEvent.organization_id == organization_id,
            JmaEvent.status.in_((EventStatus.HELD, EventStatus.SENT)),
            JmaEvent.last_report_time >= around - KNOWN_EVENT_SPAN,
        )
        .order_by(JmaEvent.id)
    ).all()
    holds = {
        event_id: send_at
        for event_id, send_at in db.session.execute(
            select(HeldTrigger.event_id, HeldTrigger.send_at).where(
                HeldTrigger.organization_id == organization_id, HeldTrigger.state == HeldState.WAITING
            )
        )
    }
    return tuple(
        EventState(
            event_key=event.event_key,
            kind=event.kind,
            template=event.template,
            status="held" if event.status is EventStatus.HELD else "sent",
            real_or_drill="drill" if event.mode == "drill" else "real",
            audience=audience_from_json(event.audience),
            report_time=event.report_time,
            max_intensity=event.max_intensity,
            hold_until=holds.get(event.id),
            sent_at=event.sent_at,
        )
        for event in events
    )


# --- feeds ----------------------------------------------------------------------------------------------------------


def feed_state(*, feed: str, url: str) -> FeedState:
    state = db.session.scalar(select(FeedState).where(FeedState.feed == feed))
    if state is None:
        dialect = db.session.get_bind().dialect.name
        insert_into: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        db.session.execute(
            insert_into(FeedState)
            .values(feed=feed, url=url, consecutive_failures=0, entries_in_feed=0)
            .on_conflict_do_nothing(index_elements=["feed"])
        )
        state = db.session.scalars(select(FeedState).where(FeedState.feed == feed)).one()
    return state


def conditional_headers(state: FeedState, url: str) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from the last answer — only for the same URL."""
    if state.url != url:
        return {}
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def record_feed_success(
    *,
    feed: str,
    url: str,
    status: int,
    now: datetime,
    entries: int | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    keep_validators: bool = False,
) -> FeedState:
    """``keep_validators``: the feed was read but not every new entry was handled, so the next poll must get the
    whole feed again instead of a 304."""
    state = feed_state(feed=feed, url=url)
    recovered = state.consecutive_failures > 0
    if state.url != url:
        state.url, state.etag, state.last_modified = url, None, None
    if status == 200 and not keep_validators:
        state.etag, state.last_modified = etag, last_modified
    if entries is not None:
        state.entries_in_feed = entries
    state.last_status = status
    state.last_checked_at = now
    state.last_success_at = now
    state.consecutive_failures = 0
    db.session.flush()
    if recovered:
        audit(
            action="jma.feed.recovered",
            organization_id=None,
            actor=ACTOR,
            target_type="jma_feed",
            target_id=feed,
            summary=f"JMA feed {feed} answers again ({url})",
        )
    return state


def record_feed_failure(
    *, feed: str, url: str, error: str, now: datetime, status: int | None = None
) -> FeedState:
    state = feed_state(feed=feed, url=url)
    state.url = url
    state.last_status = status
    state.last_checked_at = now
    state.last_error = error[:2000]
    state.last_error_at = now
    state.consecutive_failures += 1
    db.session.flush()
    if state.consecutive_failures == 1:
        # Audited when it starts failing (and when it recovers), not once a minute while it is down.
        audit(
            action="jma.feed.failing",
            organization_id=None,
            actor=ACTOR,
            target_type="jma_feed",
            target_id=feed,
            summary=f"JMA feed {feed} failed: {error}"[:1000],
        )
    return state


def feed_health() -> list[FeedState]:
    return list(db.session.scalars(select(FeedState).order_by(FeedState.feed)))


# --- receiving bulletins --------------------------------------------------------------------------------------------


def known_entry_ids(*, entry_ids: Iterable[str]) -> set[str]:
    ids = list(entry_ids)
    if not ids:
        return set()
    return set(db.session.scalars(select(JmaBulletin.entry_id).where(JmaBulletin.entry_id.in_(ids))))


def claim_bulletin(
    *,
    entry_id: str,
    source: str,
    url: str | None,
    feed_title: str = "",
    feed_updated_at: datetime | None = None,
    now: datetime,
) -> int | None:
    """Insert the bulletin's row unless it exists: the id when this worker got it, None when another one did.

    INSERT … ON CONFLICT DO NOTHING: a worker racing us waits for our transaction and then inserts nothing, so the
    bulletin is fetched and processed once."""
    values = {
        "entry_id": entry_id,
        "source": source,
        "url": url,
        "feed_title": feed_title[:200],
        "feed_updated_at": feed_updated_at,
        "state": BulletinState.CLAIMED.value,
        "attempts": 1,
        "claimed_at": now,
        "title": feed_title[:200],
    }
    dialect = db.session.get_bind().dialect.name
    insert_into: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert_into(JmaBulletin)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["entry_id"])
        .returning(JmaBulletin.id)
    )
    new_id = db.session.execute(statement).scalar_one_or_none()
    return None if new_id is None else int(new_id)


def retryable_bulletins(*, source: str, now: datetime) -> list[tuple[int, str]]:
    """(id, url) of bulletins whose download or processing failed (tries left) or whose worker vanished."""
    rows = db.session.execute(
        select(JmaBulletin.id, JmaBulletin.url)
        .where(
            JmaBulletin.source == source,
            JmaBulletin.url.is_not(None),
            JmaBulletin.attempts < MAX_ATTEMPTS,
            (
                JmaBulletin.state.in_((BulletinState.FETCH_FAILED, BulletinState.FAILED))
                & (JmaBulletin.claimed_at <= now - RETRY_AFTER)
            )
            | ((JmaBulletin.state == BulletinState.CLAIMED) & (JmaBulletin.claimed_at <= now - CLAIM_LEASE)),
        )
        .order_by(JmaBulletin.feed_updated_at, JmaBulletin.id)
    )
    return [(bulletin_id, url) for bulletin_id, url in rows if url]


def reclaim_bulletin(*, bulletin_id: int, now: datetime) -> bool:
    """Take over a retryable bulletin; False when another worker was quicker."""
    result = db.session.execute(
        update(JmaBulletin)
        .where(
            JmaBulletin.id == bulletin_id,
            JmaBulletin.attempts < MAX_ATTEMPTS,
            (
                JmaBulletin.state.in_((BulletinState.FETCH_FAILED, BulletinState.FAILED))
                & (JmaBulletin.claimed_at <= now - RETRY_AFTER)
            )
            | ((JmaBulletin.state == BulletinState.CLAIMED) & (JmaBulletin.claimed_at <= now - CLAIM_LEASE)),
        )
        .values(state=BulletinState.CLAIMED, claimed_at=now, attempts=JmaBulletin.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def _bulletin_row(bulletin_id: int) -> JmaBulletin:
    row = db.session.get(JmaBulletin, bulletin_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no JMA bulletin {bulletin_id}")
    return row


def record_fetch_failure(*, bulletin_id: int, error: str, now: datetime) -> JmaBulletin:
    row = _bulletin_row(bulletin_id)
    row.state = BulletinState.FETCH_FAILED
    row.error = error
    row.claimed_at = now
    db.session.flush()
    if row.attempts >= MAX_ATTEMPTS:
        audit(
            action="jma.bulletin.fetch_failed",
            organization_id=None,
            actor=ACTOR,
            target_type="jma_bulletin",
            target_id=row.id,
            summary=f"gave up downloading {row.feed_title or row.entry_id} after {row.attempts} tries: {error}",
        )
    return row


def record_processing_failure(*, bulletin_id: int, error: str, now: datetime) -> JmaBulletin:
    row = _bulletin_row(bulletin_id)
    row.state = BulletinState.FAILED
    row.error = error
    row.claimed_at = now
    db.session.flush()
    audit(
        action="jma.bulletin.failed",
        organization_id=None,
        actor=ACTOR,
        target_type="jma_bulletin",
        target_id=row.id,
        summary=f"processing {row.feed_title or row.entry_id} failed (try {row.attempts}): {error}",
    )
    return row


def receive_bulletin(*, bulletin_id: int, data: bytes, now: datetime) -> Bulletin | None:
    """Keep the bytes (compressed) and their hash, parse them; an unreadable bulletin is recorded and audited."""
    row = _bulletin_row(bulletin_id)
    row.sha256 = hashlib.sha256(data).hexdigest()
    row.size = len(data)
    row.raw_zlib = zlib.compress(data, 6)
    row.received_at = now
    try:
        bulletin = parse_bulletin(data)
    except BulletinError as exc:
        row.state = BulletinState.INVALID
        row.error = str(exc)
        row.processed_at = now
        db.session.flush()
        audit(
            action="jma.bulletin.invalid",
            organization_id=None,
            actor=ACTOR,
            target_type="jma_bulletin",
            target_id=row.id,
            summary=f"unreadable bulletin {row.feed_title or row.entry_id}: {exc}",
            detail={"url": row.url, "sha256": row.sha256},
        )
        return None
    row.document = bulletin.to_json_dict()
    row.title = bulletin.title[:200]
    row.data_type = bulletin.data_type
    row.status = bulletin.status
    row.info_type = bulletin.info_type
    row.kind = bulletin.kind
    row.event_key = bulletin.event_key[:255]
    row.report_time = bulletin.report_time
    row.headline = bulletin.headline
    row.error = None
    db.session.flush()
    return bulletin


def raw_bytes(row: JmaBulletin) -> bytes | None:
    return None if row.raw_zlib is None else zlib.decompress(row.raw_zlib)


# --- acting on decisions --------------------------------------------------------------------------------------------


def _lock_organization(organization_id: int) -> None:
    # PostgreSQL: one bulletin (or countdown) at a time per organization, so two workers handling two bulletins of
    # the same event cannot both start a broadcast. SQLite serialises writers anyway (the caller wrote first).
    db.session.execute(select(Organization.id).where(Organization.id == organization_id).with_for_update())


def process_bulletin(
    *,
    bulletin_id: int,
    bulletin: Bulletin,
    now: datetime,
    organization_ids: Sequence[int] | None = None,
) -> list[JmaDecision]:
    """Evaluate the bulletin for every organization (or those given) and act on each decision."""
    row = _bulletin_row(bulletin_id)
    query = select(Organization).order_by(Organization.id)
    if organization_ids is not None:
        query = query.where(Organization.id.in_(organization_ids))
    records: list[JmaDecision] = []
    for org in db.session.scalars(query).all():
        records.extend(_process_isolated(org.id, row, bulletin, now))
    row.state = BulletinState.PROCESSED
    row.processed_at = now
    row.error = None
    db.session.flush()
    acted = sorted({r.action for r in records})
    audit(
        action="jma.bulletin.processed",
        organization_id=None,
        actor=ACTOR,
        target_type="jma_bulletin",
        target_id=row.id,
        summary=f"{bulletin_label(bulletin)} ({bulletin.event_key}): {', '.join(acted) or 'no organization'}",
        detail={"sha256": row.sha256, "url": row.url, "source": row.source},
    )
    return records


def _process_isolated(
    organization_id: int, row: JmaBulletin, bulletin: Bulletin, now: datetime
) -> list[JmaDecision]:
    """One organization's decisions in a savepoint: a bug with one organization's data never keeps the bulletin
    from the others. Database errors still abort the whole bulletin, which is then retried."""
    try:
        with db.session.begin_nested():
            return _process_for_organization(organization_id, row, bulletin, now)
    except SQLAlchemyError:
        raise
    except Exception as exc:
        log.exception("JMA bulletin %s failed for organization %s", row.id, organization_id)
        decision = Decision(
            action="suppress",
            event_key=bulletin.event_key,
            reason=f"processing failed for this organization ({type(exc).__name__}: {exc}); nothing was done",
        )
        return [_record(organization_id, row, bulletin, decision, now, outcome="")]


def _process_for_organization(
    organization_id: int, row: JmaBulletin, bulletin: Bulletin, now: datetime
) -> list[JmaDecision]:
    _lock_organization(organization_id)
    settings = rules_row(organization_id=organization_id)
    try:
        ruleset = ruleset_for(organization_id=organization_id)
    except RuleSetError as exc:
        decision = Decision(
            action="suppress",
            event_key=bulletin.event_key,
            reason=f"the organization's JMA rules cannot be read ({exc})",
        )
        return [_record(organization_id, row, bulletin, decision, now, outcome="")]
    context = organization_context(organization_id=organization_id, around=bulletin.report_time)
    enabled = settings is None or settings.enabled
    records = []
    for decision in evaluate(bulletin, ruleset, context, now):
        if not enabled and decision.action in SENDING_ACTIONS:
            decision = replace(
                decision,
                action="suppress",
                reason=(
                    "automatic broadcasts are switched off for this organization; the rules would have "
                    f"{_PAST[decision.action]} {decision.template} to {decision.audience.describe()}: "
                    f"{decision.reason}"
                ),
            )
        records.append(_apply(organization_id, row, bulletin, decision, settings, now))
    return records


def _event(organization_id: int, decision: Decision) -> JmaEvent | None:
    if decision.template is None or decision.real_or_drill is None:
        return None
    return db.session.scalar(
        select(JmaEvent).where(
            JmaEvent.organization_id == organization_id,
            JmaEvent.event_key == decision.event_key,
            JmaEvent.template == decision.template,
            JmaEvent.mode == decision.real_or_drill,
        )
    )


def _prefecture_intensities(bulletin: Bulletin, before: Mapping[str, str] | None = None) -> dict[str, str]:
    merged = dict(before or {})
    for prefecture in bulletin.prefectures:
        intensity = effective_intensity(prefecture)
        if intensity is not None:
            best = _higher(intensity, merged.get(prefecture.code))
            if best is not None:
                merged[prefecture.code] = best
    return merged


def _open_event(
    organization_id: int,
    bulletin: Bulletin,
    decision: Decision,
    status: EventStatus,
    existing: JmaEvent | None,
) -> JmaEvent:
    """A new event — or the row of one that was cancelled or ended, reused for the same key."""
    event = existing
    if event is None:
        event = JmaEvent(
            organization_id=organization_id,
            event_key=decision.event_key,
            template=decision.template or "",
            mode=decision.real_or_drill or "real",
        )
        db.session.add(event)
    event.kind = bulletin.kind
    event.status = status
    event.audience = decision.audience.to_json_dict()
    event.max_intensity = decision.max_intensity
    event.prefecture_intensities = _prefecture_intensities(bulletin)
    event.emergency_sites = []
    event.report_time = bulletin.report_time
    event.last_report_time = bulletin.report_time
    event.broadcast_id = None
    event.sent_at = None
    db.session.flush()
    return event


def _touch_event(event: JmaEvent, bulletin: Bulletin, decision: Decision) -> None:
    event.last_report_time = max(event.last_report_time, bulletin.report_time)
    event.max_intensity = _higher(event.max_intensity, decision.max_intensity)
    event.prefecture_intensities = _prefecture_intensities(bulletin, event.prefecture_intensities)


def _can_start(organization_id: int, template: str, audience: Audience) -> tuple[int, str]:
    """How many people the broadcast would reach, or 0 and why it cannot start."""
    try:
        broadcasts.get_template(organization_id=organization_id, key=template)
    except NotFound:
        return 0, f"the organization has no template {template!r}"
    try:
        people = broadcasts.count_audience(organization_id=organization_id, audience=audience)
    except ValidationError as exc:
        return 0, str(exc)
    if people == 0:
        return 0, f"nobody in the directory matches {audience.describe()}"
    return people, ""


def _recipient_count(broadcast_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count()).select_from(Recipient).where(Recipient.broadcast_id == broadcast_id)
        )
        or 0
    )


def _start(
    organization_id: int,
    event: JmaEvent,
    template: str,
    audience: Audience,
    now: datetime,
    title_suffix: str,
    settings: JmaRuleSet | None,
) -> tuple[Broadcast | None, str]:
    people, why_not = _can_start(organization_id, template, audience)
    if not people:
        return None, f"nothing sent: {why_not}"
    scenario = broadcasts.get_template(organization_id=organization_id, key=template)
    title = f"{scenario.text('title', 'ja')} — JMA {title_suffix}"[:200]
    broadcast = broadcasts.start_broadcast(
        organization_id=organization_id,
        template=template,
        audience=audience,
        actor=ACTOR,
        mode=event.mode,
        origin=f"jma:{event.event_key}"[:120],
        title=title,
        now=now,
    )
    event.status = EventStatus.SENT
    event.broadcast_id = broadcast.id
    event.sent_at = now
    db.session.flush()
    outcome = (
        f"{event.mode} broadcast {broadcast.id} ({template}) started to {_recipient_count(broadcast.id)} people "
        f"({audience.describe()})"
    )
    return broadcast, outcome + _emergency(organization_id, event, settings, now)


def _emergency(organization_id: int, event: JmaEvent, settings: JmaRuleSet | None, now: datetime) -> str:
    """Switch routing emergency mode on for the sites whose prefecture reached the organization's threshold.

    Each site once per event; a site already in emergency mode (by hand or by another event) is left alone."""
    threshold = settings.emergency_min_intensity if settings is not None else None
    if (
        threshold is None
        or event.mode != "real"
        or event.kind != "earthquake"
        or event.status is not EventStatus.SENT
    ):
        return ""
    prefectures = [
        code
        for code, intensity in event.prefecture_intensities.items()
        if _rank(intensity) >= _rank(threshold)
    ]
    if not prefectures:
        return ""
    done = set(event.emergency_sites or [])
    codes = [
        code
        for code in db.session.scalars(
            select(Site.code)
            .where(Site.organization_id == organization_id, Site.prefecture_code.in_(prefectures))
            .order_by(Site.code)
        )
        if code not in done
    ]
    if not codes:
        return ""
    starter: EmergencyStarter | None = _hooks["emergency"]
    if starter is None:
        return f"; emergency mode for {', '.join(codes)} not switched on: the routing part is not installed"
    switched: list[str] = []
    already: list[str] = []
    failed: list[str] = []
    for code in codes:
        reason = f"JMA: intensity ≥ {threshold} ({event.event_key})"
        try:
            (switched if starter(organization_id, code, reason, now) else already).append(code)
        except LifelineError as exc:
            failed.append(f"{code} ({exc})")
    event.emergency_sites = sorted(done | set(switched) | set(already))
    parts = []
    if switched:
        parts.append(f"emergency mode switched on for {', '.join(switched)}")
    if already:
        parts.append(f"emergency mode already on for {', '.join(already)}")
    if failed:
        parts.append(f"emergency mode could not be switched on for {', '.join(failed)}")
    return "; " + "; ".join(parts)


def _notify(organization_id: int, record: JmaDecision, subject: str, body: str) -> str:
    recipients = broadcasts.crisis_manager_emails(organization_id=organization_id)
    notification = JmaNotification(
        organization_id=organization_id,
        decision_id=record.id,
        subject=subject[:200],
        body=body,
        recipients=recipients,
        created_at=record.created_at,
    )
    db.session.add(notification)
    db.session.flush()
    notifier: Notifier | None = _hooks["notifier"]
    if notifier is not None and recipients:
        notifier(notification)
    if not recipients:
        return "no crisis manager to notify (nobody has the role)"
    return f"{len(recipients)} crisis manager(s) notified"


def _record(
    organization_id: int,
    row: JmaBulletin | None,
    bulletin: Bulletin | None,
    decision: Decision,
    now: datetime,
    *,
    outcome: str,
    event: JmaEvent | None = None,
    broadcast_id: int | None = None,
    actor: str = ACTOR,
    actor_user_id: int | None = None,
) -> JmaDecision:
    record = JmaDecision(
        organization_id=organization_id,
        bulletin_id=row.id if row is not None else None,
        event_id=event.id if event is not None else None,
        action=decision.action,
        template=decision.template,
        mode=decision.real_or_drill,
        event_key=decision.event_key[:255],
        reason=decision.reason,
        outcome=outcome,
        audience=decision.audience.to_json_dict(),
        hold_until=decision.hold_until,
        max_intensity=decision.max_intensity,
        broadcast_id=broadcast_id,
        actor=actor,
        created_at=now,
    )
    db.session.add(record)
    db.session.flush()
    label = bulletin_label(bulletin) if bulletin is not None else decision.event_key
    what = f"{decision.action} {decision.template}" if decision.template else decision.action
    audit(
        action=AUDIT_ACTIONS.get(decision.action, f"jma.{decision.action}"),
        organization_id=organization_id,
        actor=actor,
        actor_user_id=actor_user_id,
        target_type="jma_decision",
        target_id=record.id,
        summary=f"{label}: {what} — {outcome or decision.reason}"[:1000],
        detail={
            **decision.to_json_dict(),
            "outcome": outcome,
            "bulletin_id": record.bulletin_id,
            "broadcast_id": broadcast_id,
        },
    )
    return record


def _apply(
    organization_id: int,
    row: JmaBulletin,
    bulletin: Bulletin,
    decision: Decision,
    settings: JmaRuleSet | None,
    now: datetime,
) -> JmaDecision:
    event = _event(organization_id, decision)
    live = event if event is not None and event.status in (EventStatus.HELD, EventStatus.SENT) else None
    action = decision.action
    outcome = ""
    broadcast_id: int | None = None

    if action == "start":
        event = _open_event(organization_id, bulletin, decision, EventStatus.SENT, event)
        broadcast, outcome = _start(
            organization_id,
            event,
            decision.template or "",
            decision.audience,
            now,
            bulletin_label(bulletin),
            settings,
        )
        if broadcast is None:
            event.status = EventStatus.CANCELLED
        else:
            broadcast_id = broadcast.id
    elif action == "hold":
        people, why_not = _can_start(organization_id, decision.template or "", decision.audience)
        if not people:
            outcome = f"nothing held: {why_not}"
        else:
            event = _open_event(organization_id, bulletin, decision, EventStatus.HELD, event)
            send_at = decision.hold_until or now
            db.session.add(
                HeldTrigger(
                    organization_id=organization_id, event_id=event.id, send_at=send_at, created_at=now
                )
            )
            db.session.flush()
            outcome = (
                f"held until {to_local(send_at).strftime('%H:%M:%S')}: {decision.template} to {people} people "
                f"({decision.audience.describe()}) unless JMA withdraws it or someone cancels or sends it now"
            )
    elif action == "widen" and live is not None:
        _touch_event(live, bulletin, decision)
        live.audience = audience_from_json(live.audience).union(decision.audience).to_json_dict()
        if live.status is EventStatus.HELD:
            outcome = (
                f"the held broadcast will also go to {decision.audience.describe()}; nobody was contacted yet"
            )
        elif live.broadcast_id is not None:
            broadcast_id = live.broadcast_id
            try:
                added = broadcasts.widen_broadcast(
                    broadcast_id=live.broadcast_id, audience=decision.audience, actor=ACTOR, now=now
                )
            except (Conflict, ValidationError) as exc:
                outcome = f"broadcast {live.broadcast_id} not widened: {exc}"
            else:
                outcome = (
                    f"{added} more people added to broadcast {live.broadcast_id} ({decision.audience.describe()}); "
                    "nobody already in it is contacted again"
                ) + _emergency(organization_id, live, settings, now)
    elif action == "cancel" and live is not None and live.status is EventStatus.HELD:
        _touch_event(live, bulletin, decision)
        cancelled = _cancel_holds(live, ACTOR, decision.reason, now)
        live.status = EventStatus.CANCELLED
        outcome = f"held broadcast cancelled ({cancelled} countdown stopped); nobody was contacted"
    elif action == "replace" and live is not None and live.status is EventStatus.HELD:
        _touch_event(live, bulletin, decision)
        live.audience = decision.audience.to_json_dict()
        live.max_intensity = decision.max_intensity
        outcome = f"the held broadcast now goes to {decision.audience.describe()} instead"
    elif action == "notify_only":
        if live is not None:
            _touch_event(live, bulletin, decision)
            outcome = _emergency(organization_id, live, settings, now).removeprefix("; ")
            # A later 発表 for a sent weather or tsunami event that no longer meets the rules is the all-clear; a
            # new warning for the same region afterwards is a new event.
            if (
                live.status is EventStatus.SENT
                and decision.audience.is_empty
                and bulletin.info_type == "発表"
                and bulletin.kind in ("weather", "tsunami")
            ):
                live.status = EventStatus.ENDED
    elif action == "suppress" and live is not None:
        _touch_event(live, bulletin, decision)
        outcome = _emergency(organization_id, live, settings, now).removeprefix("; ")
    elif action in ("widen", "cancel", "replace"):
        outcome = f"nothing to {action}: no held or sent broadcast for {decision.event_key} any more"

    db.session.flush()
    record = _record(
        organization_id, row, bulletin, decision, now, outcome=outcome, event=event, broadcast_id=broadcast_id
    )
    if action == "notify_only" or (action in ("hold", "cancel") and record.outcome.startswith("held")):
        subject = f"[Lifeline] JMA: {_NOTIFY_SUBJECTS[action]} — {bulletin_label(bulletin)}"
        lines = [bulletin.headline or bulletin.title, ""]
        lines.append(f"Decision: {action} {decision.template or ''} ({decision.real_or_drill or '-'})")
        lines.append(f"Why: {decision.reason}")
        if record.outcome:
            lines.append(f"Done: {record.outcome}")
        body = "\n".join(lines)
        note = _notify(organization_id, record, subject, body)
        record.outcome = f"{record.outcome}; {note}" if record.outcome else note
        db.session.flush()
    return record


_NOTIFY_SUBJECTS = {
    "notify_only": "for your information",
    "hold": "broadcast on hold",
    "cancel": "held broadcast cancelled",
}


def _cancel_holds(event: JmaEvent, actor: str, reason: str, now: datetime) -> int:
    result = db.session.execute(
        update(HeldTrigger)
        .where(HeldTrigger.event_id == event.id, HeldTrigger.state == HeldState.WAITING)
        .values(state=HeldState.CANCELLED, resolved_at=now, resolved_by=actor, resolution=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- held broadcasts ------------------------------------------------------------------------------------------------


def due_holds(*, now: datetime) -> list[int]:
    return list(
        db.session.scalars(
            select(HeldTrigger.id)
            .where(HeldTrigger.state == HeldState.WAITING, HeldTrigger.send_at <= now)
            .order_by(HeldTrigger.send_at, HeldTrigger.id)
        )
    )


def _take_hold(
    held_id: int, state: HeldState, actor: str, reason: str, now: datetime, organization_id: int | None
) -> HeldTrigger | None:
    """Move a waiting hold on; None when it is not waiting any more (released, cancelled, another worker)."""
    condition = (HeldTrigger.id == held_id) & (HeldTrigger.state == HeldState.WAITING)
    if organization_id is not None:
        condition = condition & (HeldTrigger.organization_id == organization_id)
    result = db.session.execute(
        update(HeldTrigger)
        .where(condition)
        .values(state=state, resolved_at=now, resolved_by=actor, resolution=reason)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return None
    return db.session.get(HeldTrigger, held_id, populate_existing=True)


def release_hold(
    *,
    held_id: int,
    actor: str = ACTOR,
    actor_user_id: int | None = None,
    organization_id: int | None = None,
    reason: str = "",
    now: datetime,
) -> JmaDecision | None:
    """Start the held broadcast now (its countdown ran out, or a person pressed "send now").

    Returns None when it was not waiting any more — so two workers, or a worker and a person, start it once."""
    held = _take_hold(held_id, HeldState.RELEASED, actor, reason, now, organization_id)
    if held is None:
        return None
    _lock_organization(held.organization_id)
    event = held.event
    settings = rules_row(organization_id=held.organization_id)
    audience = audience_from_json(event.audience)
    why = reason or (
        "the hold ran out and JMA did not withdraw the bulletin"
        if actor == ACTOR
        else f"{actor} sent it before the hold ran out"
    )
    decision = Decision(
        action="release",  # type: ignore[arg-type]  # not one of the rules' actions: a hold ending
        event_key=event.event_key,
        reason=why,
        real_or_drill="drill" if event.mode == "drill" else "real",
        template=event.template,
        audience=audience,
        max_intensity=event.max_intensity,
    )
    broadcast: Broadcast | None = None
    if actor == ACTOR and settings is not None and not settings.enabled:
        held.state = HeldState.CANCELLED
        event.status = EventStatus.CANCELLED
        outcome = "not sent: automatic broadcasts were switched off while it was held"
    else:
        suffix = f"{event.event_key} ({event.max_intensity or event.kind})"
        broadcast, outcome = _start(
            held.organization_id, event, event.template, audience, now, suffix, settings
        )
        if broadcast is None:
            event.status = EventStatus.CANCELLED
        else:
            held.broadcast_id = broadcast.id
    held.resolution = f"{why}: {outcome}"
    db.session.flush()
    return _record(
        held.organization_id,
        None,
        None,
        decision,
        now,
        outcome=outcome,
        event=event,
        broadcast_id=broadcast.id if broadcast is not None else None,
        actor=actor,
        actor_user_id=actor_user_id,
    )


def cancel_hold(
    *,
    held_id: int,
    actor: str,
    actor_user_id: int | None = None,
    organization_id: int | None = None,
    reason: str = "",
    now: datetime,
) -> JmaDecision | None:
    """A person cancels a held broadcast; nobody is contacted. None when it was not waiting any more."""
    why = reason.strip() or f"cancelled by {actor} before the hold ran out"
    held = _take_hold(held_id, HeldState.CANCELLED, actor, why, now, organization_id)
    if held is None:
        return None
    event = held.event
    event.status = EventStatus.CANCELLED
    db.session.flush()
    decision = Decision(
        action="cancel",
        event_key=event.event_key,
        reason=why,
        real_or_drill="drill" if event.mode == "drill" else "real",
        template=event.template,
        audience=audience_from_json(event.audience),
        max_intensity=event.max_intensity,
    )
    return _record(
        held.organization_id,
        None,
        None,
        decision,
        now,
        outcome="held broadcast cancelled; nobody was contacted",
        event=event,
        actor=actor,
        actor_user_id=actor_user_id,
    )


def release_due(*, now: datetime) -> list[JmaDecision]:
    released = []
    for held_id in due_holds(now=now):
        record = release_hold(held_id=held_id, now=now)
        if record is not None:
            released.append(record)
    return released


# --- replay and dry run ---------------------------------------------------------------------------------------------


def organizations(*, slug: str | None = None) -> list[Organization]:
    query = select(Organization).order_by(Organization.id)
    if slug is not None:
        query = query.where(Organization.slug == slug)
    orgs = list(db.session.scalars(query))
    if slug is not None and not orgs:
        raise NotFound(f"no organization {slug!r}")
    return orgs


def replay_bulletin(
    *, data: bytes, name: str, now: datetime, organization_ids: Sequence[int] | None = None
) -> tuple[JmaBulletin, list[JmaDecision]]:
    """Store and act on a bulletin as if it had just arrived from the feed (a drill, a test, a missed bulletin).

    Raises BulletinError when the bytes are not a bulletin; nothing is stored then."""
    bulletin = parse_bulletin(data)
    bulletin_id = claim_bulletin(
        entry_id=f"replay:{uuid.uuid4()}", source="replay", url=None, feed_title=name, now=now
    )
    assert bulletin_id is not None  # a fresh uuid cannot collide
    receive_bulletin(bulletin_id=bulletin_id, data=data, now=now)
    decisions = process_bulletin(
        bulletin_id=bulletin_id, bulletin=bulletin, now=now, organization_ids=organization_ids
    )
    return _bulletin_row(bulletin_id), decisions


@dataclass(frozen=True)
class DryRunResult:
    organization: str
    bulletin: Bulletin
    decisions: tuple[Decision, ...]


def _advance(
    known: list[EventState], bulletin: Bulletin, decisions: Sequence[Decision], now: datetime
) -> list[EventState]:
    """What the known events would look like after acting on ``decisions`` (for a dry run of several bulletins)."""
    states = {(s.event_key, s.template, s.real_or_drill): s for s in known}
    for d in decisions:
        if d.template is None or d.real_or_drill is None:
            continue
        key = (d.event_key, d.template, d.real_or_drill)
        prior = states.get(key)
        if d.action in ("start", "hold"):
            states[key] = EventState(
                event_key=d.event_key,
                kind=bulletin.kind,
                template=d.template,
                status="held" if d.action == "hold" else "sent",
                real_or_drill=d.real_or_drill,
                audience=d.audience,
                report_time=bulletin.report_time,
                max_intensity=d.max_intensity,
                hold_until=d.hold_until,
                sent_at=None if d.action == "hold" else now,
            )
        elif prior is not None and d.action == "widen":
            states[key] = replace(
                prior,
                audience=prior.audience.union(d.audience),
                max_intensity=_higher(prior.max_intensity, d.max_intensity),
            )
        elif prior is not None and d.action == "replace":
            states[key] = replace(prior, audience=d.audience, max_intensity=d.max_intensity)
        elif prior is not None and d.action == "cancel":
            del states[key]
    return list(states.values())


def dry_run(
    *, bulletins: Sequence[Bulletin], now: datetime, organization_ids: Sequence[int] | None = None
) -> list[DryRunResult]:
    """The decisions the bulletins would cause, in order, each seeing what the earlier ones would have done.

    Reads the database, writes nothing."""
    results = []
    query = select(Organization).order_by(Organization.id)
    if organization_ids is not None:
        query = query.where(Organization.id.in_(organization_ids))
    for org in db.session.scalars(query).all():
        try:
            ruleset = ruleset_for(organization_id=org.id)
        except RuleSetError as exc:
            for bulletin in bulletins:
                reason = f"the organization's JMA rules cannot be read ({exc})"
                results.append(
                    DryRunResult(org.slug, bulletin, (Decision("suppress", bulletin.event_key, reason),))
                )
            continue
        settings = rules_row(organization_id=org.id)
        enabled = settings is None or settings.enabled
        known: list[EventState] | None = None
        for bulletin in bulletins:
            context = organization_context(organization_id=org.id, around=bulletin.report_time)
            if known is None:
                known = list(context.known_events)
            context = replace(context, known_events=tuple(known))
            decisions = evaluate(bulletin, ruleset, context, now)
            if not enabled:
                decisions = [
                    replace(
                        d,
                        action="suppress",
                        reason=f"automatic broadcasts are switched off; would {d.action}: {d.reason}",
                    )
                    if d.action in SENDING_ACTIONS
                    else d
                    for d in decisions
                ]
            known = _advance(known, bulletin, decisions, now)
            results.append(DryRunResult(org.slug, bulletin, tuple(decisions)))
    return results


# --- what the JMA page shows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulletinWithDecisions:
    bulletin: JmaBulletin
    decisions: tuple[JmaDecision, ...]


def recent_bulletins(*, organization_id: int, limit: int = 30) -> list[BulletinWithDecisions]:
    rows = list(db.session.scalars(select(JmaBulletin).order_by(JmaBulletin.id.desc()).limit(limit)))
    decisions: dict[int, list[JmaDecision]] = {}
    if rows:
        for record in db.session.scalars(
            select(JmaDecision)
            .where(
                JmaDecision.organization_id == organization_id,
                JmaDecision.bulletin_id.in_([r.id for r in rows]),
            )
            .order_by(JmaDecision.id)
        ):
            if record.bulletin_id is not None:
                decisions.setdefault(record.bulletin_id, []).append(record)
    return [BulletinWithDecisions(row, tuple(decisions.get(row.id, ()))) for row in rows]


def bulletin_with_decisions(*, bulletin_id: int, organization_id: int) -> BulletinWithDecisions:
    row = db.session.get(JmaBulletin, bulletin_id)
    if row is None:
        raise NotFound(f"no JMA bulletin {bulletin_id}")
    decisions = db.session.scalars(
        select(JmaDecision)
        .where(JmaDecision.organization_id == organization_id, JmaDecision.bulletin_id == bulletin_id)
        .order_by(JmaDecision.id)
    )
    return BulletinWithDecisions(row, tuple(decisions))


def waiting_holds(*, organization_id: int) -> list[HeldTrigger]:
    return list(
        db.session.scalars(
            select(HeldTrigger)
            .where(HeldTrigger.organization_id == organization_id, HeldTrigger.state == HeldState.WAITING)
            .order_by(HeldTrigger.send_at)
        )
    )


def recent_hold_outcomes(*, organization_id: int, limit: int = 10) -> list[JmaDecision]:
    """Holds released or cancelled by the countdown or by a person (decisions without a bulletin)."""
    return list(
        db.session.scalars(
            select(JmaDecision)
            .where(JmaDecision.organization_id == organization_id, JmaDecision.bulletin_id.is_(None))
            .order_by(JmaDecision.id.desc())
            .limit(limit)
        )
    )


def recent_notifications(*, organization_id: int, limit: int = 10) -> list[JmaNotification]:
    return list(
        db.session.scalars(
            select(JmaNotification)
            .where(JmaNotification.organization_id == organization_id)
            .order_by(JmaNotification.id.desc())
            .limit(limit)
        )
    )
