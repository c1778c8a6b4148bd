"""The server's signing keys (RS256 id_tokens), kept in the database so every worker signs alike.

The first worker that needs a key generates one. ``rotate`` adds a key that is published in the JWKS
at once but signs only from ``activates_at`` (after a grace period, so that every client's cached JWKS
has it before the first token it signs), and retires the keys it supersedes once every id_token they
signed has expired (``ID_TOKEN_LIFETIME`` after the new key's activation, plus a margin): until then
they stay in the JWKS, so a token signed just before a rotation still verifies.

The key that signs is the newest whose activation has come (ties: kid), looked up once per request (a
primary-key-sized table) so that every worker and node follows a rotation at once; a request signs with
one key throughout (memoized on ``flask.g``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import g, has_app_context
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import func, insert, or_, select, update

from fhirportal.store import clock
from fhirportal.store.auth_schema import signing_key
from fhirportal.store.database import Database

from .secrets import new_secret

ID_TOKEN_LIFETIME = timedelta(hours=1)  # an id_token's exp (grants.py)
RETIRE_MARGIN = timedelta(minutes=5)  # clock skew between this server and the clients verifying
DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    created: datetime
    activates_at: datetime
    retires_at: datetime | None

    def state(self, now: datetime, signing_kid: str | None) -> str:
        if self.retires_at is not None and self.retires_at <= now:
            return "retired"
        if self.kid == signing_kid:
            return "signing"
        if self.activates_at > now:
            return "next"
        return "published"


def _activation():
    return func.coalesce(signing_key.c.activates_at, signing_key.c.created)


def _published(now: datetime):
    return or_(signing_key.c.retires_at.is_(None), signing_key.c.retires_at > now)


class SigningKeys:
    def __init__(self, database: Database):
        self.database = database

    @property
    def current(self) -> RSAKey:
        """The key to sign with now (one per request)."""
        if has_app_context():
            memo = g.get("signing_key")
            if memo is None:
                memo = g.signing_key = self._current()
            return memo
        return self._current()

    def _current(self) -> RSAKey:
        return self._signing() or self._first()

    def _signing(self) -> RSAKey | None:
        now = clock.now()
        with self.database.read() as conn:
            row = conn.execute(select(signing_key.c.private_jwk).where(_activation() <= now, _published(now))
                               .order_by(_activation().desc(), signing_key.c.kid).limit(1)).first()
        return RSAKey.import_key(json.loads(row.private_jwk)) if row else None

    def _first(self) -> RSAKey:
        """No key yet: this worker makes one (if several race, all are published; the newest signs)."""
        self._insert(clock.now())
        key = self._signing()
        assert key is not None
        return key

    def _insert(self, activates_at: datetime) -> str:
        generated = RSAKey.generate_key(2048, parameters={"kid": new_secret(12), "use": "sig", "alg": "RS256"})
        with self.database.write() as conn:
            conn.execute(insert(signing_key).values(
                kid=generated.kid, private_jwk=json.dumps(generated.as_dict(private=True)), created=clock.now(),
                activates_at=activates_at))
        return generated.kid

    def public_jwks(self) -> dict:
        """Every key not retired (the next one included), public parts only."""
        now = clock.now()
        signing = self.current
        with self.database.read() as conn:
            rows = conn.execute(select(signing_key.c.private_jwk).where(_published(now))
                                .order_by(signing_key.c.created)).scalars().all()
        keys = {signing.kid: signing}
        for row in rows:
            key = RSAKey.import_key(json.loads(row))
            keys.setdefault(key.kid, key)
        return KeySet(list(keys.values())).as_dict(private=False)

    # ------------------------------------------------------------------ operator (fhirportal keys)
    def rotate(self, grace: timedelta = DEFAULT_GRACE) -> KeyInfo:
        """A new key, published now, signing after ``grace``; the keys it supersedes retire once the
        id_tokens they may still sign until then have expired."""
        activates_at = clock.now() + grace
        retire_at = activates_at + ID_TOKEN_LIFETIME + RETIRE_MARGIN
        kid = self._insert(activates_at)
        with self.database.write() as conn:
            conn.execute(update(signing_key).where(
                signing_key.c.kid != kid, _activation() <= activates_at,
                or_(signing_key.c.retires_at.is_(None), signing_key.c.retires_at > retire_at),
            ).values(retires_at=retire_at))
        if has_app_context():
            g.pop("signing_key", None)
        return next(info for info in self.list() if info.kid == kid)

    def list(self) -> list[KeyInfo]:
        with self.database.read() as conn:
            rows = conn.execute(select(signing_key.c.kid, signing_key.c.created, signing_key.c.activates_at,
                                       signing_key.c.retires_at).order_by(signing_key.c.created)).all()
        return [KeyInfo(row.kid, clock.ensure_utc(row.created), clock.ensure_utc(row.activates_at or row.created),
                        row.retires_at and clock.ensure_utc(row.retires_at)) for row in rows]

    def signing_kid(self) -> str | None:
        key = self._signing()
        return key.kid if key else None
