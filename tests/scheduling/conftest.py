"""The practice's availability for the appointment tests: a Schedule of Dr Doc at the main office, free
Slots in the coming days (and one in two hours, within the cancellation cut-off), two patients with email
addresses, and the tokens that act: a patient's app, a caregiver's, the front desk (user/) and the EHR
(system/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fhirportal.store.outbox_schema import outbox
from tests.support import Fhir

PATIENT_SCOPE = "launch/patient patient/*.rs patient/Appointment.cu"


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def slot_times(hours_ahead: float, minutes: int = 30) -> tuple[str, str]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours_ahead)
    return instant(start), instant(start + timedelta(minutes=minutes))


@pytest.fixture
def availability(ctx):
    """Slot ids by name: ``soon`` (in 2 hours), ``later`` (in 3 days), ``other`` (in 4 days), ``busy``."""
    slots = {"soon": (2, "free"), "later": (72, "free"), "other": (96, "free"), "busy": (120, "busy")}
    with ctx.database.write() as conn:
        ctx.repository.create(conn, {"resourceType": "Practitioner", "name": [{"family": "Doc", "prefix": ["Dr"]}]},
                              fhir_id="dr")
        ctx.repository.create(conn, {"resourceType": "Location", "name": "Main office"}, fhir_id="office")
        for fhir_id, name, email in (("p1", "Garcia", "maria@example.org"), ("p2", "Whitfield", "james@example.org")):
            ctx.repository.create(conn, {"resourceType": "Patient", "name": [{"family": name}],
                                         "telecom": [{"system": "email", "value": email}]}, fhir_id=fhir_id)
        ctx.repository.create(conn, {"resourceType": "RelatedPerson", "patient": {"reference": "Patient/p2"},
                                     "name": [{"family": "Carer"}]}, fhir_id="rp2")
        ctx.repository.create(conn, {"resourceType": "Schedule", "active": True, "actor": [
            {"reference": "Practitioner/dr", "display": "Dr Doc"}, {"reference": "Location/office"}]},
            fhir_id="sched")
        ctx.repository.create(conn, {"resourceType": "Schedule", "actor": [{"reference": "Patient/p2"}]},
                              fhir_id="p2-own")
        for name, (hours, status) in slots.items():
            start, end = slot_times(hours)
            ctx.repository.create(conn, {"resourceType": "Slot", "schedule": {"reference": "Schedule/sched"},
                                         "status": status, "start": start, "end": end}, fhir_id=name)
    return {name: name for name in slots}


def patient_api(ctx, app, patient: str = "p1", fhir_user: str | None = None, scope: str = PATIENT_SCOPE) -> Fhir:
    return Fhir(app.test_client(), ctx.tokens.mint(
        client_id="app", scope=scope, context={"patient": patient, "fhirUser": fhir_user or f"Patient/{patient}"}))


@pytest.fixture
def maria(ctx, app, availability) -> Fhir:
    return patient_api(ctx, app, "p1")


@pytest.fixture
def james(ctx, app, availability) -> Fhir:
    return patient_api(ctx, app, "p2")


@pytest.fixture
def front_desk(ctx, app, availability) -> Fhir:
    return Fhir(app.test_client(), ctx.tokens.mint(client_id="ehr", scope="user/*.cruds",
                                                   context={"fhirUser": "Practitioner/dr"}))


def request_body(patient: str = "p1", slot: str | None = "later", **extra) -> dict:
    body = {"resourceType": "Appointment", "status": "proposed", "description": "Check-up",
            "reasonCode": [{"text": "Knee pain"}],
            "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
                            {"actor": {"reference": "Practitioner/dr"}, "status": "needs-action"},
                            {"actor": {"reference": "Location/office"}, "status": "needs-action"}]}
    if slot:
        body["slot"] = [{"reference": f"Slot/{slot}"}]
    return {**body, **extra}


def slot_status(api: Fhir, slot: str) -> str:
    return api.get(f"Slot/{slot}").get_json()["status"]


def outbox_to(ctx, to: str) -> list[tuple[str, str]]:
    with ctx.database.read() as conn:
        return [(r.subject, r.body) for r in conn.execute(
            select(outbox.c.subject, outbox.c.body).where(outbox.c.recipient == to).order_by(outbox.c.id))]
