"""Date index rows: date, dateTime, instant, Period and Timing values as [low, high] ranges."""

from __future__ import annotations

from collections.abc import Iterator

from .dates import MAX_MICROS, MIN_MICROS, parse_range


def rows(value) -> Iterator[dict]:
    if isinstance(value, str):
        low, high = parse_range(value)
        yield {"low": low, "high": high}
    elif isinstance(value, dict):
        if "start" in value or "end" in value:
            low = parse_range(value["start"])[0] if value.get("start") else MIN_MICROS
            high = parse_range(value["end"])[1] if value.get("end") else MAX_MICROS
            yield {"low": low, "high": high}
        for event in value.get("event", []):  # Timing
            yield from rows(event)
