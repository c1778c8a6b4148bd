"""SMART authorization of FHIR requests: the bearer token, the scope check per interaction, and the
``Visibility`` (store/search/visibility.py) every query of the request is restricted to.

The router authenticates each request (``authenticate``) and hands the resulting ``Authorization``
to the interaction explicitly; the interaction calls ``require`` before it touches the database and
passes ``visibility(...)`` to the repository.

Visibility per resource type, from the broadest scope context that grants the interaction on it:

- system/: everything the scopes name (granular queries still apply);
- user/: with an ``organization`` in the token's context, only that organization's patients
  (Patient.managingOrganization) and their compartments; types outside the compartment unrestricted;
- patient/: only the token's patient's compartment (of the types outside it, only ``PRACTICE_TYPES``,
  whole: the practice and the definitions records point at; the others not at all; a Schedule also when it
  names no patient: the practice's availability), never records
  labelled NOPAT or entered in error; Observations in the ``laboratory`` category only when tagged
  shared-with-patient (the portal's sharing rule) — unless the practice's ``lab_sharing_default`` is
  ``shared`` (``AccessPolicy.lab_sharing_default``, read when a request is authenticated, at most
  every ``lab_sharing_refresh`` seconds, never inside a write transaction).

Granular scopes (``patient/Observation.rs?category=…``): a resource must match one of the covering
scopes' queries (criteria AND-ed within a scope, OR-ed across scopes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import lru_cache

from flask import Request
from sqlalchemy import Connection

from fhirportal.errors import Forbidden, Unauthorized
from fhirportal.smart.access import AccessContext
from fhirportal.smart.scopes import CONTEXTS, INTERACTION_PERMISSION, ScopeSet
from fhirportal.smart.tokens import TokenStore
from fhirportal.store.indexing import SearchParameterRegistry
from fhirportal.store.marks import Mark, TokenMatch
from fhirportal.store.search import Criterion
from fhirportal.store.search.visibility import TypeRule, Visibility

from .compartment import patient_compartment
from .search_params import parse_search

MISSING_TOKEN = 'Bearer realm="fhirportal"'
INVALID_TOKEN = 'Bearer error="invalid_token"'
# Never shown to patients and their caregivers (decided when a resource is written, as marks the
# repository keeps on its row: store/marks.py): records labelled "no disclosure to patient, family or
# caregivers" (HL7 RefrainPolicy NOPAT in meta.security), records entered in error, and lab results
# the practice has not shared (fixtures/README.md: tagged shared-with-patient once shared).
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SHARING_SYSTEM = "https://fhirportal.dev/fhir/CodeSystem/portal-sharing"
SHARED_WITH_PATIENT = f"{SHARING_SYSTEM}|shared-with-patient"
NOPAT_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NOPAT = f"{NOPAT_SYSTEM}|NOPAT"
WITHHELD_MARK = 1  # NOPAT or entered in error
UNSHARED_LAB_MARK = 2  # a laboratory Observation without the sharing tag
PEOPLE = frozenset({"Patient", "RelatedPerson", "Person"})
# The parameter whose value ``entered-in-error`` withholds a record, where it is not ``status``.
ENTERED_IN_ERROR = {"Condition": "verification-status", "AllergyIntolerance": "verification-status",
                    "Goal": "lifecycle-status"}


def patient_marks(registry: SearchParameterRegistry) -> tuple[Mark, ...]:
    """The marks the repository sets for the patient rules, on the types ``registry`` indexes. The
    people themselves (Patient, RelatedPerson, Person) are records about the reader, never withheld."""
    types = frozenset(registry.resource_types) - PEOPLE
    marks = [Mark(WITHHELD_MARK, types, (TokenMatch("_security", "NOPAT", NOPAT_SYSTEM),))]
    for resource_type in sorted(types):
        status = ENTERED_IN_ERROR.get(resource_type, "status")
        parameter = registry.get(resource_type, status)
        if parameter is not None and parameter.type == "token":
            marks.append(Mark(WITHHELD_MARK, frozenset({resource_type}), (TokenMatch(status, "entered-in-error"),)))
    if "Observation" in types:
        marks.append(Mark(UNSHARED_LAB_MARK, frozenset({"Observation"}),
                          (TokenMatch("category", "laboratory", OBSERVATION_CATEGORY),),
                          unless=(TokenMatch("_tag", "shared-with-patient", SHARING_SYSTEM),)))
    return tuple(marks)


# Interactions that write: the sharing rule does not decide what a write may produce.
WRITES = frozenset({"create", "update", "patch"})
_BROADEST_FIRST = tuple(reversed(CONTEXTS))  # system, user, patient
# Records about other records: a patient/ token also sees one whose reference parameter here points at
# a record of the patient's (that it may see), not only one naming the patient (US Core's Provenance).
# A Binary outside the compartment is the patient's only through its ``securityContext`` (the custom
# parameter ``security-context``, capability/search-parameters): a secure message's attachment names its
# Communication, so the patient reads it exactly while they may read that message (not NOPAT-labelled).
THROUGH_TARGETS = {"Provenance": ("target",), "Binary": ("security-context",)}
# What a patient/ token sees whole among the types outside the Patient compartment: the practice, its
# people and places, and the definitions records point at — no patient's data. Any other type outside
# the compartment (a VerificationResult, a MessageHeader, a Linkage, …) is hidden from patient tokens.
PRACTICE_TYPES = frozenset({
    "Organization", "OrganizationAffiliation", "Practitioner", "PractitionerRole", "Location", "HealthcareService",
    "Endpoint", "InsurancePlan", "Medication", "MedicationKnowledge", "Substance", "Questionnaire", "Slot",
    "Schedule",
    "ActivityDefinition", "PlanDefinition", "Library", "Measure", "ObservationDefinition", "SpecimenDefinition",
    "DeviceDefinition", "ChargeItemDefinition", "EventDefinition", "Evidence", "EvidenceVariable",
    "ResearchDefinition", "ResearchElementDefinition", "CatalogEntry", "NamingSystem", "StructureMap",
    "GraphDefinition", "MessageDefinition", "CompartmentDefinition", "ImplementationGuide", "TerminologyCapabilities",
})
# Compartment types among them (a Schedule's actor may be a patient): a patient/ token sees the patient's own
# and every one that names no patient.
PRACTICE_COMPARTMENT_TYPES = frozenset({"Schedule"})
# The practice's availability: written by staff and the EHR (user/ or system/ scopes) only; a patient/ scope
# reads it but never writes it (the server itself holds and frees slots for appointment requests).
WRITTEN_BY_STAFF_TYPES = frozenset({"Schedule", "Slot"})
# Never shown to patient/ tokens: a Group lists every member (the practice's whole roster).
HIDDEN_FROM_PATIENTS = frozenset({"Group"})
# Managed by the practice's staff and systems only (user/ or system/ scopes): a patient/ scope never grants
# anything on them, whatever it names (a Subscription makes the server call out to an endpoint).
STAFF_ONLY_TYPES = frozenset({"Subscription"})
# Read by patient/ tokens only where they match a query (AND-ed with any granular scope's): of the Tasks for
# the patient, only the forms the practice assigned (fhirportal/forms/tasks.py), never the portal
# invitation's Tasks nor the practice's other work. Written only by user/ or system/ scopes (the server
# itself completes a form Task when its form comes back).
FORM_TASK_SYSTEM = "https://fhirportal.dev/fhir/CodeSystem/form-task"
PATIENT_ONLY_WHERE = {"Task": (("code", f"{FORM_TASK_SYSTEM}|form-assignment"),)}
# How long the practice's lab-sharing default is trusted before it is read again (seconds).
LAB_SHARING_REFRESH = 30.0

log = logging.getLogger(__name__)


class AccessPolicy:
    """Builds (and caches) the Visibility of a token's rights; one per server.

    ``lab_sharing_default(conn)``: the practice's setting, ``"withheld"`` (lab results reach patient
    tokens only once tagged shared) or ``"shared"`` (unless labelled NOPAT), read through ``conn``
    (the request's read transaction) or, if None, a read transaction of its own; None: always
    withheld. ``authenticate`` calls it at most once every ``lab_sharing_refresh`` seconds (0: on
    every request), before the request's work (never nested in a write transaction); if it fails, the
    last value read (at first: withheld) stays. The cached Visibilities are keyed by the value, so a
    change applies within that window.
    """

    def __init__(self, registry: SearchParameterRegistry, resource_types: Iterable[str], *,
                 lab_sharing_default: Callable[[Connection | None], str] | None = None,
                 lab_sharing_refresh: float = LAB_SHARING_REFRESH):
        self.registry = registry
        self.resource_types = tuple(sorted(resource_types))
        spec = patient_compartment()
        self.compartment = {t: spec[t] for t in self.resource_types if t in spec}
        by_name: dict[str, list[str]] = {}
        for resource_type, params in sorted(self.compartment.items()):
            for name in params:
                by_name.setdefault(name, []).append(resource_type)
        self.compartment_by_name = tuple((name, tuple(types)) for name, types in sorted(by_name.items()))
        self.lab_sharing_default = lab_sharing_default
        self.lab_sharing_refresh = lab_sharing_refresh
        self._labs_shared: tuple[bool, float] | None = None  # (value, time.monotonic() when read)
        self._cached_visibility = lru_cache(maxsize=4096)(self._visibility)

    @property
    def patient_types(self) -> frozenset[str]:
        """The types a patient/ token can see anything of: its compartment and the practice's own."""
        return frozenset(t for t in self.resource_types if t not in HIDDEN_FROM_PATIENTS and (
            t == "Patient" or t in self.compartment or t in PRACTICE_TYPES or self._through(t)))

    def _through(self, resource_type: str) -> tuple[str, ...]:
        """``THROUGH_TARGETS`` of the type, if the registry indexes them (else nothing reaches it)."""
        names = THROUGH_TARGETS.get(resource_type, ())
        return names if names and all(self.registry.get(resource_type, n) is not None for n in names) else ()

    def labs_shared(self, conn: Connection | None = None) -> bool:
        """Do lab results reach patient tokens without the sharing tag (the practice's default)? Read
        again (through ``conn`` if given) once the last read is ``lab_sharing_refresh`` seconds old."""
        if self.lab_sharing_default is None:
            return False
        now = time.monotonic()
        cached = self._labs_shared
        if cached is not None and now - cached[1] < self.lab_sharing_refresh:
            return cached[0]
        try:
            value = self.lab_sharing_default(conn) == "shared"
        except Exception:  # noqa: BLE001  (a failed read keeps the last value; at first: withheld)
            log.exception("could not read the practice's lab_sharing_default")
            value = cached[0] if cached is not None else False
        self._labs_shared = (value, now)
        return value

    def forget_lab_sharing(self) -> None:
        """Read the practice's lab-sharing default again on the next request."""
        self._labs_shared = None

    def visibility(self, scopes: ScopeSet, patient: str | None, organization: str | None, interaction: str,
                   labs_shared: bool | None = None) -> Visibility | None:
        """What a token with these rights may see for ``interaction`` (None: everything). ``labs_shared``
        None: the lab-sharing default as last read (no database read here: this may run inside a
        transaction)."""
        if labs_shared is None:
            labs_shared = self._labs_shared is not None and self._labs_shared[0]
        return self._cached_visibility(scopes, patient, organization, interaction, labs_shared)

    def _criteria(self, resource_type: str, query: tuple[tuple[str, str], ...]) -> tuple[Criterion, ...] | None:
        """A scope's query as criteria; None if any part cannot be honoured (then it grants nothing)."""
        parsed = parse_search(self.registry, [resource_type], list(query), strict=False)
        if parsed.ignored or len(parsed.criteria) != len(query):
            return None
        return tuple(parsed.criteria)

    def _alternatives(self, resource_type: str, queries) -> tuple[tuple[Criterion, ...], ...]:
        groups = (self._criteria(resource_type, q) for q in queries)
        return tuple(g for g in groups if g is not None)

    @staticmethod
    def _patient_marks(labs_shared: bool) -> int:
        """The marks a patient-context read must not see (``patient_marks``): withheld (NOPAT, entered
        in error) and, unless the practice shares labs by default, unshared lab results."""
        return WITHHELD_MARK if labs_shared else WITHHELD_MARK | UNSHARED_LAB_MARK

    def _visibility(self, scopes: ScopeSet, patient: str | None, organization: str | None,
                    interaction: str, labs_shared: bool = False) -> Visibility | None:
        rules: dict[str, TypeRule] = {}
        for resource_type in self.resource_types:
            context = next((c for c in _BROADEST_FIRST if scopes.permits(c, resource_type, interaction)), None)
            if context is None:
                continue
            require = []
            queries = scopes.filters(context, resource_type, interaction)
            if queries is not None:
                alternatives = self._alternatives(resource_type, queries)
                if not alternatives:
                    continue  # no granular query can be honoured: nothing of this type is visible
                require.append(alternatives)
            compartment = self.compartment.get(resource_type, ())
            through = self._through(resource_type)
            owned = resource_type == "Patient" or bool(compartment) or bool(through)
            if context == "patient":
                if resource_type in HIDDEN_FROM_PATIENTS or (patient is None and owned) or \
                        not (owned or resource_type in PRACTICE_TYPES):
                    continue  # a patient scope without a patient sees no patient data
                marks = 0 if interaction in WRITES else self._patient_marks(labs_shared)
                if resource_type in PATIENT_ONLY_WHERE:
                    only = self._criteria(resource_type, PATIENT_ONLY_WHERE[resource_type])
                    if only is None:
                        continue  # the registry cannot tell them apart: none visible
                    require.append((only,))
                rules[resource_type] = TypeRule(patient=patient, compartment=compartment, require=tuple(require),
                                                without_marks=marks, through=through,
                                                through_compartment=self.compartment_by_name if through else (),
                                                practice=resource_type in PRACTICE_COMPARTMENT_TYPES)
            elif context == "user" and organization is not None:
                # the token names it as a reference (Organization/x) or a bare id
                rules[resource_type] = TypeRule(organization=organization.removeprefix("Organization/"),
                                                compartment=compartment,
                                                require=tuple(require))
            else:
                rules[resource_type] = TypeRule(require=tuple(require))
        if len(rules) == len(self.resource_types) and all(
                r.patient is None and r.organization is None and not r.require for r in rules.values()):
            return None  # everything, unrestricted
        return Visibility(rules)


class Authorization:
    """One request's rights (``access`` None: internal callers, unrestricted). ``labs_shared``: the
    practice's lab-sharing default as of the authentication (None: as the policy last read it)."""

    def __init__(self, access: AccessContext | None, policy: AccessPolicy | None = None,
                 labs_shared: bool | None = None):
        self.access = access
        self.policy = policy
        self.labs_shared = labs_shared

    def require(self, resource_type: str, interaction: str) -> None:
        """403 unless a scope grants ``interaction`` on ``resource_type``."""
        if self.access is None:
            return
        if resource_type in STAFF_ONLY_TYPES:
            if any(self.access.scopes.permits(c, resource_type, interaction) for c in ("system", "user")):
                return
            raise Forbidden(f"{resource_type} is managed by the practice's staff and systems only: {interaction} "
                            f"needs a user/ or system/ scope (e.g. system/{resource_type}.cruds)",
                            expression=resource_type)
        if resource_type in WRITTEN_BY_STAFF_TYPES and interaction in WRITES | {"delete"}:
            if any(self.access.scopes.permits(c, resource_type, interaction) for c in ("system", "user")):
                return
            raise Forbidden(f"{resource_type} is the practice's availability, written by its staff and systems "
                            f"only: {interaction} needs a user/ or system/ scope", expression=resource_type)
        if resource_type in PATIENT_ONLY_WHERE and interaction in WRITES | {"delete"}:
            if any(self.access.scopes.permits(c, resource_type, interaction) for c in ("system", "user")):
                return
            raise Forbidden(f"A {resource_type} is written by the practice's staff and systems only: {interaction} "
                            "needs a user/ or system/ scope (a form Task is completed by sending the form)",
                            expression=resource_type)
        if self.access.permits(resource_type, interaction):
            return
        letter = INTERACTION_PERMISSION[interaction]
        raise Forbidden(f"The access token does not allow {interaction} on {resource_type}: it needs a scope with "
                        f"'{letter}' for {resource_type} (e.g. patient/{resource_type}.{letter})",
                        expression=resource_type)

    def visibility(self, interaction: str) -> Visibility | None:
        """What ``interaction`` may see (for a write: what it may change and produce)."""
        if self.access is None:
            return None
        access = self.access
        return self.policy.visibility(access.scopes, access.patient, access.organization, interaction,
                                      self.labs_shared)

    def require_system_history(self) -> None:
        """``GET [base]/_history`` spans every patient: system/ or user/ scopes on every type only."""
        if self.access is None:
            return
        if not any(s.resource_type == "*" and s.context in ("system", "user") and "s" in s.permissions
                   for s in self.access.scopes.resource_scopes):
            raise Forbidden("The history of the whole system needs a system/ or user/ scope on every type "
                            "(e.g. system/*.rs)")

    def require_any_scope(self, what: str) -> None:
        if self.access is not None and not self.access.scopes.resource_scopes:
            raise Forbidden(f"{what} needs a resource scope")

    def refuse_write(self, reference: str, interaction: str) -> None:
        raise Forbidden(f"The access token does not allow {interaction} of {reference}: it is outside the "
                        f"patient, organization or resources the token's scopes reach", expression=reference)


UNRESTRICTED = Authorization(None)


def bearer_token(request: Request) -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("This request needs an access token (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": MISSING_TOKEN})
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'",
                           headers={"WWW-Authenticate": INVALID_TOKEN})
    return token.strip()


def authenticate(tokens: TokenStore, policy: AccessPolicy, request: Request, conn: Connection | None = None
                 ) -> Authorization:
    """The request's Authorization, or 401 (no token; unknown, expired or revoked token).

    ``conn``: an open read transaction to look the token up in (the one the request then reads
    in, saving a transaction per request); otherwise the token store opens its own. The practice's
    lab-sharing default is refreshed here too (when due), before the request's own work.
    """
    raw = bearer_token(request)
    access = tokens.authenticate(raw) if conn is None else tokens.lookup(conn, raw)
    if access is None:
        raise Unauthorized("The access token is unknown, expired or revoked",
                           headers={"WWW-Authenticate": INVALID_TOKEN})
    return Authorization(access, policy, policy.labs_shared(conn))
