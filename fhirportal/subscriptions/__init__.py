"""FHIR R4 Subscriptions, rest-hook channel (criteria-based): ``rules`` (what a Subscription may ask for,
checked as it is written), ``matching`` (in the write's transaction, before its commit: which
Subscriptions match what was written), ``queue`` (the notifications owed, in the database, committed with
the write), ``deliver`` (one POST) and ``worker`` (the thread
that delivers, retries and keeps each Subscription's status)."""

from __future__ import annotations

from dataclasses import dataclass

from .matching import Matcher
from .queue import DeliveryQueue
from .worker import DeliveryWorker


@dataclass
class Subscriptions:
    queue: DeliveryQueue
    matcher: Matcher
    worker: DeliveryWorker

    def run_due(self, limit: int | None = None) -> int:
        """One delivery pass, synchronously: how many notifications were handled."""
        return self.worker.run_due(limit)


def install(ctx, *, start: bool) -> Subscriptions:
    """Match every write and enqueue its notifications inside its transaction (a ``before_commit`` hook), wake
    the delivery thread after the commit (an ``after_commit`` hook) and, if ``start``, deliver in this
    process's thread (started when there is something to deliver: ``DeliveryWorker``)."""
    queue = DeliveryQueue(ctx.database)
    worker = DeliveryWorker(ctx, queue, enabled=start)
    matcher = Matcher(ctx, queue, worker.wake)
    ctx.before_commit.append(matcher.before_commit)
    ctx.after_commit.append(matcher.on_commit)
    return Subscriptions(queue, matcher, worker)
