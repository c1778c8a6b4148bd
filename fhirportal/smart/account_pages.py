"""The signed-in person's own pages at the authorization server: connected apps (narrow or revoke
each), who looked at the record, the account (change password, signed-in browsers), and signing out
(the form, and OpenID Connect RP-initiated logout for the practice's own portal).

Ending a session ends the grants issued in it (the token context's ``sid``), except
``offline_access`` ones, which are meant to outlive a sign-in: the portal's tokens die with the
browser session they were issued in, and the portal notices on its next call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from flask import Response, current_app, redirect, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .accounts import LoginRefused, Session
from .consent import grant_choices, granted
from .passwords import problem
from .routes import (
    SESSION_COOKIE,
    _csrf_ok,
    _login_page,
    _page,
    _session,
    _sign_in,
    bp,
    display_name,
    smart,
)
from .scopes import parse_scopes

ACTIONS = {"read": "opened", "vread": "opened", "search": "searched", "history": "looked at the history of",
           "create": "added", "update": "changed", "patch": "changed", "delete": "deleted",
           "operation": "ran an operation on", "transaction": "sent a batch of records about",
           "export": "exported"}
EXPIRED = "The form expired, or you were signed out: sign in again."


def _account_page(render) -> Response:
    """A page of the signed-in user's account: the sign-in form first when there is no session."""
    if request.method == "POST" and request.form.get("step") == "login":
        return _sign_in(request.base_url, "", render)
    session = _session()
    if session is None:
        return _login_page(request.base_url, "")
    return render(session)


def _account_page_values(session: Session, current: str) -> dict:
    return {"username": session.account.username, "csrf_token": session.csrf_token, "current": current}


# ---------------------------------------------------------------------- connected apps
@bp.route("/auth/apps", methods=["GET", "POST"])
def apps():
    """The signed-in user's authorized apps: what each may see, by kind of record, to narrow or revoke."""
    return _account_page(_apps_page)


def _apps_page(session: Session, message: str | None = None, status: int = 200) -> Response:
    with smart().database.read() as conn:
        authorized = smart().tokens.authorized_apps(conn, session.account.id)
    rows = []
    for client_id, scope, issued in authorized:
        if client_id in smart().first_party:
            continue  # the portal itself: signing out ends it
        client = smart().clients.get(client_id)
        grant = parse_scopes(scope, smart().resource_types)
        rows.append({"client_id": client_id, "name": client.name if client else client_id, "scope": scope,
                     "issued": issued.strftime("%Y-%m-%d %H:%M"),
                     "choices": grant_choices(grant, smart().patient_types)})
    return _page("apps.html", status, apps=rows, message=message, **_account_page_values(session, "apps"))


@bp.route("/auth/apps/revoke", methods=["POST"])
def revoke_app():
    session = _session()
    if session is None or not _csrf_ok(session.csrf_token):
        return _page("error.html", 400, message="Sign in again to manage your apps.")
    client_id = request.form.get("client_id", "")
    with smart().database.write() as conn:
        count = smart().tokens.revoke_app(conn, session.account.id, client_id)
    client = smart().clients.get(client_id)
    name = client.name if client else client_id
    return _apps_page(session, f"{name}: access revoked ({count} token(s))." if count else "Nothing to revoke.")


@bp.route("/auth/apps/narrow", methods=["POST"])
def narrow_app():
    """Keep only the ticked kinds of record of an app's grant (none ticked: revoke it)."""
    session = _session()
    if session is None or not _csrf_ok(session.csrf_token):
        return _page("error.html", 400, message="Sign in again to manage your apps.")
    client_id = request.form.get("client_id", "")
    with smart().database.read() as conn:
        current = next((scope for cid, scope, _ in smart().tokens.authorized_apps(conn, session.account.id)
                        if cid == client_id), None)
    if current is None:
        return _apps_page(session, "That app has no access to narrow.", 400)
    client = smart().clients.get(client_id)
    name = client.name if client else client_id
    grant = parse_scopes(current, smart().resource_types)
    kept = granted(grant, request.form.getlist("scope"), smart().resource_types, contexts=grant.contexts(),
                   allowed_other=set(grant.other), patient_types=smart().patient_types)
    with smart().database.write() as conn:
        if not kept.resource_scopes:
            smart().tokens.revoke_app(conn, session.account.id, client_id)
            return _apps_page(session, f"{name}: access revoked (nothing was left ticked).")
        smart().tokens.narrow_app(conn, session.account.id, client_id, kept.text)
    return _apps_page(session, f"{name}: access narrowed. It now has: {kept.text}")


# ---------------------------------------------------------------------- the access log
PORTAL_USERS = ("Patient/", "RelatedPerson/", "Person/")


def _who(row, account, names: dict) -> str:
    if (row.fhir_user and row.fhir_user == account.fhir_user) or (row.account_id == account.id):
        person = "You"
    elif row.fhir_user and row.fhir_user.startswith(PORTAL_USERS) and \
            row.fhir_user.split("/", 1)[1] not in account.patients:
        return "Another portal user"  # never another patient's or caregiver's name, nor their app
    elif row.fhir_user:
        person = display_name(row.fhir_user, names)
    else:
        person = None
    app_name = None
    if row.client_id:
        client = smart().clients.get(row.client_id)
        app_name = client.name if client else row.client_id
    if person and app_name:
        return f"{person}, with {app_name}"
    return person or app_name or "the practice's system"


@bp.route("/auth/access-log", methods=["GET", "POST"])
def access_log_page():
    """Who looked at the signed-in patient's (or caregiver's patients') records: newest first."""
    return _account_page(_access_log_page)


def _access_log_page(session: Session) -> Response:
    account = session.account
    rows = current_app.extensions["fhirportal"].audit.for_patients(account.patients, account.id)
    names: dict[str, str] = {}
    entries = [{"when": row.recorded.strftime("%Y-%m-%d %H:%M"), "who": _who(row, account, names),
                "what": f"{ACTIONS.get(row.action, row.action.replace('-', ' '))} "
                        f"{(row.resource_type or 'records').lower()} data"
                        + ("" if row.patient_id in account.patients else " of another patient's record"),
                "outcome": "allowed" if row.outcome < 400 else "refused"} for row in rows]
    return _page("access_log.html", entries=entries, **_account_page_values(session, "access-log"))


# ---------------------------------------------------------------------- the account
@bp.route("/auth/account", methods=["GET", "POST"])
def account_page():
    """Change the password; the browsers signed in to the account, each of which can be signed out."""
    return _account_page(_render_account)


def _render_account(session: Session, message: str | None = None, error: str | None = None,
                    status: int = 200) -> Response:
    sessions = [{"sid": s.sid, "current": s.sid == session.sid, "browser": _browser(s.user_agent),
                 "since": datetime.fromtimestamp(s.auth_time, UTC).strftime("%Y-%m-%d %H:%M"),
                 "until": s.expires_at.strftime("%Y-%m-%d %H:%M")}
                for s in smart().accounts.sessions_of(session.account.id)]
    return _page("account.html", status, sessions=sessions, message=message, error=error,
                 **_account_page_values(session, "account"))


def _browser(user_agent: str | None) -> str:
    """A short name for a browser from its User-Agent (the full text is no use to a person)."""
    text = user_agent or ""
    browser = next((name for key, name in (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
                                           ("Safari/", "Safari")) if key in text), "A browser")
    system = next((name for key, name in (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
                                          ("Windows", "Windows"), ("Mac OS", "Mac"), ("Linux", "Linux"))
                   if key in text), None)
    return f"{browser} on {system}" if system else browser


@bp.route("/auth/account/password", methods=["POST"])
def change_password():
    """Current password, then the new one twice; the other browsers are signed out (their grants end)."""
    session = _session()
    if session is None or not _csrf_ok(session.csrf_token):
        return _page("error.html", 400, message=EXPIRED)
    new = request.form.get("new_password", "")
    refused = problem(new, session.account.username)
    if new != request.form.get("new_password_again", ""):
        refused = "The two new passwords differ."
    if refused:
        return _render_account(session, error=refused, status=400)
    try:
        smart().accounts.authenticate(session.account.username, request.form.get("current_password", ""))
    except LoginRefused:
        return _render_account(session, error="Your current password is not right (or the account is locked for "
                                              "a while after too many tries).", status=400)
    with smart().database.write() as conn:
        smart().accounts.set_password(conn, session.account.id, new)
        others = [s.sid for s in smart().accounts.sessions_of(session.account.id) if s.sid != session.sid]
        _end_sessions(conn, session.account.id, others)
    return _render_account(session, message="Your password was changed. Your other browsers were signed out.")


@bp.route("/auth/account/sessions/end", methods=["POST"])
def end_sessions():
    """Sign out one browser (``sid``) or every other one (``others``)."""
    session = _session()
    if session is None or not _csrf_ok(session.csrf_token):
        return _page("error.html", 400, message=EXPIRED)
    if request.form.get("others"):
        sids = [s.sid for s in smart().accounts.sessions_of(session.account.id) if s.sid != session.sid]
    else:
        sids = [request.form.get("sid", "")]
    with smart().database.write() as conn:
        ended = _end_sessions(conn, session.account.id, sids)
    if session.sid in ended:
        return _signed_out()
    return _render_account(session, message=f"Signed out {len(ended)} browser(s)." if ended else
                           "That browser was already signed out.")


def _end_sessions(conn, account_id: int, sids: list[str] | None) -> list[str]:
    """End sessions of the account and the grants issued in them (offline_access ones excepted)."""
    ended = smart().accounts.end_sessions(conn, account_id, sids)
    if ended:
        smart().tokens.revoke_session(conn, account_id, ended)
    return ended


# ---------------------------------------------------------------------- signing out
@bp.route("/auth/logout", methods=["GET", "POST"])
def logout():
    """POST: the sign-out form of these pages. GET: OpenID Connect RP-initiated logout, for the
    practice's own apps: ``id_token_hint`` (an id_token this server issued to that app, for the person
    of this browser's session) and ``post_logout_redirect_uri`` (one the app registered), then back."""
    session = _session()
    if request.method == "POST":
        if session is not None and _csrf_ok(session.csrf_token):
            with smart().database.write() as conn:
                _end_sessions(conn, session.account.id, [session.sid])
        return _signed_out()
    claims = _id_token_claims(request.args.get("id_token_hint", ""))
    if claims is None:
        return _page("error.html", 400, message="This sign-out link is not valid.")
    if session is not None and claims.get("sub") == session.account.subject:
        with smart().database.write() as conn:
            _end_sessions(conn, session.account.id, [session.sid])
    client = smart().clients.get(str(claims.get("aud", "")))
    target = request.args.get("post_logout_redirect_uri", "")
    if client is None or target not in (client.client_metadata.get("post_logout_redirect_uris") or []):
        return _signed_out()
    state = request.args.get("state")
    response = redirect(target + (("&" if urlsplit(target).query else "?") + urlencode({"state": state})
                                  if state else ""), 303)
    response.delete_cookie(SESSION_COOKIE, path="/auth")
    return response


def _id_token_claims(token: str) -> dict | None:
    """The claims of an id_token this server signed (expired ones too: a hint names who, nothing more)."""
    if not token or len(token) > 8192:
        return None
    try:
        keys = KeySet.import_key_set(smart().keys.public_jwks())
        claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
    except (JoseError, ValueError, TypeError):
        return None
    return claims if claims.get("iss") == smart().issuer else None


def _signed_out() -> Response:
    response = _page("signed_out.html")
    response.delete_cookie(SESSION_COOKIE, path="/auth")
    return response
