"""SMART scopes, v1 and v2, parsed into values the FHIR layer can enforce.

    patient/Observation.rs                      v2: create read update delete search, in that order
    patient/Observation.rs?category=laboratory  v2 granular: only resources matching the query
    user/*.read   system/*.*                    v1: read = rs, write = cud, * = cruds
    openid fhirUser profile launch launch/patient launch/encounter offline_access online_access

Unknown or malformed scopes are dropped, never fatal (SMART App Launch 2, "Scopes"). Pure
functions; nothing here touches HTTP or the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

CONTEXTS = ("patient", "user", "system")
PERMISSIONS = "cruds"
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": PERMISSIONS}
OTHER_SCOPES = frozenset({
    "openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access",
    "online_access",
})
# Interactions by the permission that allows them.
INTERACTION_PERMISSION = {
    "read": "r", "vread": "r", "history-instance": "r", "search-type": "s", "history-type": "s",
    "create": "c", "update": "u", "patch": "u", "delete": "d",
}

_SCOPE = re.compile(r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\."
                    r"(?P<permissions>[cruds]+|read|write|\*)(?:\?(?P<query>.+))?$")


@dataclass(frozen=True)
class ResourceScope:
    context: str
    resource_type: str  # a type, or "*" for every type
    permissions: frozenset[str]
    query: tuple[tuple[str, str], ...] = ()  # granular scopes: the resources must match this search

    def covers(self, context: str, resource_type: str, permission: str) -> bool:
        return (self.context == context and self.resource_type in ("*", resource_type)
                and permission in self.permissions)

    @property
    def text(self) -> str:
        letters = "".join(p for p in PERMISSIONS if p in self.permissions)
        query = "?" + "&".join(f"{k}={v}" for k, v in self.query) if self.query else ""
        return f"{self.context}/{self.resource_type}.{letters}{query}"


def parse_scope(text: str, resource_types: Iterable[str] | None = None) -> ResourceScope | None:
    """One resource scope, or None if ``text`` is not one (or names a type the server lacks)."""
    match = _SCOPE.match(text)
    if not match:
        return None
    permissions = match.group("permissions")
    if permissions in V1_PERMISSIONS:
        if match.group("query"):
            return None  # v1 scopes carry no query
        letters = V1_PERMISSIONS[permissions]
    else:
        if "".join(p for p in PERMISSIONS if p in permissions) != permissions:
            return None  # v2 letters must be in c r u d s order, each once
        letters = permissions
    resource_type = match.group("type")
    if resource_types is not None and resource_type != "*" and resource_type not in set(resource_types):
        return None
    query = tuple(parse_qsl(match.group("query") or "", keep_blank_values=False))
    if match.group("query") and not query:
        return None
    return ResourceScope(match.group("context"), resource_type, frozenset(letters), query)


@dataclass(frozen=True)
class ScopeSet:
    resource_scopes: tuple[ResourceScope, ...] = ()
    other: frozenset[str] = frozenset()

    @property
    def text(self) -> str:
        """The granted scope string: resource scopes as written in v2 form, then the others."""
        return " ".join([s.text for s in self.resource_scopes] + sorted(self.other))

    def permits(self, context: str, resource_type: str, interaction: str) -> bool:
        permission = INTERACTION_PERMISSION[interaction]
        return any(s.covers(context, resource_type, permission) for s in self.resource_scopes)

    def filters(self, context: str, resource_type: str, interaction: str) -> list[tuple[tuple[str, str], ...]] | None:
        """The granular queries a result must match (any one of them), or None when unrestricted.

        Raises nothing; call ``permits`` first.
        """
        permission = INTERACTION_PERMISSION[interaction]
        covering = [s for s in self.resource_scopes if s.covers(context, resource_type, permission)]
        if not covering or any(not s.query for s in covering):
            return None
        return [s.query for s in covering]

    def contexts(self) -> set[str]:
        return {s.context for s in self.resource_scopes}

    def within(self, granted: ScopeSet) -> ScopeSet:
        """The part of this (requested) set that ``granted`` allows: refresh can only shrink scope."""
        granted_texts = {s.text for s in granted.resource_scopes}
        kept = tuple(s for s in self.resource_scopes if s.text in granted_texts)
        return ScopeSet(kept, self.other & granted.other)

    def without_types(self, resource_types: Iterable[str]) -> ScopeSet:
        """What remains when the user unticks some record types on the consent page."""
        removed = set(resource_types)
        return ScopeSet(tuple(s for s in self.resource_scopes if s.resource_type not in removed), self.other)


def parse_scopes(text: str | None, resource_types: Iterable[str] | None = None) -> ScopeSet:
    """Every scope in a space-separated string; unknown ones are dropped, duplicates kept once."""
    types = None if resource_types is None else frozenset(resource_types)
    resource_scopes: list[ResourceScope] = []
    other: set[str] = set()
    for item in (text or "").split():
        if item in OTHER_SCOPES:
            other.add(item)
            continue
        scope = parse_scope(item, types)
        if scope is not None and scope not in resource_scopes:
            resource_scopes.append(scope)
    return ScopeSet(tuple(resource_scopes), frozenset(other))
