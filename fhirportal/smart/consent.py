"""What the consent page offers and what a submitted consent grants. Pure functions.

The page shows one checkbox per requested scope (ticked), and for whole-type Observation and
Condition read/search scopes also category-level choices (unticked): a patient may share only
their labs, say, instead of every observation. A ticked box is granted only if it is one of the
requested scopes or narrower than one (same context and type, fewer permissions, an added query).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .scopes import ResourceScope, ScopeSet, parse_scope, parse_scopes

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
CATEGORY_CHOICES = {
    "Observation": [
        (OBSERVATION_CATEGORY, "laboratory", "Lab results"),
        (OBSERVATION_CATEGORY, "vital-signs", "Vital signs"),
        (OBSERVATION_CATEGORY, "social-history", "Social history"),
        (OBSERVATION_CATEGORY, "survey", "Surveys"),
        (OBSERVATION_CATEGORY, "exam", "Exam findings"),
        (OBSERVATION_CATEGORY, "imaging", "Imaging"),
        (OBSERVATION_CATEGORY, "procedure", "Procedure results"),
        (OBSERVATION_CATEGORY, "therapy", "Therapy"),
        (OBSERVATION_CATEGORY, "activity", "Activity"),
        (US_CORE_CATEGORY, "clinical-test", "Clinical tests"),
        (US_CORE_CATEGORY, "sdoh", "Social determinants of health"),
    ],
    "Condition": [
        (CONDITION_CATEGORY, "problem-list-item", "Problem list"),
        (CONDITION_CATEGORY, "encounter-diagnosis", "Visit diagnoses"),
        (US_CORE_CONDITION_CATEGORY, "health-concern", "Health concerns"),
    ],
}
PURPOSES = {
    "openid": "Confirm who you are",
    "fhirUser": "Know which record is yours",
    "profile": "See your user name",
    "launch": "Open with the record you are viewing",
    "launch/patient": "Know which patient record to use",
    "launch/encounter": "Know which visit you are viewing",
    "offline_access": "Keep access until you revoke it",
    "online_access": "Keep access while you are signed in",
}


@dataclass(frozen=True)
class Choice:
    scope: str
    label: str
    ticked: bool
    detail: bool = False  # a narrower alternative shown under its resource scope


# What a patient calls each kind of record (any other type: its name in words, "Care plan" style).
RECORD_LABELS = {
    "AllergyIntolerance": "allergies", "Condition": "problems and diagnoses", "Observation": "observations and results",
    "DiagnosticReport": "reports", "DocumentReference": "documents and notes", "MedicationRequest": "medications",
    "MedicationStatement": "medications you reported", "MedicationDispense": "dispensed medications",
    "Immunization": "immunizations", "Procedure": "procedures", "Encounter": "visits", "Appointment": "appointments",
    "CarePlan": "care plans", "CareTeam": "care team", "Goal": "goals", "Coverage": "insurance coverage",
    "Device": "implanted devices", "ServiceRequest": "orders and referrals", "Specimen": "specimens",
    "QuestionnaireResponse": "forms you filled in", "Provenance": "where your records came from",
    "Patient": "your demographics", "RelatedPerson": "your caregivers", "Practitioner": "your care providers",
    "Organization": "organizations", "Location": "locations", "Communication": "messages",
}


def type_label(resource_type: str) -> str:
    if resource_type in RECORD_LABELS:
        return RECORD_LABELS[resource_type]
    words = re.findall(r"[A-Z][a-z]+|[A-Z]+(?![a-z])", resource_type)
    return " ".join(w.lower() for w in words) + " records" if words else resource_type


def _label(scope: ResourceScope) -> str:
    verbs = [name for letter, name in (("r", "read"), ("s", "search"), ("c", "create"), ("u", "update"),
                                       ("d", "delete")) if letter in scope.permissions]
    what = "all record types" if scope.resource_type == "*" else f"{type_label(scope.resource_type)} " \
        f"({scope.resource_type})"
    query = " where " + ", ".join(f"{k}={v.split('|')[-1]}" for k, v in scope.query) if scope.query else ""
    return f"{'/'.join(verbs)} {what}{query}"


def choices(requested: ScopeSet) -> list[Choice]:
    """The checkboxes of the consent page, in the order the app asked."""
    result = []
    for scope in requested.resource_scopes:
        result.append(Choice(scope.text, _label(scope), True))
        if scope.query or scope.resource_type not in CATEGORY_CHOICES:
            continue
        letters = "".join(p for p in "rs" if p in scope.permissions)
        if not letters:
            continue
        for system, code, label in CATEGORY_CHOICES[scope.resource_type]:
            narrow = f"{scope.context}/{scope.resource_type}.{letters}?category={system}|{code}"
            result.append(Choice(narrow, f"only {label.lower()}", False, detail=True))
    for other in sorted(requested.other):
        result.append(Choice(other, PURPOSES.get(other, other), True))
    return result


def _narrower(candidate: ResourceScope, requested: ResourceScope) -> bool:
    return (candidate.context == requested.context
            and requested.resource_type in ("*", candidate.resource_type)
            and candidate.permissions <= requested.permissions
            and (not requested.query or candidate.query == requested.query))


def granted(requested: ScopeSet, ticked: Iterable[str], resource_types, *, contexts: set[str],
            allowed_other: set[str]) -> ScopeSet:
    """The scopes a submitted consent grants: ticked, within what was requested, in an allowed
    context (patient accounts: patient/; staff: user/, and patient/ with a patient in context)."""
    kept: list[ResourceScope] = []
    other: set[str] = set()
    for text in ticked:
        if text in requested.other and text in allowed_other:
            other.add(text)
            continue
        scope = parse_scope(text, resource_types)
        if scope is None or scope.context not in contexts or scope in kept:
            continue
        if any(_narrower(scope, r) for r in requested.resource_scopes):
            kept.append(scope)
    # A narrower scope ticked alongside its whole-type scope adds nothing: keep the whole type.
    kept = [s for s in kept if not (s.query and any(_narrower(s, w) and not w.query and w.permissions
                                                    >= s.permissions for w in kept if w is not s))]
    return ScopeSet(tuple(kept), frozenset(other))


def requested_scopes(text: str | None, resource_types) -> ScopeSet:
    return parse_scopes(text, resource_types)
