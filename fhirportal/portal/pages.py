"""The registration page a patient (or caregiver) opens from the invitation email.

Identity is proved with date of birth + PIN; then the person chooses a user name and password and
the portal account (a SMART login) exists. Error messages never say which of date of birth or PIN
was wrong; five wrong answers lock the invitation (counted in the database). The form needs no
JavaScript and is CSRF-protected (a double-submit cookie).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, make_response, render_template, request

from fhirportal.fhir.audit import Access
from fhirportal.smart.routes import HTML_SECURITY_HEADERS
from fhirportal.smart.secrets import new_secret

from .invitations import Enrollment, Invitation
from .passwords import problem

CSRF_COOKIE = "fhirportal_register_csrf"
ENDED = {
    "locked": "Too many wrong answers: this invitation is locked. Ask your practice to send it again.",
    "expired": "This registration link has expired — ask your practice to enroll you again.",
    "cancelled": "This registration link has expired — ask your practice to enroll you again.",
    "registered": "This registration link was already used. Sign in with your user name and password.",
    "revoked": "Portal access for this record was ended by your practice.",
}
SUPERSEDED = "This registration link has expired — ask your practice to enroll you again."
WRONG_ANSWER = "The date of birth or the PIN is not right. Check them and try again."

bp = Blueprint("portal", __name__, template_folder="templates")


def _enrollment() -> Enrollment:
    return current_app.extensions["portal"]


def _page(template: str, status: int = 200, **values) -> Response:
    response = make_response(render_template(template, **values), status)
    response.headers.update(HTML_SECURITY_HEADERS)
    return response


def _message(title: str, message: str, status: int) -> Response:
    return _page("portal/message.html", status, title=title, message=message)


def _form(invitation: Invitation, error: str | None = None, status: int = 200) -> Response:
    csrf = new_secret(24)
    response = _page("portal/register.html", status, action=request.full_path.rstrip("?"), csrf_token=csrf,
                     error=error, username=request.form.get("username") or invitation.email or "")
    response.set_cookie(CSRF_COOKIE, csrf, max_age=1800, httponly=True, samesite="Lax", path="/portal",
                        secure=request.is_secure)
    return response


def _journal(invitation: Invitation, outcome: int, account_id: int | None = None) -> None:
    current_app.extensions["fhirportal"].audit.record(Access(
        action="portal-register", resource_type=invitation.subject_type, query=invitation.subject, outcome=outcome,
        client_id=None, account_id=account_id, fhir_user=invitation.subject, patient_id=invitation.patient_id))


@bp.route("/portal/register", methods=["GET", "POST"])
def register():
    token = request.args.get("t", "")
    enrollment = _enrollment()
    with enrollment.database.read() as conn:
        invitation = enrollment.by_link(conn, token) if token else None
    if invitation is None:
        return _message("Registration link expired", SUPERSEDED, 410)
    if invitation.state != "invited":
        return _message("Registration not possible", ENDED[invitation.state], 410)
    if request.method == "GET":
        return _form(invitation)

    sent = request.form.get("csrf_token", "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        return _form(invitation, "The form expired; please fill it in again.", 400)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or len(username) > 200:
        return _form(invitation, "Choose a user name.", 400)
    if password != request.form.get("password_again", ""):
        return _form(invitation, "The two passwords differ.", 400)
    refused = problem(password, username)
    if refused:
        return _form(invitation, refused, 400)
    accounts = current_app.extensions["smart"].accounts
    if accounts.by_username(username) is not None:
        return _form(invitation, "That user name is taken; choose another.", 400)

    verified = enrollment.verify_pin(token, request.form.get("birth_date", ""), request.form.get("pin", ""))
    if verified is None:
        _journal(invitation, 401)
        with enrollment.database.read() as conn:
            now = enrollment.by_link(conn, token)
        if now is None or now.state != "invited":
            return _message("Registration not possible", ENDED.get(now.state if now else "expired", SUPERSEDED), 410)
        return _form(invitation, WRONG_ANSWER, 400)
    account = accounts.create(username, password, kind="patient", fhir_user=verified.subject,
                              patients=(verified.patient_id,))
    enrollment.complete(verified, account.id, "pin")
    _journal(verified, 200, account.id)
    return _message("You are registered",
                    f"Your portal account '{username}' is ready. Sign in from your health app, or see the apps "
                    "connected to your record at /auth/apps.", 201)
