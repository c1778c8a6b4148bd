"""Sharing results with the patient: ``Observation/{id}/$portal-share`` and ``$portal-withhold``
(also on DiagnosticReport).

What a patient-context token may see of an Observation is decided by two labels
(``fhirportal/fhir/authorization.py``): the portal-sharing tag (lab results need it) and the HL7
RefrainPolicy security label NOPAT ("no disclosure to patient, family or caregivers"), which hides
any resource. These operations set and clear them for practice staff, and record who did it and why
as a Provenance that targets the new version.
"""

from __future__ import annotations

from flask import Request

from fhirportal.errors import BadRequest, Forbidden
from fhirportal.fhir.authorization import Authorization
from fhirportal.fhir.context import FhirContext
from fhirportal.fhir.negotiation import resource_body
from fhirportal.fhir.response import FhirResponse
from fhirportal.smart.accounts import AccountStore
from fhirportal.store import clock

SHARING_TAG = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "code": "shared-with-patient",
               "display": "Shared with patient"}
NOPAT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPAT",
         "display": "no disclosure to patient, family or caregivers without attending provider's authorization"}
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def _without(codings: list, coding: dict) -> list:
    return [c for c in codings if not (c.get("system") == coding["system"] and c.get("code") == coding["code"])]


def _reason(request: Request) -> str | None:
    if not request.get_data(cache=True).strip():
        return None
    body = resource_body(request)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("The body must be a Parameters resource", expression="Parameters")
    for parameter in body.get("parameter", []) or []:
        if isinstance(parameter, dict) and parameter.get("name") == "reason":
            value = parameter.get("valueString")
            if not isinstance(value, str) or len(value) > 1000:
                raise BadRequest("'reason' needs a valueString (1000 characters at most)",
                                 expression="Parameters.parameter.reason")
            return value
    return None


class Sharing:
    def __init__(self, ctx: FhirContext, accounts: AccountStore):
        self.ctx = ctx
        self.accounts = accounts

    def handlers(self) -> dict:
        return {"Observation-portal-share": (self.share, ("POST",)),
                "Observation-portal-withhold": (self.withhold, ("POST",))}

    def share(self, ctx, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
        return self._label(request, auth, resource_type, fhir_id, shared=True)

    def withhold(self, ctx, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
        return self._label(request, auth, resource_type, fhir_id, shared=False)

    def _staff(self, auth: Authorization) -> str:
        access = auth.access
        if access is None or access.context == "system":
            return f"app {access.client_id}" if access else "fhirportal"
        account = self.accounts.get(access.account_id) if access.account_id is not None else None
        if access.context != "user" or account is None or account.kind != "staff" or not account.active:
            raise Forbidden("Only practice staff (a user token) or the EHR (a system token) share or withhold results")
        return access.fhir_user or account.username

    def _label(self, request: Request, auth: Authorization, resource_type: str, fhir_id: str, *,
               shared: bool) -> FhirResponse:
        who = self._staff(auth)
        auth.require(resource_type, "update")
        reason = _reason(request)
        with self.ctx.database.write() as conn:
            current = self.ctx.repository.read(conn, resource_type, fhir_id, visibility=auth.visibility("update"))
            body = dict(current.body)
            meta = dict(body.get("meta", {}))
            tags, security = _without(meta.get("tag", []), SHARING_TAG), _without(meta.get("security", []), NOPAT)
            if shared:
                tags.append(SHARING_TAG)
            else:
                security.append(NOPAT)
            meta.update(tag=tags, security=security)
            for key in ("tag", "security"):
                if not meta[key]:
                    del meta[key]
            body["meta"] = meta
            record, _ = self.ctx.repository.update(conn, resource_type, fhir_id, body)
            agent = {"who": {"reference": who}} if "/" in who else {"who": {"display": who}}
            self.ctx.repository.create(conn, {
                "resourceType": "Provenance",
                "target": [{"reference": f"{resource_type}/{fhir_id}/_history/{record.version_id}"}],
                "recorded": clock.as_instant(clock.now()),
                "activity": {"coding": [{"system": DATA_OPERATION, "code": "UPDATE", "display": "revise"}],
                             "text": "shared with the patient" if shared else "withheld from the patient"},
                "agent": [agent],
                **({"reason": [{"text": reason}]} if reason else {}),
            })
        return FhirResponse(200, record.content)
