"""Visibility: which resources one request may see, as SQL conditions on the resource table.

The FHIR layer builds a ``Visibility`` from the request's access token (the store knows nothing of
tokens or scopes); every read, search, count, include, history and compartment query of the request
adds ``visible_clause`` to its ``WHERE``, so a resource outside it is never loaded, counted or
included. ``None`` instead of a Visibility means unrestricted.

Per resource type a ``TypeRule`` says:

- ``patient``: only Patient/<patient>'s compartment: the Patient itself by id, a compartment type
  when one of its compartment reference parameters points at the patient (an ``EXISTS`` on
  ix_reference, as ``ResourceRepository.compartment``); types outside the compartment are not
  restricted;
- ``organization``: only patients whose ``organization`` (managingOrganization) is it, and the
  compartment resources of those patients (ix_reference twice);
- ``require``: every item is a list of alternatives, each alternative criteria that must all hold
  (granular scopes: one of the scopes' queries);
- ``without_marks``: none of these bits of ``resource.marks`` may be set (rules decided at write
  time, store/marks.py: the portal's withheld, entered-in-error and unshared-lab rules);
- ``through``: reference parameters whose targets also admit a resource to the patient's compartment
  (a Provenance is the patient's when it is about the patient's records): one target is a record in
  the patient's compartment — by the parameters ``through_compartment`` gives per parameter name,
  ``(name, types that have it)`` — not hidden by ``without_marks``, and no target is a Patient (the
  compartment parameters decide then) or another patient's record;
- ``practice``: with ``patient``, a compartment type the practice also keeps records of (Schedule: a
  practitioner's availability) is visible as well when none of its compartment references names a Patient.

A type with no rule is invisible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import and_, bindparam, exists, false, or_, select, true

from ..schema import INDEX_TABLES, resource
from . import query as _query
from .aliases import alias
from .criteria import Criterion
from .per_pid import per_pid

COMPARTMENT_OWNER = "Patient"
MANAGING_ORGANIZATION = "organization"  # Patient.managingOrganization
# ``shared_rule``: a rule's patient as a bind parameter of this name (no FHIR id contains a NUL).
PATIENT_PARAMETER = "visible_patient"
_ANY_PATIENT = "\x00patient"


@dataclass(frozen=True)
class TypeRule:
    patient: str | None = None
    organization: str | None = None
    compartment: tuple[str, ...] = ()  # the type's Patient-compartment reference parameters
    require: tuple[tuple[tuple[Criterion, ...], ...], ...] = ()
    without_marks: int = 0
    through: tuple[str, ...] = ()
    through_compartment: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # A practice record of a compartment type (a practitioner's Schedule): with ``patient``, also visible
    # when none of its compartment references points at a Patient (it is nobody's record).
    practice: bool = False


@dataclass(frozen=True)
class Visibility:
    """What a request may see: a rule per visible resource type."""

    rules: Mapping[str, TypeRule]

    def sees_type(self, resource_type: str) -> bool:
        return resource_type in self.rules

    def sees_every(self, resource_type: str) -> bool:
        """Whether every resource of the type is visible (its rule adds no condition: ``rule_clause``)."""
        rule = self.rules.get(resource_type)
        if rule is None or rule.without_marks or rule.require:
            return False
        owned = resource_type == COMPARTMENT_OWNER or bool(rule.compartment)
        patient_bound = rule.patient is not None and (owned or bool(rule.through))
        return not patient_bound and not (rule.organization is not None and owned)


def _restricted(rule: TypeRule, resource_type: str) -> bool:
    owned = resource_type == COMPARTMENT_OWNER or bool(rule.compartment) or bool(rule.through)
    scoped = rule.patient is not None or rule.organization is not None
    return bool(rule.require or rule.without_marks) or (scoped and owned)


def _one_of(column, values: Sequence[str]):
    """``column IN (values)`` for a short, fixed list, as plain ORed equalities: an IN list becomes an
    "expanding" parameter that SQLAlchemy rewrites on every execution (a third of a read's cost)."""
    values = list(values)
    return column == values[0] if len(values) == 1 else or_(*(column == v for v in values))


def _in_patient_compartment(res, resource_type: str, params: Sequence[str], patient: str, drives: bool):
    ref = alias(INDEX_TABLES["reference"])
    columns = ref if drives else per_pid(ref)  # correlated: a lookup of this row's entries (pid index)
    conditions = [columns.c.resource_type == resource_type, _one_of(ref.c.param, params),
                  columns.c.target_type == COMPARTMENT_OWNER, ref.c.target_id == patient]
    if drives:  # uncorrelated: the database may start from the patient's compartment
        return res.c.pid.in_(select(ref.c.pid).where(*conditions))
    return exists(select(1).select_from(ref).where(ref.c.pid == res.c.pid, *conditions).limit(1).offset(0))


def _names_a_patient(res, params: Sequence[str]):
    """One of the row's ``params`` references points at a Patient (any patient)."""
    ref = alias(INDEX_TABLES["reference"])
    return exists(select(1).select_from(ref).where(ref.c.pid == res.c.pid, _one_of(ref.c.param, params),
                                                   ref.c.target_type == COMPARTMENT_OWNER).limit(1).offset(0))


def _target_owned(link, rule: TypeRule, owner_condition, hidden_marks: int):
    """The record a reference row ``link`` points at is in the compartment of a patient matching
    ``owner_condition`` (on the owner reference row), and none of ``hidden_marks`` is set on it."""
    target = alias(resource)
    owner = alias(INDEX_TABLES["reference"])
    owned = or_(*(and_(owner.c.param == name, _one_of(owner.c.resource_type, types))
                  for name, types in rule.through_compartment))
    hidden = [target.c.marks.op("&")(hidden_marks) == 0] if hidden_marks else []
    return exists(select(1).select_from(target).join(owner, owner.c.pid == target.c.pid).where(
        target.c.resource_type == link.c.target_type, target.c.fhir_id == link.c.target_id,
        target.c.deleted.is_(False), *hidden, owner.c.target_type == COMPARTMENT_OWNER,
        owner_condition(owner), owned))


def _through_targets(res, rule: TypeRule, patient):
    """Among its ``rule.through`` references, one points at a record of the patient's it may see, none
    at a Patient (then R4's compartment rule decides) nor at another patient's record."""
    mine, other = alias(INDEX_TABLES["reference"]), alias(INDEX_TABLES["reference"])
    theirs = exists(select(1).select_from(other).where(
        other.c.pid == res.c.pid, _one_of(other.c.param, rule.through),
        or_(other.c.target_type == COMPARTMENT_OWNER,
            _target_owned(other, rule, lambda owner: owner.c.target_id != patient, 0))))
    return and_(exists(select(1).select_from(mine).where(
        mine.c.pid == res.c.pid, _one_of(mine.c.param, rule.through),
        _target_owned(mine, rule, lambda owner: owner.c.target_id == patient, rule.without_marks))), ~theirs)


def _managed_by(patient_id_column, organization: str):
    """The Patient with this id (a column) has ``organization`` as its managingOrganization."""
    patient = alias(resource)
    ref = alias(INDEX_TABLES["reference"])
    return exists(select(1).select_from(patient).join(ref, ref.c.pid == patient.c.pid).where(
        patient.c.resource_type == COMPARTMENT_OWNER, patient.c.fhir_id == patient_id_column,
        ref.c.resource_type == COMPARTMENT_OWNER, ref.c.param == MANAGING_ORGANIZATION,
        ref.c.target_type == "Organization", ref.c.target_id == organization))


def _in_organization(res, resource_type: str, params: Sequence[str], organization: str):
    if resource_type == COMPARTMENT_OWNER:
        return _managed_by(res.c.fhir_id, organization)
    ref = alias(INDEX_TABLES["reference"])
    columns = per_pid(ref)
    return exists(select(1).select_from(ref).where(
        ref.c.pid == res.c.pid, columns.c.resource_type == resource_type, _one_of(ref.c.param, params),
        columns.c.target_type == COMPARTMENT_OWNER, _managed_by(ref.c.target_id, organization)))


def shared_rule(visibility: Visibility, resource_type: str) -> tuple[TypeRule | None, dict]:
    """The type's rule with its patient (if any) made the bind parameter ``PATIENT_PARAMETER``, and
    the parameters to execute it with: one statement built from it serves every patient's token."""
    rule = visibility.rules.get(resource_type)
    if rule is None or rule.patient is None:
        return rule, {}
    return replace(rule, patient=_ANY_PATIENT), {PATIENT_PARAMETER: rule.patient}


def rule_clause(rule: TypeRule, resource_type: str, res=resource, base_url: str | None = None, *,
                drives: bool = False):
    """The condition one row of ``resource_type`` must meet under ``rule`` (a ``shared_rule``'s
    patient is the bind parameter ``PATIENT_PARAMETER``)."""
    conditions = []
    if rule.without_marks:
        conditions.append(res.c.marks.op("&")(rule.without_marks) == 0)
    if rule.patient is not None:
        patient = bindparam(PATIENT_PARAMETER) if rule.patient == _ANY_PATIENT else rule.patient
        if resource_type == COMPARTMENT_OWNER:
            conditions.append(res.c.fhir_id == patient)
        elif rule.through and rule.compartment:
            conditions.append(or_(_in_patient_compartment(res, resource_type, rule.compartment, patient, False),
                                  _through_targets(res, rule, patient)))
        elif rule.through:  # outside the compartment (a Binary): only through its targets
            conditions.append(_through_targets(res, rule, patient))
        elif rule.compartment and rule.practice:
            conditions.append(or_(_in_patient_compartment(res, resource_type, rule.compartment, patient, False),
                                  ~_names_a_patient(res, rule.compartment)))
        elif rule.compartment:
            conditions.append(_in_patient_compartment(res, resource_type, rule.compartment, patient, drives))
    if rule.organization is not None and (resource_type == COMPARTMENT_OWNER or rule.compartment):
        conditions.append(_in_organization(res, resource_type, rule.compartment, rule.organization))
    for alternatives in rule.require:
        conditions.append(or_(false(), *(
            and_(true(), *(_query.criterion_clause(c, res, base_url, [resource_type], drives=False) for c in group))
            for group in alternatives)))
    return and_(true(), *conditions)


def visible_clause(visibility: Visibility | None, res=resource, types: Sequence[str] | None = None,
                   base_url: str | None = None, *, drives: bool = False):
    """SQL condition: the row of ``res`` (one of ``types``; None: any type) is visible.

    ``drives``: the search may start from the patient's compartment (an uncorrelated ``IN``);
    otherwise every restriction is a per-row ``EXISTS`` (reads, includes).
    """
    if visibility is None:
        return true()
    candidates = [t for t in (visibility.rules if types is None else types) if t in visibility.rules]
    if not candidates:
        return false()
    single = types is not None and len(types) == 1
    free = [t for t in candidates if not _restricted(visibility.rules[t], t)]
    parts = []
    if free and not single:
        parts.append(_one_of(res.c.resource_type, free))
    for resource_type in candidates:
        rule = visibility.rules[resource_type]
        if single:
            return rule_clause(rule, resource_type, res, base_url, drives=drives)
        if resource_type not in free:
            parts.append(and_(res.c.resource_type == resource_type,
                              rule_clause(rule, resource_type, res, base_url, drives=drives)))
    return or_(*parts)
