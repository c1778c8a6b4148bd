"""``Patient/[id]/$everything``: the patient's compartment, paged, with ``_since``, ``_type``, ``_count``."""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest, NotFound
from fhirportal.store.search import Criterion

from .. import audit_view
from ..authorization import Authorization
from ..bundles import bundle, link, search_entry
from ..compartment import patient_compartment
from ..context import FhirContext
from ..interactions.history import page_size, since_instant
from ..response import FhirResponse
from ..search_params import split_or


def compartment_params(ctx: FhirContext, types: list[str] | None = None) -> dict[str, list[str]]:
    """Patient-compartment parameters per stored type (``compartment.patient_compartment``)."""
    spec = patient_compartment()
    wanted = set(types) if types else set(ctx.resource_types)
    return {t: list(params) for t, params in spec.items() if t in wanted and t in ctx.resource_types and t != "Patient"}


LOG_PAGES = "log."  # a cursor into the access log, after the records' pages


def _log_page(ctx: FhirContext, conn, auth: Authorization, patient_id: str, request: Request, count: int,
              cursor: str):
    """A page of the access log about the patient's records (the journalled accesses: AuditEvents other
    systems sent are among the records' pages already)."""
    criteria = [Criterion(ctx.search_parameters.get("AuditEvent", "patient"), (patient_id,))]
    since = request.args.get("_since")
    if since:
        criteria.append(Criterion(ctx.search_parameters.get("AuditEvent", "date"), ("ge" + since,)))
    try:
        page, _total = audit_view.search(ctx, conn, auth, criteria, (), count=count, cursor=cursor or None,
                                         total="none", stored=False)
    except ValueError as exc:
        raise BadRequest(f"Invalid _cursor: {exc}", expression="_cursor") from exc
    return page


def everything(ctx: FhirContext, request: Request, auth: Authorization, resource_type: str,
               fhir_id: str | None) -> FhirResponse:
    """Only what the token may read: another patient's $everything is a 404 for a patient token."""
    if not fhir_id:
        raise NotFound("$everything needs a patient: Patient/[id]/$everything")
    auth.require("Patient", "read")
    auth.require("Patient", "search-type")
    visibility = auth.visibility("read")
    types = [t for v in request.args.getlist("_type") for t in split_or(v)]
    unknown = [t for t in types if t not in ctx.resource_types]
    if unknown:
        raise BadRequest(f"_type names types this server does not store: {', '.join(unknown)}", expression="_type")
    count = max(page_size(ctx, request), 1)
    cursor = request.args.get("_cursor")
    path = f"Patient/{fhir_id}/$everything"
    kept = [(k, v) for k, v in request.args.items(multi=True) if k in ("_since", "_type", "_count")]
    links = {"self": link(ctx.base_url, path, kept + ([("_cursor", cursor)] if cursor else []))}
    with ctx.database.read() as conn:
        # 404/410 for an unknown or deleted patient, or one the token may not see
        ctx.repository.read(conn, "Patient", fhir_id, visibility=visibility)
        if cursor is not None and cursor.startswith(LOG_PAGES):  # after the records: the access log about them
            log_page = _log_page(ctx, conn, auth, fhir_id, request, count, cursor.removeprefix(LOG_PAGES))
            if log_page.next_cursor:
                links["next"] = link(ctx.base_url, path, kept + [("_cursor", LOG_PAGES + log_page.next_cursor)])
            return FhirResponse(200, bundle("searchset", [search_entry(ctx.base_url, r) for r in log_page.matches],
                                            links))
        try:
            page = ctx.repository.compartment(
                conn, "Patient", fhir_id, compartment_params(ctx, types or None), since=since_instant(request),
                count=count, cursor=cursor, visibility=visibility)
        except ValueError as exc:
            raise BadRequest(f"Invalid _cursor: {exc}", expression="_cursor") from exc
    matches = [r for r in page.matches if not types or r.resource_type in types or r.resource_type == "Patient"]
    if page.next_cursor:
        links["next"] = link(ctx.base_url, path, kept + [("_cursor", page.next_cursor)])
    elif (not types or "AuditEvent" in types) and (
            auth.access is None or auth.access.permits("AuditEvent", "search-type")):
        links["next"] = link(ctx.base_url, path, kept + [("_cursor", LOG_PAGES)])
    entries = [search_entry(ctx.base_url, r) for r in audit_view.as_seen(auth, matches)]
    # Referenced practitioners, organizations, medications ... but never other patients' data
    # (a Group in the compartment refers to every member).
    patient_data = set(compartment_params(ctx)) | {"Patient", "Person"}
    entries += [search_entry(ctx.base_url, r, "include") for r in page.included if r.resource_type not in patient_data]
    return FhirResponse(200, bundle("searchset", entries, links))
