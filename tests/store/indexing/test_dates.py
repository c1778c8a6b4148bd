"""FHIR date precision as ranges (pure function, table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhirportal.store.indexing.dates import parse_range, to_micros


def micros(*args) -> int:
    return to_micros(datetime(*args, tzinfo=UTC))


@pytest.mark.parametrize(("text", "low", "high"), [
    ("2024", micros(2024, 1, 1), micros(2025, 1, 1) - 1),
    ("2024-02", micros(2024, 2, 1), micros(2024, 3, 1) - 1),
    ("2024-02-29", micros(2024, 2, 29), micros(2024, 3, 1) - 1),
    ("2024-03-05T10:00Z", micros(2024, 3, 5, 10), micros(2024, 3, 5, 10, 1) - 1),
    ("2024-03-05T10:00:30Z", micros(2024, 3, 5, 10, 0, 30), micros(2024, 3, 5, 10, 0, 31) - 1),
    ("2024-03-05T10:00:30.5Z", micros(2024, 3, 5, 10, 0, 30, 500000), micros(2024, 3, 5, 10, 0, 30, 600000) - 1),
    ("2024-03-05T10:00:00+02:00", micros(2024, 3, 5, 8), micros(2024, 3, 5, 8, 0, 1) - 1),
    ("2024-12-31T23:30:00-01:00", micros(2025, 1, 1, 0, 30), micros(2025, 1, 1, 0, 30, 1) - 1),
])
def test_ranges(text, low, high):
    assert parse_range(text) == (low, high)


@pytest.mark.parametrize("text", ["", "24", "2024-13", "2024-02-30", "2024-03-05T25:00Z", "yesterday", "2024-3-5"])
def test_invalid(text):
    with pytest.raises(ValueError):
        parse_range(text)


def test_the_edges_of_the_calendar():
    low, high = parse_range("9999-12-31T23:59:59-14:00")
    assert high - low == 999_999
    assert parse_range("9999")[1] > parse_range("9999-12-31")[0]
    assert parse_range("0001-01-01T00:00:00+14:00")[0] < parse_range("0001")[0] + 1
