"""PHR invite settings (``/admin/phr-settings``): staff read, administrators write, every change
journalled, and "may invite" is what ``$portal-invite`` obeys."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fhirportal.portal.settings_api import PracticeSettings
from fhirportal.store.journal_schema import access_log
from tests.support import Fhir

URL = "/admin/phr-settings"


@pytest.fixture
def staff(ctx, app):
    smart = app.extensions["smart"]
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Organization", "name": "Practice"}, fhir_id="org")
        ctx.repository.create(conn, {
            "resourceType": "Patient", "name": [{"family": "Garcia"}], "birthDate": "1980-04-02",
            "telecom": [{"system": "email", "value": "maria@example.org"}],
            "managingOrganization": {"reference": "Organization/org"}}, fhir_id="p1")
    created = {
        "admin": smart.accounts.create("boss", "boss-password-1", kind="staff", fhir_user="Practitioner/boss",
                                       organization="Organization/org", roles=("staff", "admin")),
        "nurse": smart.accounts.create("nurse", "nurse-password-1", kind="staff", fhir_user="Practitioner/dr",
                                       organization="Organization/org", roles=("staff", "invite")),
        "clerk": smart.accounts.create("clerk", "clerk-password-1", kind="staff", organization="Organization/org",
                                       roles=("staff",)),
        "maria": smart.accounts.create("maria", "maria-password-1", kind="patient", fhir_user="Patient/p1",
                                       patients=("p1",)),
    }
    tokens = {}
    for name, account in created.items():
        if account.kind == "staff":
            tokens[name] = ctx.tokens.mint(client_id="ehr", scope="user/*.cruds", account_id=account.id, context={
                "fhirUser": account.fhir_user, "organization": "Organization/org"})
        else:
            tokens[name] = ctx.tokens.mint(client_id="portal-app", scope="patient/*.rs", account_id=account.id,
                                           context={"patient": "p1", "fhirUser": "Patient/p1"})
    return tokens


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def users_by_name(body: dict) -> dict:
    return {user["username"]: user for user in body["users"]}


def journal(ctx) -> list:
    ctx.audit.flush()
    with ctx.database.read() as conn:
        return conn.execute(select(access_log).where(access_log.c.action == "phr-settings")
                            .order_by(access_log.c.id)).all()


def test_staff_read_the_defaults(client, staff):
    response = client.get(URL, headers=bearer(staff["clerk"]))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["practice"] == {"auto_invite_enabled": False, "lab_sharing_default": "withheld"}
    assert body["can_edit"] is False
    users = users_by_name(body)
    assert set(users) == {"boss", "nurse", "clerk"}  # staff only, not the patient
    assert users["nurse"] == {"username": "nurse", "fhirUser": "Practitioner/dr", "roles": ["invite", "staff"],
                              "active": True, "may_invite": True, "auto_invite_on_signed_note": False}
    assert users["clerk"]["may_invite"] is False and users["clerk"]["fhirUser"] is None
    assert users["boss"]["may_invite"] is True  # administrators always may
    assert client.get(URL, headers=bearer(staff["admin"])).get_json()["can_edit"] is True


def test_admin_changes_practice_settings(ctx, client, staff):
    response = client.patch(URL, json={"auto_invite_enabled": True, "lab_sharing_default": "shared"},
                            headers=bearer(staff["admin"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"auto_invite_enabled": True, "lab_sharing_default": "shared"}
    assert client.get(URL, headers=bearer(staff["nurse"])).get_json()["practice"] == response.get_json()
    settings = PracticeSettings(ctx.database)
    assert settings.get("auto_invite_enabled") is True and settings.get("lab_sharing_default") == "shared"
    # one field at a time leaves the other alone
    assert client.patch(URL, json={"auto_invite_enabled": False}, headers=bearer(staff["admin"])).get_json() == {
        "auto_invite_enabled": False, "lab_sharing_default": "shared"}
    rows = journal(ctx)
    assert [row.outcome for row in rows] == [200, 200]
    assert rows[0].query.startswith("practice?") and "auto_invite_enabled=true" in rows[0].query
    assert "lab_sharing_default=%22shared%22" in rows[0].query
    assert rows[0].fhir_user == "Practitioner/boss" and rows[0].client_id == "ehr"


def test_admin_changes_a_users_flags(ctx, app, client, staff):
    response = client.patch(f"{URL}/users/clerk", json={"may_invite": True, "auto_invite_on_signed_note": True},
                            headers=bearer(staff["admin"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"username": "clerk", "fhirUser": None, "roles": ["invite", "staff"],
                                   "active": True, "may_invite": True, "auto_invite_on_signed_note": True}
    assert app.extensions["smart"].accounts.by_username("clerk").roles == {"staff", "invite"}
    users = users_by_name(client.get(URL, headers=bearer(staff["clerk"])).get_json())
    assert users["clerk"]["may_invite"] is True and users["clerk"]["auto_invite_on_signed_note"] is True

    settings = PracticeSettings(ctx.database)
    clerk_id = app.extensions["smart"].accounts.by_username("clerk").id
    assert settings.auto_invite_users() == [] and not settings.auto_invites(clerk_id)  # practice switch is off
    client.patch(URL, json={"auto_invite_enabled": True}, headers=bearer(staff["admin"]))
    assert settings.auto_invite_users() == [clerk_id] and settings.auto_invites(clerk_id)

    flag_only = client.patch(f"{URL}/users/clerk", json={"auto_invite_on_signed_note": False},
                             headers=bearer(staff["admin"]))
    assert flag_only.get_json()["may_invite"] is True and flag_only.get_json()["auto_invite_on_signed_note"] is False
    rows = journal(ctx)
    assert rows[0].query == "user?username=clerk&may_invite=true&auto_invite_on_signed_note=true"
    assert rows[-1].query == "user?username=clerk&auto_invite_on_signed_note=false"


def test_turning_may_invite_off_refuses_portal_invite(ctx, client, staff):
    nurse = Fhir(client, staff["nurse"])
    off = client.patch(f"{URL}/users/nurse", json={"may_invite": False}, headers=bearer(staff["admin"]))
    assert off.status_code == 200 and off.get_json()["may_invite"] is False and off.get_json()["roles"] == ["staff"]
    refused = nurse.post("Patient/p1/$portal-invite")
    assert refused.status_code == 403, refused.get_json()
    assert "PHR invite settings" in refused.get_json()["issue"][0]["diagnostics"]
    on = client.patch(f"{URL}/users/nurse", json={"may_invite": True}, headers=bearer(staff["admin"]))
    assert on.get_json()["may_invite"] is True
    assert nurse.post("Patient/p1/$portal-invite").status_code == 200


def test_non_admins_may_not_change_anything(ctx, client, staff):
    for name in ("nurse", "clerk"):
        response = client.patch(URL, json={"auto_invite_enabled": True}, headers=bearer(staff[name]))
        assert response.status_code == 403
        assert response.get_json()["error"] == "forbidden" and "administrator" in response.get_json()[
            "error_description"]
        # refused before the body is even looked at
        assert client.patch(f"{URL}/users/{name}", json={"bogus": 1}, headers=bearer(staff[name])).status_code == 403
    assert PracticeSettings(ctx.database).get("auto_invite_enabled") is False
    assert [row.outcome for row in journal(ctx)] == [403] * 4  # refused changes are journalled too


def test_tokens_that_are_not_staff_are_refused(ctx, client, staff):
    missing = client.get(URL)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.get_json()["error"] == "invalid_request"
    for headers in (bearer("not-a-token"), {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        response = client.patch(URL, json={"auto_invite_enabled": True}, headers=headers)
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    patient = client.get(URL, headers=bearer(staff["maria"]))
    assert patient.status_code == 403 and patient.get_json()["error"] == "forbidden"
    assert client.patch(URL, json={"auto_invite_enabled": True}, headers=bearer(staff["maria"])).status_code == 403
    backend = ctx.tokens.mint(client_id="ehr-backend", scope="system/*.cruds")
    assert client.get(URL, headers=bearer(backend)).status_code == 403


def test_bad_input_is_a_4xx_never_a_500(app, client, staff):
    admin = bearer(staff["admin"])
    for body in ({}, {"auto_invite_enabled": "yes"}, {"auto_invite_enabled": 1}, {"lab_sharing_default": "all"},
                 {"unknown": True}, [], "text", None):
        response = client.patch(URL, json=body, headers=admin)
        assert response.status_code == 422, (body, response.get_json())
        assert response.get_json()["error"] == "invalid_request" and "error_description" in response.get_json()
    assert client.patch(URL, json={"auto_invite_enabled": "yes"}, headers=admin).get_json()["errors"] == {
        "auto_invite_enabled": ["Not a valid boolean."]}
    broken = client.patch(URL, data="{not json", content_type="application/json", headers=admin)
    assert broken.status_code == 400 and broken.get_json()["error"] == "invalid_request"
    for body in ({"may_invite": "no"}, {}, {"roles": ["admin"]}):
        assert client.patch(f"{URL}/users/nurse", json=body, headers=admin).status_code == 422
    unknown = client.patch(f"{URL}/users/nobody", json={"may_invite": True}, headers=admin)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
    assert client.patch(f"{URL}/users/maria", json={"may_invite": True}, headers=admin).status_code == 404
    conflict = client.patch(f"{URL}/users/boss", json={"may_invite": False}, headers=admin)
    assert conflict.status_code == 409 and conflict.get_json()["error"] == "conflict"
    assert app.extensions["smart"].accounts.by_username("maria").roles == frozenset()


def test_openapi_document_lists_the_api(client):
    spec = client.get("/api-docs/openapi.json").get_json()
    assert set(spec["paths"]["/admin/phr-settings"]) >= {"get", "patch"}
    assert "patch" in spec["paths"]["/admin/phr-settings/users/{username}"]
    schemas = spec["components"]["schemas"]
    assert {"PhrSettings", "StaffUser", "PracticeSettingsPatch", "StaffUserPatch"} <= set(schemas)
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert spec["paths"]["/admin/phr-settings"]["patch"]["security"] == [{"bearerAuth": []}]
    page = client.get("/api-docs/")
    assert page.status_code == 200 and b"swagger" in page.data.lower()
