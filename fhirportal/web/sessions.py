"""The portal's browser sessions: an opaque id in a cookie, the rest sealed in the app's session table.

The cookie (``fhirportal_portal``, HttpOnly, SameSite=Lax, path ``/``, Secure under an https
base URL) holds a random id and nothing else. The row is found by the id's SHA-256 digest and its
content (the sign-in's state, nonce and PKCE verifier; then the tokens) is sealed with AES-GCM under a
key derived from the id (HKDF), so the table alone opens nothing. Signing in moves the session to a
new id (no fixation). Tokens are refreshed a little before they expire by one request at a time (a
refresh token is good once: a claim in the row decides who); the others keep using the current token.

The store is handed over by the app factory (``WebSessionStore`` in the store layer): this package
never imports the store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .client import ApiError, OAuth

COOKIE = "fhirportal_portal"
SIGNING_IN = timedelta(minutes=15)  # a session that only holds a sign-in in progress
SIGNED_IN = timedelta(hours=8)  # as long as the authorization server's own session
REFRESH_AHEAD = 120  # seconds before the access token expires
REFRESH_CLAIM = 20  # seconds one request holds the right to refresh
WAIT_FOR_REFRESH = 5.0  # seconds another request waits for it when its own token already expired


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _key(session_id: str) -> AESGCM:
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fhirportal web session").derive(
        session_id.encode())
    return AESGCM(material)


def seal(session_id: str, content: dict) -> str:
    nonce = os.urandom(12)
    sealed = _key(session_id).encrypt(nonce, json.dumps(content).encode(), digest(session_id).encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(session_id: str, text: str) -> dict | None:
    try:
        raw = base64.urlsafe_b64decode(text.encode())
        return json.loads(_key(session_id).decrypt(raw[:12], raw[12:], digest(session_id).encode()))
    except (InvalidTag, ValueError):
        return None


@dataclass
class WebSession:
    """A browser's session: ``pending`` while signing in (state, nonce, verifier), then the tokens."""

    session_id: str
    csrf_token: str
    content: dict = field(default_factory=dict)

    @property
    def signed_in(self) -> bool:
        return bool(self.content.get("access_token"))

    @property
    def patient(self) -> str | None:
        return self.content.get("patient")

    @property
    def pending(self) -> dict | None:
        return self.content.get("pending")


class SessionEnded(Exception):
    """The session's grant is gone (revoked, expired, password reset): sign in again."""


class Sessions:
    def __init__(self, store, oauth: OAuth):
        self.store = store
        self.oauth = oauth

    # ------------------------------------------------------------------ the cookie's session
    def load(self, session_id: str | None) -> WebSession | None:
        if not session_id or len(session_id) > 100:
            return None
        row = self.store.get(digest(session_id))
        content = unseal(session_id, row.sealed) if row else None
        if content is None:
            return None
        return WebSession(session_id, row.csrf_token, content)

    def start(self, content: dict) -> WebSession:
        """A new session (a new id) holding ``content`` (a sign-in in progress)."""
        session = WebSession(secrets.token_urlsafe(32), secrets.token_urlsafe(24), content)
        self.store.create(digest(session.session_id), seal(session.session_id, content), session.csrf_token,
                          SIGNING_IN)
        return session

    def save(self, session: WebSession) -> None:
        self.store.store_refreshed(digest(session.session_id), seal(session.session_id, session.content))

    def signed_in(self, old: WebSession, token: dict) -> WebSession | None:
        """The tokens of a finished sign-in, under a new id (the old one, that the browser had before
        signing in, stops working); None if the old session was used meanwhile."""
        content = {key: token.get(key) for key in ("access_token", "refresh_token", "id_token", "scope", "patient",
                                                   "patient_choices")}
        content["expires_at"] = time.time() + int(token.get("expires_in") or 0)
        content.update(old.content.get("identity", {}))
        session = WebSession(secrets.token_urlsafe(32), secrets.token_urlsafe(24), content)
        if not self.store.replace(digest(old.session_id), digest(session.session_id),
                                  seal(session.session_id, content), session.csrf_token, SIGNED_IN):
            return None
        return session

    def forget(self, session: WebSession) -> None:
        """Drop the row (its tokens are already dead)."""
        self.store.delete(digest(session.session_id))

    def end(self, session: WebSession) -> None:
        """Sign out: the tokens revoked at the authorization server, the row deleted."""
        self.store.delete(digest(session.session_id))
        for name, hint in (("refresh_token", "refresh_token"), ("access_token", "access_token")):
            if session.content.get(name):
                self.oauth.revoke(session.content[name], hint)

    # ------------------------------------------------------------------ the access token
    def access_token(self, session: WebSession) -> str:
        """A current access token, refreshed when it is about to expire (SessionEnded when it cannot be)."""
        content = session.content
        if content["expires_at"] - time.time() > REFRESH_AHEAD or not content.get("refresh_token"):
            if content["expires_at"] <= time.time():
                raise SessionEnded()
            return content["access_token"]
        key = digest(session.session_id)
        if self.store.claim_refresh(key, REFRESH_CLAIM):
            try:
                token = self.oauth.refresh(content["refresh_token"])
            except ApiError as error:
                self.store.delete(key)
                raise SessionEnded() from error
            content.update({k: token[k] for k in ("access_token", "refresh_token", "scope") if token.get(k)})
            content["expires_at"] = time.time() + int(token.get("expires_in") or 0)
            self.save(session)
            return content["access_token"]
        if content["expires_at"] > time.time():
            return content["access_token"]  # another request is refreshing; this token still works
        deadline = time.monotonic() + WAIT_FOR_REFRESH
        while time.monotonic() < deadline:
            time.sleep(0.1)
            again = self.load(session.session_id)
            if again is None:
                raise SessionEnded()
            if again.content["expires_at"] > time.time():
                session.content = again.content
                return again.content["access_token"]
        raise SessionEnded()
