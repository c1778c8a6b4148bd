"""The rows of the portal web app's browser sessions (``web_schema.web_session``).

The web app (``fhirportal.web``) never imports the store: the app factory hands it one of these. A
row is keyed by the digest of the cookie's id and carries an opaque ``sealed`` text the web app
encrypts; nothing here can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update

from . import clock
from .database import Database
from .web_schema import web_session


@dataclass(frozen=True)
class WebSessionRow:
    session_hash: str
    sealed: str
    csrf_token: str
    created: datetime
    expires_at: datetime


class WebSessionStore:
    def __init__(self, database: Database):
        self.database = database

    def create(self, session_hash: str, sealed: str, csrf_token: str, lifetime: timedelta) -> None:
        now = clock.now()
        with self.database.write() as conn:
            conn.execute(delete(web_session).where(web_session.c.expires_at < now))
            conn.execute(insert(web_session).values(session_hash=session_hash, sealed=sealed, csrf_token=csrf_token,
                                                    created=now, expires_at=now + lifetime))

    def get(self, session_hash: str) -> WebSessionRow | None:
        """The session, unless unknown or expired."""
        with self.database.read() as conn:
            row = conn.execute(select(web_session).where(web_session.c.session_hash == session_hash)).first()
        if row is None or clock.ensure_utc(row.expires_at) <= clock.now():
            return None
        return WebSessionRow(row.session_hash, row.sealed, row.csrf_token, clock.ensure_utc(row.created),
                             clock.ensure_utc(row.expires_at))

    def replace(self, old_hash: str, new_hash: str, sealed: str, csrf_token: str, lifetime: timedelta) -> bool:
        """Move a session to a new id (signing in: the id the browser had before is worthless after);
        False if the old one was gone (used by another request, or ended)."""
        now = clock.now()
        with self.database.write() as conn:
            gone = conn.execute(delete(web_session).where(web_session.c.session_hash == old_hash)).rowcount
            if gone != 1:
                return False
            conn.execute(insert(web_session).values(session_hash=new_hash, sealed=sealed, csrf_token=csrf_token,
                                                    created=now, expires_at=now + lifetime))
        return True

    def claim_refresh(self, session_hash: str, seconds: float) -> bool:
        """Take the right to refresh this session's tokens for ``seconds`` (one request at a time: a
        refresh token is good once); False if another request holds it."""
        now = clock.now()
        with self.database.write() as conn:
            claimed = conn.execute(update(web_session).where(
                web_session.c.session_hash == session_hash,
                or_(web_session.c.refreshing_until.is_(None), web_session.c.refreshing_until < now),
            ).values(refreshing_until=now + timedelta(seconds=seconds))).rowcount
        return claimed == 1

    def store_refreshed(self, session_hash: str, sealed: str) -> None:
        """The refreshed tokens, and the claim released."""
        with self.database.write() as conn:
            conn.execute(update(web_session).where(web_session.c.session_hash == session_hash).values(
                sealed=sealed, refreshing_until=None))

    def delete(self, session_hash: str) -> None:
        with self.database.write() as conn:
            conn.execute(delete(web_session).where(web_session.c.session_hash == session_hash))
