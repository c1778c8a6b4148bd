"""``POST [base]`` with a ``transaction`` or ``batch`` Bundle.

transaction: all or nothing, in one database transaction. Entries are processed in the spec's
order (DELETE, POST, PUT/PATCH, GET/HEAD); ``urn:uuid:`` and other fullUrls of created resources are
resolved and rewritten in every reference, as are conditional references (``Patient?identifier=…``);
``ifNoneExist``/``ifMatch`` are honoured. Reference and referential-integrity checks run once every
entry is written. Any failing entry rolls everything back and its OperationOutcome is returned.

batch: every entry on its own (its own database transaction); a failure is that entry's response.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from flask import Request

from fhirportal.errors import (
    BadRequest,
    FhirError,
    Issue,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    Unprocessable,
)
from fhirportal.store import clock
from fhirportal.store.repository import new_id

from .. import jsontext
from ..authorization import Authorization
from ..bundles import bundle, search_entry
from ..context import FhirContext
from ..lookups import CONDITIONAL_REFERENCE, Lookups, reference_holders
from ..negotiation import resource_body
from ..outcome import operation_outcome
from ..preconditions import etag, parse_etag
from ..response import FhirResponse
from ..search_params import parse_criteria
from ..validation import check_id
from ..writes import DeferredChecks, Writer, WriteResult, within_entry
from .common import prefer_return, shaped_body
from .history import count_value
from .patch import parse_patch

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified"}


@dataclass
class Entry:
    index: int
    method: str
    resource_type: str | None
    fhir_id: str | None
    version: str | None
    query: str
    resource: dict | None
    full_url: str | None
    if_none_exist: str | None
    if_match: int | None
    target: str | None = None  # "Type/id" assigned before processing (POST and conditional PUT)
    existing: bool = False  # a conditional create that matched
    response: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"

    @property
    def interaction(self) -> str:
        """The interaction this entry performs, as scopes name it."""
        match self.method:
            case "GET" | "HEAD":
                return ("vread" if self.version else "read") if self.fhir_id else "search-type"
            case "POST":
                return "create"
            case "PUT":
                return "update"
            case "PATCH":
                return "patch"
        return "delete"


def _require(auth: Authorization, entry: Entry) -> None:
    """The same scope check as the entry's own interaction would make (403, located in the entry)."""
    try:
        auth.require(entry.resource_type, entry.interaction)
    except FhirError as error:
        raise _located(error, entry.where) from error


def _status(code: int) -> str:
    return f"{code} {_REASONS.get(code, '')}".strip()


def _parse_url(ctx: FhirContext, raw: str, where: str) -> tuple[str | None, str | None, str | None, str]:
    """(type, id, version, query) of an entry's request.url, relative or under our base."""
    if raw.startswith(ctx.base_url + "/"):
        raw = raw[len(ctx.base_url) + 1:]
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        raise BadRequest(f"request.url '{raw}' is not on this server", expression=f"{where}.request.url")
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return None, None, None, parts.query
    resource_type = segments[0]
    fhir_id = segments[1] if len(segments) > 1 else None
    version = segments[3] if len(segments) == 4 and segments[2] == "_history" else None
    if len(segments) > 4 or (len(segments) in (3, 4) and segments[2] != "_history"):
        raise BadRequest(f"request.url '{raw}' is not an interaction this server supports in a Bundle",
                         expression=f"{where}.request.url")
    return resource_type, fhir_id, version, parts.query


def _parse_entry(ctx: FhirContext, index: int, raw) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise BadRequest("Every entry needs a request", expression=f"{where}.request")
    request = raw["request"]
    method = request.get("method")
    if not isinstance(method, str) or method not in _ORDER:
        raise BadRequest(f"request.method '{method}' is not supported", expression=f"{where}.request.method")
    for name in ("ifMatch", "ifNoneExist", "ifNoneMatch", "ifModifiedSince"):
        if request.get(name) is not None and not isinstance(request[name], str):
            raise BadRequest(f"request.{name} must be a string", expression=f"{where}.request.{name}")
    if raw.get("fullUrl") is not None and not isinstance(raw["fullUrl"], str):
        raise BadRequest("fullUrl must be a string (a URI)", expression=f"{where}.fullUrl")
    if not isinstance(request.get("url"), str):
        raise BadRequest("request.url is required", expression=f"{where}.request.url")
    resource_type, fhir_id, version, query = _parse_url(ctx, request["url"], where)
    if resource_type is None:
        raise BadRequest("request.url names no resource type", expression=f"{where}.request.url")
    if resource_type not in ctx.resource_types:
        raise NotFound(f"Resource type '{resource_type}' is not supported", expression=f"{where}.request.url")
    resource = raw.get("resource")
    if method in ("POST", "PUT", "PATCH"):
        if not isinstance(resource, dict):
            raise BadRequest(f"A {method} entry needs a resource", expression=f"{where}.resource")
        expected_type = "Binary" if method == "PATCH" else resource_type
        if resource.get("resourceType") != expected_type:
            raise BadRequest(f"The entry's resource is a {resource.get('resourceType')}, expected {expected_type}",
                             expression=f"{where}.resource")
    if method == "POST" and (fhir_id or query):
        raise BadRequest("A POST entry's url is the resource type alone", expression=f"{where}.request.url")
    if method in ("PATCH",) and not fhir_id:
        raise BadRequest("A PATCH entry needs Type/id", expression=f"{where}.request.url")
    if method in ("PUT", "DELETE") and not fhir_id and not query:
        raise BadRequest(f"A {method} entry needs Type/id or Type?criteria", expression=f"{where}.request.url")
    if fhir_id:
        check_id(fhir_id, f"{where}.request.url")
    return Entry(index, method, resource_type, fhir_id, version, query, resource, raw.get("fullUrl"),
                 request.get("ifNoneExist"), parse_etag(request.get("ifMatch"), f"{where}.request.ifMatch"))


def _patch_document(entry: Entry):
    binary = entry.resource
    if binary.get("contentType") != "application/json-patch+json":
        raise BadRequest("A PATCH entry carries a Binary with contentType application/json-patch+json",
                         expression=f"{entry.where}.resource.contentType")
    try:
        return parse_patch(json.loads(base64.b64decode(binary.get("data", ""), validate=True)))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"The Binary's data is not a base64 JSON Patch: {exc}",
                         expression=f"{entry.where}.resource.data") from exc


def _rewrite(node, mapping: dict[str, str], resolve_conditional) -> None:
    """Replace every reference to a Bundle-local fullUrl (or a conditional reference) in place."""
    for holder in reference_holders(node):
        value = holder["reference"]
        if value in mapping:
            holder["reference"] = mapping[value]
        elif CONDITIONAL_REFERENCE.match(value):
            holder["reference"] = resolve_conditional(value)


class TransactionProcessor:
    def __init__(self, ctx: FhirContext, conn, preference: str, auth: Authorization, *, all_or_nothing: bool = True,
                 lookups: Lookups | None = None):
        self.ctx = ctx
        self.conn = conn
        self.preference = preference
        self.auth = auth
        self.lookups = lookups or Lookups(ctx, auth)
        # A transaction checks references and deletions once every entry is written; a batch entry at once.
        self.writer = Writer(ctx, conn, DeferredChecks() if all_or_nothing else None, auth, lookups=self.lookups)
        self.known: set[tuple[str, str]] | None = None  # PUT targets known to exist (None: not looked up)
        self.resolved: dict[str, str] = {}

    def resolve_conditional(self, reference: str) -> str:
        if reference not in self.resolved:
            resource_type, statement = self.lookups.reference(reference)
            matches = self.ctx.repository.ids(self.conn, statement)
            if len(matches) != 1:
                raise (PreconditionFailed if matches else Unprocessable)(
                    f"Conditional reference '{reference}' matches {'several' if matches else 'no'} resources")
            self.resolved[reference] = f"{resource_type}/{matches[0]}"
        return self.resolved[reference]

    def assign_target(self, entry: Entry, mapping: dict[str, str]) -> None:
        """The ``Type/id`` a POST or PUT entry will write, recorded under its fullUrl."""
        if entry.method == "POST":
            new = new_id()
            if entry.if_none_exist:
                matches = self.writer.match(entry.resource_type, entry.if_none_exist, "ifNoneExist", "create")
                if len(matches) > 1:
                    raise PreconditionFailed(f"ifNoneExist '{entry.if_none_exist}' matches more than one "
                                             f"{entry.resource_type}", expression=f"{entry.where}.request.ifNoneExist")
                entry.existing = bool(matches)
                new = matches[0] if matches else new
            entry.target = f"{entry.resource_type}/{new}"
        elif entry.method == "PUT" and entry.fhir_id:
            entry.target = f"{entry.resource_type}/{entry.fhir_id}"
        elif entry.method == "PUT":
            matches = self.writer.match(entry.resource_type, entry.query, "request.url", "update")
            if len(matches) > 1:
                raise PreconditionFailed(f"The criteria '{entry.query}' match more than one {entry.resource_type}",
                                         expression=f"{entry.where}.request.url")
            chosen = matches[0] if matches else (entry.resource.get("id") or new_id())
            if not matches:
                check_id(chosen, f"{entry.where}.resource.id")
            entry.target = f"{entry.resource_type}/{chosen}"
        if entry.full_url and entry.target:
            if entry.full_url in mapping:
                raise BadRequest(f"fullUrl {entry.full_url} appears twice", expression=f"{entry.where}.fullUrl")
            mapping[entry.full_url] = entry.target

    def run(self, entries: list[Entry]) -> None:
        """Deletes first; then ids for what will be created (so conditional creates see the deletes),
        references rewritten; then POST, PUT/PATCH and GET/HEAD; then the deferred checks."""
        ordered = sorted(entries, key=lambda e: (_ORDER[e.method], e.index))
        puts = [(e.resource_type, e.fhir_id) for e in entries if e.method == "PUT" and e.fhir_id]
        self.known = self.ctx.repository.existing(self.conn, puts, include_deleted=True) if puts else set()
        deletes = [e for e in ordered if e.method == "DELETE"]
        for entry in deletes:
            self.step(entry, self.process)
        mapping: dict[str, str] = {}
        for entry in entries:
            self.step(entry, lambda e: self.assign_target(e, mapping))
        for entry in entries:
            if entry.resource is not None:
                self.step(entry, lambda e: _rewrite(e.resource, mapping, self.resolve_conditional))
        for entry in ordered[len(deletes):]:
            self.step(entry, self.process)
        self.writer.finish()

    def step(self, entry: Entry, action) -> None:
        self.writer.entry = entry.where
        try:
            result = action(entry)
        except FhirError as error:
            raise _located(error, entry.where) from error
        if isinstance(result, dict):
            entry.response = result

    def process(self, entry: Entry) -> dict:
        writer, target_id = self.writer, (entry.target or "").partition("/")[2]
        match entry.method:
            case "DELETE":
                result = writer.delete(entry.resource_type, entry.fhir_id, entry.if_match, entry.where) \
                    if entry.fhir_id else writer.conditional_delete(entry.resource_type, entry.query, entry.where)
                return {"response": {"status": _status(200 if result.record else 204)}}
            case "POST":
                if entry.existing:
                    record = self.ctx.repository.read(self.conn, entry.resource_type, target_id)
                    return self.written(WriteResult(record, 200, f"{record.reference} already exists"))
                return self.written(writer.create(entry.resource_type, entry.resource, fhir_id=target_id))
            case "PUT":
                body = {**entry.resource, "id": entry.resource.get("id") or target_id}
                probably_new = (self.known is not None and entry.fhir_id is not None
                                and (entry.resource_type, entry.fhir_id) not in self.known)
                return self.written(writer.update(entry.resource_type, target_id, body, entry.if_match,
                                                  probably_new=probably_new))
            case "PATCH":
                return self.written(writer.patch(entry.resource_type, entry.fhir_id, _patch_document(entry),
                                                 entry.if_match))
            case _:
                return read_entry(self.ctx, self.conn, entry, self.auth)

    def written(self, result: WriteResult) -> dict:
        record = result.record
        answer = {"response": {
            "status": _status(result.status),
            "location": f"{record.resource_type}/{record.fhir_id}/_history/{record.version_id}",
            "etag": etag(record.version_id),
            "lastModified": clock.as_instant(record.last_updated),
        }}
        body = shaped_body(result, self.preference)
        if isinstance(body, str):
            answer["resource"] = jsontext.Raw(body)  # the stored text, spliced in unparsed
        elif body is not None:
            answer["response"]["outcome"] = body
        return answer


def read_entry(ctx: FhirContext, conn, entry: Entry, auth: Authorization) -> dict:
    """GET/HEAD inside a Bundle: read, vread or search, of what ``auth`` may see."""
    visibility = auth.visibility(entry.interaction)
    if entry.fhir_id:
        if entry.version:
            if not entry.version.isdigit() or len(entry.version) > 9:
                raise NotFound(f"'{entry.version}' is not a version")
            record = ctx.repository.vread(conn, entry.resource_type, entry.fhir_id, int(entry.version),
                                          visibility=visibility)
        else:
            record = ctx.repository.read(conn, entry.resource_type, entry.fhir_id, visibility=visibility)
        answer = {"response": {"status": "200 OK", "etag": etag(record.version_id),
                               "lastModified": clock.as_instant(record.last_updated)}}
        if entry.method == "GET":
            answer["resource"] = jsontext.Raw(record.content)
        return answer
    params = parse_qsl(entry.query, keep_blank_values=True)
    criteria, _ = parse_criteria(ctx.search_parameters, entry.resource_type, params, strict=False)
    count = max(count_value(ctx, next((v for k, v in params if k == "_count"), None)), 1)
    page = ctx.repository.search(conn, entry.resource_type, criteria, count=count, visibility=visibility)
    result = bundle("searchset", [search_entry(ctx.base_url, r) for r in page.matches], {})
    return {"response": {"status": "200 OK"}, "resource": result}


def _located(error: FhirError, where: str) -> FhirError:
    """The same error, its issues pointing into the failing entry."""
    issues = [Issue(f"{where}: {i.diagnostics}", code=i.code, severity=i.severity,
                    expression=within_entry(where, i.expression)) for i in error.issues]
    return type(error)(issues[0].diagnostics, issues=issues, headers=error.headers)


def _batch_entry(ctx: FhirContext, auth: Authorization, index: int, raw, preference: str) -> dict:
    try:
        entry = _parse_entry(ctx, index, raw)
        auth.require(entry.resource_type, entry.interaction)
        with ctx.database.write() as conn:
            processor = TransactionProcessor(ctx, conn, preference, auth, all_or_nothing=False)
            processor.assign_target(entry, {})
            if entry.resource is not None:
                _rewrite(entry.resource, {}, processor.resolve_conditional)
            answer = processor.process(entry)
        ctx.committed(processor.writer.written)
        return answer
    except FhirError as error:
        located = _located(error, f"Bundle.entry[{index}]")
        return {"response": {"status": str(error.status), "outcome": operation_outcome(located.issues)}}


def _refuse_duplicates(entries: list[Entry]) -> None:
    """A transaction may not write one resource twice (the spec makes it an error)."""
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        if entry.method in ("PUT", "PATCH", "DELETE") and entry.fhir_id:
            key = (entry.resource_type, entry.fhir_id)
            if key in seen:
                raise BadRequest(f"{key[0]}/{key[1]} is written by entries {seen[key]} and {entry.index}",
                                 expression=f"{entry.where}.request.url")
            seen[key] = entry.index


def transaction(ctx: FhirContext, request: Request, auth: Authorization) -> FhirResponse:
    document = resource_body(request)
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base takes a Bundle", expression="resourceType")
    kind = document.get("type")
    if kind not in ("transaction", "batch"):
        raise BadRequest(f"Bundle.type must be transaction or batch, not '{kind}'", expression="Bundle.type")
    raw_entries = document.get("entry") or []
    if not isinstance(raw_entries, list):
        raise BadRequest("Bundle.entry must be a list", expression="Bundle.entry")
    maximum = ctx.settings.max_bundle_entries
    if len(raw_entries) > maximum:
        raise PayloadTooLarge(f"The {kind} has {len(raw_entries)} entries; this server takes at most {maximum} "
                              f"in one Bundle (the Bundle entry limit)", expression="Bundle.entry")
    preference = prefer_return(request)
    if kind == "batch":
        responses = [_batch_entry(ctx, auth, i, raw, preference) for i, raw in enumerate(raw_entries)]
        return FhirResponse(200, bundle("batch-response", responses, {}))
    entries = [_parse_entry(ctx, i, raw) for i, raw in enumerate(raw_entries)]
    _refuse_duplicates(entries)
    for entry in entries:
        _require(auth, entry)
    lookups = Lookups(ctx, auth)
    lookups.prepare(entries)  # before the write, which on SQLite holds the one writers' turn
    with ctx.database.write() as conn:
        processor = TransactionProcessor(ctx, conn, preference, auth, lookups=lookups)
        processor.run(entries)
    ctx.committed(processor.writer.written)
    return FhirResponse(200, bundle("transaction-response", [e.response for e in entries], {}))
