"""A primitive's extension element (``_name`` beside ``name``) of any JSON shape, at any depth, in a
resource, a transaction Bundle or a ``$validate`` Parameters: never a 5xx; a shape that is not an
Element (an object with ``id``/``extension``, or in arrays such objects and nulls) is a 422 pointing at
the element, and nothing is written. Hypothesis picks the primitive and the shape."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fhir.test_hostile_input import HYPOTHESIS, sends_no_500
from tests.support import observation, patient

BASES = [
    {**patient(id="p1"), "name": [{"family": "Doe", "given": ["Jo", "Ann"]}], "birthDate": "1980-02-03",
     "telecom": [{"system": "phone", "value": "555"}], "active": True},
    {**observation("p1"), "valueQuantity": {"value": 7.2, "unit": "mmol/L"}, "issued": "2024-01-02T03:04:05Z",
     "identifier": [{"system": "urn:x", "value": "o-1"}]},
]
# no NUL: a body holding one is refused whole, before any element is looked at (test_hostile_input)
TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=5)
NOT_AN_ELEMENT = st.one_of(
    st.integers(), st.booleans(), st.floats(allow_nan=False), TEXT,
    st.lists(st.one_of(st.integers(), TEXT, st.booleans()), min_size=1, max_size=3),
    st.lists(st.just([]), min_size=1, max_size=2),
    st.fixed_dictionaries({"extension": st.one_of(st.integers(), TEXT, st.just({}))}),
    st.fixed_dictionaries({"id": st.one_of(st.integers(), st.booleans(), st.just([]))}),
    st.fixed_dictionaries({"extension": st.just([{"url": 5}])}),
    st.fixed_dictionaries({"unknown": st.integers()}),
)


def _primitives(node, path=()):
    """(path to the object holding it, name, FHIRPath of it) of every primitive element."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "resourceType" or name.startswith("_"):
                continue
            if isinstance(value, (str, bool, int, float)) or (
                    isinstance(value, list) and value and all(isinstance(v, (str, bool, int, float)) for v in value)):
                yield path, name
            elif isinstance(value, dict):
                yield from _primitives(value, (*path, name))
            elif isinstance(value, list):
                for position, item in enumerate(value):
                    yield from _primitives(item, (*path, name, position))


def _with(base: dict, path: tuple, name: str, shape) -> dict:
    import copy

    body = copy.deepcopy(base)
    node = body
    for step in path:
        node = node[step]
    node[f"_{name}"] = shape
    return body


def _fhirpath(resource_type: str, path: tuple, name: str) -> str:
    text = resource_type
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return f"{text}._{name}"


@st.composite
def hostile(draw):
    base = draw(st.sampled_from(BASES))
    path, name = draw(st.sampled_from(list(_primitives(base))))
    return base, path, name, draw(NOT_AN_ELEMENT)


def _check(response, where: str) -> None:
    assert response.status_code == 422, (response.status_code, response.get_data()[:300])
    expressions = [e for issue in response.get_json()["issue"] for e in issue.get("expression", [])]
    assert any(where in e for e in expressions), (where, expressions)


@HYPOTHESIS
@given(case=hostile())
def test_a_primitive_extension_of_the_wrong_shape_is_a_422_at_the_element(fhir, ctx, case):
    base, path, name, shape = case
    if base["resourceType"] != "Patient":
        fhir.put("Patient/p1", patient(id="p1"))
    body = _with(base, path, name, shape)
    where = _fhirpath(base["resourceType"], path, name)
    _check(sends_no_500(ctx, lambda: fhir.post(base["resourceType"], body)), where)
    _check(sends_no_500(ctx, lambda: fhir.put(f"{base['resourceType']}/x-1", {**body, "id": "x-1"})), where)
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": body, "request": {"method": "POST", "url": base["resourceType"]}}]}
    answer = sends_no_500(ctx, lambda: fhir.post("/fhir", bundle))
    inside = "Bundle.entry[0].resource." + where.split(".", 1)[1]
    assert answer.status_code in (400, 422) and inside in answer.get_data(as_text=True), answer.get_data()[:300]
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": body}]}
    validated = sends_no_500(ctx, lambda: fhir.post(f"{base['resourceType']}/$validate", parameters))
    assert validated.status_code == 200 and any(
        where in e for issue in validated.get_json()["issue"] for e in issue.get("expression", []))


def test_the_element_forms_that_are_allowed_are_accepted(fhir):
    fhir.put("Patient/p1", patient(id="p1"))
    body = {**patient(), "name": [{"given": ["Jo", "Ann"], "_given": [None, {"id": "g2", "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "CL"}]}]}],
            "birthDate": "1980-02-03", "_birthDate": {"extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                 "valueDateTime": "1980-02-03T10:00:00Z"}]}}
    created = fhir.post("Patient", body)
    assert created.status_code == 201, created.get_json()
    assert fhir.get(f"Patient/{created.get_json()['id']}").get_json()["name"][0]["_given"][0] is None


def test_a_primitive_extension_given_as_text_that_is_json_is_a_422_at_the_element(fhir, ctx):
    """The model library parses a string where an Element belongs as JSON and fails on what it finds
    ("1", "null", "[]"): still a 422 pointing at the element, found by the structure table."""
    for text in ("1", "null", "[]", "true", '"a"'):
        body = patient()
        body["identifier"][0]["_system"] = text
        _check(sends_no_500(ctx, lambda body=body: fhir.post("Patient", body)), "Patient.identifier[0]._system")
