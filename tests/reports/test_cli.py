"""``lifeline drill …`` from a shell."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from core.auth.models import Role
from reports import service
from tests.factories import make_user
from tests.reports.conftest import T0, answer, recipients, start_drill_broadcast


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


def linked_drill(world):
    broadcast = start_drill_broadcast(world)
    for n, person in enumerate(recipients(broadcast)[:9]):
        answer(person, after_seconds=40 * (n + 1))
    drill = service.create_drill(
        organization_id=world.org.id,
        type="notification_test",
        scenario="earthquake",
        title="四月 地震想定訓練",
        planned_start_at=T0,
        actor="t",
    )
    service.link_broadcast(drill=drill, broadcast_id=broadcast.id, actor="t")
    return drill


def test_drill_report_writes_the_pdf(runner, world, tmp_path):
    drill = linked_drill(world)
    out = tmp_path / "drill.pdf"
    result = runner.invoke(args=["drill", "report", str(drill.id), "--out", str(out), "--lang", "ja"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
        assert "四月 地震想定訓練" in text and "75.0 %" in text  # 9 of 12


def test_drill_report_of_an_unknown_drill_fails_clearly(runner, world, tmp_path):
    result = runner.invoke(args=["drill", "report", "999999", "--out", str(tmp_path / "x.pdf")])
    assert result.exit_code != 0
    assert "no drill 999999" in result.output
    assert not (tmp_path / "x.pdf").exists()


def test_drill_list(runner, world):
    linked_drill(world)
    result = runner.invoke(args=["drill", "list", "--org", world.org.slug])
    assert result.exit_code == 0, result.output
    assert "四月 地震想定訓練" in result.output and "Notification test" in result.output


def test_export_actions_and_metrics(runner, world, tmp_path):
    drill = linked_drill(world)
    service.add_action(drill=drill, title="連絡先の再登録", owner="総務部", actor="t")
    actions = tmp_path / "actions.csv"
    result = runner.invoke(args=["drill", "export-actions", str(actions), "--org", world.org.slug])
    assert result.exit_code == 0, result.output
    assert actions.read_bytes().startswith(b"\xef\xbb\xbf")
    assert "連絡先の再登録" in actions.read_text(encoding="utf-8-sig")
    figures = tmp_path / "metrics.csv"
    result = runner.invoke(args=["drill", "export-metrics", str(drill.id), str(figures), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "Answer rate,75.0,percent" in figures.read_text(encoding="utf-8-sig")


def test_remind_runs_the_daily_job(runner, world):
    make_user(world.org, Role.CRISIS_MANAGER)
    service.save_schedule(organization_id=world.org.id, actor="t")
    result = runner.invoke(args=["drill", "remind"])
    assert result.exit_code == 0, result.output
    assert "planned 1 drill(s)" in result.output


def test_the_daily_task_is_scheduled(app):
    from core.celery import celery_app

    entry = celery_app.conf.beat_schedule["reports.drill_reminders"]
    assert entry["task"] == "reports.drill_reminders" and entry["schedule"] == 24 * 3600.0
    assert "reports.drill_reminders" in celery_app.tasks


def test_the_task_plans_the_scheduled_drill(app, world):
    from reports.tasks import drill_reminders_task

    service.save_schedule(organization_id=world.org.id, actor="t")
    result = drill_reminders_task.apply().get()
    assert len(result["created"]) == 1
