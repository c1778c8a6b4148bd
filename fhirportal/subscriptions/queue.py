"""The notifications owed (``subscription_delivery``): enqueued in the transaction of the write that owes
them, claimed by one worker at a time, deleted once delivered, retried with backoff otherwise.

Claiming: a worker takes due rows whose lease is free and stamps them with its claim (``claimed_by``) and
a lease (``claimed_until``) in one short transaction, before any POST. On PostgreSQL the rows are read
``FOR UPDATE SKIP LOCKED`` (two workers never wait on, nor take, the same row); on SQLite each is taken by
a conditional UPDATE (``… WHERE claimed_until IS NULL OR claimed_until < now``) that only one claimer can
win. Every later change of a row names the claim, so a worker whose lease ran out (it hung longer than
``LEASE``) cannot overwrite the next one's work. A row is at least once delivered: a worker that dies
after the POST and before deleting it leaves it to be delivered again once its lease ends.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, insert, or_, select, update

from fhirportal.store import clock
from fhirportal.store.database import Database
from fhirportal.store.subscription_schema import subscription_delivery as table

# Seconds to wait after the 1st, 2nd, … failed attempt (the last repeats until the attempts run out).
BACKOFF = (5, 30, 120, 600, 1800, 3600)
LEASE = timedelta(seconds=60)  # the default lease: longer than the POSTs of a claim may take, with room to spare


@dataclass(frozen=True)
class Delivery:
    id: int
    subscription_id: str
    resource_type: str
    fhir_id: str
    version_id: int
    attempts: int
    claim: str


def backoff(attempts: int) -> timedelta:
    """The wait after ``attempts`` failed attempts (1: the first failed)."""
    return timedelta(seconds=BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1])


class DeliveryQueue:
    def __init__(self, database: Database):
        self.database = database

    def enqueue(self, conn, notifications: list[tuple[str, str, str, int]], now: datetime | None = None) -> None:
        """(subscription id, resource type, id, version) rows, due now."""
        if not notifications:
            return
        now = now or clock.now()
        conn.execute(insert(table), [
            {"subscription_id": s, "resource_type": t, "fhir_id": i, "version_id": v, "created": now, "due_at": now,
             "attempts": 0} for s, t, i, v in notifications])

    def claim(self, limit: int = 5, now: datetime | None = None, lease: timedelta = LEASE) -> list[Delivery]:
        """Take up to ``limit`` due rows no other worker holds; they are this worker's until ``lease`` ends
        (it must outlast delivering all of them)."""
        now = now or clock.now()
        claim = secrets.token_hex(8)
        free = or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
        due = and_(table.c.due_at.is_not(None), table.c.due_at <= now, free)
        stamp = {"claimed_by": claim, "claimed_until": now + lease}
        with self.database.write() as conn:
            query = select(table.c.id).where(due).order_by(table.c.due_at, table.c.id).limit(limit)
            if self.database.dialect == "postgresql":
                ids = list(conn.execute(query.with_for_update(skip_locked=True)).scalars())
                if ids:
                    conn.execute(update(table).where(table.c.id.in_(ids)).values(**stamp))
            else:
                ids = [row_id for row_id in conn.execute(query).scalars()
                       if conn.execute(update(table).where(table.c.id == row_id, due).values(**stamp)).rowcount == 1]
            if not ids:
                return []
            rows = conn.execute(select(table).where(table.c.id.in_(ids), table.c.claimed_by == claim)
                                .order_by(table.c.id)).all()
        return [Delivery(r.id, r.subscription_id, r.resource_type, r.fhir_id, r.version_id, r.attempts, claim)
                for r in rows]

    def _mine(self, delivery: Delivery):
        return and_(table.c.id == delivery.id, table.c.claimed_by == delivery.claim)

    def delivered(self, delivery: Delivery) -> bool:
        """Done: the row goes (False if the lease was lost to another worker meanwhile)."""
        with self.database.write() as conn:
            return conn.execute(delete(table).where(self._mine(delivery))).rowcount == 1

    def dropped(self, delivery: Delivery) -> None:
        """Nothing to deliver any more (the Subscription is gone or off, the resource no longer visible)."""
        self.delivered(delivery)

    def failed(self, delivery: Delivery, error: str, max_attempts: int, now: datetime | None = None) -> bool:
        """An attempt failed: due again after the backoff, or (attempts used up) never again. Returns
        whether it will be tried again."""
        now = now or clock.now()
        attempts = delivery.attempts + 1
        again = attempts < max_attempts
        with self.database.write() as conn:
            conn.execute(update(table).where(self._mine(delivery)).values(
                attempts=attempts, last_error=error[:2000], claimed_by=None, claimed_until=None,
                due_at=now + backoff(attempts) if again else None))
        return again

    def pending(self) -> list:
        """Every row (delivered rows are gone): for operators and tests."""
        with self.database.read() as conn:
            return conn.execute(select(table).order_by(table.c.id)).all()

    def next_due(self) -> datetime | None:
        with self.database.read() as conn:
            moment = conn.execute(select(table.c.due_at).where(table.c.due_at.is_not(None))
                                  .order_by(table.c.due_at).limit(1)).scalar()
        return None if moment is None else clock.ensure_utc(moment)
