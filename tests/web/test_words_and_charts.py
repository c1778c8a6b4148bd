"""Values in a patient's words, result grouping and flags, and the SVG charts (pure functions)."""

from __future__ import annotations

import re

import pytest

from fhirportal.web.charts import Point, Series, line_chart
from fhirportal.web.results import group, reading
from fhirportal.web.words import concept, quantity, value_text, when


@pytest.mark.parametrize("value, options, expected", [
    ("2024-03-05", {}, "March 5, 2024"),
    ("2024-03", {}, "March 2024"),
    ("2024", {}, "2024"),
    ("2026-12-08T09:30:00-07:00", {"with_time": True, "weekday": True}, "Tuesday, December 8, 2026 at 9:30 AM"),
    ("2026-12-08T15:05:00Z", {"with_time": True}, "December 8, 2026 at 3:05 PM"),
    ("2026-12-08T00:10:00Z", {"with_time": True}, "December 8, 2026 at 12:10 AM"),
    (None, {}, "date not recorded"),
    ("not a date", {}, "date not recorded"),
])
def test_dates_as_people_write_them(value, options, expected):
    assert when(value, **options) == expected


@pytest.mark.parametrize("value, expected", [
    ({"text": "Penicillin", "coding": [{"code": "7984", "display": "penicillin V"}]}, "Penicillin"),
    ({"coding": [{"code": "7984"}, {"code": "x", "display": "Second"}]}, "Second"),
    ({"coding": [{"code": "7984"}]}, "Not named"),  # never a bare code
    (None, "Not named"),
])
def test_codes_by_their_display_text(value, expected):
    assert concept(value) == expected


def test_values_and_quantities():
    assert quantity({"value": 6.1, "unit": "%"}) == "6.1 %"
    assert quantity({"value": 7, "code": "mg/dL"}) == "7 mg/dL"
    assert value_text({"valueCodeableConcept": {"text": "Negative"}}) == "Negative"
    assert value_text({"valueBoolean": False}) == "no"
    assert value_text({"dataAbsentReason": {"text": "Not performed"}}) == "Not performed"


@pytest.mark.parametrize("observation, flag", [
    ({"valueQuantity": {"value": 7.0}, "referenceRange": [{"high": {"value": 5.6}}]}, "High"),
    ({"valueQuantity": {"value": 3.0}, "referenceRange": [{"low": {"value": 4.0}}]}, "Low"),
    ({"valueQuantity": {"value": 5.0}, "referenceRange": [{"low": {"value": 4.0}, "high": {"value": 5.6}}]}, None),
    ({"valueQuantity": {"value": 5.0}, "interpretation": [{"coding": [{"code": "A"}]}]}, "Abnormal"),
    ({"valueQuantity": {"value": 5.0}, "interpretation": [{"coding": [{"code": "N"}]}]}, None),
    ({"valueCodeableConcept": {"text": "Trace"}, "interpretation": [{"coding": [{"code": "A"}]}]}, "Abnormal"),
])
def test_flags_from_the_interpretation_or_the_range(observation, flag):
    assert reading({"id": "o", "effectiveDateTime": "2026-01-01", **observation}).flag == flag


def test_results_grouped_by_test_newest_first():
    def obs(code, when_, value):
        return {"id": f"{code}-{when_}", "code": {"coding": [{"system": "http://loinc.org", "code": code}],
                                                  "text": code}, "effectiveDateTime": when_,
                "valueQuantity": {"value": value, "unit": "mg/dL"}}
    tests = group([obs("A", "2025-01-01", 1), obs("B", "2026-02-01", 2), obs("A", "2026-03-01", 3)])
    assert [t.name for t in tests] == ["A", "B"]
    assert [r.id for r in tests[0].readings] == ["A-2026-03-01", "A-2025-01-01"]
    assert tests[0].chart is not None and tests[1].chart is None  # one value: nothing to chart


def test_a_chart_scales_its_points_and_shades_the_range():
    series = Series("A1c", (Point("2026-01-01", 7.0, True), Point("2026-07-01", 5.0)), low=4.0, high=5.6)
    svg = str(line_chart("A1c over time", "%", [series], "c1"))
    assert svg.startswith("<svg") and 'aria-labelledby="c1-t c1-d"' in svg and "<title id=\"c1-t\">" in svg
    xs = [float(x) for x in re.findall(r'<circle class="point[^"]*" cx="([\d.]+)"', svg)]
    ys = [float(y) for y in re.findall(r'cy="([\d.]+)"', svg)]
    assert xs[0] < xs[1] and ys[0] < ys[1]  # later to the right, higher value higher up
    band = re.search(r'<rect class="range" x="\d+" y="([\d.]+)" width="\d+" height="([\d.]+)"/>', svg)
    top, bottom = float(band.group(1)), float(band.group(1)) + float(band.group(2))
    assert top < ys[1] < bottom  # 5.0 inside the band, 7.0 above it
    assert ys[0] < top and 'class="point out"' in svg and "January 1, 2026" in svg
    assert "<script" not in svg and "style=" not in svg


def test_the_latest_reading_is_the_newest_with_a_value():
    measured = {"id": "a", "code": {"text": "Pulse"}, "effectiveDateTime": "2026-01-01",
                "valueQuantity": {"value": 70, "unit": "/min"}}
    skipped = {"id": "b", "code": {"text": "Pulse"}, "effectiveDateTime": "2026-02-01",
               "dataAbsentReason": {"text": "Not performed"}}
    test = group([measured, skipped])[0]
    assert [r.id for r in test.readings] == ["b", "a"] and test.latest.id == "a"
