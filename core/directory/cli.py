"""``lifeline staff import|export`` and ``lifeline demo-data``.

Exit codes of ``staff import``: 0 applied (or a clean dry run; also when ``--skip-invalid`` skipped bad rows),
1 bad rows and nothing applied (or a dry run that found bad rows), 2 the file cannot be read at all.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from core import db
from core.directory import service
from core.directory.importer import FileError, ImportDiff, Mode, RowError
from core.errors import LifelineError


def _organization_id(slug: str | None) -> int:
    try:
        return service.organization_for(slug=slug).id
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc


def _show(value: str | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value or "(empty)"


def _echo_diff(diff: ImportDiff, *, verb: str) -> None:
    for record in diff.added:
        where = ", ".join(x for x in (record.department, record.site) if x)
        click.echo(f"+ {verb} add     {record.employee_id} {record.name}" + (f" ({where})" if where else ""))
    for change in diff.changed:
        fields = "; ".join(f"{c.field}: {_show(c.before)} → {_show(c.after)}" for c in change.changes)
        click.echo(f"~ {verb} change  {change.employee_id} {change.name}: {fields}")
    for removal in diff.removed:
        click.echo(f"- {verb} remove  {removal.employee_id} {removal.name}")
    for name in diff.departments_to_create:
        click.echo(f"* {verb} create department {name}")


def _echo_errors(errors: tuple[RowError, ...]) -> None:
    for e in errors:
        where = f"line {e.line}" + (f" ({e.employee_id})" if e.employee_id else "")
        field = f"{e.field}: " if e.field else ""
        click.echo(f"! {where}: {field}{e.text}", err=True)


@click.group("staff", help="The staff directory: import from and export to HR's CSV files.")
def staff_group() -> None:
    pass


@staff_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only show what would be added, changed and removed.")
@click.option(
    "--mode",
    type=click.Choice(["update", "replace"]),
    default="update",
    show_default=True,
    help="replace also removes everyone who is not in the file.",
)
@click.option("--skip-invalid", is_flag=True, help="Apply the good rows even if some rows are bad.")
@click.option("--encoding", default=None, help="utf-8 or cp932 (Shift_JIS); detected when not given.")
@click.option("--organization", "org_slug", default=None, help="Organization slug (default: the only one).")
@with_appcontext
def staff_import(
    file: Path, dry_run: bool, mode: Mode, skip_invalid: bool, encoding: str | None, org_slug: str | None
) -> None:
    """Import FILE (CSV, keyed on employee id; English or Japanese column names)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        click.echo(f"cannot read {file}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    organization_id = _organization_id(org_slug)
    settings = current_app.extensions["lifeline.settings"]
    try:
        plan = service.plan_csv_import(
            organization_id=organization_id,
            data=data,
            mode=mode,
            encoding=encoding,
            region=settings.default_region,
        )
    except FileError as exc:
        click.echo(f"{file}: {exc.text}", err=True)
        sys.exit(2)

    click.echo(f"{file.name}: {plan.rows_read} rows, {plan.encoding}, {mode} mode")
    refused = bool(plan.errors) and not skip_invalid
    verb = "would" if dry_run or refused else "will"
    _echo_diff(plan.diff, verb=verb)
    _echo_errors(plan.errors)
    counts = plan.diff.counts
    click.echo(
        f"{counts['added']} to add, {counts['changed']} to change, {counts['unchanged']} unchanged, "
        f"{counts['removed']} to remove, {len(plan.bad_lines)} bad rows"
    )
    if dry_run:
        db.session.rollback()
        click.echo("dry run: nothing was changed")
        sys.exit(1 if plan.errors else 0)
    if refused:
        db.session.rollback()
        click.echo(
            f"nothing was imported: {len(plan.bad_lines)} bad rows (fix them, or use --skip-invalid)",
            err=True,
        )
        sys.exit(1)
    applied = service.apply_import(plan=plan, skip_invalid=skip_invalid, actor="cli", source=file.name)
    db.session.commit()
    click.echo(
        f"imported: {applied['added']} added, {applied['changed']} changed, {applied['removed']} removed"
        + (f", {applied['bad_rows']} bad rows skipped" if applied["bad_rows"] else "")
    )


@staff_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--organization", "org_slug", default=None, help="Organization slug (default: the only one).")
@with_appcontext
def staff_export(file: Path, org_slug: str | None) -> None:
    """Write the directory to FILE (UTF-8 with BOM, the import's columns; "-" for standard output)."""
    data = service.export_csv(organization_id=_organization_id(org_slug))
    db.session.rollback()
    if str(file) == "-":
        sys.stdout.buffer.write(data)
        return
    try:
        file.write_bytes(data)
    except OSError as exc:
        click.echo(f"cannot write {file}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    rows = data.count(b"\r\n") - 1
    click.echo(f"{rows} people written to {file}")


@click.command(
    "demo-data", help="Create the demo company, its staff and one demo user per role (idempotent)."
)
@with_appcontext
def demo_data_command() -> None:
    from core.directory.demo import load_demo_data

    settings = current_app.extensions["lifeline.settings"]
    summary = load_demo_data(instance_dir=settings.instance_dir, encryption_key=settings.encryption_key)
    db.session.commit()
    if not summary.changed_anything:
        click.echo(f"demo data already present ({summary.staff_total} staff); nothing changed")
    else:
        click.echo(
            f"demo data: {summary.sites_added} sites, {summary.departments_added} departments, "
            f"{summary.staff_added} staff added ({summary.staff_total} in all), "
            f"{len(summary.users_created)} users created"
            + (", HR-sync API token created" if summary.token_created else "")
        )
    if summary.users_without_password:
        click.echo(
            "these demo users exist but their passwords are not in the credentials file: "
            + ", ".join(summary.users_without_password)
            + " (their passwords cannot be recovered)",
            err=True,
        )
    for line in seed_parts(settings):
        click.echo(line)
    click.echo(f"sign-in details: {summary.credentials_file}")


def seed_parts(settings: Any) -> list[str]:
    """Each part's demo (``<part>.demo.seed_demo(org, settings=...)``, idempotent), in its own transaction."""
    import importlib

    from sqlalchemy import select

    from core.app import _part_available
    from core.directory.demo import ORG_SLUG
    from core.directory.models import Organization

    org = db.session.scalar(select(Organization).where(Organization.slug == ORG_SLUG))
    if org is None:
        return []
    lines: list[str] = []
    for part in current_app.extensions.get("lifeline.parts", ()):
        if not _part_available(f"{part}.demo"):
            continue
        seed = getattr(importlib.import_module(f"{part}.demo"), "seed_demo", None)
        if seed is None:
            continue
        try:
            lines.extend(seed(org, settings=settings) or [])
            db.session.commit()
        except Exception as exc:  # one part's demo must not keep the others from loading
            db.session.rollback()
            lines.append(f"{part}: demo data not loaded ({exc})")
    return lines
