"""AuditEvent read and search, served from the access log (``store/journal``) and rendered on the way out
(``audit_events``): the accesses the server journals and the AuditEvents other systems POSTed (stored
as resources, indexed in the log's time order) page together, newest first by default.

A search's criteria become conditions on the log's columns for the journalled accesses (what an access
has: its patient, date, agent, entity, type, subtype, action, outcome) — an element an access does not
have (address, policy, site, …) matches none of them — and the usual index search for the stored ones.
What a token may see is the same split: the patients of a patient/ token (the accesses about their
records and their own), an organization's patients for a user/ token that has one, granular queries.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fhirportal.errors import BadRequest, Forbidden, Gone, NotFound
from fhirportal.store import journal
from fhirportal.store.indexing import dates
from fhirportal.store.indexing.reference import parse as parse_reference
from fhirportal.store.journal import Clause, Position, Term
from fhirportal.store.records import SearchPage, StoredResource
from fhirportal.store.repository import decode_cursor, encode_cursor
from fhirportal.store.search import Criterion
from fhirportal.store.search.prefixes import split_prefix
from fhirportal.store.search.visibility import TypeRule

from . import audit_events
from .audit_events import ACTION_CODES, INTERACTION_CODES, Viewer
from .authorization import Authorization
from .context import FhirContext

AUDIT_EVENT = "AuditEvent"
NEVER: Clause = ((Term("id", "in", ()),),)
SORTABLE = ("date", "_lastUpdated")


# ---------------------------------------------------------------------------- who may see which rows

def viewer_and_rule(auth: Authorization, interaction: str) -> tuple[Viewer, TypeRule | None, list[Clause] | None]:
    """How the token reads the log, its visibility rule for AuditEvent (for the stored ones), and the
    clauses the journalled rows must meet (None: it sees none of them)."""
    viewer, rule, clauses = rule_clauses(auth.visibility(interaction))
    if viewer.is_patient and auth.access is not None:
        viewer = Viewer(viewer.patients, auth.access.account_id)
    return viewer, rule, clauses


def rule_clauses(visibility) -> tuple[Viewer, TypeRule | None, list[Clause] | None]:
    """The reader, the AuditEvent rule and the journal clauses of a Visibility (None: unrestricted)."""
    if visibility is None:
        return audit_events.AS_RECORDED, None, []
    rule = visibility.rules.get(AUDIT_EVENT)
    if rule is None:
        return audit_events.AS_RECORDED, None, None
    clauses: list[Clause] = []
    viewer = audit_events.AS_RECORDED
    if rule.patient is not None:
        mine = (rule.patient,)
        viewer = Viewer(frozenset(mine))
        clauses.append(((Term("patient_id", "in", mine),), (Term("actor_patient", "in", mine),)))
    if rule.organization is not None:
        clauses.append(((Term("patient_id", "managed by", rule.organization),),))
    for alternatives in rule.require:  # granular scopes: one of the scopes' queries
        clauses.append(tuple(alternative for group in alternatives for alternative in all_of(group)) or NEVER)
    return viewer, rule, clauses


def all_of(group, base_url: str | None = None) -> tuple[tuple[Term, ...], ...]:
    """Criteria AND-ed (a granular scope's query, a _typeFilter) as alternatives of terms."""
    combined: list[tuple[Term, ...]] = [()]
    for criterion in group:
        clause = criterion_clause(criterion, base_url)
        combined = [left + right for left in combined for right in clause]
    return tuple(combined)


# ---------------------------------------------------------------------------- criteria on the log's columns

def _reference_ids(values, resource_type: str, base_url: str | None = None) -> list[str]:
    ids = []
    for value in values:
        target_type, target_id = parse_reference(value, base_url)
        if target_id is None and "/" not in value:
            target_type, target_id = resource_type, value
        if target_type == resource_type and target_id:
            ids.append(target_id)
    return ids


def _references(values, base_url: str | None = None) -> list[str]:
    found = []
    for value in values:
        target_type, target_id = parse_reference(value, base_url)
        if target_id is not None:
            found.append(f"{target_type}/{target_id}")
    return found


def _codes(values) -> list[str]:
    return [value.rpartition("|")[2] for value in values]


def _date_terms(value: str) -> tuple[Term, ...]:
    prefix, text = split_prefix(value)
    low, high = (dates.to_datetime(m) for m in dates.parse_range(text))
    match prefix:
        case "eq" | "ap":
            return Term("recorded", ">=", low), Term("recorded", "<=", high)
        case "gt" | "sa":
            return (Term("recorded", ">", high),)
        case "lt" | "eb":
            return (Term("recorded", "<", low),)
        case "ge":
            return (Term("recorded", ">=", low),)
        case "le":
            return (Term("recorded", "<=", high),)
        case "ne":
            return (Term("recorded", "<", low),)  # and the alternative above: see criterion_clause
    raise ValueError(f"unknown prefix {prefix!r}")


def _actions_for(kind: str, codes: list[str]) -> list[str] | None:
    """The journal actions whose rendered ``action`` (R C U D E) or ``subtype`` is one of ``codes``;
    None: every action not mapped elsewhere (``E`` and unknown subtypes)."""
    if kind == "action":
        return [a for a, letter in ACTION_CODES.items() if letter in codes]
    return list({*codes, *(a for a, code in INTERACTION_CODES.items() if code in codes)})


def criterion_clause(criterion: Criterion, base_url: str | None = None) -> Clause:
    """The alternatives of terms a journalled access must meet for ``criterion``."""
    code, values, modifier = criterion.parameter.code, criterion.values, criterion.modifier
    if criterion.chain is not None or criterion.has is not None:
        raise BadRequest("A chained or _has parameter here is not supported on the access log", expression=code)
    column = {"patient": "patient_id", "agent": "fhir_user", "entity-type": "resource_type"}.get(code)
    if modifier == "missing":
        if column is None and code not in ("_id", "date", "_lastUpdated", "type", "subtype", "action", "outcome"):
            return ((),) if values[-1] == "true" else NEVER  # an element an access never has
        return NEVER if values[-1] == "true" and column is None else \
            ((Term(column, "null" if values[-1] == "true" else "not null"),),)
    negate = modifier == "not"
    if code == "_id":
        ids = [n for n in (audit_events.journal_id(v) for v in values) if n is not None]
        return ((Term("id", "not in" if negate else "in", ids),),)
    if code in ("date", "_lastUpdated"):
        alternatives = []
        for value in values:
            terms = _date_terms(value)
            alternatives.append(terms)
            if split_prefix(value)[0] == "ne":
                alternatives.append((Term("recorded", ">", dates.to_datetime(dates.parse_range(
                    split_prefix(value)[1])[1])),))
        return tuple(alternatives)
    if code == "patient":
        ids = _reference_ids(values, "Patient", base_url)
        return ((Term("patient_id", "not in" if negate else "in", ids),),)
    if code == "agent":
        return ((Term("fhir_user", "not in" if negate else "in", _references(values, base_url)),),)
    if code == "entity":
        refs = _references(values, base_url)
        patients = [r.split("/", 1)[1] for r in refs if r.startswith("Patient/")]
        return ((Term("query", "in", refs),), (Term("patient_id", "in", patients),))
    if code == "entity-type":
        return ((Term("resource_type", "not in" if negate else "in", _codes(values)),),)
    if code == "type":
        matches = any(v.rpartition("|")[2] == "rest" and v.rpartition("|")[0] in (
            "", audit_events.EVENT_TYPE["system"]) for v in values)
        return NEVER if matches == negate else ((),)
    if code in ("subtype", "action"):
        actions = _actions_for(code, _codes(values))
        if code == "action" and "E" in _codes(values):  # E: everything the other letters do not cover
            covered = [a for a, letter in ACTION_CODES.items() if letter != "E"]
            clause: Clause = ((Term("action", "in", actions),), (Term("action", "not in", covered),))
            return ((Term("action", "in", covered),),) if negate else clause
        return ((Term("action", "not in" if negate else "in", actions),),)
    if code == "outcome":
        ranges = {"0": (0, 399), "4": (400, 499), "8": (500, 999)}
        alternatives = [(Term("outcome", ">=", ranges[c][0]), Term("outcome", "<=", ranges[c][1]))
                        for c in _codes(values) if c in ranges]
        if negate:
            kept = [r for c, r in ranges.items() if c not in _codes(values)]
            alternatives = [(Term("outcome", ">=", low), Term("outcome", "<=", high)) for low, high in kept]
        return tuple(alternatives) or NEVER
    return ((),) if negate else NEVER  # an element an access never has (address, policy, site, source, …)


# ---------------------------------------------------------------------------- read and search

def read(ctx: FhirContext, conn, auth: Authorization, fhir_id: str, interaction: str = "read") -> StoredResource:
    """An AuditEvent as the token may see it: ``access-N`` from the log, any other id a stored one
    (404 for what the token may not see)."""
    viewer, _rule, clauses = viewer_and_rule(auth, interaction)
    row_id = audit_events.journal_id(fhir_id)
    if row_id is None:
        record = ctx.repository.read(conn, AUDIT_EVENT, fhir_id, visibility=auth.visibility(interaction))
        if not viewer.is_patient:
            return record
        body = audit_events.redact_stored(record.body, viewer)
        return StoredResource(record.resource_type, record.fhir_id, record.version_id, record.last_updated,
                              record.deleted, json.dumps(body, separators=(",", ":")), record.method)
    row = journal.row_by_id(conn, row_id)
    if row is None or clauses is None or not journal.row_meets(conn, row_id, clauses):
        raise NotFound(f"AuditEvent/{fhir_id} is not known", expression=AUDIT_EVENT)
    return audit_events.as_stored(row, ctx.base_url, viewer)


NOTHING = "!none"  # a value no entry has ("!" is in no id or reference; a NUL PostgreSQL text refuses)
MAX_CHAINED = 1000  # resources a chained AuditEvent criterion may stand for


def _chain_resolved(ctx: FhirContext, conn, auth: Authorization, criterion: Criterion) -> Criterion:
    """A chain (``patient:Patient.name=…``) as the references it stands for (the resources of the target
    type that meet it and the token may see); ``_has`` matches no journalled access (nothing refers to one)."""
    if criterion.has is not None:
        return Criterion(criterion.parameter, (NOTHING,), None)
    if criterion.chain is None:
        return criterion
    target_types = [criterion.modifier] if criterion.modifier else list(criterion.parameter.targets) or ["Patient"]
    references = []
    for target_type in target_types:
        if target_type not in ctx.resource_types:
            continue
        ids = ctx.repository.search_ids(conn, target_type, [criterion.chain], limit=MAX_CHAINED + 1,
                                        visibility=auth.visibility("search-type"))
        references += [f"{target_type}/{fhir_id}" for fhir_id in ids]
    if len(references) > MAX_CHAINED:
        raise BadRequest(f"'{criterion.parameter.code}' stands for more than {MAX_CHAINED} resources in an AuditEvent "
                         f"search: narrow it", expression=criterion.parameter.code)
    return Criterion(criterion.parameter, tuple(references) or (NOTHING,), None)


def _as_shown(criterion: Criterion, viewer: Viewer, auth: Authorization) -> Criterion:
    """A patient viewer's criterion on what the entries show them: another patient (as ``patient`` or an
    entity) or another portal user (as ``agent``) is named in none of them, so matches none."""
    code = criterion.parameter.code
    if criterion.chain is not None or criterion.has is not None or code not in ("patient", "entity", "agent"):
        return criterion
    own_user = auth.access.fhir_user if auth.access is not None else None

    def shown(value: str) -> bool:
        target_type, target_id = parse_reference(value)
        if target_id is None:
            return code != "patient" or value in viewer.patients  # a bare id (patient=x)
        if target_type == "Patient":
            return target_id in viewer.patients
        if code == "agent" and target_type in ("RelatedPerson", "Person"):
            return value == own_user
        return True

    kept = tuple(v for v in criterion.values if shown(v)) or (NOTHING,)
    return Criterion(criterion.parameter, kept, criterion.modifier)


def search(ctx: FhirContext, conn, auth: Authorization, criteria: list[Criterion], sort, *, count: int,
           cursor: str | None, total: str, include=(), stored: bool = True) -> tuple[SearchPage, int | None]:
    """A page of AuditEvents (journalled and stored) meeting ``criteria``, in time order, with what
    ``include`` asks for; and the total when asked (``_total`` or ``_summary=count``). ``stored`` False:
    the journalled accesses only."""
    descending = True
    if sort:
        if len(sort) > 1 or sort[0].parameter.code not in SORTABLE:
            raise BadRequest("AuditEvent searches sort by date only (_sort=date or _sort=-date)", expression="_sort")
        descending = sort[0].descending
    viewer, rule, visible = viewer_and_rule(auth, "search-type")
    if visible is None:
        raise Forbidden("The access token does not allow reading the access log")
    journal_criteria = [_chain_resolved(ctx, conn, auth, c) for c in criteria]
    if viewer.is_patient:
        journal_criteria = [_as_shown(c, viewer, auth) for c in journal_criteria]
    access = [*visible, *(criterion_clause(c, ctx.base_url) for c in journal_criteria)]
    visibility = auth.visibility("search-type")
    stored = ctx.repository.matching(AUDIT_EVENT, criteria, visibility=visibility) if stored else None
    after = None
    if cursor:
        values = decode_cursor(cursor)
        if len(values) != 3 or values[2] != descending or not isinstance(values[1], int):
            raise ValueError("the paging cursor belongs to another search")
        after = Position(datetime.fromisoformat(values[0]).astimezone(UTC), values[1])
    rows = journal.select_rows(conn, access, stored, descending=descending, after=after, count=count + 1)
    next_cursor = None
    if len(rows) > count:
        rows = rows[:count]
        last = rows[-1]
        next_cursor = encode_cursor(last.recorded.isoformat(), last.id, descending)
    matches = [audit_events.as_stored(row, ctx.base_url, viewer) for row in rows]
    counted = journal.count_rows(conn, access, stored) if total in ("accurate", "estimate") or count == 0 else None
    return SearchPage(matches, next_cursor, included(ctx, conn, auth, matches, include) if include else []), counted


# ---------------------------------------------------------------------------- _include

_INCLUDE_PATHS = {"patient": ("agent", "entity"), "agent": ("agent",), "entity": ("entity",)}
INCLUDES = tuple(_INCLUDE_PATHS)
REVINCLUDED = 100  # journal entries a page's _revinclude=AuditEvent:… brings at most (the newest)


def _referenced(body: dict, param: str | None) -> list[str]:
    found = []
    for element in _INCLUDE_PATHS.get(param, ("agent", "entity")) if param else ("agent", "entity"):
        for item in body.get(element, []):
            reference = (item.get("who") if element == "agent" else item.get("what")) or {}
            if isinstance(reference.get("reference"), str):
                found.append(reference["reference"])
    if param == "patient":
        found = [r for r in found if r.startswith("Patient/")]
    return found


def included(ctx: FhirContext, conn, auth: Authorization, matches: list[StoredResource], specs) -> list[StoredResource]:
    """``_include=AuditEvent:patient|agent|entity`` (or ``*``) of a page of AuditEvents: the resources they
    point at that the token may read, each once (one round: what those point at is not followed, and nothing
    refers to the access log's entries, so a ``_revinclude`` brings none)."""
    specs = [spec for spec in specs if not spec.reverse]
    visibility = auth.visibility("read")
    wanted: dict[tuple[str, str], None] = {}
    for spec in specs:
        if spec.source_type not in (AUDIT_EVENT, "*"):
            continue
        for record in matches:
            for reference in _referenced(record.body, spec.param):
                target_type, target_id = parse_reference(reference, ctx.base_url)
                if target_id and (spec.target_type in (None, target_type)) and target_type in ctx.resource_types:
                    wanted[(target_type, target_id)] = None
    found = []
    for target_type, target_id in list(wanted)[:1000]:
        if target_type == AUDIT_EVENT or (auth.access is not None and not auth.access.permits(target_type, "read")):
            continue
        try:
            found.append(ctx.repository.read(conn, target_type, target_id, visibility=visibility))
        except (NotFound, Gone):
            continue
    return found


def revincluded(ctx: FhirContext, conn, auth: Authorization, matches: list[StoredResource], specs) -> list:
    """``_revinclude=AuditEvent:patient|agent|entity`` of another search's page: the journalled accesses
    about (or by) the page's resources that the token may see, the newest ``REVINCLUDED`` (the stored
    AuditEvents come through the usual index)."""
    wanted = [s for s in specs if s.reverse and s.source_type == AUDIT_EVENT and s.param in _INCLUDE_PATHS]
    if not wanted or (auth.access is not None and not auth.access.permits(AUDIT_EVENT, "search-type")):
        return []
    viewer, _rule, visible = viewer_and_rule(auth, "search-type")
    if visible is None:
        return []
    patients = [r.fhir_id for r in matches if r.resource_type == "Patient"]
    references = [r.reference for r in matches]
    alternatives = []
    for spec in wanted:
        if spec.param in ("patient", "entity") and patients:
            alternatives.append((Term("patient_id", "in", patients),))
        if spec.param == "entity":
            alternatives.append((Term("query", "in", references),))
        if spec.param in ("agent", "patient"):
            alternatives.append((Term("fhir_user", "in", references),))
    if not alternatives:
        return []
    rows = journal.select_rows(conn, [*visible, tuple(alternatives)], None, count=REVINCLUDED)
    return [audit_events.as_stored(row, ctx.base_url, viewer) for row in rows]


def as_seen(auth: Authorization, records: list[StoredResource]) -> list[StoredResource]:
    """Stored AuditEvents among ``records`` (an include, ``$everything``) as the token's reader may see them."""
    viewer, _rule, _clauses = viewer_and_rule(auth, "read")
    if not viewer.is_patient:
        return records
    return [StoredResource(r.resource_type, r.fhir_id, r.version_id, r.last_updated, r.deleted,
                           json.dumps(audit_events.redact_stored(r.body, viewer), separators=(",", ":")), r.method)
            if r.resource_type == AUDIT_EVENT and r.content else r for r in records]
