"""Server time: UTC, to the millisecond (what ``meta.lastUpdated`` shows is what is stored)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    moment = datetime.now(UTC)
    return moment.replace(microsecond=(moment.microsecond // 1000) * 1000)


def as_instant(moment: datetime) -> str:
    """FHIR instant text, e.g. ``2026-11-25T14:11:17.123Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ensure_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every instant in the store is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
