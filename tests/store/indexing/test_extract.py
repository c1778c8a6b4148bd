"""Index extraction skips a parameter whose starting elements a resource lacks; that never loses a row."""

from __future__ import annotations

from fhirportal.fhir.resource_types import SUPPORTED_TYPES
from fhirportal.store.indexing import IndexExtractor, SearchParameterRegistry
from fhirportal.store.indexing.paths import compile_simple, element_roots
from fixtures.generate import demo_bundles


class EveryParameter(IndexExtractor):
    """The same extraction, evaluating every parameter on every resource."""

    def _plan(self, resource_type):
        return tuple((parameter, None) for parameter, _roots in super()._plan(resource_type))


def _sorted(rows_by_kind):
    return {kind: sorted(map(repr, rows)) for kind, rows in rows_by_kind.items() if rows}


def test_skipping_parameters_by_their_roots_changes_no_rows_on_the_demo_data():
    registry = SearchParameterRegistry(SUPPORTED_TYPES)
    fast, full = IndexExtractor(registry, "http://base/fhir"), EveryParameter(registry, "http://base/fhir")
    checked = 0
    for _, bundle in demo_bundles():
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert _sorted(fast.extract(resource)) == _sorted(full.extract(resource)), resource["id"]
            checked += 1
    assert checked > 500


def test_roots_name_the_first_element_of_each_path_for_each_type():
    evaluate = compile_simple("(Observation.value as Quantity) | Condition.onset.as(Age) | Observation.code")
    assert evaluate.roots == {"Observation": frozenset({"value", "code"}), "Condition": frozenset({"onset"})}
    assert element_roots({"resourceType": "Observation", "valueQuantity": {}, "effectiveDateTime": "2024"}) == {
        "resourceType", "resource", "valueQuantity", "value", "effectiveDateTime", "effective"}
