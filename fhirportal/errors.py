"""Typed errors. Anything a client can cause is raised as one of these and turned into an
OperationOutcome in exactly one place (``fhirportal.fhir.outcome``).

The store raises them too (not found, gone, version conflict), so this module sits below every
layer and imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what went wrong and where (a FHIRPath ``expression``)."""

    diagnostics: str
    code: str = "invalid"
    severity: str = "error"
    expression: str | None = None

    def to_fhir(self) -> dict:
        issue = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


class FhirError(Exception):
    """Base of every client-facing error: an HTTP status and one or more issues."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, expression: str | None = None, issues: list[Issue] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.issues = issues or [Issue(message, code=self.code, expression=expression)]
        self.headers = headers or {}


class BadRequest(FhirError):
    status, code = 400, "invalid"


class Unauthorized(FhirError):
    status, code = 401, "login"


class Forbidden(FhirError):
    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class NotAcceptable(FhirError):
    status, code = 406, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class Gone(FhirError):
    status, code = 410, "deleted"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class PayloadTooLarge(FhirError):
    status, code = 413, "too-costly"


class UriTooLong(FhirError):
    status, code = 414, "too-costly"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class Unprocessable(FhirError):
    status, code = 422, "processing"


class NotSupported(FhirError):
    """Understood, but it needs content or a capability this server does not have (e.g. expanding a
    value set over SNOMED CT): the issue says what is missing."""

    status, code = 422, "not-supported"


class TooCostly(FhirError):
    """Understood, but the answer would be larger than this server gives at once."""

    status, code = 422, "too-costly"


class TooManyRequests(FhirError):
    status, code = 429, "throttled"
