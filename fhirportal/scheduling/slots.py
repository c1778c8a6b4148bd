"""Appointments hold their Slots, in the Appointment's own write transaction (``Writer`` calls ``before_write``
and ``before_delete``).

No double booking: a Slot is taken by a compare-and-set of its current version (``UPDATE … WHERE
version_id = :seen``, the store's optimistic lock). Two requests for one free slot at the same moment,
on any workers: on SQLite the second write transaction starts after the first committed (``BEGIN
IMMEDIATE``) and finds the slot no longer free; on PostgreSQL the second UPDATE waits for the first's
row lock and then matches no row. Either way the loser gets 409 "the slot is no longer free" and its
whole transaction (the Appointment too) rolls back.

A patient's request needs a ``free`` slot. Staff and systems may also write an Appointment on a slot their
EHR already marked ``busy``/``busy-tentative`` itself, as long as no other active Appointment here holds it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fhirportal.errors import Conflict, Gone, NotFound, PreconditionFailed, Unprocessable
from fhirportal.fhir.search_params import parse_criteria

from . import rules

TAKEN = ("busy", "busy-tentative")


def acting_patient(auth, interaction: str) -> str | None:
    """The patient a patient/ token writes for (None: staff, a system, or an internal caller)."""
    access = auth.access
    if access is None or not access.patient:
        return None
    if any(access.scopes.permits(c, rules.APPOINTMENT, interaction) for c in ("system", "user")):
        return None
    return access.patient


def _now() -> datetime:
    return datetime.now(UTC)


class SlotKeeper:
    """The slot side of one Appointment write, in the writer's transaction."""

    def __init__(self, writer):
        self.writer = writer
        self.conn = writer.conn
        self.repository = writer.repository

    def _slot(self, fhir_id: str):
        try:
            return self.repository.read(self.conn, rules.SLOT, fhir_id)
        except (NotFound, Gone):
            return None

    def _others_hold(self, slot_id: str, appointment_id: str | None) -> bool:
        criteria, _ = parse_criteria(self.writer.ctx.search_parameters, rules.APPOINTMENT,
                                     [("slot", f"Slot/{slot_id}"), ("status", ",".join(sorted(rules.HOLDING)))],
                                     strict=True)
        ids = self.repository.search_ids(self.conn, rules.APPOINTMENT, criteria, limit=2)
        return any(i != appointment_id for i in ids)

    def _set(self, record, status: str) -> None:
        """Compare-and-set: the Slot's status, only if it is still at the version read."""
        try:
            written, _ = self.repository.update(self.conn, rules.SLOT, record.fhir_id,
                                                {**record.body, "status": status},
                                                expected_version=record.version_id, allow_create=False)
        except PreconditionFailed as exc:
            raise Conflict(f"Slot/{record.fhir_id} is no longer free: it was just taken. Please choose another time.",
                           expression="Appointment.slot") from exc
        self.writer.written.append(written)

    def take(self, old: dict | None, new: dict, appointment_id: str | None, *, patient: str | None) -> dict:
        before, after = rules.held(old), rules.held(new)
        records = {}
        for slot_id in after:
            record = self._slot(slot_id)
            if record is None:
                raise Unprocessable(f"Slot/{slot_id} does not exist on this server", expression="Appointment.slot")
            records[slot_id] = record
        if records and (old is None or rules.slot_ids(old) != rules.slot_ids(new) or patient is not None):
            new = rules.fill_times(new, [r.body for r in records.values()], strict=patient is not None)
        for slot_id, status in after.items():
            record = records[slot_id]
            current = record.body.get("status")
            if slot_id not in before and current != "free" and (
                    patient is not None or current not in TAKEN or self._others_hold(slot_id, appointment_id)):
                raise Conflict(f"Slot/{slot_id} is no longer free ({current}). Please choose another time.",
                               expression="Appointment.slot")
            if current != status:
                self._set(record, status)
        for slot_id in before.keys() - after.keys():
            self.release(slot_id, appointment_id)
        return new

    def release(self, slot_id: str, appointment_id: str | None) -> None:
        record = self._slot(slot_id)
        if record is None or record.body.get("status") not in TAKEN or self._others_hold(slot_id, appointment_id):
            return
        self._set(record, "free")


def before_write(writer, old: dict | None, new: dict, appointment_id: str | None, interaction: str) -> dict:
    """The Appointment to store: the patient rules checked (a patient/ token), its slots held or freed."""
    patient = acting_patient(writer.auth, interaction)
    if patient is not None:
        if old is None:
            rules.check_request(new, patient)
        else:
            new = rules.check_patient_change(old, new, patient, writer.ctx.settings.appointment_cancel_hours, _now())
    return SlotKeeper(writer).take(old, new, appointment_id, patient=patient)


def before_delete(writer, old: dict | None, appointment_id: str) -> None:
    """A deleted Appointment frees the slots it held."""
    keeper = SlotKeeper(writer)
    for slot_id in rules.held(old):
        keeper.release(slot_id, appointment_id)
