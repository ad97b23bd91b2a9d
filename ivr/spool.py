"""Answers that arrive while the database cannot be reached: kept in a durable spool, stored once it is back.

The disaster Lifeline manages may take the database down with it. People still pick up the safety call and press
their keys, still open the answer link and tap "send". They must hear and see exactly what they would otherwise
("thank you, your answer was recorded"), and their answers must not be lost. Three pieces make that so:

* **The spool** keeps what a webhook or the answer page could not write: answers, voice messages, SMS replies,
  and the carrier's status callbacks. By default it is an append-only JSON-lines file under
  ``<instance>/spool/`` (``flock`` against other processes, ``fsync`` before the caller is told "recorded");
  with ``LIFELINE_SPOOL_BACKEND=redis`` it is a Redis list every web machine shares (run Redis with AOF), and the
  file is the fallback when Redis cannot be reached either.
* **The answer context** is what a webhook needs to go on talking to a caller without the database: the
  broadcast's template snapshot and the recipient's language, per attempt and per answer link. The dispatcher
  stores it when a message or call leaves; it lives in Redis when ``LIFELINE_REDIS_URL`` is set (shared by every
  web process), otherwise in this process's memory.
* **Replay** writes the spooled entries in the order they arrived, each in its own transaction, with the time
  they arrived (so "the latest answer counts" and the answer-rate figures stay true). It is idempotent: an entry
  whose answer is already stored — the same link and arrival time, or the same call, question and key — is
  skipped, status callbacks never move an attempt backwards, so replaying twice (or a carrier retry that got
  through as well) counts nothing twice. An entry that can never be stored (the link is unknown, the broadcast
  was deleted) is moved to the rejected list and logged, never dropped silently. Replay runs as the periodic
  ``ivr.spool_replay`` task, when a worker starts, and in any web process that spooled something or finds a
  spool left on its machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ParamSpec, Protocol

from flask import Flask, Response, abort, current_app, g, render_template, request
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from core import db
from core.errors import LifelineError, NotFound
from core.kv import redis_client
from core.time import as_utc, utcnow
from core.web import whole_number

log = logging.getLogger(__name__)

P = ParamSpec("P")

REDIS_SPOOL_KEY = "lifeline:spool"
REDIS_REJECTED_KEY = "lifeline:spool:rejected"
REDIS_REPLAY_LOCK = "lifeline:spool:replaying"
CONTEXT_PREFIX = "lifeline:answer-context:"
CONTEXT_TTL = timedelta(days=4)  # outlives the default 72 h deadline of a broadcast
MEMORY_CONTEXT_ITEMS = 50_000
REPLAY_EVERY_S = 10.0
_KEY_LIKE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Form fields of the answer page that are not answers.
_NOT_ANSWERS = frozenset({"csrf_token", "lang", "via", "submit", "free_text"})


# SQLSTATE 25006: a read-only transaction — the database answering is a standby (the other region, before it is
# promoted; see docs/OPERATIONS.md). It can show the pages, but not store: so the answers wait in the spool.
_STANDBY_SQLSTATES = frozenset({"25006"})


def database_unreachable(exc: BaseException) -> bool:
    """Is this the database being gone (refused, reset, timed out, restarting, a read-only standby) rather than a
    bug in a query?"""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return bool(exc.connection_invalidated) or getattr(exc.orig, "sqlstate", None) in _STANDBY_SQLSTATES


def _settings() -> Any:
    return current_app.extensions["lifeline.settings"]


# --- entries -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One thing the database did not get: ``kind`` is answer, voice_message, status, machine or sms_reply."""

    kind: str
    at: str  # ISO 8601, UTC: when it arrived, which is also the time it is recorded with
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def arrived_at(self) -> datetime:
        return as_utc(datetime.fromisoformat(self.at))

    def to_json(self) -> str:
        return json.dumps(
            {"id": self.id, "kind": self.kind, "at": self.at, "data": dict(self.data)},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Entry:
        raw = json.loads(text)
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("kind"), str)
            or not isinstance(raw.get("at"), str)
        ):
            raise ValueError("not a spool entry")
        data = raw.get("data") or {}
        if not isinstance(data, dict):
            raise ValueError("spool entry data must be an object")
        return cls(kind=raw["kind"], at=raw["at"], data=data, id=str(raw.get("id") or uuid.uuid4().hex))


def new_entry(kind: str, *, at: datetime | None = None, **data: Any) -> Entry:
    return Entry(kind=kind, at=(at or utcnow()).isoformat(), data=data)


class SpoolUnavailable(RuntimeError):
    """Neither the configured spool nor the local file could take the entry."""


# --- stores ----------------------------------------------------------------------------------------------------


class Store(Protocol):
    def append(self, entry: Entry) -> None: ...

    def pending(self) -> int: ...

    def rejected(self) -> int: ...


class FileStore:
    """``pending.jsonl`` takes appends; replay renames it to a ``batch-*.jsonl`` and works through the batches.

    An appender locks the file, checks it is still the one named ``pending.jsonl`` (replay may have renamed it
    between the open and the lock; then it opens the new one), writes one line and fsyncs before it returns.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "pending.jsonl"
        self.rejected_path = folder / "rejected.jsonl"

    def _fsync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _append_line(self, path: Path, line: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for _ in range(20):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(fd).st_ino != os.stat(path).st_ino:
                        continue  # renamed by a replay after we opened it
                except FileNotFoundError:
                    continue
                view = memoryview(line)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
                if os.fstat(fd).st_size == len(line):
                    self._fsync_folder()  # a new file: make its name durable too
                return
            finally:
                os.close(fd)  # closing releases the lock
        raise SpoolUnavailable(f"could not append to {path}")

    def append(self, entry: Entry) -> None:
        self._append_line(self.path, (entry.to_json() + "\n").encode("utf-8"))

    def reject(self, entry_text: str, reason: str) -> None:
        record = json.dumps({"rejected_at": utcnow().isoformat(), "reason": reason, "entry": entry_text})
        self._append_line(self.rejected_path, (record + "\n").encode("utf-8"))

    def _claim(self) -> None:
        """Move whatever is pending into a new batch (under the appenders' lock, so no line is half-moved)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size == 0:
                return
            os.rename(self.path, self.folder / f"batch-{time.time_ns():020d}.jsonl")
            self._fsync_folder()
        finally:
            os.close(fd)

    def batches(self) -> list[Path]:
        return sorted(self.folder.glob("batch-*.jsonl"))

    @contextlib.contextmanager
    def replay_lock(self) -> Iterator[bool]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.folder / "replay.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def drain(self, apply: Callable[[str], bool]) -> bool:
        """Feed every spooled line, oldest first, to ``apply`` (False: stop here, keep the rest). True when
        everything was handled; False when another replay is running or ``apply`` stopped."""
        if not self.folder.is_dir():
            return True
        with self.replay_lock() as mine:
            if not mine:
                return False
            self._claim()
            for batch in self.batches():
                lines = batch.read_text(encoding="utf-8").splitlines()
                for index, line in enumerate(lines):
                    if not line.strip():
                        continue
                    if not apply(line):
                        self._keep(batch, lines[index:])
                        return False
                batch.unlink()
            return True

    def _keep(self, batch: Path, lines: list[str]) -> None:
        """Rewrite a batch with only what is still to do (atomically), so a long outage is not redone."""
        partial = batch.with_suffix(".tmp")
        with partial.open("w", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, batch)
        self._fsync_folder()

    def pending(self) -> int:
        total = 0
        for path in [self.path, *self.batches()]:
            with contextlib.suppress(FileNotFoundError), path.open("rb") as fh:
                total += sum(1 for line in fh if line.strip())
        return total

    def rejected(self) -> int:
        try:
            with self.rejected_path.open("rb") as fh:
                return sum(1 for line in fh if line.strip())
        except FileNotFoundError:
            return 0


class RedisStore:
    """A Redis list: appenders RPUSH; the one replay holding the lock reads the head, stores it, then pops it."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def append(self, entry: Entry) -> None:
        self.client.rpush(REDIS_SPOOL_KEY, entry.to_json())

    def reject(self, entry_text: str, reason: str) -> None:
        record = json.dumps({"rejected_at": utcnow().isoformat(), "reason": reason, "entry": entry_text})
        self.client.rpush(REDIS_REJECTED_KEY, record)

    def drain(self, apply: Callable[[str], bool]) -> bool:
        token = uuid.uuid4().hex
        if not self.client.set(REDIS_REPLAY_LOCK, token, nx=True, ex=300):
            return False
        try:
            while True:
                raw = self.client.lindex(REDIS_SPOOL_KEY, 0)
                if raw is None:
                    return True
                text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
                if not apply(text):
                    return False
                # Only the lock holder pops, and appenders only push: the head is still the entry just stored.
                self.client.lpop(REDIS_SPOOL_KEY)
                self.client.expire(REDIS_REPLAY_LOCK, 300)
        finally:
            if self.client.get(REDIS_REPLAY_LOCK) in (token, token.encode()):
                self.client.delete(REDIS_REPLAY_LOCK)

    def pending(self) -> int:
        return int(self.client.llen(REDIS_SPOOL_KEY))

    def rejected(self) -> int:
        return int(self.client.llen(REDIS_REJECTED_KEY))


def file_store(settings: Any) -> FileStore:
    return FileStore(Path(settings.instance_dir) / "spool")


def stores(settings: Any) -> list[FileStore | RedisStore]:
    """Where entries go, first choice first (the local file is always last: it needs nothing else running)."""
    chosen: list[FileStore | RedisStore] = []
    if getattr(settings, "spool_backend", "file") == "redis" and (settings.redis_url or settings.broker_url):
        url = settings.redis_url or settings.broker_url
        if str(url).startswith(("redis://", "rediss://", "unix://")):
            chosen.append(RedisStore(redis_client(str(url))))
    chosen.append(file_store(settings))
    return chosen


def append(entry: Entry, settings: Any | None = None) -> None:
    """Keep ``entry`` durably; raises :class:`SpoolUnavailable` only when no store at all could take it."""
    settings = settings or _settings()
    errors = []
    for store in stores(settings):
        try:
            store.append(entry)
        except Exception as exc:  # the next store is the fallback
            errors.append(f"{type(store).__name__}: {exc}")
            continue
        log.warning(
            "database unreachable: %s %s kept in the spool (%s)", entry.kind, entry.id, type(store).__name__
        )
        return
    raise SpoolUnavailable("; ".join(errors))


# --- answer context ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerContext:
    """What talking to one recipient needs when the database cannot be asked."""

    broadcast_id: int
    recipient_id: int
    language: str
    mode: str
    template: Mapping[str, Any]


def _token_key(token: str) -> str:
    # Answer links are secrets: the cache is keyed by their digest, never by the link itself.
    return "t:" + hashlib.sha256(token.encode()).hexdigest()


class _MemoryContext:
    def __init__(self, size: int = MEMORY_CONTEXT_ITEMS) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def put_many(self, items: Mapping[str, str], ttl_s: float) -> None:
        with self._lock:
            expires = time.time() + ttl_s
            for key, value in items.items():
                self._items[key] = (expires, value)
                self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, key: str) -> str | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] < time.time():
                return None
            return found[1]


class _RedisContext:
    def __init__(self, client: Any) -> None:
        self.client = client

    def put_many(self, items: Mapping[str, str], ttl_s: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(CONTEXT_PREFIX + key, value, ex=max(1, int(ttl_s)))
        pipe.execute()

    def get(self, key: str) -> str | None:
        raw = self.client.get(CONTEXT_PREFIX + key)
        return None if raw is None else raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


_memory_context = _MemoryContext()
# (Redis URL, broadcast) → when this process last wrote the broadcast's template there: every few minutes (a
# restarted Redis gets it back soon), not once per send.
TEMPLATE_REWRITE_S = 300.0
_templates_written: dict[tuple[str, int, str], float] = {}


def _context(settings: Any) -> _MemoryContext | _RedisContext:
    url = getattr(settings, "redis_url", "")
    return _RedisContext(redis_client(url)) if url else _memory_context


def remember_many(
    settings: Any, people: Iterable[tuple[Any, Any, int | None]], *, shared_only: bool = False
) -> None:
    """Store, for each (recipient, broadcast, attempt id), what the webhooks and the answer page need about the
    recipient should the database go away. One round trip for the lot. Never raises: it is a safety net, and a
    send must not fail because the net is missing.

    Without Redis the context lives in this process's memory, which only helps this process: ``shared_only``
    (the dispatcher, in a worker) then skips it.
    """
    if shared_only and not getattr(settings, "redis_url", ""):
        return
    items: dict[str, str] = {}
    ttl = CONTEXT_TTL.total_seconds()
    url = str(getattr(settings, "redis_url", ""))
    now = utcnow()
    for recipient, broadcast, attempt_id in people:
        if broadcast.closes_at is not None:
            ttl = min(ttl, max(60.0, (as_utc(broadcast.closes_at) - now).total_seconds() + 3600))
        # started_at tells two broadcasts apart that got the same id (SQLite reuses the id of a rolled-back one).
        cache_id = (url, broadcast.id, str(broadcast.started_at))
        if f"b:{broadcast.id}" in items:
            pass
        elif not url or _templates_written.get(cache_id, 0.0) < time.time() - TEMPLATE_REWRITE_S:
            items[f"b:{broadcast.id}"] = json.dumps(
                {"mode": broadcast.mode.value, "template": broadcast.template}
            )
            _templates_written[cache_id] = time.time()
        person = json.dumps({"b": broadcast.id, "r": recipient.id, "l": recipient.language})
        if attempt_id is not None:
            items[f"a:{attempt_id}"] = person
        items[_token_key(recipient.token)] = person
    if not items:
        return
    try:
        _context(settings).put_many(items, ttl)
    except Exception:
        log.warning("could not store the answer context of %s recipients", len(items), exc_info=True)
        for cache_id in [c for c in _templates_written if c[0] == url]:
            _templates_written.pop(cache_id, None)


def remember_recipient(
    settings: Any, *, recipient: Any, broadcast: Any, attempt_id: int | None = None
) -> None:
    remember_many(settings, [(recipient, broadcast, attempt_id)])


def _recall(settings: Any, key: str) -> AnswerContext | None:
    try:
        context = _context(settings)
        person_raw = context.get(key)
        if person_raw is None:
            return None
        person = json.loads(person_raw)
        broadcast_raw = context.get(f"b:{person['b']}")
        if broadcast_raw is None:
            return None
        broadcast = json.loads(broadcast_raw)
        return AnswerContext(
            broadcast_id=int(person["b"]),
            recipient_id=int(person["r"]),
            language=str(person.get("l") or "ja"),
            mode=str(broadcast.get("mode") or "real"),
            template=broadcast["template"],
        )
    except Exception:
        log.warning("could not read the answer context %s", key, exc_info=True)
        return None


def recall_attempt(settings: Any, attempt_id: int) -> AnswerContext | None:
    return _recall(settings, f"a:{attempt_id}")


def recall_token(settings: Any, token: str) -> AnswerContext | None:
    return _recall(settings, _token_key(token))


# --- the edge: run the view, fall back when the database is gone -------------------------------------------------


def _finish_transaction(response: Response) -> None:
    # What core.app's after_request does, done here so that a failing COMMIT is caught as well.
    if response.status_code < 400 and not g.get("rollback_only"):
        db.session.commit()
    else:
        db.session.rollback()


def _forget_session() -> None:
    with contextlib.suppress(Exception):
        db.session.rollback()
    with contextlib.suppress(Exception):
        db.session.remove()


def outage_fallback(fallback: Callable[..., Any]) -> Callable[[Callable[P, Any]], Callable[P, Response]]:
    """Run the view and commit; if the database cannot be reached, answer with ``fallback(**view_args)``."""

    def decorator(view: Callable[P, Any]) -> Callable[P, Response]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> Response:
            try:
                response = current_app.make_response(view(*args, **kwargs))
                _finish_transaction(response)
                return response
            except Exception as exc:
                if not database_unreachable(exc):
                    raise
                _forget_session()
                log.warning(
                    "database unreachable during %s %s: answering from the spool",
                    request.method,
                    request.path,
                )
                start_replayer(current_app._get_current_object())  # type: ignore[attr-defined]
                return current_app.make_response(fallback(*args, **kwargs))

        return wrapped

    return decorator


# --- offline answers: the Twilio webhooks -----------------------------------------------------------------------


def _twiml(body: str) -> Response:
    from core.telephony.twiml import TWIML_MIMETYPE

    return Response(body, mimetype=TWIML_MIMETYPE)


def _call_script(attempt_id: int) -> Any:
    """The call's script from the answer context, or None when this process/cache never saw the call."""
    from ivr import twiml
    from ivr.scenarios import parse_template

    settings = _settings()
    context = recall_attempt(settings, attempt_id)
    if context is None:
        return None
    return twiml.CallScript(
        template=parse_template(context.template),
        language=context.language,
        base=f"{settings.public_base_url.rstrip('/')}/hooks/ivr/voice/{attempt_id}",
    )


# Said when even the context is gone: nothing is lost, the link in the SMS / e-mail still works.
_NO_CONTEXT = {
    "ja": "安否確認のお知らせです。SMSまたはメールのリンクから回答してください。",
    "en": "This is a safety check. Please answer with the link in your text message or e-mail.",
}


def _no_context_twiml() -> Response:
    from core.telephony.twiml import VoiceResponse

    response = VoiceResponse()
    response.say(_NO_CONTEXT["ja"], voice="Polly.Mizuki", language="ja-JP")
    response.say(_NO_CONTEXT["en"], voice="Polly.Joanna", language="en-US")
    response.hangup()
    return _twiml(str(response))


def voice_start_offline(attempt_id: int) -> Response:
    from ivr import service, twiml

    form = request.form
    answered_by = form.get("AnsweredBy", "")
    script = _call_script(attempt_id)
    if service.is_machine(answered_by):
        append(new_entry("machine", attempt_id=attempt_id, answered_by=answered_by))
        return _twiml(twiml.machine(script)) if script is not None else _no_context_twiml()
    append(
        new_entry(
            "status",
            attempt_id=attempt_id,
            status="in-progress",
            provider_sid=form.get("CallSid"),
            answered_by=answered_by or None,
        )
    )
    return _twiml(twiml.greeting(script)) if script is not None else _no_context_twiml()


def voice_ask_offline(attempt_id: int, index: int) -> Response:
    from ivr import twiml

    script = _call_script(attempt_id)
    if script is None:
        return _no_context_twiml()
    if index >= len(script.template.questions):
        return _twiml(twiml.empty())
    retry = request.args.get("retry", "0")
    return _twiml(twiml.ask(script, index, retry=whole_number(retry, maximum=9) or 0))


def voice_pressed_offline(attempt_id: int, index: int) -> Response:
    from ivr import twiml

    script = _call_script(attempt_id)
    if script is None:
        return _no_context_twiml()
    if index >= len(script.template.questions):
        return _twiml(twiml.empty())
    return _twiml(twiml.pressed(script, index, request.form.get("Digits", "")))


def voice_confirm_offline(attempt_id: int, index: int, value: str) -> Response:
    from ivr import twiml

    script = _call_script(attempt_id)
    if script is None:
        return _no_context_twiml()
    if index >= len(script.template.questions):
        return _twiml(twiml.empty())
    if not twiml.confirmed_is(request.form.get("Digits", "")):
        return _twiml(twiml.ask(script, index))
    question = script.template.questions[index]
    if question.option(value) is None:
        return _twiml(twiml.ask(script, index, invalid=True))
    append(
        new_entry(
            "answer",
            channel="voice",
            attempt_id=attempt_id,
            call_sid=request.form.get("CallSid", ""),
            answers={question.key: value},
        )
    )
    return _twiml(twiml.after_answer(script, index))


def voice_recorded_offline(attempt_id: int) -> Response:
    from ivr import twiml

    url = request.form.get("RecordingUrl", "")
    if url:
        append(new_entry("voice_message", attempt_id=attempt_id, recording_url=url))
    script = _call_script(attempt_id)
    return _twiml(twiml.thanks(script)) if script is not None else _no_context_twiml()


def voice_goodbye_offline(attempt_id: int) -> Response:
    from ivr import twiml

    script = _call_script(attempt_id)
    return _twiml(twiml.goodbye(script) if script is not None else twiml.empty())


def voice_status_offline(attempt_id: int) -> tuple[str, int]:
    form = request.form
    append(
        new_entry(
            "status",
            attempt_id=attempt_id,
            status=form.get("CallStatus", ""),
            provider_sid=form.get("CallSid"),
            answered_by=form.get("AnsweredBy") or None,
            error_code=form.get("ErrorCode") or None,
            error_reason=form.get("ErrorMessage") or None,
        )
    )
    return "", 204


def sms_status_offline(attempt_id: int) -> tuple[str, int]:
    form = request.form
    append(
        new_entry(
            "status",
            attempt_id=attempt_id,
            status=form.get("MessageStatus") or form.get("SmsStatus") or "",
            provider_sid=form.get("MessageSid") or form.get("SmsSid"),
            error_code=form.get("ErrorCode") or None,
            error_reason=form.get("ErrorMessage") or None,
        )
    )
    return "", 204


_SMS_RECEIVED = "回答を受け付けました。ありがとうございます。\nThank you, your answer was received."


def sms_inbound_offline() -> Response:
    from core.telephony.twiml import MessagingResponse

    body = request.form.get("Body", "")
    response = MessagingResponse()
    if body.strip():
        append(new_entry("sms_reply", from_number=request.form.get("From", ""), body=body[:1600]))
        response.message(_SMS_RECEIVED)
    return _twiml(str(response))


# --- offline answers: the answer page -----------------------------------------------------------------------------


def _limit(*, spend: bool) -> bool:
    """The link-guessing limit (core.ratelimit); True when it cannot be counted now (the database is away)."""
    from core import ratelimit

    client = ratelimit.client_address()
    try:
        if spend:
            return ratelimit.spend_try(ratelimit.LINK_MISSES, client)
        return ratelimit.has_tries_left(ratelimit.LINK_MISSES, client)
    except Exception:
        _forget_session()
        return True


def answer_page_offline(token: str) -> tuple[str, int] | Response:
    """``/r/<token>`` without the database: the page from the answer context; a POST is spooled and thanked for."""
    from core.i18n import SUPPORTED, gettext
    from ivr.scenarios import parse_template

    if not token or len(token) > 64:
        return render_template(
            "ivr/answer_gone.html", code=404, message=gettext("This link is not valid.")
        ), 404
    # Guessing stays limited while the database is away, as far as the limits can be counted (in Redis).
    if not _limit(spend=False):
        abort(429)
    context = recall_token(_settings(), token)
    if context is None:
        _limit(spend=True)
    asked = request.values.get("lang")
    lang = asked if asked in SUPPORTED else (context.language if context else "ja")
    g.language = lang
    if request.method == "POST":
        form = {
            key: value[:2000]
            for key, value in request.form.items()
            if key not in _NOT_ANSWERS and _KEY_LIKE.match(key) and value
        }
        text = request.form.get("free_text", "").strip()[:2000]
        if form or text:
            via = request.form.get("via", "")
            append(
                new_entry(
                    "answer",
                    channel="web",
                    token=token,
                    answers=form,
                    free_text=text or None,
                    via=whole_number(via),
                )
            )
            saved = True
        else:
            saved = False
    else:
        saved = False
    if context is None:
        # We cannot show the questions, but a POST that got here is kept all the same.
        message = (
            gettext(
                "Thank you. Your answer has been recorded. You can change it until the safety check closes."
            )
            if saved
            else gettext("The safety check is busy right now. Please try again in a few minutes.")
        )
        response = current_app.make_response(
            (
                render_template("ivr/answer_gone.html", code=200 if saved else 503, message=message),
                200 if saved else 503,
            )
        )
        if not saved:
            response.headers["Retry-After"] = "60"
        return response
    scenario = parse_template(context.template)
    errors = [] if saved or request.method == "GET" else [gettext("Please choose an answer.")]
    return render_template(
        "ivr/answer.html",
        token=token,
        via=request.values.get("via", ""),
        scenario=scenario,
        broadcast=SimpleNamespace(mode=SimpleNamespace(value=context.mode)),
        current={},
        saved=saved,
        errors=errors,
        lang=lang,
        other_lang="en" if lang == "ja" else "ja",
    ), (400 if errors else 200)


# --- replay ---------------------------------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    complete: bool = True  # False: the database went away again (or another replay holds the lock)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "complete": self.complete,
        }


class _Duplicate(Exception):
    pass


def _recipient_of_attempt(attempt_id: int) -> tuple[Any, Any]:
    from ivr.models import Attempt, Recipient

    attempt = db.session.get(Attempt, int(attempt_id))
    recipient = db.session.get(Recipient, attempt.recipient_id) if attempt is not None else None
    if attempt is None or recipient is None:
        raise NotFound(f"attempt {attempt_id} no longer exists")
    return attempt, recipient


def _answer_exists(*conditions: Any) -> bool:
    from ivr.models import Answer

    return db.session.scalar(select(Answer.id).where(*conditions).limit(1)) is not None


def _apply_answer(entry: Entry) -> None:
    from ivr import service
    from ivr.models import Answer, AnswerChannel

    data = entry.data
    at = entry.arrived_at
    if data.get("channel") == "voice":
        attempt, recipient = _recipient_of_attempt(data["attempt_id"])
        answers = {str(k): str(v) for k, v in dict(data.get("answers") or {}).items()}
        # The same key confirmed on the same call is one answer however often the carrier sent it.
        fresh = {
            key: value
            for key, value in answers.items()
            if not _answer_exists(
                Answer.recipient_id == recipient.id,
                Answer.attempt_id == attempt.id,
                Answer.question_key == key,
                Answer.value == value,
            )
        }
        if not fresh:
            raise _Duplicate
        service.record_answers(
            recipient=recipient, answers=fresh, channel=AnswerChannel.VOICE, attempt_id=attempt.id, now=at
        )
        return
    recipient = service.recipient_by_token(str(data.get("token") or ""))
    if recipient is None:
        raise NotFound("the answer link is unknown")
    if _answer_exists(
        Answer.recipient_id == recipient.id, Answer.at == at, Answer.channel == AnswerChannel.WEB
    ):
        raise _Duplicate
    scenario = service.snapshot(service.get_broadcast(broadcast_id=recipient.broadcast_id))
    form = dict(data.get("answers") or {})
    # The same reading of the form as the answer page's own (ivr.views.answer).
    chosen = {q.key: str(form[q.key]) for q in scenario.questions if form.get(q.key)}
    text = str(data.get("free_text") or "") if scenario.free_text else ""
    via = data.get("via")
    service.record_answers(
        recipient=recipient,
        answers=chosen,
        free_text=text,
        channel=AnswerChannel.WEB,
        attempt_id=int(via) if isinstance(via, int) else None,
        now=at,
    )


def _apply_voice_message(entry: Entry) -> None:
    from ivr import service
    from ivr.models import Answer, AnswerChannel

    attempt, recipient = _recipient_of_attempt(entry.data["attempt_id"])
    note = f"recording: {entry.data.get('recording_url', '')}"
    if _answer_exists(
        Answer.recipient_id == recipient.id,
        Answer.question_key == service.VOICE_MESSAGE_KEY,
        Answer.free_text == note,
    ):
        raise _Duplicate
    service.record_answers(
        recipient=recipient,
        answers={},
        free_text=note,
        channel=AnswerChannel.VOICE,
        attempt_id=attempt.id,
        now=entry.arrived_at,
    )


def _apply_status(entry: Entry) -> None:
    from ivr import service

    data = entry.data
    service.record_provider_status(
        attempt_id=int(data["attempt_id"]),
        status=str(data.get("status") or ""),
        provider_sid=data.get("provider_sid") or None,
        answered_by=data.get("answered_by") or None,
        error_code=data.get("error_code") or None,
        error_reason=data.get("error_reason") or None,
        now=entry.arrived_at,
    )


def _apply_machine(entry: Entry) -> None:
    from ivr import service

    service.machine_answered(
        attempt_id=int(entry.data["attempt_id"]),
        answered_by=str(entry.data.get("answered_by") or "machine_start"),
        now=entry.arrived_at,
    )


def _apply_sms_reply(entry: Entry) -> None:
    from ivr import service
    from ivr.models import Answer, AnswerChannel

    at = entry.arrived_at
    if _answer_exists(Answer.channel == AnswerChannel.SMS, Answer.at == at):
        raise _Duplicate
    recipient = service.record_sms_reply(
        from_number=str(entry.data.get("from_number") or ""),
        body=str(entry.data.get("body") or ""),
        secret=_settings().secret_key,
        now=at,
    )
    if recipient is None:
        raise NotFound("the reply matches no open broadcast, or is not an answer")


_APPLY: dict[str, Callable[[Entry], None]] = {
    "answer": _apply_answer,
    "voice_message": _apply_voice_message,
    "status": _apply_status,
    "machine": _apply_machine,
    "sms_reply": _apply_sms_reply,
}


def replay(settings: Any | None = None) -> ReplayReport:
    """Store everything spooled, oldest first (needs an app context). Safe to run anywhere, any number of times."""
    settings = settings or _settings()
    report = ReplayReport()
    for store in stores(settings):

        def apply(text: str, store: FileStore | RedisStore = store) -> bool:
            try:
                entry = Entry.from_json(text)
                handler = _APPLY.get(entry.kind)
                if handler is None:
                    raise ValueError(f"unknown kind {entry.kind!r}")
                handler(entry)
                db.session.commit()
                report.stored += 1
            except _Duplicate:
                db.session.rollback()
                report.duplicates += 1
            except Exception as exc:
                _forget_session()
                if database_unreachable(exc):
                    return False
                if not isinstance(exc, LifelineError | ValueError | KeyError | TypeError):
                    log.exception("spool entry could not be stored: %s", text[:300])
                else:
                    log.warning("spool entry rejected (%s): %s", exc, text[:300])
                store.reject(text, f"{type(exc).__name__}: {exc}")
                report.rejected += 1
            return True

        try:
            report.complete = store.drain(apply) and report.complete
        except Exception:
            log.warning("spool %s could not be replayed now", type(store).__name__, exc_info=True)
            report.complete = False
    if report.stored or report.rejected:
        log.info("spool replayed: %s", report.as_dict())
    return report


def pending_count(settings: Any | None = None) -> dict[str, int]:
    settings = settings or _settings()
    out: dict[str, int] = {}
    for store in stores(settings):
        name = "redis" if isinstance(store, RedisStore) else "file"
        try:
            out[name] = store.pending()
            out[f"{name}_rejected"] = store.rejected()
        except Exception:
            out[name] = -1
    return out


# --- a replayer thread in the web process ---------------------------------------------------------------------------

_replayer: threading.Thread | None = None
_replayer_lock = threading.Lock()
_checked_on_start = False


def start_replayer(app: Flask) -> None:
    """Drain this machine's spool from inside this process until it is empty (a web machine may have no worker)."""
    global _replayer
    if app.testing:  # tests replay explicitly; a background thread would share their transaction
        return
    with _replayer_lock:
        if _replayer is not None and _replayer.is_alive():
            return
        _replayer = threading.Thread(
            target=_replay_until_empty, args=(app,), name="lifeline-spool-replay", daemon=True
        )
        _replayer.start()


def _replay_until_empty(app: Flask) -> None:
    while True:
        time.sleep(REPLAY_EVERY_S)
        try:
            with app.app_context():
                report = replay()
                left = sum(v for k, v in pending_count().items() if not k.endswith("_rejected") and v > 0)
                db.session.remove()
        except Exception:
            log.warning("spool replay failed; trying again in %s s", REPLAY_EVERY_S, exc_info=True)
            continue
        if report.complete and not left:
            return


def replay_left_over_spool() -> None:
    """``before_request``: once per process, start the replayer if this machine has a spool waiting."""
    global _checked_on_start
    if _checked_on_start or current_app.testing:
        return
    _checked_on_start = True
    store = file_store(_settings())
    if store.folder.is_dir() and (store.path.exists() or store.batches()):
        start_replayer(current_app._get_current_object())  # type: ignore[attr-defined]


__all__ = [
    "AnswerContext",
    "Entry",
    "ReplayReport",
    "SpoolUnavailable",
    "append",
    "database_unreachable",
    "new_entry",
    "outage_fallback",
    "pending_count",
    "recall_attempt",
    "recall_token",
    "remember_many",
    "remember_recipient",
    "replay",
]
