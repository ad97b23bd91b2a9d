"""``lifeline jma``: read a bulletin, replay bulletins as if they had just arrived (drills, tests), poll now.

Exit codes: 0 done; 1 something failed while acting (a feed down, a bulletin that could not be processed);
2 bad input (a file that cannot be read or is not a JMA bulletin, a bad option) — and then nothing was done.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click
from flask import current_app
from flask.cli import AppGroup

from core import db
from core.errors import NotFound
from core.time import utcnow
from ivr.jma import poller, service
from ivr.jma.models import JmaDecision
from ivr.jma.parse import Bulletin, BulletinError, parse_bulletin
from ivr.jma.rules import Decision

jma_group = AppGroup(
    "jma", help="JMA bulletins: parse one, replay some through the rules, poll the feeds now."
)

BAD_INPUT = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(BAD_INPUT)


def _read(path: Path) -> tuple[bytes, Bulletin]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        return data, parse_bulletin(data)
    except BulletinError as exc:
        _fail(f"{path}: {exc}")


def _summary(bulletin: Bulletin) -> list[str]:
    lines = [
        f"{bulletin.title} ({bulletin.data_type or '?'}) — {bulletin.status} / {bulletin.info_type}",
        f"  event: {bulletin.event_key}   reported: {bulletin.report_time.isoformat()}   kind: {bulletin.kind}",
    ]
    if bulletin.headline:
        lines.append(f"  {bulletin.headline}")
    if bulletin.max_intensity or bulletin.prefectures:
        places = ", ".join(f"{p.name} {p.max_intensity or '?'}" for p in bulletin.prefectures[:12])
        more = f" (+{len(bulletin.prefectures) - 12})" if len(bulletin.prefectures) > 12 else ""
        lines.append(f"  max intensity {bulletin.max_intensity or '-'}: {places}{more}")
    for area in bulletin.tsunami_areas:
        if area.severity:
            lines.append(f"  {area.kind}: {area.name} ({area.code})")
    for warning in bulletin.warnings:
        lines.append(f"  {warning.name} ({warning.code}): {', '.join(warning.kinds)}")
    return lines


@jma_group.command("parse", help="Print what a bulletin says (--json: the normalised document).")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print Bulletin.to_json_dict() as JSON.")
def parse_command(file: Path, as_json: bool) -> None:
    _, bulletin = _read(file)
    if as_json:
        click.echo(json.dumps(bulletin.to_json_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(_summary(bulletin)))


def _decision_line(organization: str, decision: Decision | JmaDecision) -> str:
    if isinstance(decision, JmaDecision):
        audience = service.audience_from_json(decision.audience).describe()
        mode = decision.mode
    else:
        audience = decision.audience.describe()
        mode = decision.real_or_drill
    what = f"{decision.action.upper()} {decision.template or '-'}"
    if mode:
        what += f" [{mode}]"
    if decision.action != "suppress" and audience != "nobody":
        what += f" → {audience}"
    return f"  {organization}: {what}: {decision.reason}"


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date and time", param_hint="--now") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a UTC offset, e.g. +09:00", param_hint="--now")
    return moment


@jma_group.command(
    "replay",
    help="Run bulletins through the rules as if they had just arrived, in the order given: store them and act "
    "(start, hold, widen, cancel …). --dry-run only prints the decisions.",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the decisions; store and send nothing.")
@click.option("--organization", "org_slug", default=None, help="Only this organization (slug); default: all.")
@click.option(
    "--now", "now_text", default=None, help="The time to act at (ISO 8601 with offset); default: now."
)
def replay_command(
    files: tuple[Path, ...], dry_run: bool, org_slug: str | None, now_text: str | None
) -> None:
    now = _parse_now(now_text)
    # Every file is read and parsed before anything happens: a bad file in the list changes nothing.
    loaded = [(path, *_read(path)) for path in files]
    try:
        orgs = service.organizations(slug=org_slug)
    except NotFound as exc:
        raise click.BadParameter(str(exc), param_hint="--organization") from None
    if not orgs:
        raise click.ClickException("no organization yet: run `lifeline demo-data` first")
    slugs = {org.id: org.slug for org in orgs}
    ids = [org.id for org in orgs]

    if dry_run:
        results = service.dry_run(
            bulletins=[bulletin for _, _, bulletin in loaded], now=now, organization_ids=ids
        )
        db.session.rollback()
        for path, _, bulletin in loaded:
            click.echo(f"{path.name}: {service.bulletin_label(bulletin)} ({bulletin.event_key}) [dry run]")
            for result in results:
                if result.bulletin is bulletin:
                    for decision in result.decisions:
                        click.echo(_decision_line(result.organization, decision))
        return

    failed = False
    for path, data, bulletin in loaded:
        try:
            row, records = service.replay_bulletin(data=data, name=path.name, now=now, organization_ids=ids)
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            click.echo(f"{path.name}: FAILED: {type(exc).__name__}: {exc}", err=True)
            failed = True
            continue
        click.echo(
            f"{path.name}: {service.bulletin_label(bulletin)} ({bulletin.event_key}) stored as #{row.id}"
        )
        for record in records:
            click.echo(_decision_line(slugs.get(record.organization_id, "?"), record))
            if record.outcome:
                click.echo(f"      done: {record.outcome}")
    if failed:
        raise click.exceptions.Exit(1)


@jma_group.command("poll", help="Poll the JMA feeds once now (the worker does this every minute).")
@click.option("--feed-base", default=None, help="Feed base URL (default: LIFELINE_JMA_FEED_BASE).")
@click.option(
    "--timeout", default=poller.TIMEOUT_S, show_default=True, type=float, help="Seconds per request."
)
def poll_command(feed_base: str | None, timeout: float) -> None:
    settings = current_app.extensions["lifeline.settings"]
    base = feed_base or settings.jma_feed_base
    if not base:
        raise click.UsageError("no feed to poll: set LIFELINE_JMA_FEED_BASE or pass --feed-base")
    reports = poller.poll(feed_base=base, timeout=timeout)
    for report in reports:
        click.echo(report.describe())
    if any(report.outcome == "failed" or report.failed for report in reports):
        raise click.exceptions.Exit(1)
