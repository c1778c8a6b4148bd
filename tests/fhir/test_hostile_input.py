"""Property tests: hostile input never makes the server fail, and a refusal never writes.

Hypothesis sends mutated FHIR resources (wrong types, huge numbers, deep nesting, lone surrogates, NUL, bad
dates, bogus resourceType, extra fields), transaction and batch Bundles with broken entries, dangling
``urn:uuid:`` references and bad methods, and search strings (random names, modifiers, prefixes, commas,
pipes, SQL and FHIRPath metacharacters, huge numbers, bad dates, broken percent-encoding) through the Flask
test client. Every answer must be 2xx or 4xx, never 5xx; every 4xx is an OperationOutcome; and after a 4xx
the database is as it was (row counts of ``resource``, ``resource_version`` and each index table, the sum of
version ids and the highest pid).

Examples that once gave a 500 are pinned with ``@example``.
"""

from __future__ import annotations

import copy
import json
import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from fhirportal.fhir import xml
from fhirportal.store.schema import INDEX_TABLES, resource, resource_version
from tests.support import FHIR_JSON, observation, patient

# FHIRPORTAL_HOSTILE_EXAMPLES=2000 for a longer hunt; the default keeps the file well under a minute.
HYPOTHESIS = settings(max_examples=int(os.environ.get("FHIRPORTAL_HOSTILE_EXAMPLES", "100")), deadline=None,
                      database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FORM = "application/x-www-form-urlencoded"
FHIR_XML = "application/fhir+xml"
TYPES = ["Patient", "Observation", "Practitioner", "Encounter", "Condition", "Organization", "AuditEvent"]

# ---------------------------------------------------------------- the property


def fingerprint(ctx) -> dict:
    """What a refused request must leave untouched."""
    with ctx.database.read() as conn:
        counts = {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                  for table in (resource, resource_version, *INDEX_TABLES.values())}
        counts["max pid"] = conn.execute(select(func.max(resource.c.pid))).scalar()
        counts["sum version_id"] = conn.execute(select(func.sum(resource.c.version_id))).scalar()
    return counts


def sends_no_500(ctx, send):
    """Run ``send`` and check the property; the response for further checks."""
    ctx.audit.flush()  # earlier requests' accesses, so that a request reading the log sees them all
    before = fingerprint(ctx)
    response = send()
    status = response.status_code
    assert status < 500, (status, response.get_data()[:600])
    assert 200 <= status < 300 or 400 <= status < 500, status
    if status >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and body.get("resourceType") == "OperationOutcome", response.get_data()[:300]
        assert body.get("issue") and all(i.get("severity") and i.get("code") for i in body["issue"]), body
        assert fingerprint(ctx) == before, f"a {status} changed the database"
    return response


@pytest.fixture
def seeded(fhir):
    """A patient, a practitioner, an observation and a List of them to point at, search and update."""
    assert fhir.put("Patient/p1", patient(id="p1")).status_code == 201
    assert fhir.put("Practitioner/dr", {"resourceType": "Practitioner", "id": "dr",
                                        "name": [{"family": "Doc"}]}).status_code == 201
    assert fhir.put("Observation/o1", observation("p1", id="o1")).status_code == 201
    assert fhir.put("List/l1", {"resourceType": "List", "id": "l1", "status": "current", "mode": "working",
                                "entry": [{"item": {"reference": r}} for r in ("Patient/p1", "Observation/o1")]}
                    ).status_code == 201
    return fhir


def _send(fhir, method: str, path: str, headers: dict | None = None, **kw):
    return fhir.client.open(path, method=method, headers={"Authorization": f"Bearer {fhir.token}", **(headers or {})},
                            **kw)


# ---------------------------------------------------------------- hostile values

HOSTILE_STRINGS = [
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff\ud800", "\U0010ffff", "😀", "İ", "ß", "\u202e", "ｆｕｌｌ",
    "' OR 1=1 --", "\"; DROP TABLE resource; --", "%", "_", "\\", "\\,", "$this", "%(x)s", "{x}", "?",
    "Patient.name.where(true)", "name.exists() or 1=1", "*", "*:*", "<script>", "a" * 300, "9" * 400, "1e400",
    "-0", "NaN", "Infinity", "0x1F", "2020-13-45", "0000-00-00", "2020-02-30", "9999-12-31T23:59:60Z",
    "2020-01-01T25:00:00Z", "2020-01-01T00:00:00+99:00", "99999", "-2020", "urn:uuid:", "Patient/",
    "Patient/p1/_history/x", "http://elsewhere/fhir/Patient/1", "#", "../..", "Patient?", "Patient?identifier=",
    "ge", "eq2020", "gt", "ap1e400", "|", "||", "a|b|c|d", "a,b,,c", ",", "\\\\", "\t\n", "$everything",
]
NUMBERS = st.one_of(st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
                    st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**308]),
                    st.floats(allow_nan=False, allow_infinity=False))
TEXT = st.one_of(st.text(st.characters(exclude_categories=()), max_size=12), st.sampled_from(HOSTILE_STRINGS))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner,
                                                                                                  max_size=3),
                           max_leaves=12)
URNS = ["urn:uuid:7f1c2a4e-0000-4000-8000-000000000001", "urn:uuid:7f1c2a4e-0000-4000-8000-000000000002",
        "urn:uuid:not-a-uuid", "urn:oid:1.2.3"]
REFERENCES = [*URNS, "Patient/p1", "Patient/missing", "Practitioner/dr", "Patient?identifier=urn:t|1", "Patient?",
              "Patient?name=Lovelace", "Nope?x=1", "#contained", "", "Patient/p1/_history/1", "http://x/Patient/1"]


def _nested(depth: int, leaf):
    for n in range(depth):
        leaf = [leaf] if n % 2 else {"extension": leaf}
    return leaf


def _slots(node, parent=None, key=None):
    """Every (container, key) of a JSON document, the root's keys included."""
    if parent is not None:
        yield parent, key
    if isinstance(node, dict):
        for k, v in list(node.items()):
            yield from _slots(v, node, k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _slots(v, node, i)


BASES = [
    patient(),
    patient(id="p1", link=[{"other": {"reference": "Patient/p1"}, "type": "seealso"}],
            generalPractitioner=[{"reference": "Practitioner/dr"}]),
    observation("p1"),
    observation("p1", performer=[{"reference": "Practitioner/dr"}], valueQuantity=None, valueString="x"),
    {"resourceType": "Practitioner", "name": [{"family": "Doc", "given": ["A"]}], "birthDate": "1970"},
    {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
     "subject": {"reference": "Patient/p1"}, "period": {"start": "2024-01-01", "end": "2024-01-02"}},
    {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "code": {"text": "x"},
     "onsetDateTime": "2020-01-01T00:00:00Z"},
]


@st.composite
def mutated_resources(draw) -> dict:
    """A valid resource with one to four mutations: replace, delete or add a field, nest deeply, wrap a value in
    a list or unwrap a list, or point a reference elsewhere."""
    body = copy.deepcopy(draw(st.sampled_from(BASES)))
    body = {k: v for k, v in body.items() if v is not None}
    for _ in range(draw(st.integers(1, 4))):
        slots = list(_slots(body))
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "delete", "add", "nest", "wrap", "unwrap", "reference",
                                       "resourceType"]))
        if action == "replace":
            container[key] = draw(JSON_VALUES)
        elif action == "delete" and isinstance(container, dict):
            container.pop(key, None)
        elif action == "add" and isinstance(container, dict):
            container[draw(st.one_of(TEXT, st.sampled_from(["id", "meta", "text", "contained", "extension",
                                                            "modifierExtension", "_birthDate", "resourceType"])))] = \
                draw(JSON_VALUES)
        elif action == "nest":
            container[key] = _nested(draw(st.integers(1, 80)), container[key])
        elif action == "wrap":
            container[key] = [container[key]]
        elif action == "unwrap" and isinstance(container[key], list) and container[key]:
            container[key] = container[key][0]
        elif action == "reference":
            container[key] = {"reference": draw(st.sampled_from(REFERENCES) | TEXT)}
        elif action == "resourceType":
            body["resourceType"] = draw(st.sampled_from(["Patiente", "", "Bundle", "OperationOutcome", "patient",
                                                         "Binary", "Observation", "DomainResource"]) | SCALARS)
    return body


def mostly(draw, usual, otherwise, one_in: int = 10):
    """``usual`` (a value or a strategy), except one time in ``one_in`` a draw from ``otherwise``."""
    if draw(st.integers(1, one_in)) == 1:
        return draw(otherwise)
    return draw(usual) if isinstance(usual, st.SearchStrategy) else usual


def _json_bytes(draw, document) -> bytes:
    """The document as JSON text: escaped (\\ud800) or raw surrogates, or with NaN/Infinity, or cut short."""
    form = draw(st.sampled_from(["ascii"] * 9 + ["raw"] * 9 + ["truncated"] * 2))
    if form == "ascii":
        return json.dumps(document).encode()
    text = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if form == "truncated":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    return text


# ---------------------------------------------------------------- resources


@HYPOTHESIS
@given(data=st.data())
@example(data=None)  # the plain valid case: the strategy machinery aside, a create must work
def test_mutated_resources_never_500(ctx, seeded, data):
    """POST, PUT (to a random id), PATCH and $validate of mutated resources: 2xx or a 4xx OperationOutcome
    that wrote nothing."""
    if data is None:
        assert sends_no_500(ctx, lambda: seeded.post("Patient", patient())).status_code == 201
        return
    body = data.draw(mutated_resources(), label="body")
    payload = _json_bytes(data.draw, body)
    resource_type = data.draw(st.sampled_from([body.get("resourceType") if isinstance(body.get("resourceType"), str)
                                               else "Patient", *TYPES]), label="type")
    how = data.draw(st.sampled_from(["POST", "PUT", "PUT-new", "PATCH", "validate"]), label="how")
    path = f"/fhir/{_encode(resource_type or 'Patient')}"  # '//' is merged by the router: a 308, not our concern
    if how == "POST":
        send = lambda: _send(seeded, "POST", path, data=payload, content_type=FHIR_JSON)  # noqa: E731
    elif how in ("PUT", "PUT-new"):
        fhir_id = body.get("id") if isinstance(body.get("id"), str) and how == "PUT" else \
            data.draw(st.sampled_from(["p1", "o1", "new-1", "a" * 65, "bad id", "x/y", "%00", "$x"]) | TEXT)
        send = lambda: _send(seeded, "PUT", f"{path}/{_encode(str(fhir_id) or 'x')}",  # noqa: E731
                             data=payload, content_type=FHIR_JSON)
    elif how == "PATCH":
        operations = data.draw(st.lists(st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "replace", "remove", "move", "copy", "test", "nope"]) | TEXT,
             "path": st.sampled_from(["/name", "/name/0/family", "/id", "/resourceType", "/meta/versionId", "/-",
                                      "", "/birthDate", "/name/99", "/a~1b"]) | TEXT},
            optional={"value": JSON_VALUES, "from": st.sampled_from(["/name", "/gender", "/nope"]) | TEXT}),
            max_size=4) | JSON_VALUES, label="patch")
        send = lambda: _send(seeded, "PATCH", "/fhir/Patient/p1", data=_json_bytes(data.draw, operations),  # noqa: E731
                             content_type="application/json-patch+json")
    else:
        send = lambda: _send(seeded, "POST", f"{path}/$validate", data=payload, content_type=FHIR_JSON)  # noqa: E731
    sends_no_500(ctx, send)


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/fhir/Patient", {"resourceType": "\ud800"}),
    ("PUT", "/fhir/Patient/x", {"resourceType": "\ud800"}),
    ("POST", "/fhir/Patient", patient(gender="\ud800")),
    ("POST", "/fhir/Patient/$validate", {"resourceType": "\udfff\ud800"}),
    ("POST", "/fhir", {"resourceType": "Bundle", "type": "\ud800"}),
    ("POST", "/fhir", {"resourceType": "Bundle", "type": "transaction",
                       "entry": [{"request": {"method": "GET", "url": "\ud800"}}]}),
    ("POST", "/fhir", {"resourceType": "Bundle", "type": "batch",
                       "entry": [{"request": {"method": "\ud800", "url": "Patient"}}]}),
])
def test_lone_surrogates_echoed_in_errors_are_not_500(ctx, seeded, method, path, body):
    """Found by test_mutated_resources_never_500: an error message quoting a client's lone surrogate
    (``"resourceType": "\\ud800"``) could not be encoded as UTF-8, so the OperationOutcome itself failed and a
    bare 500 went out. Now the surrogate is sent as U+FFFD and the answer is the 4xx (or the batch's 200)."""
    response = sends_no_500(ctx, lambda: _send(seeded, method, path, data=json.dumps(body), content_type=FHIR_JSON))
    assert "\ufffd" in response.get_data(as_text=True)


# ---------------------------------------------------------------- XML bodies

XML_FRAGMENTS = [
    "<", ">", "</", "/>", "&", "&amp;", "&#0;", "&#xD800;", "&#x1F600;", "&bogus;", '"', "'", "=", "\x00", "é",
    '<!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;", "<!-- c -->", "<![CDATA[x]]>",
    "<?pi x?>", '<extension url="u"/>', '<extension url="u"><valueString value="v"/></extension>',
    '<div xmlns="http://www.w3.org/1999/xhtml">', "</div>", ' xmlns="urn:other"', ' value=""', ' value="x"',
    ' id="i"', "<id value='x'/>", "<contained>", "</contained>", "<Patient>", "</Patient>", "<resource>",
    '<active value="true"/>', '<valueDecimal value="1e400"/>', "<name/>",
]


@st.composite
def mutated_xml(draw) -> tuple[str, bytes]:
    """A (possibly mutated) resource written as XML, then up to three text edits: an XML fragment or random text
    put in, a stretch cut out, a stretch repeated. With the resource type to send it to."""
    body = draw(st.one_of(mutated_resources(), st.sampled_from(BASES)))
    try:
        text = xml.write(body)
    except ValueError:  # no resourceType the writer knows: start from a plain Patient
        body, text = patient(), xml.write(patient())
    for _ in range(draw(st.integers(0, 3))):
        cut = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "repeat"]))
        if action == "insert":
            text = text[:cut] + draw(st.sampled_from(XML_FRAGMENTS) | TEXT) + text[cut:]
        elif action == "delete":
            text = text[:cut] + text[cut + draw(st.integers(1, 40)):]
        else:
            end = min(len(text), cut + draw(st.integers(1, 80)))
            text = text[:end] + text[cut:end] + text[end:]
    resource_type = body.get("resourceType") if body.get("resourceType") in TYPES else "Patient"
    return resource_type, text.encode("utf-8", "surrogatepass")


@HYPOTHESIS
@given(data=st.data())
@example(data=None)
def test_mutated_xml_never_500(ctx, seeded, data):
    """POST, PUT, $validate and transactions of mutated XML bodies: 2xx or a 4xx OperationOutcome that wrote
    nothing."""
    if data is None:
        send = lambda: _send(seeded, "POST", "/fhir/Patient", data=xml.write(patient()).encode(),  # noqa: E731
                             content_type=FHIR_XML)
        assert sends_no_500(ctx, send).status_code == 201
        return
    resource_type, payload = data.draw(mutated_xml(), label="xml")
    how = data.draw(st.sampled_from(["POST", "PUT", "validate", "transaction"]), label="how")
    if how == "transaction":
        text = payload.decode("utf-8", "surrogatepass")
        text = text.split("?>", 1)[-1] if text.startswith("<?xml") else text
        inner = text.replace(' xmlns="http://hl7.org/fhir"', "", 1)
        payload = ('<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><entry><resource>'
                   f'{inner}</resource><request><method value="POST"/><url value="{resource_type}"/></request>'
                   "</entry></Bundle>").encode("utf-8", "surrogatepass")
    path = {"POST": f"/fhir/{resource_type}", "PUT": f"/fhir/{resource_type}/x1", "validate":
            f"/fhir/{resource_type}/$validate", "transaction": "/fhir"}[how]
    sends_no_500(ctx, lambda: _send(seeded, "PUT" if how == "PUT" else "POST", path, data=payload,
                                    content_type=FHIR_XML))


# ---------------------------------------------------------------- Bundles


@st.composite
def bundle_entries(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)  # not even an object
    method = draw(st.sampled_from(["POST", "PUT", "GET", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", "", None, 3]))
    url = draw(st.sampled_from(["Patient", "Patient/p1", "Patient/new-1", "Observation", "Observation/o1",
                                "Patient?identifier=urn:t|1", "Patient?name=Lovelace", "Patient/p1/_history/1",
                                "Patient/p1/_history/x", "http://elsewhere/fhir/Patient/1",
                                "http://localhost/fhir/Patient/p1", "Nope/1", "", "Patient/p1/a/b/c", "Patient?",
                                "Patient/$everything", URNS[0], "Patient/p1?_count=x"]) | TEXT)
    request = {"method": method, "url": url}
    if draw(st.booleans()):
        request["ifMatch"] = draw(st.sampled_from(['W/"1"', '"1"', 'W/"x"', 'W/"99999999999999"', "", "*"]) | SCALARS)
    if draw(st.booleans()):
        request["ifNoneExist"] = draw(st.sampled_from(["identifier=urn:t|1", "name=x", "nope=1", "_id=p1", ""])
                                      | SCALARS)
    entry = {"request": request if draw(st.integers(0, 9)) else draw(JSON_VALUES)}
    kind = draw(st.sampled_from(["valid", "mutated", "patch", "none", "garbage"]))
    if kind == "valid":
        body = copy.deepcopy(draw(st.sampled_from(BASES)))
        body = {k: v for k, v in body.items() if v is not None}
        if "subject" in body:
            body["subject"] = {"reference": draw(st.sampled_from(REFERENCES))}
        entry["resource"] = body
    elif kind == "mutated":
        entry["resource"] = draw(mutated_resources())
    elif kind == "patch":
        entry["resource"] = {"resourceType": "Binary", "contentType": draw(st.sampled_from(
            ["application/json-patch+json", "text/plain"])), "data": draw(st.sampled_from(
                ["W3sib3AiOiAicmVtb3ZlIiwgInBhdGgiOiAiL2dlbmRlciJ9XQ==", "!!!", "", "e30="]) | TEXT)}
    elif kind == "garbage":
        entry["resource"] = draw(JSON_VALUES)
    if draw(st.booleans()):
        entry["fullUrl"] = draw(st.sampled_from([*URNS, "Patient/p1", "http://localhost/fhir/Patient/x"]) | SCALARS)
    return entry


def test_non_string_entry_fields_are_400_not_500(ctx, seeded):
    """Found by test_hostile_bundles_never_500: a Bundle entry's request.ifMatch / ifNoneExist or fullUrl that
    is not a string (False, 5, [], {}) was a 500, failing even a whole batch; now the entry is refused (a
    transaction 400, a batch entry's 400 outcome) naming the field."""
    for field, value in (("ifMatch", False), ("ifMatch", 5), ("ifMatch", {"a": 1}), ("ifNoneExist", 5),
                         ("ifNoneExist", {"a": 1}), ("method", ["POST"]), ("fullUrl", {"a": 1}), ("fullUrl", 5)):
        entry = {"resource": patient(), "request": {"method": "POST", "url": "Patient"}}
        if field == "fullUrl":
            entry["fullUrl"] = value
        else:
            entry["request"][field] = value
        for kind in ("transaction", "batch"):
            bundle = {"resourceType": "Bundle", "type": kind, "entry": [entry]}
            response = sends_no_500(ctx, lambda b=bundle: seeded.post("/fhir", b))
            outcome = response.get_json() if kind == "transaction" else \
                response.get_json()["entry"][0]["response"]["outcome"]
            assert outcome["resourceType"] == "OperationOutcome"
            assert field in outcome["issue"][0]["expression"][0], outcome
            if kind == "transaction":
                assert response.status_code == 400


@HYPOTHESIS
@given(data=st.data())
@example(data=None)
def test_hostile_bundles_never_500(ctx, seeded, data):
    """transaction and batch Bundles of broken entries: 2xx (a batch answers per entry) or a 4xx
    OperationOutcome that wrote nothing (a transaction is all or nothing)."""
    if data is None:  # a transaction whose second entry dangles: refused, nothing written
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": URNS[0], "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": observation("x", subject={"reference": URNS[1]}),
             "request": {"method": "POST", "url": "Observation"}}]}
        assert sends_no_500(ctx, lambda: seeded.post("/fhir", bundle)).status_code in (400, 404, 422)
        return
    bundle = {"resourceType": mostly(data.draw, "Bundle", st.sampled_from(["Patient", "bundle"]) | SCALARS),
              "type": mostly(data.draw, st.sampled_from(["transaction", "batch"]),
                             st.sampled_from(["searchset", "Transaction", "history"]) | SCALARS),
              "entry": mostly(data.draw, st.lists(bundle_entries(), max_size=5), JSON_VALUES)}
    payload = _json_bytes(data.draw, bundle)
    response = sends_no_500(ctx, lambda: _send(seeded, "POST", "/fhir", data=payload, content_type=FHIR_JSON))
    if response.status_code == 200 and bundle["type"] == "batch":
        for answer in response.get_json().get("entry", []):
            status = int(answer["response"]["status"].split()[0])
            assert status < 500, answer
            if status >= 400:
                assert answer["response"]["outcome"]["resourceType"] == "OperationOutcome", answer


# ---------------------------------------------------------------- searches

PARAMETER_NAMES = [
    "_id", "_lastUpdated", "_count", "_sort", "_include", "_revinclude", "_include:iterate", "_revinclude:iterate",
    "_summary", "_elements", "_total", "_cursor", "_type", "_format", "_pretty", "_since",
    "_has:Observation:subject:code", "_has:Observation:patient:_id", "_has:Nope:x:y",
    "_has:Observation:subject:_has:x:y:z", "_text", "_content",
    "_filter", "_query", "_list", "_contained", "_containedType", "identifier", "name", "family", "given",
    "birthdate", "gender", "link", "address",
    "telecom", "phone", "email", "general-practitioner", "general-practitioner.name",
    "general-practitioner:Practitioner.family", "general-practitioner.name.family", "organization", "subject",
    "subject:Patient", "patient", "code", "value-quantity", "date", "status", "performer", "category",
    "combo-code-value-quantity", "component-value-quantity", "value-string", "onset-date",
]
MODIFIERS = ["", ":exact", ":contains", ":missing", ":not", ":text", ":of-type", ":below", ":above", ":Patient",
             ":iterate", ":", "::", ":identifier", ":in", ":Nope"]
PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx"]
ATOMS = st.one_of(st.sampled_from(HOSTILE_STRINGS), TEXT, NUMBERS.map(str),
                  st.sampled_from(["p1", "dr", "Patient/p1", "male", "Lovelace", "4548-4", "http://loinc.org|4548-4",
                                   "urn:t|1", "2024", "2024-03-05", "2024-03-05T10:00:00Z", "6.1|http://unitsofmeasure.org|%",
                                   "Patient:link", "Observation:subject", "Observation:subject:Patient", "*", "family",
                                   "-birthdate", "true", "count", "accurate", "id,name", "Patient,Observation",
                                   "both", "false", "container", "contained", "$current-problems", "l1"]))


@st.composite
def search_values(draw) -> str:
    atoms = draw(st.lists(ATOMS, min_size=1, max_size=4))
    separators = draw(st.lists(st.sampled_from([",", "|", "\\,", "$", ":"]), min_size=len(atoms) - 1,
                               max_size=len(atoms) - 1))
    value = draw(st.sampled_from(PREFIXES)) + atoms[0]
    for separator, atom in zip(separators, atoms[1:], strict=True):
        value += separator + atom
    return value


@st.composite
def search_parameters(draw) -> list[tuple[str, str]]:
    names = st.one_of(st.sampled_from(PARAMETER_NAMES), TEXT)
    return draw(st.lists(st.tuples(st.tuples(names, st.sampled_from(MODIFIERS)).map("".join), search_values()),
                         max_size=5))


def _encode(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _query(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{_encode(name)}={_encode(value)}" for name, value in params)


RAW_QUERIES = st.text(st.sampled_from("abc_:=&%?,|$#;+ 0129zZ.-*()'\"\\/[]{}"), max_size=40)


@HYPOTHESIS
@given(params=search_parameters(), raw=st.one_of(st.none(), RAW_QUERIES),
       where=st.sampled_from(["type", "post", "system", "post-system", "history", "type-history", "everything",
                              "conditional-update", "conditional-delete"]),
       resource_type=st.sampled_from(TYPES + ["Nope"]), strict=st.booleans())
@example(params=[("_count", "²")], raw=None, where="type", resource_type="Patient", strict=False)
@example(params=[("_count", "9" * 5000)], raw=None, where="history", resource_type="Patient", strict=False)
@example(params=[("gender", ",".join(["male"] * 1500))], raw=None, where="type", resource_type="Patient",
         strict=False)
@example(params=[("_lastUpdated", ",".join(["gt2020"] * 1000))], raw=None, where="post", resource_type="Patient",
         strict=False)
@example(params=[("_id", "a")] * 1300, raw=None, where="type", resource_type="Patient", strict=False)
@example(params=[("_sort", ",".join(["family"] * 1100))], raw=None, where="type", resource_type="Patient",
         strict=False)
@example(params=[("general-practitioner.name", ",".join(["x"] * 300))], raw=None, where="conditional-update",
         resource_type="Patient", strict=True)
def test_hostile_searches_never_500(ctx, seeded, limits_for_examples, params, raw, where, resource_type, strict):
    """Random and malformed search parameters, sent as a GET query, a POST _search form, a system search, to
    history, $everything, and conditional update and delete: 2xx or a 4xx OperationOutcome that wrote
    nothing. The pinned examples each gave a 500 before the fixed bounds (_count parsing, search values,
    sort keys)."""
    query = raw if raw is not None else _query(params)
    headers = {"Prefer": "handling=strict"} if strict else {}
    base = f"/fhir/{resource_type}"
    match where:
        case "type":
            send = lambda: _send(seeded, "GET", f"{base}?{query}", headers=headers)  # noqa: E731
        case "post":
            send = lambda: _send(seeded, "POST", f"{base}/_search", data=query, content_type=FORM,  # noqa: E731
                                 headers=headers)
        case "system":
            send = lambda: _send(seeded, "GET", f"/fhir?_type={resource_type}&{query}", headers=headers)  # noqa: E731
        case "post-system":
            send = lambda: _send(seeded, "POST", "/fhir/_search", data=f"_type={resource_type}&{query}",  # noqa: E731
                                 content_type=FORM)
        case "history":
            send = lambda: _send(seeded, "GET", f"{base}/p1/_history?{query}")  # noqa: E731
        case "type-history":
            send = lambda: _send(seeded, "GET", f"{base}/_history?{query}")  # noqa: E731
        case "everything":
            send = lambda: _send(seeded, "GET", f"/fhir/Patient/p1/$everything?{query}")  # noqa: E731
        case "conditional-update":
            body = patient() if resource_type == "Patient" else {"resourceType": resource_type}
            send = lambda: _send(seeded, "PUT", f"{base}?{query}", data=json.dumps(body),  # noqa: E731
                                 content_type=FHIR_JSON)
        case _:
            send = lambda: _send(seeded, "DELETE", f"{base}?{query}")  # noqa: E731
    with limits_for_examples():
        sends_no_500(ctx, send)


@pytest.fixture
def limits_for_examples(ctx):
    """The pinned examples exceed the default query length on purpose: raise it so that they reach the search
    parser (where the 500s were), not the 414."""
    from contextlib import contextmanager

    @contextmanager
    def raised():
        original = ctx.settings
        ctx.settings = original.with_overrides(max_query_bytes=64 * 1024)
        try:
            yield
        finally:
            ctx.settings = original

    return raised
