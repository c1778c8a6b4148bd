"""Rate limits of the authorization server's endpoints, counted in the database (``rate_limit``), so that
every worker and node shares them.

A request to a limited endpoint counts once in each of its buckets — the endpoint with the app's
client_id, and the endpoint with the source address — within a fixed one-minute window; over the
limit of a bucket it is answered 429 with ``Retry-After`` (the seconds left in the window) and does
nothing. The counting is one upsert per bucket (``INSERT … ON CONFLICT DO UPDATE … RETURNING``) in
its own short transaction; windows older than an hour are deleted now and then.

Endpoints and their settings (requests per minute; 0 turns a limit off):
``token`` (``FHIRPORTAL_RATE_LIMIT_TOKEN``), ``register`` (``FHIRPORTAL_RATE_LIMIT_REGISTER``) and
``login`` — a posted sign-in form (``FHIRPORTAL_RATE_LIMIT_LOGIN``; an account's own lockout after
failed passwords is separate). The password-reset form has its own limits (``portal/password_reset``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from fhirportal.store import clock
from fhirportal.store.auth_schema import rate_limit
from fhirportal.store.database import Database

WINDOW = timedelta(minutes=1)
KEEP = timedelta(hours=1)
PRUNE_ONE_IN = 200  # requests between deletions of old windows (on average)


@dataclass(frozen=True)
class Throttled:
    bucket: str
    retry_after: int  # seconds


def _printable(value: str | None, length: int) -> str:
    """What a request claims, fit for a bucket's name: no NUL or other control character (PostgreSQL text
    refuses a NUL: a 500), at most ``length`` characters."""
    return "".join(c for c in (value or "") if c.isprintable())[:length]


def _window(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


class RateLimits:
    def __init__(self, database: Database, per_minute: dict[str, int]):
        self.database = database
        self.per_minute = {endpoint: limit for endpoint, limit in per_minute.items() if limit > 0}
        self._insert = (postgresql.insert if database.engine.dialect.name == "postgresql" else sqlite.insert)

    def check(self, endpoint: str, *, client_id: str | None, address: str | None) -> Throttled | None:
        """Count this request; the first bucket over its limit, or None when it may go on."""
        limit = self.per_minute.get(endpoint)
        if limit is None:
            return None
        client_id, address = _printable(client_id, 128), _printable(address, 64)
        buckets = [f"{endpoint}:client:{client_id}" if client_id else None,
                   f"{endpoint}:address:{address}" if address else None]
        now = clock.now()
        window = _window(now)
        over = None
        with self.database.write() as conn:
            for bucket in filter(None, buckets):
                statement = self._insert(rate_limit).values(bucket=bucket, window_start=window, hits=1)
                statement = statement.on_conflict_do_update(
                    index_elements=[rate_limit.c.bucket, rate_limit.c.window_start],
                    set_={"hits": rate_limit.c.hits + 1}).returning(rate_limit.c.hits)
                hits = conn.execute(statement).scalar_one()
                if hits > limit and over is None:
                    over = Throttled(bucket, max(1, int((window + WINDOW - now).total_seconds()) + 1))
            if random.randrange(PRUNE_ONE_IN) == 0:  # noqa: S311  (not a secret: when to tidy up)
                conn.execute(delete(rate_limit).where(rate_limit.c.window_start < window - KEEP))
        return over
