"""US Core 6.1.0 against the demo practice, the way the certification kit tries it, table-driven from the
package's ``us-core-server`` CapabilityStatement and StructureDefinitions (no hand list):

- every SHALL search parameter and SHALL combination of every type, with values taken from a resource of
  patient-001..003 that has them: the search finds that resource, and every resource it returns meets
  every criterion (checked against the resource's own index rows); GET and POST ``_search`` agree, and
  ``patient=Patient/{id}`` finds what ``patient={id}`` finds; date parameters with ``gt ge lt le``;
- every must-support element of every profile is present in some resource a patient's own token reads
  for patients 001–003 (what a patient app, and the kit, see: withheld and unshared records excluded);
- ``_revinclude=Provenance:target`` brings Provenance for every profiled type, with the patient's token.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fhirportal.definitions.packages import package
from fhirportal.fhir import us_core
from fhirportal.fhir.loading import expand_paths, load
from fhirportal.store.indexing import IndexExtractor
from tests.must_support import missing

DEMO = Path(__file__).resolve().parents[3] / "fixtures" / "demo"
PATIENTS = ("patient-001", "patient-002", "patient-003")
BASE = "http://localhost/fhir"


def _demo_resources() -> list[dict]:
    found = []
    for path in sorted(DEMO.glob("*.json")):
        body = json.loads(path.read_text())
        found += [e["resource"] for e in body.get("entry", [])] if body.get("resourceType") == "Bundle" else [body]
    return found


def load_demo(ctx) -> list[dict]:
    """The demo practice, loaded as ``fhirportal load`` loads it."""
    report = load(ctx, expand_paths([str(DEMO)]))
    assert not report.failed, report.failed[:5]
    return _demo_resources()


def _owner(resource: dict, extractor: IndexExtractor) -> str | None:
    if resource["resourceType"] == "Patient":
        return resource["id"]
    rows = extractor.extract(resource).get("reference", [])
    return next((r["target_id"] for r in rows if r["param"] in ("patient", "subject", "beneficiary")
                 and r["target_type"] == "Patient"), None)


def _query_value(parameter, rows: list[dict]) -> str | None:
    """A value of ``parameter`` that the resource with these index rows has (None: it has none)."""
    mine = [r for r in rows if r["param"] == parameter.code]
    if not mine:
        return None
    row = mine[0]
    if parameter.type == "token":
        return f"{row['system']}|{row['code']}" if row["system"] else row["code"]
    if parameter.type == "reference":
        return f"{row['target_type']}/{row['target_id']}" if row["target_id"] else row["url"]
    if parameter.type == "string":
        return row["norm"][:3]
    if parameter.type == "date":
        low = datetime.fromtimestamp(row["low"] / 1e6, UTC)
        return "ge" + low.date().isoformat()
    raise AssertionError(f"no value form for {parameter.type}")


def _matches(parameter, value: str, rows: list[dict], resource: dict) -> bool:
    """Independent of the database: whether the resource's index rows meet ``parameter=value``."""
    if parameter.code == "_id":
        return resource["id"] == value
    mine = [r for r in rows if r["param"] == parameter.code]
    if parameter.type == "token":
        system, _, code = value.rpartition("|")
        return any(r["code"] == code and (not system or r["system"] == system) for r in mine)
    if parameter.type == "reference":
        return any(value in (f"{r['target_type']}/{r['target_id']}", r["target_id"], r["url"]) for r in mine)
    if parameter.type == "string":
        return any(r["norm"].startswith(value) for r in mine)
    if parameter.type == "date":
        prefix, day = value[:2], datetime.fromisoformat(value[2:]).replace(tzinfo=UTC)
        low, high = day.timestamp() * 1e6, (day + timedelta(days=1)).timestamp() * 1e6 - 1
        return any({"ge": r["high"] >= low, "le": r["low"] <= high, "gt": r["high"] > high,
                    "lt": r["low"] < low}[prefix] for r in mine)
    raise AssertionError(parameter.type)


def _search(fhir, resource_type: str, query: str, *, post: bool = False) -> dict[str, dict]:
    found: dict[str, dict] = {}
    if post:
        answer = fhir.post(f"{resource_type}/_search", data=query + "&_count=1000",
                           content_type="application/x-www-form-urlencoded")
    else:
        answer = fhir.get(f"{resource_type}?{query}&_count=1000")
    assert answer.status_code == 200, (resource_type, query, answer.get_json())
    body = answer.get_json()
    assert not [link for link in body.get("link", []) if link["relation"] == "next"]
    for entry in body.get("entry", []):
        if entry["search"]["mode"] == "match":
            found[entry["resource"]["id"]] = entry["resource"]
    return found


def _shall_searches(resource_type: str) -> list[tuple[str, ...]]:
    singles = [(name,) for name, expectation in us_core.search_expectations(resource_type).items()
               if expectation == "SHALL"]
    return singles + [required for expectation, required in us_core.search_combinations(resource_type)
                      if expectation == "SHALL"]


def test_every_shall_search_of_us_core_finds_what_it_should(us_core_fhir, us_core_app):
    ctx = us_core_app.extensions["fhirportal"]
    extractor = ctx.repository.extractor
    resources = load_demo(ctx)
    checked = 0
    for resource_type in sorted({e["type"] for e in us_core.server_statement()["rest"][0]["resource"]}):
        for names in _shall_searches(resource_type):
            parameters = [ctx.search_parameters.get(resource_type, n) for n in names]
            assert all(parameters), (resource_type, names)
            candidates = [r for r in resources if r["resourceType"] == resource_type
                          and (_owner(r, extractor) in PATIENTS or "patient" not in names)]
            seed = query = None
            for candidate in candidates:
                rows = [row for kind_rows in extractor.extract(candidate).values() for row in kind_rows]
                values = [candidate["id"] if p.code == "_id" else _query_value(p, rows) for p in parameters]
                if all(values):
                    seed, query = (candidate, rows), list(zip(parameters, values, strict=True))
                    break
            assert seed is not None, f"no demo data of patients 001-003 for {resource_type}?{'&'.join(names)}"
            text = "&".join(f"{p.code}={v}" for p, v in query)
            found = _search(us_core_fhir, resource_type, text)
            assert seed[0]["id"] in found, (resource_type, text)
            for resource in found.values():
                rows = [row for kind_rows in extractor.extract(resource).values() for row in kind_rows]
                assert all(_matches(p, v, rows, resource) for p, v in query), (resource_type, text, resource["id"])
            assert _search(us_core_fhir, resource_type, text, post=True).keys() == found.keys(), text
            if "patient" in names:
                bare = text.replace("patient=Patient/", "patient=")
                assert _search(us_core_fhir, resource_type, bare).keys() == found.keys(), bare
            for parameter, value in query:
                if parameter.type == "date":
                    for prefix in ("gt", "lt", "le"):
                        other = text.replace(f"{parameter.code}={value}", f"{parameter.code}={prefix}{value[2:]}")
                        for resource in _search(us_core_fhir, resource_type, other).values():
                            rows = [r for kind in extractor.extract(resource).values() for r in kind]
                            assert _matches(parameter, prefix + value[2:], rows, resource), (other, resource["id"])
            checked += 1
    assert checked >= 45


def test_every_must_support_is_served_to_the_patients_own_apps(us_core_fhir, us_core_app):
    ctx = us_core_app.extensions["fhirportal"]
    load_demo(ctx)
    seen: dict[str, dict[str, dict]] = {}
    for patient in PATIENTS:
        token = ctx.tokens.mint(client_id="inferno", scope="patient/*.rs", context={"patient": patient})
        app = us_core_fhir.with_token(token)
        for entry in us_core.server_statement()["rest"][0]["resource"]:
            resource_type = entry["type"]
            if not us_core.profiles(resource_type) or resource_type not in ctx.resource_types:
                continue
            query = f"patient={patient}" if ctx.search_parameters.get(resource_type, "patient") else \
                "_lastUpdated=gt2000-01-01"  # the practice's own: everything the patient's token sees
            if resource_type == "Patient":
                query = f"_id={patient}"
            for resource in _search(app, resource_type, f"{query}&_revinclude=Provenance:target").values():
                for profile in resource.get("meta", {}).get("profile", []):
                    seen.setdefault(profile, {})[f"{resource_type}/{resource['id']}"] = resource
    definitions = {sd["url"]: sd for sd in package().of_type("StructureDefinition") if sd["kind"] == "resource"}
    gaps = {}
    for resource_type in sorted(ctx.resource_types):
        for profile in us_core.profiles(resource_type):
            if profile not in definitions:
                continue  # another guide's profile US Core names (SDC's Questionnaire): not in this package
            served = list(seen.get(profile, {}).values())
            assert served, f"no {profile} reaches patients 001-003's apps"
            not_there = missing(definitions[profile], served)
            if not_there:
                gaps[profile] = [str(r) for r in not_there]
    assert not gaps, gaps


def test_provenance_comes_with_every_profiled_type_for_the_patient(us_core_fhir, us_core_app):
    ctx = us_core_app.extensions["fhirportal"]
    load_demo(ctx)
    token = ctx.tokens.mint(client_id="inferno", scope="patient/*.rs", context={"patient": "patient-001"})
    app = us_core_fhir.with_token(token)
    for entry in us_core.server_statement()["rest"][0]["resource"]:
        if "Provenance:target" not in entry.get("searchRevInclude", []):
            continue
        query = "_id=patient-001" if entry["type"] == "Patient" else "patient=patient-001"
        answer = app.get(f"{entry['type']}?{query}&_revinclude=Provenance:target&_count=1000").get_json()
        matches = [e for e in answer.get("entry", []) if e["search"]["mode"] == "match"]
        if not matches:
            continue  # patient-001 has none of this type (another patient's data covers it)
        provenances = [e["resource"] for e in answer["entry"] if e["resource"]["resourceType"] == "Provenance"]
        assert provenances, f"{entry['type']}: no Provenance with the patient's token"
