"""What the consent page offers and what a submitted consent grants. Pure functions.

The page shows one checkbox per requested scope (ticked), and for whole-type Observation and
Condition read/search scopes also category-level choices (unticked): a patient may share only
their labs, say, instead of every observation. A wildcard patient scope (``patient/*.rs``, v1
``patient/*.read``) is offered as one checkbox per kind of record instead (``record_kinds``), whose
value is the kind's scopes separated by spaces. A ticked box is granted only if it is one of the
requested scopes or narrower than one (same context and type, fewer permissions, an added query).
The connected-apps page offers a grant's kinds the same way, to narrow it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .record_kinds import catalogue, collapse, kinds_covered, slice_scopes
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
    kind: bool = False  # a kind of record (several scopes): shown by its label alone


# What a patient calls each kind of record (any other type: its name in words, "Care plan" style).
RECORD_LABELS = {
    "AllergyIntolerance": "allergies", "Condition": "problems and diagnoses", "Observation": "observations and results",
    "DiagnosticReport": "reports", "DocumentReference": "documents and notes", "MedicationRequest": "medications",
    "MedicationStatement": "medications you reported", "MedicationDispense": "dispensed medications",
    "Immunization": "immunizations", "Procedure": "procedures", "Encounter": "visits", "Appointment": "appointments",
    "CarePlan": "care plans", "CareTeam": "care team", "Goal": "goals", "Coverage": "insurance coverage",
    "Device": "implanted devices", "ServiceRequest": "orders and referrals", "Specimen": "specimens",
    "QuestionnaireResponse": "forms you filled in", "Task": "forms your practice asks you to fill in",
    "Provenance": "where your records came from",
    "Patient": "your demographics", "RelatedPerson": "your caregivers", "Practitioner": "your care providers",
    "Organization": "organizations", "Location": "locations", "Communication": "messages",
    "Binary": "message attachments",
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


def _kind_choices(scope: ResourceScope, patient_types) -> list[Choice]:
    return [Choice(" ".join(s.text for s in slice_scopes(kind, scope.context, scope.permissions)), kind.label, True,
                   kind=True) for kind in catalogue(patient_types)]


def choices(requested: ScopeSet, patient_types=()) -> list[Choice]:
    """The checkboxes of the consent page, in the order the app asked; a wildcard patient scope as one
    per kind of record (when ``patient_types``, the types a patient token can see, are given)."""
    result = []
    for scope in requested.resource_scopes:
        if patient_types and scope.context == "patient" and scope.resource_type == "*" and not scope.query:
            result.extend(_kind_choices(scope, patient_types))
            continue
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


def grant_choices(grant: ScopeSet, patient_types) -> list[Choice]:
    """The checkboxes of an app's grant on the connected-apps page, all ticked: each kind of record it
    reaches whole, then each remaining resource scope."""
    covered = kinds_covered(grant.resource_scopes, patient_types)
    result = [Choice(" ".join(s.text for s in scopes), kind.label, True, kind=True) for kind, scopes in covered]
    inside = [s for _, scopes in covered for s in scopes]
    for scope in grant.resource_scopes:
        if scope.resource_type == "*" and scope.context == "patient" and covered:
            continue  # shown as its kinds
        if not any(s == scope for s in inside):
            result.append(Choice(scope.text, _label(scope), True))
    return result


def granted(requested: ScopeSet, ticked: Iterable[str], resource_types, *, contexts: set[str],
            allowed_other: set[str], patient_types=()) -> ScopeSet:
    """The scopes a submitted consent grants: ticked, within what was requested, in an allowed
    context (patient accounts: patient/; staff: user/, and patient/ with a patient in context).
    A ticked value may hold several scopes (a kind of record); with ``patient_types``, slices that
    make up a requested whole type or wildcard are granted as that (``record_kinds.collapse``)."""
    kept: list[ResourceScope] = []
    other: set[str] = set()
    for text in (part for value in ticked for part in value.split()):
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
    if patient_types:
        kept = collapse(kept, requested.resource_scopes, patient_types)
    return ScopeSet(tuple(kept), frozenset(other))


def requested_scopes(text: str | None, resource_types) -> ScopeSet:
    return parse_scopes(text, resource_types)
