"""Uploaded staff files kept between the preview and the apply, so the apply uses exactly the previewed bytes.

Kept under ``<instance_dir>/imports/<random id>/`` (a shared volume when several web machines serve the app).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MAX_AGE_SECONDS = 24 * 3600
_ID = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


@dataclass(frozen=True)
class Upload:
    id: str
    organization_id: int
    user_id: int | None
    filename: str
    encoding: str
    uploaded_at: float


class UploadMissing(Exception):
    pass


def _root(instance_dir: Path) -> Path:
    return instance_dir / "imports"


def _folder(instance_dir: Path, upload_id: str) -> Path:
    # The id comes from a URL: only our own alphabet, so it can never name a path outside imports/.
    if not _ID.match(upload_id):
        raise UploadMissing(upload_id)
    return _root(instance_dir) / upload_id


def save(
    instance_dir: Path,
    *,
    data: bytes,
    organization_id: int,
    user_id: int | None,
    filename: str,
    encoding: str,
) -> Upload:
    purge_old(instance_dir)
    upload = Upload(
        id=secrets.token_urlsafe(24),
        organization_id=organization_id,
        user_id=user_id,
        filename=Path(filename or "upload.csv").name[:200],
        encoding=encoding,
        uploaded_at=time.time(),
    )
    folder = _folder(instance_dir, upload.id)
    folder.mkdir(parents=True, mode=0o700)
    (folder / "data").write_bytes(data)
    (folder / "meta.json").write_text(json.dumps(asdict(upload)), encoding="utf-8")
    return upload


def load(instance_dir: Path, upload_id: str, *, organization_id: int) -> tuple[Upload, bytes]:
    folder = _folder(instance_dir, upload_id)
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        data = (folder / "data").read_bytes()
    except (OSError, ValueError):
        raise UploadMissing(upload_id) from None
    upload = Upload(**meta)
    if upload.organization_id != organization_id or time.time() - upload.uploaded_at > MAX_AGE_SECONDS:
        raise UploadMissing(upload_id)
    return upload, data


def discard(instance_dir: Path, upload_id: str) -> None:
    with contextlib.suppress(UploadMissing):
        shutil.rmtree(_folder(instance_dir, upload_id), ignore_errors=True)


def purge_old(instance_dir: Path, *, now: float | None = None) -> None:
    root = _root(instance_dir)
    if not root.is_dir():
        return
    limit = (now or time.time()) - MAX_AGE_SECONDS
    for folder in root.iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < limit:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
