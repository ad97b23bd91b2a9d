"""The answer page /r/<token>: GET records nothing, POST records; changes; closed; unknown tokens."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from core import db
from ivr import service
from ivr.models import Answer, Recipient
from tests.factories import csrf_from
from tests.ivr.conftest import NOW


@pytest.fixture()
def person(world):
    broadcast = service.start_broadcast(
        organization_id=world.org.id, template="earthquake", audience={"everyone": True}, actor="t", now=NOW
    )
    recipient = db.session.scalar(
        select(Recipient).where(
            Recipient.broadcast_id == broadcast.id, Recipient.staff_id == world.staff[0].id
        )
    )
    db.session.commit()
    return recipient


def answers_stored():
    return db.session.scalar(select(func.count()).select_from(Answer))


def test_get_shows_the_form_and_records_nothing(client, person):
    page = client.get(f"/r/{person.token}")
    assert page.status_code == 200
    assert "あなたの状況を選んでください。" in page.text  # the person's language (Japanese)
    # Radio groups in question order, values are the option digits (the phone keys).
    assert re.findall(r'name="(\w+)" value="(\d)"', page.text) == [
        ("safety", "1"),
        ("safety", "2"),
        ("safety", "3"),
        ("safety", "4"),
        ("work", "1"),
        ("work", "2"),
        ("work", "3"),
    ]
    client.get(f"/r/{person.token}")
    assert answers_stored() == 0


def test_language_can_be_switched(client, person):
    page = client.get(f"/r/{person.token}?lang=en")
    assert "How are you?" in page.text and 'lang="en"' in page.text


def test_post_records_and_the_answer_can_be_changed(client, person):
    page = client.get(f"/r/{person.token}")
    token = csrf_from(page.text)
    saved = client.post(
        f"/r/{person.token}", data={"csrf_token": token, "safety": "2", "work": "3", "free_text": "ankle"}
    )
    assert saved.status_code == 200 and "回答を受け付けました" in saved.text
    changed = client.post(f"/r/{person.token}", data={"csrf_token": token, "safety": "1", "work": "3"})
    assert changed.status_code == 200
    current = service.current_answers(recipient_id=person.id)
    assert {k: a.value for k, a in current.items()} == {"safety": "1", "work": "3", "_free_text": ""}
    assert current["_free_text"].free_text == "ankle"
    assert answers_stored() == 5  # history: 2 + text, then 2 more
    assert 'value="1" checked' in client.get(f"/r/{person.token}").text


def test_post_without_csrf_token_is_refused(client, person):
    response = client.post(f"/r/{person.token}", data={"safety": "1"})
    assert response.status_code == 400
    assert answers_stored() == 0


def test_post_without_any_choice_asks_again(client, person):
    token = csrf_from(client.get(f"/r/{person.token}").text)
    response = client.post(f"/r/{person.token}?lang=en", data={"csrf_token": token, "lang": "en"})
    assert response.status_code == 400 and "Please choose an answer." in response.text


def test_closed_broadcast_shows_a_friendly_page(client, person):
    token = csrf_from(client.get(f"/r/{person.token}").text)
    service.close_broadcast(broadcast_id=person.broadcast_id, actor="t")
    db.session.commit()
    page = client.get(f"/r/{person.token}?lang=en")
    assert page.status_code == 410 and "This safety check is closed" in page.text
    posted = client.post(f"/r/{person.token}", data={"csrf_token": token, "safety": "1"})
    assert posted.status_code == 410 and answers_stored() == 0


@pytest.mark.parametrize("token", ["nope", "x" * 22, "a" * 200])
def test_unknown_token_gets_a_friendly_404(client, token, person):
    page = client.get(f"/r/{token}?lang=en")
    assert page.status_code == 404
    assert "This answer link is not valid" in page.text and "Traceback" not in page.text
