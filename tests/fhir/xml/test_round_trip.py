"""JSON → XML → JSON gives back the same resource: every resource of the demo practice (its JSON text,
decimals as written) and every US Core 6.1.0 example; also as whole Bundles and pretty-printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fhirportal.definitions.packages import examples
from fhirportal.fhir import jsontext, xml

DEMO = sorted((Path(__file__).resolve().parents[3] / "fixtures" / "demo").glob("*.json"))


def _demo_bundles() -> list[dict]:
    return [jsontext.loads(path.read_text(encoding="utf-8")) for path in DEMO]


def _round_trip(resource, pretty: bool = False):
    return xml.read(xml.write(resource, pretty).encode(), keep_decimal_text=True)


def _text(document) -> str:
    """JSON text with the keys sorted (XML fixes the element order, JSON does not) and numbers as written."""
    def ordered(node):
        if isinstance(node, dict):
            return {key: ordered(node[key]) for key in sorted(node)}
        return [ordered(item) for item in node] if isinstance(node, list) else node
    return jsontext.dumps(ordered(document))


def test_every_demo_resource_round_trips_to_the_same_json_text():
    resources = [entry["resource"] for bundle in _demo_bundles() for entry in bundle["entry"]]
    assert len(resources) > 1000  # the whole demo practice
    changed = [f"{r['resourceType']}/{r.get('id')}" for r in resources
               if _text(_round_trip(r)) != _text(r)]
    assert changed == []


def test_demo_data_holds_what_the_conversion_must_keep():
    """The demo practice exercises decimals, narratives, extensions and choice types (else the test above
    would prove less than it seems)."""
    text = "".join(path.read_text(encoding="utf-8") for path in DEMO)
    for needle in ('"div"', '"valueQuantity"', '"extension"', '"effectiveDateTime"'):
        assert needle in text, needle
    assert re.search(r'"value": \d+\.0[,}]', text)  # decimals whose text a float would not keep in general


@pytest.mark.parametrize("pretty", [False, True])
def test_the_demo_bundles_round_trip_whole(pretty):
    for bundle in _demo_bundles():
        assert _text(_round_trip(bundle, pretty)) == _text(bundle)


def test_every_us_core_example_round_trips():
    found = examples()
    assert len(found) >= 180
    changed = [name for name, resource in found.items() if xml.read(xml.write(resource).encode()) != resource]
    assert changed == []
