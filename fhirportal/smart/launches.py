"""EHR launch contexts: the EHR registers (patient, encounter) and gets a one-time ``launch`` value
that the app brings to the authorize endpoint."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import delete, insert, select

from fhirportal.store import clock
from fhirportal.store.auth_schema import launch_context
from fhirportal.store.database import Database

from .secrets import digest, new_secret

LAUNCH_LIFETIME = timedelta(minutes=10)


class LaunchStore:
    def __init__(self, database: Database):
        self.database = database

    def create(self, context: dict, account_id: int | None) -> str:
        launch = new_secret(24)
        now = clock.now()
        with self.database.write() as conn:
            conn.execute(delete(launch_context).where(launch_context.c.expires_at < now))
            conn.execute(insert(launch_context).values(
                launch_hash=digest(launch), account_id=account_id, context=json.dumps(context, sort_keys=True),
                expires_at=now + LAUNCH_LIFETIME))
        return launch

    def resolve(self, launch: str | None) -> dict | None:
        """The context of a live launch value, or None."""
        if not launch:
            return None
        with self.database.read() as conn:
            row = conn.execute(select(launch_context).where(launch_context.c.launch_hash == digest(launch))).first()
        if row is None or clock.ensure_utc(row.expires_at) <= clock.now():
            return None
        return json.loads(row.context)
