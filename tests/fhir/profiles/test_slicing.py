"""Slicing rules US Core 6.1.0 does not use (closed rules on a non-type slicing, ordered, openAtEnd, the
exists discriminator) and discriminators the validator does not support, on profiles derived from US
Core's blood-pressure profile by changing its component slicing."""

from __future__ import annotations

import copy

import pytest

from fhirportal.definitions.packages import examples, package
from fhirportal.fhir.profiles import ProfileRegistry, Unsupported
from tests.fhir.profiles.valuesets import contains

BLOOD_PRESSURE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure"
HEART_RATE = {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
              "valueQuantity": {"value": 44, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}


def derived(name: str, **changes) -> tuple[ProfileRegistry, str]:
    """A registry with the package's definitions and a copy of the blood-pressure profile named ``name``
    whose elements are changed by ``changes`` (element id -> properties to set)."""
    definitions = package().of_type("StructureDefinition")
    profile = copy.deepcopy(next(d for d in definitions if d["url"] == BLOOD_PRESSURE))
    profile["id"], profile["url"] = name, f"http://example.org/fhir/StructureDefinition/{name}"
    for element in profile["snapshot"]["element"]:
        element.update(changes.get(element["id"], {}))
    return ProfileRegistry([*definitions, profile]), profile["url"]


def slicing(**rules) -> dict:
    base = {"discriminator": [{"type": "pattern", "path": "code"}], "ordered": False, "rules": "open"}
    return {"slicing": {**base, **rules}}


def blood_pressure(change=None) -> dict:
    resource = copy.deepcopy(examples()["Observation-blood-pressure.json"])
    if change:
        change(resource["component"])
    return resource


def diagnostics(registry: ProfileRegistry, url: str, resource: dict) -> list[tuple[str, str]]:
    return [(i.expression, i.diagnostics) for i in registry.validate(resource, url, contains)]


def test_closed():
    registry, url = derived("bp-closed", **{"Observation.component": slicing(rules="closed")})
    assert diagnostics(registry, url, blood_pressure()) == []
    assert diagnostics(registry, url, blood_pressure(lambda components: components.append(HEART_RATE))) == [
        ("Observation.component[2]", "Observation.component[2]: matches none of the slices (systolic, diastolic) "
         "(bp-closed: Observation.component slicing is closed)")]


def test_open_accepts_what_closed_refuses():
    registry, url = derived("bp-open")
    assert diagnostics(registry, url, blood_pressure(lambda components: components.append(HEART_RATE))) == []


def test_ordered():
    registry, url = derived("bp-ordered", **{"Observation.component": slicing(ordered=True)})
    assert diagnostics(registry, url, blood_pressure()) == []
    assert diagnostics(registry, url, blood_pressure(lambda components: components.reverse())) == [
        ("Observation.component[1]", "Observation.component[1]: slice systolic is out of order (bp-ordered: "
         "Observation.component slicing is ordered)")]


def test_open_at_end():
    registry, url = derived("bp-open-at-end", **{"Observation.component": slicing(rules="openAtEnd")})
    assert diagnostics(registry, url, blood_pressure(lambda components: components.append(HEART_RATE))) == []
    assert diagnostics(registry, url, blood_pressure(lambda components: components.insert(1, HEART_RATE))) == [
        ("Observation.component[2]", "Observation.component[2]: slice diastolic after items in no slice "
         "(bp-open-at-end: Observation.component slicing is openAtEnd)")]


def test_exists_discriminator():
    """systolic: components without a dataAbsentReason (max 0), diastolic: with one (min 1)."""
    registry, url = derived("bp-exists", **{
        "Observation.component": slicing(discriminator=[{"type": "exists", "path": "dataAbsentReason"}]),
        "Observation.component:systolic.dataAbsentReason": {"max": "0"},
        "Observation.component:diastolic.dataAbsentReason": {"min": 1}})
    assert diagnostics(registry, url, blood_pressure()) == [
        ("Observation.component", "Observation.component: maximum 1 in slice systolic, found 2 (bp-exists: "
         "systolic slice requires 1..1)"),
        ("Observation.component", "Observation.component: minimum 1 in slice diastolic, found 0 (bp-exists: "
         "diastolic slice requires 1..1)"),
        # the diastolic component, in the systolic slice, is checked against it
        ("Observation.component[1].code", 'Observation.component[1].code: must contain {"coding":[{"system":'
         '"http://loinc.org","code":"8480-6"}]} (bp-exists: Observation.component:systolic.code '
         "patternCodeableConcept)")]
    absent = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "error"}]}
    assert diagnostics(registry, url, blood_pressure(
        lambda components: components[1].update(dataAbsentReason=absent))) == []


@pytest.mark.parametrize(("discriminator", "reason"), [
    ({"type": "profile", "path": "$this"}, "discriminator type profile"),
    ({"type": "type", "path": "value"}, "type discriminator on value"),
    ({"type": "value", "path": "code.coding.where(system='http://loinc.org').code"},
     "discriminator path code.coding.where(system='http://loinc.org').code"),
    ({"type": "value", "path": "interpretation"}, "slice systolic: nothing at interpretation tells it apart (value)"),
])
def test_unsupported_discriminator_is_listed_and_items_are_not_sliced(discriminator, reason):
    registry, url = derived("bp-unsupported", **{"Observation.component": slicing(discriminator=[discriminator])})
    assert Unsupported("Observation.component", "slicing", f"{reason}: items are validated against "
                       "Observation.component") in registry.profile(url).unsupported
    # no slice is counted: swapping a code is not reported; the element's own rules still are
    assert diagnostics(registry, url, blood_pressure(lambda components: components[1].update(
        code=copy.deepcopy(components[0]["code"])))) == []
    assert diagnostics(registry, url, blood_pressure(lambda components: components.pop())) == [
        ("Observation.component", "Observation.component: minimum 2, found 1 (bp-unsupported: Observation.component "
         "requires 2..*)")]
