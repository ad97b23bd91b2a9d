"""``lifeline broadcast …``: start, watch, close and export broadcasts from a shell."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from core import db
from core.directory.models import Organization
from core.errors import LifelineError
from ivr import service
from ivr.views import csv_lines, encode_csv

ACTOR = "cli"


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


@click.group("broadcast", help="Safety-confirmation broadcasts.")
def broadcast_group() -> None:
    pass


@broadcast_group.command("start", help="Start a broadcast; prints its id.")
@click.option("--template", "template", required=True, help="earthquake, tsunami, heavy_rain, …")
@click.option("--all", "everyone", is_flag=True, help="Everyone in the organization.")
@click.option("--site", "sites", multiple=True, help="Site code (repeatable).")
@click.option("--department", "departments", multiple=True, help="Department name (repeatable).")
@click.option(
    "--prefecture", "prefectures", multiple=True, help="Prefecture code of work or home (repeatable)."
)
@click.option("--drill", is_flag=True, help="A drill rather than a real emergency.")
@click.option("--channels", default="", help="Comma-separated: sms,email,voice (default: the template's).")
@click.option(
    "--include-family", is_flag=True, help="Also contact family contacts (drills never do otherwise)."
)
@click.option("--org", "org_slug", default=None, help="Organization slug (when there are several).")
@with_appcontext
def start(
    template: str,
    everyone: bool,
    sites: tuple[str, ...],
    departments: tuple[str, ...],
    prefectures: tuple[str, ...],
    drill: bool,
    channels: str,
    include_family: bool,
    org_slug: str | None,
) -> None:
    audience = {"everyone": everyone, "sites": sites, "departments": departments, "prefectures": prefectures}
    try:
        broadcast = service.start_broadcast(
            organization_id=_organization_id(org_slug),
            template=template,
            audience=audience,
            mode="drill" if drill else "real",
            channels=[c.strip() for c in channels.split(",") if c.strip()] or None,
            include_family=True if include_family else None,
            origin="cli",
            actor=ACTOR,
        )
        db.session.commit()
    except LifelineError as exc:
        db.session.rollback()
        raise click.ClickException("; ".join(getattr(exc, "errors", [str(exc)]))) from exc
    click.echo(broadcast.id)


@broadcast_group.command("status", help="Live counts of a broadcast.")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def status(broadcast_id: int, as_json: bool) -> None:
    try:
        data = service.broadcast_status(broadcast_id=broadcast_id)
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"#{data['id']} {data['title']} ({data['mode']}) — {data['state']}")
    click.echo(
        f"recipients {data['recipients']}  answered {data['answered']}  "
        f"in progress {data['in_progress']}  unreached {data['unreached']}"
    )
    for question, counts in data["by_answer"].items():
        click.echo(f"  {question}: " + "  ".join(f"{k}={v}" for k, v in counts.items()))


@broadcast_group.command("close", help="Close a broadcast: no more sends, no more answers.")
@click.argument("broadcast_id", type=int)
@with_appcontext
def close(broadcast_id: int) -> None:
    try:
        broadcast = service.close_broadcast(broadcast_id=broadcast_id, actor=ACTOR)
        db.session.commit()
    except LifelineError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    click.echo(f"broadcast {broadcast.id} {broadcast.state.value}")


@broadcast_group.command("export", help="Write the answers as CSV (UTF-8 with BOM, or --cp932).")
@click.argument("broadcast_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--cp932", is_flag=True, help="Shift_JIS for older Excel.")
@with_appcontext
def export(broadcast_id: int, file: Path, cp932: bool) -> None:
    try:
        broadcast = service.get_broadcast(broadcast_id=broadcast_id)
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    scenario = service.snapshot(broadcast)
    with file.open("wb") as fh:
        for chunk in encode_csv(csv_lines(broadcast_id, None, scenario), "cp932" if cp932 else "utf-8"):
            fh.write(chunk)
    click.echo(f"written {file}")


@broadcast_group.command("dispatch", help="Run the dispatcher once in this process (what the worker does).")
@with_appcontext
def dispatch_once() -> None:
    from ivr import dispatch, tasks

    report = dispatch.run(out=tasks.outbound())
    db.session.commit()
    click.echo(f"advanced {report.advanced}, placed {report.placed}, failed {report.failed}")


@click.group("spool", help="Answers kept while the database was unreachable (see ivr/spool.py).")
def spool_group() -> None:
    pass


@spool_group.command("status", help="How many entries wait to be stored, and how many were rejected.")
@with_appcontext
def spool_status() -> None:
    from ivr import spool

    click.echo(json.dumps(spool.pending_count(), indent=2))


@spool_group.command("replay", help="Store the spooled entries now (the worker also does it every 10 s).")
@with_appcontext
def spool_replay() -> None:
    from ivr import spool

    report = spool.replay()
    click.echo(json.dumps(report.as_dict(), indent=2))
    if not report.complete:
        raise click.ClickException(
            "not everything could be stored yet (database unreachable, or a replay running)"
        )
