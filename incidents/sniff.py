"""What an uploaded file really is, from its first bytes. Pure.

The browser's content type and the file name are whatever the sender says; a post's attachment is served with the
type its bytes show, so a PDF named ``photo.png`` is a PDF and an executable named anything is refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class FileKind:
    content_type: str
    extension: str
    is_image: bool


JPEG = FileKind("image/jpeg", ".jpg", True)
PNG = FileKind("image/png", ".png", True)
PDF = FileKind("application/pdf", ".pdf", False)

_SIGNATURES: tuple[tuple[bytes, FileKind], ...] = (
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"%PDF-", PDF),
)


class AttachmentRefused(ValueError):
    """The file cannot be attached; the message says why (translatable)."""


def sniff(data: bytes) -> FileKind | None:
    """The kind of file ``data`` is, or None when it is none of the accepted kinds."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    return None


_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


def safe_filename(name: str, kind: FileKind) -> str:
    """A display name without folders or control characters, ending in the extension of what the file is."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    stem = unicodedata.normalize("NFC", base).rsplit(".", 1)[0] if "." in base else base
    stem = _UNSAFE.sub("_", stem).strip(" ._")[:100] or "attachment"
    return stem + kind.extension


def check_attachment(name: str, data: bytes, *, limit: int = MAX_ATTACHMENT_BYTES) -> tuple[FileKind, str]:
    """``(kind, display name)`` of an acceptable attachment; raises :class:`AttachmentRefused` otherwise."""
    if not data:
        raise AttachmentRefused("The file is empty.")
    if len(data) > limit:
        raise AttachmentRefused("The file is larger than 10 MB.")
    kind = sniff(data)
    if kind is None:
        raise AttachmentRefused("Only photos (JPEG, PNG) and PDF files can be attached.")
    return kind, safe_filename(name, kind)
