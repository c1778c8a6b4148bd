"""Plain values the store hands back: one stored version of a resource, a page of history."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property


@dataclass(frozen=True)
class StoredResource:
    resource_type: str
    fhir_id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: str | None  # the JSON text exactly as served (meta.versionId/lastUpdated included)
    method: str = "PUT"

    @cached_property
    def body(self) -> dict | None:
        return None if self.content is None else json.loads(self.content)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.fhir_id}"


@dataclass(frozen=True)
class HistoryPage:
    entries: list[StoredResource]
    next_cursor: str | None
    total: int | None = None


@dataclass(frozen=True)
class SearchPage:
    matches: list[StoredResource]
    next_cursor: str | None
    included: list[StoredResource]
