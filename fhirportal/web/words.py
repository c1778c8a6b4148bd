"""FHIR values in a patient's words: dates as people write them, codes by their display text,
quantities with their units, people by their names. Pure functions.
"""

from __future__ import annotations

import re
from datetime import date, datetime

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T(\d{2}):(\d{2}))?")


def parse_moment(value: str | None) -> tuple[int, int | None, int | None, int | None, int | None] | None:
    """(year, month, day, hour, minute) of a FHIR date/dateTime/instant, as written (its own time zone)."""
    match = _DATE.match(value or "")
    if not match:
        return None
    return tuple(int(part) if part else None for part in match.groups())  # type: ignore[return-value]


def when(value: str | None, *, with_time: bool = False, weekday: bool = False) -> str:
    """"March 5, 2024" (or "March 2024", "2024"), "Tuesday, December 8, 2026 at 9:30 AM"."""
    parts = parse_moment(value)
    if parts is None:
        return "date not recorded"
    year, month, day, hour, minute = parts
    if month is None:
        return str(year)
    if day is None:
        return f"{MONTHS[month - 1]} {year}"
    text = f"{MONTHS[month - 1]} {day}, {year}"
    if weekday:
        text = f"{date(year, month, day).strftime('%A')}, {text}"
    if with_time and hour is not None:
        text += f" at {(hour % 12) or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"
    return text


def sort_key(value: str | None) -> str:
    """A key that orders FHIR dates as text does (they are written most significant first)."""
    return value or ""


def effective(resource: dict) -> str | None:
    """When a clinical record happened (its effective, occurrence, onset, period start, date …)."""
    for name in ("effectiveDateTime", "effectiveInstant", "occurrenceDateTime", "onsetDateTime", "performedDateTime",
                 "authoredOn", "recordedDate", "date", "issued", "start", "created"):
        if resource.get(name):
            return resource[name]
    for name in ("effectivePeriod", "period", "performedPeriod", "onsetPeriod", "occurrencePeriod"):
        if isinstance(resource.get(name), dict) and resource[name].get("start"):
            return resource[name]["start"]
    return None


def concept(value: dict | None, fallback: str = "Not named") -> str:
    """A CodeableConcept (or Coding) by its text, else its first display; never a bare code."""
    if not isinstance(value, dict):
        return fallback
    if value.get("text"):
        return value["text"]
    if value.get("display"):
        return value["display"]
    for coding in value.get("coding", []):
        if coding.get("display"):
            return coding["display"]
    return fallback


def first_concept(values: list | None, fallback: str = "Not named") -> str:
    return concept(values[0], fallback) if values else fallback


def quantity(value: dict | None) -> str:
    if not isinstance(value, dict) or value.get("value") is None:
        return ""
    unit = value.get("unit") or value.get("code") or ""
    number = value["value"]
    shown = f"{number:g}" if isinstance(number, float) else str(number)
    return f"{shown} {unit}".strip() if unit not in ("1", "{score}") else shown


def value_text(resource: dict) -> str:
    """An Observation's (or component's) value as a person reads it."""
    if "valueQuantity" in resource:
        return quantity(resource["valueQuantity"])
    if "valueCodeableConcept" in resource:
        return concept(resource["valueCodeableConcept"])
    for name in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        if name in resource:
            value = resource[name]
            return ("yes" if value else "no") if isinstance(value, bool) else str(value)
    if "component" in resource:
        return ", ".join(f"{concept(c.get('code'))} {value_text(c)}" for c in resource["component"])
    return concept(resource.get("dataAbsentReason"), "no value")


def human_name(resource: dict | None, fallback: str = "") -> str:
    names = (resource or {}).get("name") or []
    if isinstance(names, str):
        return names  # Organization, Location
    for name in names:
        if name.get("text"):
            return name["text"]
        text = " ".join([*name.get("prefix", []), *name.get("given", []), name.get("family", ""),
                         *name.get("suffix", [])]).strip()
        if text:
            return text
    return fallback


def reference_text(reference: dict | None, resources: dict[str, dict] | None = None) -> str:
    """A Reference by its display, or by the name of the resource it points at (when at hand)."""
    if not isinstance(reference, dict):
        return ""
    if reference.get("display"):
        return reference["display"]
    target = (resources or {}).get(reference.get("reference", ""))
    return human_name(target) if target else ""


def age_today(birth_date: str | None, today: date | None = None) -> int | None:
    parts = parse_moment(birth_date)
    if parts is None or parts[1] is None or parts[2] is None:
        return None
    today = today or date.today()
    born = date(parts[0], parts[1], parts[2])
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def today_text(now: datetime | None = None) -> str:
    moment = now or datetime.now()
    return when(moment.strftime("%Y-%m-%d"))
