"""Private contact values never show: not on a page, in an export, an API response, a PDF, the CLI, nor a log line.

A full scenario runs against the live app and the telephone-network simulator: a person with a private phone and
e-mail, family contacts and a home-agent number is reached on all of them (a drill paging family, a contact check,
the home-agent pool), answers on the private phone, and the results go everywhere they go. Then everything each
role (and an anonymous visitor with the person's own links) can open is searched for those values — as written,
as digits only, and in Japanese national format. The network did receive them: the test is not vacuous.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from core import db
from core.auth.models import ApiToken
from core.auth.service import create_api_token
from core.directory.models import Staff
from core.mail import SimulatorMailBackend
from core.pacing import UnlimitedTokenBucket
from core.telephony import make_backend
from core.telephony.simulator.app import create_simulator_app, simulator_of
from core.telephony.simulator.clock import ManualClock
from core.time import utcnow
from ivr import dispatch, service
from tests.security.conftest import (
    FAMILY_EMAIL,
    FAMILY_PHONE,
    HOME_AGENT_NUMBER,
    PRINCIPALS,
    PRIVATE_EMAIL,
    PRIVATE_PHONE,
    build_installation,
    signed_in,
)
from tests.security.test_forms_and_headers import crawl

SECRETS = (PRIVATE_PHONE, PRIVATE_EMAIL, FAMILY_PHONE, FAMILY_EMAIL, HOME_AGENT_NUMBER)


def forms_of(value: str) -> set[str]:
    """How a value could show: as written, and for a phone digits only (+81…), national (090…) and 090-0000-4711."""
    if "@" in value:
        return {value.lower()}
    digits = value.lstrip("+")
    national = "0" + digits[2:]
    return {value, digits, national, f"{national[:3]}-{national[3:7]}-{national[7:]}"}


class Served:
    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture()
def network(live_app: Any) -> Iterator[tuple[Any, ManualClock, Served]]:
    app = live_app.app
    settings = app.extensions["lifeline.settings"]
    clock = ManualClock(start=utcnow().timestamp())
    people = {
        PRIVATE_PHONE: {
            "answer_call": {"after_s": 3, "digits": ["2", "1", "3", "1"]},
            "sms_link": {"after_s": 20},
        },
        FAMILY_PHONE: "voicemail",
        PRIVATE_EMAIL: {"email_link": {"after_s": 30, "answers": ["1", "1"]}},
    }
    simulator = create_simulator_app(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        scenario={"seed": 3, "default": "never", "numbers": people},
        clock=clock,
    )
    served = Served(simulator)
    simulator_of(simulator).base_url = served.url
    app.extensions["lifeline.settings"] = replace(
        settings, twilio_api_base=served.url, simulator_url=served.url
    )
    try:
        yield app, clock, served
    finally:
        app.extensions["lifeline.settings"] = settings
        simulator_of(simulator).stop()
        served.stop()


def _text(response: Any, tmp_path: Path) -> str:
    data = response.get_data()
    if response.mimetype == "application/pdf":
        if shutil.which("pdftotext") is None:
            pytest.skip("pdftotext (poppler-utils) is needed to read the PDFs back")
        path = tmp_path / "out.pdf"
        path.write_bytes(data)
        return subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    if response.mimetype.startswith("image/"):
        return ""
    charset = "cp932" if "shift_jis" in response.headers.get("Content-Type", "").lower() else "utf-8"
    return data.decode(charset, errors="replace")


def _leaks(where: str, text: str) -> list[str]:
    lowered = text.lower()
    return [f"{where}: {form}" for value in SECRETS for form in forms_of(value) if form.lower() in lowered]


@pytest.mark.slow
def test_private_contacts_never_show_anywhere(network: Any, caplog: Any, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    app, clock, served = network
    settings = app.extensions["lifeline.settings"]
    offset = [0.0]

    def now() -> Any:
        return utcnow() + timedelta(seconds=offset[0])

    with app.app_context():
        place = build_installation(app, answered_broadcast=False)
        person = db.session.get(Staff, place.private_person.id)
        from continuity import service as continuity

        continuity.join_home_agent_pool(staff=person, number=HOME_AGENT_NUMBER, settings=settings)
        others = db.session.scalars(
            select(Staff.id).where(Staff.organization_id == place.org.id, Staff.id != person.id).limit(3)
        ).all()
        broadcast = service.start_broadcast(
            organization_id=place.org.id,
            template="earthquake",
            audience={"staff_ids": [person.id, *others]},
            mode="drill",
            include_family=True,
            actor="privacy-test",
            now=now(),
        )
        service.start_broadcast(
            organization_id=place.org.id,
            template="contact_check",
            audience={"staff_ids": [person.id]},
            mode="drill",
            include_family=True,
            actor="privacy-test",
            now=now(),
        )
        api_token = create_api_token(organization_id=place.org.id, name="privacy", actor="privacy-test")
        row = db.session.scalar(select(ApiToken).order_by(ApiToken.id.desc()).limit(1))
        row.scopes = "staff:read staff:write broadcasts:read"
        from reports import service as reports

        drill = reports.create_drill(
            organization_id=place.org.id,
            type="notification_test",
            scenario="earthquake",
            title="Privacy drill",
            actor="privacy-test",
        )
        reports.link_broadcast(drill=drill, broadcast_id=broadcast.id, actor="privacy-test")
        broadcast_id, drill_id, self_token = broadcast.id, drill.id, person.self_service_token
        db.session.commit()
        out = dispatch.Outbound(
            backend=make_backend(settings),
            mailer=SimulatorMailBackend(simulator_url=served.url, sender=settings.mail_from),
            bucket=UnlimitedTokenBucket(),
            settings=settings,
            worker="privacy",
        )
        for _ in range(25):  # every step of the ladder, and the follow-ups
            dispatch.run(out=out, now=now)
            db.session.remove()
            clock.advance(60)
            offset[0] += 60
        service.message_answered(
            broadcast_id=broadcast_id,
            question_key="safety",
            value="2",
            text="Please join the home-agent pool",
            actor="privacy-test",
            now=now(),
        )
        db.session.commit()
        dispatch.run(out=out, now=now)
        db.session.remove()

    # The network was given every value (so finding none in the app's outputs means something).
    sim = simulator_of_served(served)
    reached = (
        {c["to"] for c in sim("calls")} | {m["to"] for m in sim("messages")} | {m["to"] for m in sim("mail")}
    )
    assert {PRIVATE_PHONE, PRIVATE_EMAIL, FAMILY_PHONE, FAMILY_EMAIL} <= reached

    outputs: list[tuple[str, str]] = []
    for who in PRINCIPALS:
        _, result = crawl(app, place, who)
        outputs += [(f"{who} {url}", _text(response, tmp_path)) for url, response in result.pages.items()]
    admin = signed_in(app, place, "admin")
    crisis = signed_in(app, place, "crisis_manager")
    for client, url in [
        (crisis, f"/broadcasts/{broadcast_id}"),
        (crisis, f"/broadcasts/{broadcast_id}/status.json"),
        (crisis, f"/broadcasts/{broadcast_id}/export.csv"),
        (crisis, f"/broadcasts/{broadcast_id}/export.csv?encoding=cp932"),
        (crisis, f"/drills/{drill_id}"),
        (crisis, f"/drills/{drill_id}/report.pdf?lang=ja"),
        (crisis, f"/drills/{drill_id}/report.pdf?lang=en"),
        (crisis, f"/drills/{drill_id}/metrics.csv"),
        (admin, "/staff/export.csv"),
        (admin, f"/staff/{place.private_person.id}"),
        (admin, "/admin/audit"),
        (signed_in(app, place, "supervisor"), "/continuity"),
        (app.test_client(), f"/me/{self_token}"),
        (app.test_client(), f"/home-agent/{self_token}"),
        (app.test_client(), "/dashboard/live.json"),
    ]:
        response = client.get(url)
        assert response.status_code in (200, 401), (url, response.status_code)
        outputs.append((url, _text(response, tmp_path)))
    api = app.test_client()
    for url in ("/api/v1/staff?per_page=500", f"/api/v1/broadcasts/{broadcast_id}"):
        response = api.get(url, headers={"Authorization": f"Bearer {api_token}"})
        assert response.status_code == 200, response.text
        outputs.append((url, response.text))
    runner = app.test_cli_runner()
    for args in (
        ["broadcast", "status", str(broadcast_id), "--json"],
        ["broadcast", "export", str(broadcast_id), str(tmp_path / "answers.csv")],
        ["staff", "export", str(tmp_path / "staff.csv")],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
        outputs.append(("lifeline " + " ".join(args[:2]), result.output))
    for name in ("answers.csv", "staff.csv"):
        outputs.append((name, (tmp_path / name).read_text(encoding="utf-8-sig", errors="replace")))
    outputs += [
        (f"log {record.name}", record.getMessage() + (record.exc_text or ""))
        for record in caplog.records
        if not record.name.startswith("core.telephony.simulator")  # the carrier may know the numbers
    ]

    leaks = [leak for where, text in outputs for leak in _leaks(where, text)]
    assert not leaks, "private values found:\n" + "\n".join(leaks[:40])
    assert len(outputs) > 100  # the walk did reach the pages


def simulator_of_served(served: Served) -> Any:
    import requests

    def get(what: str) -> list[dict[str, Any]]:
        response = requests.get(f"{served.url}/_sim/{what}", timeout=10)
        response.raise_for_status()
        return list(response.json())

    return get


__all__ = ["re"]
