"""The one place where failures become OperationOutcome responses."""

from __future__ import annotations

import logging

from flask import Flask, current_app
from werkzeug.exceptions import HTTPException

from fhirportal.errors import FhirError, Issue
from fhirportal.store.database import unavailable

from .response import FhirResponse

log = logging.getLogger(__name__)

_HTTP_ISSUE_CODES = {
    400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
    406: "not-supported", 409: "conflict", 410: "deleted", 412: "conflict", 413: "too-costly",
    415: "not-supported", 422: "processing", 429: "throttled",
}
RETRY_AFTER_SECONDS = 5  # what a 503 (the database is unreachable) asks the client to wait


def operation_outcome(issues: list[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [issue.to_fhir() for issue in issues]}


def information(message: str, code: str = "informational") -> dict:
    return operation_outcome([Issue(message, code=code, severity="information")])


def from_fhir_error(error: FhirError) -> FhirResponse:
    return FhirResponse(error.status, operation_outcome(error.issues), dict(error.headers))


def from_http_exception(error: HTTPException) -> FhirResponse:
    status = error.code or 500
    message = error.description or error.name
    if status == 404:
        message = "No such endpoint on this FHIR server (unknown resource type or path)"
    if status == 413:  # the body size limit (FHIRPORTAL_MAX_BODY_BYTES), or Flask's per-form-field one
        message = (f"The request body is larger than this server accepts: at most "
                   f"{current_app.config.get('MAX_CONTENT_LENGTH')} bytes in a body (the body size limit) and "
                   f"{current_app.config.get('MAX_FORM_MEMORY_SIZE')} bytes in one multipart form field")
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    issue = Issue(message, code=_HTTP_ISSUE_CODES.get(status, "exception"),
                  severity="error" if status < 500 else "fatal")
    return FhirResponse(status, operation_outcome([issue]), headers)


def database_unavailable() -> FhirResponse:
    """503: the database cannot be reached right now (nothing of the request was committed, unless the
    connection dropped during the commit itself); the client may try again after ``Retry-After``."""
    issue = Issue(f"The database cannot be reached at the moment; try again in {RETRY_AFTER_SECONDS} seconds",
                  code="transient", severity="error")
    return FhirResponse(503, operation_outcome([issue]), {"Retry-After": str(RETRY_AFTER_SECONDS)})


def register_error_handlers(app: Flask, render) -> None:
    """Turn every error into an OperationOutcome rendered like any other FHIR response."""

    @app.errorhandler(FhirError)
    def _fhir_error(error: FhirError):
        return render(from_fhir_error(error))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        return render(from_http_exception(error))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if unavailable(error):  # the database went away (or is locked past its timeout): no traceback per request
            log.warning("database unavailable: %s: %s", type(error).__name__, (str(error).splitlines() or [""])[0])
            return render(database_unavailable())
        log.exception("unhandled error")
        issue = Issue("Internal server error; it has been logged", code="exception", severity="fatal")
        return render(FhirResponse(500, operation_outcome([issue])))
