"""URL routing for the FHIR API: maps each path and method to its interaction.

Routes are registered on a flask-smorest Blueprint so they appear in the OpenAPI document
(``/api-docs/openapi.json``); every answer goes through the same renderer.

Every request needs a bearer token (``authorization.authenticate``, before any other work) except
the conformance reads (``GET metadata``, ``OperationDefinition/{id}``, ``SearchParameter/{id}``) and
CORS preflight ``OPTIONS``; the resulting ``Authorization`` is passed to the interaction. A GET looks
its token up in a read transaction that the read interactions (read, vread, search, history) then
read in: one transaction per request, not two.
"""

from __future__ import annotations

from contextlib import ExitStack

from flask import current_app, g, request
from flask_smorest import Blueprint

from fhirportal.errors import MethodNotAllowed, NotFound
from fhirportal.store.database import end_after_request

from . import capability
from .audit import RequestSeen
from .authorization import UNRESTRICTED, Authorization, authenticate
from .conformance import ConformanceResources
from .conformance_search import search as conformance_search_of
from .context import FhirContext
from .interactions import create, delete, history, patch, read, search, transaction, update
from .interactions.common import require_type
from .interactions.history import page_size
from .negotiation import is_pretty, render, response_format
from .response import FhirResponse
from .search_params import handling_is_strict


def context() -> FhirContext:
    return current_app.extensions["fhirportal"]


# Endpoints anyone may GET: what the server can do, never data.
CONFORMANCE_SEARCHES = ("OperationDefinition", "SearchParameter", "StructureDefinition")
PUBLIC_ENDPOINTS = frozenset({"fhir.metadata", "fhir.operation_definition", "fhir.search_parameter",
                              "fhir.structure_definition", *(f"fhir.search_{t}" for t in CONFORMANCE_SEARCHES)})


def is_public(request) -> bool:
    return request.method == "OPTIONS" or (request.method in ("GET", "HEAD") and request.endpoint in PUBLIC_ENDPOINTS)


def auth() -> Authorization:
    """The request's Authorization, established by the blueprint's first before_request."""
    return g.fhir_authorization


def reading():
    """The GET request's open read transaction (None for other methods)."""
    return g.get("fhir_connection")


def answer(result: FhirResponse):
    media_type = g.get("fhir_media_type") or response_format(request)
    return render(result, media_type, is_pretty(request))


def _operation(resource_type: str | None, fhir_id: str | None, name: str):
    ctx = context()
    level = "instance" if fhir_id else "type" if resource_type else "system"
    if resource_type:
        require_type(ctx, resource_type)
    operation = ctx.operations.resolve(name, request.method, level, resource_type)
    return answer(operation.handler(ctx, request, auth(), resource_type, fhir_id))


def build_blueprint(url_prefix: str, conformance: ConformanceResources, *, name: str = "fhir",
                    authorize: bool = True) -> Blueprint:
    """The FHIR API under ``url_prefix``. ``authorize=False`` (the benchmark's twin of the API,
    fhirportal/bench.py, never the real one): no token, no scope or compartment check, no access log."""
    blp = Blueprint(name, __name__, url_prefix=url_prefix, description="FHIR R4 REST API")

    @blp.before_request
    def _authenticate_first():
        if is_public(request):
            return
        ctx = context()
        if authorize and request.view_args and request.view_args.get("resource_type") == "AuditEvent":
            ctx.audit.written()  # this worker's queued accesses, before the read transaction starts
        conn = None
        if request.method in ("GET", "HEAD"):
            g.fhir_transaction = ExitStack()
            conn = g.fhir_connection = g.fhir_transaction.enter_context(ctx.database.read())
        g.fhir_authorization = authenticate(ctx.tokens, ctx.access_policy, request, conn) if authorize \
            else UNRESTRICTED

    @blp.after_request
    def _audit(response):
        """Every authorized request is journalled (who, which app, which patient, what, outcome)."""
        authorization = g.get("fhir_authorization")
        if authorization is not None and authorization.access is not None:
            _end_read_transaction(None)  # release the read snapshot before writing (SQLite)
            context().audit.record(RequestSeen(request.endpoint or "", request.method, request.view_args or {},
                                               request.query_string, response.status_code, authorization.access))
        return response

    @blp.teardown_request
    def _end_read_transaction(_error):
        """Ends the GET's read transaction. Teardown runs after the answer is made, where an error
        would become gunicorn's bare 500: a read transaction whose connection died (the database went
        away) has nothing to lose, so a failure to end it is logged, not raised."""
        transaction = g.pop("fhir_transaction", None)
        g.pop("fhir_connection", None)
        if transaction is None:
            return
        end_after_request(transaction, "a read transaction")

    @blp.before_request
    def _negotiate():
        g.fhir_media_type = response_format(request)  # 406 before any work is done

    @blp.route("", methods=["GET", "POST"], strict_slashes=False)
    def system_level():
        if request.method == "GET":
            return answer(search.system_search(context(), request, auth(), reading()))
        return answer(transaction.transaction(context(), request, auth()))

    @blp.route("/_search", methods=["POST"])
    def system_search():
        return answer(search.system_search(context(), request, auth()))

    @blp.route("/metadata", methods=["GET"])
    def metadata():
        return answer(FhirResponse(200, capability.capability_statement(context())))

    @blp.route("/_history", methods=["GET"])
    def system_history():
        return answer(history.history(context(), request, auth(), conn=reading()))

    @blp.route("/OperationDefinition/<fhir_id>", methods=["GET"])
    def operation_definition(fhir_id):
        return answer(FhirResponse(200, conformance.operation_definition(fhir_id)))

    @blp.route("/SearchParameter/<fhir_id>", methods=["GET"])
    def search_parameter(fhir_id):
        return answer(FhirResponse(200, conformance.search_parameter(fhir_id)))

    @blp.route("/StructureDefinition/<fhir_id>", methods=["GET"])
    def structure_definition(fhir_id):
        return answer(FhirResponse(200, conformance.structure_definition(fhir_id)))

    def conformance_search(resource_type: str):
        def search_them():
            ctx = context()
            params = list(request.args.items(multi=True))
            strict = handling_is_strict(request.headers.get("Prefer"), ctx.settings.search_handling)
            return answer(FhirResponse(200, conformance_search_of(
                conformance.all_of(resource_type), resource_type, params, ctx.base_url,
                page_size(ctx, request, params), strict=strict)))
        return search_them

    for resource_type in CONFORMANCE_SEARCHES:  # read-only and public, from memory
        blp.add_url_rule(f"/{resource_type}", f"search_{resource_type}", conformance_search(resource_type),
                         methods=["GET"])

    @blp.route("/<resource_type>", methods=["GET", "POST", "PUT", "DELETE"])
    def type_level(resource_type):
        if resource_type.startswith("$"):
            return _operation(None, None, resource_type[1:])
        ctx = context()
        match request.method:
            case "GET":
                return answer(search.search(ctx, request, auth(), resource_type, reading()))
            case "POST":
                return answer(create.create(ctx, request, auth(), resource_type))
            case "PUT":
                return answer(update.conditional_update(ctx, request, auth(), resource_type))
            case _:
                return answer(delete.conditional_delete(ctx, request, auth(), resource_type))

    @blp.route("/<resource_type>/_search", methods=["POST"])
    def type_search(resource_type):
        return answer(search.search(context(), request, auth(), resource_type))

    @blp.route("/<resource_type>/_history", methods=["GET"])
    def type_history(resource_type):
        return answer(history.history(context(), request, auth(), resource_type, conn=reading()))

    @blp.route("/<resource_type>/<fhir_id>", methods=["GET", "PUT", "PATCH", "DELETE", "POST"])
    def instance(resource_type, fhir_id):
        if fhir_id.startswith("$"):
            return _operation(resource_type, None, fhir_id[1:])
        ctx = context()
        match request.method:
            case "GET":
                return answer(read.read(ctx, request, auth(), resource_type, fhir_id, reading()))
            case "PUT":
                return answer(update.update(ctx, request, auth(), resource_type, fhir_id))
            case "PATCH":
                return answer(patch.patch(ctx, request, auth(), resource_type, fhir_id))
            case "DELETE":
                return answer(delete.delete(ctx, request, auth(), resource_type, fhir_id))
            case _:
                require_type(ctx, resource_type)
                raise MethodNotAllowed(f"POST is not allowed on {resource_type}/{fhir_id}; use PUT to update",
                                       headers={"Allow": "GET, PUT, PATCH, DELETE"})

    @blp.route("/<resource_type>/<fhir_id>/_history", methods=["GET"])
    def instance_history(resource_type, fhir_id):
        return answer(history.history(context(), request, auth(), resource_type, fhir_id, reading()))

    @blp.route("/<resource_type>/<fhir_id>/_history/<version>", methods=["GET"])
    def version_read(resource_type, fhir_id, version):
        return answer(read.vread(context(), request, auth(), resource_type, fhir_id, version, reading()))

    @blp.route("/<resource_type>/<fhir_id>/<operation>", methods=["GET", "POST"])
    def instance_operation(resource_type, fhir_id, operation):
        if not operation.startswith("$"):
            raise NotFound(f"No such endpoint: {resource_type}/{fhir_id}/{operation}")
        return _operation(resource_type, fhir_id, operation[1:])

    return blp
