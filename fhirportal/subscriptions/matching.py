"""Within a write's transaction, just before it commits: which active Subscriptions does what it wrote
match? Each match becomes a row of the delivery queue, inserted on the write's own connection, so the
notification commits atomically with the write (a crash after the commit cannot lose it; a write rolled
back leaves none). Only waking the delivery thread waits for the commit (``on_commit``).

A Subscription's criteria are evaluated as a search restricted to the written resource (``_id=<id>`` and
the criteria) with its owner's visibility (``subscription_rule``): a Subscription only ever hears of what
its owner could have found by searching. Deletions notify nothing (R4's criteria-based form), nor do
writes of Subscriptions themselves.

Failures: a rule whose criteria no longer parse (e.g. a search parameter was removed) is logged and
skipped; any database error while matching fails the write itself (it rolls back and the client sees
the error): atomicity over availability, a write is never committed without the notifications it owes.

Cost when no Subscription is active: one indexed SELECT of ``subscription_rule`` (by resource type and
``enabled``) per write transaction, nothing else. No per-process cache: a Subscription created through
another worker must be seen by the very next write here, which only the database can tell.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import select

from fhirportal.store import clock
from fhirportal.store.auth_schema import account, oauth_client
from fhirportal.store.records import StoredResource
from fhirportal.store.subscription_schema import subscription_rule

from . import rules
from .queue import DeliveryQueue

log = logging.getLogger(__name__)


class Matcher:
    def __init__(self, ctx, queue: DeliveryQueue, wake: Callable[[], None] = lambda: None):
        self.ctx = ctx
        self.queue = queue
        self.wake = wake
        self._local = threading.local()  # whether this thread's last transaction enqueued anything

    def before_commit(self, conn, records: list[StoredResource]) -> int:
        """The pre-commit hook: enqueue a notification per (matching Subscription, written version), on
        the write's connection. Returns how many were enqueued."""
        self._local.enqueued = False
        written = [r for r in records if not r.deleted and r.resource_type != rules.SUBSCRIPTION]
        if not written:
            return 0
        notifications = self.matches(conn, written)
        if notifications:
            self.queue.enqueue(conn, notifications)
            self._local.enqueued = True
        return len(notifications)

    def on_commit(self, records: list[StoredResource]) -> None:
        """The after-commit hook: wake the delivery thread if the committed transaction enqueued something
        (were this never to run, the rows are in the database and the thread's ``check`` finds them)."""
        if getattr(self._local, "enqueued", False):
            self._local.enqueued = False
            self.wake()

    def matches(self, conn, written: list[StoredResource]) -> list[tuple[str, str, str, int]]:
        now = clock.now()
        types = sorted({r.resource_type for r in written})
        candidates = [rule for rule in conn.execute(select(subscription_rule).where(
            subscription_rule.c.enabled.is_(True), subscription_rule.c.resource_type.in_(types))).all()
            if rule.end_at is None or clock.ensure_utc(rule.end_at) > now]
        candidates = self._owners_allowed(conn, candidates)
        if not candidates:
            return []
        found = []
        for record in written:
            for rule in candidates:
                if rule.resource_type == record.resource_type and self._matches(conn, rule, record):
                    found.append((rule.subscription_id, record.resource_type, record.fhir_id, record.version_id))
        return found

    @staticmethod
    def _owners_allowed(conn, candidates: list) -> list:
        """The rules whose owner may still act: not those of an app or an account an operator disabled
        (``fhirportal clients|accounts disable``); they notify again once it is enabled."""
        if not candidates:
            return []
        clients = {rule.client_id for rule in candidates if rule.client_id}
        accounts = {rule.account_id for rule in candidates if rule.account_id is not None}
        disabled = set(conn.execute(select(oauth_client.c.client_id).where(
            oauth_client.c.client_id.in_(clients), oauth_client.c.disabled_at.is_not(None))).scalars()) \
            if clients else set()
        inactive = set(conn.execute(select(account.c.id).where(
            account.c.id.in_(accounts), account.c.active.is_(False))).scalars()) if accounts else set()
        return [rule for rule in candidates if rule.client_id not in disabled and rule.account_id not in inactive]

    def _matches(self, conn, rule, record: StoredResource) -> bool:
        try:
            criteria = rules.criteria_for(self.ctx, rule.resource_type, rule.criteria, record.fhir_id)
            visibility = rules.owner_visibility(self.ctx, rule, "search-type")
        except Exception:  # noqa: BLE001  (criteria no longer parse, e.g. a parameter was removed)
            log.exception("Subscription/%s: could not evaluate its criteria on %s", rule.subscription_id,
                          record.reference)
            return False
        # in the write's transaction: a database error here fails (rolls back) the write, see above
        return bool(self.ctx.repository.search_ids(conn, record.resource_type, criteria, limit=1,
                                                   visibility=visibility))
