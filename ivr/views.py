"""Screens: the public answer page (``/r/<token>``) and the crisis managers' broadcast pages."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from core import db, ratelimit
from core.auth.models import Role
from core.directory.models import Department, Site
from core.errors import Forbidden, LifelineError
from core.i18n import SUPPORTED, gettext
from core.pacing import rates_from
from core.time import utcnow
from core.web import current_principal, require_roles, whole_number
from ivr import service, spool
from ivr.models import AnswerChannel
from ivr.scenarios import ScenarioTemplate, parse_template

bp = Blueprint(
    "ivr",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ivr/static",
)

MANAGE = (Role.CRISIS_MANAGER,)
READ = (Role.CRISIS_MANAGER, Role.MANAGER)


# --- the answer page ---------------------------------------------------------------------------------------------


def _answer_language(default: str) -> str:
    asked = request.args.get("lang") or request.form.get("lang")
    lang = asked if asked in SUPPORTED else default
    g.language = lang
    return lang


@bp.after_request
def _link_pages_stay_private(response: Response) -> Response:
    # The answer and invitation links are the keys to a person's answers: keep them out of caches, referrers
    # and search engines.
    if request.endpoint in ("ivr.answer", "ivr.invitation"):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _friendly(code: int, message: str) -> tuple[str, int]:
    return render_template("ivr/answer_gone.html", code=code, message=message), code


@bp.route("/r/<token>", methods=["GET", "POST"])
@spool.outage_fallback(spool.answer_page_offline)
def answer(token: str) -> Any:
    ratelimit.refuse_if_exhausted(ratelimit.LINK_MISSES)
    recipient = service.recipient_by_token(token)
    if recipient is None:
        ratelimit.note_failure(ratelimit.LINK_MISSES)
        _answer_language(g.get("language") or "ja")
        return _friendly(
            404, gettext("This answer link is not valid. Please check the link in your message.")
        )
    lang = _answer_language(recipient.language)
    broadcast = service.get_broadcast(broadcast_id=recipient.broadcast_id)
    scenario = service.snapshot(broadcast)
    # Should the database go away, this page can still be shown and answered (ivr.spool).
    spool.remember_recipient(
        current_app.extensions["lifeline.settings"], recipient=recipient, broadcast=broadcast
    )
    current = service.current_answers(recipient_id=recipient.id)
    if not service.accepts_answers(broadcast):
        return render_template(
            "ivr/answer_gone.html",
            code=410,
            message=gettext("This safety check is closed. Answers are no longer accepted."),
            scenario=scenario,
            current=current,
            lang=lang,
        ), 410
    errors: list[str] = []
    saved = False
    via = request.values.get("via", "")
    if request.method == "POST":
        # Only a POST records: mail scanners and link previews open (GET) links.
        chosen = {q.key: request.form[q.key] for q in scenario.questions if request.form.get(q.key)}
        text = request.form.get("free_text", "") if scenario.free_text else ""
        if not chosen and not text.strip():
            errors.append(gettext("Please choose an answer."))
        else:
            try:
                service.record_answers(
                    recipient=recipient,
                    answers=chosen,
                    free_text=text,
                    channel=AnswerChannel.WEB,
                    attempt_id=whole_number(via),
                )
            except LifelineError as exc:
                errors.extend(getattr(exc, "errors", [str(exc)]))
            else:
                saved = True
                current = service.current_answers(recipient_id=recipient.id)
    # An error status also makes the edge roll back anything half-written.
    status = 400 if errors else 200
    return render_template(
        "ivr/answer.html",
        token=token,
        via=via,
        scenario=scenario,
        broadcast=broadcast,
        current=current,
        saved=saved,
        errors=errors,
        lang=lang,
        other_lang="en" if lang == "ja" else "ja",
    ), status


@bp.route("/r/i/<token>", methods=["GET", "POST"])
def invitation(token: str) -> Any:
    ratelimit.refuse_if_exhausted(ratelimit.LINK_MISSES)
    invite = service.invitation_by_token(token)
    if invite is None:
        ratelimit.note_failure(ratelimit.LINK_MISSES)
        return _friendly(404, gettext("This link is not valid."))
    lang = _answer_language(invite.recipient.language)
    if request.method == "POST":
        service.respond_to_invitation(invitation=invite, accept=request.form.get("choice") == "accept")
    return render_template("ivr/invitation.html", invite=invite, lang=lang)


# --- crisis managers ---------------------------------------------------------------------------------------------


def _templates(org_id: int) -> list[tuple[str, ScenarioTemplate]]:
    return [
        (row.key, parse_template(row.definition)) for row in service.list_templates(organization_id=org_id)
    ]


@bp.get("/broadcasts")
@require_roles(*READ)
def broadcast_list() -> str:
    principal = current_principal()
    return render_template(
        "ivr/broadcast_list.html",
        broadcasts=service.list_broadcasts(organization_id=principal.organization_id),
        can_start=principal.has(*MANAGE),
    )


def _audience_from_form() -> dict[str, Any]:
    form = request.form
    return {
        "everyone": form.get("audience") == "all",
        "sites": form.getlist("sites") if form.get("audience") == "sites" else [],
        "departments": form.getlist("departments") if form.get("audience") == "departments" else [],
        "prefectures": [p.strip() for p in form.get("prefectures", "").replace(",", " ").split() if p.strip()]
        if form.get("audience") == "prefectures"
        else [],
    }


def _require_audience_in_scope(principal: Any, audience: dict[str, Any]) -> None:
    outside = service.people_outside_scope(
        organization_id=principal.organization_id, principal=principal, audience=audience
    )
    if outside:
        raise Forbidden(
            gettext(
                "{count} people of this audience are outside the sites and departments you are responsible for.",
                count=str(outside),
            )
        )


def _require_broadcast_in_scope(broadcast_id: int) -> None:
    """Changing a broadcast (closing it, resending, messaging) takes a crisis manager covering everyone in it."""
    principal = current_principal()
    service.get_broadcast(broadcast_id=broadcast_id, organization_id=principal.organization_id)
    if service.people_outside_scope(
        organization_id=principal.organization_id, principal=principal, broadcast_id=broadcast_id
    ):
        abort(403)


@bp.route("/broadcasts/new", methods=["GET", "POST"])
@require_roles(*MANAGE)
def broadcast_new() -> Any:
    principal = current_principal()
    org_id = principal.organization_id
    settings = current_app.extensions["lifeline.settings"]
    estimate = None
    people = None
    failed = 0
    if request.method == "POST":
        audience = _audience_from_form()
        channels = request.form.getlist("channels")
        try:
            if request.form.get("action") == "estimate":
                people, estimate = service.estimate_for_audience(
                    organization_id=org_id,
                    audience=audience,
                    channels=channels,
                    rates=rates_from(settings),
                    now=utcnow(),
                )
            else:
                _require_audience_in_scope(principal, audience)
                broadcast = service.start_broadcast(
                    organization_id=org_id,
                    template=request.form.get("template", ""),
                    audience=audience,
                    mode=request.form.get("mode", "drill"),
                    channels=channels or None,
                    include_family=bool(request.form.get("include_family")) or None,
                    actor=principal.label,
                    actor_user_id=principal.user_id,
                )
                flash(gettext("The broadcast has started."), "success")
                return redirect(url_for("ivr.broadcast_watch", broadcast_id=broadcast.id))
        except LifelineError as exc:
            failed = exc.status_code if isinstance(exc, Forbidden) else 400
            for message in getattr(exc, "errors", [str(exc)]):
                flash(message, "error")
    return render_template(
        "ivr/broadcast_new.html",
        templates=_templates(org_id),
        sites=db.session.scalars(
            select(Site).where(Site.organization_id == org_id).order_by(Site.code)
        ).all(),
        departments=db.session.scalars(
            select(Department).where(Department.organization_id == org_id).order_by(Department.name)
        ).all(),
        estimate=estimate,
        people=people,
        form=request.form,
    ), (failed or 200)


@bp.get("/broadcasts/<int:broadcast_id>")
@require_roles(*READ)
def broadcast_watch(broadcast_id: int) -> str:
    principal = current_principal()
    status = service.broadcast_status(broadcast_id=broadcast_id, principal=principal)
    broadcast = service.get_broadcast(broadcast_id=broadcast_id)
    settings = current_app.extensions["lifeline.settings"]
    return render_template(
        "ivr/broadcast_watch.html",
        broadcast=broadcast,
        scenario=service.snapshot(broadcast),
        status=status,
        estimate=service.estimate_for_broadcast(
            broadcast_id=broadcast_id, rates=rates_from(settings), now=utcnow()
        ),
        unreached=service.unreached(broadcast_id=broadcast_id, principal=principal, limit=100),
        can_manage=principal.has(*MANAGE),
    )


@bp.get("/broadcasts/<int:broadcast_id>/status.json")
@require_roles(*READ)
def broadcast_status_json(broadcast_id: int) -> Response:
    return jsonify(service.broadcast_status(broadcast_id=broadcast_id, principal=current_principal()))


@bp.post("/broadcasts/<int:broadcast_id>/close")
@require_roles(*MANAGE)
def broadcast_close(broadcast_id: int) -> Any:
    _require_broadcast_in_scope(broadcast_id)
    principal = current_principal()
    service.close_broadcast(
        broadcast_id=broadcast_id,
        organization_id=principal.organization_id,
        actor=principal.label,
        actor_user_id=principal.user_id,
        cancel=request.form.get("cancel") == "1",
    )
    flash(gettext("The broadcast is closed."), "success")
    return redirect(url_for("ivr.broadcast_watch", broadcast_id=broadcast_id))


@bp.post("/broadcasts/<int:broadcast_id>/resend")
@require_roles(*MANAGE)
def broadcast_resend(broadcast_id: int) -> Any:
    _require_broadcast_in_scope(broadcast_id)
    principal = current_principal()
    count = service.resend_unanswered(
        broadcast_id=broadcast_id,
        organization_id=principal.organization_id,
        actor=principal.label,
        actor_user_id=principal.user_id,
        channels=request.form.getlist("channels") or ("sms", "email"),
    )
    flash(gettext("{count} messages queued to those who have not answered.", count=count), "success")
    return redirect(url_for("ivr.broadcast_watch", broadcast_id=broadcast_id))


@bp.post("/broadcasts/<int:broadcast_id>/message")
@require_roles(*MANAGE)
def broadcast_message(broadcast_id: int) -> Any:
    _require_broadcast_in_scope(broadcast_id)
    principal = current_principal()
    question, _, value = request.form.get("answer", "").partition("=")
    count = service.message_answered(
        broadcast_id=broadcast_id,
        organization_id=principal.organization_id,
        question_key=question,
        value=value,
        text=request.form.get("text", ""),
        purpose=request.form.get("purpose") or "home_agent_pool",
        actor=principal.label,
        actor_user_id=principal.user_id,
    )
    flash(gettext("{count} people invited.", count=count), "success")
    return redirect(url_for("ivr.broadcast_watch", broadcast_id=broadcast_id))


CSV_COLUMNS = ("employee_id", "name", "department", "site", "state", "answer_channel", "answered_at")


def csv_lines(broadcast_id: int, principal: Any, scenario: ScenarioTemplate) -> Iterator[list[str]]:
    yield [*CSV_COLUMNS, *(q.key for q in scenario.questions), "free_text"]
    for row in service.export_rows(broadcast_id=broadcast_id, principal=principal):
        yield [
            row.employee_id,
            row.name,
            row.department,
            row.site,
            row.state,
            row.answer_channel,
            row.answered_at.isoformat() if row.answered_at else "",
            *(row.answers.get(q.key, "") for q in scenario.questions),
            row.free_text,
        ]


CSV_BATCH = 1000  # lines encoded and yielded together by encode_csv


def encode_csv(lines: Iterator[list[str]], encoding: str) -> Iterator[bytes]:
    """Excel opens UTF-8 correctly only with a BOM; cp932 for older Japanese Excel, unmappable → '?'.

    ``CSV_BATCH`` lines are encoded at a time: one chunk of bytes per line costs more than the writing itself."""
    if encoding == "utf-8":
        yield "\ufeff".encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    pending = 0
    for line in lines:
        writer.writerow(line)
        pending += 1
        if pending == CSV_BATCH:
            yield buffer.getvalue().encode(encoding, errors="replace")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending:
        yield buffer.getvalue().encode(encoding, errors="replace")


@bp.get("/broadcasts/<int:broadcast_id>/export.csv")
@require_roles(*READ)
def broadcast_export(broadcast_id: int) -> Response:
    principal = current_principal()
    broadcast = service.get_broadcast(broadcast_id=broadcast_id, organization_id=principal.organization_id)
    encoding = "cp932" if request.args.get("encoding") == "cp932" else "utf-8"
    scenario = service.snapshot(broadcast)
    # Read it all inside this request's session before streaming: the session ends with the request.
    body = b"".join(encode_csv(csv_lines(broadcast_id, principal, scenario), encoding))
    return Response(
        body,
        content_type=f"text/csv; charset={'shift_jis' if encoding == 'cp932' else 'utf-8'}",
        headers={"Content-Disposition": f'attachment; filename="broadcast-{broadcast_id}.csv"'},
    )


@bp.route("/broadcasts/templates", methods=["GET", "POST"])
@require_roles(*MANAGE)
def template_list() -> Any:
    principal = current_principal()
    errors: list[str] = []
    text = ""
    if request.method == "POST":
        if not principal.is_org_wide(*MANAGE):
            abort(403)  # templates are the whole organization's
        text = request.form.get("definition", "")
        try:
            definition = json.loads(text)
            service.save_template(
                organization_id=principal.organization_id,
                definition=definition,
                actor=principal.label,
                actor_user_id=principal.user_id,
            )
        except json.JSONDecodeError as exc:
            errors.append(f"JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        except LifelineError as exc:
            errors.extend(getattr(exc, "errors", [str(exc)]))
        if not errors:
            flash(gettext("Template saved."), "success")
            return redirect(url_for("ivr.template_list"))
    rows = service.list_templates(organization_id=principal.organization_id)
    return render_template(
        "ivr/templates.html",
        rows=rows,
        parsed={r.key: parse_template(r.definition) for r in rows},
        json_of={r.key: json.dumps(r.definition, ensure_ascii=False, indent=2) for r in rows},
        errors=errors,
        text=text,
    ), (400 if errors else 200)
