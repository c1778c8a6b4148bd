"""The health summary: one FHIR search per section with the patient's token, each turned into the
lines the page lists (what, detail, when), in the patient's words. Every section may come back empty;
the page then says so.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from .client import FhirApi
from .results import latest_by_test
from .words import concept, effective, first_concept, human_name, reference_text, sort_key, when

CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LABS = f"{OBSERVATION_CATEGORY}|laboratory"
VITALS = f"{OBSERVATION_CATEGORY}|vital-signs"
RECENT = 5
# The sections' searches run side by side (each a request of its own to the API, with its own database
# read); a few threads, shared by every page, so a busy server does not multiply them without bound.
_SEARCHES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="portal-search")


def gather(calls: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Run independent reads at once; their results by name (the first failure is raised)."""
    futures = {name: _SEARCHES.submit(call) for name, call in calls.items()}
    return {name: future.result() for name, future in futures.items()}


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


OVERVIEW = ("MedicationRequest", "MedicationStatement", "AllergyIntolerance", "Condition", "Immunization", "CareTeam")


def _overview(api: FhirApi, patient: str) -> dict[str, list[dict]]:
    """The patient and the records of the few kinds a summary lists whole (their active ones), in one
    search: ``Patient?_id=…&_revinclude=…`` (the care team's members included too). By type."""
    query = [("_id", patient)] + [("_revinclude", f"{t}:patient") for t in OVERVIEW] + [
        ("_include:iterate", "CareTeam:participant"), ("_include:iterate", "PractitionerRole:practitioner")]
    found: dict[str, list[dict]] = {}
    for resource in api.search("Patient", query, included=True):
        found.setdefault(resource["resourceType"], []).append(resource)
    return found


def _status(resource: dict, element: str) -> str:
    return next((c.get("code", "") for c in (resource.get(element) or {}).get("coding", [])), "")


def _medications(found: dict[str, list[dict]]) -> list[Line]:
    lines = []
    for request in (r for r in found.get("MedicationRequest", []) if r.get("status") == "active"):
        dosage = "; ".join(d.get("text", "") for d in request.get("dosageInstruction", []) if d.get("text"))
        prescriber = reference_text(request.get("requester"))
        detail = dosage + (f" — prescribed by {prescriber}" if prescriber else "")
        lines.append(Line(concept(request.get("medicationCodeableConcept"),
                                  reference_text(request.get("medicationReference")) or "A medication"),
                          detail, f"since {when(request.get('authoredOn'))}" if request.get("authoredOn") else ""))
    for statement in (r for r in found.get("MedicationStatement", []) if r.get("status") == "active"):
        dosage = "; ".join(d.get("text", "") for d in statement.get("dosage", []) if d.get("text"))
        lines.append(Line(concept(statement.get("medicationCodeableConcept"),
                                  reference_text(statement.get("medicationReference")) or "A medication"),
                          (dosage + " — " if dosage else "") + "you told us you take this",
                          f"since {when(effective(statement))}" if effective(statement) else ""))
    return lines


def _allergies(found: dict[str, list[dict]]) -> list[Line]:
    lines = []
    for allergy in found.get("AllergyIntolerance", []):
        if _status(allergy, "clinicalStatus") in ("inactive", "resolved"):
            continue
        reactions = ", ".join(concept(m) for r in allergy.get("reaction", []) for m in r.get("manifestation", []))
        detail = f"reaction: {reactions}" if reactions else ""
        if allergy.get("criticality") == "high":
            detail = "high risk" + (f"; {detail}" if detail else "")
        lines.append(Line(concept(allergy.get("code"), "An allergy"), detail,
                          f"since {when(allergy.get('onsetDateTime'))}" if allergy.get("onsetDateTime") else ""))
    return lines


def _immunizations(found: dict[str, list[dict]]) -> list[Line]:
    given = sorted((i for i in found.get("Immunization", []) if i.get("status") != "entered-in-error"),
                   key=lambda i: sort_key(effective(i)), reverse=True)
    return [Line(concept(i.get("vaccineCode"), "A vaccine"), "" if i.get("status") == "completed" else
                 f"status: {i.get('status', '')}", when(effective(i))) for i in given]


PROBLEM_CATEGORIES = {(CONDITION_CATEGORY, "problem-list-item"), (US_CORE_CONDITION_CATEGORY, "health-concern")}


def _problems(found: dict[str, list[dict]]) -> list[Line]:
    problems = [c for c in found.get("Condition", []) if _status(c, "clinicalStatus") in (
        "active", "recurrence", "relapse") and any((coding.get("system"), coding.get("code")) in PROBLEM_CATEGORIES
                                                   for category in c.get("category", [])
                                                   for coding in category.get("coding", []))]
    problems.sort(key=lambda c: sort_key(effective(c)), reverse=True)
    return [Line(concept(c.get("code"), "A health problem"), concept(c.get("clinicalStatus"), "").lower(),
                 f"since {when(effective(c))}" if effective(c) else "") for c in problems]


def _appointment(appointment: dict) -> Line:
    who = ", ".join(filter(None, (reference_text(p.get("actor")) for p in appointment.get("participant", [])
                                  if not (p.get("actor") or {}).get("reference", "").startswith("Patient/"))))
    what = appointment.get("description") or concept(appointment.get("appointmentType"), "Appointment")
    status = {"booked": "", "fulfilled": "", "cancelled": "cancelled", "noshow": "missed",
              "proposed": "requested"}.get(
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


def _care_team(found: dict[str, list[dict]]) -> list[Line]:
    resources = {f"{r['resourceType']}/{r['id']}": r for kind in found.values() for r in kind}
    lines = []
    for team in (r for r in found.get("CareTeam", []) if r.get("status") == "active"):
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


def health_summary(api: FhirApi, patient: str, today: date) -> tuple[list[Section], dict]:
    """The sections, and whose record it is (``patient_banner``)."""
    found = gather({
        "overview": lambda: _overview(api, patient), "appointments": lambda: _appointments(api, patient, today),
        "visits": lambda: _visits(api, patient), "notes": lambda: _notes(api, patient),
        "results": lambda: _results(api, patient, LABS, RECENT * 2),
        "vitals": lambda: _results(api, patient, VITALS, 12)})
    overview = found["overview"]
    upcoming, past = found["appointments"]
    sections = [
        Section("medications", "Medications", "No active medications on file.", _medications(overview)),
        Section("allergies", "Allergies", "No known allergies on file.", _allergies(overview)),
        Section("problems", "Health problems", "No active health problems on file.", _problems(overview)),
        Section("immunizations", "Immunizations", "No immunizations on file.", _immunizations(overview)),
        Section("upcoming", "Upcoming appointments", "No upcoming appointments.", upcoming),
        Section("past", "Recent appointments", "No past appointments.", past),
        Section("visits", "Recent visits", "No visits on file.", found["visits"]),
        Section("notes", "Visit notes", "No notes shared with you yet.", found["notes"]),
        Section("results", "Latest lab results", "No lab results shared with you yet.", found["results"]),
        Section("vitals", "Latest vital signs", "No vital signs on file.", found["vitals"]),
        Section("care-team", "Your care team", "No care team on file.", _care_team(overview)),
    ]
    return sections, banner((overview.get("Patient") or [{}])[0])


def banner(record: dict) -> dict:
    """Whose record this is: name and date of birth (the banner every page shows)."""
    return {"name": human_name(record, "this patient"), "born": when(record.get("birthDate"))
            if record.get("birthDate") else ""}


def patient_banner(api: FhirApi, patient: str) -> dict:
    return banner(api.read("Patient", patient) or {})
