"""The patient's email once the practice answered an appointment request: after the commit of a write
that took an Appointment from ``proposed`` to ``booked`` or to ``cancelled`` (a cancellation the patient
made — ``cancelationReason`` "patient" — is no answer). The email says only that the request was answered
and where to look: no name, time, practitioner or reason (email is not a safe place for health data).

Sent to each patient participant's email on file (``Patient.telecom``), through the portal's notifier (the
``outbox`` table without SMTP). An ``after_commit`` hook: it never fails the write.
"""

from __future__ import annotations

import logging

from fhirportal.errors import FhirError
from fhirportal.store.records import StoredResource

from . import rules

log = logging.getLogger(__name__)
ANSWERS = frozenset({"booked", "cancelled"})


def answered(previous: dict | None, current: dict) -> bool:
    """Did this change answer a request?"""
    if (previous or {}).get("status") != "proposed" or current.get("status") not in ANSWERS:
        return False
    return not (current["status"] == "cancelled" and rules.is_patient_cancellation(current))


def message(practice_name: str, portal_url: str) -> tuple[str, str]:
    """The subject and body: nothing about the appointment itself."""
    return (f"{practice_name}: your appointment request was answered",
            f"Hello,\n\nyour appointment request was answered. Please sign in to the patient portal to see the "
            f"answer:\n\n{portal_url}\n\n{practice_name}\n")


def emails(patient: dict) -> list[str]:
    return [t["value"] for t in patient.get("telecom") or []
            if t.get("system") == "email" and t.get("value") and not (t.get("period") or {}).get("end")][:1]


class AnswerNotifier:
    """``ctx.after_commit`` hook: emails the patients whose requests were answered."""

    def __init__(self, ctx, notifier, practice_name: str, portal_url: str):
        self.ctx = ctx
        self.notifier = notifier
        self.practice_name = practice_name
        self.portal_url = portal_url

    def on_commit(self, records: list[StoredResource]) -> None:
        for record in records:
            if record.resource_type != rules.APPOINTMENT or record.version_id < 2 or record.body is None:
                continue
            for address in self._recipients(record):
                subject, body = message(self.practice_name, self.portal_url)
                self.notifier.send_email(address, subject, body)

    def _recipients(self, record: StoredResource) -> list[str]:
        repository = self.ctx.repository
        with self.ctx.database.read() as conn:
            try:
                previous = repository.vread(conn, record.resource_type, record.fhir_id, record.version_id - 1)
            except FhirError:
                return []
            if not answered(previous.body, record.body):
                return []
            found: list[str] = []
            for participant in record.body.get("participant") or []:
                reference = ((participant or {}).get("actor") or {}).get("reference") or ""
                parts = reference.split("/")
                if len(parts) < 2 or parts[-2] != "Patient":
                    continue
                try:
                    patient = repository.read(conn, "Patient", parts[-1]).body
                except FhirError:
                    continue
                found += [a for a in emails(patient) if a not in found]
            return found
