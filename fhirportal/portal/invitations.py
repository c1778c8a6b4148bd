"""The portal invitation state machine (Patient Fusion's enrollment), for a Patient or a
caregiver's RelatedPerson.

    (none) --invite--> invited --register--> registered --revoke--> revoked
                        |  ^  \\--5 wrong PINs--> locked --resend--> invited
                        |  |                        |
                        |  resend (new link)        cancel
                        cancel --> cancelled        v
                                                  cancelled
    invited past its expiry reads as "expired"; cancelled, expired and revoked may be invited again
    (a new link and a new PIN).

Identity is proved with date of birth + PIN, or (no PIN at hand) date of birth + the phone number on
file: then a 6-digit security code goes to that phone by SMS (NIST SP 800-63B out-of-band), valid
for 10 minutes, kept only as a keyed hash; at most 3 requests for a code per invitation (counted
whether or not the details matched, so the refusal of a 4th tells nothing), and a wrong or expired
code counts towards the same lock as a wrong PIN.

Each invitation is a row in ``portal_invitation`` (the secrets, the counters) and, as FHIR, a
Task (status + businessStatus, ``restriction.period.end`` = expiry, ``requester``) and a Person
(the portal account, inactive until registered, linked to the Patient or RelatedPerson). Each
transition changes the row and the resources in one database transaction.

A caregiver's access is also a FHIR Consent: when a RelatedPerson registers, an active
``patient-privacy`` Consent (LOINC 59284-0, policy OPTIN) for the patient permits that RelatedPerson
(provision actor, role IRCP "information recipient") from now on; its id is kept on the invitation
(``consent_id``). Revoking the caregiver makes that Consent ``inactive`` with ``provision.period.end``
= the revocation, in the revoke's transaction; other caregivers' Consents are untouched.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from fhirportal.errors import Conflict, FhirError, Gone, NotFound, Unprocessable
from fhirportal.smart.accounts import AccountStore
from fhirportal.smart.secrets import digest, new_secret
from fhirportal.store import clock
from fhirportal.store.auth_schema import portal_invitation
from fhirportal.store.repository import new_id

from .pins import PinVault, display, new_pin

OPEN = frozenset({"invited", "locked"})
MAX_FAILED_ATTEMPTS = 5
TASK_CODE = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-task", "code": "portal-invitation",
             "display": "Patient portal invitation"}
TASK_STATUS = {"invited": "requested", "locked": "on-hold", "expired": "failed", "cancelled": "cancelled",
               "registered": "completed", "revoked": "completed"}
ASSURANCE = {"pin": "level3", "sms": "level2"}  # PIN handed over in person; phone verified by SMS code
CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
MAX_CODE_REQUESTS = 3
# The Consent that records a caregiver's (RelatedPerson's) access to the patient's portal records.
CONSENT_SCOPE = {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy",
                 "display": "Privacy Consent"}
CONSENT_CATEGORY = {"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}
CONSENT_POLICY = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN", "display": "opt-in"}
CONSENT_ACTOR_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP",
                      "display": "information recipient"}


@dataclass(frozen=True)
class Invitation:
    id: int
    subject_type: str
    subject_id: str
    patient_id: str
    task_id: str
    person_id: str
    stored_state: str
    email: str | None
    phone: str | None
    pin_encrypted: str
    pin_hash: str
    failed_attempts: int
    requested_by: str | None
    account_id: int | None
    created: datetime
    sent: datetime | None
    expires_at: datetime
    ended: datetime | None
    delivery_error: str | None
    code_hash: str | None = None
    code_expires_at: datetime | None = None
    code_requests: int = 0
    consent_id: str | None = None  # a caregiver's Consent, once registered

    @property
    def state(self) -> str:
        if self.stored_state == "invited" and clock.ensure_utc(self.expires_at) <= clock.now():
            return "expired"
        return self.stored_state

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    @property
    def subject(self) -> str:
        return f"{self.subject_type}/{self.subject_id}"


def _invitation(row) -> Invitation:
    return Invitation(row.id, row.subject_type, row.subject_id, row.patient_id, row.task_id, row.person_id, row.state,
                      row.email, row.phone, row.pin_encrypted, row.pin_hash, row.failed_attempts, row.requested_by,
                      row.account_id, row.created, row.sent, row.expires_at, row.ended, row.delivery_error,
                      row.code_hash, row.code_expires_at, row.code_requests or 0, row.consent_id)


@dataclass(frozen=True)
class Issued:
    """What ``invite`` and ``resend`` hand back: the invitation, its PIN and the link to email."""

    invitation: Invitation
    pin: str
    link_token: str


# Queues an issued invitation's email within the invitation's transaction; the delivery error, or None.
Deliver = Callable[[Connection, Issued], "str | None"]


@dataclass(frozen=True)
class CodeRequest:
    """What ``request_code`` decided: ``outcome`` is sent | no-match | limit | closed; when sent, the
    code and the message to text to ``phone`` (the caller sends it, after the transaction)."""

    outcome: str
    invitation: Invitation | None
    phone: str | None = None
    message: str | None = None


def phone_digits(phone: str | None) -> str:
    """A phone number as digits only: spaces, dashes, dots, parentheses and a leading +1 (or 1 before
    ten digits) do not matter."""
    text = (phone or "").strip()
    if text.startswith("+1"):
        text = text[2:]
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits


def same_phone(given: str | None, on_file: str | None) -> bool:
    expected = phone_digits(on_file)
    return bool(expected) and hmac.compare_digest(phone_digits(given).encode(), expected.encode())


def new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def _telecom(resource: dict, system: str) -> str | None:
    for contact in resource.get("telecom", []):
        if contact.get("system") == system and contact.get("value") and contact.get("use") != "old":
            return contact["value"]
    return None


class Enrollment:
    """The transitions. ``repository`` writes the Task and Person in the same transaction."""

    def __init__(self, database, repository, accounts: AccountStore, tokens, vault: PinVault, invitation_days: int,
                 notifier=None):
        self.database = database
        self.repository = repository
        self.accounts = accounts
        self.tokens = tokens
        self.vault = vault
        self.lifetime = timedelta(days=invitation_days)
        self.notifier = notifier  # sends the SMS security codes (fhirportal.portal.notify.Notifier)

    # ------------------------------------------------------------------ reading
    def latest(self, conn: Connection, subject_type: str, subject_id: str) -> Invitation | None:
        row = conn.execute(select(portal_invitation).where(
            portal_invitation.c.subject_type == subject_type, portal_invitation.c.subject_id == subject_id,
        ).order_by(portal_invitation.c.id.desc()).limit(1)).first()
        return _invitation(row) if row else None

    def by_link(self, conn: Connection, link_token: str) -> Invitation | None:
        row = conn.execute(select(portal_invitation).where(
            portal_invitation.c.link_hash == digest(link_token))).first()
        return _invitation(row) if row else None

    def access_code(self, invitation: Invitation) -> str:
        return display(self.vault.decrypt(invitation.pin_encrypted))

    # ------------------------------------------------------------------ staff transitions
    def invite(self, subject_type: str, subject_id: str, *, email: str | None, phone: str | None,
               requested_by: str | None, deliver: Deliver | None = None) -> Issued:
        """A new invitation (``deliver``: see ``_delivered``)."""
        with self.database.write() as conn:
            self.database.lock(conn, f"portal-invitation:{subject_type}/{subject_id}")
            subject = self.repository.read(conn, subject_type, subject_id).body
            patient_id = subject_id if subject_type == "Patient" else \
                (subject.get("patient", {}).get("reference") or "").removeprefix("Patient/")
            if not patient_id:
                raise Unprocessable(f"{subject_type}/{subject_id} is not linked to a patient", expression="patient")
            previous = self.latest(conn, subject_type, subject_id)
            if previous is not None and previous.is_open:
                raise Conflict(f"{subject_type}/{subject_id} already has an open invitation ({previous.state}); "
                               "resend or cancel it", expression=subject_type)
            if previous is not None and previous.state == "registered":
                raise Conflict(f"{subject_type}/{subject_id} is already registered for the portal",
                               expression=subject_type)
            if not subject.get("birthDate"):
                raise Unprocessable(f"{subject_type}/{subject_id} has no date of birth: registration asks for it "
                                    "to prove who is registering; add birthDate to the record, then invite",
                                    expression="birthDate")
            email = email or _telecom(subject, "email")
            phone = phone or _telecom(subject, "phone") or _telecom(subject, "sms")
            if not email:
                raise Unprocessable(f"{subject_type}/{subject_id} has no email address: add one to the record or "
                                    "give one in the 'email' parameter", expression="email")
            now = clock.now()
            person_id = previous.person_id if previous is not None else new_id()
            pin, link_token = new_pin(), new_secret()
            values = dict(subject_type=subject_type, subject_id=subject_id, patient_id=patient_id, task_id=new_id(),
                          person_id=person_id, state="invited", email=email, phone=phone,
                          pin_encrypted=self.vault.encrypt(pin), pin_hash=self.vault.keyed_hash(pin),
                          link_hash=digest(link_token), failed_attempts=0, requested_by=requested_by,
                          created=now, expires_at=now + self.lifetime)
            if previous is not None:  # its link is superseded
                conn.execute(update(portal_invitation).where(portal_invitation.c.id == previous.id)
                             .values(link_hash=None))
            invitation = _invitation(conn.execute(insert(portal_invitation).values(**values)
                                                  .returning(*portal_invitation.c)).one())
            self._write_person(conn, invitation, subject, active=False)
            self._write_task(conn, invitation)
            return self._delivered(conn, Issued(invitation, display(pin), link_token), deliver)

    def resend(self, subject_type: str, subject_id: str, deliver: Deliver | None = None) -> Issued:
        """A new link (the old one stops working) for the open invitation; the PIN stays. Unlocks.
        (``deliver``: see ``_delivered``.)"""
        with self.database.write() as conn:
            invitation = self._require(conn, subject_type, subject_id, OPEN | {"expired"}, "resend")
            link_token = new_secret()
            now = clock.now()
            invitation = self._set(conn, invitation.id, link_hash=digest(link_token), state="invited",
                                   failed_attempts=0, expires_at=now + self.lifetime, code_hash=None,
                                   code_expires_at=None, code_requests=0)
            self._write_task(conn, invitation)
            return self._delivered(conn, Issued(invitation, self.access_code(invitation), link_token), deliver)

    def _delivered(self, conn: Connection, issued: Issued, deliver: Deliver | None) -> Issued:
        """With ``deliver`` (queues the email within this transaction, e.g. in the outbox, and answers the
        error if it could not): its outcome recorded in the same transaction, so that the invitation, its
        email and "sent" commit together. Without: the caller sends after the commit, then calls
        ``record_delivery``."""
        if deliver is None:
            return issued
        return Issued(self._record_delivery(conn, issued.invitation, deliver(conn, issued)), issued.pin,
                      issued.link_token)

    def cancel(self, subject_type: str, subject_id: str) -> Invitation:
        with self.database.write() as conn:
            invitation = self._require(conn, subject_type, subject_id, OPEN | {"expired"}, "cancel")
            return self._end(conn, invitation, "cancelled")

    def revoke(self, subject_type: str, subject_id: str) -> Invitation:
        """Access ends now: the account cannot sign in and every token it (or its apps) holds dies; a
        caregiver's Consent becomes inactive."""
        with self.database.write() as conn:
            invitation = self._require(conn, subject_type, subject_id, {"registered"}, "revoke")
            ended = self._end(conn, invitation, "revoked")
            if invitation.consent_id is not None:
                self._end_consent(conn, invitation.consent_id, clock.ensure_utc(ended.ended))
            if invitation.account_id is not None:
                self.tokens.revoke_account(conn, invitation.account_id)
            person = dict(self.repository.read(conn, "Person", invitation.person_id).body)
            person["active"] = False
            self.repository.update(conn, "Person", invitation.person_id, person)
        if invitation.account_id is not None:
            self.accounts.set_active(invitation.account_id, False)
        return ended

    def record_delivery(self, invitation: Invitation, error: str | None) -> Invitation:
        """The email's outcome (``error`` None: sent now); the invitation as it now stands."""
        with self.database.write() as conn:
            return self._record_delivery(conn, invitation, error)

    def _record_delivery(self, conn: Connection, invitation: Invitation, error: str | None) -> Invitation:
        return self._set(conn, invitation.id, delivery_error=error, sent=None if error else clock.now())

    # ------------------------------------------------------------------ the patient's side
    def verify_pin(self, link_token: str, birth_date: str, pin: str) -> Invitation | None:
        """The open invitation behind the link if date of birth and PIN are right; a wrong answer
        counts towards the lock (committed even though the attempt fails)."""
        with self.database.write() as conn:
            invitation = self._open_locked(conn, link_token)
            if invitation is None:
                return None
            right = self.vault.matches(pin, invitation.pin_hash) and self._birth_matches(conn, invitation, birth_date)
            if right:
                return invitation
            self._count_failure(conn, invitation)
        return None

    def request_code(self, link_token: str, birth_date: str, phone: str) -> CodeRequest:
        """The phone path's first step. Counts the request (at most ``MAX_CODE_REQUESTS``, matching
        or not); only when date of birth and phone match is a new code made, replacing any earlier
        one. The caller texts ``message`` to ``phone`` after this transaction and answers the same
        whatever the outcome but ``limit``."""
        with self.database.write() as conn:
            invitation = self.by_link(conn, link_token)
            if invitation is None or invitation.state != "invited":
                return CodeRequest("closed", invitation)
            self.database.lock(conn, f"portal-invitation:{invitation.subject}")
            invitation = self._get(conn, invitation.id)  # the count as of the lock
            if invitation.state != "invited":
                return CodeRequest("closed", invitation)
            if invitation.code_requests >= MAX_CODE_REQUESTS:
                return CodeRequest("limit", invitation)
            values: dict = {"code_requests": invitation.code_requests + 1}
            matched = same_phone(phone, invitation.phone) and self._birth_matches(conn, invitation, birth_date)
            code = new_code() if matched else None
            if code is not None:
                values.update(code_hash=self._code_hash(code), code_expires_at=clock.now() + CODE_LIFETIME)
            invitation = self._set(conn, invitation.id, **values)
            if code is None:
                return CodeRequest("no-match", invitation)
            minutes = int(CODE_LIFETIME.total_seconds() // 60)
            practice = self._practice_name(conn, invitation)
            message = (f"Your {practice + ' portal' if practice else 'patient portal'} security code is {code}. "
                       f"It expires in {minutes} minutes.")
        return CodeRequest("sent", invitation, invitation.phone, message)

    def verify_code(self, link_token: str, birth_date: str, code: str) -> Invitation | None:
        """The open invitation behind the link if date of birth and the latest SMS code (not expired)
        are right; a wrong answer counts towards the lock like a wrong PIN."""
        with self.database.write() as conn:
            invitation = self._open_locked(conn, link_token)
            if invitation is None:
                return None
            entered = "".join(ch for ch in code if ch.isdigit()) if len(code) <= 40 else ""
            live = (invitation.code_hash is not None and invitation.code_expires_at is not None
                    and clock.ensure_utc(invitation.code_expires_at) > clock.now())
            right = (live and len(entered) == CODE_DIGITS
                     and self.vault.matches(f"SMS{entered}", invitation.code_hash))
            if right and self._birth_matches(conn, invitation, birth_date):
                return invitation
            self._count_failure(conn, invitation)
        return None

    def complete(self, invitation: Invitation, account_id: int, proofing: str) -> Invitation:
        """Registration done: the link is used up, the Person is active and records how it was proofed;
        a caregiver's access is recorded as an active Consent."""
        with self.database.write() as conn:
            current = self._get(conn, invitation.id)
            if current.state != "invited":
                raise Conflict("This invitation is no longer open")
            # an account that already has a portal Person (linking a second record to it) keeps that one
            existing = conn.execute(select(portal_invitation.c.person_id).where(
                portal_invitation.c.account_id == account_id, portal_invitation.c.id != invitation.id,
                portal_invitation.c.state == "registered").order_by(portal_invitation.c.id).limit(1)).scalar()
            current = self._end(conn, self._set(conn, invitation.id, account_id=account_id, link_hash=None,
                                                code_hash=None, code_expires_at=None,
                                                **({"person_id": existing} if existing else {})), "registered")
            if existing:
                self._add_link(conn, existing, current.subject, ASSURANCE[proofing])
            else:
                subject = self.repository.read(conn, current.subject_type, current.subject_id).body
                self._write_person(conn, current, subject, active=True, assurance=ASSURANCE[proofing])
            if current.subject_type == "RelatedPerson":
                consent_id = self._write_consent(conn, current, clock.ensure_utc(current.ended))
                current = self._set(conn, current.id, consent_id=consent_id)
        return current

    # ------------------------------------------------------------------ helpers
    def _open_locked(self, conn: Connection, link_token: str) -> Invitation | None:
        """The open invitation behind the link, read under its lock (until the transaction ends), so
        that concurrent answers — in any worker — are judged one at a time against the latest failure
        count: no lost update, never more than ``MAX_FAILED_ATTEMPTS`` wrong answers judged."""
        invitation = self.by_link(conn, link_token)
        if invitation is None or invitation.state != "invited":
            return None
        self.database.lock(conn, f"portal-invitation:{invitation.subject}")
        invitation = self._get(conn, invitation.id)
        return invitation if invitation.state == "invited" else None

    def _add_link(self, conn: Connection, person_id: str, subject: str, assurance: str) -> None:
        """One Person (portal account) linked to one more record (another practice's, or another patient's)."""
        person = dict(self.repository.read(conn, "Person", person_id).body)
        links = [link for link in person.get("link", []) if link.get("target", {}).get("reference") != subject]
        person["link"] = [*links, {"target": {"reference": subject}, "assurance": assurance}]
        person["active"] = True
        self.repository.update(conn, "Person", person_id, person)

    def _birth_matches(self, conn: Connection, invitation: Invitation, birth_date: str) -> bool:
        subject = self.repository.read(conn, invitation.subject_type, invitation.subject_id).body
        expected_birth = subject.get("birthDate")  # required at invite time; removed since: nobody matches
        return expected_birth is not None and expected_birth == birth_date.strip()

    def _count_failure(self, conn: Connection, invitation: Invitation) -> None:
        """One more wrong answer (PIN or code); the fifth locks the invitation."""
        failures = invitation.failed_attempts + 1
        values: dict = {"failed_attempts": failures}
        if failures >= MAX_FAILED_ATTEMPTS:
            values["state"] = "locked"
        counted = self._set(conn, invitation.id, **values)
        if failures >= MAX_FAILED_ATTEMPTS:
            self._write_task(conn, counted)

    def _code_hash(self, code: str) -> str:
        return self.vault.keyed_hash(f"SMS{code}")  # apart from the PINs' hashes

    def _practice_name(self, conn: Connection, invitation: Invitation) -> str | None:
        """The name of the patient's managing organization, if it has one."""
        try:
            patient = self.repository.read(conn, "Patient", invitation.patient_id).body
            reference = (patient.get("managingOrganization") or {}).get("reference") or ""
            if reference.startswith("Organization/"):
                name = self.repository.read(conn, "Organization", reference.removeprefix("Organization/")).body \
                    .get("name")
                if isinstance(name, str) and name.strip():
                    return " ".join(name.split())[:80]
        except FhirError:
            pass
        return None

    def _get(self, conn: Connection, invitation_id: int) -> Invitation:
        return _invitation(conn.execute(select(portal_invitation).where(portal_invitation.c.id == invitation_id))
                           .one())

    @staticmethod
    def _set(conn: Connection, invitation_id: int, **values) -> Invitation:
        """The invitation with ``values`` changed, as stored (one statement: UPDATE … RETURNING)."""
        return _invitation(conn.execute(update(portal_invitation).where(portal_invitation.c.id == invitation_id)
                                        .values(**values).returning(*portal_invitation.c)).one())

    def _require(self, conn: Connection, subject_type: str, subject_id: str, states: set[str] | frozenset[str],
                 action: str) -> Invitation:
        self.database.lock(conn, f"portal-invitation:{subject_type}/{subject_id}")
        invitation = self.latest(conn, subject_type, subject_id)
        if invitation is None or invitation.state not in states:
            state = invitation.state if invitation else "not-invited"
            raise Conflict(f"Cannot {action}: {subject_type}/{subject_id} is {state}", expression=subject_type)
        return invitation

    def _end(self, conn: Connection, invitation: Invitation, state: str) -> Invitation:
        ended = self._set(conn, invitation.id, state=state, ended=clock.now(), link_hash=None)
        self._write_task(conn, ended)
        return ended

    def _write_task(self, conn: Connection, invitation: Invitation) -> None:
        task = {
            "resourceType": "Task",
            "status": TASK_STATUS[invitation.state],
            "businessStatus": {"text": invitation.state},
            "intent": "order",
            "code": {"coding": [TASK_CODE]},
            "focus": {"reference": invitation.subject},
            "for": {"reference": f"Patient/{invitation.patient_id}"},
            "authoredOn": clock.as_instant(clock.ensure_utc(invitation.created)),
            "lastModified": clock.as_instant(clock.now()),
            "restriction": {"period": {"end": clock.as_instant(clock.ensure_utc(invitation.expires_at))}},
            "input": [{"type": {"text": "portal-account"},
                       "valueReference": {"reference": f"Person/{invitation.person_id}"}}],
        }
        if invitation.requested_by and "/" in invitation.requested_by:
            task["requester"] = {"reference": invitation.requested_by}
        elif invitation.requested_by:
            task["requester"] = {"display": invitation.requested_by}
        self.repository.update(conn, "Task", invitation.task_id, task)

    def _write_consent(self, conn: Connection, invitation: Invitation, start: datetime) -> str:
        """An active Consent: the patient permits the caregiver (RelatedPerson) from ``start``; its id."""
        when = clock.as_instant(start)
        consent = {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [CONSENT_SCOPE]},
            "category": [{"coding": [CONSENT_CATEGORY]}],
            "patient": {"reference": f"Patient/{invitation.patient_id}"},
            "dateTime": when,
            "policyRule": {"coding": [CONSENT_POLICY]},
            "provision": {
                "type": "permit",
                "period": {"start": when},
                "actor": [{"role": {"coding": [CONSENT_ACTOR_ROLE]}, "reference": {"reference": invitation.subject}}],
            },
        }
        return self.repository.create(conn, consent).fhir_id

    def _end_consent(self, conn: Connection, consent_id: str, end: datetime) -> None:
        """The caregiver's Consent stops permitting at ``end`` (nothing to do if it was deleted)."""
        try:
            consent = dict(self.repository.read(conn, "Consent", consent_id).body)
        except (NotFound, Gone):
            return
        provision = dict(consent.get("provision") or {})
        provision["period"] = {**(provision.get("period") or {}), "end": clock.as_instant(end)}
        consent.update(status="inactive", provision=provision)
        self.repository.update(conn, "Consent", consent_id, consent)

    def _write_person(self, conn: Connection, invitation: Invitation, subject: dict, *, active: bool,
                      assurance: str = "level1") -> None:
        telecom = [{"system": "email", "value": invitation.email}] if invitation.email else []
        if invitation.phone:
            telecom.append({"system": "phone", "value": invitation.phone})
        person = {"resourceType": "Person", "active": active, "telecom": telecom,
                  "link": [{"target": {"reference": invitation.subject}, "assurance": assurance}]}
        if subject.get("name"):
            person["name"] = subject["name"]
        self.repository.update(conn, "Person", invitation.person_id, person)
