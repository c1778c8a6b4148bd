"""Auto-invite (Patient Fusion: "signing a chart note auto-invites the patient").

Off until an administrator turns the practice's ``auto_invite_enabled`` on, and then only for the
staff users whose ``auto_invite_on_signed_note`` is on (``PracticeSettings``, the PHR invite settings).
The user is found by the account's ``fhirUser`` (``Practitioner/…``).

Two triggers, the same invitation:

* **a signed note** — a Composition whose ``status`` becomes ``final`` or ``amended`` (an amendment is
  signed again), signed by (``attester`` with mode legal or professional) or written by (``author``) a
  Practitioner; or a DocumentReference whose ``docStatus`` becomes ``final`` (not entered in error), by
  its ``authenticator`` or ``author``. "Becomes": the previous version had another status, so saving
  a signed note again invites nobody. Run by ``on_commit``, an after-commit hook of the FHIR layer
  (``FhirContext.after_commit``), so after the client's transaction and never failing it.
* **a visit without a signed note** — an Encounter ``finished`` whose ``period.end`` is 30 or more
  days ago (and at most ``max_age_days``), with no signed Composition or DocumentReference for it, on
  behalf of its participant Practitioner: ``scan_unsigned_visits``, run daily by
  ``fhirportal portal auto-invite``. A visit is handled once: an invitation created after the visit
  ended (whatever became of it) means there is nothing to do.

The patient (``subject``) must be 18 to 85 years old today, alive, with an email and a phone number in
``telecom``, and never have been invited, or only by an invitation that expired: a registered patient,
an open invitation, and an invitation staff cancelled or an account they revoked (a person's decision
that a machine does not overrule) mean no auto-invite. The invitation is the one ``$portal-invite``
makes (``requested_by`` = the Practitioner); its email tells the patient to register with the phone
option, since nobody handed over the PIN (staff still see it in ``$portal-status``). Each one is
journalled (action ``portal-auto-invite``, the query naming what triggered it).
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from fhirportal.errors import Conflict, FhirError
from fhirportal.fhir.audit import Access
from fhirportal.fhir.context import FhirContext
from fhirportal.fhir.search_params import parse_criteria
from fhirportal.smart.accounts import Account, AccountStore
from fhirportal.store import clock
from fhirportal.store.records import StoredResource

from .invitations import Enrollment, Invitation, _telecom
from .operations import send_invitation
from .settings_api import PracticeSettings

log = logging.getLogger(__name__)

NOTE_TYPES = frozenset({"Composition", "DocumentReference"})
SIGNED_COMPOSITION = frozenset({"final", "amended"})
ATTESTING_MODES = frozenset({"legal", "professional"})
MIN_AGE, MAX_AGE = 18, 85
VISIT_WAIT = timedelta(days=30)
DEFAULT_MAX_AGE_DAYS = 90
JOURNAL_ACTION = "portal-auto-invite"
JOURNAL_CLIENT = "auto-invite"


@dataclass(frozen=True)
class Outcome:
    """What became of one candidate: ``invited``, or skipped with the reason."""

    patient_id: str
    practitioner: str
    trigger: str  # the Composition, DocumentReference or Encounter
    invited: bool
    reason: str  # "invited", or why not (e.g. "age", "no phone", "registered")


# ---------------------------------------------------------------------- reading the resources
def _reference(value, base_url: str) -> str | None:
    """``Type/id`` of a Reference (relative or under our base; no version)."""
    text = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(text, str):
        return None
    text = text.removeprefix(base_url + "/").split("/_history/")[0]
    return text if text.count("/") == 1 else None


def _practitioners(references: Iterable, base_url: str) -> list[str]:
    found = []
    for value in references:
        reference = _reference(value, base_url)
        if reference and reference.startswith("Practitioner/") and reference not in found:
            found.append(reference)
    return found


def signed_status(body: dict | None) -> str | None:
    """The note's signed status (``final`` / ``amended``), or None if it is not a signed note."""
    if not body:
        return None
    if body.get("resourceType") == "Composition":
        return body.get("status") if body.get("status") in SIGNED_COMPOSITION else None
    if body.get("resourceType") == "DocumentReference":
        return "final" if body.get("docStatus") == "final" and body.get("status") != "entered-in-error" else None
    return None


def signers(body: dict, base_url: str) -> list[str]:
    """The note's Practitioners, who signed it first, then its authors."""
    if body.get("resourceType") == "Composition":
        attesters = [a.get("party") for a in body.get("attester") or []
                     if isinstance(a, dict) and a.get("mode") in ATTESTING_MODES]
        return _practitioners([*attesters, *(body.get("author") or [])], base_url)
    return _practitioners([body.get("authenticator"), *(body.get("author") or [])], base_url)


def age_range(birth_date, today: date) -> tuple[int, int] | None:
    """(youngest, oldest) age today for a FHIR date (a year or year-month leaves a range); None if unusable."""
    if not isinstance(birth_date, str):
        return None
    try:
        parts = [int(p) for p in birth_date[:10].split("-")]
        year = parts[0]
        month = parts[1] if len(parts) > 1 else None
        day = parts[2] if len(parts) > 2 else None
        earliest = date(year, month or 1, day or 1)
        latest = date(year, month or 12, day or calendar.monthrange(year, month or 12)[1])
    except (ValueError, IndexError):
        return None

    def years(born: date) -> int:
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    return years(latest), years(earliest)


def _end_of(text) -> datetime | None:
    """The instant a FHIR dateTime ends (a date: the end of that day); None for a year or year-month."""
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=1)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return clock.ensure_utc(moment)


def ineligible(patient: dict, latest: Invitation | None, today: date) -> str | None:
    """Why this patient may not be auto-invited (None: they may)."""
    if patient.get("deceasedBoolean") is True or patient.get("deceasedDateTime"):
        return "deceased"
    ages = age_range(patient.get("birthDate"), today)
    if ages is None or ages[0] < MIN_AGE or ages[1] > MAX_AGE:
        return "age"
    if not _telecom(patient, "email"):
        return "no email"
    if not (_telecom(patient, "phone") or _telecom(patient, "sms")):
        return "no phone"
    if latest is not None and latest.state != "expired":
        return latest.state  # registered, invited, locked (open); cancelled or revoked (staff decided)
    return None


# ---------------------------------------------------------------------- the inviter
class AutoInviter:
    def __init__(self, ctx: FhirContext, enrollment: Enrollment, accounts: AccountStore, settings: PracticeSettings,
                 notifier, registration_url: Callable[[str], str]):
        self.ctx = ctx
        self.enrollment = enrollment
        self.accounts = accounts
        self.settings = settings
        self.notifier = notifier
        self.registration_url = registration_url

    def users(self) -> dict[str, Account]:
        """The staff accounts whose signed notes invite, by their fhirUser (Practitioner/…); none while
        the practice's switch is off."""
        found: dict[str, Account] = {}
        for account_id in self.settings.auto_invite_users():
            account = self.accounts.get(account_id)
            if account is not None and account.fhir_user and account.fhir_user.startswith("Practitioner/"):
                found.setdefault(account.fhir_user, account)
        return found

    # ------------------------------------------------------------------ signed notes
    def on_commit(self, records: list[StoredResource]) -> None:
        """The after-commit hook: a note that became signed may invite its patient. Never raises."""
        notes = [r for r in records if r.resource_type in NOTE_TYPES and not r.deleted]
        if not notes or not any(signed_status(r.body) for r in notes):
            return
        try:
            users = self.users()
        except Exception:
            log.exception("auto-invite: could not read who auto-invites (the notes themselves are saved)")
            return
        for record in notes if users else ():
            try:
                self.note_signed(record, users)
            except Exception:
                log.exception("auto-invite after signing %s failed (the note itself is saved)", record.reference)

    def note_signed(self, record: StoredResource, users: dict[str, Account]) -> Outcome | None:
        body = record.body
        status = signed_status(body)
        if status is None:
            return None
        signer = next((p for p in signers(body, self.ctx.base_url) if p in users), None)
        subject = _reference(body.get("subject"), self.ctx.base_url)
        if signer is None or not subject or not subject.startswith("Patient/"):
            return None
        if record.version_id > 1:
            with self.ctx.database.read() as conn:
                try:
                    previous = self.ctx.repository.vread(conn, record.resource_type, record.fhir_id,
                                                         record.version_id - 1)
                except FhirError:
                    previous = None
            if previous is not None and not previous.deleted and signed_status(previous.body) == status:
                return None  # it was signed already: saved again, not signed now
        return self.invite(subject.removeprefix("Patient/"), users[signer], signer, record.reference)

    # ------------------------------------------------------------------ the invitation
    def invite(self, patient_id: str, account: Account, practitioner: str, trigger: str, *,
               invited_since: datetime | None = None) -> Outcome:
        """Invite the patient on ``practitioner``'s behalf if the rules allow; ``invited_since``: an
        invitation created at or after that instant (any state) means it was done already."""
        def skipped(reason: str) -> Outcome:
            log.info("auto-invite: Patient/%s not invited (%s), trigger %s", patient_id, reason, trigger)
            return Outcome(patient_id, practitioner, trigger, False, reason)

        with self.ctx.database.read() as conn:
            try:
                patient = self.ctx.repository.read(conn, "Patient", patient_id).body
            except FhirError:
                return skipped("unknown patient")
            latest = self.enrollment.latest(conn, "Patient", patient_id)
        if invited_since is not None and latest is not None \
                and clock.ensure_utc(latest.created) >= invited_since:
            return skipped("invited since")
        reason = ineligible(patient, latest, clock.now().date())
        if reason:
            return skipped(reason)
        try:
            issued = self.enrollment.invite("Patient", patient_id, email=None, phone=None, requested_by=practitioner)
        except Conflict:  # invited (or registered) meanwhile
            return skipped("invited meanwhile")
        send_invitation(self.enrollment, self.notifier, self.registration_url(issued.link_token), issued,
                        pin_handed_over=False)
        self.ctx.audit.record(Access(
            action=JOURNAL_ACTION, resource_type="Patient",
            query=f"Patient/{patient_id}?" + urlencode({"trigger": trigger}, safe="/"), outcome=200,
            client_id=JOURNAL_CLIENT, account_id=account.id, fhir_user=practitioner, patient_id=patient_id))
        log.info("auto-invite: Patient/%s invited on behalf of %s, trigger %s", patient_id, practitioner, trigger)
        return Outcome(patient_id, practitioner, trigger, True, "invited")

    # ------------------------------------------------------------------ visits without a signed note
    def scan_unsigned_visits(self, *, now: datetime | None = None,
                             max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> list[Outcome]:
        """Invite for every finished Encounter that ended 30 to ``max_age_days`` days ago without a
        signed note, on behalf of its first participant Practitioner who has auto-invite on."""
        now = now or clock.now()
        users = self.users()
        if not users:
            return []
        newest, oldest = now - VISIT_WAIT, now - timedelta(days=max_age_days)
        candidates: list[tuple[str, str, str, datetime]] = []  # encounter, patient, practitioner, end
        with self.ctx.database.read() as conn:
            criteria, _ = parse_criteria(self.ctx.search_parameters, "Encounter", [
                ("status", "finished"), ("date", f"le{clock.as_instant(newest)}"),
                ("date", f"ge{clock.as_instant(oldest)}")], strict=True)
            for encounter_id in self.ctx.repository.search_ids(conn, "Encounter", criteria):
                encounter = self.ctx.repository.read(conn, "Encounter", encounter_id).body
                ended = _end_of((encounter.get("period") or {}).get("end"))
                if encounter.get("status") != "finished" or ended is None or not oldest <= ended <= newest:
                    continue
                subject = _reference(encounter.get("subject"), self.ctx.base_url)
                practitioner = next((p for p in _practitioners(
                    [part.get("individual") for part in encounter.get("participant") or [] if isinstance(part, dict)],
                    self.ctx.base_url) if p in users), None)
                if not subject or not subject.startswith("Patient/") or practitioner is None:
                    continue
                if self._has_signed_note(conn, encounter_id):
                    continue
                candidates.append((f"Encounter/{encounter_id}", subject.removeprefix("Patient/"), practitioner,
                                   ended))
        outcomes = []
        for trigger, patient_id, practitioner, ended in candidates:
            try:
                outcomes.append(self.invite(patient_id, users[practitioner], practitioner, trigger,
                                            invited_since=ended))
            except Exception:
                log.exception("auto-invite for %s failed", trigger)
                outcomes.append(Outcome(patient_id, practitioner, trigger, False, "error"))
        return outcomes

    def _has_signed_note(self, conn, encounter_id: str) -> bool:
        for note_type in ("Composition", "DocumentReference"):
            criteria, _ = parse_criteria(self.ctx.search_parameters, note_type,
                                         [("encounter", f"Encounter/{encounter_id}")], strict=True)
            for note_id in self.ctx.repository.search_ids(conn, note_type, criteria):
                if signed_status(self.ctx.repository.read(conn, note_type, note_id).body):
                    return True
        return False
