"""FHIR date, dateTime and instant values as UTC ranges in epoch microseconds.

A value stands for the whole interval of its precision: ``2024`` is all of 2024, ``2024-03-05`` the
whole day, ``2024-03-05T10:00`` the whole minute. Values without a time zone are taken as UTC.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

_PATTERN = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MICROS = -(2**62)
MAX_MICROS = 2**62
_MICROS = 1_000_000
_DAY = 86_400 * _MICROS


def to_micros(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_FIRST = datetime(1, 1, 1, tzinfo=UTC)
_LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def to_datetime(micros: int) -> datetime:
    """The UTC instant of a microsecond count, clamped to what ``datetime`` can hold."""
    clamped = max(to_micros(_FIRST), min(to_micros(_LAST), micros))
    return EPOCH + timedelta(microseconds=clamped)


def parse_range(value: str) -> tuple[int, int]:
    """The inclusive [low, high] microsecond range a FHIR date/dateTime/instant covers.

    Raises ``ValueError`` for anything that is not one.
    """
    match = _PATTERN.match(value.strip())
    if not match:
        raise ValueError(f"not a FHIR date/dateTime: {value!r}")
    parts = match.groupdict()
    year = int(parts["year"])
    month = int(parts["month"] or 1)
    day = int(parts["day"] or 1)
    hour = int(parts["hour"] or 0)
    minute = int(parts["minute"] or 0)
    second = int(parts["second"] or 0)
    fraction = parts["fraction"]
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    offset_minutes = 0
    if parts["tz"] and parts["tz"] != "Z":
        sign = 1 if parts["tz"][0] == "+" else -1
        offset_minutes = sign * (int(parts["tz"][1:3]) * 60 + int(parts["tz"][4:6]))
    # Integer arithmetic from here on: the first and last instants of 0001 and 9999 stay in range.
    local = to_micros(datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC))
    start = local - offset_minutes * 60 * _MICROS
    if parts["month"] is None:
        span = (366 if calendar.isleap(year) else 365) * _DAY
    elif parts["day"] is None:
        span = calendar.monthrange(year, month)[1] * _DAY
    elif parts["hour"] is None:
        span = _DAY
    elif parts["second"] is None:
        span = 60 * _MICROS
    elif fraction is None:
        span = _MICROS
    else:
        span = 10 ** max(0, 6 - len(fraction))
    return start, start + span - 1
