"""Each kind of rule, broken once: take a US Core example that conforms, change one thing, expect exactly
the issues that change causes (severity, code, FHIRPath expression, diagnostics)."""

from __future__ import annotations

import copy

import pytest

from fhirportal.definitions.packages import examples
from fhirportal.fhir.profiles import validate
from tests.fhir.profiles.valuesets import contains

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
RACE = US_CORE + "us-core-race"


def _parent(resource: dict, path: str):
    steps = [int(step) if step.isdigit() else step for step in path.split(".")]
    node = resource
    for step in steps[:-1]:
        node = node[step]
    return node, steps[-1]


def put(path: str, value):
    def change(resource):
        node, last = _parent(resource, path)
        node[last] = value
    return change


def remove(path: str):
    def change(resource):
        node, last = _parent(resource, path)
        del node[last]
    return change


def add(path: str, value):
    def change(resource):
        node, last = _parent(resource, path)
        node[last].append(value)
    return change


def both(*changes):
    def change(resource):
        for each in changes:
            each(resource)
    return change


def error(expression: str, diagnostics: str, code: str) -> tuple:
    return ("error", code, expression, f"{expression}: {diagnostics}")


BP = "Observation-blood-pressure.json"
HEMOGLOBIN = "Observation-cbc-hemoglobin.json"
PATIENT = "Patient-example.json"
SYSTOLIC = {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}

CASES = [
    # ---------------------------------------------------------------- cardinality
    ("element minimum", BP, "us-core-blood-pressure", remove("category"), [
        error("Observation.category", "minimum 1, found 0 (us-core-blood-pressure: Observation.category requires "
              "1..*)", "required")]),
    ("1..* must-have", PATIENT, "us-core-patient", remove("identifier"), [
        error("Patient.identifier", "minimum 1, found 0 (us-core-patient: Patient.identifier requires 1..*)",
              "required")]),
    ("minimum inside a datatype the snapshot expands", PATIENT, "us-core-patient", remove("telecom.0.system"), [
        error("Patient.telecom[0].system", "minimum 1, found 0 (us-core-patient: Patient.telecom.system requires "
              "1..1)", "required")]),
    ("minimum inside a backbone element", PATIENT, "us-core-patient",
     put("communication", [{"preferred": True}]), [
        error("Patient.communication[0].language", "minimum 1, found 0 (us-core-patient: "
              "Patient.communication.language requires 1..1)", "required")]),
    ("minimum inside a slice", BP, "us-core-blood-pressure", remove("component.0.valueQuantity.unit"), [
        error("Observation.component[0].valueQuantity.unit", "minimum 1, found 0 (us-core-blood-pressure: "
              "Observation.component:systolic.value[x].unit requires 1..1)", "required")]),
    ("prohibited element (max 0)", PATIENT, "us-core-patient", put("extension.0.valueString", "White"), [
        error("Patient.extension[0].valueString", "is prohibited (us-core-race: Extension.value[x] requires 0..0)",
              "structure")]),
    ("maximum", BP, "us-core-blood-pressure", put("effectivePeriod", {"start": "1999-07-02"}), [
        error("Observation.effective", "maximum 1, found 2 (us-core-blood-pressure: Observation.effective[x] "
              "requires 1..1)", "structure")]),
    # ---------------------------------------------------------------- fixed and pattern
    ("fixed value", BP, "us-core-blood-pressure", put("component.1.valueQuantity.code", "kg"), [
        error("Observation.component[1].valueQuantity.code", 'must be "mm[Hg]" (us-core-blood-pressure: '
              "Observation.component:diastolic.value[x].code fixedCode)", "value")]),
    ("fixed uri", BP, "us-core-blood-pressure", put("component.0.valueQuantity.system", "http://example.org/units"), [
        error("Observation.component[0].valueQuantity.system", 'must be "http://unitsofmeasure.org" '
              "(us-core-blood-pressure: Observation.component:systolic.value[x].system fixedUri)", "value")]),
    ("pattern", BP, "us-core-blood-pressure", put("code.coding.0.code", "8480-6"), [
        error("Observation.code", 'must contain {"coding":[{"system":"http://loinc.org","code":"85354-9"}]} '
              "(us-core-blood-pressure: Observation.code patternCodeableConcept)", "value")]),
    ("pattern with more in the instance still matches", BP, "us-core-blood-pressure",
     add("code.coding", {"system": "http://example.org", "code": "bp"}), []),
    # ---------------------------------------------------------------- slicing
    ("vital-signs category slice", BP, "us-core-blood-pressure", put("category.0.coding.0.code", "laboratory"), [
        error("Observation.category", "minimum 1 in slice VSCat, found 0 (us-core-blood-pressure: VSCat slice "
              "requires 1..1)", "required")]),
    ("slice maximum", BP, "us-core-blood-pressure",
     add("category", {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}), [
        error("Observation.category", "maximum 1 in slice VSCat, found 2 (us-core-blood-pressure: VSCat slice "
              "requires 1..1)", "structure")]),
    ("blood-pressure component slice by pattern", BP, "us-core-blood-pressure", put("component.1.code", SYSTOLIC), [
        error("Observation.component", "maximum 1 in slice systolic, found 2 (us-core-blood-pressure: systolic "
              "slice requires 1..1)", "structure"),
        error("Observation.component", "minimum 1 in slice diastolic, found 0 (us-core-blood-pressure: diastolic "
              "slice requires 1..1)", "required")]),
    ("missing component: element and slice", BP, "us-core-blood-pressure", remove("component.1"), [
        error("Observation.component", "minimum 2, found 1 (us-core-blood-pressure: Observation.component requires "
              "2..*)", "required"),
        error("Observation.component", "minimum 1 in slice diastolic, found 0 (us-core-blood-pressure: diastolic "
              "slice requires 1..1)", "required")]),
    ("slice told by a required binding", "Condition-condition-duodenal-ulcer.json",
     "us-core-condition-problems-health-concerns", put("category.0.coding.0.code", "encounter-diagnosis"), [
        error("Condition.category", "minimum 1 in slice us-core, found 0 (us-core-condition-problems-health-concerns: "
              "us-core slice requires 1..*)", "required")]),
    ("extension slice by url", PATIENT, "us-core-patient",
     lambda resource: resource["extension"].append(copy.deepcopy(resource["extension"][0])), [
        error("Patient.extension", "maximum 1 in slice race, found 2 (us-core-patient: race slice requires 0..1)",
              "structure")]),
    ("choice restricted (and closed type slicing)", "Observation-pregnancy-status.json",
     "us-core-observation-pregnancystatus",
     both(remove("valueCodeableConcept"), put("valueBoolean", True)), [
        error("Observation.valueBoolean", "type boolean is not allowed here (us-core-observation-pregnancystatus: "
              "Observation.value[x] allows CodeableConcept)", "structure")]),
    # ---------------------------------------------------------------- types
    ("choice type not allowed", "Observation-some-day-smoker.json", "us-core-smokingstatus",
     both(remove("effectiveDateTime"), put("effectivePeriod", {"start": "2016-01-01"})), [
        error("Observation.effectivePeriod", "type Period is not allowed here (us-core-smokingstatus: "
              "Observation.effective[x] allows dateTime)", "structure")]),
    ("reference target", BP, "us-core-blood-pressure", put("subject.reference", "Group/example"), [
        error("Observation.subject", "a reference to Group is not allowed here (us-core-blood-pressure: "
              "Observation.subject targets Patient)", "structure")]),
    ("absolute reference target", BP, "us-core-blood-pressure",
     put("subject.reference", "https://example.org/fhir/Device/1/_history/2"), [
        error("Observation.subject", "a reference to Device is not allowed here (us-core-blood-pressure: "
              "Observation.subject targets Patient)", "structure")]),
    ("contained reference target", "MedicationRequest-medicationrequest-contained-oral-axid.json",
     "us-core-medicationrequest", put("contained.0.resourceType", "Substance"), [
        error("MedicationRequest.medicationReference", "a reference to Substance is not allowed here "
              "(us-core-medicationrequest: MedicationRequest.medication[x] targets Medication)", "structure")]),
    ("a reference whose type cannot be told is not an error", BP, "us-core-blood-pressure",
     put("subject", {"identifier": {"system": "urn:example", "value": "1"}}), []),
    # ---------------------------------------------------------------- required bindings
    ("required binding on a code", "Observation-some-day-smoker.json", "us-core-smokingstatus",
     put("status", "preliminary"), [
        error("Observation.status", '"preliminary" is not in the value set http://hl7.org/fhir/us/core/ValueSet/'
              "us-core-observation-smoking-status-status (us-core-smokingstatus: Observation.status has a required "
              "binding)", "code-invalid")]),
    ("required binding inside a datatype", "CarePlan-colonoscopy.json", "us-core-careplan",
     put("text.status", "extensions"), [
        error("CarePlan.text.status", '"extensions" is not in the value set http://hl7.org/fhir/us/core/ValueSet/'
              "us-core-narrative-status (us-core-careplan: CarePlan.text.status has a required binding)",
              "code-invalid")]),
    ("a value set that cannot tell is not an error", BP, "us-core-blood-pressure", put("status", "bogus"), []),
    ("an extensible binding is not an error", "Condition-condition-duodenal-ulcer.json",
     "us-core-condition-problems-health-concerns",
     put("code", {"coding": [{"system": "http://example.org/local", "code": "x"}]}), []),
    # ---------------------------------------------------------------- extensions
    ("extension's own slice", PATIENT, "us-core-patient", remove("extension.0.extension.5"), [
        error("Patient.extension[0].extension", "minimum 1 in slice text, found 0 (us-core-race: text slice "
              "requires 1..1)", "required")]),
    ("extension value type", PATIENT, "us-core-patient",
     both(remove("extension.0.extension.5.valueString"), put("extension.0.extension.5.valueCode", "White")), [
        error("Patient.extension[0].extension[5].valueCode", "type code is not allowed here (us-core-race: "
              "Extension.extension:text.value[x] allows string)", "structure")]),
    ("extension sub-extension maximum", PATIENT, "us-core-patient",
     lambda resource: resource["extension"][0]["extension"].extend(
         copy.deepcopy(resource["extension"][0]["extension"][:3])), [
        error("Patient.extension[0].extension", "maximum 5 in slice ombCategory, found 6 (us-core-race: ombCategory "
              "slice requires 0..5)", "structure")]),
    ("extension outside its context", PATIENT, "us-core-patient",
     lambda resource: resource["telecom"][0].update(extension=[copy.deepcopy(resource["extension"][0])]), [
        error("Patient.telecom[0].extension[0]", f"extension {RACE} is not allowed on ContactPoint (us-core-race: "
              "its context is Patient, RelatedPerson, Person, Practitioner, FamilyMemberHistory)", "structure")]),
    ("extension inside a datatype the snapshot does not expand", PATIENT, "us-core-patient",
     lambda resource: resource["name"][0]["period"].update(extension=[
         {"url": RACE, "extension": [{"url": "text", "valueString": "x"}, {"url": "text", "valueString": "y"}]}]), [
        error("Patient.name[0].period.extension[0].extension", "maximum 1 in slice text, found 2 (us-core-race: text "
              "slice requires 1..1)", "structure")]),
    ("extension on a primitive", PATIENT, "us-core-patient",
     put("_birthDate", {"extension": [{"url": RACE, "extension": [{"url": "ombCategory", "valueString": "x"}]}]}), [
        error("Patient.birthDate.extension[0].extension", "minimum 1 in slice text, found 0 (us-core-race: text "
              "slice requires 1..1)", "required"),
        error("Patient.birthDate.extension[0].extension[0].valueString", "type string is not allowed here "
              "(us-core-race: Extension.extension:ombCategory.value[x] allows Coding)", "structure")]),
    ("extension in a contained resource", "MedicationRequest-medicationrequest-contained-oral-axid.json",
     "us-core-medicationrequest", put("contained.0.extension", [{"url": RACE}]), [
        error("MedicationRequest.contained[0].extension[0].extension", "minimum 1, found 0 (us-core-race: "
              "Extension.extension requires 1..*)", "required")]),
    # ---------------------------------------------------------------- invariants
    ("invariant on an element", HEMOGLOBIN, "us-core-observation-lab", put("effectiveDateTime", "2005"), [
        error("Observation.effectiveDateTime", "Datetime must be at least to day. (us-core-observation-lab: "
              "invariant us-core-1)", "invariant")]),
    ("invariant on the resource", HEMOGLOBIN, "us-core-observation-lab", remove("valueQuantity"), [
        error("Observation", "If there is no component or hasMember element then either a value[x] or a data "
              "absent reason must be present (us-core-observation-lab: invariant us-core-2)", "invariant")]),
    ("invariant on a slice", "Organization-example-organization-2.json", "us-core-organization",
     put("identifier.0.value", "1234567890"), [
        error("Organization.identifier[0]", "NPI check digit must be valid (Luhn algorithm check) "
              "(us-core-organization: invariant us-core-17)", "invariant")]),
    ("invariant on a slice (format)", "Organization-example-organization-2.json", "us-core-organization",
     put("identifier.0.value", "140707123"), [
        error("Organization.identifier[0]", "NPI must be 10 digits (us-core-organization: invariant us-core-16)",
              "invariant"),
        error("Organization.identifier[0]", "NPI check digit must be valid (Luhn algorithm check) "
              "(us-core-organization: invariant us-core-17)", "invariant")]),
]


@pytest.mark.parametrize(("example", "profile", "change", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_broken_rule(example, profile, change, expected):
    resource = copy.deepcopy(examples()[example])
    assert [i for i in validate(resource, US_CORE + profile, contains) if i.severity == "error"] == []
    change(resource)
    issues = validate(resource, US_CORE + profile, contains)
    assert [(i.severity, i.code, i.expression, i.diagnostics) for i in issues] == expected


def test_required_binding_of_an_extension():
    """race's ombCategory is bound to omb-race-category, which includes other value sets (the test
    terminology cannot tell); a service that can tell decides."""
    resource = copy.deepcopy(examples()[PATIENT])

    def knows(valueset, system, code):
        return code != "2106-3" if valueset.endswith("/omb-race-category") else contains(valueset, system, code)

    issues = validate(resource, US_CORE + "us-core-patient", knows)
    assert [(i.expression, i.diagnostics) for i in issues] == [
        ("Patient.extension[0].extension[0].valueCoding", "Patient.extension[0].extension[0].valueCoding: "
         '"urn:oid:2.16.840.1.113883.6.238|2106-3" is not in the value set http://hl7.org/fhir/us/core/ValueSet/'
         "omb-race-category (us-core-race: Extension.extension:ombCategory.value[x] has a required binding)")]


@pytest.mark.parametrize(("role", "expected"), [
    ({"practitioner": {"reference": "Practitioner/1"}}, []),
    ({"location": [{"reference": "Location/1"}, {"reference": "Location/2"}]}, []),
    ({"code": [{"text": "nurse"}]}, [
        error("PractitionerRole", "SHALL have a practitioner, an organization, a healthcare service, or a location. "
              "(us-core-practitionerrole: invariant us-core-13)", "invariant")]),
])
def test_invariant_with_references_as_booleans(role, expected):
    """us-core-13 ``practitioner or organization or healthcareService or location``: references are true
    where a Boolean is expected, one or several (as HL7's reference validator reads it); none at all is a
    violation."""
    resource = {"resourceType": "PractitionerRole", **role}
    issues = validate(resource, US_CORE + "us-core-practitionerrole", contains)
    assert [(i.severity, i.code, i.expression, i.diagnostics) for i in issues] == expected
