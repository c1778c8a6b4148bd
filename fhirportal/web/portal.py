"""What the portal's pages share: the wiring the app factory hands over (``Portal``), the current
browser session, the page responses with their security headers, and the FHIR API of the session.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from flask import Response, current_app, make_response, redirect, render_template, request

from .client import ApiError, FhirApi, InProcess, OAuth, TokenRejected
from .sessions import COOKIE, SessionEnded, Sessions, WebSession

# No inline script or style: the stylesheet and the print button's script come from this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
# Besides reading: secure messages (write to the practice; mark a message to the patient as read), intake
# forms, appointment requests and their cancellation (the server's rules decide what each may be).
SCOPE = ("openid fhirUser profile launch/patient online_access patient/*.rs patient/Communication.cu "
         "patient/QuestionnaireResponse.cu patient/Appointment.cu")


@dataclass
class Portal:
    """The portal app's wiring: its first-party client, how it reaches the server, its sessions."""

    client_id: str
    origin: str
    base_path: str
    transport: InProcess
    sessions: Sessions
    secure: bool
    ensure_client: Callable[[], None]  # registers (or updates) the first-party client when missing
    cancel_hours: int = 24  # the practice's cut-off for cancelling online (the server enforces it)

    @property
    def redirect_uri(self) -> str:
        return self.origin + "/portal/callback"

    @property
    def fhir_base(self) -> str:
        return self.origin + self.base_path

    @staticmethod
    def client_metadata(name: str, origin: str) -> dict:
        return {"client_name": name, "token_endpoint_auth_method": "none",
                "redirect_uris": [origin + "/portal/callback"], "post_logout_redirect_uris": [origin + "/"],
                "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], "scope": SCOPE}


def build(application, client_id: str, origin: str, base_path: str, store, ensure_client,
          cancel_hours: int = 24) -> Portal:
    transport = InProcess(application, origin)
    oauth = OAuth(transport, client_id, origin + "/portal/callback")
    return Portal(client_id, origin, base_path, transport, Sessions(store, oauth), origin.startswith("https://"),
                  ensure_client, cancel_hours)


def portal() -> Portal:
    return current_app.extensions["web"]


def see_other(location: str) -> Response:
    """A 303 to ``location`` (after a form's POST), with the pages' security headers."""
    response = redirect(location, 303)
    response.headers.update(SECURITY_HEADERS)
    return response


def page(template: str, status: int = 200, **values) -> Response:
    response = make_response(render_template(template, **values), status)
    response.headers.update(SECURITY_HEADERS)
    return response


def set_cookie(response: Response, session: WebSession) -> None:
    response.set_cookie(COOKIE, session.session_id, httponly=True, samesite="Lax", secure=portal().secure,
                        path="/")


def clear_cookie(response: Response) -> Response:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=portal().secure)
    return response


def current_session() -> WebSession | None:
    return portal().sessions.load(request.cookies.get(COOKIE))


def csrf_ok(session: WebSession) -> bool:
    sent = request.form.get("csrf_token", "")
    return bool(sent) and hmac.compare_digest(sent, session.csrf_token)


def ended(state: str = "ended") -> Response:
    """The session is over (signed out elsewhere, tokens revoked): forget it, back to the home page."""
    response = redirect(f"/?state={state}", 303)
    response.headers.update(SECURITY_HEADERS)
    return clear_cookie(response)


def signed_in_page(render: Callable[[WebSession, FhirApi], Response]) -> Response:
    """A page of the signed-in patient's record: ``render(session, api)``; to sign-in when there is no
    session, to the home page when it ended."""
    session = current_session()
    if session is None or not session.signed_in:
        response = redirect("/portal/signin", 303)
        response.headers.update(SECURITY_HEADERS)
        return response
    try:
        api = FhirApi(portal().transport, portal().base_path, portal().sessions.access_token(session))
        return render(session, api)
    except (SessionEnded, TokenRejected):
        portal().sessions.forget(session)
        return ended()
    except ApiError as error:  # the API could not answer (503: its database is away): say so, keep the session
        response = page("web/problem.html", 503 if error.status == 503 else 502, title="Your record cannot be shown",
                        message="Your record could not be read just now. Please try again in a moment.")
        if error.status == 503:
            response.headers["Retry-After"] = "5"
        return response


def nav_values(session: WebSession, current: str, banner: dict) -> dict:
    """What the navigation and the whose-record banner need."""
    return {"current": current, "csrf_token": session.csrf_token, "signout_action": "/portal/signout",
            "banner": banner, "caregiver": (session.content.get("fhir_user") or "").startswith("RelatedPerson/"),
            "may_switch": int(session.content.get("patient_choices") or 0) > 1,
            "username": session.content.get("username", "")}
