"""FHIR XML over HTTP: every interaction answers in XML when ``_format`` or ``Accept`` asks for it
(OperationOutcomes and the CapabilityStatement included) and takes XML bodies; XML that is not FHIR
XML is a 400 or 422 OperationOutcome that leaves the database as it was."""

from __future__ import annotations

import pytest

from fhirportal.fhir import xml
from tests.support import observation, patient

FHIR_XML = "application/fhir+xml"
MRN = "https://fhirportal.dev/fhir/sid/mrn"
XML_ACCEPT = {"Accept": FHIR_XML}


def _xml(response, media: str = FHIR_XML) -> dict:
    assert response.headers["Content-Type"] == f"{media}; charset=utf-8", response.data[:300]
    assert response.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return xml.read(response.data)


def _post_xml(fhir, path: str, resource: dict | str, headers: dict | None = None, method: str = "POST"):
    body = resource if isinstance(resource, str) else xml.write(resource)
    send = fhir.post if method == "POST" else fhir.put
    return send(path, data=body.encode(), content_type=FHIR_XML, headers={**XML_ACCEPT, **(headers or {})})


def _patients(fhir) -> int:
    return fhir.get("Patient?_total=accurate&_count=0").get_json()["total"]


def _issue(response, status: int) -> dict:
    assert response.status_code == status, response.data[:500]
    outcome = _xml(response)
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"][0]


# ---------------------------------------------------------------- responses
@pytest.mark.parametrize(("query", "headers", "media"), [
    ("?_format=xml", {}, FHIR_XML),
    ("?_format=application/fhir%2Bxml", {}, FHIR_XML),
    ("?_format=application/fhir+xml", {}, FHIR_XML),  # '+' unencoded arrives as a space
    ("?_format=application/xml", {}, "application/xml"),
    ("?_format=text/xml", {}, "application/xml"),
    ("", {"Accept": FHIR_XML}, FHIR_XML),
    ("", {"Accept": "application/xml"}, "application/xml"),
    ("", {"Accept": "application/fhir+json;q=0.5, application/fhir+xml"}, FHIR_XML),
    ("", {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, "application/xml"),
    ("?_format=xml", {"Accept": "application/fhir+json"}, FHIR_XML),  # _format overrides Accept
])
def test_read_in_xml(fhir, query, headers, media):
    created = fhir.create(patient())
    response = fhir.get(f"Patient/{created['id']}{query}", headers=headers)
    assert response.status_code == 200
    assert _xml(response, media) == fhir.get(f"Patient/{created['id']}").get_json()


@pytest.mark.parametrize("accept", ["", "*/*", "application/fhir+xml;q=0.5, application/fhir+json",
                                    "application/fhir+xml;q=0.8, application/*"])
def test_json_stays_the_default(fhir, accept):
    created = fhir.create(patient())
    response = fhir.get(f"Patient/{created['id']}", headers={"Accept": accept} if accept else {})
    assert response.headers["Content-Type"].startswith("application/fhir+json")


def test_pretty_xml_is_indented(fhir):
    created = fhir.create(patient())
    compact = fhir.get(f"Patient/{created['id']}?_format=xml").data
    pretty = fhir.get(f"Patient/{created['id']}?_format=xml&_pretty=true").data
    assert b"\n" not in compact
    assert b'\n<Patient xmlns="http://hl7.org/fhir">\n  <id value=' in pretty
    assert xml.read(pretty) == xml.read(compact)


def test_vread_search_and_history_in_xml(fhir):
    created = fhir.create(patient())
    fhir.put(f"Patient/{created['id']}", {**created, "gender": "other"})
    first = _xml(fhir.get(f"Patient/{created['id']}/_history/1?_format=xml"))
    assert first["meta"]["versionId"] == "1" and first["gender"] == "female"

    for _ in range(3):
        fhir.create(observation(created["id"]))
    searchset = _xml(fhir.get(f"Observation?subject=Patient/{created['id']}&_total=accurate&_count=2",
                              headers=XML_ACCEPT))
    assert searchset["type"] == "searchset" and searchset["total"] == 3
    assert [e["resource"]["resourceType"] for e in searchset["entry"]] == ["Observation"] * 2
    assert searchset["entry"][0]["search"] == {"mode": "match"}
    assert {link["relation"] for link in searchset["link"]} >= {"self", "next"}
    assert searchset["entry"][0]["resource"]["valueQuantity"]["value"] == 6.1

    history = _xml(fhir.get(f"Patient/{created['id']}/_history", headers=XML_ACCEPT))
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]


def test_errors_are_operation_outcomes_in_xml(fhir, client):
    issue = _issue(fhir.get("Patient/nope", headers=XML_ACCEPT), 404)
    assert issue["code"] == "not-found"
    _issue(fhir.get("Nonsense/1?_format=xml"), 404)
    _issue(client.get("/fhir/Patient", headers=XML_ACCEPT), 401)  # no token: before negotiation
    _issue(fhir.get("Patient?_count=abc&_format=xml", headers={"Prefer": "handling=strict"}), 400)
    not_acceptable = fhir.get("Patient/1?_format=text/turtle")
    assert not_acceptable.status_code == 406 and not_acceptable.get_json()["resourceType"] == "OperationOutcome"


def test_capability_statement_in_xml_lists_both_formats(fhir, client):
    statement = _xml(client.get("/fhir/metadata", headers=XML_ACCEPT))
    assert statement["resourceType"] == "CapabilityStatement"
    assert {"application/fhir+xml", "xml", "application/fhir+json", "json"} <= set(statement["format"])
    as_json = client.get("/fhir/metadata").get_json()
    assert {k: v for k, v in statement.items() if k != "date"} == {k: v for k, v in as_json.items() if k != "date"}
    pretty = client.get("/fhir/metadata?_format=xml&_pretty=true").data.decode()
    assert "\n  <format value=\"application/fhir+xml\"/>" in pretty


# ---------------------------------------------------------------- requests
def test_create_from_xml_stores_what_the_same_json_would(fhir):
    middle = {"extension": [{"url": "http://example.org/kind", "valueCode": "middle"}]}
    body = patient(extension=[{"url": "http://example.org/weight", "valueDecimal": 71.5}],
                   name=[{"family": "Lovelace", "given": ["Ada", "Augusta"], "_given": [None, middle]}],
                   text={"status": "generated",
                         "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Ada &amp; co</p></div>'})
    created = _post_xml(fhir, "Patient", body)
    assert created.status_code == 201, created.data
    answered = _xml(created)
    assert created.headers["Location"].endswith(f"Patient/{answered['id']}/_history/1")
    stored = fhir.get(f"Patient/{answered['id']}").get_json()
    assert stored == answered
    from_json = fhir.create(body)
    strip = ("id", "meta")
    assert {k: v for k, v in stored.items() if k not in strip} == {k: v for k, v in from_json.items() if k not in strip}


def test_create_from_xml_answers_json_when_asked(fhir):
    response = fhir.post("Patient", data=xml.write(patient()).encode(), content_type="application/xml")
    assert response.status_code == 201
    assert response.get_json()["name"] == [{"family": "Lovelace", "given": ["Ada"]}]


def test_update_and_conditional_writes_from_xml(fhir):
    created = fhir.create(patient(identifier=[{"system": MRN, "value": "X1"}]))
    updated = _post_xml(fhir, f"Patient/{created['id']}", {**created, "gender": "other"}, method="PUT",
                        headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200 and _xml(updated)["meta"]["versionId"] == "2"
    stale = _post_xml(fhir, f"Patient/{created['id']}", created, method="PUT", headers={"If-Match": 'W/"1"'})
    assert _issue(stale, 412)["code"] == "conflict"

    again = _post_xml(fhir, "Patient", patient(identifier=[{"system": MRN, "value": "X1"}]),
                      headers={"If-None-Exist": f"identifier={MRN}|X1"})
    assert again.status_code == 200 and _xml(again)["id"] == created["id"]

    conditional = _post_xml(fhir, f"Patient?identifier={MRN}|X1", patient(identifier=[{"system": MRN, "value": "X1"}],
                                                                           gender="unknown"), method="PUT")
    assert conditional.status_code == 200 and _xml(conditional)["gender"] == "unknown"
    assert _patients(fhir) == 1


def test_transaction_and_batch_in_xml(fhir):
    urn = "urn:uuid:6f1d1a4e-0000-4000-8000-0000000000aa"
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": urn, "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation("x", subject={"reference": urn}), "request": {"method": "POST", "url": "Observation"}},
    ]}
    response = _post_xml(fhir, "/fhir", transaction)
    assert response.status_code == 200, response.data
    answer = _xml(response)
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 2
    patient_id = answer["entry"][0]["response"]["location"].split("/")[1]
    stored = fhir.get(answer["entry"][1]["response"]["location"].rsplit("/_history", 1)[0]).get_json()
    assert stored["subject"] == {"reference": f"Patient/{patient_id}"}

    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{patient_id}"}},
        {"request": {"method": "GET", "url": "Patient/missing"}},
    ]}
    answer = _xml(_post_xml(fhir, "/fhir", batch))
    assert answer["entry"][0]["resource"]["id"] == patient_id
    assert answer["entry"][1]["response"]["status"].startswith("404")
    assert answer["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"


def test_validate_takes_xml(fhir):
    valid = _post_xml(fhir, "Patient/$validate", patient())
    assert valid.status_code == 200 and _xml(valid)["issue"][0]["severity"] == "information"
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient(gender="x")}]}
    invalid = _xml(_post_xml(fhir, "Patient/$validate", parameters))
    assert invalid["issue"][0]["severity"] == "error"
    assert "Patient.gender" in invalid["issue"][0]["expression"]


def test_operations_take_xml_parameters(fhir):
    subject = fhir.create(patient())
    lab = fhir.create(observation(subject["id"]))
    parameters = ('<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="reason"/>'
                  '<valueString value="discussed at the visit"/></parameter></Parameters>')
    shared = _post_xml(fhir, f"Observation/{lab['id']}/$portal-share", parameters)
    assert shared.status_code == 200, shared.data
    assert _xml(shared)["meta"]["tag"][0]["code"] == "shared-with-patient"
    provenance = fhir.get("Provenance", query_string={"target": f"Observation/{lab['id']}"}).get_json()
    assert provenance["entry"][0]["resource"]["reason"][0]["text"] == "discussed at the visit"


# ---------------------------------------------------------------- bad XML
NS = 'xmlns="http://hl7.org/fhir"'
BAD = [
    (f"<Patient {NS}><active value='true'></Patient>", 400, "not well-formed XML", None),
    ('<!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>' f"<Patient {NS}><id value='&x;'/></Patient>",
     400, "DOCTYPE", None),
    ('<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
     '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>' f"<Patient {NS}><id value='&c;'/></Patient>",
     400, "DOCTYPE", None),
    ('<Patient xmlns="http://hl7.org/fhir/other"/>', 400, "namespace", None),
    (f"<Patient {NS}>" + "<extension url='u'>" * 70 + "</extension>" * 70 + "</Patient>", 400, "deeper than", None),
    (f"<Patient {NS}><name><nick value='x'/></name></Patient>", 422, "Unknown element 'nick'", "Patient.name[0]"),
    (f"<Patient {NS}><gender value='male'/><active value='true'/></Patient>", 422, "out of order", "Patient"),
    (f"<Patient {NS}><active value='maybe'/></Patient>", 422, "not a boolean", "Patient.active"),
    (f"<Patient {NS}><gender value='nonsense'/></Patient>", 422, "gender", "Patient.gender"),  # validation's
    ("", 400, "no body", None),
]


@pytest.mark.parametrize(("body", "status", "words", "expression"), BAD)
def test_bad_xml_is_an_outcome_saying_what_and_where(fhir, body, status, words, expression):
    fhir.create(patient())
    issue = _issue(_post_xml(fhir, "Patient", body), status)
    assert words in issue["diagnostics"]
    if status == 400 and body:
        assert "(line 1, column " in issue["diagnostics"]
    if expression:
        assert issue["expression"] == [expression]
    assert _patients(fhir) == 1  # nothing written


def test_bad_xml_in_json_when_json_is_asked(fhir):
    response = fhir.post("Patient", data=b"<Patient", content_type=FHIR_XML)
    assert response.status_code == 400
    assert "not well-formed" in response.get_json()["issue"][0]["diagnostics"]


def test_a_bad_transaction_in_xml_writes_nothing(fhir):
    transaction = xml.write({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}}]})
    broken = transaction.replace("<gender ", "<sex ", 1)
    issue = _issue(_post_xml(fhir, "/fhir", broken), 422)
    assert issue["expression"] == ["Bundle.entry[0].resource"]
    assert _patients(fhir) == 0


def test_other_body_types_are_415(fhir):
    response = fhir.post("Patient", data=b"<Patient/>", content_type="text/turtle", headers=XML_ACCEPT)
    assert _issue(response, 415)["code"] == "not-supported"
    assert "application/fhir+xml" in xml.read(response.data)["issue"][0]["diagnostics"]


def test_every_conformance_resource_reads_the_same_in_xml(client):
    statement = client.get("/fhir/metadata").get_json()
    urls = {item["definition"] for rest in statement["rest"] for resource in rest.get("resource", [])
            for item in resource.get("operation", []) + resource.get("searchParam", [])
            if "definition" in item}  # _list has no SearchParameter of its own
    urls |= {item["definition"] for rest in statement["rest"] for item in rest.get("operation", [])}
    served = 0
    for url in sorted(urls):
        path = "/fhir/" + "/".join(url.rsplit("/", 2)[-2:])
        as_json = client.get(path)
        if as_json.status_code == 200:  # the base R4 parameters and operations are not served here
            served += 1
            assert _xml(client.get(path, headers=XML_ACCEPT)) == as_json.get_json(), path
    assert served > 100
