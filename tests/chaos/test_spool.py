"""The database goes away while people answer: they hear and see what they always would, nothing is lost, and
once it is back every answer is stored once, with the time it was given.

The outage here is simulated inside the process (every statement fails as with a refused connection); the real
one — PostgreSQL stopped under live processes — is ``test_chaos.py::test_postgresql_outage_while_answers_arrive``.
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from core import db
from core.telephony.signature import sign_request
from core.time import utcnow
from ivr import dispatch, service, spool, twiml
from ivr.models import Attempt, AttemptState, Recipient, RecipientState
from ivr.scenarios import parse_template
from tests.chaos.conftest import database_down
from tests.factories import csrf_from
from tests.ivr.conftest import NOW


def post(client: Any, app: Any, path: str, params: dict[str, str]) -> Any:
    settings = app.extensions["lifeline.settings"]
    url = settings.public_base_url.rstrip("/") + path
    return client.post(
        path,
        data=params,
        headers={"X-Twilio-Signature": sign_request(url, params, settings.twilio_auth_token)},
    )


def fresh(model: Any, id_: int) -> Any:
    return db.session.get(model, id_, populate_existing=True)


@pytest.fixture()
def call(world: Any, outbound: Any, own_instance: Any) -> dict[str, int]:
    """One English speaker called (voice only); plain ids, since requests that fail roll the session back."""
    broadcast = service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience={"staff_ids": [world.staff[1].id]},
        channels=["voice"],
        actor="t",
        now=NOW,
    )
    dispatch.run(out=outbound, now=lambda: NOW)
    attempt = db.session.scalar(select(Attempt).where(Attempt.broadcast_id == broadcast.id))
    db.session.commit()
    return {"broadcast": broadcast.id, "attempt": attempt.id, "recipient": attempt.recipient_id}


def history(recipient_id: int) -> list[tuple[str, str, str]]:
    return [
        (a.question_key, a.value, a.channel.value) for a in service.answer_history(recipient_id=recipient_id)
    ]


def test_a_caller_hears_the_same_call_while_the_database_is_down_and_every_key_is_stored_once(
    client: Any, app: Any, call: dict[str, int]
) -> None:
    base = f"/hooks/ivr/voice/{call['attempt']}"
    start = post(client, app, f"{base}/start", {"CallSid": "CA1", "AnsweredBy": "human"})
    assert "How are you?" in start.text  # the call began while the database was there
    with database_down():
        readback = post(client, app, f"{base}/q/0", {"CallSid": "CA1", "Digits": "2"})
        assert readback.status_code == 200
        assert "You pressed 2, Injured. Press 1 to confirm, or 9 to re-enter." in readback.text
        confirmed = post(client, app, f"{base}/q/0/confirm/2", {"CallSid": "CA1", "Digits": "1"})
        # Exactly the TwiML the database-backed webhook gives: on to the next question.
        assert ET.fromstring(confirmed.text).find("Gather").get("action").endswith(f"{base}/q/1")
        post(client, app, f"{base}/q/0/confirm/2", {"CallSid": "CA1", "Digits": "1"})  # the carrier retried
        last = post(client, app, f"{base}/q/1/confirm/1", {"CallSid": "CA1", "Digits": "1"})
        assert "Thank you for answering. Stay safe." in last.text and "<Hangup" in last.text
        status = post(client, app, f"{base}/status", {"CallSid": "CA1", "CallStatus": "completed"})
        assert status.status_code == 204
    assert history(call["recipient"]) == []  # nothing reached the database during the outage

    report = spool.replay()
    assert (report.stored, report.duplicates, report.rejected, report.complete) == (3, 1, 0, True)
    assert history(call["recipient"]) == [("safety", "2", "voice"), ("work", "1", "voice")]
    assert fresh(Recipient, call["recipient"]).state is RecipientState.ANSWERED
    assert fresh(Attempt, call["attempt"]).state is AttemptState.COMPLETED
    again = spool.replay()
    assert (again.stored, again.duplicates) == (0, 0)  # the spool is empty once stored
    assert spool.pending_count() == {"file": 0, "file_rejected": 0}


def test_a_call_that_starts_during_the_outage_without_its_context_is_told_to_use_the_link(
    client: Any, app: Any, call: dict[str, int]
) -> None:
    with database_down():
        reply = post(client, app, f"/hooks/ivr/voice/{call['attempt'] + 1000}/start", {"CallSid": "CA9"})
    assert reply.status_code == 200 and "<Hangup" in reply.text
    assert "link in your text message or e-mail" in reply.text


@pytest.fixture()
def person(world: Any, own_instance: Any) -> Recipient:
    broadcast = service.start_broadcast(
        organization_id=world.org.id, template="earthquake", audience={"everyone": True}, actor="t", now=NOW
    )
    recipient = db.session.scalar(
        select(Recipient).where(
            Recipient.broadcast_id == broadcast.id, Recipient.staff_id == world.staff[1].id
        )
    )
    db.session.commit()
    return recipient


def test_the_answer_page_takes_answers_while_the_database_is_down(client: Any, person: Recipient) -> None:
    token, recipient_id = person.token, person.id
    before = client.get(f"/r/{token}")  # opened while everything was fine
    with database_down():
        page = client.get(f"/r/{token}")
        assert page.status_code == 200 and "How are you?" in page.text  # the page still shows its questions
        sent = client.post(
            f"/r/{token}",
            data={
                "csrf_token": csrf_from(before.text),
                "safety": "3",
                "work": "2",
                "free_text": "at the shelter",
            },
        )
        assert sent.status_code == 200
        assert "Thank you. Your answer has been recorded." in sent.text
    assert history(recipient_id) == []
    given_at = spool.FileStore(
        Path(spool.file_store(client.application.extensions["lifeline.settings"]).folder)
    )
    entry = json.loads(given_at.path.read_text().splitlines()[0])

    assert spool.replay().stored == 1
    assert history(recipient_id) == [
        ("safety", "3", "web"),
        ("work", "2", "web"),
        (service.FREE_TEXT_KEY, "", "web"),
    ]
    answers = service.current_answers(recipient_id=recipient_id)
    assert answers["safety"].at.isoformat() == entry["at"]  # stored with the time it was given
    assert fresh(Recipient, recipient_id).answered_at.isoformat() == entry["at"]


def test_an_answer_kept_in_the_spool_never_overrides_a_later_one(client: Any, person: Recipient) -> None:
    token, recipient_id = person.token, person.id
    page = client.get(f"/r/{token}")
    with database_down():
        client.post(f"/r/{token}", data={"csrf_token": csrf_from(page.text), "safety": "3", "work": "3"})
    # The database is back before the replay runs, and the person answers again.
    later = service.record_answers(
        recipient=fresh(Recipient, recipient_id),
        answers={"safety": "1"},
        channel="web",
        now=utcnow() + timedelta(seconds=30),
    )
    db.session.commit()
    assert spool.replay().stored == 1
    current = service.current_answers(recipient_id=recipient_id)
    assert current["safety"].value == "1" and current["safety"].id == later[0].id
    assert current["work"].value == "3"  # nothing newer for that question: the spooled answer counts
    assert sorted(history(recipient_id)) == [
        ("safety", "1", "web"),
        ("safety", "3", "web"),
        ("work", "3", "web"),
    ]


def test_the_answer_page_without_its_context_keeps_the_answer_all_the_same(
    client: Any, person: Recipient, own_instance: Any
) -> None:
    token, recipient_id = person.token, person.id
    page = client.get(f"/r/{token}")
    spool._memory_context._items.clear()  # e.g. another web process served the first visit
    with database_down():
        assert client.get(f"/r/{token}").status_code == 503
        sent = client.post(
            f"/r/{token}", data={"csrf_token": csrf_from(page.text), "lang": "en", "safety": "1", "work": "1"}
        )
    assert sent.status_code == 200 and "Thank you. Your answer has been recorded." in sent.text
    assert spool.replay().stored == 1
    assert history(recipient_id) == [("safety", "1", "web"), ("work", "1", "web")]


def test_sms_replies_and_status_callbacks_are_spooled_too(
    client: Any, app: Any, world: Any, outbound: Any, own_instance: Any
) -> None:
    broadcast = service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience={"staff_ids": [world.staff[0].id]},
        channels=["sms"],
        actor="t",
        now=NOW,
    )
    dispatch.run(out=outbound, now=lambda: NOW)
    attempt = db.session.scalar(select(Attempt).where(Attempt.broadcast_id == broadcast.id))
    attempt_id, recipient_id = attempt.id, attempt.recipient_id
    db.session.commit()
    with database_down():
        reply = post(client, app, "/hooks/ivr/sms-inbound", {"From": "+819000000100", "Body": "1 2"})
        assert "回答を受け付けました" in reply.text
        for status in ("sent", "delivered"):
            done = post(
                client,
                app,
                f"/hooks/ivr/sms/{attempt_id}/status",
                {"MessageSid": "SM1", "MessageStatus": status},
            )
            assert done.status_code == 204
    assert spool.replay().stored == 3
    assert history(recipient_id) == [("safety", "1", "sms"), ("work", "2", "sms")]
    assert fresh(Attempt, attempt_id).state is AttemptState.COMPLETED


def test_an_entry_that_can_never_be_stored_is_set_aside_not_dropped(
    app: Any, db_session: Any, own_instance: Any
) -> None:
    spool.append(spool.new_entry("answer", channel="web", token="no-such-link", answers={"safety": "1"}))
    spool.append(spool.new_entry("status", attempt_id=10**9, status="completed"))
    report = spool.replay()
    assert (report.stored, report.rejected) == (1, 1)  # an unknown attempt's status is a no-op, not an error
    rejected = spool.file_store(own_instance).rejected_path.read_text().splitlines()
    assert len(rejected) == 1 and "no-such-link" in json.loads(rejected[0])["entry"]
    assert spool.pending_count() == {"file": 0, "file_rejected": 1}


def test_replay_stops_where_the_database_went_away_again_and_goes_on_from_there(tmp_path: Path) -> None:
    store = spool.FileStore(tmp_path / "spool")
    for n in range(5):
        store.append(spool.new_entry("status", attempt_id=n, status="sent"))
    seen: list[int] = []

    def apply_until(limit: int) -> Any:
        def apply(text: str) -> bool:
            n = spool.Entry.from_json(text).data["attempt_id"]
            if len(seen) >= limit:
                return False
            seen.append(n)
            return True

        return apply

    assert store.drain(apply_until(2)) is False
    store.append(spool.new_entry("status", attempt_id=5, status="sent"))  # arrived meanwhile
    assert store.pending() == 4
    assert store.drain(apply_until(100)) is True
    assert seen == [0, 1, 2, 3, 4, 5]  # in arrival order, each once
    assert store.pending() == 0


def test_appends_racing_a_replay_are_each_kept_exactly_once(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    seen: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        store = spool.FileStore(folder)  # separate descriptors, as separate processes would have
        for i in range(200):
            store.append(spool.new_entry("status", attempt_id=n * 1000 + i, status="sent"))

    def apply(text: str) -> bool:
        with lock:
            seen.append(spool.Entry.from_json(text).id)
        return True

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    replayer = spool.FileStore(folder)
    while any(t.is_alive() for t in threads):
        replayer.drain(apply)
    for thread in threads:
        thread.join()
    replayer.drain(apply)
    assert len(seen) == len(set(seen)) == 800


@pytest.mark.redis
def test_the_redis_spool_keeps_order_and_falls_back_to_the_file_when_redis_is_gone(
    tmp_path: Path, redis_url: str
) -> None:
    from core.kv import redis_client

    client = redis_client(redis_url)
    client.delete(spool.REDIS_SPOOL_KEY, spool.REDIS_REPLAY_LOCK)
    store = spool.RedisStore(client)
    for n in range(3):
        store.append(spool.new_entry("status", attempt_id=n, status="sent"))
    seen: list[int] = []
    assert (
        store.drain(lambda text: seen.append(spool.Entry.from_json(text).data["attempt_id"]) is None) is True
    )
    assert seen == [0, 1, 2] and store.pending() == 0

    class Settings:
        spool_backend = "redis"
        redis_url = "redis://127.0.0.1:9/0"  # nothing listens there
        broker_url = ""
        instance_dir = tmp_path

    spool.append(spool.new_entry("status", attempt_id=7, status="sent"), Settings())
    assert spool.FileStore(tmp_path / "spool").pending() == 1


@pytest.fixture()
def redis_url() -> str:
    import os

    url = os.environ.get("LIFELINE_TEST_REDIS_URL")
    if not url:
        pytest.skip("LIFELINE_TEST_REDIS_URL is not set")
    return url


def test_the_call_script_from_the_context_is_the_one_the_database_gives(
    app: Any, call: dict[str, int]
) -> None:
    broadcast = service.get_broadcast(broadcast_id=call["broadcast"])
    recipient = db.session.get(Recipient, call["recipient"])
    spool.remember_recipient(
        app.extensions["lifeline.settings"],
        recipient=recipient,
        broadcast=broadcast,
        attempt_id=call["attempt"],
    )
    with app.test_request_context():
        script = spool._call_script(call["attempt"])
    assert script is not None
    expected = twiml.CallScript(
        template=parse_template(broadcast.template), language=recipient.language, base=script.base
    )
    assert twiml.greeting(script) == twiml.greeting(expected)
    assert script.base.endswith(f"/hooks/ivr/voice/{call['attempt']}")


def test_a_read_only_standby_counts_as_unavailable_and_other_errors_do_not() -> None:
    from sqlalchemy.exc import IntegrityError, InternalError

    class ReadOnly(Exception):
        sqlstate = "25006"

    class Broken(Exception):
        sqlstate = "42P01"

    assert spool.database_unreachable(InternalError("INSERT", {}, ReadOnly("read-only transaction")))
    assert not spool.database_unreachable(InternalError("SELECT", {}, Broken("no such table")))
    assert not spool.database_unreachable(IntegrityError("INSERT", {}, Broken("duplicate")))
    assert not spool.database_unreachable(ValueError("a bug"))


def test_the_health_check_says_whether_this_region_takes_writes(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    with mock.patch("core.db.get_engine", side_effect=OperationalError("SELECT 1", {}, Exception("refused"))):
        down = client.get("/healthz")
    assert down.status_code == 503 and down.get_json() == {"status": "database unreachable"}
