"""Limits on what one request may ask for: body size, Bundle entries, ``_count``, ``_include`` parameters and
``:iterate`` rounds, query string length, and the fixed bounds on sort keys and search values. Each is a 4xx
FHIR OperationOutcome naming the limit and its value; each is set through Settings (FHIRPORTAL_* variables).
The limits are lowered per test (``limits``) so that the tests stay small; the fixed bounds are also shown to
be below the point where the database itself would fail (the largest allowed search runs).
"""

from __future__ import annotations

import pytest

from fhirportal.fhir.search_params import MAX_CHAINS, MAX_SEARCH_VALUES, MAX_SORT_KEYS
from fhirportal.settings import Settings
from tests.support import observation, patient

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def limits(ctx):
    """Lower the request limits of the running app for one test (restored after it)."""
    original = ctx.settings

    def lower(**changes) -> Settings:
        ctx.settings = original.with_overrides(**changes)
        return ctx.settings

    yield lower
    ctx.settings = original


def _outcome(response, status: int, *mentions: str) -> dict:
    """The response is ``status`` with an OperationOutcome whose first issue mentions every ``mentions``."""
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    diagnostics = body["issue"][0]["diagnostics"]
    for mention in mentions:
        assert mention in diagnostics, (mention, diagnostics)
    return body["issue"][0]


def _expression(issue: dict) -> list[str]:
    return issue.get("expression", [])


# ---------------------------------------------------------------- settings


def test_every_limit_is_read_from_the_environment():
    """Each limit has a FHIRPORTAL_* variable; unset, the documented defaults apply."""
    env = {"FHIRPORTAL_MAX_BODY_BYTES": "1000", "FHIRPORTAL_MAX_PAGE_SIZE": "20",
           "FHIRPORTAL_MAX_BUNDLE_ENTRIES": "7", "FHIRPORTAL_MAX_QUERY_BYTES": "300",
           "FHIRPORTAL_MAX_INCLUDES": "2", "FHIRPORTAL_MAX_INCLUDE_ITERATIONS": "1"}
    settings = Settings.from_env(env)
    assert (settings.max_body_bytes, settings.max_page_size, settings.max_bundle_entries, settings.max_query_bytes,
            settings.max_includes, settings.max_include_iterations) == (1000, 20, 7, 300, 2, 1)
    defaults = Settings.from_env({})
    assert (defaults.max_bundle_entries, defaults.max_query_bytes, defaults.max_includes,
            defaults.max_include_iterations) == (1000, 7168, 10, 3)
    with pytest.raises(ValueError, match="FHIRPORTAL_MAX_BUNDLE_ENTRIES"):
        Settings.from_env({"FHIRPORTAL_MAX_BUNDLE_ENTRIES": "many"})


# ---------------------------------------------------------------- body size


def test_oversized_fhir_bodies_are_413_naming_the_limit(fhir, settings):
    """A create, an update and a transaction past FHIRPORTAL_MAX_BODY_BYTES: 413, the limit in bytes named."""
    payload = b'{"resourceType":"Patient","text":"' + b"x" * settings.max_body_bytes + b'"}'
    for method, path in (("POST", "/fhir/Patient"), ("PUT", "/fhir/Patient/big"), ("POST", "/fhir")):
        response = fhir.client.open(path, method=method, data=payload, content_type="application/fhir+json",
                                    headers={"Authorization": f"Bearer {fhir.token}"})
        issue = _outcome(response, 413, str(settings.max_body_bytes), "body size limit")
        assert issue["code"] == "too-costly"
    assert "entry" not in fhir.get("Patient").get_json()


@pytest.mark.parametrize("path, content_type", [
    ("/auth/token", FORM), ("/auth/revoke", FORM), ("/auth/introspect", FORM), ("/auth/authorize", FORM),
    ("/auth/register", "application/json"),
])
def test_oversized_auth_posts_are_413_outcomes(client, settings, path, content_type):
    """The authorization server's form and JSON posts past the body limit: a 413 OperationOutcome too."""
    response = client.post(path, data=b"a=" + b"x" * settings.max_body_bytes, content_type=content_type)
    _outcome(response, 413, str(settings.max_body_bytes))


def test_oversized_portal_registration_is_a_413_outcome(app, fhir, client, settings):
    """The portal's registration form (a live invitation, so the form is read) past the body limit: 413."""
    created = fhir.create(patient(telecom=[{"system": "email", "value": "ada@example.org"}]))
    issued = app.extensions["portal"].invite("Patient", created["id"], email=None, phone=None, requested_by=None)
    assert client.get(f"/portal/register?t={issued.link_token}").status_code == 200
    response = client.post(f"/portal/register?t={issued.link_token}", content_type=FORM,
                           data=b"username=" + b"x" * settings.max_body_bytes)
    _outcome(response, 413, str(settings.max_body_bytes))


# ---------------------------------------------------------------- Bundle entries


def _bundle(kind: str, entries: int) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}", "resource": patient(),
         "request": {"method": "POST", "url": "Patient"}} for n in range(entries)]}


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_bundle_entry_limit(fhir, limits, kind):
    """At the limit the Bundle is processed; one entry more is a 413 naming the count and the maximum, with
    nothing written (not even by a batch, whose entries otherwise stand alone)."""
    limits(max_bundle_entries=3)
    assert fhir.post("/fhir", _bundle(kind, 3)).status_code == 200
    assert fhir.get("Patient?_total=accurate").get_json()["total"] == 3
    issue = _outcome(fhir.post("/fhir", _bundle(kind, 4)), 413, "4 entries", "at most 3", "Bundle entry limit")
    assert _expression(issue) == ["Bundle.entry"]
    assert fhir.get("Patient?_total=accurate").get_json()["total"] == 3


def test_default_bundle_entry_limit_is_enforced(fhir, settings):
    """With the default (1000) limit, 1001 entries are refused before any is parsed."""
    entries = [{"request": {"method": "GET", "url": "Patient/x"}}] * (Settings().max_bundle_entries + 1)
    response = fhir.post("/fhir", {"resourceType": "Bundle", "type": "batch", "entry": entries})
    _outcome(response, 413, str(Settings().max_bundle_entries + 1), str(Settings().max_bundle_entries))


# ---------------------------------------------------------------- _count


@pytest.mark.parametrize("path", ["Patient", "/fhir?_type=Patient", "_history", "Patient/_history",
                                  "Patient/p/_history", "Patient/p/$everything"])
def test_count_above_the_maximum_is_400_everywhere(fhir, limits, path):
    """search, system search, history at every level and $everything: _count above the maximum is a 400
    naming it (no silent cap), the maximum itself is served."""
    fhir.put("Patient/p", patient(id="p"))
    limits(max_page_size=20)
    joiner = "&" if "?" in path else "?"
    issue = _outcome(fhir.get(f"{path}{joiner}_count=21"), 400, "_count=21", "20")
    assert _expression(issue) == ["_count"]
    assert fhir.get(f"{path}{joiner}_count=20").status_code == 200


def test_count_in_a_post_search_form_is_honoured_and_checked(fhir, limits):
    """POST _search reads _count from the form body: it pages by it, and above the maximum it is a 400."""
    for n in range(3):
        fhir.create(patient(identifier=[{"system": "urn:t", "value": str(n)}]))
    limits(max_page_size=20)
    page = fhir.post("Patient/_search", data={"_count": "2"}, content_type=FORM).get_json()
    assert len(page["entry"]) == 2
    _outcome(fhir.post("Patient/_search", data={"_count": "21"}, content_type=FORM), 400, "20")


def test_count_in_a_bundle_search_entry_is_honoured_and_checked(fhir, limits):
    """A batch GET search entry pages by its _count (it used to take the default page size whatever it
    said); above the maximum that entry is a 400 naming _count and the maximum, and a transaction is refused."""
    for n in range(3):
        fhir.create(patient(identifier=[{"system": "urn:t", "value": str(n)}]))
    limits(max_page_size=20)

    def bundle(kind, *urls):
        return {"resourceType": "Bundle", "type": kind, "entry": [{"request": {"method": "GET", "url": url}}
                                                                   for url in urls]}

    answers = fhir.post("/fhir", bundle("batch", "Patient?_count=2", "Patient?_count=21")).get_json()["entry"]
    assert answers[0]["response"]["status"] == "200 OK" and len(answers[0]["resource"]["entry"]) == 2
    assert answers[1]["response"]["status"] == "400"
    issue = answers[1]["response"]["outcome"]["issue"][0]
    assert "_count=21" in issue["diagnostics"] and "20" in issue["diagnostics"]
    assert issue["expression"] == ["Bundle.entry[1]"]
    _outcome(fhir.post("/fhir", bundle("transaction", "Patient?_count=21")), 400, "20")


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "²", "٣", " 5", "0x10", "9" * 5000])
def test_negative_non_numeric_or_huge_count_is_400(fhir, value):
    """Anything but plain ASCII digits within the maximum (including Unicode digits, which int() would take
    or choke on, and a number too long for int()) is a 400 on _count."""
    for path in ("Patient", "_history"):
        issue = _outcome(fhir.get(path, query_string={"_count": value}), 400)
        assert _expression(issue) == ["_count"]


def test_count_with_leading_zeros_is_a_number(fhir):
    """``_count=0002`` is 2 (and a long run of zeros is no reason to fail)."""
    for n in range(3):
        fhir.create(patient(identifier=[{"system": "urn:t", "value": str(n)}]))
    assert len(fhir.get("Patient?_count=0002").get_json()["entry"]) == 2
    assert len(fhir.get("Patient", query_string={"_count": "0" * 5000 + "1"}).get_json()["entry"]) == 1


# ---------------------------------------------------------------- _include


def test_too_many_include_parameters_are_400(fhir, limits):
    """More _include/_revinclude parameters (counted together, iterate or not) than the maximum: 400 naming
    both, whether or not the client asked for strict handling."""
    limits(max_includes=2)
    two = "_include=Observation:subject&_revinclude=Provenance:target"
    assert fhir.get(f"Observation?{two}").status_code == 200
    for headers in ({}, {"Prefer": "handling=strict"}):
        response = fhir.get(f"Observation?{two}&_include:iterate=Observation:performer", headers=headers)
        issue = _outcome(response, 400, "3 _include/_revinclude", "at most 2", "include limit")
        assert _expression(issue) == ["_include"]
    _outcome(fhir.post("Observation/_search", data={"_include": ["Observation:subject"] * 3}, content_type=FORM),
             400, "at most 2")


def _linked_chain(fhir, length: int) -> list[str]:
    """Patients p0 … p(length-1), each p(n) linking to p(n+1) (Patient.link.other, search parameter ``link``)."""
    ids = [f"p{n}" for n in range(length)]
    for n in reversed(range(length)):
        body = patient(id=ids[n])
        if n + 1 < length:
            body["link"] = [{"other": {"reference": f"Patient/{ids[n + 1]}"}, "type": "seealso"}]
        assert fhir.put(f"Patient/{ids[n]}", body).status_code == 201
    return ids


@pytest.mark.parametrize("iterations", [0, 1, 3])
def test_include_iterate_stops_after_the_configured_rounds(fhir, limits, iterations):
    """A reference chain longer than the limit: _include:iterate follows it for the first round plus
    ``max_include_iterations`` rounds, then stops (a bounded answer, not an unbounded walk)."""
    _linked_chain(fhir, 8)
    limits(max_include_iterations=iterations)
    bundle = fhir.get("Patient?_id=p0&_include:iterate=Patient:link").get_json()
    included = sorted(e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include")
    assert included == [f"p{n}" for n in range(1, iterations + 2)]


def test_include_iterate_terminates_on_a_reference_cycle(fhir):
    """Two resources that point at each other: iterating includes each once and ends."""
    assert fhir.put("Patient/a", patient(id="a")).status_code == 201
    assert fhir.put("Patient/b", patient(id="b", link=[{"other": {"reference": "Patient/a"}, "type": "seealso"}])) \
        .status_code == 201
    assert fhir.put("Patient/a", patient(id="a", link=[{"other": {"reference": "Patient/b"}, "type": "seealso"}])) \
        .status_code == 200
    bundle = fhir.get("Patient?_id=a&_include:iterate=Patient:link&_revinclude:iterate=Patient:link").get_json()
    assert sorted((e["resource"]["id"], e["search"]["mode"]) for e in bundle["entry"]) == [
        ("a", "match"), ("b", "include")]


# ---------------------------------------------------------------- query length


def test_long_query_string_is_414(fhir, limits):
    """A GET search whose query string is longer than the limit: 414 naming its length and the maximum, for
    type and system searches; exactly at the limit it runs."""
    limits(max_query_bytes=200)
    at_limit = "family=" + "x" * (200 - len("family="))
    assert fhir.get(f"Patient?{at_limit}").status_code == 200
    for path in (f"Patient?{at_limit}y", f"/fhir?_type=Patient&{at_limit}"):
        issue = _outcome(fhir.get(path), 414, "at most 200", "query length limit")
        assert issue["code"] == "too-costly"


def test_long_post_search_form_is_413(fhir, limits):
    """The same limit holds for a POST _search form body (413, naming it), so that POST is no way around it."""
    limits(max_query_bytes=200)
    assert fhir.post("Patient/_search", data={"family": "x" * 150}, content_type=FORM).status_code == 200
    response = fhir.post("Patient/_search", data={"family": "x" * 300}, content_type=FORM)
    _outcome(response, 413, "at most 200", "query length limit")
    _outcome(fhir.post("/fhir/_search", data={"_type": "Patient", "family": "x" * 300}, content_type=FORM),
             413, "at most 200")


def test_default_query_length_is_enforced(fhir):
    """With the default limit (7 KiB), a 9 KiB query string is a 414."""
    _outcome(fhir.get("Patient?family=" + "x" * 9 * 1024), 414, str(Settings().max_query_bytes))


# ---------------------------------------------------------------- fixed bounds on what a search compiles to


def test_search_values_beyond_the_bound_are_400(fhir, limits):
    """More values than MAX_SEARCH_VALUES across a search's parameters (comma-separated ORs counted each) is a
    400 naming it — found as a 500 from SQLite ("Expression tree is too large") at ~500 ORed values, ~245 in
    a chain or _has."""
    limits(max_query_bytes=64 * 1024)
    one_over = MAX_SEARCH_VALUES + 1
    for query in ("gender=" + ",".join(["male"] * one_over), "&".join(["_id=a"] * one_over),
                  "_lastUpdated=" + ",".join(["gt2020"] * 1000), "birthdate=" + ",".join(["2020"] * 1500)):
        _outcome(fhir.get(f"Patient?{query}"), 400, str(MAX_SEARCH_VALUES))
    _outcome(fhir.put("Patient?gender=" + ",".join(["male"] * one_over), patient()), 400, str(MAX_SEARCH_VALUES))


@pytest.mark.parametrize("query", [
    "gender=" + ",".join(["male"] * MAX_SEARCH_VALUES),
    "family=" + ",".join(["lovelace"] * MAX_SEARCH_VALUES),
    "_lastUpdated=" + ",".join(["gt2020"] * MAX_SEARCH_VALUES),
    "&".join(["_id=a"] * MAX_SEARCH_VALUES),
    "&".join(["gender=female"] * MAX_SEARCH_VALUES),
    "&".join(["general-practitioner.name=x"] * MAX_CHAINS),
    "&".join(["_has:Observation:subject:code=4548-4"] * MAX_CHAINS),
    "general-practitioner.name=" + ",".join(["x"] * MAX_SEARCH_VALUES),
    "_has:Observation:subject:code=" + ",".join(["4548-4"] * MAX_SEARCH_VALUES),
    "gender=male&general-practitioner.name=" + ",".join(["x"] * (MAX_SEARCH_VALUES - 1)),
], ids=["or-token", "or-string", "or-lastUpdated", "and-id", "and-token", "and-chain", "and-has", "or-chain",
        "or-has", "and-or-chain"])
def test_the_largest_allowed_search_runs(fhir, limits, query):
    """MAX_SEARCH_VALUES values, as one OR or as that many ANDed parameters (MAX_CHAINS chained or _has ones),
    still compile to a query the database runs: the bound sits below where the database gives up."""
    limits(max_query_bytes=64 * 1024)
    created = fhir.create(patient())
    fhir.create(observation(created["id"]))
    assert fhir.get(f"Patient?{query}").status_code == 200


def test_chains_beyond_the_bound_are_400(fhir):
    """More than MAX_CHAINS chained or _has parameters is a 400 naming it: 200 of them (within the query length
    and value bounds) kept PostgreSQL planning for about 100 seconds."""
    for query in ("&".join(["general-practitioner.name=x"] * (MAX_CHAINS + 1)),
                  "&".join(["_has:Observation:subject:code=x"] * MAX_CHAINS) + "&general-practitioner.name=x"):
        _outcome(fhir.get(f"Patient?{query}"), 400, f"{MAX_CHAINS + 1} chained or _has", str(MAX_CHAINS))


def test_sort_keys_beyond_the_bound_are_400_and_the_bound_pages(fhir):
    """More than MAX_SORT_KEYS _sort keys is a 400 (1100 keys were a 500); with the maximum, every page of the
    keyset paging runs."""
    _outcome(fhir.get("Patient?_sort=" + ",".join(["family"] * (MAX_SORT_KEYS + 1))), 400, str(MAX_SORT_KEYS))
    for n in range(3):
        fhir.create(patient(identifier=[{"system": "urn:t", "value": str(n)}]))
    keys = ",".join(["family", "-birthdate", "gender", "_id", "-_lastUpdated"][:MAX_SORT_KEYS])
    page = fhir.get(f"Patient?_count=1&_sort={keys}").get_json()
    seen = 1
    while (following := next((link["url"] for link in page["link"] if link["relation"] == "next"), None)):
        response = fhir.get(following.removeprefix("http://localhost"))
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        seen += len(page.get("entry", []))
    assert seen == 3
