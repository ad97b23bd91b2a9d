"""``lifeline drill …``: list drills, print a drill's report, export its figures and the corrective actions."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from core import db
from core.directory.models import Organization
from core.errors import LifelineError
from core.i18n import gettext
from core.mail import make_mail_backend
from reports import labels, service

LANGUAGES = click.Choice(["ja", "en"])


def _organization_id(slug: str | None) -> int:
    query = select(Organization.id)
    if slug:
        query = query.where(Organization.slug == slug)
    ids = list(db.session.scalars(query.limit(2)))
    if not ids:
        raise click.ClickException(f"no organization {slug!r}" if slug else "no organization yet")
    if len(ids) > 1:
        raise click.ClickException("several organizations exist: choose one with --org SLUG")
    return ids[0]


@click.group("drill", help="Drills, incident records and their printed reports.")
def drill_group() -> None:
    pass


@drill_group.command("list", help="The organization's drills, newest first.")
@click.option("--org", "org_slug", default=None, help="Organization slug (when there are several).")
@click.option("--lang", "language", type=LANGUAGES, default="en")
@with_appcontext
def list_command(org_slug: str | None, language: str) -> None:
    drills = service.list_drills(organization_id=_organization_id(org_slug))
    if not drills:
        click.echo("no drills yet")
        return
    for drill in drills:
        when = drill.actual_start_at or drill.planned_start_at
        click.echo(
            "\t".join(
                [
                    str(drill.id),
                    when.strftime("%Y-%m-%d %H:%M UTC") if when else "-",
                    gettext(labels.STATE_LABELS[drill.state], language=language),
                    gettext(labels.TYPE_LABELS[drill.type], language=language),
                    gettext(labels.SCENARIO_LABELS[drill.scenario], language=language),
                    drill.title,
                ]
            )
        )


@drill_group.command("report", help="Write the printed report of drill ID as an A4 PDF.")
@click.argument("drill_id", type=int)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lang", "language", type=LANGUAGES, default="ja", show_default=True)
@with_appcontext
def report_command(drill_id: int, out: Path, language: str) -> None:
    try:
        drill = service.get_drill(drill_id=drill_id)
        body = service.report_pdf(drill=drill, language=language)
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    out.write_bytes(body)
    click.echo(f"{out} ({len(body) // 1024} KiB)")


@drill_group.command("export-metrics", help="Write drill ID's figures as CSV (UTF-8 with BOM, for Excel).")
@click.argument("drill_id", type=int)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lang", "language", type=LANGUAGES, default="ja", show_default=True)
@with_appcontext
def export_metrics_command(drill_id: int, out: Path, language: str) -> None:
    try:
        drill = service.get_drill(drill_id=drill_id)
        rows = service.metrics_rows(drill=drill, language=language)
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    out.write_bytes(service.csv_bytes(rows))
    click.echo(f"{out}: {len(rows) - 1} figures")


@drill_group.command("export-actions", help="Write the corrective-action list as CSV (UTF-8 with BOM).")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--org", "org_slug", default=None, help="Organization slug (when there are several).")
@click.option("--lang", "language", type=LANGUAGES, default="ja", show_default=True)
@with_appcontext
def export_actions_command(out: Path, org_slug: str | None, language: str) -> None:
    rows = service.actions_rows(organization_id=_organization_id(org_slug), language=language)
    out.write_bytes(service.csv_bytes(rows))
    click.echo(f"{out}: {len(rows) - 1} corrective actions")


@drill_group.command("remind", help="Run the daily job now: plan scheduled drills and send due reminders.")
@with_appcontext
def remind_command() -> None:
    settings = current_app.extensions["lifeline.settings"]
    run = service.run_drill_reminders(mailer=make_mail_backend(settings), base_url=settings.public_base_url)
    db.session.commit()
    click.echo(f"planned {len(run.created)} drill(s), reminded {len(run.reminded)}, {run.mails} e-mail(s)")
