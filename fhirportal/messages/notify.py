""""You have a new message from your practice": the email a patient (and each caregiver with a portal
account for them) gets when the practice writes to them.

An after-commit hook of the FHIR layer (``FhirContext.after_commit``, installed with the portal): a
``Communication`` created ``completed`` (or ``in-progress``), sent by the practice (its ``sender`` is not
a Patient or RelatedPerson: a message the patient's side sent emails nobody) and addressed to a Patient
(``recipient``). Every active portal account acting for that patient is emailed once, at the address of
its registered invitation, else its record's email (``telecom``), else its user name if it is one. The
email holds the practice's name and a link to the portal's messages — never the message, its topic or
anything else about the patient's health. A failure never fails the write (the hook is logged).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from fhirportal.store.auth_schema import account, account_patient, portal_invitation
from fhirportal.store.records import StoredResource

from .rules import COMMUNICATION, PATIENT_SENDERS, reference_of, type_and_id

log = logging.getLogger(__name__)

SUBJECT = "You have a new message from your practice"
NOTIFY_STATUSES = frozenset({"completed", "in-progress"})


def patients_to_tell(record: StoredResource) -> list[str]:
    """The Patient ids a newly written message from the practice is addressed to (none otherwise)."""
    if record.resource_type != COMMUNICATION or record.version_id != 1:
        return []  # decided without parsing the content (every write of a Bundle passes here)
    body = record.body or {}
    if body.get("status") not in NOTIFY_STATUSES:
        return []
    if type_and_id(reference_of(body.get("sender")))[0] in PATIENT_SENDERS:
        return []
    found = []
    for recipient in body.get("recipient") or []:
        kind, fhir_id = type_and_id(reference_of(recipient))
        if kind == "Patient" and fhir_id not in found:
            found.append(fhir_id)
    return found


def body_text(practice_name: str, link: str) -> str:
    return (f"Hello,\n\nYou have a new message from {practice_name} in your patient portal.\n\n"
            f"Sign in to read it: {link}\n\n"
            "For your privacy this email does not include the message. Please do not reply to this email.\n")


class MessageNotifier:
    """Emails the patient's portal accounts when the practice writes to them (``on_commit``)."""

    def __init__(self, ctx, notifier, link: str):
        self.ctx = ctx
        self.notifier = notifier
        self.link = link  # the portal's messages page

    def on_commit(self, records: list[StoredResource]) -> None:
        patients = []
        for record in records:
            patients += [p for p in patients_to_tell(record) if p not in patients]
        for patient_id in patients:
            for address in self.addresses(patient_id):
                self.notifier.send_email(address, SUBJECT, body_text(self.ctx.settings.practice_name, self.link))

    def addresses(self, patient_id: str) -> list[str]:
        """One address per active portal account acting for the patient (the patient's, caregivers')."""
        found: list[str] = []
        with self.ctx.database.read() as conn:
            rows = conn.execute(select(account.c.id, account.c.username, account.c.fhir_user).join(
                account_patient, account_patient.c.account_id == account.c.id).where(
                account_patient.c.patient_id == patient_id, account.c.kind == "patient",
                account.c.active.is_(True)).order_by(account.c.id)).all()
            for row in rows:
                address = self._invited_address(conn, row.id) or self._record_address(conn, row.fhir_user) or (
                    row.username if "@" in row.username else None)
                if address and address.lower() not in {a.lower() for a in found}:
                    found.append(address)
        return found

    @staticmethod
    def _invited_address(conn, account_id: int) -> str | None:
        return conn.execute(select(portal_invitation.c.email).where(
            portal_invitation.c.account_id == account_id, portal_invitation.c.email.is_not(None)).order_by(
            portal_invitation.c.id.desc()).limit(1)).scalar()

    def _record_address(self, conn, fhir_user: str | None) -> str | None:
        kind, fhir_id = type_and_id(fhir_user or "")
        if kind not in PATIENT_SENDERS:
            return None
        try:
            content = self.ctx.repository.read(conn, kind, fhir_id).body
        except Exception:  # noqa: BLE001  (gone or deleted: no address)
            return None
        for contact in content.get("telecom") or []:
            if contact.get("system") == "email" and contact.get("value") and contact.get("use") != "old":
                return contact["value"]
        return None
