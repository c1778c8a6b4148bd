"""Everything an interaction needs, wired once by the app factory and passed in explicitly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from fhirportal.settings import Settings
from fhirportal.smart.tokens import TokenStore
from fhirportal.store.database import Database
from fhirportal.store.indexing import SearchParameterRegistry
from fhirportal.store.records import StoredResource
from fhirportal.store.repository import ResourceRepository

from .audit import AccessLog
from .authorization import AccessPolicy
from .compartment import patient_compartment
from .operations import OperationRegistry
from .validation import ResourceValidator

log = logging.getLogger(__name__)

# Called with the versions a create, update, patch or transaction wrote, once its transaction has
# committed (see ``FhirContext.committed``).
CommitHook = Callable[[list[StoredResource]], None]
# Called with the write's connection and the versions it wrote, inside its transaction just before the
# commit (see ``FhirContext.committing``): what it writes commits (or rolls back) with the write.
PreCommitHook = Callable[[object, list[StoredResource]], None]


@dataclass
class FhirContext:
    settings: Settings
    database: Database
    repository: ResourceRepository
    validator: ResourceValidator
    search_parameters: SearchParameterRegistry
    tokens: TokenStore
    operations: OperationRegistry = field(default_factory=OperationRegistry)
    # Post-commit hooks (e.g. the portal's auto-invite, registered by ``install_portal``). Each gets every
    # version the interaction wrote (not deletions), so it should look at the resource types first.
    after_commit: list[CommitHook] = field(default_factory=list)
    # Pre-commit hooks (e.g. Subscription matching, which enqueues its notifications in the write's own
    # transaction). Unlike ``after_commit`` hooks, an exception fails (rolls back) the write.
    before_commit: list[PreCommitHook] = field(default_factory=list)
    # The CapabilityStatement's resource list, built once per set of pending parameters (fhir/capability.py).
    capability_cache: dict = field(default_factory=dict)

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
        return AccessLog(self.database, self.base_url, patient_compartment())

    def validate(self, conn, body: dict, *, self_reference: tuple[str, str] | None = None,
                 profiles: list[str] | None = None) -> None:
        self.validator.validate(body, lambda refs: self.repository.existing(conn, [(t, i) for t, i, _ in refs]),
                                self_reference=self_reference, profiles=profiles)

    def committing(self, conn, records: list[StoredResource]) -> None:
        """Run the ``before_commit`` hooks on what a write wrote, in its transaction (``Writer`` registers
        this as a callback of the connection, run by ``Database.write`` just before it commits)."""
        for hook in list(self.before_commit):
            hook(conn, records)

    def committed(self, records: list[StoredResource]) -> None:
        """Run the ``after_commit`` hooks on what a create, update, patch or transaction (or one batch
        entry) wrote, after its commit. A failing hook is logged, never raised: the client's write
        has succeeded and its answer must say so. (``fhirportal load`` does not call them.)"""
        if not self.after_commit or not records:
            return
        for hook in list(self.after_commit):
            try:
                hook(records)
            except Exception:
                log.exception("after-commit hook %r failed (the write itself is committed)", hook)
