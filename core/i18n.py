"""Japanese and English for every screen.

Messages are written in English in the code (the message id); each package registers its Japanese catalogue with
:func:`register`. Catalogues are kept per part (``core``, ``ivr``, ``ivr.jma``, ``continuity`` …) because the same
English word needs different Japanese in different places ("closed" is 締切 for a broadcast and 時間外 for a
phone line). A message is looked up in the part that asks for it — the blueprint serving the page for templates,
the calling module for Python code — then in its parent parts, then in ``core``, then anywhere.

A user's language is their profile setting; anonymous pages (answer links, self-service, status page) follow
``?lang=`` and then the browser, Japanese by default.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import current_app, g, has_request_context, request, session

SUPPORTED = ("ja", "en")
_catalogs: dict[str, dict[str, dict[str, str]]] = {"ja": {}, "en": {}}  # language → domain → messages
_merged: dict[str, dict[str, str]] = {"ja": {}, "en": {}}  # language → first translation of each message


def _domain_of_module(module: str) -> str:
    """``ivr.jma.views`` → ``ivr.jma``; ``ivr`` (its __init__) → ``ivr``; ``core.auth.views`` → ``core``."""
    parts = module.split(".")
    if parts[0] == "core":
        return "core"
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def register(language: str, messages: dict[str, str], domain: str | None = None) -> None:
    if domain is None:
        caller = sys._getframe(1).f_globals.get("__name__", "core")
        domain = _domain_of_module(caller)
    _catalogs.setdefault(language, {}).setdefault(domain, {}).update(messages)
    merged = _merged.setdefault(language, {})
    for key, value in messages.items():
        merged.setdefault(key, value)


def current_language() -> str:
    if not has_request_context():
        return "ja"
    lang = g.get("language")
    if lang:
        return str(lang)
    return "ja"


def select_language(user_language: str | None = None, default: str = "ja") -> str:
    asked = request.args.get("lang")
    if asked in SUPPORTED:
        session["lang"] = asked
        return asked
    if user_language in SUPPORTED:
        return str(user_language)
    if session.get("lang") in SUPPORTED:
        return str(session["lang"])
    best = request.accept_languages.best_match(SUPPORTED)
    return best or default


def request_domain() -> str | None:
    """The part whose blueprint serves the current request."""
    if not has_request_context() or not request.blueprint:
        return None
    blueprint = current_app.blueprints.get(request.blueprint.split(".")[0])
    return _domain_of_module(blueprint.import_name) if blueprint is not None else None


def translate(message: str, language: str, domain: str | None) -> str:
    catalogs = _catalogs.get(language, {})
    while domain:
        text = catalogs.get(domain, {}).get(message)
        if text is not None:
            return text
        domain = domain.rpartition(".")[0]
    text = catalogs.get("core", {}).get(message)
    if text is not None:
        return text
    return _merged.get(language, {}).get(message, message)


def gettext(message: str, language: str | None = None, **params: Any) -> str:
    caller = sys._getframe(1).f_globals.get("__name__")
    # Called from a template (no module name) or through a helper here: the page's part decides.
    domain = (
        request_domain()
        if not caller or caller.startswith(("jinja2", "core.i18n"))
        else _domain_of_module(caller)
    )
    text = translate(message, language or current_language(), domain)
    return text.format(**params) if params else text


def template_gettext(message: str, language: str | None = None, **params: Any) -> str:
    """``_`` in templates: the part is the blueprint serving the page."""
    text = translate(message, language or current_language(), request_domain())
    return text.format(**params) if params else text


_ = gettext
