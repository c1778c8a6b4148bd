"""What the bearer of a token may do: the AccessContext the FHIR layer enforces on every request."""

from __future__ import annotations

from dataclasses import dataclass

from .scopes import ScopeSet


@dataclass(frozen=True)
class AccessContext:
    """One authenticated request's rights.

    ``scopes`` are the granted scopes; ``patient`` the launch patient (patient/ scopes only reach
    that patient's compartment); ``organization`` the staff member's organization (user/ scopes
    only reach its patients); ``fhir_user`` the signed-in user as a FHIR reference.
    """

    scopes: ScopeSet
    client_id: str
    token_id: int | None = None
    account_id: int | None = None
    patient: str | None = None
    encounter: str | None = None
    fhir_user: str | None = None
    organization: str | None = None

    @property
    def context(self) -> str:
        """The scope context this token acts in: patient, user or system (the broadest it holds)."""
        contexts = self.scopes.contexts()
        for candidate in ("system", "user", "patient"):
            if candidate in contexts:
                return candidate
        return "patient"

    def permits(self, resource_type: str, interaction: str) -> bool:
        return any(self.scopes.permits(c, resource_type, interaction) for c in self.scopes.contexts())
