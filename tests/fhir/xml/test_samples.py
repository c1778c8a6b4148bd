"""Hand-written FHIR XML in the spec's own style → JSON → XML: the JSON form is what the JSON format
says (primitive extensions as ``_name`` with ``null`` gaps, ids, decimals as written, the div as a
string, contained and nested resources with ``resourceType``), and writing it again gives the sample
back character for character."""

from __future__ import annotations

import pytest

from fhirportal.fhir import jsontext, xml

PATIENT = """<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <id value="example"/>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>Peter James <b>Chalmers</b> &amp; family<br/>born 25 Dec 1974</p></div>
  </text>
  <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthPlace">
    <valueAddress>
      <city value="Brisbane"/>
    </valueAddress>
  </extension>
  <active value="true"/>
  <name id="n1">
    <use value="official"/>
    <family value="Chalmers"/>
    <given value="Peter"/>
    <given id="g2" value="James">
      <extension url="http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier">
        <valueCode value="MID"/>
      </extension>
    </given>
    <given>
      <extension url="http://hl7.org/fhir/StructureDefinition/data-absent-reason">
        <valueCode value="unknown"/>
      </extension>
    </given>
  </name>
  <telecom>
    <system value="phone"/>
    <value value="(03) 5555 6473"/>
  </telecom>
  <gender value="male"/>
  <birthDate value="1974-12-25">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1974-12-25T14:35:45-05:00"/>
    </extension>
  </birthDate>
  <multipleBirthInteger value="2"/>
</Patient>"""

PATIENT_JSON = {
    "resourceType": "Patient",
    "id": "example",
    "text": {"status": "generated",
             "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Peter James <b>Chalmers</b> &amp; family<br/>born '
                    '25 Dec 1974</p></div>'},
    "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                   "valueAddress": {"city": "Brisbane"}}],
    "active": True,
    "name": [{
        "id": "n1",
        "use": "official",
        "family": "Chalmers",
        "given": ["Peter", "James", None],
        "_given": [None,
                   {"id": "g2", "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier",
                                               "valueCode": "MID"}]},
                   {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                   "valueCode": "unknown"}]}],
    }],
    "telecom": [{"system": "phone", "value": "(03) 5555 6473"}],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                  "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
    "multipleBirthInteger": 2,
}

OBSERVATION = """<?xml version="1.0" encoding="UTF-8"?>
<Observation xmlns="http://hl7.org/fhir">
  <id value="bp"/>
  <contained>
    <Practitioner>
      <id value="p1"/>
      <name>
        <text value="Dr Adam Careful"/>
      </name>
    </Practitioner>
  </contained>
  <status value="final"/>
  <code>
    <coding>
      <system value="http://loinc.org"/>
      <code value="85354-9"/>
    </coding>
    <text value="Blood pressure&#10;(sitting)"/>
  </code>
  <subject>
    <reference value="Patient/example"/>
  </subject>
  <effectiveDateTime value="2024-03-05T10:00:00Z"/>
  <performer>
    <reference value="#p1"/>
  </performer>
  <note>
    <text value="Taken twice; &quot;first&quot; reading &lt;discarded&gt;"/>
  </note>
  <component>
    <code>
      <text value="systolic"/>
    </code>
    <valueQuantity>
      <value value="120.50"/>
      <unit value="mm[Hg]"/>
    </valueQuantity>
  </component>
  <component>
    <code>
      <text value="diastolic"/>
    </code>
    <valueQuantity>
      <value value="8.0e1"/>
      <comparator value="&lt;"/>
    </valueQuantity>
  </component>
</Observation>"""

BUNDLE = """<?xml version="1.0" encoding="UTF-8"?>
<Bundle xmlns="http://hl7.org/fhir">
  <type value="transaction"/>
  <entry>
    <fullUrl value="urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"/>
    <resource>
      <Patient>
        <gender value="female"/>
      </Patient>
    </resource>
    <request>
      <method value="POST"/>
      <url value="Patient"/>
    </request>
  </entry>
  <entry>
    <resource>
      <Parameters>
        <parameter>
          <name value="resource"/>
          <resource>
            <Organization>
              <active value="false"/>
            </Organization>
          </resource>
        </parameter>
        <parameter>
          <name value="count"/>
          <valueUnsignedInt value="0"/>
        </parameter>
      </Parameters>
    </resource>
    <request>
      <method value="POST"/>
      <url value="Parameters"/>
    </request>
  </entry>
</Bundle>"""


def test_patient_sample_reads_as_the_json_format_says():
    assert xml.read(PATIENT.encode()) == PATIENT_JSON


def test_observation_sample_keeps_decimals_and_contained():
    observation = xml.read(OBSERVATION.encode(), keep_decimal_text=True)
    assert observation["contained"] == [
        {"resourceType": "Practitioner", "id": "p1", "name": [{"text": "Dr Adam Careful"}]}]
    systolic, diastolic = (c["valueQuantity"] for c in observation["component"])
    assert systolic["value"] == jsontext.Number("120.50")
    assert diastolic == {"value": jsontext.Number("8.0e1"), "comparator": "<"}
    assert jsontext.dumps(systolic) == '{"value":120.50,"unit":"mm[Hg]"}'
    assert observation["code"]["text"] == "Blood pressure\n(sitting)"
    assert observation["note"] == [{"text": 'Taken twice; "first" reading <discarded>'}]
    plain = xml.read(OBSERVATION.encode())  # as a JSON body with the same number text would be read
    assert [c["valueQuantity"]["value"] for c in plain["component"]] == [120.5, 80.0]


def test_bundle_sample_wraps_nested_resources():
    bundle = xml.read(BUNDLE.encode())
    assert bundle["entry"][0]["resource"] == {"resourceType": "Patient", "gender": "female"}
    parameters = bundle["entry"][1]["resource"]
    assert parameters["parameter"][0]["resource"] == {"resourceType": "Organization", "active": False}
    assert parameters["parameter"][1] == {"name": "count", "valueUnsignedInt": 0}


@pytest.mark.parametrize("sample", [PATIENT, OBSERVATION, BUNDLE], ids=["patient", "observation", "bundle"])
def test_samples_are_written_back_as_they_were(sample):
    assert xml.write(xml.read(sample.encode(), keep_decimal_text=True), pretty=True) == sample


@pytest.mark.parametrize("sample", [PATIENT, OBSERVATION, BUNDLE], ids=["patient", "observation", "bundle"])
def test_compact_output_is_the_pretty_one_without_indentation(sample):
    compact = xml.write(xml.read(sample.encode(), keep_decimal_text=True))
    assert "\n" not in compact.replace("&#10;", "")
    assert xml.read(compact.encode()) == xml.read(sample.encode())


def test_json_key_order_does_not_matter():
    shuffled = dict(reversed(list(PATIENT_JSON.items())))
    assert xml.write(shuffled, pretty=True) == PATIENT
