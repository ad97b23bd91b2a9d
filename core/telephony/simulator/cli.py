"""``lifeline simulator``: run the telephone-network simulator (registered by ``core.cli``)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from core.telephony.simulator.scenario import Scenario


@click.command("simulator")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (keep it loopback)."
)
@click.option("--port", default=5050, show_default=True, type=int)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=float,
    help="Virtual seconds per wall second (60: a minute a second).",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON/YAML file saying how each number behaves (see core/telephony/simulator/README.md).",
)
def simulator_command(host: str, port: int, speed: float, scenario: Path | None) -> None:
    """Run a Twilio-compatible telephone network with scripted people."""
    if speed <= 0:
        raise click.BadParameter("must be positive", param_hint="--speed")
    try:
        people = Scenario.load(scenario)
    except (OSError, ValueError) as exc:  # ScenarioError is a ValueError
        raise click.ClickException(f"cannot load the scenario {scenario}: {exc}") from exc

    from core.config import load_settings
    from core.telephony.simulator.app import run_simulator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    click.echo(
        f"Simulator for account {settings.twilio_account_sid} on http://{host}:{port} (speed ×{speed:g})"
    )
    run_simulator(
        host,
        port,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        speed=speed,
        scenario=people,
    )
