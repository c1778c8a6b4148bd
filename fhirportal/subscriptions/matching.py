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
            return bool(self.ctx.repository.search_ids(conn, record.resource_type, criteria, limit=1,
                                                       visibility=visibility))
        except Exception:  # noqa: BLE001  (criteria no longer parse, e.g. a parameter was removed)
            log.exception("Subscription/%s: could not evaluate its criteria on %s", rule.subscription_id,
                          record.reference)
            return False
