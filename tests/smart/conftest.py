"""Accounts, apps and a patient record for the authorization tests."""

from __future__ import annotations

import pytest

from tests.smart.flows import PASSWORD, REDIRECT_URI
from tests.support import patient


@pytest.fixture
def smart(app):
    return app.extensions["smart"]


@pytest.fixture
def record(ctx):
    """Two patients and a practitioner, written straight through the repository."""
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Organization", "name": "Practice"}, fhir_id="org1")
        ctx.repository.create(conn, patient(managingOrganization={"reference": "Organization/org1"}), fhir_id="p1")
        ctx.repository.create(conn, patient(name=[{"family": "Other"}]), fhir_id="p2")
        ctx.repository.create(conn, {"resourceType": "Practitioner", "name": [{"family": "Doc"}]}, fhir_id="dr1")
    return {"patient": "p1", "other": "p2"}


@pytest.fixture
def patient_account(smart, record):
    return smart.accounts.create("ada", PASSWORD, kind="patient", fhir_user="Patient/p1", patients=("p1",))


@pytest.fixture
def staff_account(smart, record):
    return smart.accounts.create("drdoc", PASSWORD, kind="staff", fhir_user="Practitioner/dr1",
                                 organization="Organization/org1", roles=("staff",))


@pytest.fixture
def public_app(smart):
    client, _ = smart.clients.register({"client_name": "Public App", "redirect_uris": [REDIRECT_URI],
                                        "token_endpoint_auth_method": "none"})
    return client


@pytest.fixture
def confidential_app(smart):
    client, secret = smart.clients.register({"client_name": "Confidential App", "redirect_uris": [REDIRECT_URI]})
    return client, secret
