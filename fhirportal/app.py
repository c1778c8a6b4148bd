"""The application factory: wires settings, storage, the FHIR layer and error handling."""

from __future__ import annotations

import logging
import threading

from flask import Flask, request
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from . import health, openapi
from .bulk import export as export_operation
from .cors import install_cors
from .fhir import conformance
from .fhir.authorization import patient_marks
from .fhir.context import FhirContext
from .fhir.negotiation import render_error
from .fhir.operations import Operation, OperationRegistry
from .fhir.operations import everything as everything_operation
from .fhir.operations import expand as expand_operation
from .fhir.operations import lookup as lookup_operation
from .fhir.operations import subsumes as subsumes_operation
from .fhir.operations import validate as validate_operation
from .fhir.operations import validate_code as validate_code_operation
from .fhir.outcome import register_error_handlers
from .fhir.resource_types import SUPPORTED_TYPES
from .fhir.routes import build_blueprint
from .fhir.terminology import routes as terminology_routes
from .fhir.validation import ResourceValidator
from .observability import logs, metrics
from .observability import request_id as request_ids
from .settings import Settings
from .smart import account_pages  # noqa: F401  (its routes join the SMART blueprint)
from .smart import routes as smart_routes
from .smart.server import SmartServer, build_authorization_server
from .smart.tokens import TokenStore
from .store import journal
from .store.database import Database, unavailable
from .store.index_state import IndexState
from .store.indexing import IndexExtractor, SearchParameterRegistry
from .store.marks import Marker
from .store.repository import ResourceRepository
from .store.search import aliases as search_aliases

# Operation handlers by OperationDefinition id (the portal's are added by ``install_portal``); the
# app refuses to start with a definition that has no handler.
OPERATION_HANDLERS = {
    "Resource-validate": (validate_operation.validate, ("POST",)),
    "Patient-everything": (everything_operation.everything, ("GET", "POST")),
    "export": (export_operation.system_export, ("GET",)),
    "Patient-export": (export_operation.patient_export, ("GET",)),
    "Group-export": (export_operation.group_export, ("GET",)),
    "ValueSet-expand": (expand_operation.expand, ("GET", "POST")),
    "ValueSet-validate-code": (validate_code_operation.valueset_validate_code, ("GET", "POST")),
    "CodeSystem-validate-code": (validate_code_operation.codesystem_validate_code, ("GET", "POST")),
    "CodeSystem-lookup": (lookup_operation.lookup, ("GET", "POST")),
    "CodeSystem-subsumes": (subsumes_operation.subsumes, ("GET", "POST")),
}


def register_operations(registry: OperationRegistry, definitions: list[dict], handlers: dict, *,
                        complete: bool = False) -> OperationRegistry:
    for definition in definitions:
        if definition["id"] in handlers:
            handler, methods = handlers[definition["id"]]
            registry.register(Operation(definition["code"], definition, handler, methods))
        elif complete:
            raise RuntimeError(f"OperationDefinition {definition['id']} has no handler")
    return registry


def build_context(settings: Settings, database: Database | None = None) -> FhirContext:
    database = database or Database(settings.database_url, pooler=settings.database_pooler)
    registry = SearchParameterRegistry(SUPPORTED_TYPES, conformance.custom_search_parameters())
    extractor = IndexExtractor(registry, settings.base_url)
    marker = Marker(patient_marks(registry))
    registry.readiness = IndexState(database, registry, marker)
    return FhirContext(
        settings=settings,
        database=database,
        repository=ResourceRepository(database, extractor, marker),
        validator=ResourceValidator(SUPPORTED_TYPES, settings.base_url, settings.validate_references),
        search_parameters=registry,
        tokens=TokenStore(database, SUPPORTED_TYPES),
        operations=register_operations(OperationRegistry(), conformance.operation_definitions(), OPERATION_HANDLERS),
    )


# Browser apps call these from their own origin with a bearer token (no cookies): any origin may.
CORS_PATHS = frozenset({"/auth/token", "/auth/revoke", "/auth/introspect", "/auth/register", "/auth/jwks",
                        "/auth/smart-style.json"})


def build_smart(ctx: FhirContext) -> SmartServer:
    return SmartServer(ctx.settings, ctx.database, ctx.tokens, frozenset(SUPPORTED_TYPES),
                       patient_types=ctx.access_policy.patient_types)


def install_authorization_server(app: Flask, ctx: FhirContext) -> None:
    # authlib logs issued tokens at DEBUG: never let a debug configuration write them to a log.
    logging.getLogger("authlib").setLevel(logging.INFO)
    smart = build_smart(ctx)
    app.extensions["smart"] = smart
    app.extensions["smart_authorization_server"] = build_authorization_server(app, smart)
    app.register_blueprint(smart_routes.bp)
    app.register_blueprint(smart_routes.discovery_blueprint("fhir_discovery", ctx.settings.base_path))
    app.register_blueprint(smart_routes.discovery_blueprint("root_discovery", ""))
    install_cors(app, (ctx.settings.base_path + "/", "/.well-known/"), CORS_PATHS | {ctx.settings.base_path})


def install_portal(app: Flask, ctx: FhirContext) -> None:
    from .portal import pages, password_reset
    from .portal.auto_invite import AutoInviter
    from .portal.invitations import Enrollment
    from .portal.notify import Notifier
    from .portal.operations import PortalOperations
    from .portal.password_reset import PasswordResets
    from .portal.pins import PinVault
    from .portal.settings_api import install as install_phr_settings
    from .portal.sharing import Sharing

    smart = app.extensions["smart"]
    notifier = Notifier(ctx.settings, ctx.database)
    enrollment = Enrollment(ctx.database, ctx.repository, smart.accounts, ctx.tokens,
                            PinVault(ctx.settings.secret_keys), ctx.settings.invitation_days, notifier=notifier)

    def registration_url(token: str) -> str:
        return smart.url(f"/portal/register?t={token}")

    operations = PortalOperations(ctx, enrollment, smart.accounts, notifier, registration_url)
    register_operations(ctx.operations, conformance.operation_definitions(),
                        {**OPERATION_HANDLERS, **operations.handlers(), **Sharing(ctx, smart.accounts).handlers()},
                        complete=True)
    app.extensions["portal"] = enrollment
    app.register_blueprint(pages.bp)
    app.extensions["password_resets"] = PasswordResets(
        ctx, smart.accounts, ctx.tokens, notifier, ctx.settings.practice_name,
        lambda token: smart.url(f"/portal/reset-password?t={token}"))
    app.register_blueprint(password_reset.bp)
    phr_settings = install_phr_settings(app, ctx, smart.accounts)
    # Signing a chart note may invite the patient: after the write commits, never failing it.
    auto_inviter = AutoInviter(ctx, enrollment, smart.accounts, phr_settings, notifier, registration_url)
    ctx.after_commit.append(auto_inviter.on_commit)
    app.extensions["portal_auto_invite"] = auto_inviter
    # A message from the practice: the patient (and their caregivers) get an email without its contents.
    from .messages.notify import MessageNotifier

    message_notifier = MessageNotifier(ctx, notifier, smart.url("/portal/messages"))
    ctx.after_commit.append(message_notifier.on_commit)
    # An appointment request answered by the practice (booked or declined): the patient is emailed.
    from .scheduling.answers import AnswerNotifier
    answers = AnswerNotifier(ctx, notifier, ctx.settings.practice_name, smart.url("/portal/appointments"))
    ctx.after_commit.append(answers.on_commit)


def install_subscriptions(app: Flask, ctx: FhirContext) -> None:
    """Subscriptions (rest-hook): matched after each committed write, delivered by this process's thread
    unless ``FHIRPORTAL_SUBSCRIPTION_WORKER`` is off (then by other processes')."""
    from . import subscriptions

    installed = subscriptions.install(ctx, start=ctx.settings.subscription_worker)
    app.extensions["subscriptions"] = installed
    # rows a restart left: delivered once the node serves (an in-memory database outlives no restart, and its
    # one shared connection must not meet a second thread on every first request)
    if ctx.settings.subscription_worker and not ctx.database.in_memory:
        app.before_request(installed.worker.check)


def install_web(app: Flask, ctx: FhirContext) -> None:
    """The patient portal's pages (``fhirportal.web``): a first-party SMART app of this server, registered
    here (and again whenever it is found missing), with its browser sessions in the store."""
    from . import web
    from .store.web_sessions import WebSessionStore

    smart = app.extensions["smart"]
    metadata = web.Portal.client_metadata("The patient portal", smart.origin)
    smart.first_party = frozenset({web.CLIENT_ID})

    def ensure_client() -> None:
        smart.clients.ensure(web.CLIENT_ID, metadata)

    web.install(app, origin=smart.origin, base_path=ctx.settings.base_path,
                session_store=WebSessionStore(ctx.database), ensure_client=ensure_client,
                cancel_hours=ctx.settings.appointment_cancel_hours)
    app.context_processor(lambda: {"practice_name": ctx.settings.practice_name})
    try:
        ensure_client()
    except Exception as exc:  # noqa: BLE001  (no schema yet, or the database is away: at the first sign-in)
        logging.getLogger(__name__).info("the portal's client is registered at the first sign-in (%s)",
                                         type(exc).__name__)


def prepare_database(ctx: FhirContext) -> None:
    """The schema at the newest revision (or ``OutdatedSchema``), and this version's search-parameter
    definitions recorded (those whose index is incomplete are pending until reindexed). Everything
    that opens a database to serve or write resources calls this first."""
    ctx.database.create_schema()
    journal.ensure_partitions(ctx.database)  # PostgreSQL: the access log's months ahead
    pending = ctx.search_parameters.readiness.reconcile()
    if pending:
        shown = ", ".join(f"{t}.{c}" for t, c in sorted(pending)[:12]) + (", …" if len(pending) > 12 else "")
        logging.getLogger(__name__).warning(
            "%d search parameters are pending (defined or changed since their resources were written; not "
            "advertised or searched until reindexed): %s. Run `fhirportal reindex`.", len(pending), shown)


def _create_schema(app: Flask, ctx: FhirContext) -> None:
    """Prepare the database now; if it cannot be reached (a worker started during an outage), start
    anyway, answer 503 and prepare it before the first request once it answers: a worker that failed
    to boot would make gunicorn stop the whole server."""
    try:
        prepare_database(ctx)
        return
    except Exception as exc:
        if not unavailable(exc):
            raise
        logging.getLogger(__name__).warning("the database is unavailable at start-up (%s); serving 503 until "
                                            "it answers", type(exc).__name__)
    lock = threading.Lock()
    created = False

    @app.before_request
    def _schema_once_the_database_answers():
        nonlocal created
        if request.blueprint == "health":  # liveness and readiness answer for themselves
            return
        if not created:
            with lock:
                if not created:
                    prepare_database(ctx)  # raises while unavailable: a 503
                    created = True


def create_app(settings: Settings | None = None, *, create_schema: bool = True) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    # "Patient//0" (an id of "/0", sent as %2F0) is no route: never a redirect to another resource's URL
    app.url_map.merge_slashes = False
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="fhirportal FHIR R4 API",
        API_VERSION="0.1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api-docs",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
    )
    if settings.proxy_hops > 0:  # the client's address from X-Forwarded-For, as many hops back as are trusted
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)
    logs.install(settings.log_format)
    request_ids.install(app, settings.trust_request_id)  # first: every hook after it (and its log lines) has the id
    logs.install_request_lines(app)
    metrics.install(app, settings.metrics_token, settings.metrics_multiprocess_dir)
    ctx = build_context(settings)
    app.before_request(search_aliases.begin)  # first: every statement of the request numbers its aliases
    app.teardown_request(lambda _exc: search_aliases.end())
    if create_schema:
        _create_schema(app, ctx)
    app.extensions["fhirportal"] = ctx
    if settings.metrics_token:
        metrics.watch(app, ctx)
    api = Api(app)
    api.DEFAULT_ERROR_RESPONSE_NAME = None  # no generic error schema: fhirportal.openapi documents each error
    conformance_resources = conformance.ConformanceResources(ctx.search_parameters, conformance.operation_definitions())
    api.register_blueprint(build_blueprint(settings.base_path, conformance_resources))
    app.register_blueprint(health.build_blueprint(ctx.database))
    app.register_blueprint(terminology_routes.build_blueprint(settings.base_path))
    register_error_handlers(app, render_error)
    install_authorization_server(app, ctx)
    install_portal(app, ctx)
    install_subscriptions(app, ctx)
    install_web(app, ctx)
    app.register_blueprint(export_operation.build_blueprint(settings.base_path))
    openapi.install(api, settings.base_path)  # after every Blueprint: documents the whole HTTP surface
    if settings.benchmark_routes:
        from .bench import benchmark_blueprint, open_api_blueprint

        app.register_blueprint(benchmark_blueprint(ctx.database))
        app.register_blueprint(open_api_blueprint(conformance_resources))
    return app
