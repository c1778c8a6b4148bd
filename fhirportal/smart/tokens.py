"""Access and refresh tokens: issued, looked up, rotated and revoked in the database.

Tokens are opaque random strings; only their SHA-256 digests are stored, so a copy of the database
holds no usable token. Every lookup reads the row, so a revocation takes effect on the next request
in every worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from fhirportal.store import clock
from fhirportal.store.auth_schema import oauth_token
from fhirportal.store.database import Database, DriverQuery

from .access import AccessContext
from .scopes import parse_scopes
from .secrets import digest, new_secret

ACCESS_TOKEN_LIFETIME = 3600
REFRESH_TOKEN_LIFETIME = 90 * 24 * 3600
ONLINE_REFRESH_TOKEN_LIFETIME = 12 * 3600


@dataclass(frozen=True)
class TokenRecord:
    """A stored token row, as the introspection and refresh paths need it."""

    id: int
    grant_id: str
    client_id: str
    account_id: int | None
    scope: str
    context: dict
    issued_at: datetime
    expires_at: datetime
    refresh_expires_at: datetime | None
    refreshed_at: datetime | None
    revoked_at: datetime | None

    @property
    def access_active(self) -> bool:
        return self.revoked_at is None and clock.ensure_utc(self.expires_at) > clock.now()

    @property
    def refresh_active(self) -> bool:
        return (self.revoked_at is None and self.refreshed_at is None and self.refresh_expires_at is not None
                and clock.ensure_utc(self.refresh_expires_at) > clock.now())


def _record(row) -> TokenRecord:
    return TokenRecord(row.id, row.grant_id, row.client_id, row.account_id, row.scope, json.loads(row.context),
                       row.issued_at, row.expires_at, row.refresh_expires_at, row.refreshed_at, row.revoked_at)


_UNREVOKED_ACCESS_TOKEN = select(
    oauth_token.c.id, oauth_token.c.client_id, oauth_token.c.account_id, oauth_token.c.scope, oauth_token.c.context,
    oauth_token.c.expires_at,
).where(oauth_token.c.access_token_hash == bindparam("digest"), oauth_token.c.revoked_at.is_(None))


class TokenStore:
    def __init__(self, database: Database, resource_types):
        self.database = database
        self.resource_types = frozenset(resource_types)
        self._unrevoked = DriverQuery(_UNREVOKED_ACCESS_TOKEN, database.engine.dialect)

    # ------------------------------------------------------------------ issuing
    def issue(self, conn: Connection, *, client_id: str, scope: str, account_id: int | None, context: dict,
              refresh: bool = False, grant_id: str | None = None, code_hash: str | None = None,
              expires_in: int = ACCESS_TOKEN_LIFETIME, access_token: str | None = None,
              refresh_token: str | None = None) -> dict:
        """Store a new token (generated here unless given) and return the token response members.

        A refresh token lives 90 days under ``offline_access`` and 12 hours under ``online_access``.
        """
        now = clock.now()
        access_token = access_token or new_secret()
        refresh_token = refresh_token or (new_secret() if refresh else None)
        lifetime = REFRESH_TOKEN_LIFETIME if "offline_access" in scope.split() else ONLINE_REFRESH_TOKEN_LIFETIME
        conn.execute(insert(oauth_token).values(
            access_token_hash=digest(access_token),
            refresh_token_hash=digest(refresh_token) if refresh_token else None,
            grant_id=grant_id or new_secret(16), client_id=client_id, account_id=account_id, scope=scope,
            context=json.dumps(context, sort_keys=True), code_hash=code_hash, issued_at=now,
            expires_at=now + timedelta(seconds=expires_in),
            refresh_expires_at=now + timedelta(seconds=lifetime) if refresh_token else None,
        ))
        token = {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in, "scope": scope}
        if refresh_token:
            token["refresh_token"] = refresh_token
        return token

    def mint(self, *, client_id: str, scope: str, account_id: int | None = None, context: dict | None = None,
             expires_in: int = ACCESS_TOKEN_LIFETIME) -> str:
        """An access token in its own transaction (CLI, tests, staff tooling)."""
        with self.database.write() as conn:
            return self.issue(conn, client_id=client_id, scope=scope, account_id=account_id,
                              context=context or {}, expires_in=expires_in)["access_token"]

    # ------------------------------------------------------------------ lookups
    def find_access(self, conn: Connection, access_token: str) -> TokenRecord | None:
        row = conn.execute(select(oauth_token).where(
            oauth_token.c.access_token_hash == digest(access_token))).first()
        return _record(row) if row else None

    def find_refresh(self, conn: Connection, refresh_token: str) -> TokenRecord | None:
        row = conn.execute(select(oauth_token).where(
            oauth_token.c.refresh_token_hash == digest(refresh_token))).first()
        return _record(row) if row else None

    def access_context(self, record: TokenRecord) -> AccessContext:
        return self._access_context(record.id, record.client_id, record.account_id, record.scope,
                                    json.dumps(record.context, sort_keys=True))

    @lru_cache(maxsize=4096)  # noqa: B019  (one TokenStore per server; rows are immutable but for revocation)
    def _access_context(self, token_id: int, client_id: str, account_id: int | None, scope: str,
                        context_text: str) -> AccessContext:
        context = json.loads(context_text)
        return AccessContext(
            scopes=parse_scopes(scope, self.resource_types), client_id=client_id, token_id=token_id,
            account_id=account_id, patient=context.get("patient"), encounter=context.get("encounter"),
            fhir_user=context.get("fhirUser"), organization=context.get("organization"))

    def lookup(self, conn: Connection, access_token: str) -> AccessContext | None:
        """The rights of an active access token (unknown, expired and revoked ones: None), read in
        ``conn`` on every FHIR request: one prebuilt indexed lookup on the driver's cursor
        (``DriverQuery``); the rights of a token row are parsed once per process."""
        row = self._unrevoked.first(conn, digest=digest(access_token))
        if row is None:
            return None
        token_id, client_id, account_id, scope, context, expires_at = row
        if clock.ensure_utc(expires_at) <= clock.now():
            return None
        return self._access_context(token_id, client_id, account_id, scope, context)

    def authenticate(self, access_token: str) -> AccessContext | None:
        """The rights of an active access token, or None (unknown, expired or revoked)."""
        with self.database.read() as conn:
            return self.lookup(conn, access_token)

    # ------------------------------------------------------------------ ending
    def mark_refreshed(self, conn: Connection, record: TokenRecord) -> bool:
        """Use a refresh token once (rotation); False if another request used it first."""
        result = conn.execute(update(oauth_token).where(
            oauth_token.c.id == record.id, oauth_token.c.refreshed_at.is_(None)).values(refreshed_at=clock.now()))
        return result.rowcount == 1

    def revoke_grant(self, conn: Connection, grant_id: str) -> None:
        conn.execute(update(oauth_token).where(
            oauth_token.c.grant_id == grant_id, oauth_token.c.revoked_at.is_(None)).values(revoked_at=clock.now()))

    def revoke_code(self, conn: Connection, code_hash: str) -> None:
        """Every token issued from an authorization code (and their rotations): the code was replayed."""
        grants = select(oauth_token.c.grant_id).where(oauth_token.c.code_hash == code_hash).scalar_subquery()
        conn.execute(update(oauth_token).where(
            oauth_token.c.grant_id.in_(grants), oauth_token.c.revoked_at.is_(None)).values(revoked_at=clock.now()))

    def revoke_app(self, conn: Connection, account_id: int, client_id: str) -> int:
        """A user withdraws an app's access: all of its tokens for that user."""
        return conn.execute(update(oauth_token).where(and_(
            oauth_token.c.account_id == account_id, oauth_token.c.client_id == client_id,
            oauth_token.c.revoked_at.is_(None))).values(revoked_at=clock.now())).rowcount

    def revoke_account(self, conn: Connection, account_id: int) -> int:
        """Every token of an account, whatever app holds it (portal access revoked)."""
        return conn.execute(update(oauth_token).where(
            oauth_token.c.account_id == account_id, oauth_token.c.revoked_at.is_(None)).values(
            revoked_at=clock.now())).rowcount

    def revoke_session(self, conn: Connection, account_id: int, sids: list[str]) -> int:
        """Sessions ended (signed out): every token issued in them ends too, but for ``offline_access``
        grants, which are meant to outlive a sign-in. The grants ended."""
        rows = conn.execute(select(oauth_token.c.grant_id, oauth_token.c.scope, oauth_token.c.context).where(
            oauth_token.c.account_id == account_id, oauth_token.c.revoked_at.is_(None))).all()
        wanted = set(sids)
        grants = {row.grant_id for row in rows
                  if json.loads(row.context).get("sid") in wanted and "offline_access" not in row.scope.split()}
        for grant_id in grants:
            self.revoke_grant(conn, grant_id)
        return len(grants)

    def narrow_app(self, conn: Connection, account_id: int, client_id: str, scope: str) -> int:
        """A user narrows what an app may do: every live token of the app for that user gets ``scope``
        (checked by the caller to be within what it had); a refresh can only shrink it further."""
        return conn.execute(update(oauth_token).where(and_(
            oauth_token.c.account_id == account_id, oauth_token.c.client_id == client_id,
            oauth_token.c.revoked_at.is_(None))).values(scope=scope)).rowcount

    def authorized_apps(self, conn: Connection, account_id: int) -> list[tuple[str, str, datetime]]:
        """(client_id, scope, last issued) of the apps holding live tokens of an account."""
        now = clock.now()
        rows = conn.execute(select(oauth_token.c.client_id, oauth_token.c.scope, oauth_token.c.issued_at).where(
            oauth_token.c.account_id == account_id, oauth_token.c.revoked_at.is_(None),
            (oauth_token.c.expires_at > now) | (oauth_token.c.refresh_expires_at > now),
        ).order_by(oauth_token.c.issued_at.desc())).all()
        latest: dict[str, tuple[str, str, datetime]] = {}
        for row in rows:
            latest.setdefault(row.client_id, (row.client_id, row.scope, row.issued_at))
        return list(latest.values())
