"""The enrollment operations on ``Patient/{id}`` and ``RelatedPerson/{id}``: ``$portal-invite``,
``$portal-status``, ``$portal-resend``, ``$portal-cancel``, ``$portal-revoke`` (OperationDefinitions in
``capability/operations/``). Parameters in, Parameters out; refusals are OperationOutcomes.

Who may call them: practice staff with a user token whose account may invite (role ``invite`` or
``admin``), or the EHR with a backend-services (system/) token; ``$portal-status`` any staff member,
the access code only to those allowed to invite, every read of it journalled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Request

from fhirportal.errors import BadRequest, Forbidden
from fhirportal.fhir.audit import Access
from fhirportal.fhir.authorization import Authorization
from fhirportal.fhir.context import FhirContext
from fhirportal.fhir.negotiation import resource_body
from fhirportal.fhir.response import FhirResponse
from fhirportal.smart.accounts import AccountStore
from fhirportal.store import clock

from .invitations import Enrollment, Invitation, Issued

INVITING_ROLES = frozenset({"invite", "admin"})
SUBJECT_TYPES = ("Patient", "RelatedPerson")


@dataclass(frozen=True)
class Caller:
    who: str | None  # fhirUser, or "app <client id>"
    may_invite: bool


def _instant(moment) -> str | None:
    return clock.as_instant(clock.ensure_utc(moment)) if moment else None


def _parameters(**values) -> dict:
    kinds = {"status": "valueCode", "email": "valueString", "phone": "valueString", "invited": "valueDateTime",
             "sent": "valueDateTime", "expires": "valueDateTime", "ended": "valueDateTime",
             "failedAttempts": "valueInteger", "deliveryError": "valueString", "accessCode": "valueString",
             "invitation": "valueReference", "account": "valueReference"}
    parameters = []
    for name, value in values.items():
        if value is None:
            continue
        if kinds[name] == "valueReference":
            value = {"reference": value}
        parameters.append({"name": name, kinds[name]: value})
    return {"resourceType": "Parameters", "parameter": parameters}


def _inputs(request: Request) -> dict[str, str]:
    """``email`` / ``phone`` from a Parameters body (an empty body is fine)."""
    if not request.get_data(cache=True).strip():
        return {}
    body = resource_body(request)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("The body must be a Parameters resource", expression="Parameters")
    values = {}
    for parameter in body.get("parameter", []) or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name in ("email", "phone"):
            value = parameter.get("valueString")
            if not isinstance(value, str) or not value.strip() or len(value) > 320:
                raise BadRequest(f"Parameter '{name}' needs a valueString", expression=f"Parameters.parameter.{name}")
            values[name] = value.strip()
    if "email" in values and ("@" not in values["email"] or " " in values["email"]):
        raise BadRequest(f"'{values['email']}' is not an email address", expression="Parameters.parameter.email")
    return values


def invitation_email(invitation: Invitation, link: str, *, pin_handed_over: bool = True) -> str:
    """The invitation email's body. ``pin_handed_over`` false (an auto-invite: nobody gave the patient
    the PIN) points the patient to the phone option."""
    body = (f"Hello,\n\nYour practice invites you to its patient portal, where you can see your medications, "
            f"allergies, immunizations, conditions, appointments and the lab results your practice shares.\n\n"
            f"Register here (the link works once, until {_instant(invitation.expires_at)[:10]}):\n{link}\n\n")
    if pin_handed_over:
        return body + ("You will need your date of birth and the PIN (access code) your practice gave you, or, "
                       "without a PIN, the phone number your practice has on file: the page can send a security "
                       "code to it.\n")
    return body + ("You will need your date of birth and the phone number your practice has on file: on the page, "
                   "choose \"I have no PIN: send a code to my phone\" and we will text a security code to that "
                   "phone. (If you would rather use a PIN, your practice can tell you your access code.)\n")


INVITATION_SUBJECT = "Your patient portal invitation"


def send_invitation(enrollment: Enrollment, notifier, link: str, issued: Issued, *,
                    pin_handed_over: bool = True) -> Invitation:
    """Email the registration link of a new or resent invitation (never the PIN), record whether it was
    delivered, and return the invitation as it now stands."""
    invitation = issued.invitation
    body = invitation_email(invitation, link, pin_handed_over=pin_handed_over)
    delivery = notifier.send_email(invitation.email, INVITATION_SUBJECT, body)
    return enrollment.record_delivery(invitation, None if delivery.ok else (delivery.error or "not delivered"))


class PortalOperations:
    def __init__(self, ctx: FhirContext, enrollment: Enrollment, accounts: AccountStore, notifier, registration_url):
        self.ctx = ctx
        self.enrollment = enrollment
        self.accounts = accounts
        self.notifier = notifier
        self.registration_url = registration_url  # link token -> URL of the registration page

    def handlers(self) -> dict[str, tuple[Callable, tuple[str, ...]]]:
        """Handlers by OperationDefinition id, as the app factory registers them."""
        return {
            "Patient-portal-invite": (self.invite, ("POST",)),
            "Patient-portal-status": (self.status, ("GET", "POST")),
            "Patient-portal-resend": (self.resend, ("POST",)),
            "Patient-portal-cancel": (self.cancel, ("POST",)),
            "Patient-portal-revoke": (self.revoke, ("POST",)),
        }

    # ------------------------------------------------------------------ who is calling
    def _caller(self, auth: Authorization, *, manage: bool) -> Caller:
        access = auth.access
        if access is None or access.context == "system":
            return Caller(f"app {access.client_id}" if access else None, True)
        account = self.accounts.get(access.account_id) if access.account_id is not None else None
        if access.context != "user" or account is None or account.kind != "staff" or not account.active:
            raise Forbidden("Portal enrollment is for practice staff (a user token) or the EHR (a system token)")
        may_invite = bool(INVITING_ROLES & account.roles)
        if manage and not may_invite:
            raise Forbidden("This user may not enroll patients in the portal: an administrator can allow it in "
                            "the practice's PHR invite settings")
        return Caller(access.fhir_user or account.username, may_invite)

    def _subject(self, resource_type: str, fhir_id: str | None) -> tuple[str, str]:
        if resource_type not in SUBJECT_TYPES or not fhir_id:
            raise BadRequest("Portal operations run on Patient/{id} or RelatedPerson/{id}")
        return resource_type, fhir_id

    def _journal(self, auth: Authorization, action: str, invitation: Invitation, outcome: int = 200) -> None:
        access = auth.access
        self.ctx.audit.record(Access(
            action=action, resource_type=invitation.subject_type, query=invitation.subject, outcome=outcome,
            client_id=access.client_id if access else None, account_id=access.account_id if access else None,
            fhir_user=access.fhir_user if access else None, patient_id=invitation.patient_id))

    def _send(self, issued: Issued) -> Invitation:
        return send_invitation(self.enrollment, self.notifier, self.registration_url(issued.link_token), issued)

    def _queue_in(self, conn, issued: Issued) -> str | None:
        """The invitation's email queued in the outbox, within the invitation's own transaction."""
        body = invitation_email(issued.invitation, self.registration_url(issued.link_token))
        self.notifier.queue_email(conn, issued.invitation.email, INVITATION_SUBJECT, body)
        return None

    def _issue(self, issue: Callable[..., Issued], *args, **kwargs) -> tuple[Issued, Invitation]:
        """Issue (``Enrollment.invite`` or ``resend``) and email the link: when the email only goes to the
        outbox (no SMTP server), in the same transaction (one write, not three); else sent after the
        commit and its outcome recorded."""
        if self.notifier.queues_email:
            issued = issue(*args, deliver=self._queue_in, **kwargs)
            return issued, issued.invitation
        issued = issue(*args, **kwargs)
        return issued, self._send(issued)

    def _answer(self, invitation: Invitation | None, *, access_code: str | None = None) -> FhirResponse:
        if invitation is None:
            return FhirResponse(200, _parameters(status="not-invited"))
        return FhirResponse(200, _parameters(
            status=invitation.state, invitation=f"Task/{invitation.task_id}", account=f"Person/{invitation.person_id}",
            email=invitation.email, phone=invitation.phone, invited=_instant(invitation.created),
            sent=_instant(invitation.sent), expires=_instant(invitation.expires_at) if invitation.is_open else None,
            ended=_instant(invitation.ended), failedAttempts=invitation.failed_attempts,
            deliveryError=invitation.delivery_error, accessCode=access_code))

    # ------------------------------------------------------------------ the operations
    def invite(self, ctx, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
        subject_type, subject_id = self._subject(resource_type, fhir_id)
        caller = self._caller(auth, manage=True)
        inputs = _inputs(request)
        issued, invitation = self._issue(self.enrollment.invite, subject_type, subject_id, email=inputs.get("email"),
                                         phone=inputs.get("phone"), requested_by=caller.who)
        self._journal(auth, "portal-invite", issued.invitation)
        return self._answer(invitation, access_code=issued.pin)

    def status(self, ctx, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
        subject_type, subject_id = self._subject(resource_type, fhir_id)
        caller = self._caller(auth, manage=False)
        with self.ctx.database.read() as conn:
            self.ctx.repository.read(conn, subject_type, subject_id)  # 404 for an unknown subject
            invitation = self.enrollment.latest(conn, subject_type, subject_id)
        code = None
        if invitation is not None and invitation.is_open and caller.may_invite:
            code = self.enrollment.access_code(invitation)
            self._journal(auth, "portal-access-code", invitation)
        return self._answer(invitation, access_code=code)

    def resend(self, ctx, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
        subject_type, subject_id = self._subject(resource_type, fhir_id)
        self._caller(auth, manage=True)
        issued, invitation = self._issue(self.enrollment.resend, subject_type, subject_id)
        self._journal(auth, "portal-resend", issued.invitation)
        return self._answer(invitation, access_code=issued.pin)

    def cancel(self, ctx, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
        subject_type, subject_id = self._subject(resource_type, fhir_id)
        self._caller(auth, manage=True)
        invitation = self.enrollment.cancel(subject_type, subject_id)
        self._journal(auth, "portal-cancel", invitation)
        return self._answer(invitation)

    def revoke(self, ctx, request: Request, auth: Authorization, resource_type: str, fhir_id: str) -> FhirResponse:
        subject_type, subject_id = self._subject(resource_type, fhir_id)
        self._caller(auth, manage=True)
        invitation = self.enrollment.revoke(subject_type, subject_id)
        self._journal(auth, "portal-revoke", invitation)
        return self._answer(invitation)
