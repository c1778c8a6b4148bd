"""Every response carries X-Request-ID: the trusted proxy's when valid, a new one otherwise; the id is
in the request's access-log row and in the AuditEvent staff (not patients) read."""

from __future__ import annotations

import re

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import select

from fhirportal.fhir.audit_events import REQUEST_ID_TYPE
from fhirportal.store.journal_schema import access_log
from tests.support import Fhir, patient

MADE = re.compile(r"[0-9a-f]{32}")


def test_a_request_without_one_gets_a_new_id(client):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert MADE.fullmatch(first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_an_untrusted_header_is_replaced(client):
    answer = client.get("/healthz", headers={"X-Request-ID": "from-the-client"})
    assert MADE.fullmatch(answer.headers["X-Request-ID"])


def test_a_trusted_proxy_id_is_kept(ops_client):
    for given in ("abc", "req-1.2_3", "A" * 64):
        assert ops_client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given


@pytest.mark.parametrize("given", ["", "A" * 65, "has space", "semi;colon", "new\\nline", "é"])
def test_an_invalid_trusted_header_is_replaced(ops_client, given):
    answer = ops_client.get("/healthz", headers={"X-Request-ID": given})
    assert MADE.fullmatch(answer.headers["X-Request-ID"])


def test_errors_and_refusals_carry_the_id(client, fhir):
    answers = [
        fhir.get("Patient/nobody"),  # 404 OperationOutcome
        fhir.get("Patient?unknown-parameter=1"),  # 400
        Fhir(client).get("Patient"),  # 401, no token
        fhir.with_token("not-a-token").get("Patient"),  # 401, a wrong token
        client.post("/auth/token", data={"grant_type": "client_credentials"}),  # 401/400 from the OAuth server
        client.get("/no/such/page"),  # 404 of no route
        client.open("/fhir/Patient", method="TRACE"),  # 405
    ]
    for answer in answers:
        assert answer.status_code >= 400
        assert MADE.fullmatch(answer.headers.get("X-Request-ID", "")), answer.status_code


def _audit_event_of(fhir, request_id):
    for entry in fhir.get("AuditEvent?entity-type=Patient&_count=100").get_json().get("entry", []):
        event = entry["resource"]
        if any(e.get("what", {}).get("identifier", {}).get("value") == request_id for e in event["entity"]):
            return event
    return None


def test_the_id_is_in_the_access_log_and_the_audit_event_staff_read(ops_app, ops_client, ctx, token):
    ops = Fhir(ops_client, token)
    assert ops.put("Patient/pa", patient(id="pa")).status_code == 201
    read = ops.get("Patient/pa", headers={"X-Request-ID": "proxy-req-42"})
    assert read.headers["X-Request-ID"] == "proxy-req-42"
    ops_app.extensions["fhirportal"].audit.flush()
    with ctx.database.read() as conn:
        rows = conn.execute(select(access_log.c.action, access_log.c.query, access_log.c.outcome)
                            .where(access_log.c.request_id == "proxy-req-42")).all()
    assert [tuple(r) for r in rows] == [("read", "Patient/pa", 200)]

    event = _audit_event_of(ops, "proxy-req-42")
    assert event is not None
    assert {"what": {"identifier": {"value": "proxy-req-42"}}, "type": REQUEST_ID_TYPE} in event["entity"]
    AuditEvent.model_validate(event)
    assert ops.get(f"AuditEvent/{event['id']}").get_json() == event


def test_patients_do_not_see_request_ids(ops_app, ops_client, ctx, token):
    ops = Fhir(ops_client, token)
    ops.put("Patient/pa", patient(id="pa"))
    mine = ctx.tokens.mint(client_id="patient-app", scope="patient/*.rs", context={"patient": "pa"})
    own = Fhir(ops_client, mine)
    assert own.get("Patient/pa", headers={"X-Request-ID": "patient-req-1"}).status_code == 200
    ops_app.extensions["fhirportal"].audit.flush()
    assert _audit_event_of(ops, "patient-req-1") is not None  # staff see it
    events = [e["resource"] for e in own.get("AuditEvent?_count=100").get_json().get("entry", [])]
    assert events, "the patient sees the log of their record"
    assert "patient-req-1" not in str(events)
    assert not any(e.get("type") == REQUEST_ID_TYPE for event in events for e in event["entity"])
