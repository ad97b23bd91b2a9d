"""The links that stand in for a login: answer links, invitations, self-service and home-agent links.

Each is 128 random bits from ``secrets`` (22 URL-safe characters), belongs to one person in one broadcast, and a
client that keeps guessing is stopped — before the lookup, so the stop itself tells nothing. Signing in is
limited per address too, on top of each account's own lockout.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from sqlalchemy import select

from core import db, ratelimit
from core.auth.models import Role
from core.directory import models as directory_models
from ivr import service
from ivr.models import Recipient
from tests.factories import PASSWORD, csrf_from, make_user

URL_SAFE_22 = re.compile(r"^[A-Za-z0-9_-]{22,}$")


@pytest.fixture(autouse=True)
def frozen_limiter_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The buckets refill with time (a try every 3 s for links, 30 s for sign-ins); on a slow machine the tries
    of one test would refill while it runs. Frozen, the counts are what each test says."""
    frozen = ratelimit._now()
    monkeypatch.setattr(ratelimit, "_now", lambda: frozen)


@pytest.mark.parametrize(
    "make",
    [service.new_token, directory_models.new_token],
    ids=["answer and invitation links", "self-service and home-agent links"],
)
def test_link_tokens_are_128_random_bits_from_secrets(make: Any) -> None:
    tokens = {make() for _ in range(2000)}
    assert len(tokens) == 2000 and all(URL_SAFE_22.match(t) for t in tokens)
    # They come from the secrets module's generator (the operating system's), asking it for 16 bytes.
    with mock.patch.object(secrets, "token_urlsafe", wraps=secrets.token_urlsafe) as drawn:
        make()
    drawn.assert_called_once_with(16)


def _broadcast(world: Any, **audience: Any) -> int:
    return service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience=audience or {"everyone": True},
        actor="t",
    ).id


def _token(broadcast_id: int, staff_id: int) -> str:
    recipient = db.session.scalar(
        select(Recipient).where(Recipient.broadcast_id == broadcast_id, Recipient.staff_id == staff_id)
    )
    assert recipient is not None
    return recipient.token


def test_a_link_answers_for_its_own_person_and_broadcast_only(client: Any, world: Any) -> None:
    first, second = _broadcast(world), _broadcast(world)
    person = world.staff[0]
    token = _token(first, person.id)
    assert token != _token(second, person.id)  # a new link for every broadcast
    page = client.get(f"/r/{token}")
    client.post(f"/r/{token}", data={"csrf_token": csrf_from(page.text), "safety": "1", "work": "1"})
    answered = {
        r.broadcast_id
        for r in db.session.scalars(select(Recipient).where(Recipient.answered_at.is_not(None)))
    }
    assert answered == {first}
    service.close_broadcast(broadcast_id=first, actor="t")
    db.session.commit()
    assert (
        client.get(f"/r/{token}").status_code == 410
    )  # the broadcast is over: the link no longer takes answers


def _from(client: Any, address: str) -> Any:
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_guessing_links_is_stopped_without_telling_which_ones_exist(app: Flask, world: Any) -> None:
    real = _token(_broadcast(world), world.staff[0].id)
    db.session.commit()
    guesser = _from(app.test_client(), "198.51.100.7")
    statuses = [
        guesser.get(f"/r/{secrets.token_urlsafe(16)}").status_code
        for _ in range(ratelimit.LINK_MISSES.capacity)
    ]
    assert statuses == [404] * ratelimit.LINK_MISSES.capacity
    assert guesser.get(f"/r/{secrets.token_urlsafe(16)}").status_code == 429
    # Out of tries, even a real link answers 429: the guesser cannot tell it found one.
    assert guesser.get(f"/r/{real}").status_code == 429
    assert (
        guesser.get(f"/me/{secrets.token_urlsafe(16)}").status_code == 429
    )  # one budget for every kind of link
    # Everyone else is unaffected, the guesser included once a minute has passed.
    assert _from(app.test_client(), "198.51.100.8").get(f"/r/{real}").status_code == 200
    later = ratelimit._now() + ratelimit.LINK_MISSES.per_seconds
    with mock.patch.object(ratelimit, "_now", return_value=later):
        assert guesser.get(f"/r/{real}").status_code == 200


def test_a_few_mistyped_links_do_not_lock_anyone_out(app: Flask, world: Any) -> None:
    real = _token(_broadcast(world), world.staff[0].id)
    db.session.commit()
    person = _from(app.test_client(), "198.51.100.9")
    for _ in range(3):
        assert person.get(f"/r/{real[:-1]}x").status_code == 404
    assert person.get(f"/r/{real}").status_code == 200


def _login(client: Any, email: str, password: str) -> int:
    page = client.get("/login")
    return int(
        client.post(
            "/login", data={"email": email, "password": password, "csrf_token": csrf_from(page.text)}
        ).status_code
    )


def test_signing_in_is_limited_per_address_across_accounts(app: Flask, world: Any) -> None:
    users = [make_user(world.org, Role.MANAGER, email=f"victim{n}@example.com") for n in range(6)]
    db.session.commit()
    attacker = _from(app.test_client(), "203.0.113.5")
    # Spread over several accounts, so no single account locks itself: the address runs out of tries.
    attempts = [
        _login(attacker, users[n % len(users)].email, "wrong-password!")
        for n in range(ratelimit.LOGIN_FAILURES.capacity)
    ]
    assert set(attempts) == {401}
    assert _login(attacker, users[-1].email, "wrong-password!") == 429
    assert _login(attacker, users[-1].email, PASSWORD) == 429  # not even the right password from there
    # The account owner, elsewhere, signs in as usual (the account itself was not locked: 3 failures).
    assert _login(_from(app.test_client(), "203.0.113.6"), users[-1].email, PASSWORD) == 302


def test_an_account_still_locks_itself_after_five_wrong_passwords(app: Flask, world: Any) -> None:
    user = make_user(world.org, Role.MANAGER, email="locked@example.com")
    db.session.commit()
    client = _from(app.test_client(), "203.0.113.9")
    assert [_login(client, user.email, "wrong-password!") for _ in range(5)] == [401] * 5
    assert _login(_from(app.test_client(), "203.0.113.10"), user.email, PASSWORD) == 401


@pytest.mark.redis
def test_the_limits_are_shared_through_redis_when_it_is_configured(app: Flask, world: Any) -> None:
    import os
    from dataclasses import replace

    url = os.environ.get("LIFELINE_TEST_REDIS_URL")
    if not url:
        pytest.skip("LIFELINE_TEST_REDIS_URL is not set")
    from core.kv import redis_client

    before = app.extensions["lifeline.settings"]
    app.extensions["lifeline.settings"] = replace(before, redis_url=url)
    address = f"192.0.2.{secrets.randbelow(200) + 20}"
    try:
        redis_client(url).delete(ratelimit._key(ratelimit.LINK_MISSES, address))
        with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
            results = [ratelimit.spend_try(ratelimit.LINK_MISSES, address) for _ in range(21)]
            assert results == [True] * 20 + [False]
            assert not ratelimit.has_tries_left(ratelimit.LINK_MISSES, address)
            assert ratelimit.has_tries_left(ratelimit.LINK_MISSES, address + "1")
    finally:
        app.extensions["lifeline.settings"] = before
