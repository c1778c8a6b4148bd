"""The one place where failures become OperationOutcome responses."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.exceptions import HTTPException

from fhirportal.errors import FhirError, Issue

from .response import FhirResponse

log = logging.getLogger(__name__)

_HTTP_ISSUE_CODES = {
    400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
    406: "not-supported", 409: "conflict", 410: "deleted", 412: "conflict", 413: "too-costly",
    415: "not-supported", 422: "processing", 429: "throttled",
}


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
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    issue = Issue(message, code=_HTTP_ISSUE_CODES.get(status, "exception"),
                  severity="error" if status < 500 else "fatal")
    return FhirResponse(status, operation_outcome([issue]), headers)


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
        log.exception("unhandled error")
        issue = Issue("Internal server error; it has been logged", code="exception", severity="fatal")
        return render(FhirResponse(500, operation_outcome([issue])))
