"""The phone path of registration (no PIN): date of birth + the phone number on file, a 6-digit
security code by SMS (read from the outbox: no gateway configured), then the code on the page."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from fhirportal.store import clock
from fhirportal.store.auth_schema import portal_invitation
from fhirportal.store.outbox_schema import outbox
from tests.portal.conftest import CAREGIVER_BIRTH_DATE, PASSWORD, link_token, params, register

BIRTH_DATE = "1980-04-02"
MAYBE_SENT = "If the details match our records, we sent a security code to your phone."
SMS = re.compile(r"^Your Practice portal security code is (\d{6})\. It expires in 10 minutes\.$")


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def send_code(client, token: str, *, birth_date=BIRTH_DATE, phone="555-0100"):
    page = client.get(f"/portal/register?t={token}")
    assert page.status_code == 200, page.get_data(as_text=True)
    answered = client.post(f"/portal/register?t={token}", data={
        "csrf_token": csrf_of(page), "birth_date": birth_date, "phone": phone, "send_code": "1"})
    answered.close()  # what the server does once the answer is written: only then is the SMS sent
    return answered


def register_with_code(client, token: str, code: str, *, birth_date=BIRTH_DATE, username="maria",
                       password=PASSWORD):
    page = client.get(f"/portal/register?t={token}&step=code")
    if page.status_code != 200:
        return page
    return client.post(f"/portal/register?t={token}", data={
        "csrf_token": csrf_of(page), "method": "sms", "birth_date": birth_date, "code": code,
        "username": username, "password": password, "password_again": password})


def messages(ctx, channel: str | None = None) -> list:
    query = select(outbox).order_by(outbox.c.id)
    if channel:
        query = query.where(outbox.c.channel == channel)
    with ctx.database.read() as conn:
        return conn.execute(query).all()


def code_in(row) -> str:
    match = SMS.match(row.body)
    assert match, row.body
    return match.group(1)


def status_text(response) -> str:
    return re.search(r'<p role="status">([^<]*)</p>', response.get_data(as_text=True)).group(1)


def invite(ctx, practice, subject="Patient/p1", to="maria@example.org", **inputs) -> tuple[str, str]:
    body = {"resourceType": "Parameters", "parameter": [{"name": k, "valueString": v} for k, v in inputs.items()]}
    answer = params(practice["nurse"].post(f"{subject}/$portal-invite", body if inputs else None))
    return answer["accessCode"], link_token(ctx, to)


def invitation_row(ctx):
    with ctx.database.read() as conn:
        return conn.execute(select(portal_invitation).order_by(portal_invitation.c.id.desc()).limit(1)).one()


def test_matching_birth_date_and_phone_text_a_six_digit_code_and_nothing_else(ctx, client, practice):
    pin, token = invite(ctx, practice)
    before = messages(ctx)
    answered = send_code(client, token, phone="(555) 01-00")  # spaces, dashes and parentheses do not matter
    assert answered.status_code == 200
    assert status_text(answered).startswith(MAYBE_SENT)
    assert answered.headers["X-Frame-Options"] == "DENY" and "no-store" in answered.headers["Cache-Control"]
    assert 'name="code"' in answered.get_data(as_text=True)  # the page asks for the code now
    sent = messages(ctx)[len(before):]
    assert len(sent) == 1 and sent[0].channel == "sms" and sent[0].recipient == "555-0100"
    code = code_in(sent[0])
    assert pin not in sent[0].body and pin.replace("-", "") not in sent[0].body
    row = invitation_row(ctx)
    assert row.code_requests == 1 and row.code_hash and code not in " ".join(str(v) for v in row)  # only a hash
    lifetime = clock.ensure_utc(row.code_expires_at) - clock.now()
    assert timedelta(minutes=9) < lifetime <= timedelta(minutes=10)


def test_wrong_birth_date_or_phone_answer_the_same_and_send_nothing(ctx, client, practice):
    _, token = invite(ctx, practice)
    wrong_birth = send_code(client, token, birth_date="1999-01-01")
    wrong_phone = send_code(client, token, phone="555-0199")
    assert wrong_birth.status_code == wrong_phone.status_code == 200
    assert status_text(wrong_birth) == status_text(wrong_phone)
    assert messages(ctx, "sms") == []
    right = send_code(client, token, phone="+1 555 0100")
    assert right.status_code == 200 and status_text(right) == status_text(wrong_birth)
    assert len(messages(ctx, "sms")) == 1


def test_a_fourth_request_is_refused_and_a_new_code_replaces_the_old(ctx, client, practice):
    _, token = invite(ctx, practice)
    codes = []
    for _ in range(3):
        assert send_code(client, token).status_code == 200
        codes.append(code_in(messages(ctx, "sms")[-1]))
    fourth = send_code(client, token)
    assert fourth.status_code == 429 and "no more can be sent" in fourth.get_data(as_text=True)
    assert len(messages(ctx, "sms")) == 3
    assert invitation_row(ctx).code_requests == 3
    if codes[0] != codes[2]:  # one in a million they are equal
        assert register_with_code(client, token, codes[0]).status_code == 400  # replaced
    assert register_with_code(client, token, codes[2]).status_code == 201


def test_requests_that_did_not_match_count_too(ctx, client, practice):
    """Else the refusal of a 4th request would tell which details were right."""
    _, token = invite(ctx, practice)
    for _ in range(3):
        send_code(client, token, birth_date="1999-01-01")
    refused = send_code(client, token)
    assert refused.status_code == 429 and messages(ctx, "sms") == []


def test_five_wrong_codes_lock_and_then_the_right_code_is_refused(ctx, app, client, practice):
    pin, token = invite(ctx, practice)
    send_code(client, token)
    code = code_in(messages(ctx, "sms")[-1])
    wrong = "000000" if code != "000000" else "111111"
    assert register(client, token, pin="WRONG12").status_code == 400  # wrong PINs count towards the same lock
    wrong_birth = register_with_code(client, token, code, birth_date="1999-01-01")
    assert wrong_birth.status_code == 400
    wrong_code = register_with_code(client, token, wrong)
    assert wrong_code.status_code == 400
    assert "date of birth or the security code" in wrong_birth.get_data(as_text=True)
    assert alert_text(wrong_birth) == alert_text(wrong_code)  # which one: not said
    assert register_with_code(client, token, wrong).status_code == 400
    locked = register_with_code(client, token, wrong)
    assert locked.status_code == 410 and "locked" in locked.get_data(as_text=True)
    assert register_with_code(client, token, code).status_code == 410
    assert register(client, token, pin=pin).status_code == 410
    status = params(practice["nurse"].get("Patient/p1/$portal-status"))
    assert status["status"] == "locked" and status["failedAttempts"] == 5
    assert app.extensions["smart"].accounts.by_username("maria") is None


def alert_text(response) -> str:
    return re.search(r'role="alert">([^<]*)<', response.get_data(as_text=True)).group(1)


def test_an_expired_code_is_refused_and_counted(ctx, client, practice):
    _, token = invite(ctx, practice)
    send_code(client, token)
    code = code_in(messages(ctx, "sms")[-1])
    with ctx.database.write() as conn:
        conn.execute(update(portal_invitation).values(code_expires_at=clock.now() - timedelta(seconds=1)))
    expired = register_with_code(client, token, code)
    assert expired.status_code == 400 and "expired" in expired.get_data(as_text=True)
    assert invitation_row(ctx).failed_attempts == 1
    send_code(client, token)  # a new code works
    assert register_with_code(client, token, code_in(messages(ctx, "sms")[-1])).status_code == 201


def test_the_right_code_registers_with_assurance_level2(ctx, app, client, practice):
    pin, token = invite(ctx, practice)
    send_code(client, token)
    code = code_in(messages(ctx, "sms")[-1])
    registered = register_with_code(client, token, f"{code[:3]} {code[3:]}")  # a space does not matter
    assert registered.status_code == 201, registered.get_data(as_text=True)
    account = app.extensions["smart"].accounts.by_username("maria")
    assert account.fhir_user == "Patient/p1" and account.patients == ("p1",)
    assert app.extensions["smart"].accounts.authenticate("maria", PASSWORD).id == account.id
    status = params(practice["nurse"].get("Patient/p1/$portal-status"))
    assert status["status"] == "registered"
    person = practice["nurse"].get(status["account"]["reference"]).get_json()
    assert person["active"] is True and person["link"][0]["assurance"] == "level2"
    row = invitation_row(ctx)
    assert row.code_hash is None and row.account_id == account.id
    assert register_with_code(client, token, code).status_code == 410  # the link is used up
    for sms in messages(ctx, "sms"):
        assert pin not in sms.body and pin.replace("-", "") not in sms.body
    ctx.audit.flush()
    ctx.audit.flush()
    events = practice["nurse"].get("AuditEvent", query_string={"patient": "p1"}).get_json()["entry"]
    actions = {e["resource"]["subtype"][0]["code"] for e in events}
    assert {"portal-send-code", "portal-register"} <= actions


def test_caregiver_phone_given_at_invite_with_country_code(ctx, client, practice):
    pin, token = invite(ctx, practice, "RelatedPerson/rp1", "carer@example.org", phone="+1 (555) 010-0200")
    send_code(client, token, birth_date=CAREGIVER_BIRTH_DATE, phone="555.010.0200")  # the caregiver's own
    sent = messages(ctx, "sms")
    assert len(sent) == 1 and sent[0].recipient == "+1 (555) 010-0200"
    assert pin not in sent[0].body and pin.replace("-", "") not in sent[0].body
    registered = register_with_code(client, token, code_in(sent[0]), birth_date=CAREGIVER_BIRTH_DATE,
                                    username="carer")
    assert registered.status_code == 201, registered.get_data(as_text=True)


def test_no_phone_on_file_sends_nothing(ctx, client, practice):
    _, token = invite(ctx, practice, "RelatedPerson/rp1", "carer@example.org")
    answered = send_code(client, token, phone="")
    assert answered.status_code == 200 and status_text(answered).startswith(MAYBE_SENT)
    assert messages(ctx, "sms") == []


def test_sending_a_code_needs_the_csrf_token(ctx, client, practice):
    _, token = invite(ctx, practice)
    client.get(f"/portal/register?t={token}")
    forged = client.post(f"/portal/register?t={token}", data={
        "csrf_token": "forged", "birth_date": BIRTH_DATE, "phone": "555-0100", "send_code": "1"})
    assert forged.status_code == 400 and messages(ctx, "sms") == []
    assert invitation_row(ctx).code_requests == 0


def test_resend_by_staff_allows_new_codes(ctx, client, practice):
    _, token = invite(ctx, practice)
    for _ in range(3):
        send_code(client, token)
    params(practice["nurse"].post("Patient/p1/$portal-resend"))
    token = link_token(ctx, "maria@example.org")
    assert send_code(client, token).status_code == 200 and len(messages(ctx, "sms")) == 4
    assert register_with_code(client, token, code_in(messages(ctx, "sms")[-1])).status_code == 201



def test_the_sms_goes_out_after_the_answer(ctx, client, practice):
    """The time to answer must not tell whether the details matched (a gateway call is slow)."""
    _, token = invite(ctx, practice)
    page = client.get(f"/portal/register?t={token}")
    answered = client.post(f"/portal/register?t={token}", data={
        "csrf_token": csrf_of(page), "birth_date": BIRTH_DATE, "phone": "555-0100", "send_code": "1"})
    assert answered.status_code == 200 and messages(ctx, "sms") == []  # answered, not yet sent
    answered.close()
    assert len(messages(ctx, "sms")) == 1
