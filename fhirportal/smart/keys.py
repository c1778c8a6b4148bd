"""The server's signing keys (RS256 id_tokens), kept in the database so every worker signs alike.

The first worker that needs a key generates one; if two race, both insert and the oldest wins for
everyone (ordering by creation time, then kid).
"""

from __future__ import annotations

import json
from functools import cached_property

from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import insert, select

from fhirportal.store import clock
from fhirportal.store.auth_schema import signing_key
from fhirportal.store.database import Database

from .secrets import new_secret


class SigningKeys:
    def __init__(self, database: Database):
        self.database = database

    @cached_property
    def current(self) -> RSAKey:
        key = self._oldest()
        if key is None:
            generated = RSAKey.generate_key(2048, parameters={"kid": new_secret(12), "use": "sig", "alg": "RS256"})
            with self.database.write() as conn:
                conn.execute(insert(signing_key).values(
                    kid=generated.kid, private_jwk=json.dumps(generated.as_dict(private=True)),
                    created=clock.now()))
            key = self._oldest()
        return key

    def _oldest(self) -> RSAKey | None:
        with self.database.read() as conn:
            row = conn.execute(select(signing_key).order_by(signing_key.c.created, signing_key.c.kid).limit(1)).first()
        return RSAKey.import_key(json.loads(row.private_jwk)) if row else None

    def public_jwks(self) -> dict:
        """Every stored key and the one this process signs with, public parts only."""
        with self.database.read() as conn:
            rows = conn.execute(select(signing_key.c.private_jwk).order_by(signing_key.c.created)).scalars().all()
        keys = {self.current.kid: self.current}
        for row in rows:
            key = RSAKey.import_key(json.loads(row))
            keys.setdefault(key.kid, key)
        return KeySet(list(keys.values())).as_dict(private=False)
