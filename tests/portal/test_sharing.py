"""Sharing a result with the patient and withholding it (NOPAT), by staff, with a Provenance."""

from __future__ import annotations

from tests.support import Fhir, observation, patient

LAB = {"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                 "code": "laboratory"}]}]}


def test_share_then_withhold_a_lab_result(ctx, app, client):
    smart = app.extensions["smart"]
    with ctx.database.write() as conn:
        ctx.repository.create(conn, patient(), fhir_id="sp")
        ctx.repository.create(conn, {"resourceType": "Practitioner", "name": [{"family": "Doc"}]}, fhir_id="dr")
        ctx.repository.create(conn, observation("sp", **LAB), fhir_id="lab")
    doctor = smart.accounts.create("doc", "doctor-password-1", kind="staff", fhir_user="Practitioner/dr",
                                   roles=("staff",))
    staff = Fhir(client, ctx.tokens.mint(client_id="ehr", scope="user/*.cruds", account_id=doctor.id,
                                         context={"fhirUser": "Practitioner/dr"}))
    portal = Fhir(client, ctx.tokens.mint(client_id="app", scope="patient/*.rs", context={"patient": "sp"}))
    assert portal.get("Observation/lab").status_code == 404  # labs start withheld

    shared = staff.post("Observation/lab/$portal-share", {"resourceType": "Parameters", "parameter": [
        {"name": "reason", "valueString": "normal result, discussed at the visit"}]})
    assert shared.status_code == 200, shared.get_json()
    assert portal.get("Observation/lab").status_code == 200
    provenance = staff.get("Provenance", query_string={"target": "Observation/lab"}).get_json()["entry"][0]["resource"]
    assert provenance["agent"][0]["who"] == {"reference": "Practitioner/dr"}
    assert provenance["reason"][0]["text"] == "normal result, discussed at the visit"

    withheld = staff.post("Observation/lab/$portal-withhold").get_json()
    assert withheld["meta"]["security"][0]["code"] == "NOPAT" and "tag" not in withheld["meta"]
    assert portal.get("Observation/lab").status_code == 404
    assert portal.post("Observation/lab/$portal-share").status_code == 403  # patients cannot share
