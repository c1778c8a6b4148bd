"""The structure table's check is at least as strict as the model library (validation skips the models
when it finds nothing), on HL7's US Core examples mutated by Hypothesis, and each of its rules refuses
what it should and accepts what R4 allows."""

from __future__ import annotations

import copy
import os

import pydantic
import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhirportal.definitions.packages import examples
from fhirportal.fhir.structure_check import StructureCheck

CHECK = StructureCheck()
CORPUS = sorted(examples().values(), key=lambda e: (e["resourceType"], e.get("id", "")))
HOSTILE = [None, 1, -1, 0, 1.5, 1.0, 1e308, 10**30, 2**31, -2**31 - 1, float("nan"), float("inf"), True, "", " ",
           "x y", " x", "\t", "a\u0000b", "\ud800", "é", "1", "true", "abc", "AAA=", "A===", "0000",
           "2020-13-01", "2020-02-30", "2021-02-29", "2020-1-1", "2020-01-01T25:00:00Z", "2020-01-01T10:00Z",
           "2020-01-01T10:00:00", "2020-01-01T10:00:60Z", "2020-01-01T00:00:00+15:00", "25:00:00", "12:00",
           "urn:oid:1.2", "http://x y", "#frag", "Patient/", "<div>x</div>", [], {}, [None], [1], [{}], [None, None],
           {"foo": 1}, {"id": "x"}, {"extension": []}, {"resourceType": "Patient"}, {"resourceType": "Nope"},
           {"extension": [{"url": "u", "valueString": "x", "valueBoolean": True}]}]
KEYS = ["foo", "text", "id", "extension", "contained", "value", "valueX", "_id", "_url", "_div", "_reference",
        "_display", "valueString", "valueBoolean"]
RUNS = settings(max_examples=int(os.environ.get("FHIRPORTAL_HOSTILE_EXAMPLES", "300")), deadline=None,
                database=None, suppress_health_check=[HealthCheck.too_slow])


def models_refuse(body: dict) -> bool:
    try:
        model = get_fhir_model_class(body["resourceType"])
    except (KeyError, TypeError, ValueError):
        return False
    try:
        model.model_validate(body)
    except pydantic.ValidationError:
        return True
    except Exception:  # noqa: BLE001  (the library's other failures on hostile JSON count as refusals)
        return True
    return False


def spots(node, found=None) -> list[tuple[object, object]]:
    """Every (container, key) in the document but its resourceType."""
    found = [] if found is None else found
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if key != "resourceType":
            found.append((node, key))
        spots(value, found)
    return found


@st.composite
def mutated(draw) -> dict:
    document = copy.deepcopy(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 3))):
        places = spots(document)
        if not places:
            break
        parent, key = draw(st.sampled_from(places))
        kind = draw(st.sampled_from(["replace", "replace", "delete", "sibling", "extension"]))
        value = copy.deepcopy(draw(st.sampled_from(HOSTILE)))
        if kind == "delete" and isinstance(parent, dict):
            del parent[key]
        elif kind == "sibling" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = value
        elif kind == "extension" and isinstance(parent, dict):
            parent[f"_{key}"] = value
        else:
            parent[key] = value
    return document


@RUNS
@given(mutated())
def test_what_the_models_refuse_the_structure_check_refuses(document):
    if models_refuse(document):
        assert CHECK.issues(document), "the models refuse this, the structure table's check does not"


def test_every_us_core_example_passes_both():
    for example in CORPUS:
        assert not models_refuse(example), example.get("id")
        assert not CHECK.issues(example), (example.get("id"), CHECK.issues(example))


def observation(**elements) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **elements}


@pytest.mark.parametrize(("body", "where", "words"), [
    (observation(valueString="x", valueBoolean=True), "Observation.valueBoolean",
     "Only one of valueString, valueBoolean"),
    (observation(valueString="x", _valueBoolean={"extension": [{"url": "u", "valueCode": "x"}]}),
     "Observation.valueBoolean", "Only one of valueString, valueBoolean"),
    ({"resourceType": "Questionnaire", "status": "draft",
      "item": [{"linkId": "1", "type": "choice", "answerOption": [{}]}]},
     "Questionnaire.item[0].answerOption[0].value[x]", "Missing required element value[x]"),
    (observation(_status=[{"id": "a"}]), "Observation._status", "A single Element"),
    ({"resourceType": "Patient", "name": [{"given": ["A"], "_given": {"id": "a"}}]}, "Patient.name[0]._given",
     "An array"),
    (observation(_status={}), "Observation._status", "with an id or extensions"),
    (observation(_id={"id": "a"}), "Observation._id", "Unknown element"),
    (observation(effectiveDateTime="2021-02-29"), "Observation.effectiveDateTime", "not a valid dateTime"),
    (observation(effectiveDateTime="2020-01-01T10:00Z"), "Observation.effectiveDateTime", "not a valid dateTime"),
    (observation(effectiveDateTime="0000"), "Observation.effectiveDateTime", "not a valid dateTime"),
    (observation(issued="2020-01-01T24:00:00Z"), "Observation.issued", "not a valid instant"),
    (observation(valueTime="12:60:00"), "Observation.valueTime", "not a valid time"),
    (observation(valueInteger=2**31), "Observation.valueInteger", "not a valid integer"),
    (observation(valueQuantity={"value": float("inf")}), "Observation.valueQuantity.value", "not a valid decimal"),
    (observation(valueString="\ud800"), "Observation.valueString", "not valid Unicode"),
    ({"resourceType": "Binary", "contentType": "text/plain", "data": "abc"}, "Binary.data",
     "not a valid base64Binary"),
])
def test_each_rule_refuses(body, where, words):
    found = CHECK.issues(body)
    assert any(issue.expression == where and words in issue.diagnostics for issue in found), \
        [(issue.expression, issue.diagnostics) for issue in found]


@pytest.mark.parametrize("body", [
    observation(effectiveDateTime="2020"), observation(effectiveDateTime="2020-02"),
    observation(effectiveDateTime="2020-02-29"), observation(effectiveDateTime="2020-02-29T23:59:59.999+14:00"),
    observation(valueInteger=-2**31), observation(valueTime="00:00:00"),
    observation(_status={"extension": [{"url": "http://example.org/x", "valueString": "x"}]}),
    {"resourceType": "Patient", "name": [{"given": ["A", "B"], "_given": [None, {"id": "b"}]}]},
    {"resourceType": "Binary", "contentType": "text/plain", "data": "aGVs bG8="},
    observation(valueString="é ✓"),
])
def test_what_r4_allows_passes(body):
    assert CHECK.issues(body) == []
