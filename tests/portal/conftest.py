"""The practice (staff accounts, a patient with email and phone, a caregiver) and the helpers the
portal tests share: Parameters as a dict, the latest message in the outbox, the registration link,
and filling in the registration page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from fhirportal.store.outbox_schema import outbox
from tests.support import Fhir

PASSWORD = "a long enough passphrase"
CAREGIVER_BIRTH_DATE = "1970-01-01"  # the caregiver rp1's own, asked at registration


@pytest.fixture
def practice(ctx, app):
    smart = app.extensions["smart"]
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Organization", "name": "Practice"}, fhir_id="org")
        ctx.repository.create(conn, {"resourceType": "Practitioner", "name": [{"family": "Doc"}]}, fhir_id="dr")
        ctx.repository.create(conn, {
            "resourceType": "Patient", "name": [{"family": "Garcia", "given": ["Maria"]}], "birthDate": "1980-04-02",
            "telecom": [{"system": "email", "value": "maria@example.org"}, {"system": "phone", "value": "555-0100"}],
            "managingOrganization": {"reference": "Organization/org"}}, fhir_id="p1")
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": "Noemail"}],
                                     "birthDate": "1975-05-05"}, fhir_id="p2")
        ctx.repository.create(conn, {
            "resourceType": "RelatedPerson", "patient": {"reference": "Patient/p1"}, "name": [{"family": "Carer"}],
            "birthDate": CAREGIVER_BIRTH_DATE, "telecom": [{"system": "email", "value": "carer@example.org"}]},
            fhir_id="rp1")
    inviter = smart.accounts.create("nurse", "nurse-password-1", kind="staff", fhir_user="Practitioner/dr",
                                    organization="Organization/org", roles=("staff", "invite"))
    clerk = smart.accounts.create("clerk", "clerk-password-1", kind="staff", organization="Organization/org",
                                  roles=("staff",))

    def staff(account) -> Fhir:
        return Fhir(app.test_client(), ctx.tokens.mint(
            client_id="ehr", scope="user/*.cruds", account_id=account.id,
            context={"fhirUser": account.fhir_user, "organization": "Organization/org"}))

    return {"nurse": staff(inviter), "clerk": staff(clerk)}


def params(response) -> dict:
    body = response.get_json()
    assert body["resourceType"] == "Parameters", body
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in body["parameter"]}


def last_email(ctx, to: str) -> str:
    with ctx.database.read() as conn:
        return conn.execute(select(outbox.c.body).where(outbox.c.recipient == to).order_by(outbox.c.id.desc())
                            .limit(1)).scalar_one()


def link_token(ctx, to: str) -> str:
    return re.search(r"/portal/register\?t=([\w-]+)", last_email(ctx, to)).group(1)


def register(client, token: str, *, birth_date="1980-04-02", pin: str, username="maria", password=PASSWORD,
             existing: bool = False):
    page = client.get(f"/portal/register?t={token}")
    if page.status_code != 200:
        return page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    data = {"csrf_token": csrf, "birth_date": birth_date, "pin": pin, "username": username, "password": password,
            "password_again": "" if existing else password}
    if existing:
        data["existing"] = "1"
    return client.post(f"/portal/register?t={token}", data=data)
