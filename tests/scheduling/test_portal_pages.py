"""The portal's appointment pages (Flask test client, signed in through the authorization server): the free
slots of the coming weeks by day, requesting one (CSRF checked), a slot taken meanwhile, asking for a time
range, the list with statuses, cancelling before the cut-off and the refusal after it."""

from __future__ import annotations

import re

import pytest

from tests.scheduling.conftest import outbox_to, slot_status, slot_times
from tests.support import Fhir
from tests.web.flows import follow, form, sign_in, text
from tests.web.practice import build_practice


@pytest.fixture
def portal(ctx, app):
    build_practice(ctx, app)
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Location", "name": "Main office"}, fhir_id="office")
        ctx.repository.create(conn, {"resourceType": "Schedule", "actor": [
            {"reference": "Practitioner/dr"}, {"reference": "Location/office"}]}, fhir_id="sched")
        for name, hours in (("soon", 2), ("later", 72), ("other", 96), ("far", 24 * 40)):
            start, end = slot_times(hours)
            ctx.repository.create(conn, {"resourceType": "Slot", "schedule": {"reference": "Schedule/sched"},
                                         "status": "free", "start": start, "end": end}, fhir_id=name)
    client = app.test_client()
    sign_in(client, "maria")
    staff = Fhir(app.test_client(), ctx.tokens.mint(client_id="ehr", scope="system/*.cruds"))
    return client, staff


def _request(client, slot: str, reason: str = "Knee pain"):
    page = client.get("/portal/appointments/request")
    _, fields = form(page.get_data(as_text=True))
    return client.post("/portal/appointments/request", data={**fields, "slot": slot, "reason": reason})


def test_the_navigation_leads_to_the_appointments(portal):
    client, _ = portal
    summary = client.get("/portal/")
    assert 'href="/portal/appointments"' in summary.get_data(as_text=True)
    listing = client.get("/portal/appointments")
    assert listing.status_code == 200 and "Request an appointment" in text(listing)
    assert "Diabetes follow-up" in text(listing)  # the chart's own appointment
    assert listing.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_free_slots_by_day_and_a_request(ctx, portal):
    client, staff = portal
    page = client.get("/portal/appointments/request")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    offered = re.findall(r'name="slot" value="([^"]+)"', html)
    assert offered == ["soon", "later", "other"]  # the next four weeks only, in time order
    assert html.count("<legend>") == len({"soon", "later", "other"})  # (each on a day of its own)
    assert "Dr. Elena Vasquez, Main office" in text(page)

    done = _request(client, "later")
    assert done.status_code == 303 and done.headers["Location"].endswith("/portal/appointments?done=requested")
    listing = follow(client, done)
    assert "requested — waiting for the practice" in text(listing) and "Withdraw this request" in text(listing)
    assert slot_status(staff, "later") == "busy-tentative"
    [appointment] = [e["resource"] for e in staff.get("Appointment", query_string={"status": "proposed"}
                                                      ).get_json()["entry"]]
    assert appointment["reasonCode"] == [{"text": "Knee pain"}]
    assert {p["actor"]["reference"]: p["status"] for p in appointment["participant"]} == {
        "Patient/p1": "accepted", "Practitioner/dr": "needs-action", "Location/office": "needs-action"}
    assert "later" not in re.findall(r'name="slot" value="([^"]+)"',
                                     client.get("/portal/appointments/request").get_data(as_text=True))

    booked = staff.put(f"Appointment/{appointment['id']}", {**appointment, "status": "booked"})
    assert booked.status_code == 200
    assert "booked" in text(client.get("/portal/appointments"))
    assert len(outbox_to(ctx, "maria@example.org")) == 1


def test_the_forms_need_the_csrf_token(portal):
    client, staff = portal
    forged = client.post("/portal/appointments/request", data={"csrf_token": "forged", "slot": "later"})
    assert forged.status_code == 400
    assert slot_status(staff, "later") == "free"


def test_a_slot_taken_meanwhile_says_so(portal):
    client, staff = portal
    page = client.get("/portal/appointments/request")
    _, fields = form(page.get_data(as_text=True))
    assert staff.post("Appointment", {"resourceType": "Appointment", "status": "booked", "slot": [
        {"reference": "Slot/later"}], "participant": [{"actor": {"reference": "Patient/p2"}, "status": "accepted"}]}
                      ).status_code == 201
    taken = client.post("/portal/appointments/request", data={**fields, "slot": "later", "reason": "x"})
    assert taken.status_code == 409 and "just taken" in text(taken)


def test_asking_for_a_time_range(portal):
    client, staff = portal
    page = client.get("/portal/appointments/request")
    _, fields = form(page.get_data(as_text=True), 'id="r-range"')
    sent = client.post("/portal/appointments/request", data={**fields, "from": "2031-03-02", "to": "2031-03-06",
                                                              "reason": "Flu shot", "comment": "Mornings"})
    assert sent.status_code == 303, text(sent)
    [appointment] = [e["resource"] for e in staff.get("Appointment", query_string={"status": "proposed"}
                                                      ).get_json()["entry"]]
    assert appointment["comment"] == "Mornings"
    assert appointment["requestedPeriod"][0]["start"].startswith("2031-03-02")
    assert "asked for" in text(client.get("/portal/appointments"))
    backwards = client.post("/portal/appointments/request", data={**fields, "from": "2031-03-06", "to": "2031-03-02"})
    assert backwards.status_code == 400


def _booked(client, staff, slot: str) -> dict:
    assert _request(client, slot).status_code == 303
    appointment = next(e["resource"] for e in staff.get("Appointment", query_string={"slot": f"Slot/{slot}"}
                                                         ).get_json()["entry"])
    assert staff.put(f"Appointment/{appointment['id']}", {**appointment, "status": "booked"}).status_code == 200
    return appointment


def test_cancel_before_the_cut_off(portal):
    client, staff = portal
    appointment = _booked(client, staff, "later")
    listing = client.get("/portal/appointments")
    action, fields = form(listing.get_data(as_text=True), f'id="appointment-{appointment["id"]}"')
    assert action == f"/portal/appointments/{appointment['id']}/cancel"
    done = client.post(action, data=fields)
    assert done.status_code == 303
    assert "cancelled" in text(follow(client, done))
    assert slot_status(staff, "later") == "free"


def test_no_cancel_button_after_the_cut_off_and_the_server_refuses(portal):
    client, staff = portal
    appointment = _booked(client, staff, "soon")
    listing = client.get("/portal/appointments")
    html = listing.get_data(as_text=True)
    row = html[html.index(f'id="appointment-{appointment["id"]}"'):]
    row = row[:row.index("</li>")]
    assert "/cancel" not in row and "please call the practice" in row
    _, fields = form(listing.get_data(as_text=True))  # the sign-out form carries the same CSRF token
    refused = client.post(f"/portal/appointments/{appointment['id']}/cancel", data={"csrf_token": fields["csrf_token"]})
    assert refused.status_code == 422 and "24 hours" in text(refused)
    assert slot_status(staff, "soon") == "busy"
