"""The portal's pages: the home page, how invitations work, the health summary, lab results, vital
signs, downloading the record (``$everything`` as a FHIR JSON Bundle) and a printable summary.

Every page of the record reads through ``FhirApi`` with the session's token, and every one shows whose
record it is.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from flask import Blueprint, Response, make_response, request

from .client import FhirApi
from .portal import SECURITY_HEADERS, current_session, nav_values, page, signed_in_page
from .results import group
from .sessions import WebSession
from .summary import LABS, VITALS, health_summary, patient_banner

bp = Blueprint("web", __name__, template_folder="templates")
STATES = {"signed-out": "You are signed out.",
          "ended": "Your session ended (you signed out elsewhere, or your password was changed). Please sign in again."}


@bp.route("/", methods=["GET"])
def home():
    session = current_session()
    return page("web/home.html", notice=STATES.get(request.args.get("state", "")),
                signed_in=session is not None and session.signed_in)


@bp.route("/portal/invitation", methods=["GET"])
def invitation():
    return page("web/invitation.html")


def _today() -> date:
    return datetime.now(UTC).date()


@bp.route("/portal/", methods=["GET"])
def summary():
    def render(session: WebSession, api: FhirApi) -> Response:
        sections, banner = health_summary(api, session.patient, _today())
        return page("web/summary.html", sections=sections, **nav_values(session, "summary", banner))

    return signed_in_page(render)


def _observations(api: FhirApi, patient: str, category: str) -> list[dict]:
    return api.search("Observation", [("patient", patient), ("category", category), ("_sort", "-date"),
                                      ("_count", "500")], every_page=True)


@bp.route("/portal/labs", methods=["GET"])
def labs():
    def render(session: WebSession, api: FhirApi) -> Response:
        observations = _observations(api, session.patient, LABS)
        return page("web/results.html", title="Lab results", tests=group(observations, id_prefix="lab"),
                    count=len(observations), kind="lab results",
                    empty="No lab results have been shared with you yet. Your practice shares results once a "
                          "clinician has reviewed them.",
                    **nav_values(session, "labs", patient_banner(api, session.patient)))

    return signed_in_page(render)


@bp.route("/portal/vitals", methods=["GET"])
def vitals():
    def render(session: WebSession, api: FhirApi) -> Response:
        observations = _observations(api, session.patient, VITALS)
        return page("web/results.html", title="Vital signs", kind="vital sign measurements",
                    tests=group(observations, vital_signs=True, id_prefix="vital"), count=len(observations),
                    empty="No vital signs on file.",
                    **nav_values(session, "vitals", patient_banner(api, session.patient)))

    return signed_in_page(render)


@bp.route("/portal/record", methods=["GET"])
def record():
    def render(session: WebSession, api: FhirApi) -> Response:
        return page("web/record.html", **nav_values(session, "record", patient_banner(api, session.patient)))

    return signed_in_page(render)


@bp.route("/portal/record.json", methods=["GET"])
def record_json():
    """Everything the token may see of the patient (``Patient/{id}/$everything``, every page) as one
    FHIR Bundle (``collection``), downloaded as a file."""
    def render(session: WebSession, api: FhirApi) -> Response:
        entries, seen = [], set()
        for bundle in api.pages(f"Patient/{session.patient}/$everything", [("_count", "1000")]):
            for entry in bundle.get("entry", []):
                resource = entry["resource"]
                key = (resource["resourceType"], resource.get("id"))
                if key not in seen:
                    seen.add(key)
                    entries.append({"fullUrl": entry.get("fullUrl"), "resource": resource})
        now = datetime.now(UTC)
        body = {"resourceType": "Bundle", "type": "collection", "timestamp": now.isoformat(timespec="seconds"),
                "entry": entries}
        response = make_response(json.dumps(body, indent=1), 200)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Content-Type"] = "application/fhir+json; charset=utf-8"
        response.headers["Content-Disposition"] = f'attachment; filename="health-record-{now.date().isoformat()}.json"'
        return response

    return signed_in_page(render)


@bp.route("/portal/print", methods=["GET"])
def printable():
    def render(session: WebSession, api: FhirApi) -> Response:
        sections, banner = health_summary(api, session.patient, _today())
        return page("web/print.html", sections=sections, labs=group(_observations(api, session.patient, LABS),
                                                                    charts=False),
                    printed=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **nav_values(session, "record", banner))

    return signed_in_page(render)
