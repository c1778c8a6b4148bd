""""Forgot password": a single-use link by email, valid 30 minutes.

A person gives an email address; the page answers the same whether or not an account has it, and
the email (if any) goes out after the answer, so neither the words nor the time tell. The accounts
an address reaches: a portal account whose user name is that address, whose invitation was sent to
it, or whose record (Patient or RelatedPerson ``telecom``) has it. The email holds no health
information: the practice's name, the user name and the link.

Requests are rate-limited in the database (``password_reset`` rows, by a keyed hash of the address
and of the client's IP address, over the last hour), so every worker counts the same. A new link
supersedes the account's earlier ones; using one sets the new password and ends every session and
every token of the account (its apps' too).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from flask import Blueprint, Response, current_app, make_response, render_template, request
from sqlalchemy import Connection, func, insert, select, update

from fhirportal.fhir.search_params import parse_criteria
from fhirportal.smart.passwords import problem
from fhirportal.smart.routes import HTML_SECURITY_HEADERS
from fhirportal.smart.secrets import digest, new_secret
from fhirportal.store import clock
from fhirportal.store.auth_schema import account, password_reset, portal_invitation

LINK_LIFETIME = timedelta(minutes=30)
WINDOW = timedelta(hours=1)
PER_ADDRESS = 5  # requests for one address per hour
PER_CLIENT = 20  # requests from one IP address per hour
CSRF_COOKIE = "fhirportal_reset_csrf"
SENT = ("If a portal account uses that address, we sent it an email with a link to choose a new password. "
        "The link works once, for 30 minutes. Check your spam folder if nothing arrives.")
TOO_MANY = "Too many password reset requests for this address or from this network. Try again in an hour."
EXPIRED = "This password reset link has expired or was already used. Ask for a new one."

bp = Blueprint("password_reset", __name__, template_folder="templates")


@dataclass(frozen=True)
class Recipient:
    account_id: int
    username: str


class PasswordResets:
    def __init__(self, ctx, accounts, tokens, notifier, practice_name: str, link_url):
        self.ctx = ctx
        self.database = ctx.database
        self.accounts = accounts
        self.tokens = tokens
        self.notifier = notifier
        self.practice_name = practice_name
        self.link_url = link_url  # token -> the absolute URL of the reset page
        self._key = hashlib.sha256(b"fhirportal-password-reset:" + ctx.settings.secret_keys[0].encode()).digest()

    def keyed(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ asking for a link
    def request_link(self, address: str, client: str) -> list[tuple[str, str, str]] | None:
        """Record a request; None when over the rate limit, else the emails to send (to, username, link)."""
        address = address.strip().lower()
        now = clock.now()
        address_hash, client_hash = self.keyed(address), self.keyed(client)
        with self.database.write() as conn:
            since = now - WINDOW
            by_address = conn.execute(select(func.count()).select_from(password_reset).where(
                password_reset.c.address_hash == address_hash, password_reset.c.created > since)).scalar_one()
            by_client = conn.execute(select(func.count()).select_from(password_reset).where(
                password_reset.c.client_hash == client_hash, password_reset.c.created > since)).scalar_one()
            if by_address >= PER_ADDRESS or by_client >= PER_CLIENT:
                return None
            recipients = self._accounts_for(conn, address) if "@" in address else []
            if not recipients:
                conn.execute(insert(password_reset).values(address_hash=address_hash, client_hash=client_hash,
                                                           created=now))
            emails = []
            for recipient in recipients:
                token = new_secret()
                conn.execute(update(password_reset).where(  # an earlier link of the account stops working
                    password_reset.c.account_id == recipient.account_id, password_reset.c.used_at.is_(None),
                ).values(used_at=now))
                conn.execute(insert(password_reset).values(
                    address_hash=address_hash, client_hash=client_hash, account_id=recipient.account_id,
                    link_hash=digest(token), created=now, expires_at=now + LINK_LIFETIME))
                emails.append((address, recipient.username, self.link_url(token)))
        return emails

    def _accounts_for(self, conn: Connection, address: str) -> list[Recipient]:
        """Active portal accounts the address reaches (by user name, invitation, or the record's email)."""
        people = []
        for resource_type in ("Patient", "RelatedPerson"):
            criteria, _ = parse_criteria(self.ctx.search_parameters, resource_type, [("email", address)],
                                         strict=False)
            people += [f"{resource_type}/{i}" for i in self.ctx.repository.search_ids(conn, resource_type, criteria,
                                                                                      limit=20)]
        invited = select(portal_invitation.c.account_id).where(
            func.lower(portal_invitation.c.email) == address, portal_invitation.c.account_id.is_not(None))
        reached = (func.lower(account.c.username) == address) | account.c.id.in_(invited)
        if people:
            reached = reached | account.c.fhir_user.in_(people)
        rows = conn.execute(select(account.c.id, account.c.username).where(
            reached, account.c.kind == "patient", account.c.active.is_(True)).order_by(account.c.id)).all()
        return [Recipient(row.id, row.username) for row in rows]

    def send(self, to: str, username: str, link: str) -> None:
        body = (f"Someone asked to reset the password of the {self.practice_name} patient portal account "
                f"'{username}'.\n\nTo choose a new password, open this link within 30 minutes (it works once):\n"
                f"{link}\n\nIf you did not ask for this, ignore this email: your password stays as it is.\n")
        self.notifier.send_email(to, f"{self.practice_name}: reset your portal password", body)

    # ------------------------------------------------------------------ using a link
    def holder(self, token: str) -> str | None:
        """The user name a link is for while it is good (unused, unexpired), else None."""
        with self.database.read() as conn:
            row = conn.execute(select(password_reset.c.expires_at, account.c.username).join(
                account, account.c.id == password_reset.c.account_id).where(
                password_reset.c.link_hash == digest(token), password_reset.c.used_at.is_(None))).first()
        return row.username if row is not None and clock.ensure_utc(row.expires_at) > clock.now() else None

    def reset(self, token: str, password: str) -> str | None:
        """Use the link: the new password set, every session and token of the account ended. The
        account's user name, or None when the link was not good (any more)."""
        now = clock.now()
        with self.database.write() as conn:
            row = conn.execute(update(password_reset).where(
                password_reset.c.link_hash == digest(token), password_reset.c.used_at.is_(None),
                password_reset.c.expires_at > now,
            ).values(used_at=now).returning(password_reset.c.account_id)).first()
            if row is None:
                return None
            username = conn.execute(select(account.c.username).where(account.c.id == row.account_id)).scalar_one()
            self.accounts.set_password(conn, row.account_id, password)
            self.accounts.end_sessions(conn, row.account_id)
            self.tokens.revoke_account(conn, row.account_id)
            conn.execute(update(password_reset).where(password_reset.c.account_id == row.account_id,
                                                      password_reset.c.used_at.is_(None)).values(used_at=now))
        return username


# ---------------------------------------------------------------------- the pages
def _resets() -> PasswordResets:
    return current_app.extensions["password_resets"]


def _page(template: str, status: int = 200, **values) -> Response:
    response = make_response(render_template(template, **values), status)
    response.headers.update(HTML_SECURITY_HEADERS)
    return response


def _form(template: str, status: int = 200, **values) -> Response:
    csrf = new_secret(24)
    response = _page(template, status, csrf_token=csrf, **values)
    response.set_cookie(CSRF_COOKIE, csrf, max_age=1800, httponly=True, samesite="Lax", path="/portal",
                        secure=current_app.extensions["smart"].is_https or request.is_secure)
    return response


def _csrf_ok() -> bool:
    sent, expected = request.form.get("csrf_token", ""), request.cookies.get(CSRF_COOKIE, "")
    return bool(sent) and bool(expected) and hmac.compare_digest(sent, expected)


@bp.route("/portal/forgot-password", methods=["GET", "POST"])
def forgot_password():
    if request.method == "GET":
        return _form("portal/forgot_password.html")
    if not _csrf_ok():
        return _form("portal/forgot_password.html", 400, error="The form expired; please fill it in again.")
    address = request.form.get("email", "")[:320]
    if "@" not in address:
        return _form("portal/forgot_password.html", 400, error="Enter the email address of your portal account.")
    emails = _resets().request_link(address, request.remote_addr or "")
    if emails is None:
        return _form("portal/forgot_password.html", 429, error=TOO_MANY)
    resets = _resets()
    response = _page("portal/message.html", title="Check your email", message=SENT)

    def send_them() -> None:  # once the answer has gone out: its timing tells nothing
        for to, username, link in emails:
            resets.send(to, username, link)

    response.call_on_close(send_them)
    return response


@bp.route("/portal/reset-password", methods=["GET", "POST"])
def reset_password():
    token = request.args.get("t", "")[:200]
    holder = _resets().holder(token) if token else None
    if holder is None:
        return _page("portal/message.html", 410, title="Link expired", message=EXPIRED)
    if request.method == "GET":
        return _form("portal/reset_password.html", token=token, username=holder)
    if not _csrf_ok():
        return _form("portal/reset_password.html", 400, token=token, username=holder,
                     error="The form expired; please try again.")
    password = request.form.get("password", "")
    refused = problem(password, holder) or (None if password == request.form.get("password_again", "")
                                            else "The two passwords differ.")
    if refused:
        return _form("portal/reset_password.html", 400, token=token, username=holder, error=refused)
    username = _resets().reset(token, password)
    if username is None:
        return _page("portal/message.html", 410, title="Link expired", message=EXPIRED)
    return _page("portal/message.html", 200, title="Password changed",
                 message=f"The password of '{username}' was changed, and every browser and app signed in with "
                         "it was signed out. Sign in with the new password.", signin=True)
