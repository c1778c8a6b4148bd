"""Every US Core 6.1.0 example (Bundles aside) conforms to each profile its meta.profile names."""

from __future__ import annotations

import pytest

from fhirportal.definitions.packages import examples
from fhirportal.fhir.profiles import registry, validate
from tests.fhir.profiles.valuesets import contains


def _pairs() -> list[tuple[str, str]]:
    known = registry().definitions
    return [(name, url) for name, example in sorted(examples().items()) if example["resourceType"] != "Bundle"
            for url in example.get("meta", {}).get("profile", []) if url in known]


PAIRS = _pairs()


def test_every_example_is_covered():
    """Nothing is skipped silently: the examples left out name no profile of the package."""
    covered = {name for name, _ in PAIRS}
    left = {name: example.get("meta", {}).get("profile", []) for name, example in examples().items()
            if example["resourceType"] != "Bundle" and name not in covered}
    assert len(PAIRS) == 174
    assert left == {
        "Media-chest-xray.json": [], "Media-ekg-strip.json": [],  # US Core has no Media profile
        "Questionnaire-hunger-vital-sign-example.json": ["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"],
        "Questionnaire-phq-9-example.json": ["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"],
        "Questionnaire-prapare-example.json": ["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"],
    }


@pytest.mark.parametrize(("name", "url"), PAIRS, ids=[f"{name}-{url.rpartition('/')[2]}" for name, url in PAIRS])
def test_example_conforms(name, url):
    issues = validate(examples()[name], url, contains)
    assert [issue.diagnostics for issue in issues if issue.severity == "error"] == []


def test_warnings_of_the_examples():
    """The one warning: us-core-5's expression (``vaccineCode.coding.where(system=NDC).empty()``) says the
    opposite of its text ("SHOULD have a translation to the NDC value set"), and the example has the NDC
    code; evaluated as published, it warns."""
    warnings = {(name, issue.diagnostics) for name, url in PAIRS
                for issue in validate(examples()[name], url, contains) if issue.severity == "warning"}
    assert warnings == {("Immunization-imm-1.json", "Immunization: SHOULD have a translation to the NDC value "
                         "set (us-core-immunization: invariant us-core-5)")}
