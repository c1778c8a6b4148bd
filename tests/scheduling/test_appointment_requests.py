"""Appointment requests through the FHIR API: a patient requests a free slot (held busy-tentative), the
practice books (busy; the patient emailed, without health data) or declines (free again), the patient
cancels before the cut-off but not after, and what a patient token may not do."""

from __future__ import annotations

from tests.scheduling.conftest import outbox_to, patient_api, request_body, slot_status


def issue(response) -> dict:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


def test_a_patient_reads_the_practices_availability_but_not_another_patients_schedule(maria, availability):
    found = maria.get("Slot", query_string={"schedule": "Schedule/sched", "status": "free",
                                            "start": "ge2000-01-01", "_sort": "start"})
    assert found.status_code == 200, found.get_json()
    assert [e["resource"]["id"] for e in found.get_json()["entry"]] == ["soon", "later", "other"]
    assert maria.get("Schedule/sched").status_code == 200
    schedules = maria.get("Schedule").get_json()
    assert [e["resource"]["id"] for e in schedules.get("entry", [])] == ["sched"]  # not James's own schedule
    assert maria.get("Schedule/p2-own").status_code == 404


def test_a_patient_may_not_write_the_availability(ctx, app, availability):
    writer = patient_api(ctx, app, scope="launch/patient patient/*.cruds")
    slot = writer.get("Slot/later").get_json()
    refused = writer.put("Slot/later", {**slot, "status": "busy"})
    assert refused.status_code == 403, refused.get_json()
    assert writer.post("Schedule", {"resourceType": "Schedule", "actor": [{"reference": "Practitioner/dr"}]}
                       ).status_code == 403
    assert slot_status(writer, "later") == "free"


def test_request_book_and_email(ctx, maria, front_desk):
    created = maria.post("Appointment", request_body())
    assert created.status_code == 201, created.get_json()
    appointment = created.get_json()
    assert appointment["start"] and appointment["end"]  # the slot's times
    assert slot_status(maria, "later") == "busy-tentative"
    assert outbox_to(ctx, "maria@example.org") == []

    booked = front_desk.put(f"Appointment/{appointment['id']}", {
        **appointment, "status": "booked",
        "participant": [{**p, "status": "accepted"} for p in appointment["participant"]]})
    assert booked.status_code == 200, booked.get_json()
    assert slot_status(maria, "later") == "busy"
    assert maria.get(f"Appointment/{appointment['id']}").get_json()["status"] == "booked"

    [(subject, body)] = outbox_to(ctx, "maria@example.org")
    assert "answered" in subject and "/portal/appointments" in body
    for health_data in ("Check-up", "Knee", "Doc", "Garcia", "office", appointment["start"][:10]):
        assert health_data not in subject + body
    assert outbox_to(ctx, "james@example.org") == []


def test_decline_frees_the_slot(ctx, maria, front_desk):
    appointment = maria.post("Appointment", request_body()).get_json()
    declined = front_desk.put(f"Appointment/{appointment['id']}", {
        **appointment, "status": "cancelled", "cancelationReason": {"text": "Dr Doc is away that day"}})
    assert declined.status_code == 200, declined.get_json()
    assert slot_status(maria, "later") == "free"
    [(_, body)] = outbox_to(ctx, "maria@example.org")
    assert "away" not in body
    # the slot can be requested again
    assert maria.post("Appointment", request_body()).status_code == 201


def test_a_request_without_a_slot_asks_for_a_time_range(maria, availability):
    created = maria.post("Appointment", request_body(slot=None, requestedPeriod=[
        {"start": "2030-01-07T08:00:00Z", "end": "2030-01-11T12:00:00Z"}], comment="Mornings suit me best"))
    assert created.status_code == 201, created.get_json()
    neither = maria.post("Appointment", request_body(slot=None))
    assert neither.status_code == 422 and issue(neither)["expression"] == ["Appointment.slot"]


def test_a_taken_slot_is_refused_with_409(maria, james):
    assert maria.post("Appointment", request_body(slot="later")).status_code == 201
    second = james.post("Appointment", request_body("p2", slot="later"))
    assert second.status_code == 409, second.get_json()
    assert issue(second)["expression"] == ["Appointment.slot"]
    already_busy = james.post("Appointment", request_body("p2", slot="busy"))
    assert already_busy.status_code == 409


def test_a_patient_may_not_request_for_another_patient_nor_book(maria, availability):
    other = maria.post("Appointment", request_body("p2"))
    assert other.status_code == 403, other.get_json()
    assert issue(other)["expression"] == ["Appointment.participant[0].actor"]
    both = request_body()
    both["participant"].append({"actor": {"reference": "Patient/p2"}, "status": "accepted"})
    assert issue(maria.post("Appointment", both))["expression"] == ["Appointment.participant[3].actor"]
    booked = maria.post("Appointment", request_body(status="booked"))
    assert booked.status_code == 403 and issue(booked)["expression"] == ["Appointment.status"]
    assert slot_status(maria, "later") == "free"  # nothing held by the refused writes

    appointment = maria.post("Appointment", request_body()).get_json()
    confirmed = maria.put(f"Appointment/{appointment['id']}", {**appointment, "status": "booked"})
    assert confirmed.status_code == 403 and issue(confirmed)["expression"] == ["Appointment.status"]
    patched = maria.patch(f"Appointment/{appointment['id']}", [{"op": "replace", "path": "/status",
                                                               "value": "booked"}])
    assert patched.status_code == 403
    smuggled = {**appointment, "status": "cancelled", "participant": [
        *appointment["participant"], {"actor": {"reference": "Patient/p2"}, "status": "accepted"}]}
    refused = maria.put(f"Appointment/{appointment['id']}", smuggled)
    assert refused.status_code == 403 and issue(refused)["expression"] == ["Appointment.participant[3].actor"]
    assert slot_status(maria, "later") == "busy-tentative"


def test_a_caregiver_requests_for_their_patient(ctx, app, availability):
    caregiver = patient_api(ctx, app, "p2", fhir_user="RelatedPerson/rp2")
    assert caregiver.post("Appointment", request_body("p2")).status_code == 201
    assert caregiver.post("Appointment", request_body("p1", slot="other")).status_code == 403


def _book(maria, front_desk, slot: str) -> dict:
    appointment = maria.post("Appointment", request_body(slot=slot)).get_json()
    booked = front_desk.put(f"Appointment/{appointment['id']}", {**appointment, "status": "booked"})
    assert booked.status_code == 200, booked.get_json()
    return booked.get_json()


def test_the_patient_cancels_before_the_cut_off(ctx, maria, front_desk):
    appointment = _book(maria, front_desk, "later")
    cancelled = maria.put(f"Appointment/{appointment['id']}", {**appointment, "status": "cancelled"})
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["cancelationReason"]["coding"][0]["code"] == "pat"
    assert slot_status(maria, "later") == "free"
    assert len(outbox_to(ctx, "maria@example.org")) == 1  # the booking's; the patient's own cancellation: none


def test_after_the_cut_off_the_patient_must_call(maria, front_desk):
    appointment = _book(maria, front_desk, "soon")  # in two hours; the cut-off is 24 hours
    late = maria.put(f"Appointment/{appointment['id']}", {**appointment, "status": "cancelled"})
    assert late.status_code == 422, late.get_json()
    assert "24 hours" in issue(late)["diagnostics"]
    assert slot_status(maria, "soon") == "busy"
    # a request not yet booked can be withdrawn at any time
    request = maria.post("Appointment", request_body(slot="other")).get_json()
    assert maria.patch(f"Appointment/{request['id']}", [{"op": "replace", "path": "/status",
                                                          "value": "cancelled"}]).status_code == 200
    assert slot_status(maria, "other") == "free"


def test_the_cut_off_is_a_setting(ctx, maria, front_desk):
    appointment = _book(maria, front_desk, "later")  # in 3 days
    settings = ctx.settings
    ctx.settings = settings.with_overrides(appointment_cancel_hours=96)
    try:
        late = maria.put(f"Appointment/{appointment['id']}", {**appointment, "status": "cancelled"})
    finally:
        ctx.settings = settings
    assert late.status_code == 422 and "96 hours" in issue(late)["diagnostics"]


def test_staff_booking_directly_and_deleting_free_the_slot(maria, front_desk):
    body = request_body(slot="other", status="booked")
    created = front_desk.post("Appointment", body)
    assert created.status_code == 201, created.get_json()
    assert slot_status(maria, "other") == "busy"
    assert front_desk.delete(f"Appointment/{created.get_json()['id']}").status_code in (200, 204)
    assert slot_status(maria, "other") == "free"
