"""The overview: what is going on, read from every part the user may see, one block per part.

Each block names the part it reads, the roles that see it (the same roles the part's own pages admit) and a loader
that calls the part's service functions (or a SQL aggregate from :mod:`dashboards.queries`). A part that is not
installed, or whose loader fails, makes its block "unavailable" and nothing else: the page still answers, which is
the point of a screen people open during an outage.

The same build feeds the page and ``live.json``: :func:`live_values` turns the blocks into the numbers, meters,
tones and charts a script refreshes, and the page prints exactly those values, so with or without script people
see the same figures.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import url_for
from markupsafe import Markup

from core import db
from core.auth.models import Role
from core.auth.service import Principal
from core.directory.models import Organization
from core.i18n import gettext as _
from core.time import to_local
from dashboards import charts, queries

log = logging.getLogger(__name__)

MAX_BROADCASTS = 6  # running at once is rare; more than this and the broadcast list is the better screen
MAX_DEPARTMENTS = 10
CURVE_STEPS = 24
JMA_BULLETINS = 5
JMA_RECENT = timedelta(hours=24)
MAX_INCIDENTS = 5
MAX_STOCK_WARNINGS = 8

# Who sees which block: the roles each part's own pages admit (tests keep them equal).
BROADCAST_ROLES = queries.ANSWER_ROLES  # ivr.views.READ
SITE_ROLES = (Role.SUPERVISOR, Role.CRISIS_MANAGER)  # continuity.views.READERS
JMA_ROLES = (Role.CRISIS_MANAGER, Role.MANAGER)  # ivr.jma.views.READ
INCIDENT_ROLES = (Role.CRISIS_MANAGER, Role.SUPERVISOR, Role.MANAGER)  # incidents.service.VIEW_ROLES
CARE_ROLES = queries.CARE_ROLES  # incidents.care.CARE_ROLES
STOCK_ROLES = (Role.FACILITIES, Role.CRISIS_MANAGER)  # stockpile.views.READ_ROLES
DRILL_ROLES = (Role.CRISIS_MANAGER, Role.MANAGER)  # reports.service.READ_ROLES
START_ROLES = (Role.CRISIS_MANAGER,)

TONE_OF_SITE_STATE = {"normal": "ok", "degraded": "warn", "down": "bad", "evacuated": "bad"}
# How alarming each answer of the safety (or health) question is, so "need help" stands out; the options of other
# questions stay neutral.
OPTION_TONES = {
    "safety": {"1": "ok", "2": "warn", "3": "bad", "4": "neutral"},
    "health": {"1": "ok", "2": "warn", "3": "bad", "4": "warn"},
}
# The overview's own words for other parts' states and targets: a bare "open" or "closed" means different things in
# different parts, so these are message ids of the overview's catalogue.
SITE_STATE_LABELS = {"normal": "Normal", "degraded": "Degraded", "down": "Down", "evacuated": "Evacuated"}
MODE_LABELS = {
    "open": "Open now",
    "closed": "Closed (outside hours)",
    "holiday": "Closed (holiday)",
    "emergency": "Emergency mode",
}
TARGET_LABELS = {
    "site_agents": "Agents at {site}",
    "site": "Agents at {site} (another site)",
    "home_agents": "Home agents",
    "queue": "Waiting queue {queue}",
    "faq_menu": "FAQ menu (unmanned)",
    "voicemail": "Voicemail (unmanned)",
    "sms_link": "SMS with the status page (unmanned)",
    "callback_request": "Callback request (unmanned)",
    "announcement": "Announcement, then hang up",
}
JMA_ACTION_LABELS = {
    "start": "Broadcast started",
    "release": "Broadcast sent after the hold",
    "hold": "Broadcast held",
    "widen": "Broadcast widened",
    "cancel": "Held broadcast cancelled",
    "notify_only": "Crisis managers notified only",
    "suppress": "No broadcast",
    "replace": "Broadcast audience corrected",
}
JMA_CONTROL_LABELS = {"通常": "Regular bulletin", "訓練": "Exercise bulletin", "試験": "Test bulletin"}
STOCK_STATE_LABELS = {
    "short": "Short of supplies",
    "expiring": "Stock expiring",
    "concentrated": "Too much in one place",
    "ok": "Fully stocked",
}
STOCK_STATE_TONES = {"short": "bad", "expiring": "warn", "concentrated": "warn", "ok": "ok"}


def number(value: int) -> str:
    return f"{value:,}"


# --- what a block holds ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Attention:
    text: str
    anchor: str


@dataclass
class Loaded:
    """What a loader hands back: the block's data, its links, and what needs someone's attention now."""

    data: Any
    links: list[Link] = field(default_factory=list)
    attention: list[Attention] = field(default_factory=list)


@dataclass
class Block:
    key: str
    title: str
    available: bool
    missing: bool = False  # the part is not installed (as opposed to failing right now)
    watched: bool = False  # takes part in the "everything normal" verdict
    data: Any = None
    links: list[Link] = field(default_factory=list)
    attention: list[Attention] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"block-{self.key}"


@dataclass(frozen=True)
class Context:
    principal: Principal
    now: datetime
    today: date  # in the organization's time zone
    language: str


@dataclass(frozen=True)
class Spec:
    key: str
    title: str
    part: str
    roles: tuple[Role, ...]
    load: Callable[[Context], Loaded]
    watched: bool


# --- safety broadcasts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gauge:
    key: str
    label: str
    value: int
    max: int
    tone: str


@dataclass
class BroadcastCard:
    key: str
    id: int
    title: str
    mode: str
    mode_label: str
    state_label: str
    started_at: datetime | None
    url: str
    routine: bool  # the monthly contact check: shown, but nothing is wrong because of it
    recipients: int
    answered: int
    unreached: int
    in_progress: int
    question: str
    gauges: list[Gauge]
    curve: Markup
    departments: Markup | None
    more_departments: int


@dataclass
class Broadcasts:
    cards: list[BroadcastCard]
    can_start: bool
    more: bool  # more broadcasts are running than the overview shows
    list_url: str


def _curve(card_key: str, broadcast_id: int, ctx: Context, started: datetime, total: int) -> Markup:
    end = ctx.now
    elapsed = max((end - started).total_seconds(), 0.0)
    edges = [started + timedelta(seconds=elapsed * n / CURVE_STEPS) for n in range(CURVE_STEPS + 1)]
    counts = queries.answered_by(broadcast_id=broadcast_id, principal=ctx.principal, edges=edges)
    minutes = elapsed / 60
    points = [
        charts.CurvePoint(minutes=minutes * n / CURVE_STEPS, answered=count) for n, count in enumerate(counts)
    ]
    answered = counts[-1] if counts else 0
    whole = round(minutes)
    axis = charts.axis_minutes(minutes)
    return charts.answer_curve(
        chart_id=f"{card_key}-curve-svg",
        points=points,
        total=total,
        axis=axis,
        title=_("Answers over time"),
        desc=_(
            "{answered} of {total} people ({percent}%) answered within {minutes} minutes of the start.",
            answered=answered,
            total=total,
            percent=charts.percent(answered, total),
            minutes=whole,
        ),
        x_label=_("minutes since the start"),
        end_label=_("{minutes} min", minutes=axis) if axis < 180 else _("{hours} h", hours=axis // 60),
    )


def _department_bars(card_key: str, rows: Sequence[dict[str, Any]]) -> tuple[Markup | None, int]:
    if not rows:
        return None, 0
    # The largest departments, shown in name order so bars keep their place while numbers change.
    chosen = sorted(rows, key=lambda r: (-int(r["recipients"]), str(r["name"])))[:MAX_DEPARTMENTS]
    chosen.sort(key=lambda r: (r["name"] == "-", str(r["name"])))
    bars = [
        charts.Bar(
            label=_("No department") if r["name"] == "-" else str(r["name"]),
            answered=int(r["answered"]),
            total=int(r["recipients"]),
        )
        for r in chosen
    ]
    markup = charts.department_bars(
        chart_id=f"{card_key}-departments-svg",
        bars=bars,
        title=_("Answers by department"),
        desc=_(
            "People who answered out of the people asked, for each of {count} departments.", count=len(bars)
        ),
    )
    return markup, len(rows) - len(chosen)


def _broadcast_title(title: str, scenario: Any, language: str) -> str:
    # A broadcast keeps its Japanese template title; an English reader gets the template's English one, unless
    # someone gave the broadcast a title of their own.
    if language != "ja" and title == scenario.text("title", "ja"):
        return str(scenario.text("title", language))
    return title


def load_broadcasts(ctx: Context) -> Loaded:
    from ivr import service as ivr_service

    cards = []
    running = queries.running_broadcasts(
        organization_id=ctx.principal.organization_id, limit=MAX_BROADCASTS + 1
    )
    for item in running[:MAX_BROADCASTS]:
        status = ivr_service.broadcast_status(broadcast_id=item.id, principal=ctx.principal)
        total = int(status["recipients"])
        if total == 0:
            continue  # nobody of this user's scope was asked
        broadcast = ivr_service.get_broadcast(broadcast_id=item.id)
        scenario = ivr_service.snapshot(broadcast)
        key = f"bc-{item.id}"
        answered = int(status["answered"])
        gauges: list[Gauge] = []
        question = ""
        if scenario.questions:
            first = scenario.questions[0]
            question = first.prompt(ctx.language)
            counts = status["by_answer"].get(first.key, {})
            tones = OPTION_TONES.get(first.key, {})
            gauges = [
                Gauge(
                    key=f"{key}-g{option.value}",
                    label=option.text(ctx.language),
                    value=int(counts.get(option.value, 0)),
                    max=total,
                    tone=tones.get(option.value, "neutral"),
                )
                for option in first.options
            ]
        gauges.append(
            Gauge(
                key=f"{key}-gnone", label=_("No answer yet"), value=total - answered, max=total, tone="none"
            )
        )
        departments, more = _department_bars(key, status["by_department"])
        cards.append(
            BroadcastCard(
                key=key,
                id=item.id,
                title=_broadcast_title(broadcast.title, scenario, ctx.language),
                mode=broadcast.mode.value,
                mode_label=_("Drill") if broadcast.mode.value == "drill" else _("Real"),
                state_label=_("Contacting people")
                if status["state"] == "sending"
                else _("Waiting for answers"),
                started_at=broadcast.started_at,
                url=url_for("ivr.broadcast_watch", broadcast_id=item.id),
                routine=item.template_key == "contact_check",
                recipients=total,
                answered=answered,
                unreached=int(status["unreached"]),
                in_progress=int(status["in_progress"]),
                question=question,
                gauges=gauges,
                curve=_curve(key, item.id, ctx, broadcast.started_at or ctx.now, total),
                departments=departments,
                more_departments=more,
            )
        )
    can_start = ctx.principal.has(*START_ROLES)
    links = [Link(_("All broadcasts"), url_for("ivr.broadcast_list"))]
    if can_start:
        links.insert(0, Link(_("Start a broadcast"), url_for("ivr.broadcast_new")))
    urgent = [c for c in cards if not c.routine]
    attention = (
        [Attention(_("Safety broadcasts running: {count}", count=len(urgent)), "block-broadcasts")]
        if urgent
        else []
    )
    more = len(running) > MAX_BROADCASTS
    return Loaded(Broadcasts(cards, can_start, more, url_for("ivr.broadcast_list")), links, attention)


# --- sites and lines ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteRow:
    key: str
    id: int
    code: str
    name: str
    state: str
    state_label: str
    tone: str
    reason: str
    heartbeat: str
    heartbeat_tone: str  # "warn" once the site has been silent for longer than its limit


@dataclass(frozen=True)
class LineRow:
    key: str
    id: int
    number: str
    name: str
    mode_label: str
    mode_tone: str
    goes_to: str
    goes_tone: str
    rerouted: bool
    explain_url: str


@dataclass
class Sites:
    sites: list[SiteRow]
    lines: list[LineRow]
    home_agents_available: int
    home_agents_total: int


def heartbeat_text(age_s: int | None) -> str:
    if age_s is None:
        return _("No heartbeat yet")
    if age_s < 120:
        return _("{seconds} s ago", seconds=age_s)
    if age_s < 2 * 3600:
        return _("{minutes} min ago", minutes=age_s // 60)
    if age_s < 2 * 86400:
        return _("{hours} h ago", hours=age_s // 3600)
    return _("{days} days ago", days=age_s // 86400)


def target_text(target: Any) -> str:
    """Where a call goes, in words: "Agents at OSA (another site)", "Voicemail (unmanned)" …"""
    kind = target.kind.value
    return _(TARGET_LABELS.get(kind, kind), site=target.site_code or "", queue=target.queue_name or "")


def load_sites(ctx: Context) -> Loaded:
    from continuity import service as continuity_service
    from continuity.models import LineKind
    from continuity.routing import SITE_KINDS, Mode, TargetKind

    board = continuity_service.board(organization_id=ctx.principal.organization_id, now=ctx.now)
    scope = ctx.principal.scope_ids(*SITE_ROLES)
    visible = None if scope is None else scope[0]
    sites = []
    for row in board.sites:
        if visible is not None and row.site.id not in visible:
            continue
        state = row.state.value
        age = row.heartbeat_age_s(ctx.now)
        limit = row.status.heartbeat_limit_s if row.status else None
        stale = age is not None and limit is not None and age > limit
        name = row.site.name_en if ctx.language == "en" and row.site.name_en else row.site.name
        sites.append(
            SiteRow(
                key=f"site-{row.site.id}",
                id=row.site.id,
                code=row.site.code,
                name=name,
                state=state,
                state_label=_(SITE_STATE_LABELS.get(state, state)),
                tone=TONE_OF_SITE_STATE.get(state, "warn"),
                reason=(row.status.state_reason if row.status and state != "normal" else "") or "",
                heartbeat=heartbeat_text(age),
                heartbeat_tone="warn" if stale else "ok",
            )
        )
    codes = {s.code for s in sites}
    lines = []
    for line_row in board.lines:
        line = line_row.line
        if line.kind is not LineKind.CUSTOMER or line.plan is None:
            continue
        home = continuity_service.plan_of_line(line).home_site
        if visible is not None and home not in codes:
            continue
        decision = line_row.decision
        if decision is None:
            continue
        chosen = decision.chosen
        if chosen is None:
            goes_to, goes_tone = _("Nobody: the call ends"), "bad"
        else:
            goes_to = target_text(chosen.target)
            if chosen.target.kind is TargetKind.SITE_AGENTS and chosen.target.site_code == home:
                goes_tone = "ok"
            elif chosen.target.kind in SITE_KINDS or chosen.target.kind is TargetKind.HOME_AGENTS:
                goes_tone = "warn"
            else:
                goes_tone = "bad"
        mode = decision.mode
        lines.append(
            LineRow(
                key=f"line-{line.id}",
                id=line.id,
                number=line.number,
                name=line.name,
                mode_label=_(MODE_LABELS.get(mode.value, mode.value)),
                mode_tone={Mode.OPEN: "ok", Mode.EMERGENCY: "bad"}.get(mode, "warn"),
                goes_to=goes_to,
                goes_tone=goes_tone,
                rerouted=line_row.override is not None,
                explain_url=url_for("continuity.explain", line=line.id),
            )
        )
    attention = []
    troubled = [s for s in sites if s.state != "normal"]
    if troubled:
        attention.append(
            Attention(
                _("Sites not working normally: {sites}", sites=", ".join(s.code for s in troubled)),
                "block-sites",
            )
        )
    unusual = [ln for ln in lines if ln.rerouted or ln.mode_tone == "bad"]
    if unusual:
        attention.append(
            Attention(_("Lines rerouted or in emergency mode: {count}", count=len(unusual)), "block-sites")
        )
    links = [
        Link(_("Routing board"), url_for("continuity.board")),
        Link(_("Where would a call go?"), url_for("continuity.explain")),
    ]
    return Loaded(
        Sites(sites, lines, int(board.home_agents_available), int(board.home_agents_total)), links, attention
    )


# --- JMA ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRow:
    action: str
    label: str
    reason: str
    outcome: str
    broadcast_url: str | None


@dataclass(frozen=True)
class BulletinRow:
    id: int
    title: str
    headline: str
    control: str
    at: datetime | None
    url: str
    decisions: list[DecisionRow]


@dataclass(frozen=True)
class HoldRow:
    id: int
    template: str
    send_at: datetime


@dataclass
class Jma:
    bulletins: list[BulletinRow]
    holds: list[HoldRow]
    sending_recently: int


def _broadcast_link(broadcast_id: int | None) -> str | None:
    return None if broadcast_id is None else url_for("ivr.broadcast_watch", broadcast_id=broadcast_id)


def load_jma(ctx: Context) -> Loaded:
    from ivr.jma import service as jma_service

    org_id = ctx.principal.organization_id
    bulletins = [
        BulletinRow(
            id=item.bulletin.id,
            title=item.bulletin.title or item.bulletin.feed_title or _("Bulletin"),
            headline=item.bulletin.headline or "",
            control=_(JMA_CONTROL_LABELS[item.bulletin.status])
            if item.bulletin.status in JMA_CONTROL_LABELS
            else (item.bulletin.status or ""),
            at=item.bulletin.report_time or item.bulletin.received_at,
            url=url_for("jma.bulletin", bulletin_id=item.bulletin.id),
            decisions=[
                DecisionRow(
                    action=d.action,
                    label=_(JMA_ACTION_LABELS.get(d.action, d.action)),
                    reason=d.reason,
                    outcome=d.outcome,
                    broadcast_url=_broadcast_link(d.broadcast_id),
                )
                for d in item.decisions
            ],
        )
        for item in jma_service.recent_bulletins(organization_id=org_id, limit=JMA_BULLETINS)
    ]
    holds = [
        HoldRow(id=h.id, template=h.event.template, send_at=h.send_at)
        for h in jma_service.waiting_holds(organization_id=org_id)
    ]
    sending = queries.jma_sending_decisions(organization_id=org_id, since=ctx.now - JMA_RECENT)
    attention = []
    if holds:
        attention.append(Attention(_("JMA broadcasts on hold: {count}", count=len(holds)), "block-jma"))
    if sending:
        attention.append(
            Attention(
                _("JMA bulletins that sent a broadcast in the last 24 hours: {count}", count=sending),
                "block-jma",
            )
        )
    return Loaded(
        Jma(bulletins, holds, sending), [Link(_("JMA auto-trigger"), url_for("jma.index"))], attention
    )


# --- incidents and care ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentRow:
    id: int
    title: str
    type_label: str
    severity_label: str
    severity_tone: str
    state: str
    state_label: str
    started_at: datetime | None
    url: str


@dataclass
class Incidents:
    incidents: list[IncidentRow]
    more: int
    care: dict[str, int] | None
    care_url: str | None


def load_incidents(ctx: Context) -> Loaded:
    from incidents import service as incident_service
    from incidents.labels import label

    open_now = incident_service.open_incidents(organization_id=ctx.principal.organization_id)
    rows = [
        IncidentRow(
            id=incident.id,
            title=incident.title,
            type_label=incident_service.type_label(incident.type, ctx.language),
            severity_label=label(incident.severity),
            severity_tone="warn" if incident.severity.value == "minor" else "bad",
            state=incident.state.value,
            state_label=label(incident.state),
            started_at=incident.started_at,
            url=url_for("incidents.detail", incident_id=incident.id),
        )
        for incident in open_now[:MAX_INCIDENTS]
    ]
    care = None
    care_url = None
    if ctx.principal.has(*CARE_ROLES):
        care = queries.care_counts(principal=ctx.principal)
        care_url = url_for("incidents.care_list")
    links = [Link(_("All incidents"), url_for("incidents.index"))]
    if ctx.principal.has(*START_ROLES):
        links.insert(0, Link(_("Declare an incident"), url_for("incidents.declare")))
    if care_url:
        links.append(Link(_("Care follow-up list"), care_url))
    attention = []
    if open_now:
        attention.append(Attention(_("Open incidents: {count}", count=len(open_now)), "block-incidents"))
    waiting = sum(care.values()) if care else 0
    if waiting:
        attention.append(
            Attention(_("People waiting for care follow-up: {count}", count=waiting), "block-incidents")
        )
    return Loaded(Incidents(rows, max(len(open_now) - MAX_INCIDENTS, 0), care, care_url), links, attention)


# --- stockpile ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StockRow:
    key: str
    code: str
    name: str
    state: str
    state_label: str
    tone: str
    short: list[str]
    expiring: int
    expired: int
    concentrated: int
    url: str


@dataclass
class Stock:
    sites: int
    fully_stocked: int
    warnings: list[StockRow]
    more: int


def load_stockpile(ctx: Context) -> Loaded:
    from stockpile import service as stock_service

    scope = ctx.principal.scope_ids(*STOCK_ROLES)
    statuses = stock_service.statuses_for(
        organization_id=ctx.principal.organization_id, site_ids=None if scope is None else scope[0]
    )
    warnings = []
    for status in statuses:
        state = status.state
        if state == "ok":
            continue
        site = status.site
        warnings.append(
            StockRow(
                key=f"stock-{site.id}",
                code=site.code,
                name=site.name_en if ctx.language == "en" and site.name_en else site.name,
                state=state,
                state_label=_(STOCK_STATE_LABELS.get(state, state)),
                tone=STOCK_STATE_TONES.get(state, "warn"),
                short=[s.item.name(ctx.language) for s in status.short],
                expiring=len(status.expiring),
                expired=len(status.expired),
                concentrated=len(status.concentrations),
                url=url_for("stockpile.site_detail", code=site.code),
            )
        )
    # Sites short of supplies first: they are the ones to act on.
    warnings.sort(key=lambda w: ({"bad": 0, "warn": 1}.get(w.tone, 2), w.code))
    links = [
        Link(_("Stockpile by site"), url_for("stockpile.overview")),
        Link(_("Purchase list (PDF)"), url_for("stockpile.purchase_list_pdf")),
    ]
    data = Stock(
        sites=len(statuses),
        fully_stocked=len(statuses) - len(warnings),
        warnings=warnings[:MAX_STOCK_WARNINGS],
        more=max(len(warnings) - MAX_STOCK_WARNINGS, 0),
    )
    return Loaded(data, links)


# --- drills and corrective actions -------------------------------------------------------------------------------


@dataclass
class Drills:
    actions: queries.ActionSummary
    action_urls: dict[int, str]
    next: queries.DrillRow | None
    next_type: str
    next_url: str | None
    running: list[tuple[queries.DrillRow, str]]


def load_drills(ctx: Context) -> Loaded:
    from reports.labels import TYPE_LABELS
    from reports.models import DrillType

    org_id = ctx.principal.organization_id

    def type_label(value: str) -> str:
        return _(TYPE_LABELS.get(DrillType(value), value))

    actions = queries.open_actions(organization_id=org_id, today=ctx.today)
    upcoming = queries.next_drill(organization_id=org_id, now=ctx.now)
    running = queries.drills_in_progress(organization_id=org_id)
    links = [
        Link(_("Drills"), url_for("reports.drill_list")),
        Link(_("Corrective actions"), url_for("reports.action_list")),
    ]
    if ctx.principal.has(*START_ROLES):
        links.insert(0, Link(_("Plan a drill"), url_for("reports.drill_new")))
    data = Drills(
        actions=actions,
        # An action is changed on the page of the drill that raised it.
        action_urls={
            a.id: url_for("reports.drill_detail", drill_id=a.drill_id) + "#actions" for a in actions.soonest
        },
        next=upcoming,
        next_type=type_label(upcoming.type) if upcoming else "",
        next_url=url_for("reports.drill_detail", drill_id=upcoming.id) if upcoming else None,
        running=[(d, url_for("reports.drill_detail", drill_id=d.id)) for d in running],
    )
    return Loaded(data, links)


# --- the whole page ----------------------------------------------------------------------------------------------

SPECS: tuple[Spec, ...] = (
    Spec("broadcasts", "Safety broadcasts now", "ivr", BROADCAST_ROLES, load_broadcasts, True),
    Spec("sites", "Sites and lines", "continuity", SITE_ROLES, load_sites, True),
    Spec("jma", "JMA bulletins and decisions", "ivr", JMA_ROLES, load_jma, True),
    Spec("incidents", "Incidents and care follow-up", "incidents", INCIDENT_ROLES, load_incidents, True),
    Spec("stockpile", "Stockpile warnings", "stockpile", STOCK_ROLES, load_stockpile, False),
    Spec("drills", "Drills and corrective actions", "reports", DRILL_ROLES, load_drills, False),
)


@dataclass
class Overview:
    blocks: list[Block]
    as_of: datetime
    # "normal", "attention", "unknown" (a watched block is unavailable) or None (the user sees no watched block)
    status: str | None
    attention: list[Attention]
    checked: list[str]  # what "everything normal" stands for, in words

    def block(self, key: str) -> Block | None:
        return next((b for b in self.blocks if b.key == key), None)


CHECKED_WORDS = {
    "broadcasts": "no safety broadcast running",
    "sites": "every site working normally",
    "jma": "no JMA bulletin that triggers a broadcast",
    "incidents": "no open incident",
}


def _today(organization_id: int, now: datetime) -> date:
    org = db.session.get(Organization, organization_id)
    zone = ZoneInfo(org.timezone if org is not None and org.timezone else "Asia/Tokyo")
    return now.astimezone(zone).date()


def _load(spec: Spec, ctx: Context, installed: Iterable[str]) -> Block:
    block = Block(key=spec.key, title=_(spec.title), available=False, watched=spec.watched)
    if spec.part not in installed:
        log.info("overview block %s: the %s part is not installed", spec.key, spec.part)
        block.missing = True
        return block
    try:
        loaded = spec.load(ctx)
    except Exception:
        log.exception("overview block %s failed; shown as unavailable", spec.key)
        # On PostgreSQL a failed statement aborts the transaction: start clean so the other blocks still load.
        # The overview writes nothing it needs to keep.
        db.session.rollback()
        return block
    block.available = True
    block.data, block.links, block.attention = loaded.data, loaded.links, loaded.attention
    return block


def build_overview(
    *, principal: Principal, now: datetime, language: str, installed: Iterable[str]
) -> Overview:
    installed = set(installed)
    ctx = Context(
        principal=principal, now=now, today=_today(principal.organization_id, now), language=language
    )
    blocks = [_load(spec, ctx, installed) for spec in SPECS if principal.has(*spec.roles)]
    watched = [b for b in blocks if b.watched]
    attention = [item for b in watched for item in b.attention]
    status: str | None
    if not watched:
        status = None
    elif attention:
        status = "attention"
    elif all(b.available for b in watched):
        status = "normal"
    else:
        status = "unknown"
    checked = [_(CHECKED_WORDS[b.key]) for b in watched if b.key in CHECKED_WORDS]
    return Overview(blocks=blocks, as_of=now, status=status, attention=attention, checked=checked)


# --- what the script refreshes -----------------------------------------------------------------------------------


@dataclass
class Live:
    values: dict[str, str] = field(default_factory=dict)
    meters: dict[str, list[int]] = field(default_factory=dict)
    tones: dict[str, str] = field(default_factory=dict)
    charts: dict[str, str] = field(default_factory=dict)
    layout: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "meters": self.meters,
            "tones": self.tones,
            "charts": self.charts,
            "layout": self.layout,
        }


def _layout(overview: Overview) -> str:
    """A fingerprint of what the page is made of (which blocks, cards and rows, and the verdict).

    Numbers change in place; when the fingerprint changes the page offers a reload instead of rebuilding itself
    under the reader's keyboard focus.
    """
    shape: list[Any] = [overview.status, [a.text for a in overview.attention]]
    for block in overview.blocks:
        shape.append((block.key, block.available))
        data = block.data
        if isinstance(data, Broadcasts):
            shape.append([(c.id, len(c.gauges), c.departments is not None) for c in data.cards])
        elif isinstance(data, Sites):
            shape.append([s.id for s in data.sites] + [ln.id for ln in data.lines])
        elif isinstance(data, Jma):
            shape.append([(b.id, len(b.decisions)) for b in data.bulletins] + [h.id for h in data.holds])
        elif isinstance(data, Incidents):
            shape.append([i.id for i in data.incidents] + [data.care is not None])
        elif isinstance(data, Stock):
            shape.append([(w.key, w.state) for w in data.warnings])
        elif isinstance(data, Drills):
            shape.append(
                [a.id for a in data.actions.soonest]
                + [data.next.id if data.next else None]
                + [d.id for d, _url in data.running]
            )
    return hashlib.sha256(repr(shape).encode()).hexdigest()[:16]


def live_values(overview: Overview) -> Live:
    live = Live()
    live.values["as-of"] = to_local(overview.as_of).strftime("%H:%M:%S")
    for block in overview.blocks:
        data = block.data
        if isinstance(data, Broadcasts):
            for card in data.cards:
                k = card.key
                live.values[f"{k}-answered"] = number(card.answered)
                live.values[f"{k}-recipients"] = number(card.recipients)
                live.values[f"{k}-rate"] = f"{charts.percent(card.answered, card.recipients)}%"
                live.values[f"{k}-unreached"] = number(card.unreached)
                live.values[f"{k}-in-progress"] = number(card.in_progress)
                live.values[f"{k}-state"] = card.state_label
                for gauge in card.gauges:
                    live.values[gauge.key] = (
                        f"{number(gauge.value)} ({charts.percent(gauge.value, gauge.max)}%)"
                    )
                    live.meters[gauge.key] = [gauge.value, gauge.max]
                live.charts[f"{k}-curve"] = str(card.curve)
                if card.departments is not None:
                    live.charts[f"{k}-departments"] = str(card.departments)
        elif isinstance(data, Sites):
            for site in data.sites:
                live.values[f"{site.key}-state"] = site.state_label
                live.tones[f"{site.key}-state"] = site.tone
                live.values[f"{site.key}-reason"] = site.reason
                live.values[f"{site.key}-heartbeat"] = site.heartbeat
                live.tones[f"{site.key}-heartbeat"] = site.heartbeat_tone
            for line in data.lines:
                live.values[f"{line.key}-mode"] = line.mode_label
                live.tones[f"{line.key}-mode"] = line.mode_tone
                live.values[f"{line.key}-goes"] = line.goes_to
                live.tones[f"{line.key}-goes"] = line.goes_tone
            live.values["home-agents"] = _(
                "{free} of {total}", free=data.home_agents_available, total=data.home_agents_total
            )
        elif isinstance(data, Incidents) and data.care is not None:
            live.values["care-open"] = number(data.care.get("open", 0))
            live.values["care-contacted"] = number(data.care.get("contacted", 0))
        elif isinstance(data, Stock):
            live.values["stock-fully"] = _("{ok} of {total}", ok=data.fully_stocked, total=data.sites)
        elif isinstance(data, Drills):
            live.values["actions-open"] = number(data.actions.open)
            live.values["actions-overdue"] = number(data.actions.overdue)
    live.layout = _layout(overview)
    return live
