"""What an operator does to apps, accounts and tokens (``fhirportal clients|accounts|tokens``).

Disabling an app or an account ends every token and refresh token it holds in the same transaction
(like revoking a patient's portal access): the next request with any of them is refused, on every
worker and node, since tokens are looked up in the database. A disabled app is not found by the
authorization server at all (no authorization, token or refresh); a disabled account cannot sign in
and its sign-in sessions end. Every change is journalled in the access log (client
``fhirportal-admin``), so that it shows in the AuditEvents staff read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from fhirportal.fhir.audit import Access, AccessLog
from fhirportal.store import clock
from fhirportal.store.auth_schema import account, account_patient, login_session, oauth_client, oauth_token

from .server import SmartServer

ACTOR = "fhirportal-admin"  # the access log's client for what an operator did with the command


@dataclass(frozen=True)
class AppEntry:
    client_id: str
    name: str
    auth_method: str
    grant_types: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    scope: str | None
    disabled_at: datetime | None
    live_tokens: int


@dataclass(frozen=True)
class AccountEntry:
    id: int
    username: str
    kind: str
    fhir_user: str | None
    roles: tuple[str, ...]
    patients: tuple[str, ...]
    active: bool
    locked_until: datetime | None  # a lockout after failed sign-ins, while it lasts
    live_tokens: int
    sessions: int


class UnknownTarget(LookupError):
    """No app or account by that name."""


def _live(now: datetime):
    return and_(oauth_token.c.revoked_at.is_(None),
                or_(oauth_token.c.expires_at > now, oauth_token.c.refresh_expires_at > now))


class Admin:
    def __init__(self, smart: SmartServer, access_log: AccessLog):
        self.smart = smart
        self.database = smart.database
        self.access_log = access_log

    # ------------------------------------------------------------------ apps
    def apps(self, client_id: str | None = None) -> list[AppEntry]:
        now = clock.now()
        live = (select(oauth_token.c.client_id, func.count().label("n")).where(_live(now))
                .group_by(oauth_token.c.client_id).subquery())
        query = (select(oauth_client, func.coalesce(live.c.n, 0).label("live_tokens"))
                 .outerjoin(live, live.c.client_id == oauth_client.c.client_id).order_by(oauth_client.c.client_id))
        if client_id is not None:
            query = query.where(oauth_client.c.client_id == client_id)
        with self.database.read() as conn:
            rows = conn.execute(query).all()
        entries = []
        for row in rows:
            metadata = json.loads(row.client_metadata)
            entries.append(AppEntry(
                row.client_id, metadata.get("client_name") or row.client_id,
                metadata.get("token_endpoint_auth_method") or "client_secret_basic",
                tuple(metadata.get("grant_types") or ()), tuple(metadata.get("redirect_uris") or ()),
                metadata.get("scope"), row.disabled_at and clock.ensure_utc(row.disabled_at), row.live_tokens))
        return entries

    def set_app_enabled(self, client_id: str, enabled: bool) -> int:
        """Enable or disable an app; disabling revokes its tokens. The number of tokens revoked."""
        with self.database.write() as conn:
            found = conn.execute(update(oauth_client).where(oauth_client.c.client_id == client_id).values(
                disabled_at=None if enabled else clock.now())).rowcount
            if not found:
                raise UnknownTarget(f"no app with client_id {client_id!r}")
            revoked = 0 if enabled else self._revoke(conn, oauth_token.c.client_id == client_id)
        self._journal("client-enable" if enabled else "client-disable", f"client {client_id}")
        return revoked

    def rotate_client_secret(self, client_id: str, grace: timedelta) -> str:
        """A new secret (returned once); the old one works for ``grace`` more."""
        try:
            secret = self.smart.clients.rotate_secret(client_id, grace)
        except LookupError as exc:
            raise UnknownTarget(f"no app with client_id {client_id!r}") from exc
        self._journal("client-rotate-secret", f"client {client_id}")
        return secret

    # ------------------------------------------------------------------ accounts
    def accounts(self, username: str | None = None, kind: str | None = None) -> list[AccountEntry]:
        now = clock.now()
        live = (select(oauth_token.c.account_id, func.count().label("n")).where(_live(now))
                .group_by(oauth_token.c.account_id).subquery())
        sessions = (select(login_session.c.account_id, func.count().label("n"))
                    .where(login_session.c.expires_at > now).group_by(login_session.c.account_id).subquery())
        query = (select(account, func.coalesce(live.c.n, 0).label("live_tokens"),
                        func.coalesce(sessions.c.n, 0).label("sessions"))
                 .outerjoin(live, live.c.account_id == account.c.id)
                 .outerjoin(sessions, sessions.c.account_id == account.c.id).order_by(account.c.username))
        if username is not None:
            query = query.where(account.c.username == username)
        if kind is not None:
            query = query.where(account.c.kind == kind)
        with self.database.read() as conn:
            rows = conn.execute(query).all()
            patients: dict[int, list[str]] = {}
            links = select(account_patient).order_by(account_patient.c.patient_id)
            if username is not None:
                links = links.where(account_patient.c.account_id.in_([row.id for row in rows]))
            for link in conn.execute(links):
                patients.setdefault(link.account_id, []).append(link.patient_id)
        return [AccountEntry(
            row.id, row.username, row.kind, row.fhir_user, tuple(row.roles.split()), tuple(patients.get(row.id, ())),
            row.active, _still_locked(row.locked_until, now), row.live_tokens, row.sessions) for row in rows]

    def set_account_enabled(self, username: str, enabled: bool) -> int:
        """Enable or disable an account; disabling ends its sessions and revokes its tokens. The number of
        tokens revoked."""
        with self.database.write() as conn:
            account_id = self._account_id(conn, username)
            conn.execute(update(account).where(account.c.id == account_id).values(active=enabled))
            revoked = 0
            if not enabled:
                conn.execute(delete(login_session).where(login_session.c.account_id == account_id))
                revoked = self._revoke(conn, oauth_token.c.account_id == account_id)
        self._journal("account-enable" if enabled else "account-disable", f"account {username}")
        return revoked

    def unlock(self, username: str) -> bool:
        """End a sign-in lockout (and the count of failed attempts); whether the account was locked."""
        now = clock.now()
        with self.database.write() as conn:
            account_id = self._account_id(conn, username)
            row = conn.execute(select(account.c.locked_until).where(account.c.id == account_id)).one()
            conn.execute(update(account).where(account.c.id == account_id).values(failed_logins=0, locked_until=None))
        self._journal("account-unlock", f"account {username}")
        return _still_locked(row.locked_until, now) is not None

    # ------------------------------------------------------------------ tokens
    def revoke_tokens(self, *, client_id: str | None = None, username: str | None = None) -> int:
        """Revoke every live token of an app, of an account, or of an account with one app."""
        if client_id is None and username is None:
            raise ValueError("name an app (client_id), an account (username) or both")
        with self.database.write() as conn:
            where = []
            if client_id is not None:
                if conn.execute(select(oauth_client.c.client_id).where(
                        oauth_client.c.client_id == client_id)).first() is None:
                    raise UnknownTarget(f"no app with client_id {client_id!r}")
                where.append(oauth_token.c.client_id == client_id)
            if username is not None:
                account_id = self._account_id(conn, username)
                where.append(oauth_token.c.account_id == account_id)
            revoked = self._revoke(conn, and_(*where))
        target = " ".join(part for part in (client_id and f"client {client_id}", username and f"account {username}")
                          if part)
        self._journal("tokens-revoke", target)
        return revoked

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _account_id(conn: Connection, username: str) -> int:
        found = conn.execute(select(account.c.id).where(account.c.username == username)).scalar()
        if found is None:
            raise UnknownTarget(f"no account {username!r}")
        return found

    @staticmethod
    def _revoke(conn: Connection, where) -> int:
        return conn.execute(update(oauth_token).where(where, oauth_token.c.revoked_at.is_(None)).values(
            revoked_at=clock.now())).rowcount

    def _journal(self, action: str, target: str) -> None:
        """One access-log row: who acted is the operator's command (not the account acted upon: that one
        did not act); the query names the app or account."""
        self.access_log.write([Access(action=action, resource_type=None, query=target, outcome=200,
                                      client_id=ACTOR)])


def _still_locked(locked_until: datetime | None, now: datetime) -> datetime | None:
    if locked_until is None:
        return None
    until = clock.ensure_utc(locked_until)
    return until if until > now else None
