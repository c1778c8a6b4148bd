"""People who sign in: staff and portal accounts, password checks with lockout, browser sessions.

Failed sign-ins are counted in the database (so every worker sees them): after
``MAX_FAILED_LOGINS`` the account is locked for ``LOCKOUT``. Sessions are random ids whose digests
are stored with the CSRF token of the forms shown in that session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update

from fhirportal.observability import metrics
from fhirportal.store import clock
from fhirportal.store.auth_schema import account, account_patient, login_session
from fhirportal.store.database import Database

from .secrets import digest, hash_password, new_secret, verify_password

MAX_FAILED_LOGINS = 5
log = logging.getLogger(__name__)
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=8)
KINDS = ("staff", "patient")


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    kind: str
    fhir_user: str | None
    organization: str | None
    roles: frozenset[str]
    active: bool
    patients: tuple[str, ...] = ()

    def get_user_id(self) -> str:  # authlib asks the resource owner for its id
        return str(self.id)

    @property
    def subject(self) -> str:
        """The OpenID Connect ``sub``: stable, opaque, never reassigned."""
        return f"account-{self.id}"


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str
    auth_time: int
    sid: str = ""  # the session's handle (the digest of its id): tokens issued in it carry it


@dataclass(frozen=True)
class SessionInfo:
    """A signed-in browser as the account page lists it."""

    sid: str
    auth_time: int
    expires_at: datetime
    user_agent: str | None


class LoginRefused(Exception):
    """Wrong username or password, locked or inactive account (one message for all: no enumeration)."""


class AccountStore:
    def __init__(self, database: Database):
        self.database = database

    # ------------------------------------------------------------------ accounts
    def create(self, username: str, password: str | None, *, kind: str, fhir_user: str | None = None,
               organization: str | None = None, roles: tuple[str, ...] = (), patients: tuple[str, ...] = (),
               active: bool = True) -> Account:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        with self.database.write() as conn:
            account_id = conn.execute(insert(account).values(
                username=username, password_hash=hash_password(password) if password else None, kind=kind,
                fhir_user=fhir_user, organization=organization, roles=" ".join(roles), active=active,
                failed_logins=0, created=clock.now()).returning(account.c.id)).scalar_one()
            for patient_id in patients:
                conn.execute(insert(account_patient).values(account_id=account_id, patient_id=patient_id))
        return self.get(account_id)

    def get(self, account_id: int) -> Account | None:
        with self.database.read() as conn:
            return self._load(conn, account.c.id == account_id)

    def load(self, conn: Connection, account_id: int) -> Account | None:
        """The account, read in an open transaction."""
        return self._load(conn, account.c.id == account_id)

    def by_username(self, username: str) -> Account | None:
        with self.database.read() as conn:
            return self._load(conn, account.c.username == username)

    def _load(self, conn: Connection, where) -> Account | None:
        row = conn.execute(select(account).where(where)).first()
        if row is None:
            return None
        patients = tuple(conn.execute(select(account_patient.c.patient_id).where(
            account_patient.c.account_id == row.id).order_by(account_patient.c.patient_id)).scalars())
        return Account(row.id, row.username, row.kind, row.fhir_user, row.organization,
                       frozenset(row.roles.split()), row.active, patients)

    def staff(self) -> list[Account]:
        """Every staff account (active or not), by username."""
        with self.database.read() as conn:
            rows = conn.execute(select(account).where(account.c.kind == "staff").order_by(account.c.username)).all()
        return [Account(row.id, row.username, row.kind, row.fhir_user, row.organization, frozenset(row.roles.split()),
                        row.active) for row in rows]

    def set_role(self, conn: Connection, account_id: int, role: str, present: bool) -> frozenset[str] | None:
        """Give (``present``) or take away one role in the caller's write transaction; the account's roles
        now, or None for an unknown account. The row is locked first, so concurrent changes of other
        roles of the same account are not lost."""
        row = conn.execute(select(account.c.roles).where(account.c.id == account_id).with_for_update()).first()
        if row is None:
            return None
        roles = row.roles.split()
        if present and role not in roles:
            roles.append(role)
        elif not present and role in roles:
            roles.remove(role)
        conn.execute(update(account).where(account.c.id == account_id).values(roles=" ".join(roles)))
        return frozenset(roles)

    def add_patient(self, account_id: int, patient_id: str) -> None:
        """The account may act for one more patient (a linked record); nothing if it already may."""
        with self.database.write() as conn:
            known = conn.execute(select(account_patient.c.patient_id).where(
                account_patient.c.account_id == account_id, account_patient.c.patient_id == patient_id)).first()
            if known is None:
                conn.execute(insert(account_patient).values(account_id=account_id, patient_id=patient_id))

    def set_active(self, account_id: int, active: bool) -> None:
        with self.database.write() as conn:
            conn.execute(update(account).where(account.c.id == account_id).values(active=active))
            if not active:
                conn.execute(delete(login_session).where(login_session.c.account_id == account_id))

    # ------------------------------------------------------------------ signing in
    def authenticate(self, username: str, password: str) -> Account:
        """The account, or LoginRefused. Failures count towards the lockout, successes reset it."""
        now = clock.now()
        locks = False
        with self.database.write() as conn:  # the failure count must commit: decide, then raise outside
            # the row locked until the count is written: concurrent attempts (any worker) wait, then see
            # the latest count and lock, so none is lost (SQLite already serialises write transactions)
            row = conn.execute(select(account).where(account.c.username == username).with_for_update()).first()
            valid = verify_password(row.password_hash if row else None, password)
            locked = row is not None and row.locked_until is not None and clock.ensure_utc(row.locked_until) > now
            refused = row is None or locked or not row.active or not valid
            if row is not None and not locked and row.active and not valid:
                failures = row.failed_logins + 1
                values = {"failed_logins": failures}
                if failures >= MAX_FAILED_LOGINS:
                    values = {"failed_logins": 0, "locked_until": now + LOCKOUT}
                    locks = True
                conn.execute(update(account).where(account.c.id == row.id).values(**values))
            elif not refused:
                conn.execute(update(account).where(account.c.id == row.id).values(failed_logins=0, locked_until=None))
        if locks:
            log.warning("account %s is locked for %d minutes after %d wrong passwords", row.id,
                        int(LOCKOUT.total_seconds() // 60), MAX_FAILED_LOGINS)
            metrics.lockout()
        if refused:
            raise LoginRefused()
        return self.get(row.id)

    def set_password(self, conn: Connection, account_id: int, password: str) -> None:
        """A new password (already checked against the rules), in the caller's write transaction; a
        lockout ends with it."""
        conn.execute(update(account).where(account.c.id == account_id).values(
            password_hash=hash_password(password), failed_logins=0, locked_until=None))

    # ------------------------------------------------------------------ sessions
    def start_session(self, account_id: int, user_agent: str | None = None) -> str:
        session_id = new_secret()
        now = clock.now()
        with self.database.write() as conn:
            conn.execute(delete(login_session).where(login_session.c.expires_at < now))
            conn.execute(insert(login_session).values(
                session_hash=digest(session_id), account_id=account_id, csrf_token=new_secret(24),
                auth_time=int(now.timestamp()), expires_at=now + SESSION_LIFETIME,
                user_agent=(user_agent or None) and user_agent[:300]))
        return session_id

    def sessions_of(self, account_id: int) -> list[SessionInfo]:
        """The account's live sessions, newest sign-in first."""
        with self.database.read() as conn:
            rows = conn.execute(select(login_session).where(
                login_session.c.account_id == account_id, login_session.c.expires_at > clock.now(),
            ).order_by(login_session.c.auth_time.desc())).all()
        return [SessionInfo(row.session_hash, row.auth_time, clock.ensure_utc(row.expires_at), row.user_agent)
                for row in rows]

    def end_sessions(self, conn: Connection, account_id: int, sids: list[str] | None = None) -> list[str]:
        """End some (``sids``) or all of an account's sessions in the caller's write transaction; the
        sids ended."""
        where = [login_session.c.account_id == account_id]
        if sids is not None:
            where.append(login_session.c.session_hash.in_(sids))
        ended = list(conn.execute(select(login_session.c.session_hash).where(*where)).scalars())
        if ended:
            conn.execute(delete(login_session).where(login_session.c.session_hash.in_(ended)))
        return ended

    def session(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self.database.read() as conn:
            row = conn.execute(select(login_session).where(
                login_session.c.session_hash == digest(session_id))).first()
        if row is None or clock.ensure_utc(row.expires_at) <= clock.now():
            return None
        found = self.get(row.account_id)
        if found is None or not found.active:
            return None
        return Session(found, row.csrf_token, row.auth_time, row.session_hash)

    def end_session(self, session_id: str | None) -> None:
        if session_id:
            with self.database.write() as conn:
                conn.execute(delete(login_session).where(login_session.c.session_hash == digest(session_id)))
