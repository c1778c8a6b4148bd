"""After a write commits: which active Subscriptions does what it wrote match? Each match becomes a row
of the delivery queue, and the worker is woken.

A Subscription's criteria are evaluated as a search restricted to the written resource (``_id=<id>`` and
the criteria) with its owner's visibility (``subscription_rule``): a Subscription only ever hears of what
its owner could have found by searching. Deletions notify nothing (R4's criteria-based form), nor do
writes of Subscriptions themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from fhirportal.store import clock
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

    def on_commit(self, records: list[StoredResource]) -> None:
        """The after-commit hook: enqueue a notification per (matching Subscription, written version)."""
        written = [r for r in records if not r.deleted and r.resource_type != rules.SUBSCRIPTION]
        if not written:
            return
        notifications = self.matches(written)
        if notifications:
            with self.ctx.database.write() as conn:
                self.queue.enqueue(conn, notifications)
            self.wake()

    def matches(self, written: list[StoredResource]) -> list[tuple[str, str, str, int]]:
        now = clock.now()
        types = sorted({r.resource_type for r in written})
        with self.ctx.database.read() as conn:
            candidates = [rule for rule in conn.execute(select(subscription_rule).where(
                subscription_rule.c.enabled.is_(True), subscription_rule.c.resource_type.in_(types))).all()
                if rule.end_at is None or clock.ensure_utc(rule.end_at) > now]
            if not candidates:
                return []
            found = []
            for record in written:
                for rule in candidates:
                    if rule.resource_type == record.resource_type and self._matches(conn, rule, record):
                        found.append((rule.subscription_id, record.resource_type, record.fhir_id, record.version_id))
        return found

    def _matches(self, conn, rule, record: StoredResource) -> bool:
        try:
            criteria = rules.criteria_for(self.ctx, rule.resource_type, rule.criteria, record.fhir_id)
            visibility = rules.owner_visibility(self.ctx, rule, "search-type")
            return bool(self.ctx.repository.search_ids(conn, record.resource_type, criteria, limit=1,
                                                       visibility=visibility))
        except Exception:  # noqa: BLE001  (criteria no longer parse, e.g. a parameter was removed)
            log.exception("Subscription/%s: could not evaluate its criteria on %s", rule.subscription_id,
                          record.reference)
            return False
