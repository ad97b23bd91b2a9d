"""Errors the edges turn into clear messages (HTTP 4xx, CLI exit codes) instead of tracebacks."""

from __future__ import annotations


class LifelineError(Exception):
    """Base for errors whose message is meant for the person who caused them."""

    status_code = 400


class ValidationError(LifelineError):
    def __init__(self, message: str, *, field: str | None = None, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors or [message]


class NotFound(LifelineError):
    status_code = 404


class Forbidden(LifelineError):
    status_code = 403


class Conflict(LifelineError):
    status_code = 409
