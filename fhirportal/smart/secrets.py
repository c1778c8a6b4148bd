"""Generating and hashing the server's secrets (tokens, codes, launch values, session ids, PINs).

High-entropy values the server generates are stored as SHA-256 digests (a lookup by digest is
exact and fast); passwords people choose are hashed with Argon2id (memory-hard, salted).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_PASSWORDS = PasswordHasher()
# A fixed hash to verify against when the account does not exist, so timing does not tell.
_DUMMY_HASH = _PASSWORDS.hash("not-a-real-password")


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str) -> str:
    return _PASSWORDS.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _PASSWORDS.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
