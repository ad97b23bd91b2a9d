"""The dispatcher: moves every due ladder one step and places due attempts at the global pace.

Run by the ``ivr.dispatch`` task (after a broadcast starts, and by the beat every few seconds) and by tests
directly. Like a task it is an edge: it commits, in small units, so that:

* a claim (``pending`` → ``dialing`` with a lease) is committed *before* the provider is called, and the result
  (provider SID, or the error) in a fresh transaction right after. A second worker — or the same task run twice —
  finds the row no longer ``pending`` and does nothing: the attempt id is the idempotency key.
* a worker that dies while holding a lease leaves a ``dialing`` row whose lease expires; :func:`sweep` puts it
  back once (only if no callback ever reported a call for it — status callbacks from ``initiated`` on carry the
  attempt id, so a call that did leave shows up within seconds) and fails it after that, rather than risk
  ringing someone twice.
* ladder steps use optimistic concurrency (the recipient's position is part of the UPDATE's WHERE), so two
  dispatchers cannot both run the same step for the same person.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update

from core import db
from core.crypto import decrypt
from core.directory.models import ContactPoint
from core.mail import Mail, MailBackend, MailError
from core.pacing import TokenBucket
from core.telephony import PermanentTelephonyError, TelephonyBackend, TransientTelephonyError
from core.time import utcnow
from ivr import ladder as ladder_mod
from ivr import service, spool
from ivr.models import (
    Attempt,
    AttemptChannel,
    AttemptState,
    Broadcast,
    BroadcastState,
    Recipient,
    RecipientState,
    ladder_attempt_row,
)
from ivr.scenarios import ScenarioTemplate, parse_template

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_TRANSIENT_TRIES = 5
MAX_LEASES = 2  # a lease that expires twice means something is badly wrong with this row: fail it
BATCH = 200
# Ladder steps are cheap row updates with no carrier call behind them: a bigger batch means fewer scans of the
# due-people index (100,000 people are 50 rounds instead of 500).
LADDER_BATCH = 2000
# Calls and SMS handed to the carrier are recorded (SID, in progress) this many at a time, in one statement and
# one commit: per-call commits cost more than the call itself. A worker that dies in between leaves at most this
# many rows without their SID; the carrier's status callbacks (requested from "initiated" on) carry the attempt
# id and record the SID within seconds, and the sweeper re-queues only rows the carrier never reported.
RECORD_BATCH = 10
# How often a run that keeps pace asks the bucket again while due work waits for tokens.
PACE_TICK_S = 0.02


def _sleep(seconds: float) -> None:
    """How :func:`run` waits for the next pacing token (one seam, so tests can wait on a clock of their own)."""
    time.sleep(seconds)


RUNNING = (BroadcastState.SENDING, BroadcastState.OPEN)
# A ladder message leaving this long after its step ran has waited (a backlog, a dead worker's lease).
LATE_SEND = timedelta(seconds=10)


def lease_of(settings: Any) -> timedelta:
    """The claim lease (``LIFELINE_DISPATCH_LEASE_SECONDS``); a short one lets a dead worker's rows go sooner."""
    seconds = getattr(settings, "dispatch_lease_seconds", None)
    return timedelta(seconds=float(seconds)) if seconds else LEASE


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Outbound:
    """What the dispatcher talks to; built from settings by the task, injected by tests."""

    backend: TelephonyBackend
    mailer: MailBackend
    bucket: TokenBucket
    settings: Any
    worker: str = field(default_factory=worker_id)
    # Parsed template snapshots by broadcast id: a broadcast's snapshot never changes once it has started.
    scenarios: dict[int, ScenarioTemplate] = field(default_factory=dict, repr=False)

    def scenario_of(self, broadcast: Broadcast) -> ScenarioTemplate:
        scenario = self.scenarios.get(broadcast.id)
        if scenario is None:
            scenario = self.scenarios[broadcast.id] = parse_template(broadcast.template)
        return scenario


@dataclass
class Report:
    advanced: int = 0
    placed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    finished_broadcasts: list[int] = field(default_factory=list)

    def add(self, other: Report) -> None:
        self.advanced += other.advanced
        self.placed += other.placed
        self.failed += other.failed
        self.retried += other.retried
        self.cancelled += other.cancelled
        self.finished_broadcasts += other.finished_broadcasts


# --- ladder steps ------------------------------------------------------------------------------------------------


def advance_ladders(*, now: datetime, limit: int = LADDER_BATCH) -> int:
    """Run the next ladder step of every person whose ``next_action_at`` has come. Commits; returns how many."""
    # One query per state, each ordered by the (state, next_action_at) index alone, so it stops after ``limit``
    # rows; ordering both states together (or by id as well) sorts every due person on every round, which is
    # what made 100,000 people cost minutes. Ties keep the index's order (insertion order, near enough).
    due: list[Any] = []
    for state in service.ACTIVE_RECIPIENT_STATES:
        due += _due_people(state, now, limit)
    due = sorted(due, key=lambda row: (row.next_action_at, row.id))[:limit]
    if not due:
        db.session.commit()
        return 0
    return _advance(due, now)


def _due_people(state: RecipientState, now: datetime, limit: int) -> Sequence[Any]:
    return db.session.execute(
        select(
            Recipient.id,
            Recipient.staff_id,
            Recipient.broadcast_id,
            Recipient.cycle,
            Recipient.step,
            Recipient.next_action_at,
        )
        .join(Broadcast, Broadcast.id == Recipient.broadcast_id)
        .where(
            Broadcast.state == BroadcastState.SENDING,
            Recipient.state == state,
            Recipient.next_action_at <= now,
            # A step is not over before its own messages have left (a backlog, or a dead worker's rows waiting
            # for their lease to run out): otherwise the next step would reach the person first.
            # A count per person rather than NOT EXISTS: PostgreSQL turns NOT EXISTS into an anti-join, and with
            # statistics from before the broadcast (hardly any pending attempts) it materialises every pending
            # attempt and compares it with every person — minutes per round at 100,000 people. The count is an
            # index probe for just the people this LIMIT reads.
            select(func.count())
            .select_from(Attempt)
            .where(
                Attempt.recipient_id == Recipient.id,
                Attempt.purpose == "ladder",
                Attempt.state.in_((AttemptState.PENDING, AttemptState.DIALING)),
            )
            .scalar_subquery()
            == 0,
        )
        .order_by(Recipient.next_action_at)
        .limit(limit)
    ).all()


def _advance(due: Sequence[Any], now: datetime) -> int:
    """Run the due people's next ladder steps and write their attempts; commits, returns how many moved."""
    broadcasts: dict[int, tuple[Broadcast, ScenarioTemplate]] = {}
    for broadcast_id in {row.broadcast_id for row in due}:
        broadcast = db.session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        broadcasts[broadcast_id] = (broadcast, parse_template(broadcast.template))
    contacts: dict[int, list[ladder_mod.Contact]] = {}
    for staff_id, contact_id, kind in db.session.execute(
        select(ContactPoint.staff_id, ContactPoint.id, ContactPoint.kind)
        .where(ContactPoint.staff_id.in_({row.staff_id for row in due}))
        .order_by(ContactPoint.staff_id, ContactPoint.position, ContactPoint.id)
    ).all():
        contacts.setdefault(staff_id, []).append(ladder_mod.Contact(id=contact_id, kind=kind.value))
    past: dict[int, list[ladder_mod.PastAttempt]] = {}
    for a in db.session.execute(
        select(
            Attempt.recipient_id,
            Attempt.channel,
            Attempt.contact_point_id,
            Attempt.cycle,
            Attempt.step,
            Attempt.state,
            Attempt.error_code,
        ).where(Attempt.recipient_id.in_({row.id for row in due}), Attempt.contact_point_id.is_not(None))
    ).all():
        past.setdefault(a.recipient_id, []).append(
            ladder_mod.PastAttempt(
                channel=a.channel.value,
                contact_id=a.contact_point_id,
                cycle=a.cycle,
                step=a.step,
                failed_for_good=a.state is AttemptState.FAILED
                and (a.error_code or "") in service.PERMANENT_ERROR_CODES,
            )
        )
    # People whose step comes out the same (the usual case: everyone moves from the first step to the second)
    # are claimed together in one UPDATE … RETURNING; the position in the WHERE keeps the optimistic check per
    # person, and only the rows the UPDATE returns get their attempts.
    groups: dict[tuple[Any, ...], list[tuple[Any, ladder_mod.Decision]]] = {}
    for row in due:
        broadcast, scenario = broadcasts[row.broadcast_id]
        decision = ladder_mod.decide(
            scenario.ladder,
            contacts.get(row.staff_id, []),
            past.get(row.id, []),
            cycle=row.cycle,
            step=row.step,
            now=now,
            channels=[c for c in broadcast.channels if c in ladder_mod.CHANNELS],
            include_family=broadcast.include_family,
        )
        key = (row.cycle, row.step, decision.cycle, decision.step, decision.next_action_at, decision.finished)
        groups.setdefault(key, []).append((row, decision))
    advanced = 0
    attempts: list[dict[str, Any]] = []
    for (cycle, step, next_cycle, next_step, next_action_at, finished), members in groups.items():
        by_id = {row.id: (row, decision) for row, decision in members}
        claimed = db.session.scalars(
            update(Recipient)
            .where(
                Recipient.id.in_(list(by_id)),
                Recipient.cycle == cycle,
                Recipient.step == step,
                Recipient.state.in_(service.ACTIVE_RECIPIENT_STATES),
            )
            .values(
                cycle=next_cycle,
                step=next_step,
                next_action_at=next_action_at,
                state=RecipientState.UNREACHED if finished else RecipientState.CONTACTING,
            )
            .returning(Recipient.id)
            .execution_options(synchronize_session=False)
        ).all()
        # Another dispatcher ran this step for the others, or they answered meanwhile.
        advanced += len(claimed)
        for recipient_id in claimed:
            row, decision = by_id[recipient_id]
            attempts.extend(
                {
                    **ladder_attempt_row(
                        broadcast_id=row.broadcast_id,
                        channel=send.channel,
                        cycle=decision.ran_cycle,
                        step=decision.ran_step,
                        now=now,
                    ),
                    "recipient_id": row.id,
                    "contact_point_id": send.contact_id,
                }
                for send in decision.sends
            )
    if attempts:
        db.session.execute(insert(Attempt), attempts)
    db.session.commit()
    return advanced


# --- placing -----------------------------------------------------------------------------------------------------


def _claim(attempt_ids: Sequence[int], *, worker: str, now: datetime) -> list[int]:
    claimed = []
    for attempt_id in attempt_ids:
        result = db.session.execute(
            update(Attempt)
            .where(Attempt.id == attempt_id, Attempt.state.in_((AttemptState.PENDING, AttemptState.RETRY)))
            .values(
                state=AttemptState.DIALING,
                lease_owner=worker,
                lease_until=now + LEASE,
                tries=Attempt.tries + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            claimed.append(attempt_id)
    db.session.commit()
    return claimed


def _due(channel: AttemptChannel, now: datetime, limit: int) -> Any:
    return (
        select(Attempt.id)
        .join(Broadcast, Broadcast.id == Attempt.broadcast_id)
        .where(
            Attempt.channel == channel,
            Attempt.state.in_((AttemptState.PENDING, AttemptState.RETRY)),
            Attempt.due_at <= now,
            Broadcast.state.in_(RUNNING),
        )
        .order_by(Attempt.due_at, Attempt.id)
        .limit(limit)
    )


def _claim_due(
    channel: AttemptChannel, *, limit: int, worker: str, now: datetime, lease: timedelta = LEASE
) -> list[int]:
    """Claim up to ``limit`` due attempts of ``channel`` in one statement; commits. Returns them oldest first.

    Two workers never get the same row and never wait for each other: on PostgreSQL the rows another worker is
    claiming right now are skipped (``FOR UPDATE SKIP LOCKED``); SQLite runs one writer at a time anyway.
    """
    if limit <= 0:
        return []
    due = _due(channel, now, limit)
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=Attempt)
    rows = db.session.execute(
        update(Attempt)
        .where(
            Attempt.id.in_(due.scalar_subquery()),
            Attempt.state.in_((AttemptState.PENDING, AttemptState.RETRY)),
        )
        .values(
            state=AttemptState.DIALING,
            lease_owner=worker,
            lease_until=now + lease,
            tries=Attempt.tries + 1,
            updated_at=now,
        )
        .returning(Attempt.id, Attempt.due_at)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return [attempt_id for attempt_id, _ in sorted(rows, key=lambda r: (r[1], r[0]))]


def place_due(*, out: Outbound, now: datetime, limit: int = BATCH) -> Report:
    """Claim and place due attempts, as many per channel as the shared bucket grants right now."""
    report = Report()
    for channel in AttemptChannel:
        waiting = len(db.session.scalars(_due(channel, now, limit)).all())
        db.session.commit()
        if not waiting:
            continue
        granted = out.bucket.take(channel.value, waiting)
        # A token spent on a row another worker claimed first is lost: the rate can only come out lower.
        claimed = _claim_due(channel, limit=granted, worker=out.worker, now=now, lease=lease_of(out.settings))
        for outcome in place_claimed(attempt_ids=claimed, out=out, now=now):
            if outcome == "placed":
                report.placed += 1
            elif outcome == "retry":
                report.retried += 1
            elif outcome == "cancelled":
                report.cancelled += 1
            else:
                report.failed += 1
    return report


def mask(value: str) -> str:
    """``+819000000012`` → ``+81*******12``; ``taro@example.com`` → ``t***@example.com``."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    return value[:3] + "*" * max(0, len(value) - 5) + value[-2:]


def answer_link(settings: Any, token: str, attempt_id: int | None = None) -> str:
    base = settings.public_base_url.rstrip("/")
    return f"{base}/r/{token}" + (f"?via={attempt_id}" if attempt_id else "")


def invitation_link(settings: Any, token: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/r/i/{token}"


def hooks_base(settings: Any) -> str:
    return f"{settings.public_base_url.rstrip('/')}/hooks/ivr"


def _resolve(contact: ContactPoint, settings: Any) -> str:
    if contact.value:
        return contact.value
    if contact.value_encrypted:
        # The only place a private number is ever decrypted: right before it is handed to the carrier.
        return decrypt(contact.value_encrypted, settings.encryption_key)
    raise ValueError("the contact point has no value")


def _finish(attempt_id: int, state: AttemptState, now: datetime, **values: Any) -> bool:
    """DIALING → ``state``, unless a callback already moved the row on (it then keeps what the callback said)."""
    result = db.session.execute(
        update(Attempt)
        .where(Attempt.id == attempt_id, Attempt.state == AttemptState.DIALING)
        .values(state=state, lease_owner=None, lease_until=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def _message_texts(
    scenario: ScenarioTemplate, language: str, link: str, body: str | None
) -> tuple[str, str, str]:
    """SMS text, e-mail subject and e-mail text."""
    title = scenario.text("title", language)
    if body:
        return f"{body}\n{link}", f"[Lifeline] {title}", f"{body}\n\n{link}\n"
    sms = f"{scenario.text('sms', language)}\n{link}"
    lines = [scenario.text("intro", language), ""]
    for number, question in enumerate(scenario.questions, start=1):
        lines.append(f"Q{number}. {question.prompt(language)}")
        lines.extend(f"  {o.value}: {o.text(language)}" for o in question.options)
    prompt = "回答はこちら:" if language == "ja" else "Answer here:"
    lines += ["", prompt, link, ""]
    subject = f"[Lifeline] {'安否確認' if language == 'ja' else 'Safety check'}: {title}"
    return sms, subject, "\n".join(lines)


@dataclass
class _Send:
    """A claimed attempt, checked and addressed, ready to leave."""

    attempt_id: int
    channel: AttemptChannel
    address: str
    sms_text: str
    subject: str
    mail_text: str
    template_key: str
    # A ladder message leaving late: once it has left, the person gets the step's full wait (_keep_the_wait).
    keep_wait: tuple[int, int, int, datetime] | None = None


def _prepare(
    attempt: Attempt | None,
    recipient: Recipient | None,
    broadcast: Broadcast | None,
    contact: ContactPoint | None,
    *,
    out: Outbound,
    now: datetime,
) -> _Send | str:
    """Check a claimed attempt is still wanted and work out what to send; returns cancelled/failed otherwise.

    Writes what the carrier is about to be told (masked address, digest, the recipient's last attempt) to the
    session; the caller commits before the network call, because the callbacks that follow write to these rows.
    """
    if attempt is None or attempt.state is not AttemptState.DIALING or attempt.lease_owner != out.worker:
        return "cancelled"
    assert recipient is not None and broadcast is not None
    stale = recipient.state is RecipientState.ANSWERED and attempt.purpose != "invite"
    if stale or not service.accepts_answers(broadcast, now):
        _finish(
            attempt.id,
            AttemptState.CANCELLED,
            now,
            error_reason="answered" if stale else "closed",
            ended_at=now,
        )
        return "cancelled"
    try:
        if contact is None:
            raise ValueError("the contact point was removed")
        address = _resolve(contact, out.settings)
    except ValueError as exc:
        _finish(attempt.id, AttemptState.FAILED, now, error_reason=str(exc), ended_at=now)
        return "failed"
    scenario = out.scenario_of(broadcast)
    link = answer_link(out.settings, recipient.token, attempt.id)
    if attempt.purpose == "invite":
        invitation = service.invitation_for_invite_attempt(attempt)
        link = invitation_link(out.settings, invitation.token) if invitation else link
    attempt.to_masked = mask(address)
    attempt.to_digest = service.address_digest(address, out.settings.secret_key)
    if attempt.purpose in ("ladder", "machine_followup"):
        recipient.last_attempt_id = attempt.id
    sms_text, subject, mail_text = _message_texts(scenario, recipient.language, link, attempt.body)
    send = _Send(attempt.id, attempt.channel, address, sms_text, subject, mail_text, broadcast.template_key)
    if attempt.purpose == "ladder" and now - attempt.created_at > LATE_SEND:
        send.keep_wait = _next_step_after(scenario, attempt, recipient.id, now)
    return send


def _next_step_after(
    scenario: ScenarioTemplate, attempt: Attempt, recipient_id: int, now: datetime
) -> tuple[int, int, int, datetime] | None:
    """(recipient, position of the step after this attempt's, when it may come if the attempt leaves now)."""
    steps = scenario.ladder.steps
    if not 0 <= attempt.step < len(steps):
        return None
    cycle, step = (
        (attempt.cycle, attempt.step + 1) if attempt.step + 1 < len(steps) else (attempt.cycle + 1, 0)
    )
    return recipient_id, cycle, step, now + timedelta(minutes=steps[attempt.step].wait_minutes)


def _keep_the_wait(recipient_id: int, cycle: int, step: int, ready: datetime) -> None:
    """A ladder message that left late still gets its step's full wait: the person has the time to answer it
    before the next step (which waited for it to leave, see :func:`advance_ladders`) reaches them."""
    db.session.execute(
        update(Recipient)
        .where(
            Recipient.id == recipient_id,
            Recipient.cycle == cycle,
            Recipient.step == step,
            Recipient.state.in_(service.ACTIVE_RECIPIENT_STATES),
            Recipient.next_action_at < ready,
        )
        .values(next_action_at=ready)
        .execution_options(synchronize_session=False)
    )


def _load(attempt_ids: Sequence[int]) -> dict[int, tuple[Attempt, Recipient, Broadcast, ContactPoint | None]]:
    """The claimed attempts with their recipient, broadcast and contact point, fresh from the database."""
    rows = db.session.execute(
        select(Attempt, Recipient, ContactPoint)
        .join(Recipient, Recipient.id == Attempt.recipient_id)
        .outerjoin(ContactPoint, ContactPoint.id == Attempt.contact_point_id)
        .where(Attempt.id.in_(list(attempt_ids)))
        .execution_options(populate_existing=True)
    ).all()
    # Once per broadcast, not once per row: its template snapshot is a sizeable JSON document.
    broadcasts = {
        broadcast.id: broadcast
        for broadcast in db.session.scalars(
            select(Broadcast)
            .where(Broadcast.id.in_({attempt.broadcast_id for attempt, _, _ in rows}))
            .execution_options(populate_existing=True)
        )
    }
    return {
        attempt.id: (attempt, recipient, broadcasts[attempt.broadcast_id], contact)
        for attempt, recipient, contact in rows
    }


def place_attempt(*, attempt_id: int, out: Outbound, now: datetime) -> str:
    """Hand one claimed attempt to the carrier / mail server. Returns placed, retry, failed or cancelled."""
    return place_claimed(attempt_ids=[attempt_id], out=out, now=now)[0]


def place_claimed(*, attempt_ids: Sequence[int], out: Outbound, now: datetime) -> list[str]:
    """Hand claimed attempts to the carrier, in order; one outcome per attempt (placed/retry/failed/cancelled).

    The checks and the writes before the calls are done for the whole batch in one transaction; each call's
    result is still committed on its own right after the call.
    """
    if not attempt_ids:
        return []
    loaded = _load(attempt_ids)
    prepared: list[_Send | str] = []
    for attempt_id in attempt_ids:
        attempt, recipient, broadcast, contact = loaded.get(attempt_id, (None, None, None, None))
        prepared.append(_prepare(attempt, recipient, broadcast, contact, out=out, now=now))
    # End the read transaction before the network calls: the callbacks that follow write to these rows.
    db.session.commit()
    # What the webhooks and the answer page need should the database go away while these people answer.
    spool.remember_many(
        out.settings,
        [
            (loaded[item.attempt_id][1], loaded[item.attempt_id][2], item.attempt_id)
            for item in prepared
            if isinstance(item, _Send)
        ],
        shared_only=True,
    )
    lease = lease_of(out.settings)
    renew_at = time.monotonic() + lease.total_seconds() / 3
    ours: set[int] | None = None  # None: every claimed row is still ours
    outcomes: list[str] = []
    placed: list[dict[str, Any]] = []
    for index, item in enumerate(prepared):
        if isinstance(item, _Send) and time.monotonic() >= renew_at:
            # A slow carrier must not let the lease run out under the rows still waiting in this batch: the
            # sweeper would hand them to another worker and both would place them.
            _record_placed(placed, now)
            ours = _renew_leases([p.attempt_id for p in prepared[index:] if isinstance(p, _Send)], out, lease)
            renew_at = time.monotonic() + lease.total_seconds() / 3
        if isinstance(item, _Send) and ours is not None and item.attempt_id not in ours:
            outcomes.append("cancelled")  # the sweeper took it back; whoever claimed it now places it
            continue
        outcomes.append(item if isinstance(item, str) else _send(item, out=out, now=now, placed=placed))
        if len(placed) >= RECORD_BATCH:
            _record_placed(placed, now)
    _record_placed(placed, now)
    return outcomes


def _renew_leases(attempt_ids: Sequence[int], out: Outbound, lease: timedelta) -> set[int]:
    """Extend the lease of the claimed rows still ours; commits. Returns their ids."""
    if not attempt_ids:
        return set()
    renewed = db.session.scalars(
        update(Attempt)
        .where(
            Attempt.id.in_(list(attempt_ids)),
            Attempt.state == AttemptState.DIALING,
            Attempt.lease_owner == out.worker,
        )
        .values(lease_until=utcnow() + lease)
        .returning(Attempt.id)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return set(renewed)


def _record_placed(placed: list[dict[str, Any]], now: datetime) -> None:
    """DIALING → IN_PROGRESS with the carrier's SID, for a batch of calls / SMS just handed over; commits."""
    if not placed:
        return
    table = cast(Table, Attempt.__table__)
    c = table.c
    db.session.execute(
        update(table)
        .where(c.id == bindparam("b_id"), c.state == AttemptState.DIALING)
        .values(
            state=AttemptState.IN_PROGRESS,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
            provider_sid=bindparam("b_sid"),
            provider_status=bindparam("b_status"),
            placed_at=now,
        ),
        placed,
    )
    # A callback that got here first moved its row on: it keeps its state and just learns the SID.
    db.session.execute(
        update(table)
        .where(c.id == bindparam("b_id"), c.provider_sid.is_(None))
        .values(provider_sid=bindparam("b_sid"), placed_at=now),
        [{"b_id": row["b_id"], "b_sid": row["b_sid"]} for row in placed],
    )
    db.session.commit()
    placed.clear()


def _send(send: _Send, *, out: Outbound, now: datetime, placed: list[dict[str, Any]]) -> str:
    """One attempt to the carrier / mail server; a call or SMS that left is added to ``placed`` for
    :func:`_record_placed`, every other outcome is written (and committed) here."""
    attempt_id = send.attempt_id
    channel = send.channel
    hooks = hooks_base(out.settings)
    try:
        if channel is AttemptChannel.VOICE:
            call = out.backend.place_call(
                to=send.address,
                from_=out.settings.twilio_from_number,
                answer_url=f"{hooks}/voice/{attempt_id}/start",
                status_callback_url=f"{hooks}/voice/{attempt_id}/status",
                machine_detection=True,
            )
            sid, status = call.sid, call.status
        elif channel is AttemptChannel.SMS:
            message = out.backend.send_sms(
                to=send.address,
                from_=out.settings.twilio_from_number,
                body=send.sms_text,
                status_callback_url=f"{hooks}/sms/{attempt_id}/status",
            )
            sid, status = message.sid, message.status
        else:
            sid = out.mailer.send(Mail(to=send.address, subject=send.subject, text=send.mail_text))
            status = "sent"
    except (TransientTelephonyError, MailError) as exc:
        transient = isinstance(exc, TransientTelephonyError) or getattr(exc, "transient", False)
        code = getattr(exc, "code", None)
        return _after_error(attempt_id, now, transient=transient, code=code, reason=str(exc))
    except PermanentTelephonyError as exc:
        return _after_error(attempt_id, now, transient=False, code=exc.code, reason=str(exc))
    if send.keep_wait is not None:
        _keep_the_wait(*send.keep_wait)
    if channel is AttemptChannel.EMAIL:
        # No delivery receipts for e-mail: handed to the mail server is as far as we can know.
        if _finish(
            attempt_id, AttemptState.COMPLETED, now, provider_sid=sid[:64], placed_at=now, ended_at=now
        ):
            fresh = db.session.get(Attempt, attempt_id, populate_existing=True)
            if (
                fresh is not None
                and fresh.contact_point_id is not None
                and send.template_key == "contact_check"
            ):
                service._mark_contact(fresh.contact_point_id, "sent", now, verified=False)
        db.session.commit()
        return "placed"
    placed.append({"b_id": attempt_id, "b_sid": sid, "b_status": status})
    return "placed"


def _after_error(attempt_id: int, now: datetime, *, transient: bool, code: Any, reason: str) -> str:
    attempt = db.session.get(Attempt, attempt_id, populate_existing=True)
    assert attempt is not None
    code_text = None if code is None else str(code)
    if transient and attempt.tries < MAX_TRANSIENT_TRIES:
        backoff = timedelta(seconds=min(600, 30 * 2 ** (attempt.tries - 1)))
        _finish(
            attempt_id,
            AttemptState.RETRY,
            now,
            due_at=now + backoff,
            error_code=code_text,
            error_reason=reason,
        )
        db.session.commit()
        return "retry"
    if transient:
        reason = f"gave up after {attempt.tries} tries: {reason}"
    if attempt.state is AttemptState.DIALING:
        attempt.error_code = code_text
        attempt.error_reason = reason[:2000]
        service._finish_attempt(attempt, AttemptState.FAILED, now)
    db.session.commit()
    return "failed"


# --- housekeeping ------------------------------------------------------------------------------------------------


def sweep(*, now: datetime) -> tuple[int, int]:
    """Leases that expired: put back (once, if the carrier never reported the call) or fail. Commits."""
    expired = (Attempt.state == AttemptState.DIALING, Attempt.lease_until < now)
    requeued = db.session.execute(
        update(Attempt)
        .where(*expired, Attempt.provider_sid.is_(None), Attempt.tries < MAX_LEASES)
        .values(state=AttemptState.PENDING, lease_owner=None, lease_until=None, due_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    failed = db.session.execute(
        update(Attempt)
        .where(*expired)
        .values(
            state=AttemptState.FAILED,
            lease_owner=None,
            lease_until=None,
            ended_at=now,
            updated_at=now,
            error_reason="the worker's lease expired again; not retried so nobody is called twice",
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return int(getattr(requeued, "rowcount", 0) or 0), int(getattr(failed, "rowcount", 0) or 0)


def finish_broadcasts(*, out: Outbound, now: datetime) -> list[int]:
    finished = []
    for broadcast_id in db.session.scalars(
        select(Broadcast.id).where(Broadcast.state == BroadcastState.SENDING)
    ).all():
        if service.finish_if_done(broadcast_id=broadcast_id, now=now):
            finished.append(broadcast_id)
            escalate(broadcast_id=broadcast_id, out=out, now=now)
        db.session.commit()
    return finished


def escalate(*, broadcast_id: int, out: Outbound, now: datetime) -> int:
    """The list of the unreached to each of their managers (by e-mail), once per broadcast."""
    broadcast = db.session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.escalated_at is not None:
        return 0
    scenario = parse_template(broadcast.template)
    if not scenario.ladder.escalate_to_managers:
        return 0
    broadcast.escalated_at = now
    sent = 0
    for manager_id, names in service.unreached_by_manager(broadcast_id=broadcast_id).items():
        to = service.work_email(staff_id=manager_id)
        if not to:
            continue
        text = (
            f"{broadcast.title}: these people of your team could not be reached.\n"
            "連絡が取れていない方の一覧です。\n\n" + "\n".join(f"- {n}" for n in names) + "\n"
        )
        try:
            out.mailer.send(Mail(to=to, subject=f"[Lifeline] Unreached: {broadcast.title}", text=text))
            sent += 1
        except MailError:
            log.warning("escalation mail to manager %s failed", manager_id)
    from core.auth.service import audit

    audit(
        action="ivr.broadcast.escalate",
        organization_id=broadcast.organization_id,
        actor="system",
        target_type="broadcast",
        target_id=broadcast.id,
        summary=f"list of the unreached sent to {sent} managers",
    )
    return sent


def send_due_summaries(*, out: Outbound, now: datetime) -> int:
    sent = 0
    for broadcast_id in service.due_summaries(now=now):
        broadcast = db.session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        to = service.crisis_manager_emails(organization_id=broadcast.organization_id)
        subject, text = service.summary_text(broadcast_id=broadcast_id)
        for address in to:
            try:
                out.mailer.send(Mail(to=address, subject=subject, text=text))
            except MailError:
                log.warning("summary mail for broadcast %s failed", broadcast_id)
        service.mark_summary_sent(broadcast_id=broadcast_id, to=to, now=now)
        db.session.commit()
        sent += 1
    return sent


def run(
    *,
    out: Outbound,
    now: Callable[[], datetime] = utcnow,
    max_rounds: int = 50,
    keep_pace_s: float = 0.0,
) -> Report:
    """Everything due right now, until nothing more can leave (the bucket is empty or the work is done).

    ``keep_pace_s``: when due work is held back only by the pacing bucket, go on placing it as tokens come, for up
    to that many seconds. The bucket holds one second's worth, so a run that stops at the first empty bucket
    places one second's worth per run: a task run every 5 s by the beat would send at a fifth of the rate. The
    task passes its own period, so back-to-back runs keep the configured rate.
    """
    report = Report()
    service.close_expired(now=now())
    db.session.commit()
    deadline = time.monotonic() + keep_pace_s
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        advanced = advance_ladders(now=now())
        placed = place_due(out=out, now=now())
        report.advanced += advanced
        report.add(placed)
        moved = advanced or placed.placed or placed.failed or placed.retried or placed.cancelled
        if keep_pace_s and time.monotonic() >= deadline:
            break
        if not moved:
            if not keep_pace_s or not pending_work(now=now()):
                break
            db.session.commit()
            _sleep(PACE_TICK_S)
            rounds -= 1  # waiting for a token is not a round of work
    report.finished_broadcasts = finish_broadcasts(out=out, now=now())
    send_due_summaries(out=out, now=now())
    return report


def pending_work(*, now: datetime) -> int:
    """How many attempts are waiting to leave (for tests and the status page)."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Attempt)
            .where(Attempt.state.in_((AttemptState.PENDING, AttemptState.RETRY)), Attempt.due_at <= now)
        )
        or 0
    )
