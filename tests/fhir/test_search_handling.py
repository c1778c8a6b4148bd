"""Unknown search parameters are a 400 by default (a misspelt ``patient`` must never widen a search to
every patient); ``Prefer: handling=lenient`` or ``FHIRPORTAL_SEARCH_HANDLING=lenient`` ignores them."""

from __future__ import annotations

import pytest

from fhirportal.app import create_app
from fhirportal.fhir.search_params import handling_is_strict
from fhirportal.settings import Settings
from tests.support import SYSTEM_SCOPE, TEST_CLIENT_ID, Fhir, observation, patient


@pytest.fixture
def two_patients(fhir):
    for pid in ("p1", "p2"):
        fhir.put(f"Patient/{pid}", patient(id=pid))
        fhir.create(observation(pid))
    return fhir


@pytest.mark.parametrize("query, named", [
    ("Observation?patinet=p1", "patinet"),
    ("Observation?patient:exactly=p1", "patient:exactly"),
    ("Observation?code:contains=x", "code:contains"),
    ("Observation?_sort=nope", "_sort"),
    ("Observation?_include=Observation:nope", "_include"),
    ("Observation?patient=p1&_summary=maybe", "_summary"),
])
def test_an_unknown_parameter_or_modifier_is_a_400_naming_it(two_patients, query, named):
    answer = two_patients.get(query)
    assert answer.status_code == 400, answer.get_json()
    issue = answer.get_json()["issue"][0]
    assert issue["expression"] == [named] and issue["code"] in ("not-supported", "invalid")


def test_lenient_handling_ignores_it_and_says_so_in_the_self_link(two_patients):
    answer = two_patients.get("Observation?patinet=p1&patient=p2", headers={"Prefer": "handling=lenient"})
    assert answer.status_code == 200
    body = answer.get_json()
    assert len(body["entry"]) == 1 and body["entry"][0]["resource"]["subject"]["reference"] == "Patient/p2"
    self_link = next(link["url"] for link in body["link"] if link["relation"] == "self")
    assert "patinet" not in self_link and "patient=p2" in self_link


def test_result_parameters_are_known(two_patients):
    answer = two_patients.get("Observation?patient=p1&_format=json&_pretty=true&_count=5&_total=accurate"
                              "&_summary=false&_elements=status&_sort=-date")
    assert answer.status_code == 200, answer.get_json()


def test_a_lenient_server_ignores_them_unless_the_client_asks_for_strict(settings, ctx):
    lenient = create_app(settings.with_overrides(search_handling="lenient"), create_schema=False)
    try:
        fhir = Fhir(lenient.test_client(), ctx.tokens.mint(client_id=TEST_CLIENT_ID, scope=SYSTEM_SCOPE))
        assert fhir.get("Observation?patinet=p1").status_code == 200
        assert fhir.get("Observation?patinet=p1", headers={"Prefer": "handling=strict"}).status_code == 400
    finally:
        lenient.extensions["fhirportal"].database.dispose()


def test_the_setting_and_the_preference():
    assert handling_is_strict(None) and handling_is_strict("return=minimal")
    assert not handling_is_strict("handling=lenient")
    assert not handling_is_strict(None, "lenient") and handling_is_strict("handling=strict", "lenient")
    assert Settings.from_env({"FHIRPORTAL_SEARCH_HANDLING": "lenient"}).search_handling == "lenient"
    with pytest.raises(ValueError):
        Settings.from_env({"FHIRPORTAL_SEARCH_HANDLING": "sloppy"})
