"""Bulletin boards: admins create them, staff read and post through their own link, the creator moderates."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from core import db
from incidents import boards
from incidents.models import Attachment, Board, Notification, Post
from tests.factories import csrf_from, login, make_org, make_staff, post_form
from tests.incidents.conftest import World

PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 20
EXE_BYTES = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64


def _board(world: World, title: str = "災害時の指示 / Instructions") -> Board:
    return boards.create_board(organization_id=world.org.id, title=title, user=world.admin, is_admin=True)


def _staff_post(
    client: FlaskClient, token: str, board_id: int, body: str, files: list[tuple[bytes, str]] = ()
) -> Any:  # type: ignore[assignment]
    page = client.get(f"/boards/{token}/{board_id}")
    assert page.status_code == 200
    data: dict[str, Any] = {"csrf_token": csrf_from(page.text), "body": body}
    if files:
        data["files"] = [(io.BytesIO(content), name) for content, name in files]
    return client.post(f"/boards/{token}/{board_id}", data=data, content_type="multipart/form-data")


def _posts(board_id: int) -> list[Post]:
    return list(db.session.scalars(select(Post).where(Post.board_id == board_id).order_by(Post.id)))


def test_only_admins_create_boards(client: FlaskClient, world: World) -> None:
    login(client, world.crisis)
    page = client.get("/incidents/boards")
    assert page.status_code == 200 and "New board" not in page.text
    response = client.post(
        "/incidents/boards", data={"title": "勝手な掲示板", "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 403
    assert db.session.scalars(select(Board).where(Board.organization_id == world.org.id)).all() == []


def test_admin_creates_a_board_one_per_topic(client: FlaskClient, world: World) -> None:
    login(client, world.admin)
    assert (
        post_form(client, "/incidents/boards", title="出社判断", description="出社の可否").status_code == 302
    )
    titles = db.session.scalars(select(Board.title).where(Board.organization_id == world.org.id)).all()
    assert titles == ["出社判断"]
    post_form(client, "/incidents/boards", title="出社判断")
    assert (
        len(db.session.scalars(select(Board.title).where(Board.organization_id == world.org.id)).all()) == 1
    )


def test_staff_post_with_their_link_and_the_creator_is_notified(client: FlaskClient, world: World) -> None:
    board = _board(world)
    person = make_staff(world.org, site=world.tokyo, name="田中 花子")
    listing = client.get(f"/boards/{person.self_service_token}")
    assert listing.status_code == 200 and board.title in listing.text
    assert listing.headers["Cache-Control"] == "no-store"
    response = _staff_post(client, person.self_service_token, board.id, "3階の窓ガラスが割れています。")
    assert response.status_code == 302
    (post,) = _posts(board.id)
    assert post.staff_id == person.id and post.author_name == "田中 花子" and post.user_id is None
    note = db.session.scalars(select(Notification).where(Notification.user_id == world.admin.id)).one()
    assert note.kind == "board.post" and "3階の窓ガラスが割れています。" in note.text and note.mail_due
    assert (
        "3階の窓ガラスが割れています。" in client.get(f"/boards/{person.self_service_token}/{board.id}").text
    )


def test_a_post_without_the_form_token_is_refused(client: FlaskClient, world: World) -> None:
    board = _board(world)
    person = make_staff(world.org)
    response = client.post(f"/boards/{person.self_service_token}/{board.id}", data={"body": "forged"})
    assert response.status_code == 400
    assert _posts(board.id) == []


def test_unknown_or_foreign_links_are_404(client: FlaskClient, world: World) -> None:
    board = _board(world)
    assert client.get("/boards/not-a-real-token").status_code == 404
    assert client.get(f"/boards/not-a-real-token/{board.id}").status_code == 404
    stranger = make_staff(make_org(name="Other Co."))
    assert client.get(f"/boards/{stranger.self_service_token}/{board.id}").status_code == 404
    assert board.title not in client.get(f"/boards/{stranger.self_service_token}").text


def test_pinned_instructions_stay_on_top_and_hidden_posts_disappear(
    client: FlaskClient, world: World, tmp_path: Path
) -> None:
    board = _board(world)
    person = make_staff(world.org, name="鈴木 一郎")
    boards.add_post(
        board=board,
        body="まず身の安全を確保してください。",
        user=world.admin,
        pinned=True,
        instance_dir=tmp_path,
    )
    boards.add_post(board=board, body="普通の報告です。", staff=person, instance_dir=tmp_path)
    harmful = boards.add_post(board=board, body="デマ: 本社が倒壊", staff=person, instance_dir=tmp_path)
    assert next(p.body for p in boards.visible_posts(board_id=board.id)) == "まず身の安全を確保してください。"

    login(client, world.admin)
    page = client.get(f"/incidents/boards/{board.id}")
    response = client.post(
        f"/incidents/boards/{board.id}/posts/{harmful.id}/hide",
        data={"reason": "誤情報", "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 302
    staff_page = client.get(f"/boards/{person.self_service_token}/{board.id}").text
    assert "デマ: 本社が倒壊" not in staff_page
    assert staff_page.index("まず身の安全を確保してください。") < staff_page.index("普通の報告です。")
    # The moderator still sees it, marked hidden.
    assert "デマ: 本社が倒壊" in client.get(f"/incidents/boards/{board.id}").text


def test_only_the_creator_and_admins_moderate(world: World, tmp_path: Path) -> None:
    import pytest

    from core.errors import Forbidden

    board = _board(world)
    post = boards.add_post(board=board, body="x", staff=make_staff(world.org), instance_dir=tmp_path)
    with pytest.raises(Forbidden):
        boards.hide_post(board=board, post=post, user=world.crisis)
    with pytest.raises(Forbidden):
        boards.add_post(board=board, body="pinned?", user=world.crisis, pinned=True, instance_dir=tmp_path)
    boards.hide_post(board=board, post=post, user=world.admin, reason="test")
    assert post.hidden_at is not None


def test_attachments_are_typed_by_their_bytes_and_served_safely(
    app: Any, client: FlaskClient, world: World
) -> None:
    board = _board(world)
    person = make_staff(world.org)
    token = person.self_service_token
    response = _staff_post(
        client, token, board.id, "被害写真と報告書", [(PDF_BYTES, "photo.png"), (PNG_BYTES, "窓.png")]
    )
    assert response.status_code == 302
    (post,) = _posts(board.id)
    pdf, png = sorted(post.attachments, key=lambda a: a.id)
    assert (pdf.content_type, pdf.filename) == ("application/pdf", "photo.pdf")
    assert (png.content_type, png.filename) == ("image/png", "窓.png")
    instance_dir = app.extensions["lifeline.settings"].instance_dir
    stored = instance_dir / "attachments" / pdf.storage_name
    assert stored.read_bytes() == PDF_BYTES

    served = client.get(f"/boards/{token}/files/{pdf.id}")
    assert served.status_code == 200 and served.data == PDF_BYTES
    assert served.mimetype == "application/pdf"
    assert served.headers["Content-Disposition"].startswith("attachment;")
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    image = client.get(f"/boards/{token}/files/{png.id}")
    assert image.mimetype == "image/png" and image.headers["Content-Disposition"].startswith("inline;")
    # Another organization's link cannot fetch it.
    stranger = make_staff(make_org(name="Other Co."))
    assert client.get(f"/boards/{stranger.self_service_token}/files/{pdf.id}").status_code == 404


def test_executables_and_huge_files_are_refused_and_nothing_is_kept(
    app: Any, client: FlaskClient, world: World
) -> None:
    board = _board(world)
    person = make_staff(world.org)
    instance_dir = app.extensions["lifeline.settings"].instance_dir
    before = (
        set((instance_dir / "attachments").glob("*")) if (instance_dir / "attachments").exists() else set()
    )
    response = _staff_post(
        client, person.self_service_token, board.id, "ファイル", [(EXE_BYTES, "setup.exe")]
    )
    assert response.status_code == 422
    assert "添付できるのは写真(JPEG・PNG)とPDFのみです。" in response.text  # the person's language
    response = _staff_post(
        client,
        person.self_service_token,
        board.id,
        "大きい",
        [(b"%PDF-" + b"0" * (10 * 1024 * 1024), "big.pdf")],
    )
    assert response.status_code == 422
    assert _posts(board.id) == []
    after = (
        set((instance_dir / "attachments").glob("*")) if (instance_dir / "attachments").exists() else set()
    )
    assert after == before


def test_a_rolled_back_post_leaves_no_file(app: Any, world: World) -> None:
    board = _board(world)
    instance_dir = app.extensions["lifeline.settings"].instance_dir
    nested = db.session.begin_nested()
    post = boards.add_post(
        board=board,
        body="x",
        staff=make_staff(world.org),
        uploads=[boards.Upload("a.pdf", PDF_BYTES)],
        instance_dir=instance_dir,
    )
    path = boards.attachment_path(instance_dir, post.attachments[0])
    assert path.exists()
    nested.rollback()
    db.session.rollback()
    assert not path.exists()
    assert db.session.scalars(select(Attachment).where(Attachment.storage_name == path.name)).all() == []
