"""The OpenAPI paths of the pages people use (part of ``fhirportal.openapi``): the patient portal
(``fhirportal.web``), forgetting a password, and the account pages of the authorization server. All
answer HTML (the portal's download: a FHIR JSON Bundle); forms post ``application/x-www-form-urlencoded``
with a ``csrf_token``.
"""

from __future__ import annotations

from .openapi import (
    ACCOUNT_FORM,
    ACCOUNT_PAGE,
    FHIR_ID,
    _auth_op,
    _form_body,
    _page,
    _redirect,
    _string,
    path_param,
    query,
)

SIGN_IN_FIRST = _redirect("Not signed in (to /portal/signin), or the session ended (to the home page)")
CSRF = {"csrf_token": _string("The form's CSRF token")}


def _portal_page(summary: str) -> dict:
    return {"get": _auth_op(summary, {"200": _page("The page"), "303": SIGN_IN_FIRST}, tag="portal")}


def _message_form(fields: dict) -> dict:
    """A message form: ``multipart/form-data`` (it may carry a file)."""
    properties = {**CSRF, **fields, "text": _string("The message"),
                  "attachment": {"type": "string", "format": "binary",
                                 "description": "Optional: a PDF, PNG, JPEG or plain text file"}}
    return {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object",
                                                                          "properties": properties}}}}


THREAD = path_param("thread_id", "The thread's first Communication", FHIR_ID)
SENT = _redirect("Sent: to the thread")
REFUSED = _page("Form expired, something missing, or a file of another type or too large")


def message_paths() -> dict[str, dict]:
    """Secure messages (``fhirportal.web.messages``)."""
    return {
        "/portal/messages": _portal_page("Messages: the threads with the practice, newest first, unread marked"),
        "/portal/messages/new": {
            "get": _auth_op("Write to the practice: the form", {"200": _page("The form"), "303": SIGN_IN_FIRST},
                            tag="portal"),
            "post": _auth_op("Send a new message to the practice (a Communication through the FHIR API)", {
                "303": SENT, "400": REFUSED, "422": _page("The API refused the message")},
                body=_message_form({"recipient": _string("Organization/… or Practitioner/… of the practice"),
                                    "topic": _string("The subject")}), tag="portal")},
        "/portal/messages/{thread_id}": {
            "parameters": [THREAD],
            "get": _auth_op("A thread, in order; opening it marks the messages to the patient as read", {
                "200": _page("The thread and a reply form"), "303": SIGN_IN_FIRST, "404": _page("Not a thread of "
                                                                                                 "this record")},
                tag="portal")},
        "/portal/messages/{thread_id}/reply": {
            "parameters": [THREAD],
            "post": _auth_op("Reply in a thread", {"303": SENT, "400": REFUSED, "404": _page("Not a thread of this "
                                                                                          "record"),
                                                   "422": _page("The API refused the message")},
                             body=_message_form({}), tag="portal")},
        "/portal/messages/attachment/{binary_id}": {
            "parameters": [path_param("binary_id", "The attachment's Binary", FHIR_ID)],
            "get": _auth_op("A message's attachment, as a download", {
                "200": {"description": "The file (PDF, PNG, JPEG or plain text)",
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "303": SIGN_IN_FIRST, "404": _page("Not a file of this record's messages")}, tag="portal")},
    }


def form_paths() -> dict[str, dict]:
    """Intake forms (``fhirportal.web.forms``)."""
    form = path_param("form_id", "The Questionnaire", FHIR_ID)
    response = query("response", "An in-progress QuestionnaireResponse of the patient to complete", FHIR_ID)
    return {
        "/portal/forms": _portal_page("Forms: those waiting for the patient, the practice's forms, those sent"),
        "/portal/forms/{form_id}": {
            "parameters": [form],
            "get": _auth_op("A form to fill in (pre-filled from a waiting response)", {
                "200": _page("The form"), "303": SIGN_IN_FIRST, "404": _page("Not a form of this portal")},
                parameters=[response], tag="portal"),
            "post": _auth_op("Send the answers (a QuestionnaireResponse through the FHIR API)", {
                "303": _redirect("Sent: to the forms"), "400": _page("Form expired, or an answer is not one"),
                "404": _page("Not a form of this portal"), "422": _page("The API refused the answers: on the form")},
                body=_form_body({**CSRF, "response": _string("The waiting response this completes (optional)"),
                                 "item:{linkId}": _string("The answer to an item (repeatable)"),
                                 "other:{linkId}": _string("Free text for an open-choice item")}, ("csrf_token",)),
                tag="portal")},
    }


def page_paths() -> dict[str, dict]:
    return {
        **message_paths(),
        **form_paths(),
        "/": {"get": _auth_op("The portal's home page", {"200": _page("Sign in, invitations, forgot password, "
                                                                      "links for developers")},
                              parameters=[query("state", "signed-out or ended: says so")], tag="portal")},
        "/portal/invitation": {"get": _auth_op("How to register from an invitation", {"200": _page("The page")},
                                               tag="portal")},
        "/portal/signin": {"get": _auth_op("Sign in: a standalone SMART launch of the portal (PKCE)", {
            "303": _redirect("To the authorization endpoint")}, tag="portal")},
        "/portal/callback": {"get": _auth_op("The portal's redirect URI: the code is exchanged for tokens", {
            "303": _redirect("Signed in: to the health summary"),
            "400": _page("Unknown or used state, an OAuth error, or a code that could not be exchanged"),
            "403": _page("The account has no patient record")},
            parameters=[query("code", "Authorization code"), query("state", "The sign-in's state"),
                        query("error", "OAuth error"), query("error_description", "OAuth error description")],
            tag="portal")},
        "/portal/signout": {"post": _auth_op("Sign out: tokens revoked, the session ended", {
            "303": _redirect("To the authorization server's end-session endpoint, then home"),
            "400": _page("The form expired (CSRF)")}, body=_form_body(CSRF), tag="portal")},
        "/portal/": _portal_page("The health summary"),
        "/portal/labs": _portal_page("Lab results by test, with charts"),
        "/portal/vitals": _portal_page("Vital signs by measurement, with charts"),
        "/portal/record": _portal_page("Download my record"),
        "/portal/print": _portal_page("A printable summary"),
        "/portal/appointments": {"get": _auth_op("Appointments and requests with their status, cancel buttons", {
            "200": _page("The page"), "303": SIGN_IN_FIRST},
            parameters=[query("done", "requested or cancelled: says so")], tag="portal")},
        "/portal/appointments/request": {
            "get": _auth_op("Request an appointment: the free slots of the next weeks by day, or a range of days", {
                "200": _page("The forms"), "303": SIGN_IN_FIRST}, tag="portal"),
            "post": _auth_op("Send a request (an Appointment, status proposed, through the FHIR API)", {
                "303": _redirect("Sent: to the appointments (or not signed in)"),
                "400": _page("Form expired or incomplete"), "403": _page("Refused by the server"),
                "409": _page("The slot was just taken"), "422": _page("Refused by the server")},
                body=_form_body({**CSRF, "kind": _string("slot or range"), "slot": _string("The Slot's id"),
                                 "reason": _string("What it is for"), "from": _string("First day (range)"),
                                 "to": _string("Last day (range)"), "comment": _string("Anything else (range)")}),
                tag="portal")},
        "/portal/appointments/{fhir_id}/cancel": {
            "parameters": [path_param("fhir_id", "The Appointment's id", {"type": "string",
                                                                          "pattern": "^[A-Za-z0-9\\-\\.]{1,64}$"})],
            "post": _auth_op("Cancel an appointment or withdraw a request", {
                "303": _redirect("Cancelled: to the appointments (or not signed in)"),
                "400": _page("Form expired"), "409": _page("It changed meanwhile"),
                "422": _page("Past the practice's cut-off, or not in the record")},
                body=_form_body(CSRF), tag="portal")},
        "/portal/record.json": {"get": _auth_op("The record ($everything) as one FHIR Bundle, as a download", {
            "200": {"description": "A collection Bundle", "content": {"application/fhir+json": {"schema": {
                "type": "object"}}}}, "303": SIGN_IN_FIRST}, tag="portal")},
        "/portal/forgot-password": {
            "get": _auth_op("Forgot password: the form", {"200": _page("The form")}, tag="portal"),
            "post": _auth_op("Forgot password: email a single-use link (the same answer for any address)", {
                "200": _page("Sent, if an account has the address"), "400": _page("Form expired or no address"),
                "429": _page("Too many requests for the address or from the network")},
                body=_form_body({**CSRF, "email": _string("Email address")}), tag="portal")},
        "/portal/reset-password": {
            "parameters": [query("t", "The emailed link's token", required=True)],
            "get": _auth_op("Choose a new password", {"200": _page("The form"), "410": _page("Link expired or used")},
                            tag="portal"),
            "post": _auth_op("Set the new password: every session and token of the account ends", {
                "200": _page("Changed"), "400": _page("Refused password or form expired"),
                "410": _page("Link expired or used")},
                body=_form_body({**CSRF, "password": _string("New password"),
                                 "password_again": _string("Again")}), tag="portal")},
        "/auth/apps/narrow": {"post": _auth_op("Keep only the ticked kinds of record of an app's access", {
            "200": _page("The apps page"), "400": _page("Not signed in, form expired, or no such app")},
            body=_form_body({**CSRF, "client_id": _string("The app"), "scope": {
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                "description": "Ticked scopes (a kind of record: several, separated by spaces)"}}), tag="account")},
        "/auth/account": {
            "get": _auth_op("The account: change password, signed-in browsers", ACCOUNT_PAGE, tag="account"),
            "post": _auth_op("The account (sign-in form posts here)", ACCOUNT_PAGE, body=ACCOUNT_FORM,
                             tag="account")},
        "/auth/account/password": {"post": _auth_op("Change the password (the other browsers are signed out)", {
            "200": _page("Changed"), "400": _page("Not signed in, form expired, wrong or refused password")},
            body=_form_body({**CSRF, "current_password": _string("Current password"),
                             "new_password": _string("New password"), "new_password_again": _string("Again")}),
            tag="account")},
        "/auth/account/sessions/end": {"post": _auth_op("Sign out a browser, or every other one", {
            "200": _page("The account page, or signed out (this browser)"),
            "400": _page("Not signed in or form expired")},
            body=_form_body({**CSRF, "sid": _string("The browser's session"),
                             "others": _string("1: every other browser")}), tag="account")},
        "/auth/logout": {
            "get": _auth_op("OpenID Connect RP-initiated logout (the practice's own apps)", {
                "200": _page("Signed out"), "303": _redirect("To the app's registered post_logout_redirect_uri"),
                "400": _page("No valid id_token_hint")},
                parameters=[query("id_token_hint", "An id_token this server issued"),
                            query("post_logout_redirect_uri", "Where to go afterwards (registered)"),
                            query("state", "Echoed back")], tag="account"),
            "post": _auth_op("Sign out (the session's grants end, offline_access ones excepted)", {
                "200": _page("Signed out")}, body=_form_body(CSRF), tag="account")},
    }
