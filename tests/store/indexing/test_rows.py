"""Index rows per kind (pure functions, table-driven), and extraction from real definitions."""

from __future__ import annotations

import pytest

from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from fhirportal.store.indexing import IndexExtractor, SearchParameterRegistry, reference, string, token
from fhirportal.store.indexing.normalize import fold


@pytest.mark.parametrize(("value", "expected"), [
    ("final", [(None, "final")]),
    (True, [(None, "true")]),
    ({"system": "http://loinc.org", "code": "4548-4"}, [("http://loinc.org", "4548-4")]),
    ({"coding": [{"system": "s", "code": "a"}, {"system": "t", "code": "b"}], "text": "T"}, [("s", "a"), ("t", "b")]),
    ({"text": "only text"}, [(None, None)]),
    ({"system": "urn:mrn", "value": "123"}, [("urn:mrn", "123")]),
    ({"system": "phone", "value": "555-1234", "use": "home"}, [("phone", "555-1234")]),
])
def test_token_rows(value, expected):
    assert [(r["system"], r["code"]) for r in token.rows(value) if "param_suffix" not in r] == expected


def test_identifier_type_rows_feed_of_type():
    value = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "urn:mrn", "value": "A-1"}
    rows = list(token.rows(value))
    assert rows[1] == {"param_suffix": ":of-type", "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                       "code": "MR", "text": "a-1"}


def test_string_rows_of_names_and_addresses():
    name = {"family": "Ñandú", "given": ["Zoë", "Ann"], "prefix": ["Dr."]}
    assert [r["norm"] for r in string.rows(name)] == ["nandu", "zoe", "ann", "dr."]
    address = {"line": ["1 Main St"], "city": "Springfield", "postalCode": "01101"}
    assert [r["exact"] for r in string.rows(address)] == ["1 Main St", "Springfield", "01101"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Patient/123", ("Patient", "123")),
    ("Patient/123/_history/2", ("Patient", "123")),
    ("http://base/fhir/Patient/123", ("Patient", "123")),
    ("http://elsewhere/fhir/Patient/123", (None, None)),
    ("urn:uuid:1234", (None, None)),
    ("#contained", (None, None)),
])
def test_reference_parse(text, expected):
    assert reference.parse(text, "http://base/fhir") == expected


def test_fold():
    assert fold("  Zoë   ÅSA ") == "zoe asa"


def test_extraction_from_definitions():
    extractor = IndexExtractor(SearchParameterRegistry(SUPPORTED_TYPES), "http://base/fhir")
    rows = extractor.extract({
        "resourceType": "Observation", "id": "o1", "status": "final",
        "meta": {"tag": [{"system": "urn:t", "code": "shared"}]},
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2024-01-01", "end": "2024-01-31"},
        "valueQuantity": {"value": 6.1, "system": "http://unitsofmeasure.org", "code": "%"},
    })
    params = {kind: {r["param"] for r in kind_rows} for kind, kind_rows in rows.items()}
    assert {"code", "status", "_tag"} <= params["token"]
    assert {"patient", "subject"} <= params["reference"]
    assert "date" in params["date"]
    assert "value-quantity" in params["quantity"]
    patient_rows = [r for r in rows["reference"] if r["param"] == "patient"]
    assert patient_rows == [{"param": "patient", "target_type": "Patient", "target_id": "p1", "url": None}]


def test_reference_param_with_target_filter_skips_other_types():
    extractor = IndexExtractor(SearchParameterRegistry(SUPPORTED_TYPES))
    rows = extractor.extract({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                              "subject": {"reference": "Group/g1"}})
    params = {r["param"] for r in rows["reference"]}
    assert "subject" in params and "patient" not in params
