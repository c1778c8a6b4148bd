"""Whatever a client sends, validation answers with issues, never an exception: US Core examples with a
random element replaced by random JSON, and nesting deeper than the walk can go."""

from __future__ import annotations

import copy
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhirportal.definitions.packages import examples
from fhirportal.errors import Issue
from fhirportal.fhir.profiles import registry, validate
from tests.fhir.profiles.valuesets import contains

HYPOTHESIS = settings(max_examples=int(os.environ.get("FHIRPORTAL_HOSTILE_EXAMPLES", "200")), deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])
PAIRS = sorted((name, url) for name, example in examples().items() if example["resourceType"] != "Bundle"
               for url in example.get("meta", {}).get("profile", []) if url in registry().definitions)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
                    | st.sampled_from(["", "#x", "Patient/1", "urn:uuid:1", "http://hl7.org/fhir/us/core/"
                                       "StructureDefinition/us-core-race", "ombCategory", "_"]),
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.sampled_from(["url", "extension", "coding", "system", "code", "value",
                                                       "valueString", "reference", "_value", "text", ""]),
                                      children, max_size=3), max_leaves=10)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


@HYPOTHESIS
@given(pair=st.sampled_from(PAIRS), choice=st.integers(min_value=0), replacement=JSON)
def test_a_replaced_element_never_raises(pair, choice, replacement):
    name, url = pair
    resource = copy.deepcopy(examples()[name])
    paths = [path for path in _paths(resource) if path and path != ("resourceType",)]
    path = paths[choice % len(paths)]
    node = resource
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = replacement
    issues = validate(resource, url, contains)
    assert all(isinstance(issue, Issue) and issue.expression for issue in issues)


def test_deep_nesting_is_an_issue():
    resource = copy.deepcopy(examples()["Patient-example.json"])
    deep: dict = {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"}
    for _ in range(5000):
        deep = {"url": "x", "extension": [deep]}
    resource["name"][0]["period"]["extension"] = [deep]
    issues = validate(resource, "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient", contains)
    assert [(i.code, i.diagnostics) for i in issues] == [
        ("too-costly", "Patient: is nested too deeply to be validated (us-core-patient: the validator's depth)")]


def test_not_a_resource():
    issues = validate(["Patient"], "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient")  # type: ignore[arg-type]
    assert [i.diagnostics for i in issues] == [
        "None: is not a Patient (us-core-patient: the profile constrains Patient)"]
