"""No double booking: patients requesting the same free slot at the same moment, each through its own
client (SQLite and PostgreSQL: ``FHIRPORTAL_TEST_DATABASE_URL``) — exactly one request gets 201 and holds
the slot, every other gets a 409 OperationOutcome saying the slot is gone, and the slot is referenced by
exactly one active Appointment."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.scheduling.conftest import patient_api, request_body, slot_status
from tests.support import Fhir

RIVALS = 6


def test_one_free_slot_many_requests_at_once(ctx, app, availability, front_desk):
    with ctx.database.write() as conn:
        for n in range(RIVALS):
            ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": f"Rival{n}"}]},
                                  fhir_id=f"rival{n}")
    rivals = [patient_api(ctx, app, f"rival{n}") for n in range(RIVALS)]
    start = threading.Barrier(RIVALS)

    def request(n: int):
        api = Fhir(app.test_client(), rivals[n].token)  # a client of its own per thread
        start.wait()
        response = api.post("Appointment", request_body(f"rival{n}", slot="later"))
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(RIVALS) as pool:
        answers = list(pool.map(request, range(RIVALS)))

    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * (RIVALS - 1), answers
    for status, body in answers:
        if status == 409:
            assert body["resourceType"] == "OperationOutcome"
            assert "no longer free" in body["issue"][0]["diagnostics"]
            assert body["issue"][0]["expression"] == ["Appointment.slot"]
    assert slot_status(front_desk, "later") == "busy-tentative"
    holding = front_desk.get("Appointment", query_string={"slot": "Slot/later", "_total": "accurate"}).get_json()
    assert holding["total"] == 1
    winner = next(body for status, body in answers if status == 201)
    assert holding["entry"][0]["resource"]["id"] == winner["id"]


def test_a_booking_and_a_new_request_race_for_a_freed_slot(ctx, app, availability, front_desk):
    """The slot freed by a decline, wanted at once by two patients: one wins, again."""
    first = patient_api(ctx, app, "p1").post("Appointment", request_body("p1", slot="other")).get_json()
    assert front_desk.put(f"Appointment/{first['id']}", {**first, "status": "cancelled"}).status_code == 200
    start = threading.Barrier(2)

    def request(patient: str):
        api = Fhir(app.test_client(), patient_api(ctx, app, patient).token)
        start.wait()
        return api.post("Appointment", request_body(patient, slot="other")).status_code

    with ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(request, ["p1", "p2"])) == [201, 409]
    assert slot_status(front_desk, "other") == "busy-tentative"
