"""Encryption at rest for private contact values (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    # Several comma-separated keys allow rotation: the first encrypts, all decrypt.
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def encrypt(value: str, keys: str) -> bytes:
    return _fernet(keys).encrypt(value.encode("utf-8"))


def decrypt(token: bytes, keys: str) -> str:
    try:
        return _fernet(keys).decrypt(token).decode("utf-8")
    except InvalidToken as exc:
        raise ValueError(
            "private contact cannot be decrypted with the configured LIFELINE_ENCRYPTION_KEY"
        ) from exc
