"""The application factory. Only ``wsgi.py`` (and tests) call :func:`create_app`."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from flask import Flask, Response, abort, g, jsonify, render_template, request
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Map
from werkzeug.routing.converters import IntegerConverter

from core import db, i18n
from core.config import Settings, load_settings
from core.errors import LifelineError

log = logging.getLogger(__name__)

# Domain packages plug themselves in by name (core never imports them statically). Each may define
# ``init_app(app)``; ``<part>.tasks`` modules are loaded into the worker.
PARTS = ("ivr", "continuity", "stockpile", "incidents", "reports", "dashboards")

csrf = CSRFProtect()
login_manager = LoginManager()


class DatabaseIntegerConverter(IntegerConverter):
    """``<int:…>`` within the database's integer range: a larger id matches no route (404) instead of overflowing
    inside the query (a 500, on SQLite and PostgreSQL alike)."""

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = 2**31 - 1,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def _part_available(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Missing because the part (or that module of it) does not exist — not because of a broken import inside.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return False
        raise
    return True


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = settings or load_settings(**overrides)
    app = Flask(__name__, template_folder="templates", static_folder="static", static_url_path="/static")
    app.url_map.converters["int"] = DatabaseIntegerConverter
    app.extensions["lifeline.settings"] = settings
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=50 * 1024 * 1024,
        TESTING=settings.testing,
    )
    # Behind a proxy the public scheme/host come from X-Forwarded-*; Twilio signatures depend on them.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]

    db.init_engine(settings.database_url)
    from core.i18n_ja import MESSAGES

    i18n.register("ja", MESSAGES)
    csrf.init_app(app)
    _init_login(app)
    _init_request_hooks(app)
    _init_health(app)

    from core.auth.views import bp as auth_bp
    from core.directory.api import bp as api_bp
    from core.directory.views import bp as directory_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(directory_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)

    task_modules = ["core.tasks"]
    parts = [p for p in PARTS if _part_available(p)]
    for part in parts:
        module = importlib.import_module(part)
        init = getattr(module, "init_app", None)
        if init is not None:
            init(app)
        if _part_available(f"{part}.tasks"):
            task_modules.append(f"{part}.tasks")
    app.extensions["lifeline.parts"] = parts

    from core.celery import init_celery

    init_celery(app, task_modules)

    from core.cli import register_app_commands

    register_app_commands(app)
    return app


def settings_of(app: Flask) -> Settings:
    return app.extensions["lifeline.settings"]


def _init_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(user_id: str) -> Any:
        from core.auth.models import User

        user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
        return user if user is not None and user.is_active else None


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _init_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Any:
        """For load balancers and DNS failover: 200 when this region's database takes writes, 503 otherwise (down,
        or a standby not yet promoted — docs/OPERATIONS.md). Says nothing else."""
        from sqlalchemy import text

        try:
            with db.get_engine().connect() as conn:
                standby = (
                    conn.execute(text("SELECT pg_is_in_recovery()")).scalar()
                    if conn.dialect.name == "postgresql"
                    else False
                )
        except Exception:
            log.warning("health check: the database cannot be reached", exc_info=True)
            return jsonify(status="database unreachable"), 503
        if standby:
            return jsonify(status="standby"), 503
        return jsonify(status="ok"), 200


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _init_request_hooks(app: Flask) -> None:
    @app.before_request
    def refuse_nul_characters() -> None:
        # Nobody types U+0000 and PostgreSQL cannot store it in text: refuse it here with a 400, rather than let it
        # reach a query and come back as a 500.
        if (
            "\x00" in request.path
            or any(_has_nul(k) or _has_nul(v) for k, v in request.args.items(multi=True))
            or any(_has_nul(k) or _has_nul(v) for k, v in request.form.items(multi=True))
            or (request.is_json and _has_nul(request.get_json(silent=True)))
        ):
            abort(400, description="The request contains a NUL character.")

    @app.before_request
    def choose_language() -> None:
        # Tests reuse one app context across requests; a principal cached for another request must not survive.
        for cached in ("principal", "_login_user", "csrf_token"):
            g.pop(cached, None)
        user_lang = current_user.language if current_user.is_authenticated else None
        g.language = i18n.select_language(user_lang)

    @app.template_filter("localtime")
    def localtime(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
        from core.time import to_local

        return "" if value is None else to_local(value).strftime(fmt)

    @app.context_processor
    def template_globals() -> dict[str, Any]:
        from core.auth.service import principal_for

        principal = principal_for(current_user) if current_user.is_authenticated else None
        return {
            "_": i18n.template_gettext,
            "lang": i18n.current_language(),
            "principal": principal,
            "parts": app.extensions.get("lifeline.parts", ()),
            "nav_items": app.extensions.get("lifeline.nav", []),
        }

    @app.after_request
    def finish_transaction(response: Response) -> Response:
        # The edge owns the transaction: commit before the response leaves, so a failed commit is a 500,
        # never a false "saved". Error responses roll back whatever the view flushed.
        if response.status_code < 400 and not g.get("rollback_only"):
            db.session.commit()
        else:
            db.session.rollback()
        return response

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.teardown_request
    def end_session(exc: BaseException | None) -> None:
        if exc is not None:
            db.session.rollback()
        db.session.remove()

    @app.errorhandler(LifelineError)
    def lifeline_error(exc: LifelineError) -> Any:
        db.session.rollback()
        if _wants_json():
            return jsonify(error=str(exc), errors=getattr(exc, "errors", [str(exc)])), exc.status_code
        return render_template("error.html", code=exc.status_code, message=str(exc)), exc.status_code

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        return render_template(
            "error.html",
            code=400,
            message=i18n.gettext("The form expired. Please reload the page and try again."),
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        if _wants_json():
            return jsonify(error=exc.description, status=code), code
        return render_template("error.html", code=code, message=exc.description), code
