"""``lifeline route …`` and ``lifeline site …``: routing from the command line (same rules as the board)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from flask.cli import with_appcontext

from continuity import service
from continuity.routing import RoutingDecision, SiteState, zone
from core import db
from core.errors import LifelineError
from core.time import utcnow


def explanation(chain: list[RoutingDecision]) -> dict[str, Any]:
    """The decision now (as ``RoutingDecision.explain``) plus ``then``: what is tried next, in order, each
    time the chosen target does not take the call."""
    data = chain[0].explain()
    data["then"] = [
        {
            "position": decision.chosen.position,
            "kind": decision.chosen.target.kind.value,
            "site": decision.chosen.target.site_code,
            "queue": decision.chosen.target.queue_name,
            "reason": decision.chosen.reason,
        }
        for decision in chain[1:]
        if decision.chosen is not None
    ]
    return data


def _at(text: str | None, timezone: str) -> datetime:
    if not text:
        return utcnow()
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO time (e.g. 2026-01-01T03:00+09:00)", param_hint="--at"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=zone(timezone))


@click.group("route", help="Inbound call routing.")
def route_group() -> None:
    pass


@route_group.command("explain", help="Where a call to LINE would go (now, or --at), and why.")
@click.option("--line", "number", required=True, help="The line's number, E.164 (e.g. +15550100150).")
@click.option("--at", "at_text", default=None, help="ISO time; without a zone, the plan's time zone.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def route_explain(number: str, at_text: str | None, as_json: bool) -> None:
    line = service.line_by_number(number=number.strip())
    if line is None:
        raise click.ClickException(f"no line {number}")
    try:
        plan = service.plan_of_line(line)
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    chain = service.explain_chain(line=line, at=_at(at_text, plan.timezone))
    data = explanation(chain)
    db.session.rollback()  # read only; on SQLite an open transaction would hold the write lock
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(
        f"{data['line']} at {data['at']} — {data['mode']}" + (f" ({data['plan']})" if data["plan"] else "")
    )
    for note in data["notes"]:
        click.echo(f"  note: {note}")
    for target in data["targets"]:
        where = target["site"] or target["queue"] or ""
        mark = "→" if data["chosen"] and target["position"] == data["chosen"]["position"] else " "
        click.echo(
            f" {mark} {target['position']:>2} {target['kind']:<17} {where:<8} {target['decision']:<4} {target['reason']}"
        )
    if data["then"]:
        click.echo(
            "  if nobody takes it: "
            + " → ".join(f"{t['kind']} {t['site'] or ''}".strip() for t in data["then"])
        )


@route_group.command("plan-save", help="Create or replace the routing plan NAME from a JSON document.")
@click.argument("name")
@click.argument("document", type=click.File("r", encoding="utf-8"))
@click.option("--organization", "org_slug", default=None)
@with_appcontext
def route_plan_save(name: str, document: Any, org_slug: str | None) -> None:
    try:
        definition = json.load(document)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"not JSON: {exc}") from exc
    organization_id = _organization(org_slug)
    existing = next((p for p in service.plans_of(organization_id=organization_id) if p.name == name), None)
    try:
        plan = service.save_plan(
            organization_id=organization_id, name=name, definition=definition, actor="cli", plan=existing
        )
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"plan {plan.name} saved (id {plan.id})")


@route_group.command("line-add", help="Make NUMBER (E.164) an inbound line routed by --plan.")
@click.argument("number")
@click.option("--name", required=True)
@click.option("--plan", "plan_name", default=None, help="Routing plan name (not for --agent-login).")
@click.option("--agent-login", is_flag=True, help="A line home agents call to go available or away.")
@click.option("--organization", "org_slug", default=None)
@with_appcontext
def route_line_add(
    number: str, name: str, plan_name: str | None, agent_login: bool, org_slug: str | None
) -> None:
    from continuity.models import LineKind

    organization_id = _organization(org_slug)
    plan = next((p for p in service.plans_of(organization_id=organization_id) if p.name == plan_name), None)
    if plan_name and plan is None:
        raise click.ClickException(f"no plan {plan_name}")
    try:
        line = service.add_line(
            organization_id=organization_id,
            number=number.strip(),
            name=name,
            plan=plan,
            kind=LineKind.AGENT_LOGIN if agent_login else LineKind.CUSTOMER,
            actor="cli",
        )
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"line {line.number} added")


@click.group("site", help="Sites' routing state.")
def site_group() -> None:
    pass


def _organization(slug: str | None) -> int:
    orgs = service.organizations(slug=slug)
    if len(orgs) != 1:
        raise click.ClickException(
            "no such organization" if not orgs else "several organizations: choose one with --organization"
        )
    return orgs[0].id


@site_group.command("set-state", help="Force a site's state: normal, degraded, down or evacuated.")
@click.argument("code")
@click.argument("state", type=click.Choice([s.value for s in SiteState]))
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@click.option("--organization", "org_slug", default=None)
@with_appcontext
def site_set_state(code: str, state: str, reason: str, org_slug: str | None) -> None:
    try:
        site = service.site_by_code(organization_id=_organization(org_slug), code=code)
        change = service.declare_site_state(site=site, state=SiteState(state), reason=reason, actor="cli")
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"{change.summary} (change #{change.id}; undo on the board)")


@site_group.command(
    "token", help="A new heartbeat token for a site (printed once; the old one stops working)."
)
@click.argument("code")
@click.option("--organization", "org_slug", default=None)
@with_appcontext
def site_token(code: str, org_slug: str | None) -> None:
    try:
        site = service.site_by_code(organization_id=_organization(org_slug), code=code)
        token = service.generate_site_token(site=site, actor="cli")
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(token)


@site_group.command(
    "agent-add", help="A seat at site CODE: NAME and the ENDPOINT to dial (E.164, client:…, sip:…)."
)
@click.argument("code")
@click.argument("name")
@click.argument("endpoint")
@click.option("--organization", "org_slug", default=None)
@with_appcontext
def site_agent_add(code: str, name: str, endpoint: str, org_slug: str | None) -> None:
    try:
        site = service.site_by_code(organization_id=_organization(org_slug), code=code)
        agent = service.add_agent(site=site, name=name, endpoint=endpoint, actor="cli")
    except LifelineError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"agent {agent.name} at {code}: {agent.endpoint}")


@site_group.command(
    "demo-heartbeats",
    help="Embedded default only: register the demo lines with the simulator and send the demo sites' heartbeats. "
    "Put site codes (one per line) in instance/demo_silent_sites to stop a site's heartbeats.",
)
@click.option("--interval", default=20.0, show_default=True, type=float, help="Seconds between heartbeats.")
@click.option("--once", is_flag=True, help="Send one round and stop.")
def site_demo_heartbeats(interval: float, once: bool) -> None:
    import contextlib
    import json
    import signal
    import time

    import requests
    from flask import current_app

    from continuity.demo import SILENT_FILE, TOKENS_FILE, simulator_numbers

    settings = current_app.extensions["lifeline.settings"]
    tokens_path = settings.instance_dir / TOKENS_FILE
    if not tokens_path.exists():
        raise click.ClickException(f"no demo site tokens in {tokens_path}: run `lifeline demo-data` first")
    tokens: dict[str, str] = json.loads(tokens_path.read_text(encoding="utf-8"))
    base = settings.public_base_url.rstrip("/")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    http = requests.Session()
    registered = False
    while not stopping:
        if not registered:
            try:
                for number in simulator_numbers(base):
                    http.post(f"{settings.simulator_url.rstrip('/')}/_sim/numbers", json=number, timeout=5)
                registered = True
                click.echo(f"demo lines registered with the simulator at {settings.simulator_url}")
            except requests.RequestException:
                # The simulator is still starting: try again in a second rather than a whole interval.
                time.sleep(1)
                continue
        silent_path = settings.instance_dir / SILENT_FILE
        silent = set(silent_path.read_text(encoding="utf-8").split()) if silent_path.exists() else set()
        for code, token in tokens.items():
            if code in silent:
                continue
            with contextlib.suppress(requests.RequestException):  # the web app may still be starting
                http.post(
                    f"{base}/api/v1/sites/{code}/heartbeat",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5,
                )
        if once:
            break
        deadline = time.monotonic() + interval
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.5)
