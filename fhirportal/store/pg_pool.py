"""PostgreSQL connections as the pool hands them out: round trips only where they buy something.

A read request's statements each see their own snapshot under READ COMMITTED whether or not they share a
transaction, so ``Database.read()`` runs them in autocommit (``READS``): no BEGIN and no COMMIT, two round
trips of three for a read of one resource. Writes keep their transactions.

A pooled connection may have died while it waited (the database restarted, a proxy dropped it).
SQLAlchemy's ``pool_pre_ping`` asks every connection before every use: a round trip per request. Here
(``install_pool_checks``) only a connection that has been idle longer than ``IDLE_PING_SECONDS`` is asked; one that
fails the question is replaced before use (``DisconnectionError``: the pool takes another). One that was
busy a moment ago and died since fails its request like a connection that dies mid-request: answered
503, and the pool is renewed.
"""

from __future__ import annotations

import time

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

IDLE_PING_SECONDS = 1.0
READS = {"isolation_level": "AUTOCOMMIT"}
_RETURNED = "fhirportal.returned"


def install_pool_checks(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection, record) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_connection, record, proxy) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned <= IDLE_PING_SECONDS:
            return  # new, or busy a moment ago
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:  # noqa: BLE001  (whatever a dead connection raises)
            raise sa_exc.DisconnectionError(f"a pooled connection did not answer: {type(exc).__name__}") from exc
