"""The access log and the AuditEvents made from it."""

from __future__ import annotations

from fhir.resources.R4B.auditevent import AuditEvent

from fhirportal.fhir.audit import Access


def test_accesses_become_searchable_audit_events(ctx, fhir):
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": "A"}]}, fhir_id="pa")
    ctx.audit.record(Access("read", "Observation", "Observation/o1", 200, "app-1", account_id=7,
                            fhir_user="Patient/pa", patient_id="pa"))
    ctx.audit.record(Access("search", "Condition", "Condition?patient=pa", 403, "app-1", patient_id="pa"))
    ctx.audit.record(Access("read", "Patient", "Patient/pb", 404, "backend"))
    assert ctx.audit.materialize() >= 3
    assert ctx.audit.materialize() == 0  # idempotent
    bundle = fhir.get("AuditEvent?patient=pa&_sort=date").get_json()
    events = [e["resource"] for e in bundle["entry"]]
    assert len(events) == 2
    read, search = events
    assert read["action"] == "R" and read["outcome"] == "0"
    assert read["agent"][0]["who"] == {"reference": "Patient/pa"}
    assert {"reference": "Observation/o1"} in [e.get("what") for e in read["entity"]]
    assert search["action"] == "E" and search["outcome"] == "4"
    assert search["entity"][1]["description"] == "Condition?patient=pa"
    for event in events:
        AuditEvent.model_validate(event)  # the FHIR R4 structure
    dated = fhir.get(f"AuditEvent?patient=pa&date=ge{read['recorded'][:10]}&_summary=count").get_json()
    assert dated["total"] == 3  # the two, and the AuditEvent search above (about patient pa too)


def test_every_authorized_request_is_journalled(ctx, client):
    from tests.support import Fhir

    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": "A"}]}, fhir_id="pa")
        ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": "B"}]}, fhir_id="pb")
    token = ctx.tokens.mint(client_id="portal-app", scope="patient/Patient.rs", account_id=None,
                            context={"patient": "pa", "fhirUser": "Patient/pa"})
    patient_app = Fhir(client, token=token)
    assert patient_app.get("Patient/pa").status_code == 200
    assert patient_app.get("Patient/pb").status_code == 404
    assert patient_app.get("Observation?patient=pa").status_code == 403
    assert Fhir(client, token=None).get("Patient/pa").status_code == 401  # no token: nobody to journal
    staff = Fhir(client, token=ctx.tokens.mint(client_id="staff-app", scope="user/AuditEvent.rs"))
    events = [e["resource"] for e in staff.get("AuditEvent?patient=pa&_sort=date").get_json()["entry"]]
    assert [(e["action"], e["outcomeDesc"]) for e in events] == [("R", "HTTP 200"), ("R", "HTTP 404"),
                                                                 ("E", "HTTP 403")]
    assert all(e["agent"][0]["who"] == {"reference": "Patient/pa"} for e in events)
    assert events[1]["entity"][1]["what"] == {"reference": "Patient/pb"}


def test_a_huge_type_name_is_journalled_clipped_and_never_blocks_the_journal(ctx, fhir):
    assert fhir.get("X" * 300).status_code in (400, 404)
    assert fhir.get("Patient?_id=" + "y" * 300).status_code == 200
    ctx.audit.flush()  # what the writer thread has not written yet (it writes every 0.2 s on its own)
    assert fhir.get("AuditEvent?_summary=count").get_json()["total"] == 2  # both journalled, neither blocked


def test_a_busy_journal_becomes_audit_events_in_the_background(ctx):
    """Past ``background_after`` accesses the writer thread converts the journal itself, so the first
    AuditEvent search after a busy day does not convert the whole day while its client waits."""
    import time

    from sqlalchemy import func, select

    from fhirportal.fhir.audit import AccessLog
    from fhirportal.store.auth_schema import access_log
    from fhirportal.store.schema import resource

    journal = AccessLog(ctx.database, ctx.repository, ctx.base_url, background_after=3)
    try:
        for n in range(5):
            journal.record(Access("read", "Patient", f"Patient/p{n}", 200, "busy-app", patient_id=f"p{n}"))
        deadline = time.monotonic() + 10
        while True:
            with ctx.database.read() as conn:
                waiting = conn.execute(select(func.count()).where(access_log.c.materialized.is_(False))).scalar_one()
                events = conn.execute(select(func.count()).where(resource.c.resource_type == "AuditEvent")).scalar_one()
            if waiting == 0 and events == 5:
                break
            assert time.monotonic() < deadline, (waiting, events)
            time.sleep(0.05)
    finally:
        journal.background_after = 0  # its writer thread lives on: it must not convert later tests' journals
