"""How the validator words a problem: ``"<where>: <what> (<profile>: <rule>)"``, with the FHIRPath
``expression`` of the element instance, e.g. ``Observation.category: minimum 1 in slice VSCat, found 0
(us-core-vital-signs: VSCat slice requires 1..1)``."""

from __future__ import annotations

from fhirportal.errors import Issue


def problem(expression: str, what: str, profile: str, rule: str, *, code: str = "invalid",
            severity: str = "error") -> Issue:
    return Issue(f"{expression}: {what} ({profile}: {rule})", code=code, severity=severity, expression=expression)
