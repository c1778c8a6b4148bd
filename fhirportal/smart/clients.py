"""Registered SMART apps: the authlib client model over the ``oauth_client`` table.

A client is public (``token_endpoint_auth_method`` none: PKCE only), confidential symmetric
(``client_secret_basic`` / ``client_secret_post``, the secret stored hashed) or confidential
asymmetric (``private_key_jwt`` with a JWKS or a ``jwks_uri``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from authlib.oauth2.rfc6749 import ClientMixin
from flask import g, has_app_context
from joserfc.jwk import KeySet
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from fhirportal.store import clock
from fhirportal.store.auth_schema import oauth_client
from fhirportal.store.database import Database

from .secrets import digest, new_secret, same

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
JWKS_FETCH_TIMEOUT = 5


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret_hash: str | None
    client_metadata: dict
    previous_secret_hash: str | None = None  # accepted until ``previous_secret_expires_at`` (a rotation)
    previous_secret_expires_at: datetime | None = None

    # ------------------------------------------------------------------ authlib's ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        registered = self.client_metadata.get("scope")
        if not scope:
            return registered or ""
        return scope  # unknown scopes are dropped when the grant is decided, never fatal

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match, no prefixes or patterns

    def check_client_secret(self, client_secret: str) -> bool:
        offered = digest(client_secret)
        current = bool(self.client_secret_hash) and same(self.client_secret_hash, offered)
        previous = (bool(self.previous_secret_hash) and self.previous_secret_expires_at is not None
                    and clock.ensure_utc(self.previous_secret_expires_at) > clock.now()
                    and same(self.previous_secret_hash, offered))
        return current or previous

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method  # the same method at the token, revocation and introspection endpoints

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    # ------------------------------------------------------------------ metadata
    @property
    def name(self) -> str:
        return self.client_metadata.get("client_name") or self.client_id

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.client_metadata.get("redirect_uris") or [])

    @property
    def grant_types(self) -> list[str]:
        return list(self.client_metadata.get("grant_types") or ["authorization_code", "refresh_token"])

    @property
    def auth_method(self) -> str:
        return self.client_metadata.get("token_endpoint_auth_method") or "client_secret_basic"

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"

    @property
    def origins(self) -> set[str]:
        """Web origins of the redirect URIs (the CORS origins a browser app calls from)."""
        from urllib.parse import urlsplit

        origins = set()
        for uri in self.redirect_uris:
            parts = urlsplit(uri)
            if parts.scheme in ("http", "https") and parts.netloc:
                origins.add(f"{parts.scheme}://{parts.netloc}")
        return origins

    def public_keys(self, *, fresh: bool = False) -> KeySet:
        """The app's signature keys for ``private_key_jwt``: registered JWKS or fetched from ``jwks_uri``
        (kept for ``JWKS_MAX_AGE`` seconds; ``fresh``: fetched again unless that was moments ago — an
        assertion that does not verify may be signed with a key the app has just rotated in)."""
        jwks = self.client_metadata.get("jwks")
        if not jwks and self.client_metadata.get("jwks_uri"):
            jwks = fetched_jwks(self.client_metadata["jwks_uri"], JWKS_MIN_REFETCH if fresh else JWKS_MAX_AGE)
        return KeySet.import_key_set(jwks or {"keys": []})


JWKS_MAX_AGE = 300.0  # seconds a fetched JWKS is used without asking again
JWKS_MIN_REFETCH = 30.0  # at most one fetch per jwks_uri this often, however many assertions fail
_jwks_cache: dict[str, tuple[dict, float]] = {}  # jwks_uri -> (JWKS, when fetched); per process
_jwks_lock = threading.Lock()


def fetched_jwks(uri: str, max_age: float) -> dict:
    now = time.monotonic()
    with _jwks_lock:
        cached = _jwks_cache.get(uri)
    if cached is not None and now - cached[1] < max_age:
        return cached[0]
    response = requests.get(uri, timeout=JWKS_FETCH_TIMEOUT)
    response.raise_for_status()
    jwks = response.json()
    if not isinstance(jwks, dict):
        raise ValueError("the JWKS is not a JSON object")
    with _jwks_lock:
        _jwks_cache[uri] = (jwks, now)
    return jwks


def _new_client_id() -> str:
    """A random client_id that does not start with ``-`` or ``_`` (a command line would take ``-…`` for
    an option: ``fhirportal clients show -x…``)."""
    while True:
        client_id = new_secret(18)
        if client_id[0].isalnum():
            return client_id


class ClientStore:
    def __init__(self, database: Database):
        self.database = database

    def get(self, client_id: str | None) -> Client | None:
        """The registered client; looked up once per HTTP request (authlib asks several times)."""
        if not client_id or "\x00" in client_id:  # no client has a NUL in its id (PostgreSQL refuses to compare one)
            return None
        memo = g.setdefault("smart_clients", {}) if has_app_context() else {}
        if client_id not in memo:
            memo[client_id] = self._load(client_id)
        return memo[client_id]

    def _load(self, client_id: str) -> Client | None:
        with self.database.read() as conn:
            row = conn.execute(select(oauth_client).where(  # a disabled app is not known to the server
                oauth_client.c.client_id == client_id, oauth_client.c.disabled_at.is_(None))).first()
        if row is None:
            return None
        return Client(row.client_id, row.client_secret_hash, json.loads(row.client_metadata),
                      row.previous_secret_hash, row.previous_secret_expires_at)

    def rotate_secret(self, client_id: str, grace: timedelta) -> str:
        """A new secret for a confidential symmetric app (returned once, stored hashed); the one it had
        keeps working for ``grace`` (zero: stops now). LookupError for an unknown app, ValueError for an
        app without a secret."""
        secret = new_secret(32)
        with self.database.write() as conn:
            row = conn.execute(select(oauth_client.c.client_secret_hash).where(
                oauth_client.c.client_id == client_id).with_for_update()).first()
            if row is None:
                raise LookupError(f"no app with client_id {client_id!r}")
            if not row.client_secret_hash:
                raise ValueError(f"app {client_id!r} has no client secret (public, or private_key_jwt)")
            conn.execute(update(oauth_client).where(oauth_client.c.client_id == client_id).values(
                client_secret_hash=digest(secret), previous_secret_hash=row.client_secret_hash,
                previous_secret_expires_at=clock.now() + grace))
        return secret

    def register(self, client_metadata: dict, *, client_id: str | None = None,
                 client_secret: str | None = None) -> tuple[Client, str | None]:
        """Store a client; confidential symmetric clients get a secret (returned once, stored hashed)."""
        metadata = dict(client_metadata)
        for name in ("grant_types", "response_types", "redirect_uris"):
            value = metadata.get(name)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ValueError(f"{name} must be an array of strings")
        metadata.setdefault("grant_types", ["authorization_code", "refresh_token"])
        metadata.setdefault("response_types", ["code"] if "authorization_code" in metadata["grant_types"] else [])
        metadata.setdefault("token_endpoint_auth_method", "client_secret_basic")
        method = metadata["token_endpoint_auth_method"]
        if not isinstance(method, str) or method not in AUTH_METHODS:
            raise ValueError(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
        unknown = set(metadata["grant_types"]) - set(GRANT_TYPES)
        if unknown:
            raise ValueError(f"unsupported grant_types: {', '.join(sorted(unknown))}")
        if "authorization_code" in metadata["grant_types"] and not metadata.get("redirect_uris"):
            raise ValueError("redirect_uris is required for the authorization_code grant")
        if method == "private_key_jwt" and not (metadata.get("jwks") or metadata.get("jwks_uri")):
            raise ValueError("private_key_jwt needs jwks or jwks_uri")
        if metadata.get("jwks"):
            KeySet.import_key_set(metadata["jwks"])  # refuses malformed keys now, not at first use
        client_id = client_id or _new_client_id()
        client_secret = (client_secret or new_secret(32)) if method.startswith("client_secret") else None
        with self.database.write() as conn:
            conn.execute(insert(oauth_client).values(
                client_id=client_id, client_secret_hash=digest(client_secret) if client_secret else None,
                client_metadata=json.dumps(metadata, sort_keys=True), issued_at=int(time.time())))
        return Client(client_id, digest(client_secret) if client_secret else None, metadata), client_secret

    def ensure(self, client_id: str, client_metadata: dict) -> None:
        """The server's own app (the portal) registered with exactly this metadata: created when missing,
        updated when the metadata changed (a new base URL); several workers may race to create it."""
        found = self._load(client_id)
        if found is not None and found.client_metadata == client_metadata:
            return
        if found is None:
            with contextlib.suppress(IntegrityError):  # another worker registered it first
                self.register(client_metadata, client_id=client_id)
        else:
            with self.database.write() as conn:
                conn.execute(update(oauth_client).where(oauth_client.c.client_id == client_id).values(
                    client_metadata=json.dumps(client_metadata, sort_keys=True)))
        if has_app_context():
            g.pop("smart_clients", None)
