"""Signing in to the portal: a standalone SMART launch of the portal's own first-party app through
the authorization server's login (authorization code + PKCE S256, ``state`` and OpenID ``nonce`` kept
in the browser's session), the code exchanged at the token endpoint; signing out revokes the tokens
and ends the authorization server's session too (OpenID Connect RP-initiated logout).

Switching to another patient (a caregiver, or a person whose account holds several records) is a new
authorization: the authorization server asks whose record, and the new tokens replace the old ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from .client import ApiError
from .portal import SCOPE, clear_cookie, csrf_ok, current_session, page, portal, see_other, set_cookie

bp = Blueprint("web_signin", __name__)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge



def _problem(title: str, message: str, status: int) -> Response:
    return page("web/problem.html", status, title=title, message=message)


@bp.route("/portal/signin", methods=["GET"])
def signin():
    """Start a standalone launch: to the authorization server's login (or, already signed in there,
    straight back; a person with several records chooses one)."""
    wiring = portal()
    wiring.ensure_client()
    verifier, challenge = _pkce()
    pending = {"state": secrets.token_urlsafe(24), "nonce": secrets.token_urlsafe(24), "verifier": verifier}
    session = current_session()
    if session is not None and session.signed_in:  # switching records: the current one stays until done
        session.content["pending"] = pending
        wiring.sessions.save(session)
    else:
        session = wiring.sessions.start({"pending": pending})
    query = {"response_type": "code", "client_id": wiring.client_id, "redirect_uri": wiring.redirect_uri,
             "scope": SCOPE, "state": pending["state"], "aud": wiring.fhir_base, "nonce": pending["nonce"],
             "code_challenge": challenge, "code_challenge_method": "S256"}
    response = see_other("/auth/authorize?" + urlencode(query))
    set_cookie(response, session)
    return response


def _claims(id_token: str | None) -> dict:
    """The id_token's claims. It came straight from the token endpoint over the server's own channel
    (OpenID Connect Core 3.1.3.7: TLS validation may stand for the signature); its nonce, issuer and
    audience are still checked by the caller."""
    try:
        payload = id_token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (AttributeError, IndexError, ValueError):
        return {}


@bp.route("/portal/callback", methods=["GET"])
def callback():
    """The authorization server sends the browser back here with the code (or an error)."""
    wiring = portal()
    session = current_session()
    pending = session.pending if session is not None else None
    state = request.args.get("state", "")
    if pending is None or not hmac.compare_digest(state.encode(), pending["state"].encode()):
        return _problem("Sign-in expired", "This sign-in link is not valid any more. Please sign in again.", 400)
    if request.args.get("error"):
        session.content.pop("pending", None)
        wiring.sessions.save(session)
        message = "You did not allow the portal to open your record." if request.args["error"] == "access_denied" \
            else f"Sign-in did not complete ({request.args['error'][:60]})."
        return _problem("Not signed in", message, 400)
    try:
        token = wiring.sessions.oauth.exchange(request.args.get("code", ""), pending["verifier"])
    except ApiError:
        return _problem("Sign-in expired", "The sign-in took too long or was already used. Please sign in again.",
                        400)
    claims = _claims(token.get("id_token"))
    if claims.get("nonce") != pending["nonce"] or claims.get("aud") != wiring.client_id or \
            claims.get("iss") != wiring.fhir_base:
        _revoke(token)
        return _problem("Sign-in failed", "The sign-in could not be verified. Please sign in again.", 400)
    if not token.get("patient"):
        _revoke(token)
        return _problem("No record to show", "This account has no patient record in the portal (staff accounts "
                        "use the practice's own system).", 403)
    previous = dict(session.content)
    session.content["identity"] = {"username": claims.get("preferred_username", ""),
                                   "fhir_user": (claims.get("fhirUser") or "").removeprefix(wiring.fhir_base + "/")}
    signed_in = wiring.sessions.signed_in(session, token)
    if signed_in is None:
        _revoke(token)
        return _problem("Sign-in expired", "This sign-in was already used. Please sign in again.", 400)
    _revoke(previous)  # a switch of records: the tokens of the record seen before end here
    response = see_other("/portal/")
    set_cookie(response, signed_in)
    return response


def _revoke(tokens: dict) -> None:
    for name, hint in (("refresh_token", "refresh_token"), ("access_token", "access_token")):
        if tokens.get(name):
            portal().sessions.oauth.revoke(tokens[name], hint)


@bp.route("/portal/signout", methods=["POST"])
def signout():
    """Revoke the portal's tokens, forget the session, and sign out at the authorization server."""
    session = current_session()
    if session is None:
        return clear_cookie(see_other("/?state=signed-out"))
    if not csrf_ok(session):
        return _problem("Form expired", "The sign-out form expired. Go back, reload the page and try again.", 400)
    id_token = session.content.get("id_token")
    portal().sessions.end(session)
    if not id_token:
        return clear_cookie(see_other("/?state=signed-out"))
    query = {"id_token_hint": id_token, "post_logout_redirect_uri": portal().origin + "/", "state": "signed-out"}
    return clear_cookie(see_other("/auth/logout?" + urlencode(query)))
