"""What an interaction returns before it is rendered: status, body (dict or stored JSON text), headers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FhirResponse:
    status: int
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
