"""Spot checks of the generated FHIR R4 tables in fhirportal/definitions (tools/build_definitions.py)."""

import json
from importlib import resources

import pytest

from fhirportal import definitions

SEARCH = definitions.load("search-parameters")
STRUCTURE = definitions.load("structure")
COMPARTMENT = definitions.load("compartment-patient")


@pytest.mark.parametrize(
    ("resource_type", "code", "type_", "expression", "targets"),
    [
        ("Observation", "patient", "reference", "Observation.subject", ["Patient"]),
        (
            "Observation",
            "subject",
            "reference",
            "Observation.subject",
            ["Device", "Group", "Location", "Patient"],
        ),
        ("Observation", "encounter", "reference", "Observation.encounter", ["Encounter"]),
        (
            "Observation",
            "value-quantity",
            "quantity",
            "(Observation.value as Quantity) | (Observation.value as SampledData)",
            None,
        ),
        ("Observation", "date", "date", "Observation.effective", None),
        ("Patient", "birthdate", "date", "Patient.birthDate", None),
        ("Patient", "family", "string", "Patient.name.family", None),
        ("Condition", "patient", "reference", "Condition.subject", ["Patient"]),
        ("InsurancePlan", "name", "string", "InsurancePlan.name | InsurancePlan.alias", None),
        ("Resource", "_id", "token", "Resource.id", None),
        ("Resource", "_lastUpdated", "date", "Resource.meta.lastUpdated", None),
        ("Resource", "_tag", "token", "Resource.meta.tag", None),
    ],
)
def test_search_parameter(resource_type, code, type_, expression, targets):
    spec = SEARCH[resource_type][code]
    assert spec["type"] == type_
    assert spec["expression"] == expression
    assert spec.get("targets") == targets
    assert spec["url"].startswith("http://hl7.org/fhir/SearchParameter/")


def test_search_parameter_extras():
    assert "ap" in SEARCH["Patient"]["birthdate"]["comparators"]
    composite = SEARCH["Observation"]["code-value-quantity"]
    assert composite["type"] == "composite"
    assert [c["expression"] for c in composite["components"]] == ["code", "value.as(Quantity)"]
    assert "_text" not in SEARCH.get("Resource", {})
    assert "DomainResource" not in SEARCH
    assert not any("resolve()" in s["expression"] for params in SEARCH.values() for s in params.values())
    assert "classification" not in SEARCH["DeviceDefinition"]  # R5 parameter injected by the package
    assert "_content" not in SEARCH["Resource"]


@pytest.mark.parametrize(
    ("key", "prop", "expected"),
    [
        ("Observation", "valueQuantity", {"type": "Quantity", "choice": "value"}),
        ("Observation", "valueString", {"type": "string", "choice": "value"}),
        ("Observation", "identifier", {"type": "Identifier", "array": True}),
        ("Observation", "id", {"type": "id"}),
        ("Observation", "component", {"type": "Observation.component", "array": True}),
        ("Observation", "extension", {"type": "Extension", "array": True}),
        ("Observation.component", "referenceRange", {"type": "Observation.referenceRange", "array": True}),
        ("Observation.component", "code", {"type": "CodeableConcept", "required": True}),
        ("Questionnaire.item", "item", {"type": "Questionnaire.item", "array": True}),
        ("Patient", "birthDate", {"type": "date"}),
        ("Patient", "name", {"type": "HumanName", "array": True}),
        ("HumanName", "given", {"type": "string", "array": True}),
        ("Extension", "url", {"type": "uri", "required": True}),
        ("Narrative", "div", {"type": "xhtml", "required": True}),
        ("Bundle.entry", "resource", {"type": "Resource"}),
        # The package patches a few elements; the R4 definitions (dataelements.json) win.
        ("Bundle.entry.response", "outcome", {"type": "Resource"}),
        ("EvidenceVariable.characteristic", "description", {"type": "string"}),
        (
            "Quantity",
            "comparator",
            {
                "type": "code",
                "codes": ["<", "<=", ">=", ">"],
                "valueSet": "http://hl7.org/fhir/ValueSet/quantity-comparator",
            },
        ),
    ],
)
def test_structure_property(key, prop, expected):
    assert STRUCTURE[key][prop] == expected


@pytest.mark.parametrize(
    ("key", "prop", "included", "value_set"),
    [
        (
            "Observation",
            "status",
            {"final", "entered-in-error"},
            "http://hl7.org/fhir/ValueSet/observation-status",
        ),
        ("HumanName", "use", {"official", "usual"}, "http://hl7.org/fhir/ValueSet/name-use"),
        (
            "Patient",
            "gender",
            {"male", "female", "other", "unknown"},
            "http://hl7.org/fhir/ValueSet/administrative-gender",
        ),
        (
            "Timing.repeat",
            "periodUnit",
            {"s", "min", "h", "d", "wk", "mo", "a"},
            "http://hl7.org/fhir/ValueSet/units-of-time",
        ),
        (
            "Questionnaire.item",
            "type",
            {"group", "display", "choice"},
            "http://hl7.org/fhir/ValueSet/item-type",
        ),
        ("DetectedIssue", "status", {"final", "amended"}, "http://hl7.org/fhir/ValueSet/observation-status"),
    ],
)
def test_structure_codes(key, prop, included, value_set):
    entry = STRUCTURE[key][prop]
    assert included <= set(entry["codes"])
    assert entry["valueSet"] == value_set


def test_structure_codes_leave_out_abstract_concepts():
    assert "question" not in STRUCTURE["Questionnaire.item"]["type"]["codes"]
    assert STRUCTURE["Observation"]["status"]["required"] is True


@pytest.mark.parametrize(
    ("key", "prop", "targets"),
    [
        ("Observation", "subject", {"Patient", "Group", "Device", "Location"}),
        ("Observation", "focus", {"Resource"}),
        ("Patient", "generalPractitioner", {"Organization", "Practitioner", "PractitionerRole"}),
        ("Extension", "valueReference", {"Resource"}),
        (
            "AuditEvent.source",
            "observer",
            {"PractitionerRole", "Practitioner", "Organization", "Device", "Patient", "RelatedPerson"},
        ),
        ("ResearchStudy", "site", {"Location"}),
    ],
)
def test_structure_targets(key, prop, targets):
    assert set(STRUCTURE[key][prop]["targets"]) == targets


def test_structure_covers_all_types():
    for name in (
        "Patient",
        "Observation",
        "Parameters",
        "Binary",
        "HumanName",
        "Identifier",
        "CodeableConcept",
        "Coding",
        "Reference",
        "Quantity",
        "Period",
        "ContactPoint",
        "Address",
        "Meta",
        "Timing",
        "Dosage",
        "Annotation",
        "Attachment",
        "ElementDefinition",
    ):
        assert name in STRUCTURE, name
    for name in (
        "Resource",
        "DomainResource",
        "Element",
        "BackboneElement",
        "SimpleQuantity",
        "SubscriptionStatus",
    ):
        assert name not in STRUCTURE, name
    # every complex type named in structure.json has its own entry
    for props in STRUCTURE.values():
        for entry in props.values():
            if entry["type"][0].isupper() and entry["type"] != "Resource":
                assert entry["type"] in STRUCTURE, entry["type"]


@pytest.mark.parametrize(
    ("resource_type", "params"),
    [
        # R4's Patient CompartmentDefinition names Observation.subject/performer, not "patient".
        ("Observation", ["subject", "performer"]),
        ("Patient", ["link"]),
        ("Encounter", ["patient"]),  # the package's standalone file says "subject" (patched)
        ("AllergyIntolerance", ["patient", "recorder", "asserter"]),
    ],
)
def test_compartment_patient(resource_type, params):
    assert COMPARTMENT[resource_type] == params


def test_compartment_only_lists_types_with_params():
    assert "Organization" not in COMPARTMENT
    assert "Task" not in COMPARTMENT  # added by the package's patched standalone file, not R4
    assert all(COMPARTMENT.values())


@pytest.mark.parametrize("name", ["search-parameters", "structure", "compartment-patient"])
def test_files_are_compact_and_deterministic(name):
    text = resources.files(definitions).joinpath(f"{name}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    assert definitions.load(name) is definitions.load(name)
