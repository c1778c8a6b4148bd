"""Validation of resources against FHIR profiles, from the profiles' StructureDefinition snapshots as
published in the loaded packages (US Core 6.1.0; ``fhirportal.definitions.packages``).

- ``compiler``: a snapshot -> a ``plan.Profile`` (its element tree, compiled once per process), with
  what it does not check listed in ``Profile.unsupported``;
- ``walker``: an instance along the plan — cardinality, fixed/pattern (``values``), choice types,
  Reference targets, required bindings (``bindings``), invariants (``invariants``), ``slicing``,
  extensions (``extensions``);
- ``registry``: ``ProfileRegistry`` and ``validate(resource, profile_url, contains=...)``.

Bindings are answered by a ``contains(valueset_url, system, code) -> bool | None`` callable (the
terminology service; None = cannot tell, never an error). No database, no Flask.
"""

from fhirportal.fhir.profiles.plan import Contains, Profile, Unsupported
from fhirportal.fhir.profiles.registry import ProfileRegistry, UnknownProfile, cannot_tell, registry, validate

__all__ = ["Contains", "Profile", "ProfileRegistry", "UnknownProfile", "Unsupported", "cannot_tell", "registry",
           "validate"]
