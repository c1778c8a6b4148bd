"""A small practice for the portal's tests: two patients with charts (shared, unshared and NOPAT lab
results, vital signs, medications, an allergy, a problem, appointments, a visit, a note, a care team),
a patient account and a caregiver account acting for both patients."""

from __future__ import annotations

from tests.support import observation, patient
from tests.web.flows import PASSWORD

LAB = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
VITALS = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
SHARED = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "code": "shared-with-patient"}
NOPAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPAT"}
A1C_RANGE = [{"low": {"value": 4.0, "unit": "%"}, "high": {"value": 5.6, "unit": "%"}}]


def lab(patient_id: str, when: str, value: float, *, shared: bool = True, nopat: bool = False, **extra) -> dict:
    meta = {"tag": [SHARED]} if shared else {}
    if nopat:
        meta["security"] = [NOPAT]
    return observation(patient_id, effectiveDateTime=when, valueQuantity={"value": value, "unit": "%"},
                       referenceRange=A1C_RANGE, meta=meta, **extra)


def vital(patient_id: str, when: str, code: str, display: str, **value) -> dict:
    return {"resourceType": "Observation", "status": "final", "category": [{"coding": [VITALS]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
            "subject": {"reference": f"Patient/{patient_id}"}, "effectiveDateTime": when, **value}


def blood_pressure(patient_id: str, when: str, systolic: int, diastolic: int) -> dict:
    def part(code, name, value):
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                                  "code": "mm[Hg]"}}
    return vital(patient_id, when, "85354-9", "Blood pressure",
                 component=[part("8480-6", "Systolic", systolic), part("8462-4", "Diastolic", diastolic)])


def chart(patient_id: str) -> list[dict]:
    """A chart; the ids are the patient's id with a suffix."""
    p = f"Patient/{patient_id}"
    return [
        dict(lab(patient_id, "2026-01-10T09:00:00-07:00", 7.4), id=f"{patient_id}-a1c-1"),
        dict(lab(patient_id, "2026-04-10T09:00:00-07:00", 6.9), id=f"{patient_id}-a1c-2"),
        dict(lab(patient_id, "2026-07-10T09:00:00-07:00", 5.4), id=f"{patient_id}-a1c-3"),
        dict(lab(patient_id, "2026-10-10T09:00:00-07:00", 6.2, shared=False), id=f"{patient_id}-a1c-unshared"),
        dict(lab(patient_id, "2026-10-11T09:00:00-07:00", 9.9, nopat=True), id=f"{patient_id}-a1c-nopat"),
        dict(vital(patient_id, "2026-01-10T09:00:00-07:00", "29463-7", "Body weight",
                   valueQuantity={"value": 82.0, "unit": "kg"}), id=f"{patient_id}-weight-1"),
        dict(vital(patient_id, "2026-07-10T09:00:00-07:00", "29463-7", "Body weight",
                   valueQuantity={"value": 79.5, "unit": "kg"}), id=f"{patient_id}-weight-2"),
        dict(blood_pressure(patient_id, "2026-01-10T09:00:00-07:00", 141, 88), id=f"{patient_id}-bp-1"),
        dict(blood_pressure(patient_id, "2026-07-10T09:00:00-07:00", 128, 79), id=f"{patient_id}-bp-2"),
        {"resourceType": "MedicationRequest", "id": f"{patient_id}-rx", "status": "active", "intent": "order",
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                   "code": "860975"}], "text": "Metformin ER 500 mg tablet"},
         "subject": {"reference": p}, "authoredOn": "2026-05-05",
         "dosageInstruction": [{"text": "1 tablet daily with the evening meal"}]},
        {"resourceType": "MedicationRequest", "id": f"{patient_id}-rx-old", "status": "stopped", "intent": "order",
         "medicationCodeableConcept": {"text": "Amoxicillin 500 mg capsule"}, "subject": {"reference": p}},
        {"resourceType": "AllergyIntolerance", "id": f"{patient_id}-allergy", "patient": {"reference": p},
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                        "code": "active"}]},
         "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7984",
                              "display": "penicillin V"}], "text": "Penicillin"}},
        {"resourceType": "Condition", "id": f"{patient_id}-problem", "subject": {"reference": p},
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                        "code": "active"}]},
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                   "code": "problem-list-item"}]}],
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                              "display": "Type 2 diabetes mellitus"}]}, "onsetDateTime": "2019-03-01"},
        {"resourceType": "Appointment", "id": f"{patient_id}-next", "status": "booked",
         "description": "Diabetes follow-up", "start": "2099-01-15T11:00:00-07:00", "end": "2099-01-15T11:20:00-07:00",
         "participant": [{"actor": {"reference": p}, "status": "accepted"},
                         {"actor": {"reference": "Practitioner/dr", "display": "Dr. Elena Vasquez"},
                          "status": "accepted"}]},
        {"resourceType": "Encounter", "id": f"{patient_id}-visit", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "type": [{"text": "Annual physical"}], "subject": {"reference": p},
         "period": {"start": "2026-05-05T10:15:00-07:00"}},
        {"resourceType": "CareTeam", "id": f"{patient_id}-team", "status": "active", "subject": {"reference": p},
         "participant": [{"role": [{"text": "Primary care provider"}], "member": {"reference": "Practitioner/dr"}}]},
    ]


def build_practice(ctx, app) -> dict:
    """Patients p1 (Maria) and p2 (James) with charts; accounts maria (p1) and linda (a caregiver of both)."""
    smart = app.extensions["smart"]
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Practitioner", "name": [{"text": "Dr. Elena Vasquez"}]},
                              fhir_id="dr")
        ctx.repository.create(conn, patient(name=[{"given": ["Maria"], "family": "Garcia"}], birthDate="1968-04-12",
                                            telecom=[{"system": "email", "value": "maria@example.org"}]), fhir_id="p1")
        ctx.repository.create(conn, patient(name=[{"given": ["James"], "family": "Carter"}], birthDate="1950-09-30"),
                              fhir_id="p2")
        ctx.repository.create(conn, {"resourceType": "RelatedPerson", "patient": {"reference": "Patient/p2"},
                                     "name": [{"given": ["Linda"], "family": "Carter"}]}, fhir_id="rp1")
        for patient_id in ("p1", "p2"):
            for body in chart(patient_id):
                ctx.repository.create(conn, body, fhir_id=body.pop("id"))
    maria = smart.accounts.create("maria", PASSWORD, kind="patient", fhir_user="Patient/p1", patients=("p1",))
    linda = smart.accounts.create("linda", PASSWORD, kind="patient", fhir_user="RelatedPerson/rp1",
                                  patients=("p1", "p2"))
    return {"maria": maria, "linda": linda}
