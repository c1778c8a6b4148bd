"""Building response Bundles (history, searchset) and their paging links."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from fhirportal.store import clock
from fhirportal.store.records import StoredResource

from .jsontext import Raw
from .preconditions import etag


def _embed(record: StoredResource) -> Raw:
    """The stored JSON text of a resource, embedded as-is (no parse/re-serialise)."""
    return Raw(record.content)


def link(base: str, path: str, params: list[tuple[str, str]]) -> str:
    query = urlencode(params)
    return f"{base}/{path}" + (f"?{query}" if query else "")


def bundle(bundle_type: str, entries: list[dict], links: dict[str, str], total: int | None = None) -> dict:
    result = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": clock.as_instant(clock.now())},
        "type": bundle_type,
    }
    if total is not None:
        result["total"] = total
    if links:  # FHIR allows no empty arrays
        result["link"] = [{"relation": relation, "url": url} for relation, url in links.items()]
    if entries:
        result["entry"] = entries
    return result


def history_entry(base_url: str, record: StoredResource) -> dict:
    full_url = f"{base_url}/{record.resource_type}/{record.fhir_id}"
    entry: dict = {"fullUrl": full_url}
    if record.content is not None:
        entry["resource"] = _embed(record)
    method = record.method if record.method in ("POST", "PUT", "DELETE") else "PUT"
    url = f"{record.resource_type}" if method == "POST" else f"{record.resource_type}/{record.fhir_id}"
    entry["request"] = {"method": method, "url": url}
    status = {"POST": "201 Created", "DELETE": "200 OK"}.get(method, "200 OK")
    entry["response"] = {"status": status, "etag": etag(record.version_id),
                         "lastModified": clock.as_instant(record.last_updated)}
    return entry


def search_entry(base_url: str, record: StoredResource, mode: str = "match", resource=None) -> dict:
    """A searchset entry; ``resource`` overrides the stored text (e.g. a ``_summary`` subset)."""
    body = _embed(record) if resource is None else (Raw(resource) if isinstance(resource, str) else resource)
    return {"fullUrl": f"{base_url}/{record.resource_type}/{record.fhir_id}", "resource": body,
            "search": {"mode": mode}}
