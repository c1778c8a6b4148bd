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


def to_micros(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


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
    offset = timedelta(0)
    if parts["tz"] and parts["tz"] != "Z":
        sign = 1 if parts["tz"][0] == "+" else -1
        offset = sign * timedelta(hours=int(parts["tz"][1:3]), minutes=int(parts["tz"][4:6]))
    start = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC) - offset
    if parts["month"] is None:
        end = start.replace(year=year + 1)
    elif parts["day"] is None:
        end = start + timedelta(days=calendar.monthrange(year, month)[1])
    elif parts["hour"] is None:
        end = start + timedelta(days=1)
    elif parts["second"] is None:
        end = start + timedelta(minutes=1)
    elif fraction is None:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
    return to_micros(start), to_micros(end) - 1
