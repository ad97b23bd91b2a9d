"""The ``lifeline`` command: Flask's CLI for the app (``run``, ``routes``, ``shell``) plus Lifeline's own commands.

Every command reads the same ``LIFELINE_*`` environment variables as the web app and the worker.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from core.config import PROJECT_ROOT, load_settings

MIGRATIONS = PROJECT_ROOT / "migrations"


def _make_app() -> Flask:
    from core.app import create_app

    return create_app()


def alembic_config(database_url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url or load_settings().database_url)
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade_database(database_url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


@click.group("db", help="Database schema (Alembic migrations).")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Apply migrations up to REVISION (default: head).")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    upgrade_database(revision=revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade", help="Revert migrations down to REVISION (e.g. -1 or base).")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(), revision)
    click.echo(f"database at {revision}")


@db_group.command("current", help="Show the current revision.")
def db_current() -> None:
    from alembic import command

    command.current(alembic_config(), verbose=False)


@db_group.command("revision", help="Create a migration from the difference between models and database.")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    from alembic import command

    command.revision(alembic_config(), message=message, autogenerate=True)


@click.group("user", help="Users who sign in to Lifeline.")
def user_group() -> None:
    pass


@user_group.command("create")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["admin", "crisis_manager", "manager", "supervisor", "facilities"]),
    help="Repeat for several roles (organization-wide).",
)
@click.option("--language", type=click.Choice(["ja", "en"]), default="ja")
@click.option("--organization", "org_slug", default=None, help="Organization slug (default: the only one).")
@with_appcontext
def user_create(
    email: str, name: str, password: str, roles: tuple[str, ...], language: str, org_slug: str | None
) -> None:
    from sqlalchemy import select

    from core import db
    from core.auth.models import Role
    from core.auth.service import create_user
    from core.directory.models import Organization
    from core.errors import ValidationError

    query = select(Organization)
    if org_slug:
        query = query.where(Organization.slug == org_slug)
    orgs = db.session.scalars(query).all()
    if len(orgs) != 1:
        raise click.ClickException(
            "no organization yet: run `lifeline demo-data` or name one with --organization"
            if not orgs
            else "several organizations: choose one with --organization"
        )
    try:
        user = create_user(
            organization_id=orgs[0].id,
            email=email,
            name=name or email,
            password=password,
            language=language,
            roles=[Role(r) for r in roles],
            actor="cli",
        )
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"user {user.email} created (id {user.id})")


@click.command("start", help="Start the embedded default: web app, worker with scheduler, phone simulator.")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--simulator-port", default=5050, type=int)
@click.option("--no-simulator", is_flag=True)
def start_command(host: str, port: int, simulator_port: int, no_simulator: bool) -> None:
    from core.app import create_app
    from core.launcher import run_all

    # Parts may ask for helper processes beside the web app (e.g. the demo sites' heartbeats).
    companions = create_app().extensions.get("lifeline.companions", [])
    sys.exit(
        run_all(
            host=host,
            port=port,
            simulator_port=simulator_port,
            simulator=not no_simulator,
            companions=companions,
        )
    )


def register_app_commands(app: Flask) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(user_group)
    for module_name, attr in (
        ("core.directory.cli", "staff_group"),
        ("core.directory.cli", "demo_data_command"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        app.cli.add_command(getattr(module, attr))


def _simulator_command() -> click.Command | None:
    try:
        module = importlib.import_module("core.telephony.simulator.cli")
    except ModuleNotFoundError:
        return None
    command: click.Command = module.simulator_command
    return command


class LifelineGroup(FlaskGroup):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(create_app=_make_app, add_version_option=False, load_dotenv=False, **kwargs)
        self.add_command(start_command)
        sim = _simulator_command()
        if sim is not None:
            self.add_command(sim, "simulator")


def main() -> None:
    cli = LifelineGroup(help="Lifeline: keeps a contact center alive through a disaster.")
    cli.main(prog_name="lifeline")


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["Path", "main", "upgrade_database"]
