"""The health summary: one FHIR search per section with the patient's token, each turned into the
lines the page lists (what, detail, when), in the patient's words. Every section may come back empty;
the page then says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from .client import FhirApi
from .results import latest_by_test
from .words import concept, effective, first_concept, human_name, reference_text, when

CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LABS = f"{OBSERVATION_CATEGORY}|laboratory"
VITALS = f"{OBSERVATION_CATEGORY}|vital-signs"
RECENT = 5


@dataclass
class Line:
    what: str
    detail: str = ""
    when: str = ""


@dataclass
class Section:
    key: str
    title: str
    empty: str
    lines: list[Line] = field(default_factory=list)


def _medications(api: FhirApi, patient: str) -> list[Line]:
    lines = []
    for request in api.search("MedicationRequest", [("patient", patient), ("status", "active"), ("_count", "100")]):
        dosage = "; ".join(d.get("text", "") for d in request.get("dosageInstruction", []) if d.get("text"))
        prescriber = reference_text(request.get("requester"))
        detail = dosage + (f" — prescribed by {prescriber}" if prescriber else "")
        lines.append(Line(concept(request.get("medicationCodeableConcept"),
                                  reference_text(request.get("medicationReference")) or "A medication"),
                          detail, f"since {when(request.get('authoredOn'))}" if request.get("authoredOn") else ""))
    for statement in api.search("MedicationStatement", [("patient", patient), ("status", "active"),
                                                        ("_count", "100")]):
        dosage = "; ".join(d.get("text", "") for d in statement.get("dosage", []) if d.get("text"))
        lines.append(Line(concept(statement.get("medicationCodeableConcept"),
                                  reference_text(statement.get("medicationReference")) or "A medication"),
                          (dosage + " — " if dosage else "") + "you told us you take this",
                          f"since {when(effective(statement))}" if effective(statement) else ""))
    return lines


def _allergies(api: FhirApi, patient: str) -> list[Line]:
    lines = []
    for allergy in api.search("AllergyIntolerance", [("patient", patient), ("_count", "100")]):
        status = concept(allergy.get("clinicalStatus"), "")
        if status.lower() in ("inactive", "resolved"):
            continue
        reactions = ", ".join(concept(m) for r in allergy.get("reaction", []) for m in r.get("manifestation", []))
        detail = f"reaction: {reactions}" if reactions else ""
        if allergy.get("criticality") == "high":
            detail = "high risk" + (f"; {detail}" if detail else "")
        lines.append(Line(concept(allergy.get("code"), "An allergy"), detail,
                          f"since {when(allergy.get('onsetDateTime'))}" if allergy.get("onsetDateTime") else ""))
    return lines


def _immunizations(api: FhirApi, patient: str) -> list[Line]:
    return [Line(concept(i.get("vaccineCode"), "A vaccine"), "" if i.get("status") == "completed" else
                 f"status: {i.get('status', '')}", when(effective(i)))
            for i in api.search("Immunization", [("patient", patient), ("_sort", "-date"), ("_count", "50")])]


def _problems(api: FhirApi, patient: str) -> list[Line]:
    categories = f"{CONDITION_CATEGORY}|problem-list-item,{US_CORE_CONDITION_CATEGORY}|health-concern"
    return [Line(concept(c.get("code"), "A health problem"), concept(c.get("clinicalStatus"), "").lower(),
                 f"since {when(effective(c))}" if effective(c) else "")
            for c in api.search("Condition", [("patient", patient), ("category", categories),
                                              ("clinical-status", "active,recurrence,relapse"), ("_count", "100")])]


def _appointment(appointment: dict) -> Line:
    who = ", ".join(filter(None, (reference_text(p.get("actor")) for p in appointment.get("participant", [])
                                  if not (p.get("actor") or {}).get("reference", "").startswith("Patient/"))))
    what = appointment.get("description") or concept(appointment.get("appointmentType"), "Appointment")
    status = {"booked": "", "fulfilled": "", "cancelled": "cancelled", "noshow": "missed"}.get(
        appointment.get("status", ""), appointment.get("status", ""))
    return Line(what, ", ".join(filter(None, (f"with {who}" if who else "", status))),
                when(appointment.get("start"), with_time=True, weekday=True))


def _appointments(api: FhirApi, patient: str, today: date) -> tuple[list[Line], list[Line]]:
    day = today.isoformat()
    upcoming = api.search("Appointment", [("patient", patient), ("date", f"ge{day}"), ("_sort", "date"),
                                          ("_count", str(RECENT))])
    recent = api.search("Appointment", [("patient", patient), ("date", f"lt{day}"), ("_sort", "-date"),
                                        ("_count", str(RECENT))])
    return [_appointment(a) for a in upcoming], [_appointment(a) for a in recent]


def _visits(api: FhirApi, patient: str) -> list[Line]:
    lines = []
    for encounter in api.search("Encounter", [("patient", patient), ("_sort", "-date"), ("_count", str(RECENT))]):
        who = ", ".join(filter(None, (reference_text(p.get("individual")) for p in encounter.get("participant", []))))
        reason = ", ".join(concept(r) for r in encounter.get("reasonCode", []))
        lines.append(Line(first_concept(encounter.get("type"), "Visit"),
                          "; ".join(filter(None, (f"with {who}" if who else "", reason))), when(effective(encounter))))
    return lines


def _notes(api: FhirApi, patient: str) -> list[Line]:
    return [Line(concept(d.get("type"), "Note"), d.get("description", ""), when(d.get("date")))
            for d in api.search("DocumentReference", [("patient", patient), ("_sort", "-date"),
                                                      ("_count", str(RECENT))])]


def _care_team(api: FhirApi, patient: str) -> list[Line]:
    found = api.search("CareTeam", [("patient", patient), ("status", "active"), ("_include", "CareTeam:participant"),
                                    ("_include:iterate", "PractitionerRole:practitioner")], included=True)
    resources = {f"{r['resourceType']}/{r['id']}": r for r in found}
    lines = []
    for team in (r for r in found if r["resourceType"] == "CareTeam"):
        for participant in team.get("participant", []):
            member = participant.get("member") or {}
            if member.get("reference", "").startswith(("Patient/", "RelatedPerson/")):
                continue
            target = resources.get(member.get("reference", ""), {})
            if target.get("resourceType") == "PractitionerRole":
                name = reference_text(target.get("practitioner"), resources) or first_concept(target.get("code"))
            else:
                name = reference_text(member, resources) or human_name(target)
            lines.append(Line(name or "A member of your care team", first_concept(participant.get("role"), "")))
    return lines


def _results(api: FhirApi, patient: str, category: str, count: int) -> list[Line]:
    observations = api.search("Observation", [("patient", patient), ("category", category), ("_sort", "-date"),
                                              ("_count", str(count))])
    return [Line(test.name, test.latest.value + (f" ({test.latest.flag})" if test.latest.flag else ""),
                 test.latest.when) for test in latest_by_test(observations)]


def health_summary(api: FhirApi, patient: str, today: date) -> list[Section]:
    upcoming, past = _appointments(api, patient, today)
    sections = [
        Section("medications", "Medications", "No active medications on file.", _medications(api, patient)),
        Section("allergies", "Allergies", "No known allergies on file.", _allergies(api, patient)),
        Section("problems", "Health problems", "No active health problems on file.", _problems(api, patient)),
        Section("immunizations", "Immunizations", "No immunizations on file.", _immunizations(api, patient)),
        Section("upcoming", "Upcoming appointments", "No upcoming appointments.", upcoming),
        Section("past", "Recent appointments", "No past appointments.", past),
        Section("visits", "Recent visits", "No visits on file.", _visits(api, patient)),
        Section("notes", "Visit notes", "No notes shared with you yet.", _notes(api, patient)),
        Section("results", "Latest lab results", "No lab results shared with you yet.",
                _results(api, patient, LABS, RECENT * 2)),
        Section("vitals", "Latest vital signs", "No vital signs on file.", _results(api, patient, VITALS, 30)),
        Section("care-team", "Your care team", "No care team on file.", _care_team(api, patient)),
    ]
    return sections


def patient_banner(api: FhirApi, patient: str) -> dict:
    """Whose record this is: name and date of birth (the banner every page shows)."""
    record = api.read("Patient", patient) or {}
    return {"name": human_name(record, "this patient"), "born": when(record.get("birthDate"))
            if record.get("birthDate") else ""}
