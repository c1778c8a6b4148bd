"""The portal's appointment pages: the patient's appointments and requests with their status (a cancel
button while the practice's cut-off allows it), and "Request an appointment" — the practice's free Slots of
the next weeks grouped by day, one chosen with a reason, or a time range asked for when none fits.

Everything goes through the FHIR API with the session's token (``FhirApi``): the server decides (a patient
may only request, for its own patient; a slot taken meanwhile is a 409; a cancellation after the cut-off a
422), and the pages say what it answered.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, Response, request

from .client import ApiError, FhirApi
from .portal import csrf_ok, nav_values, page, portal, see_other, signed_in_page
from .sessions import WebSession
from .summary import patient_banner
from .words import concept, human_name, parse_moment, when

bp = Blueprint("web_appointments", __name__, template_folder="templates")
WEEKS = 4
CANCELLABLE = ("proposed", "pending", "booked", "waitlist")
STATUS_WORDS = {"proposed": "requested — waiting for the practice", "pending": "waiting for confirmation",
                "booked": "booked", "arrived": "arrived", "checked-in": "checked in", "fulfilled": "attended",
                "cancelled": "cancelled", "noshow": "missed", "waitlist": "on the waiting list",
                "entered-in-error": "withdrawn"}
NOTICES = {"requested": "Your request was sent to the practice. You will get an email when it is answered.",
           "cancelled": "Your appointment was cancelled."}


def _now() -> datetime:
    return datetime.now(UTC)


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)



class Names:
    """Display names of the practice's people and places a page mentions, each read once."""

    def __init__(self, api: FhirApi):
        self.api = api
        self.known: dict[str, str] = {}

    def of(self, reference: dict | None) -> str:
        reference = reference or {}
        target = reference.get("reference") or ""
        if reference.get("display"):
            return reference["display"]
        if target not in self.known:
            kind, _, fhir_id = target.partition("/")
            found = self.api.read(kind, fhir_id) if kind and fhir_id and "/" not in fhir_id else None
            self.known[target] = human_name(found)
        return self.known[target]


def _with_whom(appointment: dict, names: Names) -> str:
    return ", ".join(filter(None, (names.of(p.get("actor")) for p in appointment.get("participant", [])
                                   if not ((p.get("actor") or {}).get("reference") or "").startswith(
                                       ("Patient/", "RelatedPerson/")))))


def _may_cancel(appointment: dict, cancel_hours: int, now: datetime) -> bool:
    status = appointment.get("status")
    if status not in CANCELLABLE:
        return False
    start = _moment(appointment.get("start"))
    if status == "proposed" or start is None:
        return True
    return start - now >= timedelta(hours=cancel_hours)


def _period_text(periods: list) -> str:
    spans = [f"{when(p.get('start'))} to {when(p.get('end'))}" for p in periods or [] if p.get("start")]
    return "; ".join(spans)


def appointment_rows(api: FhirApi, patient: str, cancel_hours: int, now: datetime) -> list[dict]:
    found = api.search("Appointment", [("patient", patient), ("_sort", "-date"), ("_count", "200")])
    names = Names(api)
    rows = []
    for a in found:
        rows.append({
            "id": a["id"], "version": (a.get("meta") or {}).get("versionId"),
            "what": a.get("description") or concept(a.get("appointmentType"), "Appointment"),
            "when": when(a.get("start"), with_time=True, weekday=True) if a.get("start") else
            (f"asked for {_period_text(a.get('requestedPeriod'))}" if a.get("requestedPeriod") else ""),
            "who": _with_whom(a, names), "status": STATUS_WORDS.get(a.get("status", ""), a.get("status", "")),
            "raw_status": a.get("status"), "may_cancel": _may_cancel(a, cancel_hours, now),
            "late": a.get("status") in CANCELLABLE and not _may_cancel(a, cancel_hours, now),
            "upcoming": (_moment(a.get("start")) or now) >= now})
    return rows


def free_slots(api: FhirApi, now: datetime, weeks: int = WEEKS) -> list[dict]:
    """The free slots from now to ``weeks`` ahead, grouped by day: [{day, slots: [{id, time, who}]}]."""
    query = [("status", "free"), ("start", f"ge{now.strftime('%Y-%m-%dT%H:%M:%SZ')}"),
             ("start", f"lt{(now + timedelta(weeks=weeks)).strftime('%Y-%m-%dT%H:%M:%SZ')}"),
             ("_sort", "start"), ("_count", "500")]
    slots = api.search("Slot", query, every_page=True)
    names, schedules = Names(api), {}
    days: dict[str, dict] = {}
    for slot in slots:
        schedule_ref = ((slot.get("schedule") or {}).get("reference") or "")
        if schedule_ref not in schedules:
            kind, _, fhir_id = schedule_ref.partition("/")
            schedules[schedule_ref] = api.read(kind, fhir_id) if kind == "Schedule" and fhir_id else None
        schedule = schedules[schedule_ref] or {}
        who = ", ".join(filter(None, (names.of(actor) for actor in schedule.get("actor", []))))
        parts = parse_moment(slot.get("start"))
        day_key = (slot.get("start") or "")[:10]
        day = days.setdefault(day_key, {"day": when(day_key, weekday=True) if parts else day_key, "slots": []})
        start = _moment(slot.get("start"))
        day["slots"].append({"id": slot["id"], "time": start.strftime("%H:%M") if start else "",
                             "who": who or "The practice",
                             "type": concept(slot.get("serviceType", [None])[0] if slot.get("serviceType") else None,
                                             "")})
    return list(days.values())


def _participants_of(api: FhirApi, slot: dict, patient: str) -> list[dict]:
    participants = [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}]
    schedule_ref = ((slot.get("schedule") or {}).get("reference") or "")
    kind, _, fhir_id = schedule_ref.partition("/")
    schedule = api.read(kind, fhir_id) if kind == "Schedule" and fhir_id else None
    for actor in (schedule or {}).get("actor", []):
        reference = actor.get("reference") or ""
        if reference and not reference.startswith(("Patient/", "RelatedPerson/")):
            participants.append({"actor": {k: v for k, v in actor.items() if k in ("reference", "display")},
                                 "status": "needs-action"})
    return participants


def _request_page(session: WebSession, api: FhirApi, *, status: int = 200, error: str = "",
                  values: dict | None = None) -> Response:
    return page("web/appointment_request.html", status, days=free_slots(api, _now()), weeks=WEEKS, error=error,
                values=values or {}, today=date.today().isoformat(),
                **nav_values(session, "appointments", patient_banner(api, session.patient)))


@bp.route("/portal/appointments", methods=["GET"])
def appointments():
    def render(session: WebSession, api: FhirApi) -> Response:
        rows = appointment_rows(api, session.patient, portal().cancel_hours, _now())
        return page("web/appointments.html", rows=rows, cancel_hours=portal().cancel_hours,
                    notice=NOTICES.get(request.args.get("done", "")), error="",
                    **nav_values(session, "appointments", patient_banner(api, session.patient)))

    return signed_in_page(render)


@bp.route("/portal/appointments/request", methods=["GET"])
def request_form():
    return signed_in_page(lambda session, api: _request_page(session, api))


def _request_body(api: FhirApi, session: WebSession, form) -> dict:
    reason = (form.get("reason") or "").strip()[:500]
    body = {"resourceType": "Appointment", "status": "proposed", "created": _now().date().isoformat()}
    if reason:
        body["reasonCode"] = [{"text": reason}]
    if form.get("kind") == "range":
        start, end = form.get("from") or "", form.get("to") or ""
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            raise ValueError("Please give the first and the last day that would suit you.") from None
        if last < first:
            raise ValueError("The last day must not be before the first.")
        body["requestedPeriod"] = [{"start": f"{first.isoformat()}T00:00:00Z", "end": f"{last.isoformat()}T23:59:59Z"}]
        comment = (form.get("comment") or "").strip()[:500]
        if comment:
            body["comment"] = comment
        body["participant"] = [{"actor": {"reference": f"Patient/{session.patient}"}, "status": "accepted"}]
        return body
    slot_id = form.get("slot") or ""
    slot = api.read("Slot", slot_id) if slot_id and "/" not in slot_id else None
    if slot is None:
        raise ValueError("Please choose one of the free times.")
    body["slot"] = [{"reference": f"Slot/{slot_id}"}]
    body["participant"] = _participants_of(api, slot, session.patient)
    return body


@bp.route("/portal/appointments/request", methods=["POST"])
def request_submit():
    def render(session: WebSession, api: FhirApi) -> Response:
        if not csrf_ok(session):
            return _request_page(session, api, status=400, error="The form expired. Please try again.")
        values = request.form.to_dict()
        try:
            body = _request_body(api, session, request.form)
        except ValueError as problem:
            return _request_page(session, api, status=400, error=str(problem), values=values)
        try:
            api.write("POST", "Appointment", body)
        except ApiError as refused:
            if refused.status == 409:
                return _request_page(session, api, status=409, values=values,
                                     error="Sorry, that time was just taken by someone else. Please choose another.")
            if refused.status in (400, 403, 422):
                return _request_page(session, api, status=refused.status, error=refused.message, values=values)
            raise
        return see_other("/portal/appointments?done=requested")

    return signed_in_page(render)


@bp.route("/portal/appointments/<fhir_id>/cancel", methods=["POST"])
def cancel(fhir_id: str):
    def render(session: WebSession, api: FhirApi) -> Response:
        error = ""
        if not csrf_ok(session):
            error = "The form expired. Please try again."
        else:
            appointment = api.read("Appointment", fhir_id)
            if appointment is None:
                error = "That appointment is not in your record."
            else:
                try:
                    api.write("PUT", f"Appointment/{fhir_id}", {**appointment, "status": "cancelled"},
                              version=(appointment.get("meta") or {}).get("versionId"))
                except ApiError as refused:
                    if refused.status not in (403, 409, 412, 422):
                        raise
                    error = refused.message if refused.status == 422 else \
                        "The appointment could not be cancelled just now (it changed meanwhile). Please look again."
        if not error:
            return see_other("/portal/appointments?done=cancelled")
        rows = appointment_rows(api, session.patient, portal().cancel_hours, _now())
        return page("web/appointments.html", 409 if "changed" in error else 400 if "expired" in error else 422,
                    rows=rows, cancel_hours=portal().cancel_hours, notice=None, error=error,
                    **nav_values(session, "appointments", patient_banner(api, session.patient)))

    return signed_in_page(render)
