"""Metrics of the server's state rather than of its requests: the database pool, the access-log journal,
Bulk export jobs and Subscription deliveries.

Per-process values (the pool, the journal's queue) are gauges each worker keeps up to date (added up
across workers in multiprocess mode: ``livesum``); values that live in the database (export jobs by
status, deliveries waiting, retrying or given up) are read at scrape time by a collector, the same for
whichever worker answers the scrape.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram
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
# SQLite lets one writer in at a time: the wait for that turn is where its writes queue under load.
_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
WRITE_WAIT = Histogram("fhirportal_db_write_wait_seconds",
                       "Time a write transaction waited for the writers' turn (SQLite; about 0 on PostgreSQL)",
                       buckets=_WRITE_BUCKETS)
WRITE_DURATION = Histogram("fhirportal_db_write_duration_seconds",
                           "Time from the start of a write transaction to its commit or rollback",
                           buckets=_WRITE_BUCKETS)


def _observe_write(wait: float, duration: float) -> None:
    WRITE_WAIT.observe(wait)
    WRITE_DURATION.observe(duration)


def watch(ctx) -> None:
    """Have this process's access log report its writes and queue, and its database its write transactions."""

    def flushed(written: int, pending: int) -> None:
        JOURNAL_WRITTEN.inc(written)
        JOURNAL_PENDING.set(pending)

    ctx.audit.on_flush = flushed
    ctx.audit.on_failure = JOURNAL_FAILURES.inc
    ctx.database.on_write = _observe_write


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
