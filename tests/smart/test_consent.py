"""What the consent page offers and what a submitted consent grants (pure functions)."""

from __future__ import annotations

import pytest

from fhirportal.smart.consent import choices, granted
from fhirportal.smart.scopes import parse_scopes

TYPES = ("Patient", "Observation", "Condition", "Immunization")
LAB = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
REQUESTED = parse_scopes("launch/patient openid patient/Patient.read patient/Observation.rs patient/Condition.rs "
                         "user/Immunization.rs", TYPES)


def test_choices_tick_requested_scopes_and_offer_categories_unticked():
    offered = {c.scope: c for c in choices(REQUESTED)}
    assert offered["patient/Patient.rs"].ticked  # v1 .read shown in its v2 form
    assert offered["patient/Observation.rs"].ticked
    assert offered[LAB].detail and not offered[LAB].ticked
    assert any(s.startswith("patient/Condition.rs?category=") for s in offered)
    assert offered["launch/patient"].ticked and offered["openid"].ticked
    assert offered["patient/Observation.rs"].label == "read/search observations and results (Observation)"


def test_every_record_type_has_a_label_in_words():
    from fhirportal.fhir.resource_types import SUPPORTED_TYPES

    every = parse_scopes(" ".join(f"patient/{t}.rs" for t in SUPPORTED_TYPES), SUPPORTED_TYPES)
    labels = {c.scope.split("/")[1].split(".")[0]: c.label for c in choices(every) if not c.detail}
    assert labels["CarePlan"] == "read/search care plans (CarePlan)"
    assert labels["Task"] == "read/search forms your practice asks you to fill in (Task)"  # its forms to fill in
    assert labels["ExplanationOfBenefit"] == "read/search explanation of benefit records (ExplanationOfBenefit)"
    assert all(" " in label.split(" (")[0] for label in labels.values())


@pytest.mark.parametrize("ticked, contexts, expected", [
    (["patient/Patient.rs", "patient/Observation.rs"], {"patient"}, "patient/Patient.rs patient/Observation.rs"),
    (["patient/Patient.rs", LAB], {"patient"}, f"patient/Patient.rs {LAB}"),
    (["patient/Observation.rs", LAB], {"patient"}, "patient/Observation.rs"),  # the whole type covers the category
    (["patient/Patient.r"], {"patient"}, "patient/Patient.r"),  # fewer permissions: fine
    (["patient/Patient.cruds"], {"patient"}, ""),  # more than asked: dropped
    (["patient/Immunization.rs"], {"patient"}, ""),  # never asked for
    (["user/Immunization.rs"], {"patient"}, ""),  # a patient account cannot hold user/ scopes
    (["user/Immunization.rs"], {"user"}, "user/Immunization.rs"),
    (["nonsense", "patient/Nope.rs"], {"patient"}, ""),
])
def test_granted(ticked, contexts, expected):
    result = granted(REQUESTED, ticked, TYPES, contexts=contexts, allowed_other=set())
    assert result.text == expected


def test_other_scopes_need_to_be_requested_and_allowed():
    result = granted(REQUESTED, ["openid", "launch/patient", "offline_access"], TYPES, contexts={"patient"},
                     allowed_other={"openid", "offline_access"})
    assert result.other == frozenset({"openid"})
