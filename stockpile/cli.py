"""``lifeline stockpile …``: plan, status, import and purchase lists from the command line."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy import select

from core import db
from core.directory.models import Organization, Site
from core.i18n import gettext
from stockpile import importer, service
from stockpile.calculator import DEFAULT_DAYS

stockpile_group = AppGroup(
    "stockpile", help="Stockpile: requirements, stock status, lot import, purchase lists."
)

LANGUAGE = click.option(
    "--language", type=click.Choice(["ja", "en"]), default="ja", show_default=True, help="Language of texts."
)
ORGANIZATION = click.option(
    "--organization", "org_slug", default=None, help="Organization slug (default: the only one)."
)


def _organization(org_slug: str | None) -> Organization:
    query = select(Organization)
    if org_slug:
        query = query.where(Organization.slug == org_slug)
    orgs = db.session.scalars(query).all()
    if len(orgs) != 1:
        raise click.ClickException(
            "no such organization" if not orgs else "several organizations: choose one with --organization"
        )
    return orgs[0]


def _site(org_slug: str | None, code: str) -> Site:
    org = _organization(org_slug)
    site = service.find_site(organization_id=org.id, code=code)
    if site is None:
        raise click.ClickException(f"no site {code!r} in {org.slug}")
    return site


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


@stockpile_group.command("plan")
@click.option(
    "--headcount", "people", type=click.IntRange(min=0), help="People to provide for (before visitors)."
)
@click.option("--site", "site_code", help="Use this site's live headcount and its settings.")
@click.option(
    "--days", type=click.IntRange(min=1), default=None, help=f"Days to last (default {DEFAULT_DAYS})."
)
@click.option("--visitors", type=str, default=None, help="Visitor ratio on top of the people, e.g. 0.1.")
@click.option("--extra", type=click.IntRange(min=0), default=None, help="Further people, e.g. contractors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@ORGANIZATION
@LANGUAGE
def plan_command(
    people: int | None,
    site_code: str | None,
    days: int | None,
    visitors: str | None,
    extra: int | None,
    as_json: bool,
    org_slug: str | None,
    language: str,
) -> None:
    """What to keep in stock: per item, the quantity for the headcount and days.

    With --headcount and no --organization the standard catalogue is used and there are no visitors unless
    --visitors is given; with --site the site's staff count, visitor ratio, extra people and days apply.
    """
    if (people is None) == (site_code is None):
        raise click.UsageError("give either --headcount or --site")
    ratio: Decimal | None = None
    if visitors is not None:
        try:
            ratio = Decimal(importer.normalize(visitors).rstrip("%")) / (100 if "%" in visitors else 1)
        except InvalidOperation:
            ratio = Decimal(-1)
        if not ratio.is_finite() or ratio < 0:
            raise click.BadParameter(f"{visitors!r} is not a ratio such as 0.1", param_hint="--visitors")
    site = None
    if site_code is not None:
        site = _site(org_slug, site_code)
        plan = service.plan_for_site(site=site, days=days, visitor_ratio=ratio, extra_people=extra)
    else:
        assert people is not None
        items = None
        if org_slug:
            org = _organization(org_slug)
            items = [service.as_item(row) for row in service.active_items(organization_id=org.id)]
        kwargs: dict[str, Any] = {} if items is None else {"items": items}
        plan = service.plan_for_headcount(
            people=people,
            days=days or DEFAULT_DAYS,
            visitor_ratio=ratio or Decimal(0),
            extra_people=extra or 0,
            **kwargs,
        )
    db.session.commit()  # keeps a catalogue seeded on first use
    if as_json:
        _echo_json(
            {
                "site": site.code if site else None,
                "staff": plan.staff,
                "visitor_ratio": service.json_number(plan.visitor_ratio),
                "extra_people": plan.extra_people,
                "headcount": plan.headcount,
                "days": plan.days,
                "items": [
                    {
                        "item": req.item.key,
                        "name": req.item.name(language),
                        "unit": req.unit,
                        "quantity": req.quantity,
                    }
                    for req in plan.requirements
                ],
            }
        )
        return
    who = f"{site.code}: " if site else ""
    click.echo(f"{who}{plan.headcount} people × {plan.days} days")
    for req in plan.requirements:
        click.echo(f"  {req.item.name(language)}\t{service.format_quantity(req.quantity)} {req.unit}")


@stockpile_group.command("status")
@click.option("--site", "site_code", required=True)
@click.option(
    "--date", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Status as of."
)
@click.option("--months", type=click.IntRange(min=0), default=None, help="Expiry horizon (default: site's).")
@click.option("--json", "as_json", is_flag=True)
@ORGANIZATION
@LANGUAGE
def status_command(
    site_code: str, as_of: Any, months: int | None, as_json: bool, org_slug: str | None, language: str
) -> None:
    """Requirement against usable stock per item, expiring lots, rotation plan and concentration warnings."""
    site = _site(org_slug, site_code)
    status = service.site_status(
        site=site, today=as_of.date() if as_of else None, expiring_within_months=months
    )
    db.session.commit()
    data = service.status_as_dict(status, language=language)
    if as_json:
        _echo_json(data)
        return
    click.echo(f"{site.code} {site.name} — {data['as_of']}: {data['headcount']} people × {data['days']} days")
    for item in data["items"]:
        flag = "SHORT" if item["shortfall"] else "ok"
        click.echo(
            f"  {item['name']}: {item['usable']}/{item['required']} {item['unit']}  {flag}"
            + (f"  ({item['days_covered']} days)" if item["days_covered"] is not None else "")
        )
    for lot in data["expiring"]:
        click.echo(
            f"  expiring {lot['expires_on']}: {lot['quantity']} {lot['unit']} {lot['item']} @ {lot['location']}"
        )
    for warning in data["concentration_warnings"]:
        click.echo(f"  {warning['percent']} % of {warning['item']} is in {warning['location']}")


@stockpile_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and show what would be imported.")
@click.option("--skip-invalid", is_flag=True, help="Import the good rows even if some rows are bad.")
@click.option("--site", "default_site", default="", help="Site for rows (or files) without a site code.")
@click.option("--json", "as_json", is_flag=True)
@ORGANIZATION
@LANGUAGE
def import_command(
    file: Path,
    dry_run: bool,
    skip_invalid: bool,
    default_site: str,
    as_json: bool,
    org_slug: str | None,
    language: str,
) -> None:
    """Import lots from a CSV file (site_code,item,quantity,unit,location,expiry_date,note or 拠点,品目,…).

    Any bad row means nothing is imported (exit code 1) unless --skip-invalid.
    """
    org = _organization(org_slug)
    result = service.import_lots(
        organization_id=org.id,
        data=file.read_bytes(),
        allowed_site_ids=None,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        default_site_code=default_site,
        actor="cli",
    )

    def translate(message: str, **params: Any) -> str:
        return gettext(message, language, **params)

    problems = [{"line": p.line, "reason": p.text(translate)} for p in result.problems]
    if result.imported:
        db.session.commit()
    else:
        db.session.rollback()
    if as_json:
        _echo_json(
            {
                "encoding": result.encoding,
                "dry_run": dry_run,
                "valid_rows": len(result.lots),
                "imported": result.imported,
                "problems": problems,
            }
        )
    else:
        for problem in problems:
            click.echo(f"line {problem['line']}: {problem['reason']}", err=True)
        if dry_run:
            click.echo(f"dry run: {result.would_import} lots would be imported ({len(problems)} problems)")
        else:
            click.echo(f"{result.imported} lots imported ({len(problems)} problems)")
    if result.blocked:
        raise click.exceptions.Exit(1)


@stockpile_group.command("purchase-list")
@click.option("--site", "site_code", default=None, help="One site (default: all sites).")
@click.option("--format", "fmt", type=click.Choice(["csv", "pdf"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@ORGANIZATION
@LANGUAGE
def purchase_list_command(
    site_code: str | None, fmt: str, output: Path, org_slug: str | None, language: str
) -> None:
    """Write the purchase list (shortfalls and replacements of expiring stock) as CSV or PDF."""
    org = _organization(org_slug)
    if site_code:
        site = _site(org.slug, site_code)
        statuses = [service.site_status(site=site)]
        scope = f"{site.code} {site.name}"
    else:
        statuses = service.statuses_for(organization_id=org.id, site_ids=None)
        scope = gettext("All sites ({count})", language, count=len(statuses))
    db.session.commit()

    def translate(message: str, **params: Any) -> str:
        return gettext(message, language, **params)

    lines = service.purchase_lines(statuses, language=language, translate=translate)
    if fmt == "csv":
        output.write_bytes(service.purchase_list_csv(lines, language=language))
    else:
        output.write_bytes(service.purchase_list_pdf(statuses, lines, scope=scope, translate=translate))
    click.echo(f"{len(lines)} lines written to {output}")
