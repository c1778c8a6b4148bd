"""Security checks against the live gunicorn server (2 worker processes), over HTTP.

1. Guessing is capped across workers: wrong PINs and wrong SMS security codes on the portal
   registration page, and wrong passwords on the SMART sign-in page, sent as a burst of concurrent
   requests on fresh connections (so they land on both workers and race each other), lock the
   invitation / the account after 5 wrong answers — counted in the database, no lost update — and
   then even the right answer is refused.
2. Secrets never reach the server's log: after a full flow (PIN registration, SMS-code
   registration, a failed and a good sign-in, code exchange, FHIR reads, refresh, introspection,
   revocation), none of the passwords, the PIN, the SMS code, the registration link, the
   authorization code or the access/refresh tokens appears in gunicorn's stderr log — with the
   default logging and with every logger at DEBUG (a second server on the same database started
   with a gunicorn logging configuration whose root logger is DEBUG: the server has no log-level
   setting of its own).
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from fhirportal.portal.invitations import MAX_FAILED_ATTEMPTS
from fhirportal.portal.pages import CSRF_COOKIE as PORTAL_CSRF
from fhirportal.smart.accounts import AccountStore
from fhirportal.smart.routes import CSRF_COOKIE
from fhirportal.store.auth_schema import account, portal_invitation
from fhirportal.store.database import Database
from fhirportal.store.outbox_schema import outbox
from tests.e2e.gunicorn_server import GunicornServer
from tests.e2e.test_smart_live import (  # noqa: F401  (live: the module's fixture, demo accounts loaded)
    CONFIDENTIAL_APP,
    REDIRECT_URI,
    _authorize_url,
    _bearer,
    _callback,
    _form,
    _pkce,
    _sign_in_and_consent,
    _token,
    live,
)

BURST = 12  # concurrent wrong answers: more than the 5 allowed, more than one worker's 4 threads
PASSWORD_RE = "a long enough passphrase {}"


# -- helpers ------------------------------------------------------------------------------------------

def _system(server) -> dict:
    return {"Authorization": f"Bearer {server['token']}", "Accept": "application/fhir+json"}


def _params(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in response.json()["parameter"]}


def _latest_message(server, channel: str, to: str, after: int = 0, seconds: float = 30) -> tuple[int, str]:
    """The newest outbox message on ``channel`` to ``to`` with an id above ``after`` (waits for it)."""
    database = Database(server["database_url"])
    deadline = time.monotonic() + seconds
    try:
        while True:
            with database.read() as conn:
                row = conn.execute(select(outbox.c.id, outbox.c.body).where(
                    outbox.c.channel == channel, outbox.c.recipient == to, outbox.c.id > after)
                    .order_by(outbox.c.id.desc()).limit(1)).first()
            if row is not None:
                return row.id, row.body
            assert time.monotonic() < deadline, f"no {channel} to {to}"
            time.sleep(0.1)
    finally:
        database.dispose()


def _invite(server, patient_id: str) -> dict:
    """Invite the demo patient with the system token: the link (from the emailed message), its
    token, the PIN, the birth date and the phone on file."""
    base = server["base_url"]
    patient = requests.get(f"{base}/Patient/{patient_id}", headers=_system(server), timeout=30).json()
    invited = _params(requests.post(f"{base}/Patient/{patient_id}/$portal-invite", headers=_system(server),
                                    timeout=30))
    pin = _params(requests.get(f"{base}/Patient/{patient_id}/$portal-status", headers=_system(server),
                               timeout=30))["accessCode"]
    _, body = _latest_message(server, "email", invited["email"])
    link = re.search(r"https?://\S+/portal/register\?t=[\w-]+", body).group(0)
    phone = next(t["value"] for t in patient["telecom"] if t["system"] == "phone")
    return {"link": link, "link_token": link.split("t=")[1], "pin": pin, "birth_date": patient["birthDate"],
            "phone": phone, "patient": patient_id}


def _csrf(url: str) -> str:
    page = requests.get(url, timeout=30)
    assert page.status_code == 200, page.text
    return page.cookies[PORTAL_CSRF]


def _post_fresh(url: str, data: dict, cookies: dict) -> requests.Response:
    """One POST on a connection of its own (no keep-alive): the next may go to the other worker."""
    return requests.post(url, data=data, cookies=cookies, headers={"Connection": "close"}, timeout=60,
                         allow_redirects=False)


def _burst(requests_to_send: list) -> list[requests.Response]:
    with ThreadPoolExecutor(len(requests_to_send)) as pool:
        return list(pool.map(lambda call: call(), requests_to_send))


def _invitation_row(server, patient_id: str):
    database = Database(server["database_url"])
    try:
        with database.read() as conn:
            return conn.execute(select(portal_invitation).where(portal_invitation.c.subject_id == patient_id)
                                .order_by(portal_invitation.c.id.desc()).limit(1)).one()
    finally:
        database.dispose()


def _registration(invitation: dict, username: str, password: str, **proof) -> dict:
    return {"birth_date": invitation["birth_date"], "username": username, "password": password,
            "password_again": password, **proof}


def _send_code(invitation: dict) -> requests.Response:
    csrf = _csrf(invitation["link"])
    return requests.post(invitation["link"], cookies={PORTAL_CSRF: csrf}, timeout=30, data={
        "csrf_token": csrf, "send_code": "1", "birth_date": invitation["birth_date"], "phone": invitation["phone"]})


# -- 1. guessing is capped across workers -----------------------------------------------------------------

def test_pin_guessing_is_locked_after_five_across_workers(live):  # noqa: F811
    invitation = _invite(live, "patient-022")
    csrf = _csrf(invitation["link"])
    wrong = [_registration(invitation, f"guesser{n}", PASSWORD_RE.format(n), csrf_token=csrf, pin=f"ZZZZ-{n:04d}")
             for n in range(BURST)]
    answers = _burst([lambda d=d: _post_fresh(invitation["link"], d, {PORTAL_CSRF: csrf}) for d in wrong])
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {400, 410}, statuses
    assert statuses.count(400) < MAX_FAILED_ATTEMPTS, f"more than 5 guesses were judged: {statuses}"
    row = _invitation_row(live, "patient-022")
    assert row.state == "locked" and row.failed_attempts == MAX_FAILED_ATTEMPTS, (row.state, row.failed_attempts)
    right = _post_fresh(invitation["link"], _registration(invitation, "rightful", PASSWORD_RE.format("r"),
                                                          csrf_token=csrf, pin=invitation["pin"]),
                        {PORTAL_CSRF: csrf})
    assert right.status_code == 410 and "locked" in right.text


def test_sms_code_guessing_is_locked_after_five_across_workers(live):  # noqa: F811
    invitation = _invite(live, "patient-023")
    assert _send_code(invitation).status_code == 200
    _, message = _latest_message(live, "sms", invitation["phone"])
    code = re.search(r"\b(\d{6})\b", message).group(1)
    url = invitation["link"] + "&step=code"
    csrf = _csrf(url)
    guesses = [f"{(int(code) + n + 1) % 1_000_000:06d}" for n in range(BURST)]
    wrong = [_registration(invitation, f"texter{n}", PASSWORD_RE.format(n), csrf_token=csrf, method="sms", code=g)
             for n, g in enumerate(guesses)]
    answers = _burst([lambda d=d: _post_fresh(url, d, {PORTAL_CSRF: csrf}) for d in wrong])
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {400, 410}, statuses
    assert statuses.count(400) < MAX_FAILED_ATTEMPTS, f"more than 5 codes were judged: {statuses}"
    row = _invitation_row(live, "patient-023")
    assert row.state == "locked" and row.failed_attempts == MAX_FAILED_ATTEMPTS, (row.state, row.failed_attempts)
    right = _post_fresh(url, _registration(invitation, "rightful2", PASSWORD_RE.format("r"), csrf_token=csrf,
                                           method="sms", code=code), {PORTAL_CSRF: csrf})
    assert right.status_code == 410 and "locked" in right.text


def test_password_guessing_locks_the_account_across_workers(live):  # noqa: F811
    username, password = f"brute-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    database = Database(live["database_url"])
    try:
        AccountStore(database).create(username, password, kind="patient", fhir_user="Patient/patient-027",
                                      patients=("patient-027",))
    finally:
        database.dispose()
    verifier, challenge = _pkce()
    page = requests.get(_authorize_url(live, CONFIDENTIAL_APP[0], "launch/patient patient/Patient.rs", challenge, "s"),
                        timeout=30)
    action, csrf = _form(page.text)
    cookies = {CSRF_COOKIE: page.cookies[CSRF_COOKIE]}

    def attempt(guess: str) -> requests.Response:
        return _post_fresh(action, {"csrf_token": csrf, "step": "login", "username": username, "password": guess},
                           cookies)

    answers = _burst([lambda n=n: attempt(f"wrong-{n}") for n in range(BURST)])
    assert {a.status_code for a in answers} == {401}, [a.status_code for a in answers]
    database = Database(live["database_url"])
    try:
        with database.read() as conn:
            row = conn.execute(select(account).where(account.c.username == username)).one()
    finally:
        database.dispose()
    assert row.locked_until is not None, f"not locked after {BURST} wrong passwords ({row.failed_logins} counted)"
    assert attempt(password).status_code == 401  # locked: even the right password is refused


# -- 2. secrets never in the log ------------------------------------------------------------------------

def _full_flow(server, pin_patient: str, sms_patient: str) -> dict[str, str]:
    """Everything a person and an app do, on ``server``; every secret value used, by name."""
    origin = server["base_url"].removesuffix("/fhir")
    used: dict[str, str] = {}
    # registration with the PIN
    by_pin = _invite(server, pin_patient)
    used |= {"pin": by_pin["pin"], "pin-bare": by_pin["pin"].replace("-", ""), "link": by_pin["link_token"]}
    user, password = f"log-{uuid.uuid4().hex[:8]}", f"Pw-{secrets.token_urlsafe(12)}"
    used["password"] = password
    csrf = _csrf(by_pin["link"])
    registered = requests.post(by_pin["link"], cookies={PORTAL_CSRF: csrf}, timeout=30, data=_registration(
        by_pin, user, password, csrf_token=csrf, method="pin", pin=by_pin["pin"]))
    assert registered.status_code == 201, registered.text
    # registration with an SMS code (a wrong one first)
    by_sms = _invite(server, sms_patient)
    used["link-sms"] = by_sms["link_token"]
    assert _send_code(by_sms).status_code == 200
    _, message = _latest_message(server, "sms", by_sms["phone"])
    code = re.search(r"\b(\d{6})\b", message).group(1)
    used["sms-code"] = code
    url = by_sms["link"] + "&step=code"
    csrf = _csrf(url)
    sms_password = f"Pw-{secrets.token_urlsafe(12)}"
    used["sms-password"] = sms_password
    wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
    used["wrong-sms-code"] = wrong_code
    assert requests.post(url, cookies={PORTAL_CSRF: csrf}, timeout=30, data=_registration(
        by_sms, f"sms-{uuid.uuid4().hex[:8]}", sms_password, csrf_token=csrf, method="sms", code=wrong_code)
    ).status_code == 400
    assert requests.post(url, cookies={PORTAL_CSRF: csrf}, timeout=30, data=_registration(
        by_sms, f"sms-{uuid.uuid4().hex[:8]}", sms_password, csrf_token=csrf, method="sms", code=code)
    ).status_code == 201
    # a failed sign-in, then the SMART launch of the confidential app
    live_like = {**server, "origin": origin}
    verifier, challenge = _pkce()
    scope = "launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs"
    wrong_password = f"Wrong-{secrets.token_urlsafe(12)}"
    used["wrong-password"] = wrong_password
    session = requests.Session()
    page = session.get(_authorize_url(live_like, CONFIDENTIAL_APP[0], scope, challenge, "st"), timeout=30)
    action, csrf = _form(page.text)
    refused = session.post(action, data={"csrf_token": csrf, "step": "login", "username": user,
                                         "password": wrong_password}, timeout=30)
    assert refused.status_code == 401
    callback = _callback(_sign_in_and_consent(session, _authorize_url(live_like, CONFIDENTIAL_APP[0], scope, challenge,
                                                                      "st"), (user, password)))
    used["code"] = callback["code"]
    issued = _token(live_like, {"grant_type": "authorization_code", "code": callback["code"],
                                "redirect_uri": REDIRECT_URI, "code_verifier": verifier}, auth=CONFIDENTIAL_APP)
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    used |= {"access": tokens["access_token"], "refresh": tokens["refresh_token"], "id_token": tokens["id_token"]}
    base = server["base_url"]
    assert requests.get(f"{base}/Patient/{pin_patient}", headers=_bearer(tokens["access_token"]), timeout=30).ok
    assert requests.get(f"{base}/Observation", params={"patient": pin_patient},
                        headers=_bearer(tokens["access_token"]), timeout=30).ok
    assert requests.get(f"{base}/Patient/patient-001", headers=_bearer(tokens["access_token"]),
                        timeout=30).status_code in (403, 404)
    refreshed = _token(live_like, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                       auth=CONFIDENTIAL_APP)
    assert refreshed.status_code == 200, refreshed.text
    used |= {"access-2": refreshed.json()["access_token"], "refresh-2": refreshed.json()["refresh_token"]}
    assert requests.post(f"{origin}/auth/introspect", data={"token": used["access-2"]}, auth=CONFIDENTIAL_APP,
                         timeout=30).json()["active"] is True
    assert _token(live_like, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                  auth=CONFIDENTIAL_APP).status_code == 400  # a used refresh token
    assert _token(live_like, {"grant_type": "authorization_code", "code": callback["code"],
                              "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
                  auth=CONFIDENTIAL_APP).status_code == 400  # a replayed code
    assert requests.get(f"{base}/Patient", headers=_bearer(tokens["access_token"]), timeout=30).status_code == 401
    assert requests.post(f"{origin}/auth/revoke", data={"token": used["refresh-2"]}, auth=CONFIDENTIAL_APP,
                         timeout=30).status_code == 200
    used["client-secret"] = CONFIDENTIAL_APP[1]
    return used


def _assert_no_secret_logged(log_path: Path, used: dict[str, str]) -> None:
    """None of ``used`` in the log. The registration links are the URLs of the emailed page: an
    access log (off by default, on in the DEBUG configuration) records them like any request line;
    nothing else may show them."""
    time.sleep(0.5)  # the workers' last log lines
    log = log_path.read_text(errors="replace")
    log = "\n".join(re.sub(r'"(GET|POST) /portal/register\?t=[\w-]+', '"\\1 /portal/register?t=…', line)
                    if " gunicorn.access " in line else line for line in log.splitlines())
    assert log, "the log is empty: the check would prove nothing"
    found = {name: value for name, value in used.items() if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", log)}
    lines = [line[:300] for line in log.splitlines() if any(v in line for v in found.values())][:5]
    assert not found, f"secrets in the server log: {sorted(found)}, e.g. {lines}"


def test_no_secret_reaches_the_log(live):  # noqa: F811
    used = _full_flow(live, "patient-025", "patient-026")
    _assert_no_secret_logged(live["log_path"], used)


DEBUG_LOGGING = '''
loglevel = "debug"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "DEBUG", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "DEBUG", "handlers": ["stderr"], "propagate": False, "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "DEBUG", "handlers": ["stderr"], "propagate": False,
                            "qualname": "gunicorn.access"},
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "formatters": {"plain": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}},
}
'''


@pytest.fixture(scope="module")
def debug_server(live, tmp_path_factory):  # noqa: F811
    """A second gunicorn (2 workers) over the live server's database, every logger at DEBUG."""
    directory = tmp_path_factory.mktemp("debug-log")
    config, log_path = directory / "gunicorn_debug.py", directory / "gunicorn-debug.log"
    config.write_text(DEBUG_LOGGING)
    server = GunicornServer(live["database_url"], log_path, args=("-c", str(config))).start()
    try:
        yield {**live, "base_url": server.base_url, "log_path": log_path}
    finally:
        server.stop()


def test_no_secret_reaches_a_debug_log(debug_server):
    used = _full_flow(debug_server, "patient-027", "patient-013")
    log = debug_server["log_path"].read_text(errors="replace")
    assert " DEBUG " in log, "the server did not log at DEBUG: the check would prove nothing"
    _assert_no_secret_logged(debug_server["log_path"], used)
