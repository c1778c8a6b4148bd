"""HTTP endpoints of the authorization server: authorize (login + consent pages), token,
revocation, introspection, registration, JWKS, discovery, EHR launch and the patient's
connected-apps page.

The login and consent forms post back to the authorize URL with the OAuth parameters in its
query string, so every step is validated again by authlib and no authorization request is held
in memory.
"""

from __future__ import annotations

import base64
import hmac
import json
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from flask import Blueprint, Response, current_app, jsonify, make_response, render_template, request
from markupsafe import Markup

from .accounts import Account, LoginRefused, Session
from .consent import choices, granted, requested_scopes
from .discovery import openid_configuration, smart_configuration
from .exchange import end_token_transaction_after_request
from .grants import Decision
from .secrets import new_secret
from .server import SmartServer

SESSION_COOKIE = "fhirportal_session"
CSRF_COOKIE = "fhirportal_csrf"
STYLE = {"color_background": "#f7f8fb", "color_error": "#9b1c1c", "color_highlight": "#2a5bd7",
         "color_modal_backdrop": "", "color_success": "#1c7c3c", "color_text": "#1d2433",
         "dim_border_radius": "6px", "dim_font_size": "16px", "dim_spacing_size": "16px",
         "font_family_body": "system-ui, sans-serif", "font_family_heading": "system-ui, sans-serif"}
HTML_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
OAUTH_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "aud", "launch",
                "code_challenge", "code_challenge_method", "nonce", "prompt", "max_age")


def smart() -> SmartServer:
    return current_app.extensions["smart"]


def server():
    return current_app.extensions["smart_authorization_server"]


def _page(template: str, status: int = 200, **values) -> Response:
    response = make_response(render_template(template, **values), status)
    response.headers.update(HTML_SECURITY_HEADERS)
    return response


def _set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Lax", secure=smart().is_https,
                        path="/auth")


def _csrf_ok(expected: str | None) -> bool:
    sent = request.form.get("csrf_token", "")
    return bool(expected) and bool(sent) and hmac.compare_digest(sent, expected)


def _session() -> Session | None:
    return smart().accounts.session(request.cookies.get(SESSION_COOKIE))


def _oauth_params() -> dict[str, str]:
    """The authorization request's parameters: from the query string when a login or consent form
    posts back (its own fields are in the body), else from the query or the form (authorize-post)."""
    source = request.args if request.form.get("step") else request.values
    return {k: source.get(k) for k in OAUTH_PARAMS if source.get(k) is not None}


def _oauth_request(params: dict[str, str]) -> OAuth2Request:
    oauth_request = OAuth2Request("GET", request.base_url + "?" + urlencode(params), headers=request.headers)
    oauth_request.payload = BasicOAuth2Payload(params)
    return oauth_request


def _error_redirect(oauth_request: OAuth2Request, redirect_uri: str, error: OAuth2Error) -> Response:
    error.redirect_uri = redirect_uri
    error.state = oauth_request.payload.state
    return server().handle_error_response(oauth_request, error)


bp = Blueprint("smart", __name__, template_folder="templates")


@bp.route("/auth/authorize", methods=["GET", "POST"])
def authorize():
    params = _oauth_params()
    # authlib quotes these in its error descriptions, which must be printable ASCII without " or backslash
    # (else it raises ValueError: a 500); no URI or response type has such characters.
    unfit = [k for k in ("redirect_uri", "response_type") if invalid_error_characters(params.get(k) or "")]
    if unfit:
        return _page("error.html", 400, message=f"invalid_request: {unfit[0]} has characters it cannot have")
    oauth_request = _oauth_request(params)
    try:
        grant = server().get_consent_grant(oauth_request)
    except OAuth2Error as error:
        if error.redirect_uri:
            return server().handle_error_response(oauth_request, error)
        return _page("error.html", 400, message=f"{error.error}: {error.description or ''}")
    redirect_uri = grant.redirect_uri
    if params.get("aud", "").rstrip("/") != smart().fhir_base:
        return _error_redirect(oauth_request, redirect_uri, InvalidRequestError(
            f"aud must be this server's FHIR base URL, {smart().fhir_base}"))
    launch = None
    if params.get("launch"):
        launch = smart().launches.resolve(params["launch"])
        if launch is None:
            return _error_redirect(oauth_request, redirect_uri, InvalidRequestError("Unknown or expired launch"))
    action = Markup.escape(request.base_url + "?" + urlencode(params))
    flow = _Flow(action, grant, oauth_request, params, launch)
    step = request.form.get("step") if request.method == "POST" else None

    if step == "login":
        over = smart().rate_limits.check("login", client_id=None, address=request.remote_addr)
        if over is not None:
            response = _login_page(action, grant.client.name, "Too many sign-in attempts; try again in "
                                   f"{over.retry_after} seconds.", 429)
            response.headers["Retry-After"] = str(over.retry_after)
            return response
        return _sign_in(action, grant.client.name, flow.after_sign_in)

    session = _session()
    if session is None:
        return _login_page(action, grant.client.name)
    if step != "consent":
        return flow.after_sign_in(session)
    if not _csrf_ok(session.csrf_token):
        return _page("error.html", 400, message="The consent form expired; go back to the app and try again.")
    if request.form.get("decision") != "allow":
        return _error_redirect(oauth_request, grant.redirect_uri, AccessDeniedError("The user denied access"))
    ticked = None if flow.first_party else request.form.getlist("scope")
    return flow.allow(session, request.form.get("patient"), ticked)


class _Flow:
    """One authorization request after its checks: what follows sign-in (the consent page, or for the
    practice's own apps the patient choice or nothing at all) and the decision."""

    def __init__(self, action, grant, oauth_request: OAuth2Request, params: dict, launch: dict | None):
        self.action, self.grant, self.oauth_request, self.params, self.launch = action, grant, oauth_request, \
            params, launch
        self.first_party = grant.client.get_client_id() in smart().first_party

    def after_sign_in(self, session: Session) -> Response:
        if not self.first_party:
            return _consent_page(self.action, self.grant.client, session, self.params, self.launch)
        account = session.account
        if account.kind == "patient" and len(account.patients) > 1 and not self.launch:
            return _page("choose_patient.html", action=self.action, username=account.username,
                         csrf_token=session.csrf_token, patients=_patient_choices(account))
        return self.allow(session, None, None)

    def allow(self, session: Session, patient: str | None, ticked: list[str] | None) -> Response:
        """Grant what was ticked (``ticked`` None: everything asked, the practice's own apps)."""
        try:
            decision = _decide(session, self.params, self.launch, patient, ticked)
        except ValueError as exc:
            return _error_redirect(self.oauth_request, self.grant.redirect_uri, InvalidRequestError(str(exc)))
        self.grant.request.decision = decision
        return server().create_authorization_response(self.oauth_request, grant_user=decision.account,
                                                      grant=self.grant)


def _sign_in(action, client_name: str, next_page) -> Response:
    """Check the posted login form; on success start a session and show ``next_page(session)``."""
    if not _csrf_ok(request.cookies.get(CSRF_COOKIE)):
        return _page("error.html", 400, message="The sign-in form expired; go back and try again.")
    try:
        account = smart().accounts.authenticate(request.form.get("username", ""), request.form.get("password", ""))
    except LoginRefused:
        return _login_page(action, client_name, "Wrong user name or password, or the account is locked.", 401)
    session_id = smart().accounts.start_session(account.id, request.headers.get("User-Agent"))
    response = next_page(smart().accounts.session(session_id))
    _set_cookie(response, SESSION_COOKIE, session_id)
    return response


def _login_page(action, client_name: str, error: str | None = None, status: int = 200) -> Response:
    csrf = new_secret(24)
    response = _page("login.html", status, action=action, client_name=client_name, error=error, csrf_token=csrf)
    _set_cookie(response, CSRF_COOKIE, csrf, max_age=1800)
    return response


def _patient_choices(account: Account) -> list[dict]:
    names: dict[str, str] = {}
    return [{"id": p, "label": display_name(f"Patient/{p}", names)} for p in account.patients]


def _consent_page(action, client, session: Session, params: dict, launch: dict | None) -> Response:
    requested = requested_scopes(params.get("scope"), smart().resource_types)
    return _page("consent.html", action=action, client_name=client.name, username=session.account.username,
                 csrf_token=session.csrf_token, choices=choices(requested, smart().patient_types),
                 patients=_patient_choices(session.account) if not launch else [])


def _decide(session: Session, params: dict, launch: dict | None, patient: str | None,
            ticked: list[str] | None) -> Decision:
    """The granted scope and the launch context, from the ticked boxes (None: all asked) and who signed in."""
    account = session.account
    requested = requested_scopes(params.get("scope"), smart().resource_types)
    context: dict = {"sid": session.sid}  # signing out of this session ends the grant (unless offline_access)
    if account.fhir_user:
        context["fhirUser"] = account.fhir_user
    if account.kind == "patient":
        patient = patient or (account.patients[0] if account.patients else None)
        if patient not in account.patients:
            raise ValueError("This account cannot act for that patient")
        if launch and launch.get("patient") not in (None, patient):
            raise ValueError("The launch is for another patient")
        context.update(patient=patient, need_patient_banner=True)
        if len(account.patients) > 1:
            context["patient_choices"] = len(account.patients)
        contexts = {"patient"}
    else:
        if account.organization:
            context["organization"] = account.organization
        contexts = {"user"}
        if launch:
            context.update({k: v for k, v in launch.items() if k in ("patient", "encounter") and v})
            context["need_patient_banner"] = False
        if context.get("patient"):
            contexts.add("patient")
    allowed_other = {"openid", "fhirUser", "profile", "offline_access", "online_access"}
    if context.get("patient"):
        allowed_other.add("launch/patient")
    if launch:
        allowed_other.add("launch")
        if launch.get("encounter"):
            allowed_other.add("launch/encounter")
    if ticked is None:
        ticked = [s.text for s in requested.resource_scopes] + sorted(requested.other)
    scope = granted(requested, ticked, smart().resource_types, contexts=contexts, allowed_other=allowed_other,
                    patient_types=smart().patient_types)
    if not ({"launch", "launch/patient"} & scope.other) and account.kind != "patient":
        context.pop("patient", None)
        context.pop("encounter", None)
    if "launch/encounter" not in scope.other and "launch" not in scope.other:
        context.pop("encounter", None)
    return Decision(account, scope.text, context, session.auth_time)


def _throttled(endpoint: str, client_id: str | None) -> Response | None:
    """Count the request against the endpoint's rate limits (smart/rate_limits.py); a 429 when over."""
    over = smart().rate_limits.check(endpoint, client_id=client_id, address=request.remote_addr)
    if over is None:
        return None
    return _oauth_error(429, "temporarily_unavailable", f"Too many requests; try again in {over.retry_after} "
                        "seconds", {"Retry-After": str(over.retry_after)})


def _claimed_client_id() -> str | None:
    """The client_id a request names (HTTP Basic, the form, or a client assertion's ``sub``), before it is
    authenticated: only to refuse early an app that has had its tokens this minute (rate_limits)."""
    basic = request.authorization
    if basic is not None and basic.type == "basic" and basic.username:
        return basic.username
    return request.form.get("client_id") or _assertion_subject(request.form.get("client_assertion", ""))


def _assertion_subject(assertion: str) -> str | None:
    """The ``sub`` of a JWT's claims, unverified (the token endpoint verifies it), or None."""
    parts = assertion.split(".")
    if len(parts) != 3 or len(parts[1]) > 8192:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else None


@bp.route("/auth/token", methods=["POST"])
def token():
    return _throttled("token", _claimed_client_id()) or server().create_token_response()


@bp.teardown_request
def _end_token_transaction(error):
    end_token_transaction_after_request(error)


@bp.route("/auth/revoke", methods=["POST"])
def revoke():
    return server().create_endpoint_response("revocation")


@bp.route("/auth/introspect", methods=["POST"])
def introspect():
    return server().create_endpoint_response("introspection")


@bp.route("/auth/register", methods=["POST"])
def register():
    if not isinstance(request.get_json(silent=True), dict):  # authlib would raise (a FHIR OperationOutcome, or 500)
        return _oauth_error(400, "invalid_client_metadata", "The body must be a JSON object of client metadata "
                            "(RFC 7591), sent as application/json")
    return _throttled("register", None) or server().create_endpoint_response("client_registration")


@bp.route("/auth/jwks", methods=["GET"])
def jwks():
    return jsonify(smart().keys.public_jwks())


@bp.route("/auth/smart-style.json", methods=["GET"])
def smart_style():
    return jsonify(STYLE)


# ---------------------------------------------------------------------- EHR launch
@bp.route("/auth/launch", methods=["POST"])
def create_launch():
    """The EHR registers a launch context and gets the ``launch`` value to hand to the app.

    Called with a staff (``user/``) or backend (``system/``) access token; body (JSON or form):
    ``patient`` (required), ``encounter`` (optional).
    """
    authorization = request.headers.get("Authorization", "")
    access = smart().tokens.authenticate(authorization[7:]) if authorization.lower().startswith("bearer ") else None
    if access is None:
        return _oauth_error(401, "invalid_token", "A staff or backend access token is required",
                            {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if access.context not in ("user", "system"):
        return _oauth_error(403, "insufficient_scope", "Only staff and backend tokens create launches")
    body = request.get_json(silent=True) if request.is_json else request.form
    body = body if isinstance(body, dict) or hasattr(body, "get") else {}
    patient, encounter = body.get("patient"), body.get("encounter")
    if not isinstance(patient, str) or not patient:
        return _oauth_error(400, "invalid_request", "patient is required")
    context = {"patient": patient.removeprefix("Patient/")}
    if isinstance(encounter, str) and encounter:
        context["encounter"] = encounter.removeprefix("Encounter/")
    launch = smart().launches.create(context, access.account_id)
    return jsonify({"launch": launch, "iss": smart().fhir_base, "expires_in": 600}), 201


def _oauth_error(status: int, error: str, description: str, headers: dict | None = None) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def display_name(reference: str, names: dict[str, str] | None = None) -> str:
    """A person's name from their record (``names`` memoizes within a page), or the reference."""
    if names is not None and reference in names:
        return names[reference]
    kind, _, fhir_id = reference.partition("/")
    ctx = current_app.extensions["fhirportal"]
    try:
        with ctx.database.read() as conn:
            body = ctx.repository.read(conn, kind, fhir_id).body or {}
    except Exception:  # noqa: BLE001  (deleted or unknown: show the reference)
        body = {}
    name = (body.get("name") or [{}])[0]
    text = name.get("text") or " ".join([*name.get("prefix", []), *name.get("given", []), name.get("family", "")])
    shown = text.strip() or reference
    if names is not None:
        names[reference] = shown
    return shown


def discovery_blueprint(name: str, prefix: str) -> Blueprint:
    """The discovery documents under ``prefix``: registered under the FHIR base (where SMART clients
    and Inferno look; the issuer is the FHIR base too, so the OpenID configuration is there) and at
    the site root."""
    well_known = Blueprint(name, __name__, url_prefix=prefix + "/.well-known")

    @well_known.route("/smart-configuration", methods=["GET"])
    def smart_config():
        return jsonify(smart_configuration(smart()))

    @well_known.route("/openid-configuration", methods=["GET"])
    def openid_config():
        return jsonify(openid_configuration(smart()))

    return well_known
