"""What a patient (or a caregiver, through the patient's token) may write of an Appointment, and which
Slots an Appointment holds. Pure functions of the resources; ``slots.py`` applies them in the write's
transaction.

A patient/ token:

- creates only requests: ``status`` ``proposed``, the token's patient a participant (``needs-action`` or
  ``accepted``), no other patient, the practice's participants ``needs-action``; either a ``slot`` (then
  ``start``/``end`` are the slot's) or a ``requestedPeriod``;
- changes its patient's appointment only to cancel it (``cancelled``; ``cancelationReason`` becomes
  "patient" when not given), or to edit a request that is still ``proposed``; a ``booked`` (or
  ``pending``, ``arrived``…) appointment can be cancelled online only until ``cancel_hours`` before it
  starts — after that the practice must be called.

Staff (user/) and systems (system/) write any status. Every writer is held to the slot rule: an
Appointment that is ``proposed``/``pending`` holds its slots ``busy-tentative``, one ``booked`` (or
``arrived``, ``checked-in``, ``fulfilled``) ``busy``; ``cancelled``/``entered-in-error`` (or dropping the
slot) frees them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhirportal.errors import Forbidden, Unprocessable

APPOINTMENT = "Appointment"
SLOT = "Slot"
CANCELLATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
PATIENT_CANCELLED = {"coding": [{"system": CANCELLATION_SYSTEM, "code": "pat", "display": "Patient"}]}
TENTATIVE = frozenset({"proposed", "pending"})
BOOKED = frozenset({"booked", "arrived", "checked-in", "fulfilled"})
HOLDING = TENTATIVE | BOOKED
FREED = frozenset({"cancelled", "entered-in-error"})
PATIENT_STATUSES = frozenset({"needs-action", "accepted"})


def slot_status_for(appointment: dict | None) -> str | None:
    """The status the appointment's slots must have while it holds them (None: it holds none)."""
    status = (appointment or {}).get("status")
    if status in TENTATIVE:
        return "busy-tentative"
    if status in BOOKED:
        return "busy"
    return None


def slot_ids(appointment: dict | None) -> list[str]:
    """The ids of the local Slots the appointment references (``Slot/id``), in order, once each."""
    found: list[str] = []
    for ref in (appointment or {}).get("slot") or []:
        reference = (ref.get("reference") or "") if isinstance(ref, dict) else ""
        parts = reference.split("/_history")[0].split("/")
        if len(parts) >= 2 and parts[-2] == SLOT and parts[-1] and parts[-1] not in found:
            found.append(parts[-1])
    return found


def held(appointment: dict | None) -> dict[str, str]:
    """Slot id -> the status the appointment holds it in."""
    status = slot_status_for(appointment)
    return {} if status is None else dict.fromkeys(slot_ids(appointment), status)


def is_patient_cancellation(appointment: dict) -> bool:
    reason = appointment.get("cancelationReason") or {}
    return any(c.get("system") == CANCELLATION_SYSTEM and c.get("code") == "pat" for c in reason.get("coding", []))


def _participants(appointment: dict, patient: str) -> None:
    mine = f"Patient/{patient}"
    named = False
    for index, participant in enumerate(appointment.get("participant") or []):
        where = f"Appointment.participant[{index}]"
        reference = ((participant or {}).get("actor") or {}).get("reference") or ""
        if reference.startswith("Patient/") or "/Patient/" in reference:
            if reference.split("/")[-2:] != ["Patient", patient]:
                raise Forbidden(f"A patient may request appointments only for {mine}, not for {reference}",
                                expression=f"{where}.actor")
            named = True
            if participant.get("status") not in PATIENT_STATUSES:
                raise Unprocessable("The patient's participation in a request is 'needs-action' or 'accepted'",
                                    expression=f"{where}.status")
        elif participant.get("status") != "needs-action":
            raise Unprocessable("The practice's participants of a request are 'needs-action' until it is booked",
                                expression=f"{where}.status")
    if not named:
        raise Unprocessable(f"An appointment request names its patient ({mine}) as a participant",
                            expression="Appointment.participant")


def _no_other_patient(appointment: dict, patient: str) -> None:
    for index, participant in enumerate(appointment.get("participant") or []):
        reference = ((participant or {}).get("actor") or {}).get("reference") or ""
        if (reference.startswith("Patient/") or "/Patient/" in reference) and \
                reference.split("/")[-2:] != ["Patient", patient]:
            raise Forbidden(f"A patient's appointment names only Patient/{patient}, not {reference}",
                            expression=f"Appointment.participant[{index}].actor")


def check_request(appointment: dict, patient: str) -> None:
    """A patient's new or edited request (status ``proposed``): who and when."""
    if appointment.get("status") != "proposed":
        raise Forbidden(f"A patient may only request an appointment (status 'proposed'), not set "
                        f"'{appointment.get('status')}': the practice books it", expression="Appointment.status")
    _participants(appointment, patient)
    if not slot_ids(appointment) and not appointment.get("requestedPeriod"):
        raise Unprocessable("An appointment request needs a free slot (Appointment.slot) or the times that suit "
                            "(Appointment.requestedPeriod)", expression="Appointment.slot")


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_patient_change(old: dict, new: dict, patient: str, cancel_hours: int, now: datetime) -> dict:
    """A patient's update of an existing appointment: a cancellation (before the cut-off) or an edit of a
    request still proposed. Returns the appointment to store."""
    before, after = old.get("status"), new.get("status")
    if after == "cancelled" and before in HOLDING | {"waitlist"}:
        start = _instant(old.get("start"))
        if before not in TENTATIVE and start is not None and now + timedelta(hours=cancel_hours) > start:
            raise Unprocessable(f"This appointment can no longer be cancelled online: the practice takes "
                                f"cancellations up to {cancel_hours} hours before the appointment. Please call "
                                f"the practice.", expression="Appointment.status")
        _no_other_patient(new, patient)
        return new if new.get("cancelationReason") else {**new, "cancelationReason": PATIENT_CANCELLED}
    if before == after == "proposed":
        check_request(new, patient)
        return new
    if after == before:
        raise Forbidden(f"A patient may cancel this appointment ('{before}') but not change it",
                        expression="Appointment.status")
    raise Forbidden(f"A patient may not change an appointment's status from '{before}' to '{after}' (only cancel "
                    f"it)", expression="Appointment.status")


def fill_times(appointment: dict, slots: list[dict], *, strict: bool) -> dict:
    """``start``/``end`` of an appointment on slots: the span of its slots when not given; ``strict`` (a
    patient's request): when given, they must be that span."""
    starts = [s["start"] for s in slots if s.get("start")]
    ends = [s["end"] for s in slots if s.get("end")]
    if not starts or not ends:
        return appointment
    start = min(starts, key=lambda v: _instant(v) or datetime.max.replace(tzinfo=UTC))
    end = max(ends, key=lambda v: _instant(v) or datetime.min.replace(tzinfo=UTC))
    if strict:
        for name, value in (("start", start), ("end", end)):
            given = appointment.get(name)
            if given is not None and _instant(given) != _instant(value):
                raise Unprocessable(f"A request's {name} is its slot's ({value})", expression=f"Appointment.{name}")
    filled = dict(appointment)
    filled.setdefault("start", start)
    filled.setdefault("end", end)
    return filled
