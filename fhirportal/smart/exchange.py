"""One write transaction per token request that exchanges a code: the code is used up and the new
token stored in the same transaction (two transactions cost a third of an exchange on PostgreSQL).

``token_transaction`` opens it on first use in the request (``durable=False``: a token lost in a
database crash is asked for again); ``end_token_transaction`` commits it once the token is stored;
``end_token_transaction_after_request`` (the SMART blueprint's teardown) commits what a request left
open, so a code used up by an exchange that then fails (wrong verifier, expired) stays used.
"""

from __future__ import annotations

from contextlib import ExitStack

from flask import g
from sqlalchemy import Connection

from fhirportal.store.database import Database, end_after_request


def token_transaction(database: Database) -> Connection:
    conn = g.get("smart_token_conn")
    if conn is None:
        stack = ExitStack()
        conn = stack.enter_context(database.write(durable=False))
        g.smart_token_stack, g.smart_token_conn = stack, conn
    return conn


def _take() -> ExitStack | None:
    g.pop("smart_token_conn", None)
    return g.pop("smart_token_stack", None)


def end_token_transaction() -> None:
    """Commit the request's token transaction now, if one is open (raises if it cannot: a token
    that was not stored must not be handed out)."""
    stack = _take()
    if stack is not None:
        stack.close()


def end_token_transaction_after_request(error: BaseException | None) -> None:
    """The SMART blueprint's teardown: commit what the request left open (a code used up by a
    failed exchange), or roll it back if the request raised ``error``; a database that went away
    is logged, not raised (the answer is already made)."""
    stack = _take()
    if stack is not None:
        end_after_request(stack, "a token request's transaction", error)
