"""Bulletin boards: the signed-in screens (admins create boards, moderators hide and pin) and the staff's own pages
under ``/boards/<self-service token>`` (no password: the personal link is the key)."""

from __future__ import annotations

from typing import Any

from flask import (
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response as BaseResponse

from core.auth.models import Role
from core.directory.models import Staff
from core.directory.service import staff_by_self_service_token
from core.errors import LifelineError, NotFound
from core.i18n import gettext as _
from core.web import current_principal, require_roles
from incidents import boards, notices
from incidents.models import Attachment, Board
from incidents.sniff import MAX_ATTACHMENT_BYTES
from incidents.web import attempt, bp, private_headers, public, settings

READ_ROLES = (Role.CRISIS_MANAGER, Role.SUPERVISOR, Role.MANAGER)


def _uploads() -> list[boards.Upload]:
    out = []
    for file in request.files.getlist("files"):
        if not isinstance(file, FileStorage) or not file.filename:
            continue
        # Read one byte more than allowed: enough to know it is too big without holding a huge upload.
        out.append(boards.Upload(filename=file.filename, data=file.read(MAX_ATTACHMENT_BYTES + 1)))
    return out


def _serve(attachment: Attachment) -> BaseResponse:
    path = boards.attachment_path(settings().instance_dir, attachment)
    if not path.is_file():
        abort(404)
    response = send_file(
        path,
        mimetype=attachment.content_type,
        as_attachment=not attachment.content_type.startswith("image/"),
        download_name=attachment.filename,
        max_age=0,
        conditional=True,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Whatever the file holds, it can run nothing in our origin.
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- signed-in screens -------------------------------------------------------------------------------------------


def _moderator(board: Board) -> bool:
    principal = current_principal()
    return boards.can_moderate(board, principal.user_id, list(principal.roles))


def _board(board_id: int) -> Board:
    try:
        return boards.get_board(organization_id=current_principal().organization_id, board_id=board_id)
    except NotFound:
        abort(404)


@bp.get("/boards")
@require_roles(*READ_ROLES)
def boards_list() -> str:
    principal = current_principal()
    return render_template(
        "incidents/boards.html",
        boards=boards.list_boards(organization_id=principal.organization_id),
        is_admin=Role.ADMIN in principal.roles,
    )


@bp.post("/boards")
@require_roles(Role.ADMIN)
def board_create() -> BaseResponse:
    principal = current_principal()
    return attempt(
        lambda: boards.create_board(
            organization_id=principal.organization_id,
            title=request.form.get("title", ""),
            description=request.form.get("description", ""),
            user=current_user,
            is_admin=Role.ADMIN in principal.roles,
        ),
        done="Board created.",
        back=url_for("incidents.boards_list"),
    )


@bp.get("/boards/<int:board_id>")
@require_roles(*READ_ROLES)
def board_view(board_id: int) -> str:
    board = _board(board_id)
    moderator = _moderator(board)
    return render_template(
        "incidents/board.html",
        board=board,
        posts=boards.visible_posts(board_id=board.id, include_hidden=moderator),
        moderator=moderator,
        max_mb=MAX_ATTACHMENT_BYTES // (1024 * 1024),
    )


@bp.post("/boards/<int:board_id>/posts")
@require_roles(*READ_ROLES)
def board_post(board_id: int) -> BaseResponse:
    board = _board(board_id)
    return attempt(
        lambda: boards.add_post(
            board=board,
            body=request.form.get("body", ""),
            uploads=_uploads(),
            user=current_user,
            pinned=bool(request.form.get("pinned")),
            instance_dir=settings().instance_dir,
            ip=request.remote_addr,
        ),
        done="Posted.",
        back=url_for("incidents.board_view", board_id=board.id),
    )


def _post_action(board_id: int, post_id: int, action: str) -> BaseResponse:
    board = _board(board_id)
    try:
        post = boards.get_post(board=board, post_id=post_id)
    except NotFound:
        abort(404)
    if action == "hide":
        run: Any = lambda: boards.hide_post(  # noqa: E731
            board=board, post=post, user=current_user, reason=request.form.get("reason", "")
        )
    else:
        run = lambda: boards.pin_post(board=board, post=post, user=current_user, pinned=action == "pin")  # noqa: E731
    return attempt(run, done="Saved.", back=url_for("incidents.board_view", board_id=board.id))


@bp.post("/boards/<int:board_id>/posts/<int:post_id>/hide")
@require_roles(*READ_ROLES)
def post_hide(board_id: int, post_id: int) -> BaseResponse:
    return _post_action(board_id, post_id, "hide")


@bp.post("/boards/<int:board_id>/posts/<int:post_id>/pin")
@require_roles(*READ_ROLES)
def post_pin(board_id: int, post_id: int) -> BaseResponse:
    return _post_action(board_id, post_id, "pin")


@bp.post("/boards/<int:board_id>/posts/<int:post_id>/unpin")
@require_roles(*READ_ROLES)
def post_unpin(board_id: int, post_id: int) -> BaseResponse:
    return _post_action(board_id, post_id, "unpin")


@bp.get("/boards/files/<int:attachment_id>")
@require_roles(*READ_ROLES)
def attachment(attachment_id: int) -> BaseResponse:
    principal = current_principal()
    try:
        found = boards.attachment_for(
            organization_id=principal.organization_id,
            attachment_id=attachment_id,
            include_hidden=Role.ADMIN in principal.roles,
        )
    except NotFound:
        abort(404)
    return _serve(found)


# --- the staff's own pages (no login) ----------------------------------------------------------------------------


def _staff(token: str) -> Staff:
    person = staff_by_self_service_token(token)
    if person is None:
        abort(404)
    if "lang" not in request.args and "lang" not in session:
        g.language = person.language.value
    return person


def _staff_board(person: Staff, board_id: int) -> Board:
    try:
        board = boards.get_board(organization_id=person.organization_id, board_id=board_id)
    except NotFound:
        abort(404)
    if board.archived_at is not None:
        abort(404)
    return board


@public.get("/boards/<token>")
def staff_boards(token: str) -> BaseResponse:
    person = _staff(token)
    page = render_template(
        "incidents/staff_boards.html",
        person=person,
        token=token,
        boards=boards.list_boards(organization_id=person.organization_id),
        consent=notices.family_consent(staff_id=person.id),
    )
    return private_headers(make_response(page))


@public.post("/boards/<token>/family-notice")
def staff_family_consent(token: str) -> BaseResponse:
    person = _staff(token)
    notices.set_family_consent(
        staff=person, allowed=request.form.get("allowed") == "yes", ip=request.remote_addr
    )
    flash(_("Saved. Thank you."), "success")
    return private_headers(redirect(url_for("incidents_public.staff_boards", token=token)))


def _render_staff_board(
    person: Staff, token: str, board: Board, error: str | None, status: int
) -> BaseResponse:
    page = render_template(
        "incidents/staff_board.html",
        person=person,
        token=token,
        board=board,
        posts=boards.visible_posts(board_id=board.id),
        error=error,
        max_mb=MAX_ATTACHMENT_BYTES // (1024 * 1024),
    )
    return private_headers(make_response(page, status))


@public.get("/boards/<token>/<int:board_id>")
def staff_board(token: str, board_id: int) -> BaseResponse:
    person = _staff(token)
    return _render_staff_board(person, token, _staff_board(person, board_id), None, 200)


@public.post("/boards/<token>/<int:board_id>")
def staff_post(token: str, board_id: int) -> BaseResponse:
    person = _staff(token)
    board = _staff_board(person, board_id)
    try:
        boards.add_post(
            board=board,
            body=request.form.get("body", ""),
            uploads=_uploads(),
            staff=person,
            instance_dir=settings().instance_dir,
            ip=request.remote_addr,
        )
    except LifelineError as exc:
        g.rollback_only = True
        return _render_staff_board(person, token, board, _(str(exc)), 422)
    flash(_("Posted."), "success")
    return private_headers(redirect(url_for("incidents_public.staff_board", token=token, board_id=board.id)))


@public.get("/boards/<token>/files/<int:attachment_id>")
def staff_attachment(token: str, attachment_id: int) -> BaseResponse:
    person = _staff(token)
    try:
        found = boards.attachment_for(organization_id=person.organization_id, attachment_id=attachment_id)
    except NotFound:
        abort(404)
    return private_headers(_serve(found))
