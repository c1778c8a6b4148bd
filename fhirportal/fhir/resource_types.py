"""The resource types this server stores and serves. Adding a type is adding one line here."""

SUPPORTED_TYPES: tuple[str, ...] = (
    "AllergyIntolerance",
    "Appointment",
    "AuditEvent",
    "Composition",
    "Condition",
    "Consent",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Group",
    "Immunization",
    "Location",
    "Medication",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Organization",
    "Patient",
    "Person",
    "Practitioner",
    "PractitionerRole",
    "Provenance",
    "RelatedPerson",
    "Task",
)

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
