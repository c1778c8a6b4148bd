"""The kinds of record a patient recognises (medications, lab results, visits, …) as SMART scopes.
Pure functions.

A wildcard patient scope (``patient/*.rs``, or v1 ``patient/*.read``) is offered on the consent page
as one choice per kind, and a grant is shown on the connected-apps page the same way, so that a
patient can narrow any app by kind of record. A kind is a list of slices: whole types
(``patient/Immunization.rs``) or the part of a type a category selects (lab results are
``patient/Observation.rs?category=…|laboratory`` and the LAB DiagnosticReports). What no named kind
holds (of the types a patient token can see) is the last kind, "other records".

When everything is ticked, the wildcard itself is granted; when every slice of a type is, the whole
type (only where a whole-type or wildcard scope was asked for: collapsing never widens a grant).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .scopes import PERMISSIONS, ResourceScope

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
REPORT_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"
LOINC = "http://loinc.org"


@dataclass(frozen=True)
class RecordKind:
    key: str
    label: str
    slices: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (type, query)


def _types(*names: str) -> tuple:
    return tuple((name, ()) for name in names)


def _categories(resource_type: str, *values: str) -> tuple:
    return tuple((resource_type, (("category", value),)) for value in values)


OTHER_OBSERVATIONS = tuple(f"{OBSERVATION_CATEGORY}|{code}" for code in (
    "social-history", "survey", "exam", "imaging", "procedure", "therapy", "activity")) + tuple(
    f"{US_CORE_CATEGORY}|{code}" for code in ("sdoh", "clinical-test"))
NOTE_REPORTS = tuple(f"{LOINC}|{code}" for code in ("LP29684-5", "LP29708-2", "LP7839-6"))  # radiology …

KINDS = (
    RecordKind("details", "Your details (name, birth date, contact information) and your caregivers",
               _types("Patient", "RelatedPerson", "Person")),
    RecordKind("medications", "Medications", _types("MedicationRequest", "MedicationStatement",
                                                    "MedicationDispense", "MedicationAdministration", "Medication")),
    RecordKind("allergies", "Allergies", _types("AllergyIntolerance")),
    RecordKind("immunizations", "Immunizations", _types("Immunization", "ImmunizationRecommendation",
                                                        "ImmunizationEvaluation")),
    RecordKind("problems", "Problems and diagnoses", _types("Condition")),
    RecordKind("labs", "Lab results", _categories("Observation", f"{OBSERVATION_CATEGORY}|laboratory")
               + _categories("DiagnosticReport", f"{REPORT_CATEGORY}|LAB") + _types("Specimen")),
    RecordKind("vitals", "Vital signs (weight, blood pressure, …)",
               _categories("Observation", f"{OBSERVATION_CATEGORY}|vital-signs")),
    RecordKind("observations", "Other measurements, social history and surveys",
               _categories("Observation", *OTHER_OBSERVATIONS)),
    RecordKind("visits", "Visits", _types("Encounter", "EpisodeOfCare")),
    RecordKind("notes", "Visit notes, documents and imaging reports",
               _types("DocumentReference", "Composition", "Media") + _categories("DiagnosticReport", *NOTE_REPORTS)),
    RecordKind("appointments", "Appointments", _types("Appointment", "AppointmentResponse")),
    RecordKind("care_plans", "Care plans, goals and care team", _types("CarePlan", "Goal", "CareTeam")),
    RecordKind("procedures", "Procedures, orders and referrals", _types("Procedure", "ServiceRequest",
                                                                        "ImagingStudy")),
    RecordKind("devices", "Implanted devices", _types("Device", "DeviceRequest", "DeviceUseStatement")),
    RecordKind("insurance", "Insurance and claims", _types("Coverage", "ExplanationOfBenefit", "Claim",
                                                           "ClaimResponse")),
    RecordKind("forms", "Forms you filled in and forms to fill in", _types("QuestionnaireResponse", "Questionnaire",
                                                                           "Task")),
    RecordKind("messages", "Messages and their attachments", _types("Communication", "CommunicationRequest", "Binary")),
    RecordKind("providers", "Your care providers and the practice", _types(
        "Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService", "Endpoint")),
    RecordKind("sources", "Where your records came from", _types("Provenance")),
)


def catalogue(patient_types: Iterable[str]) -> tuple[RecordKind, ...]:
    """The kinds, each limited to the types a patient token can see (kinds left empty dropped),
    then "other records": every such type no kind names."""
    visible = frozenset(patient_types)
    kinds = []
    named: set[str] = set()
    for kind in KINDS:
        slices = tuple(s for s in kind.slices if s[0] in visible)
        named.update(s[0] for s in kind.slices)
        if slices:
            kinds.append(RecordKind(kind.key, kind.label, slices))
    rest = sorted(visible - named)
    if rest:
        kinds.append(RecordKind("other", "Other records not listed above", _types(*rest)))
    return tuple(kinds)


def slice_scopes(kind: RecordKind, context: str, permissions: frozenset[str]) -> tuple[ResourceScope, ...]:
    return tuple(ResourceScope(context, t, permissions, q) for t, q in kind.slices)


def covers(scopes: Iterable[ResourceScope], wanted: ResourceScope) -> bool:
    """Does one of ``scopes`` allow everything ``wanted`` does?"""
    return any(s.context == wanted.context and s.resource_type in ("*", wanted.resource_type)
               and s.permissions >= wanted.permissions and (not s.query or s.query == wanted.query) for s in scopes)


def patient_letters(scopes: Iterable[ResourceScope]) -> frozenset[str] | None:
    """The read/search letters patient scopes share (a kind is offered with these), or None."""
    sets = [s.permissions & frozenset("rs") for s in scopes if s.context == "patient"]
    common = frozenset.intersection(*sets) if sets else frozenset()
    return common or None


def kinds_covered(scopes: tuple[ResourceScope, ...], patient_types) -> list[tuple[RecordKind, tuple]]:
    """The kinds every slice of which ``scopes`` allow (read/search, patient context), with the slice
    scopes that stand for each."""
    letters = patient_letters(scopes)
    if letters is None:
        return []
    found = []
    for kind in catalogue(patient_types):
        wanted = slice_scopes(kind, "patient", letters)
        if all(covers(scopes, w) for w in wanted):
            found.append((kind, wanted))
    return found


def letters_text(permissions: frozenset[str]) -> str:
    return "".join(p for p in PERMISSIONS if p in permissions)


def collapse(kept: list[ResourceScope], requested: tuple[ResourceScope, ...], patient_types) -> list[ResourceScope]:
    """Slices that together make a whole type become that type, and kinds that together make a
    requested wildcard become the wildcard — only where a requested scope covers the whole."""
    result = list(kept)
    slices_by_type: dict[str, set] = {}
    for kind in catalogue(patient_types):
        for resource_type, query in kind.slices:
            slices_by_type.setdefault(resource_type, set()).add(query)
    for resource_type, queries in slices_by_type.items():
        if len(queries) < 2 and () in queries:
            continue
        for context, permissions in {(s.context, s.permissions) for s in result if s.resource_type == resource_type}:
            whole = ResourceScope(context, resource_type, permissions)
            parts = {s.query for s in result if s.resource_type == resource_type and s.context == context
                     and s.permissions == permissions}
            if parts >= queries and covers(requested, whole):
                result = [s for s in result if not (s.resource_type == resource_type and s.context == context
                                                    and s.permissions == permissions)] + [whole]
    for wildcard in (r for r in requested if r.resource_type == "*" and not r.query and r.context == "patient"):
        types = {t for kind in catalogue(patient_types) for t, _ in kind.slices}
        if types and all(covers(result, ResourceScope(wildcard.context, t, wildcard.permissions)) for t in types):
            inside = [s for s in result if s.context == wildcard.context and s.permissions <= wildcard.permissions]
            result = [s for s in result if s not in inside] + [wildcard]
    order = {s: i for i, s in enumerate(kept)}
    return sorted(result, key=lambda s: (order.get(s, len(order)), s.text))
