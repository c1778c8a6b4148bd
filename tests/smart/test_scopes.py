"""SMART v1 and v2 scope parsing and the questions enforcement asks of it (table-driven)."""

from __future__ import annotations

import pytest

from fhirportal.smart.scopes import parse_scope, parse_scopes

TYPES = ["Patient", "Observation", "Condition", "MedicationRequest"]
LAB = ("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory")


@pytest.mark.parametrize(("text", "context", "resource_type", "permissions", "query"), [
    ("patient/Observation.rs", "patient", "Observation", "rs", ()),
    ("patient/Observation.read", "patient", "Observation", "rs", ()),
    ("user/*.write", "user", "*", "cud", ()),
    ("system/*.*", "system", "*", "cruds", ()),
    ("patient/*.cruds", "patient", "*", "cruds", ()),
    ("user/Condition.c", "user", "Condition", "c", ()),
    ("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
     "patient", "Observation", "rs", (LAB,)),
])
def test_parse_scope(text, context, resource_type, permissions, query):
    scope = parse_scope(text, TYPES)
    assert (scope.context, scope.resource_type, "".join(sorted(scope.permissions)), scope.query) == (
        context, resource_type, "".join(sorted(permissions)), query)


@pytest.mark.parametrize("text", [
    "patient/Observation.sr",  # v2 letters out of order
    "patient/Observation.rr",
    "patient/Observation.x",
    "practitioner/Observation.rs",
    "patient/Spaceship.rs",  # not a type this server has
    "patient/Observation.read?category=x",  # v1 scopes carry no query
    "patient/observation.rs",
    "patient/Observation.rs?",
    "Observation.rs",
])
def test_malformed_or_unknown_scopes_are_dropped(text):
    assert parse_scope(text, TYPES) is None
    assert parse_scopes(f"openid {text}", TYPES).resource_scopes == ()


def test_scope_set_permits_and_text():
    scopes = parse_scopes("launch/patient openid fhirUser patient/Observation.read patient/Condition.rs "
                          "offline_access nonsense user/Patient.r", TYPES)
    assert scopes.other == {"launch/patient", "openid", "fhirUser", "offline_access"}
    assert scopes.permits("patient", "Observation", "read")
    assert scopes.permits("patient", "Observation", "search-type")
    assert not scopes.permits("patient", "Observation", "create")
    assert not scopes.permits("user", "Observation", "read")
    assert scopes.permits("user", "Patient", "read") and not scopes.permits("user", "Patient", "search-type")
    assert scopes.text == ("patient/Observation.rs patient/Condition.rs user/Patient.r "
                           "fhirUser launch/patient offline_access openid")
    assert scopes.contexts() == {"patient", "user"}


def test_granular_filters():
    lab_only = parse_scopes("patient/Observation.rs?category=" + LAB[1], TYPES)
    assert lab_only.filters("patient", "Observation", "search-type") == [(LAB,)]
    widened = parse_scopes("patient/Observation.rs?category=" + LAB[1] + " patient/Observation.r", TYPES)
    assert widened.filters("patient", "Observation", "read") is None  # an unrestricted scope covers reads
    assert widened.filters("patient", "Observation", "search-type") == [(LAB,)]


def test_refresh_can_only_shrink_and_consent_can_untick_types():
    granted = parse_scopes("patient/Observation.rs patient/Condition.rs offline_access", TYPES)
    asked = parse_scopes("patient/Observation.rs patient/Patient.rs offline_access openid", TYPES)
    assert asked.within(granted).text == "patient/Observation.rs offline_access"
    assert granted.without_types(["Condition"]).text == "patient/Observation.rs offline_access"
