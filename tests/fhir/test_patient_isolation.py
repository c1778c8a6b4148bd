"""A patient token never gets another patient's data, whatever FHIR read it tries.

Two patients, ``alpha`` (the token's) and ``bravo``, each own a minimal resource of EVERY supported
type in the Patient compartment for EVERY compartment parameter of that type (built generically from
the compartment definition, the search parameters' expressions and the structure tables), plus
cross references: an alpha Provenance and Observation that point at every bravo record, and bravo ones
that point at every alpha record (so ``_include`` / ``_revinclude`` / ``$everything`` have a path to
the other patient). Then every read interaction (read, vread, instance/type/system history, search by
GET and POST, by ``_id`` and by each compartment parameter, ``_include``/``_revinclude`` with
wildcards and ``:iterate``, chains, ``_has``, ``_summary=count`` totals, ``$everything``, the
``$export`` kick-offs, batch GETs) is run with alpha's ``patient/*.rs`` token: each must answer
403/404 or results without one bravo record. A control (alpha's own record of each kind comes back)
proves the searches are not simply empty.
"""

from __future__ import annotations

import re

import pytest

from fhirportal import definitions
from fhirportal.fhir.authorization import HIDDEN_FROM_PATIENTS
from fhirportal.fhir.compartment import patient_compartment
from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from tests.support import Fhir

ALPHA, BRAVO = "alpha", "bravo"
COMPARTMENT = {t: tuple(p) for t, p in patient_compartment().items() if t in SUPPORTED_TYPES}
SEARCH_PARAMETERS = definitions.load("search-parameters")
STRUCTURE = definitions.load("structure")
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
LINKED = f"Patient/{ALPHA}-patient-link"  # another Patient linking to alpha: not shown to alpha (stricter than R4)


def _expression(resource_type: str, code: str) -> str:
    spec = SEARCH_PARAMETERS.get(resource_type, {}).get(code) or SEARCH_PARAMETERS["Resource"][code]
    for alternative in spec["expression"].split("|"):
        path = re.sub(r"\.where\([^)]*\)", "", alternative.strip()).strip("()")
        path = re.sub(r" as \w+$", "", path)
        if path.startswith(f"{resource_type}."):
            return path
    raise AssertionError(f"no path for {resource_type}.{code}: {spec['expression']}")


def _referencing(resource_type: str, code: str, patient_id: str) -> dict:
    """A minimal ``resource_type`` in ``patient_id``'s compartment through search parameter ``code``."""
    steps = _expression(resource_type, code).split(".")[1:]
    body: dict = {"resourceType": resource_type}
    node, type_name = body, resource_type
    for index, step in enumerate(steps):
        element = STRUCTURE[type_name][step]
        last = index == len(steps) - 1
        value: dict = {"reference": f"Patient/{patient_id}"} if last else {}
        node[step] = [value] if element.get("array") else value
        node, type_name = value, element["type"]
    assert type_name == "Reference", f"{resource_type}.{code} does not end in a Reference"
    return body


def _records(patient_id: str) -> dict[str, dict]:
    """Every compartment record of ``patient_id``, by ``Type/id``."""
    records = {f"Patient/{patient_id}": {"resourceType": "Patient", "name": [{"family": patient_id.title()}],
                                         "birthDate": "1980-01-01"}}
    for resource_type, codes in COMPARTMENT.items():
        for code in codes:
            records[f"{resource_type}/{patient_id}-{resource_type.lower()}-{code}"] = \
                _referencing(resource_type, code, patient_id)
    for reference, body in records.items():  # a patient sees only the forms assigned to them among Tasks
        if reference.startswith("Task/"):
            body["code"] = {"coding": [{"system": "https://fhirportal.dev/fhir/CodeSystem/form-task",
                                        "code": "form-assignment"}]}
    return records


def _cross_references(owner: str, targets: list[str]) -> dict[str, dict]:
    """Records of ``owner`` that point at every one of ``targets`` (another patient's records) but
    its Patient resources: a Provenance naming a Patient as its target is in that Patient's compartment."""
    refs = [{"reference": t} for t in targets if not t.startswith("Patient/")]
    return {
        f"Provenance/{owner}-points-away": {"resourceType": "Provenance", "recorded": "2024-01-01T00:00:00Z",
                                            "target": [{"reference": f"Patient/{owner}"}, *refs],
                                            "agent": [{"who": {"reference": "Practitioner/doc"}}]},
        f"Observation/{owner}-points-away": {"resourceType": "Observation", "status": "final",
                                             "code": {"text": "cross"}, "subject": {"reference": f"Patient/{owner}"},
                                             "focus": refs, "hasMember": refs, "derivedFrom": refs},
    }


@pytest.fixture
def world(ctx):
    """alpha's and bravo's records (plus a Practitioner both may see); the ``Type/id`` of each's."""
    alpha, bravo = _records(ALPHA), _records(BRAVO)
    alpha |= _cross_references(ALPHA, list(bravo))
    bravo |= _cross_references(BRAVO, list(alpha))
    shared = {"Practitioner/doc": {"resourceType": "Practitioner", "name": [{"family": "Doc"}]}}
    with ctx.database.write() as conn:
        for reference, body in {**shared, **alpha, **bravo}.items():
            fhir_id = reference.split("/")[1]
            record = ctx.repository.create(conn, {**body, "id": fhir_id}, fhir_id=fhir_id)
            if record.resource_type == "AuditEvent":  # as a write through the API indexes it in the access log
                ctx.audit.index_stored(conn, record)
    return {"alpha": set(alpha), "bravo": set(bravo)}


@pytest.fixture
def as_alpha(ctx, client) -> Fhir:
    return Fhir(client, ctx.tokens.mint(client_id="app", scope="launch/patient patient/*.rs",
                                        context={"patient": ALPHA, "fhirUser": f"Patient/{ALPHA}"}))


def _references(body) -> set[str]:
    """``Type/id`` of the resources a response carries: the body itself and every Bundle entry
    (also inside nested Bundles)."""
    found: set[str] = set()
    if isinstance(body, dict):
        if body.get("resourceType") and body.get("id") and body["resourceType"] != "Bundle":
            found.add(f"{body['resourceType']}/{body['id']}")
        for entry in body.get("entry", []) if body.get("resourceType") == "Bundle" else ():
            found |= _references(entry.get("resource"))
    return found


def _assert_nothing_of_bravo(response, world, what: str) -> set[str]:
    """The response is a refusal (403/404) or carries no bravo record; what it carries."""
    assert response.status_code in (200, 403, 404), f"{what}: {response.status_code} {response.get_data(as_text=True)}"
    body = response.get_json(silent=True)
    if response.status_code != 200:
        assert body and body["resourceType"] == "OperationOutcome", what
        return set()
    leaked = _references(body) & world["bravo"]
    assert not leaked, f"{what} returned bravo's {sorted(leaked)}"
    return _references(body)


def _search(caller: Fhir, world, resource_type: str, query: dict, what: str) -> set[str]:
    """The search by GET and by POST ``_search``: the same records, none of bravo's."""
    query = {"_count": 1000, **query}
    found = _assert_nothing_of_bravo(caller.get(resource_type, query_string=query), world, f"GET {what}")
    posted = caller.post(f"{resource_type}/_search", data=query, content_type="application/x-www-form-urlencoded")
    mentioned = world["alpha"] | world["bravo"]  # (the access journal adds AuditEvents between the two)
    assert _assert_nothing_of_bravo(posted, world, f"POST {what}") & mentioned == found & mentioned
    return found


@pytest.mark.parametrize("resource_type", SUPPORTED_TYPES)
def test_no_read_interaction_returns_another_patients_data(as_alpha, world, resource_type):
    bravo_ids = sorted(r.split("/")[1] for r in world["bravo"] if r.startswith(f"{resource_type}/"))
    ours = world["alpha"] | world["bravo"]
    codes = COMPARTMENT.get(resource_type, ())

    for fhir_id in bravo_ids:  # instance-level reads of each bravo record
        for path in (f"{resource_type}/{fhir_id}", f"{resource_type}/{fhir_id}/_history/1",
                     f"{resource_type}/{fhir_id}/_history", f"{resource_type}/{fhir_id}/$everything"):
            _assert_nothing_of_bravo(as_alpha.get(path), world, path)
        _search(as_alpha, world, resource_type, {"_id": fhir_id}, f"{resource_type}?_id={fhir_id}")

    found = _search(as_alpha, world, resource_type, {"_include": "*", "_revinclude": "*", "_include:iterate": "*",
                                                     "_revinclude:iterate": "*"},
                    f"{resource_type}?_include=*&_revinclude=*&_include:iterate=*&_revinclude:iterate=*")
    plain = _search(as_alpha, world, resource_type, {}, resource_type)
    history = as_alpha.get(f"{resource_type}/_history", query_string={"_count": 1000})
    _assert_nothing_of_bravo(history, world, f"{resource_type}/_history")
    system = as_alpha.get("/fhir", query_string={"_type": resource_type, "_count": 1000})
    _assert_nothing_of_bravo(system, world, f"[base]?_type={resource_type}")

    typed = sorted(r.split("/")[1] for r in ours if r.startswith(f"{resource_type}/"))
    if typed:  # the total counts only what alpha may see (by _id: the journal's own AuditEvents left out)
        count = as_alpha.get(resource_type, query_string={"_summary": "count", "_id": ",".join(typed)})
        assert count.status_code in (200, 403), count.get_data(as_text=True)
        if count.status_code == 200:
            visible = {r for r in plain if r.startswith(f"{resource_type}/")} & ours
            assert count.get_json()["total"] == len(visible), f"the {resource_type} count includes hidden records"

    for code in codes:
        for value in (f"Patient/{BRAVO}", BRAVO):
            _search(as_alpha, world, resource_type, {code: value}, f"{resource_type}?{code}={value}")
            count = as_alpha.get(resource_type, query_string={code: value, "_summary": "count"})
            assert count.status_code in (403, 404) or count.get_json()["total"] == 0, f"{resource_type}?{code} count"
        _search(as_alpha, world, resource_type, {f"{code}:Patient._id": BRAVO}, f"{resource_type} chain {code}")
        _search(as_alpha, world, resource_type, {f"{code}:Patient.family": "Bravo"},
                f"{resource_type} chain {code}.family")
        for fhir_id in bravo_ids:
            has = {f"_has:{resource_type}:{code}:_id": fhir_id}
            assert _search(as_alpha, world, "Patient", has, f"Patient?_has:{resource_type}:{code}") == set()

    if resource_type not in HIDDEN_FROM_PATIENTS:  # control: alpha's own records of this type come back
        alpha_own = {r for r in world["alpha"] if r.startswith(f"{resource_type}/")} - {LINKED}
        assert alpha_own <= found & plain, f"alpha's own {sorted(alpha_own - plain)} missing: the test proves nothing"


def test_everything_history_batch_and_export_stay_within_the_patient(as_alpha, world):
    mine = as_alpha.get(f"Patient/{ALPHA}/$everything", query_string={"_count": 1000})
    found = _assert_nothing_of_bravo(mine, world, "Patient/alpha/$everything")
    visible = {r for r in world["alpha"] if r.split("/")[0] in {*COMPARTMENT, "Patient"}
               and r.split("/")[0] not in HIDDEN_FROM_PATIENTS} - {LINKED}
    assert visible <= found, sorted(visible - found)  # control
    for path in (f"Patient/{BRAVO}/$everything", f"Patient/{BRAVO}", "_history", f"Patient/{BRAVO}/_history"):
        _assert_nothing_of_bravo(as_alpha.get(path), world, path)
    for path in ("$export", "Patient/$export", f"Patient/{BRAVO}/$export", f"Group/{BRAVO}-group-member/$export"):
        kicked = as_alpha.get(path, headers=ASYNC)
        # (Patient/{id}/$export is no operation: a 400 saying how $export is called)
        assert kicked.status_code in (403, 404) or (path.startswith("Patient/b") and kicked.status_code == 400), \
            f"{path}: {kicked.status_code}"
    batch = as_alpha.post("/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": r}} for r in sorted(world["bravo"])]})
    assert batch.status_code == 200, batch.get_data(as_text=True)
    statuses = [e["response"]["status"] for e in batch.get_json()["entry"]]
    assert all(s.split()[0] in ("403", "404") for s in statuses), statuses
    assert not _references(batch.get_json()) & world["bravo"]
