"""SMART authorization of the FHIR API: bearer tokens (401), scopes per interaction (403) and what a
token may see (patient compartment, organization, granular scopes, the lab-sharing rule) in reads,
searches, includes, chains, ``_has``, history, ``$everything``, writes and Bundles."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support import Fhir, observation, patient

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SHARED = {"system": "https://fhirportal.dev/fhir/CodeSystem/portal-sharing", "code": "shared-with-patient"}
HBA1C = "4548-4"
HEART_RATE = "8867-4"
PATIENT_SCOPES = "launch/patient patient/*.rs"


def vital(patient_id: str, **extra) -> dict:
    return observation(patient_id, category=[{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
                       code={"coding": [{"system": "http://loinc.org", "code": HEART_RATE}]},
                       valueQuantity={"value": 60, "unit": "/min", "system": "http://unitsofmeasure.org",
                                      "code": "/min"}, **extra)


@pytest.fixture
def practice(fhir):
    """Two organizations, two patients (p1 of org1, p2 of org2) and their observations."""
    for org in ("org1", "org2"):
        assert fhir.put(f"Organization/{org}", {"resourceType": "Organization", "id": org, "name": org}).status_code \
            == 201
    fhir.put("Practitioner/doc", {"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Osler"}]})
    fhir.put("Patient/p1", patient(id="p1", name=[{"family": "Mine"}],
                                   managingOrganization={"reference": "Organization/org1"}))
    fhir.put("Patient/p2", patient(id="p2", name=[{"family": "Other"}],
                                   identifier=[{"system": "https://fhirportal.dev/fhir/sid/mrn", "value": "MRN-2"}],
                                   managingOrganization={"reference": "Organization/org2"}))
    made = {
        "p1-vital": vital("p1", performer=[{"reference": "Practitioner/doc"}]),
        "p1-lab-unshared": observation("p1", code={"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}),
        "p1-lab-shared": observation("p1", meta={"tag": [SHARED]}),
        "p1-by-other": vital("p1", performer=[{"reference": "Patient/p2"}]),
        "p2-vital": vital("p2"),
        "p2-lab-shared": observation("p2", meta={"tag": [SHARED]}),
    }
    for fhir_id, body in made.items():
        assert fhir.put(f"Observation/{fhir_id}", {**body, "id": fhir_id}).status_code == 201
    for target in ("p1-vital", "p2-vital"):
        owner = target.split("-")[0]
        fhir.put(f"Provenance/prov-{owner}", {
            "resourceType": "Provenance", "id": f"prov-{owner}", "recorded": "2024-01-01T00:00:00Z",
            "target": [{"reference": f"Observation/{target}"}, {"reference": f"Patient/{owner}"}],
            "agent": [{"who": {"reference": "Practitioner/doc"}}]})
    fhir.put("Group/both", {"resourceType": "Group", "id": "both", "type": "person", "actual": True,
                            "member": [{"entity": {"reference": f"Patient/{p}"}} for p in ("p1", "p2")]})
    return made


def mint(ctx, scope: str, **context) -> str:
    return ctx.tokens.mint(client_id="app", scope=scope, context=context)


@pytest.fixture
def as_p1(ctx, client) -> Fhir:
    return Fhir(client, mint(ctx, PATIENT_SCOPES, patient="p1", fhirUser="Patient/p1"))


def ids(bundle: dict, mode: str | None = None) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if mode is None or e["search"]["mode"] == mode}


# ---------------------------------------------------------------------------------------------- 401
ANONYMOUS_CALLS = [
    ("GET", "Patient/p1"), ("GET", "Patient"), ("POST", "Patient"), ("PUT", "Patient/p1"),
    ("DELETE", "Patient/p1"), ("GET", "_history"), ("GET", "Patient/_history"), ("GET", "Patient/p1/$everything"),
    ("POST", ""), ("GET", "?_type=Patient"), ("POST", "Patient/$validate"), ("POST", "Patient/_search"),
]


@pytest.mark.parametrize(("method", "path"), ANONYMOUS_CALLS)
def test_no_token_is_401_with_the_realm(client, method, path):
    response = Fhir(client, token=None)._send(method, path, {"resourceType": "Patient"}, None,
                                               "application/fhir+json", {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="fhirportal"'
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert response.get_json()["issue"][0]["code"] == "login"


@pytest.mark.parametrize("path", ["metadata", "OperationDefinition/Patient-everything",
                                  "SearchParameter/Patient-active", "SearchParameter/us-core-patient-name"])
def test_conformance_reads_need_no_token(client, path):
    assert Fhir(client, token=None).get(path).status_code == 200


def test_cors_preflight_needs_no_token(client):
    response = Fhir(client, token=None).options("Patient/p1", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert response.status_code in (200, 204)


def test_unknown_expired_and_revoked_tokens_are_401(ctx, client):
    expired = ctx.tokens.mint(client_id="app", scope="system/*.rs", expires_in=-1)
    revoked = ctx.tokens.mint(client_id="app", scope="system/*.rs")
    with ctx.database.write() as conn:
        ctx.tokens.revoke_grant(conn, ctx.tokens.find_access(conn, revoked).grant_id)
    for header in ("Bearer not-a-token", f"Bearer {expired}", f"Bearer {revoked}", "Basic dXNlcjpwYXNz", "Bearer "):
        response = Fhir(client, token=None).get("Patient", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert response.get_json()["resourceType"] == "OperationOutcome"


# ---------------------------------------------------------------------------------------------- 403
PATCH = [{"op": "replace", "path": "/gender", "value": "other"}]
# (scope, method, path, body, expected status)
SCOPE_TABLE = [
    ("system/Patient.r", "GET", "Patient/p1", None, 200),
    ("system/Patient.r", "GET", "Patient/p1/_history/1", None, 200),
    ("system/Patient.r", "GET", "Patient/p1/_history", None, 200),
    ("system/Patient.r", "GET", "Patient", None, 403),
    ("system/Patient.r", "GET", "Patient/_history", None, 403),
    ("system/Patient.r", "POST", "Patient", patient(), 403),
    ("system/Patient.r", "PUT", "Patient/p1", patient(id="p1"), 403),
    ("system/Patient.r", "PATCH", "Patient/p1", PATCH, 403),
    ("system/Patient.r", "DELETE", "Patient/p1", None, 403),
    ("system/Patient.r", "GET", "Observation/p1-vital", None, 403),
    ("system/Patient.s", "GET", "Patient", None, 200),
    ("system/Patient.s", "GET", "Patient/_history", None, 200),
    ("system/Patient.s", "GET", "Patient/p1", None, 403),
    ("system/Patient.s", "GET", "?_type=Patient,Observation", None, 403),
    ("system/Patient.s system/Observation.s", "GET", "?_type=Patient,Observation", None, 200),
    ("system/Patient.c", "POST", "Patient", patient(), 201),
    ("system/Patient.u", "PUT", "Patient/p1", patient(id="p1", gender="male"), 200),
    ("system/Patient.u", "PUT", "Patient/brand-new", patient(id="brand-new"), 403),  # update as create needs c
    ("system/Patient.u", "PATCH", "Patient/p1", PATCH, 200),
    ("system/Patient.u", "DELETE", "Patient/p1", None, 403),
    ("system/Practitioner.d", "DELETE", "Practitioner/doc", None, 409),  # allowed; still referenced
    ("system/Patient.rs", "GET", "_history", None, 403),
    ("system/*.r", "GET", "_history", None, 403),
    ("system/*.rs", "GET", "_history", None, 200),
    ("user/*.rs", "GET", "_history", None, 200),
    ("patient/*.rs", "GET", "_history", None, 403),
    ("system/Patient.rs", "GET", "Patient/p1/$everything", None, 200),
    ("system/Patient.r", "GET", "Patient/p1/$everything", None, 403),
    ("openid fhirUser", "POST", "Patient/$validate", patient(), 403),
    ("system/Observation.r", "POST", "Patient/$validate", patient(), 200),
]


@pytest.mark.parametrize(("scope", "method", "path", "body", "expected"), SCOPE_TABLE)
def test_scopes_per_interaction(ctx, client, practice, scope, method, path, body, expected):
    caller = Fhir(client, mint(ctx, scope))
    content_type = "application/json-patch+json" if method == "PATCH" else "application/fhir+json"
    response = caller._send(method, path, body, None, content_type, {})
    assert response.status_code == expected, response.get_json()
    if expected == 403:
        outcome = response.get_json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "forbidden"


def test_403_names_the_type_and_the_missing_permission(ctx, client, practice):
    response = Fhir(client, mint(ctx, "system/Patient.r")).get("Observation/p1-vital")
    assert response.status_code == 403
    text = response.get_json()["issue"][0]["diagnostics"]
    assert "Observation" in text and "'r'" in text


# ------------------------------------------------------------------------------------ patient tokens
@pytest.mark.parametrize(("path", "expected"), [
    ("Patient/p1", 200), ("Patient/p2", 404),
    ("Observation/p1-vital", 200), ("Observation/p2-vital", 404),
    ("Observation/p1-lab-shared", 200), ("Observation/p1-lab-unshared", 404),
    ("Observation/p2-vital/_history/1", 404), ("Observation/p2-vital/_history", 404),
    ("Patient/p2/_history/1", 404),
    ("Practitioner/doc", 200), ("Organization/org2", 200),  # outside the compartment
    ("Provenance/prov-p1", 200), ("Provenance/prov-p2", 404),
    ("Group/both", 404),  # a Group lists the whole roster: never shown to patient tokens
])
def test_patient_token_reads_only_its_compartment(as_p1, practice, path, expected):
    response = as_p1.get(path)
    assert response.status_code == expected
    if expected == 404:
        assert response.get_json()["resourceType"] == "OperationOutcome"
        assert "p2" not in json.dumps(response.get_json().get("entry", []))


def test_patient_token_search_returns_only_its_data(as_p1, practice):
    assert ids(as_p1.get("Observation", query_string={"code": HEART_RATE}).get_json()) == {
        "Observation/p1-vital", "Observation/p1-by-other"}
    assert ids(as_p1.get("Patient").get_json()) == {"Patient/p1"}
    assert ids(as_p1.get("Patient", query_string={"identifier": "MRN-2"}).get_json()) == set()
    counted = as_p1.get("Observation", query_string={"_total": "accurate"}).get_json()
    assert counted["total"] == 3  # p1-vital, p1-lab-shared, p1-by-other
    assert as_p1.get("Observation", query_string={"_summary": "count"}).get_json()["total"] == 3
    assert ids(as_p1.get("Observation", query_string={"subject": "Patient/p2"}).get_json()) == set()


@pytest.mark.parametrize("query", [
    {"_include": "Observation:performer"},
    {"_include": "*"},
    {"_include": "Observation:subject", "_revinclude": "Provenance:target"},
    {"_revinclude": "Provenance:target", "_include:iterate": "Provenance:patient"},
])
def test_includes_never_return_another_patient(as_p1, practice, query):
    bundle = as_p1.get("Observation", query_string=query).get_json()
    found = ids(bundle)
    assert "Patient/p2" not in found
    assert not {f for f in found if "p2" in f}
    assert "Observation/p1-lab-unshared" not in found


def test_iterated_includes_never_return_another_patient(as_p1, practice):
    bundle = as_p1.get("Patient", query_string={"_revinclude": "Observation:subject",
                                                "_include:iterate": "Observation:performer"}).get_json()
    assert ids(bundle, "include") >= {"Observation/p1-vital", "Practitioner/doc"}
    assert "Patient/p2" not in ids(bundle)
    group = as_p1.get("Group", query_string={"_include": "Group:member"}).get_json()
    assert ids(group) == set()


def test_system_token_includes_everything(fhir, practice):
    bundle = fhir.get("Observation", query_string={"_id": "p1-by-other", "_include": "*"}).get_json()
    assert "Patient/p2" in ids(bundle, "include")


@pytest.mark.parametrize("query", [
    {"_has:Observation:patient:code": "2345-7"},  # p1's unshared lab: no oracle on invisible data
    {"_has:Observation:subject:_id": "p2-vital"},
    {"_id": "p2"},
    {"name": "Other"},
])
def test_has_cannot_surface_hidden_data(as_p1, practice, query):
    assert ids(as_p1.get("Patient", query_string=query).get_json()) == set()


def test_has_matches_visible_data(as_p1, practice):
    assert ids(as_p1.get("Patient", query_string={"_has:Observation:subject:code": HEART_RATE}).get_json()) == {
        "Patient/p1"}


@pytest.mark.parametrize("query", [
    {"subject:Patient.name": "Other"},
    {"performer:Patient.name": "Other"},  # p1's Observation performed by p2: the chain may not look at p2
    {"patient.identifier": "MRN-2"},
])
def test_chains_cannot_surface_another_patient(as_p1, practice, query):
    assert ids(as_p1.get("Observation", query_string=query).get_json()) == set()


def test_chains_match_visible_targets(as_p1, practice):
    assert ids(as_p1.get("Observation", query_string={"subject:Patient.name": "Mine",
                                                      "code": HEART_RATE}).get_json()) == {
        "Observation/p1-vital", "Observation/p1-by-other"}


def test_everything_only_for_the_token_patient(as_p1, practice):
    assert as_p1.get("Patient/p2/$everything").status_code == 404
    mine = as_p1.get("Patient/p1/$everything").get_json()
    found = ids(mine)
    assert "Patient/p1" in found and "Observation/p1-vital" in found
    assert "Observation/p1-lab-unshared" not in found
    assert not {f for f in found if "p2" in f}


def test_system_search_with_type_is_restricted(as_p1, practice, ctx, client):
    bundle = as_p1.get("/fhir?_type=Patient,Observation&_count=100").get_json()
    assert ids(bundle) == {"Patient/p1", "Observation/p1-vital", "Observation/p1-lab-shared",
                           "Observation/p1-by-other"}
    only_patients = Fhir(client, mint(ctx, "patient/Patient.rs", patient="p1"))
    assert only_patients.get("/fhir?_type=Patient,Observation").status_code == 403


def test_history_is_restricted(as_p1, practice):
    assert as_p1.get("_history").status_code == 403
    history = as_p1.get("Observation/_history").get_json()
    assert {e["resource"]["id"] for e in history["entry"]} == {"p1-vital", "p1-lab-shared", "p1-by-other"}
    assert as_p1.get("Observation/p1-vital/_history").status_code == 200


def test_unshared_labs_are_visible_to_system_tokens(fhir, practice):
    assert fhir.get("Observation/p1-lab-unshared").status_code == 200
    assert "Observation/p1-lab-unshared" in ids(fhir.get("Observation", query_string={"subject": "p1"}).get_json())


def test_patient_token_without_patient_sees_no_patient_data(ctx, client, practice):
    caller = Fhir(client, mint(ctx, "patient/*.rs"))
    assert caller.get("Patient/p1").status_code == 404
    assert ids(caller.get("Observation").get_json()) == set()
    assert caller.get("Practitioner/doc").status_code == 200


# ------------------------------------------------------------------------------------ granular scopes
VITALS_ONLY = f"patient/Patient.rs patient/Observation.rs?category={CATEGORY}|vital-signs"


def test_granular_scope_filters_search_and_read(ctx, client, practice):
    caller = Fhir(client, mint(ctx, VITALS_ONLY, patient="p1"))
    assert ids(caller.get("Observation").get_json()) == {"Observation/p1-vital", "Observation/p1-by-other"}
    assert caller.get("Observation/p1-vital").status_code == 200
    assert caller.get("Observation/p1-lab-shared").status_code == 404
    lab_search = caller.get("Observation", query_string={"category": f"{CATEGORY}|laboratory"})
    assert lab_search.status_code == 200 and ids(lab_search.get_json()) == set()


def test_granular_scopes_or_across_scopes(ctx, client, practice):
    scope = (f"system/Observation.rs?category={CATEGORY}|vital-signs "
             f"system/Observation.rs?category={CATEGORY}|laboratory&_tag={SHARED['system']}|{SHARED['code']}")
    caller = Fhir(client, mint(ctx, scope))
    assert ids(caller.get("Observation").get_json()) == {
        "Observation/p1-vital", "Observation/p1-by-other", "Observation/p2-vital",
        "Observation/p1-lab-shared", "Observation/p2-lab-shared"}


def test_granular_scope_with_an_unknown_parameter_grants_nothing(ctx, client, practice):
    caller = Fhir(client, mint(ctx, "system/Observation.rs?nonsense=1"))
    assert ids(caller.get("Observation").get_json()) == set()
    assert caller.get("Observation/p1-vital").status_code == 404


# --------------------------------------------------------------------------------------------- writes
def test_patient_token_writes_only_inside_its_compartment(ctx, client, practice, fhir):
    writer = Fhir(client, mint(ctx, "patient/Observation.crus patient/Patient.rs", patient="p1"))
    refused = writer.post("Observation", vital("p2"))
    assert refused.status_code == 403
    assert refused.get_json()["issue"][0]["code"] == "forbidden"
    assert fhir.get("Observation", query_string={"subject": "p2", "_total": "accurate"}).get_json()["total"] == 2
    assert writer.post("Observation", vital("p1")).status_code == 201
    assert writer.put("Observation/p2-vital", {**vital("p2"), "id": "p2-vital"}).status_code == 403
    moved = {**vital("p2"), "id": "p1-vital"}  # moving own data to another patient
    assert writer.put("Observation/p1-vital", moved).status_code == 403
    assert fhir.get("Observation/p1-vital").get_json()["subject"]["reference"] == "Patient/p1"
    assert writer.patch("Observation/p2-vital", [{"op": "replace", "path": "/status", "value": "amended"}]) \
        .status_code == 403
    reader = Fhir(client, mint(ctx, PATIENT_SCOPES, patient="p1"))
    assert reader.post("Observation", vital("p1")).status_code == 403


def test_patient_token_cannot_delete_another_patients_data(ctx, client, practice, fhir):
    deleter = Fhir(client, mint(ctx, "patient/Observation.rds", patient="p1"))
    assert deleter.delete("Observation/p2-vital").status_code == 403
    assert fhir.get("Observation/p2-vital").status_code == 200
    assert deleter.delete("Observation/p1-lab-shared").status_code == 200


def _entry(method: str, url: str, resource: dict | None = None) -> dict:
    entry = {"request": {"method": method, "url": url}}
    if resource is not None:
        entry["resource"] = resource
    return entry


def test_transaction_with_a_forbidden_entry_writes_nothing(ctx, client, practice, fhir):
    writer = Fhir(client, mint(ctx, "patient/Observation.cru patient/Patient.r", patient="p1"))
    document = {"resourceType": "Bundle", "type": "transaction", "entry": [
        _entry("POST", "Observation", vital("p1", status="preliminary")),
        _entry("DELETE", "Observation/p1-vital"),
    ]}
    response = writer.post("/fhir", document)
    assert response.status_code == 403
    assert "Bundle.entry[1]" in response.get_json()["issue"][0]["diagnostics"]
    other_patient = {"resourceType": "Bundle", "type": "transaction", "entry": [
        _entry("POST", "Observation", vital("p1", status="preliminary")),
        _entry("POST", "Observation", vital("p2", status="preliminary")),
    ]}
    assert writer.post("/fhir", other_patient).status_code == 403
    found = fhir.get("Observation", query_string={"status": "preliminary", "_total": "accurate"}).get_json()
    assert found["total"] == 0
    assert fhir.get("Observation/p1-vital").status_code == 200


def test_batch_refuses_only_the_forbidden_entries(ctx, client, practice):
    caller = Fhir(client, mint(ctx, "patient/Observation.cr patient/Patient.r", patient="p1"))
    patch_binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
                    "data": base64.b64encode(json.dumps(PATCH).encode()).decode()}
    document = {"resourceType": "Bundle", "type": "batch", "entry": [
        _entry("GET", "Observation/p1-vital"),
        _entry("GET", "Observation/p2-vital"),
        _entry("GET", "Observation?code=" + HEART_RATE),
        _entry("POST", "Observation", vital("p2")),
        _entry("POST", "Observation", vital("p1")),
        _entry("PATCH", "Patient/p1", patch_binary),
    ]}
    response = caller.post("/fhir", document)
    assert response.status_code == 200
    statuses = [e["response"]["status"][:3] for e in response.get_json()["entry"]]
    assert statuses == ["200", "404", "403", "403", "201", "403"]


def test_transaction_reads_are_restricted(as_p1, practice):
    document = {"resourceType": "Bundle", "type": "transaction", "entry": [
        _entry("GET", "Observation?code=" + HEART_RATE)]}
    response = as_p1.post("/fhir", document)
    assert response.status_code == 200
    assert ids(response.get_json()["entry"][0]["resource"]) == {"Observation/p1-vital",
                                                                "Observation/p1-by-other"}


# ------------------------------------------------------------------------------ user + organization
def test_user_token_with_organization_sees_only_its_patients(ctx, client, practice):
    staff = Fhir(client, mint(ctx, "user/*.rs", fhirUser="Practitioner/doc", organization="Organization/org1"))
    assert ids(staff.get("Patient").get_json()) == {"Patient/p1"}
    assert staff.get("Patient/p2").status_code == 404
    assert ids(staff.get("Observation", query_string={"code": HEART_RATE}).get_json()) == {
        "Observation/p1-vital", "Observation/p1-by-other"}
    assert "Observation/p1-lab-unshared" in ids(staff.get("Observation").get_json())  # no sharing rule for staff
    assert staff.get("Practitioner/doc").status_code == 200
    assert staff.get("Organization/org2").status_code == 200
    assert staff.get("Patient/p2/$everything").status_code == 404
    bundle = staff.get("Observation", query_string={"_include": "*"}).get_json()
    assert "Patient/p2" not in ids(bundle)


def test_user_token_without_organization_is_unrestricted(ctx, client, practice):
    staff = Fhir(client, mint(ctx, "user/*.rs", fhirUser="Practitioner/doc"))
    assert ids(staff.get("Patient").get_json()) == {"Patient/p1", "Patient/p2"}


def test_patient_tokens_see_their_own_form_tasks_and_no_groups(ctx, client):
    from tests.support import Fhir, patient

    with ctx.database.write() as conn:
        ctx.repository.create(conn, patient(), fhir_id="tp1")
        ctx.repository.create(conn, patient(name=[{"family": "Other"}]), fhir_id="tp2")
        form = {"coding": [{"system": "https://fhirportal.dev/fhir/CodeSystem/form-task", "code": "form-assignment"}]}
        invitation = {"coding": [{"system": "https://fhirportal.dev/fhir/CodeSystem/portal-task",
                                  "code": "portal-invitation"}]}
        for task_id, owner, code in (("task-1", "tp1", form), ("task-2", "tp2", form), ("task-3", "tp1", invitation),
                                     ("task-4", "tp1", None)):
            ctx.repository.create(conn, {"resourceType": "Task", "status": "requested", "intent": "order",
                                         "for": {"reference": f"Patient/{owner}"}, **({"code": code} if code else {})},
                                  fhir_id=task_id)
        ctx.repository.create(conn, {"resourceType": "Group", "type": "person", "actual": True,
                                     "member": [{"entity": {"reference": "Patient/tp1"}},
                                                {"entity": {"reference": "Patient/tp2"}}]}, fhir_id="roster")
    app = Fhir(client, token=ctx.tokens.mint(client_id="app", scope="patient/*.rs", context={"patient": "tp1"}))
    tasks = [e["resource"]["id"] for e in app.get("Task").get_json().get("entry", [])]
    assert tasks == ["task-1"]  # its forms to fill in only: not the portal invitation's nor the practice's other Tasks
    for other in ("task-2", "task-3", "task-4"):
        assert app.get(f"Task/{other}").status_code == 404
    assert app.get("Group/roster").status_code == 404
    assert app.get("Group").get_json().get("entry", []) == []


def test_patients_never_see_withheld_or_entered_in_error_records(ctx, client):
    from tests.support import Fhir, observation, patient

    nopat = {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPAT"}]}
    vital = {"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                       "code": "vital-signs"}]}]}
    with ctx.database.write() as conn:
        ctx.repository.create(conn, patient(), fhir_id="wp")
        ctx.repository.create(conn, observation("wp", **vital), fhir_id="ok")
        ctx.repository.create(conn, observation("wp", status="entered-in-error", **vital), fhir_id="error")
        ctx.repository.create(conn, observation("wp", meta=nopat, **vital), fhir_id="withheld")
        ctx.repository.create(conn, {
            "resourceType": "Condition", "subject": {"reference": "Patient/wp"}, "code": {"text": "x"},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": "entered-in-error"}]}}, fhir_id="wrong-dx")
        ctx.repository.create(conn, {"resourceType": "Condition", "subject": {"reference": "Patient/wp"},
                                     "code": {"text": "y"}}, fhir_id="dx")
    app = Fhir(client, token=ctx.tokens.mint(client_id="app", scope="patient/*.rs", context={"patient": "wp"}))
    assert ids(app.get("Observation").get_json()) == {"Observation/ok"}
    assert ids(app.get("Condition").get_json()) == {"Condition/dx"}
    for path in ("Observation/error", "Observation/withheld", "Condition/wrong-dx"):
        assert app.get(path).status_code == 404
    staff = Fhir(client, token=ctx.tokens.mint(client_id="ehr", scope="system/*.rs"))
    assert ids(staff.get("Observation", query_string={"patient": "wp"}).get_json()) == {
        "Observation/ok", "Observation/error", "Observation/withheld"}
