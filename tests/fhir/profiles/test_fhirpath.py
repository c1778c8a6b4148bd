"""The compiled FHIRPath evaluator: its semantics case by case, and agreement with fhirpathpy on every US
Core invariant over the examples and variants of them (where fhirpathpy follows FHIRPath)."""

from __future__ import annotations

import copy
import functools
import json
import re

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode

from fhirportal.definitions.packages import examples
from fhirportal.fhir.profiles import ProfileRegistry, registry
from fhirportal.fhir.profiles import fhirpath as fast
from fhirportal.fhir.profiles.invariants import SYSTEM_TYPES
from fhirportal.fhir.profiles.plan import PRIMITIVE_TYPES, elements
from tests.fhir.profiles.valuesets import contains

OBSERVATION = {"resourceType": "Observation", "status": "final", "effectiveDateTime": "2020-01-02",
               "valueQuantity": {"value": 5, "system": "http://unitsofmeasure.org", "code": "mg"},
               "component": [{"code": {"text": "a"}}, {"code": {"text": "b"}}], "_issued": {"extension": []}}


@pytest.mark.parametrize(("expression", "expected"), [
    ("status", ["final"]),
    ("Observation.status", ["final"]),
    ("value.ofType(Quantity).system", ["http://unitsofmeasure.org"]),
    ("value.ofType(CodeableConcept)", []),
    ("effective is DateTime", [True]),
    ("effective is Period", [False]),
    ("effective.toString().length()", [10]),
    ("component.code.text", ["a", "b"]),
    ("component.where(code.text = 'b').exists()", [True]),
    ("component.select(code.text)", ["a", "b"]),
    ("issued.exists()", [True]),  # present only through _issued
    ("status = 'final' and value.exists()", [True]),
    ("status = 'preliminary' or dataAbsentReason.exists()", [False]),
    ("dataAbsentReason = 'x'", []),  # = with an empty side is empty
    ("dataAbsentReason = 'x' or true", [True]),
    ("dataAbsentReason = 'x' and true", []),
    ("dataAbsentReason.exists() implies false", [True]),
    ("dataAbsentReason = 'x' implies false", []),
    ("true xor dataAbsentReason.exists()", [True]),
    ("subject or valueQuantity", [True]),  # a single non-Boolean item is true where a Boolean is expected
    ("subject or dataAbsentReason", []),
    ("component.code.text and true", [True]),  # and so is a collection of several
    ("'1234'.substring(1, 2)", ["23"]),
    ("'1234'.substring(4)", []),
    ("'12a'.toInteger()", []),
    ("('7'.toInteger() * 2 - 9) mod 10", [5]),
    ("iif(status = 'final', 'yes', 'no')", ["yes"]),
    ("status.matches('^fin')", [True]),
    ("'a\\'b'.length()", [3]),
    ("component.count() >= 2", [True]),
    ("status != 'final'", [False]),
    ("status.not()", [False]),
])
def test_expression(expression, expected):
    evaluate = fast.compile_expression(expression)
    assert evaluate is not None
    assert evaluate(OBSERVATION, "Observation") == expected


def test_a_collection_where_a_single_item_is_needed_is_an_error():
    with pytest.raises(fast.EvaluationError):
        fast.compile_expression("component.code.text.substring(0, 1)")(OBSERVATION, "Observation")


def test_dates_are_left_to_fhirpathpy():
    with pytest.raises(fast.Fallback):
        fast.compile_expression("effective = '2020-01-02'")(OBSERVATION, "Observation")


@pytest.mark.parametrize("expression", ["%resource.status", "status | status", "status in ('a')",
                                        "status.replaceMatches('a', 'b')", "1.5 div 2", "-1"])
def test_unsupported_is_left_to_fhirpathpy(expression):
    assert fast.compile_expression(expression) is None


# ---------------------------------------------------------------------------- agreement with fhirpathpy

def _names() -> tuple[str, ...]:
    """The names US Core's invariants mention (element names, and choice names as prefixes)."""
    return tuple({name for url in registry().urls() for element in elements(registry().profile(url).root)
                  for invariant in element.invariants
                  for name in re.findall(r"[A-Za-z]+", re.sub(r"'[^']*'", "", invariant.expression))})


def _variants(resource: dict, names: tuple[str, ...]):
    """The resource, the resource without each of its elements in turn, and with each string an invariant
    may read cut by its last character (partial dates, broken NPIs)."""
    yield resource
    for key in resource:
        if key != "resourceType":
            yield {k: v for k, v in resource.items() if k != key}
    for path, value in _strings(resource, ()):
        if not isinstance(path[-1], str) or not path[-1].startswith(names):
            continue
        changed = copy.deepcopy(resource)
        node = changed
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value[:-1]
        yield changed


def _strings(node, path):
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in ("div", "resourceType"):
                yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, index))
    elif isinstance(node, str) and len(node) > 1:
        yield path, node


@functools.cache
def _engine(expression: str):
    return fhirpathpy.compile(expression, model=fast.MODEL)


def _fhirpathpy(expression: str, value, type_path: str):
    node = value if isinstance(value, dict) and "resourceType" in value else ResourceNode.create_node(
        value, SYSTEM_TYPES.get(type_path, type_path) if type_path in PRIMITIVE_TYPES else type_path)
    return _engine(expression)(node, {})


def test_agrees_with_fhirpathpy_on_us_core_invariants():
    """Every distinct evaluation of a US Core invariant while validating the examples and their variants,
    compared with fhirpathpy: the same verdict each time. fhirpathpy may only raise on us-core-13
    (``practitioner or organization or …``: a single non-Boolean item where a Boolean is expected, which
    FHIRPath calls true; there is no PractitionerRole example, so it is tested in test_rules)."""
    calls = []
    recording = ProfileRegistry(registry().definitions.values())
    for url in recording.urls():
        for element in elements(recording.profile(url).root):
            element.invariants = tuple(_recorded(invariant, calls) for invariant in element.invariants)
    pairs = [(example, url) for example in examples().values() if example["resourceType"] != "Bundle"
             for url in example.get("meta", {}).get("profile", []) if url in recording.definitions]
    names = _names()
    for example, url in pairs:
        for variant in _variants(example, names):
            recording.validate(variant, url, contains)
    agreed, raised, differed, seen = 0, set(), set(), set()
    for key, expression, value, type_path, result in calls:
        call = (expression, type_path, json.dumps(value, sort_keys=True))
        if call in seen:
            continue
        seen.add(call)
        try:
            expected = _fhirpathpy(expression, value, type_path)
        except Exception:
            raised.add(key)
            continue
        if (result == [True]) == (expected == [True]):
            agreed += 1
        else:
            differed.add(key)
    assert agreed > 1000
    assert raised <= {"us-core-13"}
    assert differed == set()


def _recorded(invariant, calls):
    evaluate = invariant.evaluate

    def recording(value, type_path):
        result = evaluate(value, type_path)
        calls.append((invariant.key, invariant.expression, value, type_path, result))
        return result

    return type(invariant)(invariant.key, invariant.severity, invariant.human, invariant.expression, recording,
                           invariant.compiled)
