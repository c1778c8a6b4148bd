"""The library API (``fhirportal.fhir.terminology``) that profile validation and search use."""

from __future__ import annotations

import pytest

from fhirportal.errors import BadRequest, NotFound, NotSupported
from fhirportal.fhir.terminology import Terminology, terminology

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"
GENDER = "http://hl7.org/fhir/administrative-gender"
SNOMED = "http://snomed.info/sct"
US_CORE = "http://hl7.org/fhir/us/core/ValueSet/"


def test_one_instance_per_process_built_on_first_use():
    assert terminology() is terminology()
    loads = []
    fresh = Terminology(loader=lambda: loads.append(1) or terminology().content)
    assert loads == []
    fresh.contains(GENDER_VS, GENDER, "male")
    fresh.lookup(GENDER, "male")
    assert loads == [1]


@pytest.mark.parametrize(("url", "system", "code", "answer"), [
    (GENDER_VS, GENDER, "male", True),
    (GENDER_VS, GENDER, "mail", False),
    (GENDER_VS, SNOMED, "248153007", False),
    ("http://terminology.hl7.org/ValueSet/v3-ActEncounterCode", ACT_CODE, "ACUTE", True),
    ("http://terminology.hl7.org/ValueSet/v3-ActEncounterCode", ACT_CODE, "_ActEncounterCode", False),  # excluded
    ("http://terminology.hl7.org/ValueSet/v3-ActCode", ACT_CODE, "_ActAccountCode", False),  # abstract
    (US_CORE + "us-core-sexual-orientation", SNOMED, "20430005", True),  # listed: no SNOMED CT needed
    (US_CORE + "us-core-sexual-orientation", SNOMED, "1", False),
    (US_CORE + "us-core-condition-code", SNOMED, "44054006", None),  # SNOMED CT is-a filters: cannot tell
    (US_CORE + "us-core-condition-code", GENDER, "male", False),  # a system it does not include
    (US_CORE + "us-core-pregnancy-status", "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "UNK", True),
    (US_CORE + "us-core-pregnancy-status", SNOMED, "77386006", None),  # a VSAC value set it imports
    ("http://example.org/ValueSet/unknown", GENDER, "male", None),
])
def test_contains(url, system, code, answer):
    assert terminology().contains(url, system, code) is answer


def test_validate_code():
    assert terminology().validate_code(url=GENDER_VS, system=GENDER, code="male") == (True, "Male")
    assert terminology().validate_code(system=GENDER, code="male", display="male") == (True, "Male")
    valid, message = terminology().validate_code(system=GENDER, code="male", display="Man")
    assert not valid and "Man" in message
    with pytest.raises(NotSupported, match="SNOMED CT"):
        terminology().validate_code(url=US_CORE + "us-core-condition-code", system=SNOMED, code="44054006")
    with pytest.raises(NotFound):
        terminology().validate_code(system="http://example.org/none", code="x")
    with pytest.raises(BadRequest):
        terminology().validate_code(url=GENDER_VS, code="male")


def test_hierarchy():
    assert terminology().descendants(ACT_CODE, "IMP") == {"ACUTE", "NONAC"}
    assert terminology().ancestors(ACT_CODE, "ACUTE") == {"IMP", "_ActEncounterCode", "_ActCareProvisionCode"}
    assert terminology().descendants(ACT_CODE, "ACUTE") == frozenset()
    assert terminology().subsumes(ACT_CODE, "_ActEncounterCode", "NONAC") == "subsumes"
    assert terminology().subsumes(ACT_CODE, "NONAC", "NONAC") == "equivalent"
    # a second parent from a child property (v3): ActCode's _ActAccountCode lists ACCTRECEIVABLE as child
    assert "_ActAccountCode" in terminology().ancestors(ACT_CODE, "ACCTRECEIVABLE")
    with pytest.raises(NotFound):
        terminology().descendants(ACT_CODE, "NOPE")
    with pytest.raises(NotSupported):
        terminology().ancestors(SNOMED, "44054006")


def test_lookup():
    found = terminology().lookup(GENDER, "female")
    assert found["resourceType"] == "Parameters"
    assert {"name": "display", "valueString": "Female"} in found["parameter"]
    with pytest.raises(NotFound):
        terminology().lookup(GENDER, "nope")


def test_every_value_set_expands_or_says_why():
    """Each of the 1,352 value sets either expands or is refused with a reason naming what is missing."""
    expandable = refused = 0
    for url in terminology().content.value_sets:
        try:
            terminology().entries(url)
            expandable += 1
        except NotSupported as refusal:
            assert any(why in refusal.message for why in ("does not hold", "holds only", "includes itself")), \
                refusal.message
            refused += 1
    assert expandable > 1200 and refused > 100


def test_codes_missing_from_a_partial_code_system_cannot_be_judged():
    """service-type is published as example content: a code it lists is found, another is not 'invalid'."""
    service_type = "http://terminology.hl7.org/CodeSystem/service-type"
    assert terminology().validate_code(system=service_type, code="1")[0] is True
    with pytest.raises(NotSupported, match="example content"):
        terminology().validate_code(system=service_type, code="no-such-code")
    with pytest.raises(NotSupported, match="example content"):
        terminology().lookup(service_type, "no-such-code")
