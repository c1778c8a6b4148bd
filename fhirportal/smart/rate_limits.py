"""Rate limits of the authorization server's endpoints, counted in the database (``rate_limit``), so that
every worker and node shares them.

Two kinds of bucket, each a count within a fixed one-minute window:

- the source address: every request to a limited endpoint counts in its address's bucket (``check``);
- the app (token endpoint): what the app was **granted** counts — each token issued to it, in the
  issuing transaction (``granted``) — and ``check`` refuses a request naming an app that has had its
  limit this minute. A request that merely names an app (a public app's client_id is public; a forged
  client assertion names anyone) and fails costs that app nothing, so nobody can spend another app's
  allowance and lock its users out.

Over the limit a request is answered 429 with ``Retry-After`` (the seconds left in the window) and
does nothing. Counting is one upsert per bucket (``INSERT … ON CONFLICT DO UPDATE … RETURNING``);
windows older than an hour are deleted now and then.

Endpoints and their settings (requests per minute; 0 turns a limit off):
``token`` (``FHIRPORTAL_RATE_LIMIT_TOKEN``: per address, and tokens per app), ``register``
(``FHIRPORTAL_RATE_LIMIT_REGISTER``) and ``login`` — a posted sign-in form
(``FHIRPORTAL_RATE_LIMIT_LOGIN``), per address only: an account's own lockout after failed passwords
caps the guesses at one account, and a per-app count of sign-ins would let anyone lock an app's users
out. The password-reset form has its own limits (``portal/password_reset``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select
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
        """Count this request in its address's bucket; the first bucket over its limit (the address's, or
        the app's: tokens ``granted`` to it this minute), or None when it may go on."""
        limit = self.per_minute.get(endpoint)
        if limit is None:
            return None
        client_id, address = _printable(client_id, 128), _printable(address, 64)
        now = clock.now()
        window = _window(now)
        over = None
        with self.database.write() as conn:
            if address and self._count(conn, f"{endpoint}:address:{address}", window) > limit:
                over = f"{endpoint}:address:{address}"
            if client_id and over is None:
                bucket = f"{endpoint}:client:{client_id}"
                hits = conn.execute(select(rate_limit.c.hits).where(
                    rate_limit.c.bucket == bucket, rate_limit.c.window_start == window)).scalar()
                if (hits or 0) >= limit:
                    over = bucket
            if random.randrange(PRUNE_ONE_IN) == 0:  # noqa: S311  (not a secret: when to tidy up)
                conn.execute(delete(rate_limit).where(rate_limit.c.window_start < window - KEEP))
        if over is None:
            return None
        return Throttled(over, max(1, int((window + WINDOW - now).total_seconds()) + 1))

    def granted(self, conn: Connection, endpoint: str, client_id: str) -> None:
        """Count something granted to the app (a token issued) in its bucket, in the caller's transaction."""
        if endpoint in self.per_minute and client_id:
            self._count(conn, f"{endpoint}:client:{_printable(client_id, 128)}", _window(clock.now()))

    def _count(self, conn: Connection, bucket: str, window: datetime) -> int:
        statement = self._insert(rate_limit).values(bucket=bucket, window_start=window, hits=1)
        statement = statement.on_conflict_do_update(
            index_elements=[rate_limit.c.bucket, rate_limit.c.window_start],
            set_={"hits": rate_limit.c.hits + 1}).returning(rate_limit.c.hits)
        return conn.execute(statement).scalar_one()
