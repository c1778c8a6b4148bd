"""Bulk loading of FHIR JSON files, Bundles and ndjson through the same validation and repository
as the REST API, many resources per database transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fhirportal.errors import BadRequest, FhirError

from .context import FhirContext
from .resource_types import APPEND_ONLY_TYPES
from .writes import DeferredChecks, Writer

BATCH_SIZE = 500
ANALYZE_EVERY = 100_000  # resources: keep the planner's statistics in step with a growing database


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.deleted


def expand_paths(paths: list[str]) -> list[Path]:
    """Files in the order given; a directory contributes its .json/.ndjson files sorted by name."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".json", ".ndjson"))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(raw)
    return files


def _entries(resource: dict, source: str) -> Iterator[tuple[str, dict, str]]:
    """(method, resource-or-None, source) for a resource or each entry of a Bundle."""
    if resource.get("resourceType") != "Bundle":
        yield ("PUT" if resource.get("id") else "POST"), resource, source
        return
    for position, entry in enumerate(resource.get("entry", [])):
        request = entry.get("request") or {}
        method = request.get("method", "PUT" if (entry.get("resource") or {}).get("id") else "POST")
        body = entry.get("resource")
        if method == "DELETE":
            resource_type, _, fhir_id = request.get("url", "").partition("/")
            body = {"resourceType": resource_type, "id": fhir_id}
        if body is not None:
            yield method, body, f"{source} entry {position}"


def iter_file(path: Path) -> Iterator[tuple[str, dict, str]]:
    if path.suffix == ".ndjson":
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield from _entries(json.loads(line), f"{path}:{number}")
    else:
        yield from _entries(json.loads(path.read_text(encoding="utf-8")), str(path))


def count_resources(files: list[Path]) -> int:
    total = 0
    for path in files:
        if path.suffix == ".ndjson":
            with path.open(encoding="utf-8") as handle:
                total += sum(1 for line in handle if line.strip())
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            total += len(data.get("entry", [])) if data.get("resourceType") == "Bundle" else 1
    return total


def _apply(ctx: FhirContext, writer: Writer, method: str, body: dict, known: set[tuple[str, str]]) -> str | None:
    """Write one resource; returns what happened ("created", "updated", "deleted" or None)."""
    resource_type = body.get("resourceType")
    if resource_type not in ctx.resource_types:
        raise BadRequest(f"Resource type {resource_type!r} is not supported")
    if method == "DELETE":
        return "deleted" if writer.delete(resource_type, body["id"]).record is not None else None
    if method == "POST" or not body.get("id"):
        writer.create(resource_type, body)
        return "created"
    if resource_type in APPEND_ONLY_TYPES:  # never updated: a record with its id is created once
        writer.create(resource_type, body, fhir_id=body["id"])
        return "created"
    result = writer.update(resource_type, body["id"], body, probably_new=(resource_type, body["id"]) not in known)
    return "created" if result.status == 201 else "updated"


def _write_batch(ctx: FhirContext, items: list[tuple[str, dict, str]], *, deferred: bool) -> list[str | None]:
    """One transaction; with ``deferred`` the reference checks run once for the whole batch."""
    with ctx.database.write() as conn:
        writer = Writer(ctx, conn, DeferredChecks() if deferred else None, hooks=False)  # no hooks, as ever
        known = ctx.repository.existing(conn, [(b.get("resourceType"), b["id"]) for _, b, _ in items if b.get("id")],
                                        include_deleted=True)
        outcomes = [_apply(ctx, writer, method, body, known) for method, body, _ in items]
        writer.finish()
    return outcomes


def load(ctx: FhirContext, files: list[Path], progress=None, batch_size: int = BATCH_SIZE) -> LoadReport:
    """Load every resource, ``batch_size`` per transaction. A resource that fails validation is
    reported and skipped; its batch is replayed one resource per transaction so the rest is kept.
    """
    report = LoadReport()
    pending: list[tuple[str, dict, str]] = []
    analyzed_at = 0

    def count(outcomes: list[str | None]) -> None:
        for outcome in outcomes:
            if outcome:
                setattr(report, outcome, getattr(report, outcome) + 1)

    def flush() -> None:
        if not pending:
            return
        try:
            count(_write_batch(ctx, pending, deferred=True))
        except FhirError:
            for item in pending:
                try:
                    count(_write_batch(ctx, [item], deferred=False))
                except FhirError as error:
                    report.failed.append(f"{item[2]}: {error.message}")
        if progress is not None:
            progress(len(pending))
        pending.clear()
        nonlocal analyzed_at
        if report.total - analyzed_at >= ANALYZE_EVERY:
            ctx.database.analyze()
            analyzed_at = report.total

    for path in files:
        for item in iter_file(path):
            pending.append(item)
            if len(pending) >= batch_size:
                flush()
    flush()
    if report.total:
        ctx.database.analyze()
    return report
