"""The delivery worker: claims due notifications (``queue``), POSTs each (``deliver``), and keeps the
Subscription's ``status`` telling how it goes: ``error`` with the reason once a delivery fails, ``active``
again once one succeeds.

One daemon thread per process, only while there is something to deliver: started when the matcher
enqueues (woken if it runs), and by requests at most every ``RECHECK_SECONDS`` (rows a restart or another
node left behind); it sleeps until the next retry is due and ends once no row is due any more (or the
database is away). ``run_due`` is one synchronous pass (what tests and operators call); ``stop`` ends the
thread. ``enabled`` False (``FHIRPORTAL_SUBSCRIPTION_WORKER=false``): no thread in this process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from sqlalchemy import select

from fhirportal.errors import Conflict, FhirError, PreconditionFailed
from fhirportal.store import clock
from fhirportal.store.database import unavailable
from fhirportal.store.subscription_schema import subscription_rule

from . import rules
from .deliver import Notification, post
from .queue import Delivery, DeliveryQueue

log = logging.getLogger(__name__)

RECHECK_SECONDS = 30.0
CLAIM = 5  # rows one claim takes (each may take up to the timeout)


class DeliveryWorker:
    def __init__(self, ctx, queue: DeliveryQueue, enabled: bool = True):
        self.ctx = ctx
        self.enabled = enabled  # this process runs a thread (``FHIRPORTAL_SUBSCRIPTION_WORKER``)
        self.queue = queue
        self.timeout = ctx.settings.subscription_timeout
        self.max_attempts = max(1, ctx.settings.subscription_max_attempts)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._checked: float | None = None  # time.monotonic() of the last ``check`` that started the thread

    # ------------------------------------------------------------------ the thread
    def start(self) -> None:
        """Run the thread (if it is not running in this process)."""
        with self._lock:
            if self.running:
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run_forever, name="subscription-delivery", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """End the thread (after the notification it is posting); whether it ended within ``timeout``."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def wake(self) -> None:
        """Something was enqueued: deliver it now (starting the thread if this process runs one)."""
        self._wake.set()
        if self.enabled:
            self.start()

    def check(self) -> None:
        """Called on requests: at most every ``RECHECK_SECONDS``, start the thread if it is not running, to
        deliver what is due (rows left by a restart, or by another node that went away)."""
        if not self.enabled or self.running:
            return
        now = time.monotonic()
        if self._checked is not None and now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        self.start()

    def _idle(self) -> bool:
        """Stop the thread unless woken meanwhile (so that a wake is never lost): whether it stopped."""
        with self._lock:
            if self._wake.is_set() and not self._stop.is_set():
                return False
            self._thread = None
            return True

    def _run_forever(self) -> None:
        """Deliver while anything is due; sleep until the next retry; end when nothing is left (or the
        database is away): the next wake or ``check`` starts it again."""
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if self.run_due():
                    continue
                next_due = self.queue.next_due()
            except Exception as exc:  # noqa: BLE001  (the rows stay in the database)
                if unavailable(exc):
                    log.warning("subscriptions: the database is unavailable (%s); delivery resumes later",
                                type(exc).__name__)
                else:
                    log.exception("subscriptions: a delivery round failed; delivery resumes later")
                next_due = None
            if next_due is None:
                if self._idle():
                    return
                continue
            wait = (next_due - clock.now()).total_seconds()
            self._wake.wait(min(max(wait, 0.05), RECHECK_SECONDS))
        with self._lock:
            self._thread = None

    # ------------------------------------------------------------------ one pass
    def run_due(self, limit: int | None = None) -> int:
        """Deliver what is due now (until nothing is, or ``limit`` rows); returns how many rows were handled."""
        handled = 0
        lease = timedelta(seconds=CLAIM * (self.timeout + 2) + 30)
        while limit is None or handled < limit:
            batch = self.queue.claim(CLAIM if limit is None else min(CLAIM, limit - handled), lease=lease)
            if not batch:
                break
            for delivery in batch:
                self.deliver(delivery)
                handled += 1
            if self._stop.is_set():
                break
        return handled

    def deliver(self, delivery: Delivery) -> bool:
        """POST one claimed row; whether it was delivered."""
        notification = self._notification(delivery)
        if notification is None:
            self.queue.dropped(delivery)
            return False
        error = post(notification, self.timeout)
        if error is None:
            self.queue.delivered(delivery)
            self._set_status(delivery.subscription_id, None)
            return True
        again = self.queue.failed(delivery, error, self.max_attempts)
        log.warning("Subscription/%s: notifying %s/%s failed (%s); %s", delivery.subscription_id,
                    delivery.resource_type, delivery.fhir_id, error, "will retry" if again else "gave up")
        self._set_status(delivery.subscription_id, error)
        return False

    def _notification(self, delivery: Delivery) -> Notification | None:
        """What to send, or None if there is nothing to send any more (the Subscription was deleted or
        turned off, or its owner may no longer read the resource)."""
        repository = self.ctx.repository
        with self.ctx.database.read() as conn:
            rule = conn.execute(select(subscription_rule).where(
                subscription_rule.c.subscription_id == delivery.subscription_id)).first()
            try:
                subscription = repository.read(conn, rules.SUBSCRIPTION, delivery.subscription_id).body
            except FhirError:
                return None
            channel = subscription.get("channel") or {}
            if rule is None or not rule.enabled or subscription.get("status") == "off":
                return None
            if not rules.endpoint_allowed(channel.get("endpoint"), self.ctx.settings.subscription_endpoints):
                return None  # the administrator no longer allows it
            payload = None
            if channel.get("payload") == rules.FHIR_JSON:
                try:
                    payload = repository.vread(conn, delivery.resource_type, delivery.fhir_id, delivery.version_id,
                                               visibility=rules.owner_visibility(self.ctx, rule, "read")).content
                except FhirError:
                    return None
        return Notification(channel["endpoint"], tuple(channel.get("header") or ()), payload, delivery.subscription_id)

    def _set_status(self, subscription_id: str, error: str | None) -> None:
        """``error`` (with why) after a failure, ``active`` after a success; only when it changes."""
        try:
            with self.ctx.database.write() as conn:
                try:
                    current = self.ctx.repository.read(conn, rules.SUBSCRIPTION, subscription_id)
                except FhirError:
                    return
                body = current.body
                if body.get("status") not in ("active", "error"):
                    return
                if error is None:
                    if body.get("status") == "active":
                        return
                    changed = {k: v for k, v in body.items() if k != "error"} | {"status": "active"}
                else:
                    message = f"Notifications cannot be delivered: {error}"
                    if body.get("status") == "error" and body.get("error") == message:
                        return
                    changed = body | {"status": "error", "error": message}
                self.ctx.repository.update(conn, rules.SUBSCRIPTION, subscription_id, changed,
                                           expected_version=current.version_id, allow_create=False)
        except (PreconditionFailed, Conflict):
            pass  # a client changed it meanwhile: its version stands
        except Exception:  # noqa: BLE001
            log.exception("Subscription/%s: could not record its delivery status", subscription_id)
