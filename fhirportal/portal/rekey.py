"""Moving stored PINs to the newest ``FHIRPORTAL_SECRET_KEY`` (``fhirportal secrets reencrypt``).

After a new key is put first in ``FHIRPORTAL_SECRET_KEY`` (the old ones after it), every open
invitation keeps working; this re-encrypts each PIN under the newest key and recomputes its keyed
hash, a batch per transaction, skipping what is already under the newest key — so it can be stopped
and run again. When it reports nothing left, the old keys can be dropped from the setting (an SMS
code sent in the last 10 minutes is keyed under the key of its time: wait that long too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update

from fhirportal.store.auth_schema import portal_invitation
from fhirportal.store.database import Database

from .pins import PinVault

BATCH = 500


@dataclass(frozen=True)
class Rekeyed:
    moved: int
    current: int  # already under the newest key


def reencrypt(database: Database, vault: PinVault, *, batch: int = BATCH,
              progress: Callable[[int], None] = lambda done: None) -> Rekeyed:
    moved = current = 0
    after = 0
    while True:
        with database.write() as conn:
            rows = conn.execute(select(portal_invitation.c.id, portal_invitation.c.pin_encrypted).where(
                portal_invitation.c.id > after).order_by(portal_invitation.c.id).limit(batch)).all()
            for row in rows:
                if vault.is_current(row.pin_encrypted):
                    current += 1
                    continue
                pin = vault.decrypt(row.pin_encrypted)
                conn.execute(update(portal_invitation).where(
                    portal_invitation.c.id == row.id, portal_invitation.c.pin_encrypted == row.pin_encrypted,
                ).values(pin_encrypted=vault.encrypt(pin), pin_hash=vault.keyed_hash(pin)))
                moved += 1
        if not rows:
            return Rekeyed(moved, current)
        after = rows[-1].id
        progress(moved + current)
