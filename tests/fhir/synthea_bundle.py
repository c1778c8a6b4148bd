"""A patient record shaped like Synthea's output: the practitioners and organizations first, in a
transaction of conditional creates (Synthea's practitioner and hospital files), then one transaction
Bundle of ``urn:uuid`` entries holding every resource type Synthea emits for a patient, the claims and
explanations of benefit included, with Synthea's conditional references to the practitioner and the
organization by identifier."""

from __future__ import annotations

import uuid

NPI = "http://hl7.org/fhir/sid/us-npi"
SYNTHEA = "https://github.com/synthetichealth/synthea"
SNOMED, LOINC, CVX = "http://snomed.info/sct", "http://loinc.org", "http://hl7.org/fhir/sid/cvx"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

# Every type below appears in the Bundle; the test checks the list against the Bundle.
TYPES = ("Patient", "Organization", "Practitioner", "PractitionerRole", "Location", "Encounter", "Condition",
         "AllergyIntolerance", "Observation", "DiagnosticReport", "DocumentReference", "Procedure", "Immunization",
         "ImmunizationRecommendation", "MedicationRequest", "Medication", "MedicationAdministration", "Claim",
         "ExplanationOfBenefit", "CarePlan", "CareTeam", "Goal", "ImagingStudy", "Device", "SupplyDelivery",
         "Coverage", "Provenance")


def _concept(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _npi(seed: int) -> str:
    return f"99990{seed:05d}"


def provider_bundle(seed: int = 1) -> dict:
    """The practitioner and organization the patient's records refer to (conditional creates)."""
    npi, org_id = _npi(seed), f"synthea-org-{seed}"
    organization = {"resourceType": "Organization", "identifier": [{"system": SYNTHEA, "value": org_id}],
                    "active": True, "name": "Synthea clinic",
                    "type": [_concept("http://terminology.hl7.org/CodeSystem/organization-type", "prov",
                                      "Healthcare Provider")]}
    practitioner = {"resourceType": "Practitioner", "identifier": [{"system": NPI, "value": npi}], "active": True,
                    "name": [{"family": "Synthea", "given": ["Dr."]}], "gender": "female"}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'synthea/{seed}/{name}')}", "resource": resource,
         "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": condition}}
        for name, resource, condition in (("organization", organization, f"identifier={SYNTHEA}|{org_id}"),
                                          ("practitioner", practitioner, f"identifier={NPI}|{npi}"))]}


def patient_bundle(seed: int = 1) -> dict:
    """The transaction Bundle of one synthetic patient (ids derive from ``seed``); load
    ``provider_bundle(seed)`` first."""
    ids: dict[str, str] = {}

    def urn(name: str) -> str:
        ids.setdefault(name, f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'synthea/{seed}/{name}')}")
        return ids[name]

    npi, org_id = _npi(seed), f"synthea-org-{seed}"
    entries: list[dict] = []

    def add(name: str, resource: dict) -> None:
        entries.append({"fullUrl": urn(name), "resource": resource,
                        "request": {"method": "POST", "url": resource["resourceType"]}})

    patient = {"reference": urn("patient")}
    practitioner = {"reference": f"Practitioner?identifier={NPI}|{npi}", "display": "Dr. Synthea"}
    organization = {"reference": f"Organization?identifier={SYNTHEA}|{org_id}", "display": "Synthea clinic"}
    encounter = {"reference": urn("encounter")}
    claim = {"reference": urn("claim")}

    add("role", {"resourceType": "PractitionerRole", "practitioner": practitioner, "organization": organization,
                 "code": [_concept("http://nucc.org/provider-taxonomy", "208D00000X", "General Practice")]})
    add("location", {"resourceType": "Location", "status": "active", "name": f"Synthea clinic site {seed}",
                     "managingOrganization": organization})
    add("patient", {"resourceType": "Patient",
                    "identifier": [{"system": SYNTHEA, "value": f"synthea-patient-{seed}"}],
                    "name": [{"use": "official", "family": f"Synthetic{seed}", "given": ["Sam"]}],
                    "gender": "male", "birthDate": "1971-04-12",
                    "address": [{"city": "Boston", "state": "MA", "country": "US"}]})
    add("encounter", {"resourceType": "Encounter", "status": "finished",
                      "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                      "type": [_concept(SNOMED, "185349003", "Encounter for check up")], "subject": patient,
                      "participant": [{"individual": practitioner}], "serviceProvider": organization,
                      "location": [{"location": {"reference": urn("location")}}],
                      "period": {"start": "2025-03-01T09:00:00Z", "end": "2025-03-01T09:30:00Z"}})
    add("condition", {"resourceType": "Condition", "subject": patient, "encounter": encounter,
                      "clinicalStatus": _concept("http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                 "active", "Active"),
                      "code": _concept(SNOMED, "44054006", "Diabetes mellitus type 2"),
                      "onsetDateTime": "2019-06-01T00:00:00Z"})
    add("allergy", {"resourceType": "AllergyIntolerance", "patient": patient,
                    "code": _concept(SNOMED, "300913006", "Shellfish allergy"), "criticality": "low"})
    add("observation", {"resourceType": "Observation", "status": "final", "subject": patient, "encounter": encounter,
                        "category": [_concept("http://terminology.hl7.org/CodeSystem/observation-category",
                                              "laboratory", "Laboratory")],
                        "code": _concept(LOINC, "4548-4", "Hemoglobin A1c"),
                        "effectiveDateTime": "2025-03-01T09:10:00Z",
                        "valueQuantity": {"value": 6.9, "unit": "%", "system": "http://unitsofmeasure.org",
                                          "code": "%"}})
    add("report", {"resourceType": "DiagnosticReport", "status": "final", "subject": patient, "encounter": encounter,
                   "code": _concept(LOINC, "4548-4", "Hemoglobin A1c"), "result": [{"reference": urn("observation")}],
                   "effectiveDateTime": "2025-03-01T09:10:00Z"})
    add("note", {"resourceType": "DocumentReference", "status": "current", "subject": patient,
                 "type": _concept(LOINC, "34117-2", "History and physical note"),
                 "content": [{"attachment": {"contentType": "text/plain", "data": "U3ludGhldGljIG5vdGU="}}],
                 "context": {"encounter": [encounter]}})
    add("procedure", {"resourceType": "Procedure", "status": "completed", "subject": patient, "encounter": encounter,
                      "code": _concept(SNOMED, "430193006", "Medication reconciliation"),
                      "performedPeriod": {"start": "2025-03-01T09:15:00Z", "end": "2025-03-01T09:20:00Z"}})
    add("immunization", {"resourceType": "Immunization", "status": "completed", "patient": patient,
                         "encounter": encounter, "vaccineCode": _concept(CVX, "140", "Influenza, seasonal"),
                         "occurrenceDateTime": "2025-03-01T09:25:00Z", "primarySource": True})
    add("recommendation", {"resourceType": "ImmunizationRecommendation", "patient": patient,
                           "date": "2025-03-01T09:30:00Z",
                           "recommendation": [{"vaccineCode": [_concept(CVX, "140", "Influenza, seasonal")],
                                               "forecastStatus": _concept(
                                                   "http://terminology.hl7.org/CodeSystem/immunization-"
                                                   "recommendation-status", "due", "Due")}]})
    add("medication", {"resourceType": "Medication", "code": _concept(RXNORM, "860975", "metformin 500 MG")})
    add("prescription", {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                         "subject": patient, "encounter": encounter, "requester": practitioner,
                         "medicationReference": {"reference": urn("medication")},
                         "authoredOn": "2025-03-01T09:20:00Z"})
    add("administration", {"resourceType": "MedicationAdministration", "status": "completed", "subject": patient,
                           "context": encounter, "medicationReference": {"reference": urn("medication")},
                           "effectiveDateTime": "2025-03-01T09:22:00Z"})
    add("device", {"resourceType": "Device", "patient": patient, "status": "active",
                   "type": _concept(SNOMED, "337414009", "Blood glucose meter")})
    add("supply", {"resourceType": "SupplyDelivery", "status": "completed", "patient": patient,
                   "type": _concept("http://terminology.hl7.org/CodeSystem/supplydelivery-type", "device",
                                    "Device"),
                   "suppliedItem": {"quantity": {"value": 1}, "itemReference": {"reference": urn("device")}},
                   "occurrenceDateTime": "2025-03-01T09:28:00Z"})
    add("study", {"resourceType": "ImagingStudy", "status": "available", "subject": patient, "encounter": encounter,
                  "started": "2025-03-01T09:12:00Z",
                  "series": [{"uid": f"1.2.840.99999999.{seed}.1", "number": 1,
                              "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"},
                              "instance": [{"uid": f"1.2.840.99999999.{seed}.1.1",
                                            "sopClass": {"system": "urn:ietf:rfc:3986",
                                                         "code": "urn:oid:1.2.840.10008.5.1.4.1.1.1.1"}}]}]})
    add("goal", {"resourceType": "Goal", "lifecycleStatus": "active", "subject": patient,
                 "description": _concept(SNOMED, "698360004", "Diabetes self management plan")})
    add("careteam", {"resourceType": "CareTeam", "status": "active", "subject": patient, "encounter": encounter,
                     "participant": [{"member": practitioner}, {"member": organization}]})
    add("careplan", {"resourceType": "CarePlan", "status": "active", "intent": "order", "subject": patient,
                     "encounter": encounter, "careTeam": [{"reference": urn("careteam")}],
                     "addresses": [{"reference": urn("condition")}], "goal": [{"reference": urn("goal")}],
                     "category": [_concept(SNOMED, "698360004", "Diabetes self management plan")]})
    add("coverage", {"resourceType": "Coverage", "status": "active", "beneficiary": patient,
                     "payor": [organization]})
    add("claim", {"resourceType": "Claim", "status": "active", "use": "claim", "patient": patient,
                  "type": _concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional",
                                   "Professional"),
                  "created": "2025-03-01T09:30:00Z", "provider": organization,
                  "priority": _concept("http://terminology.hl7.org/CodeSystem/processpriority", "normal", "Normal"),
                  "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": urn("coverage")}}],
                  "item": [{"sequence": 1, "productOrService": _concept(SNOMED, "185349003",
                                                                         "Encounter for check up"),
                            "encounter": [encounter]}]})
    add("eob", {"resourceType": "ExplanationOfBenefit", "status": "active", "use": "claim", "patient": patient,
                "type": _concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional", "Professional"),
                "created": "2025-03-01T09:30:00Z", "insurer": organization, "provider": organization,
                "claim": claim, "outcome": "complete",
                "insurance": [{"focal": True, "coverage": {"reference": urn("coverage")}}]})
    targets = [{"reference": urn(name)} for name in ("encounter", "condition", "observation", "prescription",
                                                     "immunization", "procedure")]
    add("provenance", {"resourceType": "Provenance", "target": targets, "recorded": "2025-03-01T09:31:00Z",
                       "agent": [{"type": _concept("http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                                   "author", "Author"),
                                  "who": practitioner, "onBehalfOf": organization}]})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
