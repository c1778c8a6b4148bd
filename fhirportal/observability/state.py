"""Metrics of the server's state rather than of its requests: the database pool, the access-log journal,
Bulk export jobs and Subscription deliveries.

Per-process values (the pool, the journal's queue) are gauges each worker keeps up to date (added up
across workers in multiprocess mode: ``livesum``); values that live in the database (export jobs by
status, deliveries waiting, retrying or given up) are read at scrape time by a collector, the same for
whichever worker answers the scrape.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from fhirportal.store.export_schema import export_job
from fhirportal.store.subscription_schema import subscription_delivery

log = logging.getLogger(__name__)

POOL_CHECKED_OUT = Gauge("fhirportal_db_pool_checked_out", "Database connections in use", multiprocess_mode="livesum")
POOL_OVERFLOW = Gauge("fhirportal_db_pool_overflow", "Database connections beyond the pool size",
                      multiprocess_mode="livesum")
JOURNAL_PENDING = Gauge("fhirportal_access_log_pending", "Accesses queued for the access-log journal",
                        multiprocess_mode="livesum")
JOURNAL_WRITTEN = Counter("fhirportal_access_log_written", "Access-log rows written")
JOURNAL_FAILURES = Counter("fhirportal_access_log_write_failures",
                           "Journal writes that failed (the database unreachable: the rows stay queued)")


def watch(ctx) -> None:
    """Have this process's access log report its writes and queue."""

    def flushed(written: int, pending: int) -> None:
        JOURNAL_WRITTEN.inc(written)
        JOURNAL_PENDING.set(pending)

    ctx.audit.on_flush = flushed
    ctx.audit.on_failure = JOURNAL_FAILURES.inc


def sample_pool(database) -> None:
    """The pool's state now (after each request)."""
    pool = database.engine.pool
    checked_out = getattr(pool, "checkedout", None)
    if callable(checked_out):
        POOL_CHECKED_OUT.set(checked_out())
    overflow = getattr(pool, "overflow", None)
    if callable(overflow):
        POOL_OVERFLOW.set(max(0, overflow()))


class DatabaseState(Collector):
    """Export jobs by status and Subscription deliveries by state, counted when scraped."""

    def __init__(self, database):
        self.database = database

    def collect(self):
        jobs = GaugeMetricFamily("fhirportal_export_jobs", "Bulk export jobs by status", labels=("status",))
        deliveries = GaugeMetricFamily("fhirportal_subscription_deliveries",
                                       "Subscription notifications not yet delivered", labels=("state",))
        try:
            with self.database.read() as conn:
                for status, count in conn.execute(select(export_job.c.status, func.count())
                                                  .group_by(export_job.c.status)):
                    jobs.add_metric([status], count)
                state = case((subscription_delivery.c.due_at.is_(None), "given-up"),
                             (subscription_delivery.c.attempts > 0, "retrying"), else_="due")
                for name, count in conn.execute(select(state, func.count()).group_by(state)):
                    deliveries.add_metric([name], count)
        except Exception as exc:  # noqa: BLE001  (a scrape never fails for want of the database)
            log.warning("metrics: the database could not be read (%s)", type(exc).__name__)
            return
        yield jobs
        yield deliveries
