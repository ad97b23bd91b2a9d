"""Bulletin boards: admins create one per topic; staff read and post through their own link, without a password.

Attachments (photos and PDFs, at most 10 MB) are typed by their bytes and kept under
``<instance_dir>/attachments/`` with a random name; the board's creator is told of every new post and can hide a
wrong or harmful one. Pinned posts (instructions) stay on top.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import case, event, select
from sqlalchemy.orm import Session, SessionTransaction

from core import db
from core.auth.models import Role, User
from core.auth.service import audit
from core.directory.models import Staff
from core.errors import Forbidden, NotFound, ValidationError
from core.time import utcnow
from incidents import notifications
from incidents.models import Attachment, Board, Post
from incidents.sniff import AttachmentRefused, check_attachment

MAX_POST_CHARS = 4000
MAX_ATTACHMENTS_PER_POST = 4


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def attachments_dir(instance_dir: Path) -> Path:
    return instance_dir / "attachments"


def attachment_path(instance_dir: Path, attachment: Attachment) -> Path:
    # storage_name is ours (random hex + extension), never taken from the request.
    return attachments_dir(instance_dir) / attachment.storage_name


# --- boards ------------------------------------------------------------------------------------------------------


def list_boards(*, organization_id: int, include_archived: bool = False) -> list[Board]:
    query = select(Board).where(Board.organization_id == organization_id)
    if not include_archived:
        query = query.where(Board.archived_at.is_(None))
    return list(db.session.scalars(query.order_by(Board.created_at, Board.id)))


def get_board(*, organization_id: int, board_id: int) -> Board:
    board = db.session.get(Board, board_id)
    if board is None or board.organization_id != organization_id:
        raise NotFound("This board does not exist.")
    return board


def create_board(
    *,
    organization_id: int,
    title: str,
    description: str = "",
    user: User,
    is_admin: bool,
    now: datetime | None = None,
) -> Board:
    """Admins only: one board per topic."""
    if not is_admin:
        raise Forbidden("Only administrators can create boards.")
    title = " ".join(title.split())[:200]
    if not title:
        raise ValidationError("A board needs a title.", field="title")
    if db.session.scalar(
        select(Board.id).where(Board.organization_id == organization_id, Board.title == title)
    ):
        raise ValidationError("There is already a board with this title.", field="title")
    board = Board(
        organization_id=organization_id,
        title=title,
        description=description.strip()[:2000],
        created_by_user_id=user.id,
        created_at=now or utcnow(),
    )
    db.session.add(board)
    db.session.flush()
    audit(
        action="incidents.board.create",
        organization_id=organization_id,
        actor=user.email,
        actor_user_id=user.id,
        target_type="board",
        target_id=board.id,
        summary=f"board {title!r} created",
    )
    return board


def can_moderate(board: Board, user_id: int | None, roles: Sequence[Role]) -> bool:
    """The board's creator and admins hide and pin posts."""
    return user_id is not None and (board.created_by_user_id == user_id or Role.ADMIN in roles)


# --- posts -------------------------------------------------------------------------------------------------------


def visible_posts(*, board_id: int, include_hidden: bool = False, limit: int = 200) -> list[Post]:
    """Pinned posts first, then the newest."""
    query = select(Post).where(Post.board_id == board_id)
    if not include_hidden:
        query = query.where(Post.hidden_at.is_(None))
    pinned_first = case((Post.pinned.is_(True), 0), else_=1)
    return list(
        db.session.scalars(query.order_by(pinned_first, Post.created_at.desc(), Post.id.desc()).limit(limit))
    )


def _store(instance_dir: Path, uploads: Sequence[Upload]) -> list[tuple[Attachment, Path, bytes]]:
    if len(uploads) > MAX_ATTACHMENTS_PER_POST:
        raise ValidationError("At most 4 files per post.", field="files")
    prepared = []
    for upload in uploads:
        try:
            kind, name = check_attachment(upload.filename, upload.data)
        except AttachmentRefused as exc:
            raise ValidationError(str(exc), field="files") from None
        storage = secrets.token_hex(16) + kind.extension
        prepared.append(
            (
                Attachment(
                    filename=name,
                    content_type=kind.content_type,
                    size=len(upload.data),
                    sha256=hashlib.sha256(upload.data).hexdigest(),
                    storage_name=storage,
                ),
                attachments_dir(instance_dir) / storage,
                upload.data,
            )
        )
    return prepared


_PENDING_FILES = "incidents_pending_files"


def _write_files(prepared: Sequence[tuple[Attachment, Path, bytes]]) -> None:
    """Files are written before the commit, so a committed post never lacks its file; if the transaction rolls
    back instead, the listeners below remove them again."""
    pending: list[Path] = db.session().info.setdefault(_PENDING_FILES, [])
    for _attachment, path, data in prepared:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        pending.append(path)


@event.listens_for(Session, "after_commit")
def _keep_files(session: Session) -> None:
    session.info.pop(_PENDING_FILES, None)


@event.listens_for(Session, "after_soft_rollback")
def _remove_files(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:
        for path in session.info.pop(_PENDING_FILES, []):
            path.unlink(missing_ok=True)


def add_post(
    *,
    board: Board,
    body: str,
    instance_dir: Path,
    uploads: Sequence[Upload] = (),
    staff: Staff | None = None,
    user: User | None = None,
    pinned: bool = False,
    ip: str | None = None,
    now: datetime | None = None,
) -> Post:
    """A post by a member of staff (through their link) or a user; the board's creator is notified."""
    now = now or utcnow()
    if (staff is None) == (user is None):
        raise ValueError("a post has exactly one author: a member of staff or a user")
    author_org = staff.organization_id if staff is not None else user.organization_id  # type: ignore[union-attr]
    if author_org != board.organization_id:
        raise NotFound("This board does not exist.")
    if board.archived_at is not None:
        raise ValidationError("This board is closed.", field="body")
    text = body.strip()
    if not text and not uploads:
        raise ValidationError("Write something or attach a file.", field="body")
    if len(text) > MAX_POST_CHARS:
        raise ValidationError("At most 4000 characters.", field="body")
    if pinned and (user is None or not can_moderate(board, user.id, [r.role for r in user.roles])):
        raise Forbidden("Only the board's creator and administrators can pin posts.")
    prepared = _store(instance_dir, uploads)
    post = Post(
        board_id=board.id,
        staff_id=staff.id if staff else None,
        user_id=user.id if user else None,
        author_name=(staff.name if staff else (user.name or user.email) if user else "")[:200],
        body=text,
        pinned=pinned,
        created_at=now,
    )
    post.attachments = [a for a, _path, _data in prepared]
    db.session.add(post)
    db.session.flush()
    _write_files(prepared)
    actor = f"self-service:{staff.employee_id}" if staff else user.email  # type: ignore[union-attr]
    audit(
        action="incidents.board.post",
        organization_id=board.organization_id,
        actor=actor,
        actor_user_id=user.id if user else None,
        target_type="board",
        target_id=board.id,
        summary=f"post on {board.title!r}" + (f" with {len(prepared)} attachments" if prepared else ""),
        detail={"post_id": post.id, "pinned": pinned},
        ip=ip,
    )
    if board.created_by_user_id is not None and board.created_by_user_id != (user.id if user else None):
        notifications.notify(
            organization_id=board.organization_id,
            user_id=board.created_by_user_id,
            kind="board.post",
            message="New post on {board} by {author}: {text}",
            params={"board": board.title, "author": post.author_name, "text": text[:200]},
            link=f"/incidents/boards/{board.id}",
            now=now,
        )
    return post


def get_post(*, board: Board, post_id: int) -> Post:
    post = db.session.get(Post, post_id)
    if post is None or post.board_id != board.id:
        raise NotFound("This post does not exist.")
    return post


def hide_post(*, board: Board, post: Post, user: User, reason: str = "", now: datetime | None = None) -> Post:
    if not can_moderate(board, user.id, [r.role for r in user.roles]):
        raise Forbidden("Only the board's creator and administrators can hide posts.")
    if post.hidden_at is not None:
        return post
    post.hidden_at = now or utcnow()
    post.hidden_by_user_id = user.id
    post.hidden_reason = reason.strip()[:500]
    db.session.flush()
    audit(
        action="incidents.board.hide",
        organization_id=board.organization_id,
        actor=user.email,
        actor_user_id=user.id,
        target_type="board",
        target_id=board.id,
        summary=f"post {post.id} by {post.author_name} hidden on {board.title!r}",
        detail={"post_id": post.id, "reason": post.hidden_reason},
    )
    return post


def pin_post(*, board: Board, post: Post, user: User, pinned: bool) -> Post:
    if not can_moderate(board, user.id, [r.role for r in user.roles]):
        raise Forbidden("Only the board's creator and administrators can pin posts.")
    if post.pinned == pinned:
        return post
    post.pinned = pinned
    db.session.flush()
    audit(
        action="incidents.board.pin" if pinned else "incidents.board.unpin",
        organization_id=board.organization_id,
        actor=user.email,
        actor_user_id=user.id,
        target_type="board",
        target_id=board.id,
        summary=f"post {post.id} {'pinned' if pinned else 'unpinned'} on {board.title!r}",
    )
    return post


def attachment_for(*, organization_id: int, attachment_id: int, include_hidden: bool = False) -> Attachment:
    """An attachment of a visible post of the organization's boards (404 for anything else)."""
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound("This file does not exist.")
    post = attachment.post
    board = db.session.get(Board, post.board_id)
    if board is None or board.organization_id != organization_id or (post.hidden_at and not include_hidden):
        raise NotFound("This file does not exist.")
    return attachment
