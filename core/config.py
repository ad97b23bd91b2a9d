"""Settings come from environment variables prefixed ``LIFELINE_`` (documented in README.md).

Every process (web, worker, CLI, simulator) builds its settings the same way, so one set of variables configures
the whole installation.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _instance_dir() -> Path:
    return Path(os.environ.get("LIFELINE_INSTANCE_DIR", PROJECT_ROOT / "instance"))


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    instance_dir: Path = field(default_factory=_instance_dir)
    database_url: str = ""
    broker_url: str = ""
    redis_url: str = ""
    secret_key: str = ""
    encryption_key: str = ""
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: str = "simulator-auth-token"
    twilio_api_base: str = ""
    twilio_from_number: str = "+15550100100"
    public_base_url: str = "http://127.0.0.1:5000"
    simulator_url: str = "http://127.0.0.1:5050"
    mail_backend: str = "simulator"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_from: str = "lifeline@example.invalid"
    default_language: str = "ja"
    default_region: str = "JP"
    calls_per_second: float = 1.0
    sms_per_second: float = 10.0
    emails_per_second: float = 20.0
    pacing_backend: str = "database"
    # Where answers wait while the database is unreachable (ivr.spool): "file" (instance/spool) or "redis".
    spool_backend: str = "file"
    # How long a worker may hold a call/message it is about to place before another worker may take it over.
    # Must stay well above the carrier API's timeout (15 s).
    dispatch_lease_seconds: float = 120.0
    session_cookie_secure: bool = False
    # Empty: JMA polling is off (the embedded default and tests never reach the internet). Production sets
    # LIFELINE_JMA_FEED_BASE=https://www.data.jma.go.jp/developer/xml/feed/
    jma_feed_base: str = ""
    testing: bool = False
    celery_eager: bool = False

    @property
    def sqlite_default_url(self) -> str:
        return f"sqlite:///{self.instance_dir / 'lifeline.db'}"


_ENV_PREFIX = "LIFELINE_"


def _coerce(kind: Any, raw: str) -> Any:
    if kind is bool or kind == "bool":
        return _bool(raw)
    if kind is int or kind == "int":
        return int(raw)
    if kind is float or kind == "float":
        return float(raw)
    if kind is Path or kind == "Path":
        return Path(raw)
    return raw


def _key_file(instance_dir: Path, name: str, make: Any) -> str:
    """Read a generated key from instance/, creating it on first run (the embedded default needs no setup)."""
    path = instance_dir / name
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    value = str(make())
    # Written with owner-only permissions: it protects private phone numbers.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(_ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = _coerce(f.type, raw)
    values.update(overrides)
    settings = Settings(**values)
    if not settings.database_url:
        settings.instance_dir.mkdir(parents=True, exist_ok=True)
        settings = replace(settings, database_url=settings.sqlite_default_url)
    if not settings.broker_url:
        settings = replace(settings, broker_url="filesystem://")
    if not settings.twilio_api_base and settings.twilio_account_sid.startswith("AC000000"):
        # The fictional account always talks to the built-in simulator, never to the real Twilio.
        settings = replace(settings, twilio_api_base=settings.simulator_url)
    if not settings.secret_key:
        settings = replace(
            settings, secret_key=_key_file(settings.instance_dir, "secret_key", lambda: secrets.token_hex(32))
        )
    if not settings.encryption_key:
        settings = replace(
            settings,
            encryption_key=_key_file(
                settings.instance_dir, "encryption_key", lambda: Fernet.generate_key().decode()
            ),
        )
    return settings
