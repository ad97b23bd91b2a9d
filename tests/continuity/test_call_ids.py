"""A signed inbound webhook whose call id is not a carrier's call id is refused with a 400 and stores nothing;
one that is gets its call recorded. The id reaches queries, and PostgreSQL refuses some characters outright."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from continuity.models import InboundCall
from core import db
from tests.continuity.conftest import CALLER, LINE_24H, Carrier, Center, new_call_sid


@pytest.mark.parametrize(
    ("call_sid", "status"),
    [
        ("\x00", 400),  # NUL: PostgreSQL cannot store it in text
        ("CA\x00123", 400),
        ("CA\x07123", 400),  # a control character
        ("CA\n123", 400),
        ("CA１２３", 400),  # full-width digits: not ASCII
        ("CAé", 400),
        ("CA" + "0" * 63, 400),  # longer than any call id
        ("", 400),
        ("CA" + "0" * 32, 200),
        ("CA" + "0" * 62, 200),  # 64 characters: the longest accepted
    ],
)
def test_a_call_id_that_is_not_printable_ascii_is_refused(
    center: Center, carrier: Carrier, call_sid: str, status: int
) -> None:
    response = carrier.post(
        "/hooks/voice/inbound",
        {
            "CallSid": call_sid,
            "From": CALLER,
            "To": LINE_24H,
            "CallStatus": "ringing",
            "Direction": "inbound",
        },
    )
    assert response.status_code == status, response.text[:300]
    stored = db.session.scalar(select(func.count(InboundCall.id)))
    assert stored == (1 if status == 200 else 0)


def test_the_same_refusal_on_the_follow_up_webhooks(center: Center, carrier: Carrier) -> None:
    _, first = carrier.call(LINE_24H, sid=new_call_sid())
    assert first.status_code == 200
    refused = carrier.post("/hooks/voice/next?attempt=1&call=CA%07", {"From": CALLER, "To": LINE_24H})
    assert refused.status_code == 400
    assert db.session.scalar(select(func.count(InboundCall.id))) == 1
