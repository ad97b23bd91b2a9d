"""Shared fixtures for the safety-broadcast tests: a small organization and fake outbound adapters."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.directory.models import Department, Organization, Site, Staff
from core.mail import OutboxMailBackend
from core.pacing import UnlimitedTokenBucket
from core.telephony import PermanentTelephonyError, PlacedCall, SentMessage, TransientTelephonyError
from core.time import utcnow
from ivr.dispatch import Outbound
from tests.factories import make_department, make_org, make_site, make_staff

# Close to the real time: pages and webhooks that take no ``now`` compare with the deadline (now + 72 h).
NOW = utcnow().replace(microsecond=0)
_sids = itertools.count(1)


class FakeBackend:
    """Records what would have gone to the carrier; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.fail: Exception | None = None

    def _maybe_fail(self) -> None:
        if self.fail is not None:
            raise self.fail

    def place_call(self, **kw: Any) -> PlacedCall:
        self._maybe_fail()
        self.calls.append(kw)
        return PlacedCall(sid=f"CA{next(_sids):032d}", status="queued")

    def send_sms(self, **kw: Any) -> SentMessage:
        self._maybe_fail()
        self.messages.append(kw)
        return SentMessage(sid=f"SM{next(_sids):032d}", status="queued")

    def cancel_call(self, call_sid: str) -> None:
        pass

    def end_call(self, call_sid: str) -> None:
        pass


__all__ = ["NOW", "FakeBackend", "PermanentTelephonyError", "TransientTelephonyError"]


@dataclass
class World:
    org: Organization
    sites: dict[str, Site]
    departments: dict[str, Department | None]
    staff: list[Staff] = field(default_factory=list)


@pytest.fixture()
def world(db_session: Any) -> World:
    """Two sites (Tokyo 13, Osaka 27), two departments, eight people with a work phone and e-mail each."""
    org = make_org()
    sites = {
        "TYO": make_site(org, code="TYO", prefecture="13"),
        "OSA": make_site(org, code="OSA", prefecture="27"),
    }
    sales = make_department(org, "Sales")
    departments = {"Sales": sales, "Support": make_department(org, "Support"), "Sales East": None}
    departments["Sales East"] = make_department(org, "Sales East", parent=sales)
    w = World(org=org, sites=sites, departments=departments)
    layout = [
        ("TYO", "Sales", "13"),
        ("TYO", "Sales East", "11"),
        ("TYO", "Support", "13"),
        ("TYO", "Support", "14"),
        ("OSA", "Sales", "27"),
        ("OSA", "Support", "28"),
        ("OSA", "Support", "27"),
        ("OSA", "Sales East", "13"),  # works in Osaka, lives in Tokyo
    ]
    for n, (site, dept, home) in enumerate(layout):
        w.staff.append(
            make_staff(
                org,
                site=sites[site],
                department=departments[dept],
                phone=f"+8190000001{n:02d}",
                email=f"p{n}@example.com",
                home_prefecture=home,
                language="en" if n % 2 else "ja",
            )
        )
    return w


@pytest.fixture()
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture()
def outbound(app: Any, backend: FakeBackend) -> Outbound:
    return Outbound(
        backend=backend,
        mailer=OutboxMailBackend(),
        bucket=UnlimitedTokenBucket(),
        settings=app.extensions["lifeline.settings"],
        worker="test-worker",
    )
