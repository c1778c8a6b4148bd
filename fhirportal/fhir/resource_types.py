"""The resource types this server stores and serves: every FHIR R4 resource type, except those that
are not stored resources (Parameters, OperationOutcome) and the conformance and terminology resources
the server serves read-only from its definitions and packages (CapabilityStatement at ``metadata``,
SearchParameter, OperationDefinition, StructureDefinition, ValueSet, CodeSystem, ConceptMap)."""

from __future__ import annotations

from fhirportal import definitions

NOT_STORED: frozenset[str] = frozenset({
    "Parameters", "OperationOutcome",
    "CapabilityStatement", "SearchParameter", "OperationDefinition", "StructureDefinition",
    "ValueSet", "CodeSystem", "ConceptMap",
})
ABSTRACT = frozenset({"Resource", "DomainResource"})


def r4_resource_types() -> tuple[str, ...]:
    """Every concrete FHIR R4 resource type (those with ``meta`` in the structure table)."""
    structure = definitions.load("structure")
    return tuple(sorted(name for name, elements in structure.items()
                        if "." not in name and "meta" in elements and name not in ABSTRACT))


SUPPORTED_TYPES: tuple[str, ...] = tuple(t for t in r4_resource_types() if t not in NOT_STORED)

ALL_INTERACTIONS: tuple[str, ...] = ("read", "vread", "update", "patch", "delete", "history-instance",
                                     "history-type", "create", "search-type")
CHANGING_INTERACTIONS = frozenset({"update", "patch", "delete"})

# Records of what happened: written once, never changed or removed through the API, by anyone.
APPEND_ONLY_TYPES: frozenset[str] = frozenset({"AuditEvent"})


def interactions(resource_type: str) -> tuple[str, ...]:
    """The RESTful interactions a type supports (what the router allows and the statement lists)."""
    if resource_type in APPEND_ONLY_TYPES:
        return tuple(i for i in ALL_INTERACTIONS if i not in CHANGING_INTERACTIONS)
    return ALL_INTERACTIONS
