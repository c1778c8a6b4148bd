"""Everything an interaction needs, wired once by the app factory and passed in explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from fhirportal.settings import Settings
from fhirportal.smart.tokens import TokenStore
from fhirportal.store.database import Database
from fhirportal.store.indexing import SearchParameterRegistry
from fhirportal.store.repository import ResourceRepository

from .audit import AccessLog
from .authorization import AccessPolicy
from .operations import OperationRegistry
from .validation import ResourceValidator


@dataclass
class FhirContext:
    settings: Settings
    database: Database
    repository: ResourceRepository
    validator: ResourceValidator
    search_parameters: SearchParameterRegistry
    tokens: TokenStore
    operations: OperationRegistry = field(default_factory=OperationRegistry)

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @cached_property
    def resource_types(self) -> frozenset[str]:
        return frozenset(self.search_parameters.resource_types)

    @cached_property
    def access_policy(self) -> AccessPolicy:
        return AccessPolicy(self.search_parameters, self.resource_types)

    @cached_property
    def audit(self) -> AccessLog:
        return AccessLog(self.database, self.repository, self.base_url)

    def validate(self, conn, body: dict, *, self_reference: tuple[str, str] | None = None) -> None:
        self.validator.validate(body, lambda refs: self.repository.existing(conn, [(t, i) for t, i, _ in refs]),
                                self_reference=self_reference)
