"""The registration page a patient (or caregiver) opens from the invitation email.

Identity is proved with date of birth + PIN, or, without a PIN, with date of birth + the phone
number on file: the person asks for a security code (button ``send_code``), which goes to that phone
by SMS only if both match — the page answers the same either way — and then enters the code. Then
the person chooses a user name and password and the portal account (a SMART login) exists. Error
messages never say which answer was wrong; five wrong answers (PINs or codes) lock the invitation
(counted in the database). The forms need no JavaScript and are CSRF-protected (a double-submit
cookie). Every step is journalled: ``portal-send-code``, ``portal-register``.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, make_response, render_template, request

from fhirportal.fhir.audit import Access
from fhirportal.smart.accounts import LoginRefused
from fhirportal.smart.passwords import problem
from fhirportal.smart.routes import HTML_SECURITY_HEADERS
from fhirportal.smart.secrets import new_secret

from .invitations import MAX_CODE_REQUESTS, Enrollment, Invitation

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
WRONG_CODE = ("The date of birth or the security code is not right, or the code has expired. Check them and try "
              "again, or ask for a new code.")
CODE_MAYBE_SENT = ("If the details match our records, we sent a security code to your phone. It expires in 10 "
                   "minutes.")
CODE_LIMIT = (f"A security code was already asked for {MAX_CODE_REQUESTS} times with this link: no more can be "
              "sent. Register with the PIN your practice gave you, or ask your practice to send the invitation "
              "again.")

bp = Blueprint("portal", __name__, template_folder="templates")


def _enrollment() -> Enrollment:
    return current_app.extensions["portal"]


def _page(template: str, status: int = 200, **values) -> Response:
    response = make_response(render_template(template, **values), status)
    response.headers.update(HTML_SECURITY_HEADERS)
    return response


def _message(title: str, message: str, status: int) -> Response:
    return _page("portal/message.html", status, title=title, message=message)


def _form(invitation: Invitation, error: str | None = None, status: int = 200, *, code_step: bool = False,
          notice: str | None = None) -> Response:
    """The registration page: the PIN form and the ask-for-a-code form, or (``code_step``) the form
    for the security code."""
    csrf = new_secret(24)
    action = f"{request.path}?{urlencode({'t': request.args.get('t', '')})}"
    response = _page("portal/register_code.html" if code_step else "portal/register.html", status, action=action,
                     code_action=f"{action}&step=code", csrf_token=csrf, error=error, notice=notice,
                     username=request.form.get("username") or invitation.email or "",
                     birth_date=request.form.get("birth_date", "")[:10] if code_step else "")
    # Secure when the server's public URL is https, even if TLS ends at a proxy and this request is http
    response.set_cookie(CSRF_COOKIE, csrf, max_age=1800, httponly=True, samesite="Lax", path="/portal",
                        secure=current_app.extensions["smart"].is_https or request.is_secure)
    return response


def _journal(invitation: Invitation, outcome: int, account_id: int | None = None,
             action: str = "portal-register", audit=None) -> None:
    (audit or current_app.extensions["fhirportal"].audit).record(Access(
        action=action, resource_type=invitation.subject_type, query=invitation.subject, outcome=outcome,
        client_id=None, account_id=account_id, fhir_user=invitation.subject, patient_id=invitation.patient_id))


def _send_code(enrollment: Enrollment, token: str, invitation: Invitation) -> Response:
    """Ask for a security code: the same answer whether or not date of birth and phone matched."""
    asked = enrollment.request_code(token, request.form.get("birth_date", "")[:40],
                                    request.form.get("phone", "")[:64])
    if asked.outcome == "closed":
        _journal(invitation, 410, action="portal-send-code")
        return _ended(asked.invitation)
    if asked.outcome == "limit":
        _journal(asked.invitation, 429, action="portal-send-code")
        return _form(asked.invitation, CODE_LIMIT, 429)
    response = _form(asked.invitation, code_step=True, notice=CODE_MAYBE_SENT)
    if asked.outcome != "sent":
        _journal(asked.invitation, 401, action="portal-send-code")  # nothing sent; the page says the same
        return response
    invitation, phone, message = asked.invitation, asked.phone, asked.message
    audit = current_app.extensions["fhirportal"].audit  # no app context any more when the callback runs

    def text_the_code() -> None:
        delivery = enrollment.notifier.send_sms(phone, message)
        _journal(invitation, 200 if delivery.ok else 502, action="portal-send-code", audit=audit)

    # Once the answer has gone out (the server closes it after writing it), so that the time to
    # answer does not tell whether the details matched and a gateway call was made.
    response.call_on_close(text_the_code)
    return response


def _ended(invitation: Invitation | None) -> Response:
    if invitation is None or invitation.state == "invited":
        return _message("Registration link expired", SUPERSEDED, 410)
    return _message("Registration not possible", ENDED.get(invitation.state, SUPERSEDED), 410)


def _verify(enrollment: Enrollment, token: str, code_step: bool):
    """The invitation if date of birth and PIN (or SMS code) are right, else the page to answer with."""
    invitation_now = None
    birth_date = request.form.get("birth_date", "")[:40]
    if code_step:
        verified = enrollment.verify_code(token, birth_date, request.form.get("code", ""))
    else:
        verified = enrollment.verify_pin(token, birth_date, request.form.get("pin", "")[:40])
    if verified is not None:
        return verified
    with enrollment.database.read() as conn:
        invitation_now = enrollment.by_link(conn, token)
    if invitation_now is not None:
        _journal(invitation_now, 401)
    if invitation_now is None or invitation_now.state != "invited":
        return _ended(invitation_now)
    return _form(invitation_now, WRONG_CODE if code_step else WRONG_ANSWER, 400, code_step=code_step)


def _link_existing(enrollment: Enrollment, accounts, token: str, invitation: Invitation, username: str,
                   password: str, code_step: bool) -> Response:
    """Registration into an existing portal account: identity proved as usual, then the account's own
    password; the account may then act for this record's patient too (one Person, several links)."""
    verified = _verify(enrollment, token, code_step)
    if not isinstance(verified, Invitation):
        return verified
    try:
        account = accounts.authenticate(username, password)
    except LoginRefused:
        return _form(invitation, "That user name and password do not match a portal account.", 400,
                     code_step=code_step)
    if account.kind != "patient" or (account.fhir_user or "").split("/")[0] != verified.subject_type:
        return _form(invitation, "That account cannot hold this record; choose a new user name instead.", 400,
                     code_step=code_step)
    accounts.add_patient(account.id, verified.patient_id)
    enrollment.complete(verified, account.id, "sms" if code_step else "pin")
    _journal(verified, 200, account.id)
    return _message("Record added to your account",
                    f"Your portal account '{account.username}' now also shows this record. Sign in as usual.", 201)


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
    code_step = request.args.get("step") == "code" or request.form.get("method") == "sms"
    if request.method == "GET":
        return _form(invitation, code_step=code_step)

    sent = request.form.get("csrf_token", "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        return _form(invitation, "The form expired; please fill it in again.", 400, code_step=code_step)
    if "send_code" in request.form:
        return _send_code(enrollment, token, invitation)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or len(username) > 200:
        return _form(invitation, "Choose a user name.", 400, code_step=code_step)
    accounts = current_app.extensions["smart"].accounts
    linking = request.form.get("existing") == "1"  # add this record to an account the person already has
    if linking:
        return _link_existing(enrollment, accounts, token, invitation, username, password, code_step)
    if password != request.form.get("password_again", ""):
        return _form(invitation, "The two passwords differ.", 400, code_step=code_step)
    refused = problem(password, username)
    if refused:
        return _form(invitation, refused, 400, code_step=code_step)
    if accounts.by_username(username) is not None:
        return _form(invitation, "That user name is taken; choose another.", 400, code_step=code_step)

    verified = _verify(enrollment, token, code_step)
    if not isinstance(verified, Invitation):
        return verified
    account = accounts.create(username, password, kind="patient", fhir_user=verified.subject,
                              patients=(verified.patient_id,))
    enrollment.complete(verified, account.id, "sms" if code_step else "pin")
    _journal(verified, 200, account.id)
    return _message("You are registered",
                    f"Your portal account '{username}' is ready. Sign in from your health app, or see the apps "
                    "connected to your record at /auth/apps.", 201)
