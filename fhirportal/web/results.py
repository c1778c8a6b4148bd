"""Lab results and vital signs grouped by test, newest first, each with its latest value, unit,
reference range and a flag when out of range, and a chart when the test has a history. Pure functions
over the Observations a search returned.

A flag comes from the result's own interpretation (HL7 v3 ObservationInterpretation: H, L, A, …), else
from comparing its value with its reference range. Vital signs carry no reference range of their own;
for weight-independent ones (BMI, blood pressure, pulse, oxygen saturation) the chart shades the
typical adult range instead, saying so, and flags nothing by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup

from .charts import Point, Series, line_chart
from .words import concept, effective, quantity, sort_key, value_text, when

LOINC = "http://loinc.org"
BLOOD_PRESSURE, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"
FLAGS = {"H": "High", "HH": "Critically high", "HU": "Very high", "L": "Low", "LL": "Critically low",
         "LU": "Very low", "A": "Abnormal", "AA": "Critically abnormal", ">": "Above the measurable range",
         "<": "Below the measurable range", "POS": "Positive", "DET": "Detected", "R": "Resistant"}
# Typical adult ranges, shaded where a vital sign has no reference range of its own: (low, high, unit code)
TYPICAL = {"39156-5": (18.5, 24.9, "kg/m2"), SYSTOLIC: (90, 120, "mm[Hg]"), DIASTOLIC: (60, 80, "mm[Hg]"),
           "8867-4": (60, 100, "/min"), "59408-5": (95, 100, "%"), "2708-6": (95, 100, "%"),
           "9279-1": (12, 20, "/min")}


@dataclass
class Reading:
    id: str
    moment: str | None
    when: str
    value: str
    number: float | None
    flag: str | None
    range_text: str
    numbers: dict[str, float] = field(default_factory=dict)  # blood pressure: systolic and diastolic
    measured: bool = True  # False: no value, only why (dataAbsentReason: not performed, …)


@dataclass
class Test:
    key: str
    name: str
    readings: list[Reading]
    chart: Markup | None = None
    range_note: str = ""

    @property
    def latest(self) -> Reading:
        """The newest reading with a value (a measurement not performed is listed, not shown as latest)."""
        return next((r for r in self.readings if r.measured), self.readings[0])


def _code(resource: dict) -> tuple[str, str]:
    """(system|code of the first coding, display name) of an Observation's test."""
    codings = (resource.get("code") or {}).get("coding") or [{}]
    first = codings[0]
    key = f"{first.get('system', '')}|{first.get('code', '')}" if first.get("code") else concept(resource.get("code"))
    return key, concept(resource.get("code"))


def _loinc(resource: dict) -> str | None:
    return next((c.get("code") for c in (resource.get("code") or {}).get("coding", []) if c.get("system") == LOINC),
                None)


def _bounds(resource: dict) -> tuple[float | None, float | None, str]:
    ranges = resource.get("referenceRange") or []
    if not ranges:
        return None, None, ""
    first = ranges[0]
    low = (first.get("low") or {}).get("value")
    high = (first.get("high") or {}).get("value")
    if first.get("text"):
        text = first["text"]
    elif low is not None and high is not None:
        text = f"{quantity(first['low'])} – {quantity(first['high'])}"
    elif low is not None:
        text = f"{quantity(first['low'])} or more"
    elif high is not None:
        text = f"up to {quantity(first['high'])}"
    else:
        text = ""
    return low, high, text


def _flag(resource: dict, number: float | None, low: float | None, high: float | None) -> str | None:
    for interpretation in resource.get("interpretation") or []:
        for coding in interpretation.get("coding", []):
            if coding.get("code") in FLAGS:
                return FLAGS[coding["code"]]
    if number is not None and low is not None and number < low:
        return "Low"
    if number is not None and high is not None and number > high:
        return "High"
    return None


def _component(resource: dict, loinc: str) -> float | None:
    for component in resource.get("component") or []:
        if any(c.get("code") == loinc for c in (component.get("code") or {}).get("coding", [])):
            value = (component.get("valueQuantity") or {}).get("value")
            return float(value) if isinstance(value, int | float) else None
    return None


def reading(resource: dict) -> Reading:
    low, high, range_text = _bounds(resource)
    value = (resource.get("valueQuantity") or {}).get("value")
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    numbers = {}
    shown = value_text(resource)
    if _loinc(resource) == BLOOD_PRESSURE:
        numbers = {k: v for k, v in ((SYSTOLIC, _component(resource, SYSTOLIC)),
                                     (DIASTOLIC, _component(resource, DIASTOLIC))) if v is not None}
        if len(numbers) == 2:
            shown = f"{numbers[SYSTOLIC]:g}/{numbers[DIASTOLIC]:g} mmHg"
    moment = effective(resource)
    measured = any(k.startswith("value") for k in resource) or any(
        k.startswith("value") for c in resource.get("component") or [] for k in c)
    return Reading(resource.get("id", ""), moment, when(moment, with_time=False), shown, number,
                   _flag(resource, number, low, high), range_text, numbers, measured)


def group(observations: list[dict], *, vital_signs: bool = False, id_prefix: str = "chart",
          charts: bool = True) -> list[Test]:
    """Observations grouped by test (newest reading first), the test with the newest reading first."""
    tests: dict[str, Test] = {}
    units: dict[str, str] = {}
    for resource in observations:
        key, name = _code(resource)
        test = tests.setdefault(key, Test(key, name, []))
        test.readings.append(reading(resource))
        units.setdefault(key, (resource.get("valueQuantity") or {}).get("unit", ""))
    ordered = sorted(tests.values(), key=lambda t: max(sort_key(r.moment) for r in t.readings), reverse=True)
    for index, test in enumerate(ordered):
        test.readings.sort(key=lambda r: sort_key(r.moment), reverse=True)
        if not charts:
            continue
        test.chart, test.range_note = _chart(test, observations, units.get(test.key, ""), vital_signs,
                                             f"{id_prefix}-{index}")
    return ordered


def _chart(test: Test, observations: list[dict], unit: str, vital_signs: bool, chart_id: str):
    dated = [r for r in test.readings if r.moment]
    loinc = test.key.split("|")[-1] if test.key.startswith(LOINC + "|") else None
    if loinc == BLOOD_PRESSURE:
        pairs = [r for r in dated if len(r.numbers) == 2]
        if len(pairs) < 2:
            return None, ""
        series = [Series(label, tuple(Point(r.moment, r.numbers[code]) for r in pairs), *TYPICAL[code][:2])
                  for label, code in (("Systolic", SYSTOLIC), ("Diastolic", DIASTOLIC))]
        return line_chart(f"{test.name} over time", "mmHg", series, chart_id), "typical adult range"
    numeric = [r for r in dated if r.number is not None]
    if len(numeric) < 2:
        return None, ""
    by_id = {o.get("id"): o for o in observations}
    low, high, _ = _bounds(by_id.get(numeric[0].id, {}))
    note = "reference range" if (low, high) != (None, None) else ""
    if vital_signs and note == "" and loinc in TYPICAL:
        low, high, _ = TYPICAL[loinc]
        note = "typical adult range"
    points = tuple(Point(r.moment, r.number, r.flag is not None) for r in numeric)
    return line_chart(f"{test.name} over time", unit, [Series(test.name, points, low, high)], chart_id), note


def latest_by_test(observations: list[dict]) -> list[Test]:
    """The tests, each with its readings newest first, without charts (what the summary lists)."""
    return group(observations, charts=False)
