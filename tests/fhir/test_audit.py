"""The access log, and the AuditEvents rendered from it: every authorized request is one journal row, no
resource is written per access, and AuditEvent read and search (with the journalled accesses and the
AuditEvents other systems sent, in one time order) are served from the journal."""

from __future__ import annotations

from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import func, select

from fhirportal.fhir.audit import Access
from fhirportal.store.journal_schema import access_log
from fhirportal.store.schema import resource
from tests.support import Fhir, observation, patient


def _count(ctx, table) -> int:
    with ctx.database.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_accesses_are_searchable_audit_events_rendered_from_the_journal(ctx, fhir):
    fhir.put("Patient/pa", patient(id="pa"))
    ctx.audit.record(Access("read", "Observation", "Observation/o1", 200, "app-1", account_id=7,
                            fhir_user="Patient/pa", patient_id="pa"))
    ctx.audit.record(Access("search", "Condition", "Condition?patient=pa", 403, "app-1", patient_id="pa"))
    ctx.audit.record(Access("read", "Patient", "Patient/pb", 404, "backend", patient_id="pb"))
    ctx.audit.flush()
    resources = _count(ctx, resource)
    bundle = fhir.get("AuditEvent?patient=pa&_sort=date").get_json()
    events = [e["resource"] for e in bundle["entry"]]
    assert [(e["action"], e["outcome"]) for e in events] == [("U", "0"), ("R", "0"), ("E", "4")]  # the PUT first
    update, read, search = events
    assert read["agent"][0]["who"] == {"reference": "Patient/pa"}
    assert {"reference": "Observation/o1"} in [e.get("what") for e in read["entity"]]
    assert search["entity"][1]["description"] == "Condition?patient=pa"
    for event in events:
        AuditEvent.model_validate(event)  # the FHIR R4 structure
        assert fhir.get(f"AuditEvent/{event['id']}").get_json() == event
        assert fhir.get(f"AuditEvent/{event['id']}/_history/1").status_code == 200
    assert fhir.get(f"AuditEvent/{read['id']}/_history/2").status_code == 404
    assert fhir.get("AuditEvent/access-999999").status_code == 404
    assert _count(ctx, resource) == resources  # reading the log wrote no resource

    ids = ",".join(e["id"] for e in events)
    newest_first = [e["resource"]["id"] for e in fhir.get(f"AuditEvent?_id={ids}").get_json()["entry"]]
    assert newest_first == [search["id"], read["id"], update["id"]]
    day = read["recorded"][:10]
    for query, expected in [
        (f"patient=pa&date=ge{day}", 3), (f"patient=pa&date=lt{day}", 0), ("patient=pa&action=R", 1),
        ("patient=pa&action=R,U", 2), ("patient=pa&action:not=R", 2), ("patient=pa&outcome=4", 1),
        ("patient=pa&subtype=read", 1), ("patient=pa&subtype=search-type", 1), ("agent=Patient/pa", 1),
        ("entity=Observation/o1", 1), ("entity-type=Condition", 1), ("patient=pa&type=rest", 3),
        ("patient=pa&type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest", 3),
        ("patient=pa&type=http://example.org|other", 0), ("patient=pa&address=1.2.3.4", 0),
        ("patient=pa&address:missing=true", 3), (f"_id={read['id']},{search['id']}", 2), ("patient=pb", 1),
    ]:
        # (the log's own searches are about patient pa too: left out)
        answer = fhir.get(f"AuditEvent?{query}&entity-type:not=AuditEvent&_summary=count").get_json()
        assert answer["total"] == expected, query


def test_paging_in_time_order_and_totals(ctx, fhir):
    for n in range(7):
        ctx.audit.record(Access("read", "Patient", f"Patient/p{n}", 200, "app", patient_id="p"))
    ctx.audit.flush()
    seen, url = [], "AuditEvent?patient=p&subtype=read&_count=3&_total=accurate"  # not the log's own searches
    while url:
        body = fhir.get(url).get_json()
        assert body["total"] == 7
        seen += [e["resource"]["entity"][1]["what"]["reference"] for e in body["entry"]]
        url = next((link["url"].replace("http://localhost/fhir/", "") for link in body["link"]
                    if link["relation"] == "next"), None)
    assert seen == [f"Patient/p{n}" for n in reversed(range(7))]
    oldest_first = fhir.get("AuditEvent?patient=p&_sort=date&_count=2").get_json()
    assert [e["resource"]["entity"][1]["what"]["reference"] for e in oldest_first["entry"]] == ["Patient/p0",
                                                                                                "Patient/p1"]
    assert fhir.get("AuditEvent?_sort=action").status_code == 400
    assert fhir.get("?_type=AuditEvent,Patient").status_code == 400  # the log is searched on its own
    assert fhir.get("AuditEvent?_cursor=bm9wZQ").status_code == 400


def test_audit_events_other_systems_send_are_stored_and_searched_with_the_journal(ctx, fhir):
    fhir.put("Patient/pa", patient(id="pa"))
    sent = fhir.create({"resourceType": "AuditEvent", "type": {"system": "http://dicom.nema.org/resources/ontology"
                                                                        "/DCM", "code": "110110"},
                        "action": "R", "recorded": "2030-01-01T00:00:00Z", "outcome": "0",
                        "agent": [{"requestor": True, "who": {"display": "lab system"}}],
                        "source": {"observer": {"display": "lab"}},
                        "entity": [{"what": {"reference": "Patient/pa"}}]})
    found = fhir.get("AuditEvent?patient=pa").get_json()["entry"]
    assert found[0]["resource"]["id"] == sent["id"]  # recorded in 2030: the newest
    assert fhir.get(f"AuditEvent/{sent['id']}").get_json()["type"]["code"] == "110110"
    assert fhir.get("AuditEvent?patient=pa&type=110110").get_json()["entry"][0]["resource"]["id"] == sent["id"]
    assert fhir.put(f"AuditEvent/{sent['id']}", sent).status_code == 405  # append-only


def test_every_authorized_request_is_journalled_about_the_record_it_touched(ctx, client, fhir):
    fhir.put("Patient/pa", patient(id="pa"))
    fhir.put("Patient/pb", patient(id="pb"))
    theirs = fhir.create(observation("pb"))
    token = ctx.tokens.mint(client_id="portal-app", scope="patient/Patient.rs patient/Observation.rs",
                            context={"patient": "pa", "fhirUser": "Patient/pa"})
    patient_app = Fhir(client, token=token)
    assert patient_app.get("Patient/pa").status_code == 200
    assert patient_app.get("Patient/pb").status_code == 404
    assert patient_app.get(f"Observation/{theirs['id']}").status_code == 404
    assert patient_app.get("Condition?patient=pa").status_code == 403
    assert Fhir(client, token=None).get("Patient/pa").status_code == 401  # no token: nobody to journal
    ctx.audit.flush()
    staff = Fhir(client, token=ctx.tokens.mint(client_id="staff-app", scope="user/AuditEvent.rs"))
    about_pa = [e["resource"] for e in staff.get("AuditEvent?patient=pa&agent=Patient/pa&_sort=date")
                .get_json()["entry"]]
    assert [(e["action"], e["outcomeDesc"]) for e in about_pa] == [("R", "HTTP 200"), ("E", "HTTP 403")]
    about_pb = [e["resource"] for e in staff.get("AuditEvent?patient=pb&agent=Patient/pa&_sort=date")
                .get_json()["entry"]]
    assert [e["outcomeDesc"] for e in about_pb] == ["HTTP 404", "HTTP 404"]  # pb's Patient, pb's Observation
    assert all({"reference": "Patient/pa"} in [x.get("what") for x in e["entity"]] for e in about_pb)  # who tried


def test_a_huge_type_name_is_journalled_clipped_and_never_blocks_the_journal(ctx, fhir):
    before = _count(ctx, access_log)
    assert fhir.get("X" * 300).status_code in (400, 404)
    assert fhir.get("Patient?_id=" + "y" * 300).status_code == 200
    ctx.audit.flush()  # what the writer thread has not written yet (it writes every 0.2 s on its own)
    assert _count(ctx, access_log) == before + 2


def test_revinclude_brings_the_journal_about_the_patients_found(ctx, fhir):
    fhir.put("Patient/pa", patient(id="pa"))
    fhir.put("Patient/pb", patient(id="pb"))
    ctx.audit.record(Access("read", "Patient", "Patient/pa", 200, "app-1", patient_id="pa"))
    ctx.audit.record(Access("read", "Patient", "Patient/pb", 200, "app-1", patient_id="pb"))
    ctx.audit.flush()
    found = fhir.get("Patient?_id=pa&_revinclude=AuditEvent:patient").get_json()["entry"]
    included = [e["resource"] for e in found if e["search"]["mode"] == "include"]
    assert included and all({"reference": "Patient/pa"} in [x.get("what") for x in e["entity"]] for e in included)
    assert not [e for e in included if {"reference": "Patient/pb"} in [x.get("what") for x in e["entity"]]]
