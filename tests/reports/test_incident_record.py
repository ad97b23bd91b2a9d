"""A real incident gets the same record, timeline and printed report as a drill."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta

import pytest

from reports import service
from reports.models import DrillState, RecordKind
from reports.pdf import render_pdf
from tests.reports.conftest import T0, answer, recipients

incidents_service = pytest.importorskip("incidents.service", reason="the incidents part is not installed")


def test_an_incident_record_carries_its_timeline_figures_and_safety_call(world, tmp_path):
    from ivr import service as ivr_service

    incident = incidents_service.declare_incident(
        organization_id=world.org.id,
        type="earthquake",
        severity="major",
        title="千葉県北西部地震",
        site_ids=[world.sites["TKY"].id],
        started_at=T0,
        actor="cm@example.com",
        now=T0 + timedelta(minutes=2),
    )
    broadcast = ivr_service.start_broadcast(
        organization_id=world.org.id,
        template="earthquake",
        audience={"everyone": True},
        actor="cm@example.com",
        now=T0 + timedelta(minutes=3),
    )
    for n, person in enumerate(recipients(broadcast)[:10]):
        answer(person, after_seconds=60 * (n + 1), start=T0 + timedelta(minutes=3))
    incidents_service.record_decision(
        incident=incident, text="大阪へ回線を切替", actor="cm@example.com", now=T0 + timedelta(minutes=20)
    )
    incidents_service.close_incident(
        incident=incident, summary="全員の無事を確認", actor="cm@example.com", now=T0 + timedelta(hours=1)
    )

    record = service.open_incident_record(organization_id=world.org.id, incident_id=incident.id, actor="cm")
    assert record.kind is RecordKind.INCIDENT and record.state is DrillState.COMPLETED
    assert (record.actual_start_at, record.actual_end_at) == (T0, T0 + timedelta(hours=1))
    assert (
        service.open_incident_record(organization_id=world.org.id, incident_id=incident.id, actor="cm")
        is record
    )
    # A real incident links its real broadcast.
    service.link_broadcast(drill=record, broadcast_id=broadcast.id, actor="cm")

    report = service.build_report(drill=record, language="ja")
    assert report.kind == "incident"
    assert report.broadcast is not None and report.broadcast.answered == 10
    assert any(f.value == "10" for f in report.incident_figures)
    texts = [row.text for row in report.timeline]
    assert any("大阪へ回線を切替" in t for t in texts)
    assert texts == [row.text for row in sorted(report.timeline, key=lambda r: r.at)]

    if shutil.which("pdftotext"):
        path = tmp_path / "incident.pdf"
        path.write_bytes(render_pdf(report, service.translator("ja")))
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "インシデント報告書" in text and "千葉県北西部地震" in text


def test_another_organizations_incident_cannot_be_recorded(world):
    from core.errors import NotFound
    from tests.factories import make_org

    other = make_org()
    incident = incidents_service.declare_incident(
        organization_id=other.id, type="earthquake", severity="minor", actor="x", now=T0
    )
    with pytest.raises(NotFound):
        service.open_incident_record(organization_id=world.org.id, incident_id=incident.id, actor="cm")
