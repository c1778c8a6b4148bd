"""The conformance resources the server serves from what it uses: OperationDefinitions from
``capability/operations`` and SearchParameters (FHIR R4's, ``capability/search-parameters`` and US
Core's: the published ones as published, FHIR R4's generated from the definition tables).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from fhirportal.definitions.packages import package
from fhirportal.errors import NotFound
from fhirportal.store.indexing import SearchParameter, SearchParameterRegistry

from . import us_core
from .search_params import MODIFIERS

CAPABILITY_DIR = Path(__file__).resolve().parents[2] / "capability"


def load_json_files(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def load_template() -> dict:
    return json.loads((CAPABILITY_DIR / "capability-statement.json").read_text())


def custom_search_parameters() -> list[dict]:
    """The published SearchParameters the server indexes besides FHIR R4's own: its custom ones
    (``capability/search-parameters``) and US Core's."""
    return [*load_json_files(CAPABILITY_DIR / "search-parameters"), *us_core.search_parameters()]


def operation_definitions() -> list[dict]:
    return load_json_files(CAPABILITY_DIR / "operations")


def search_parameter_id(parameter: SearchParameter) -> str:
    return parameter.url.rstrip("/").rsplit("/", 1)[-1]


# R4's search-modifier-code for the modifiers' URL forms (":of-type" is "ofType"; ":[type]" is "type").
MODIFIER_CODES = {"of-type": "ofType"}


def modifier_codes(kind: str) -> list[str]:
    """The modifiers this server supports on a parameter of type ``kind``, as SearchParameter.modifier codes."""
    if kind == "reference":
        return ["missing", "type"]
    return sorted(MODIFIER_CODES.get(m, m) for m in MODIFIERS.get(kind, ()))


def search_parameter_resource(parameters: list[SearchParameter]) -> dict:
    """A SearchParameter resource for one definition (one url may serve several base types)."""
    first = parameters[0]
    resource = {
        "resourceType": "SearchParameter",
        "id": search_parameter_id(first),
        "url": first.url,
        "name": first.code,
        "status": "active",
        "description": f"Search parameter {first.code} of {', '.join(sorted({p.base for p in parameters}))}",
        "code": first.code,
        "base": sorted({p.base for p in parameters}),
        "type": first.type,
    }
    if first.expression:
        resource["expression"] = " | ".join(sorted({p.expression for p in parameters}))
    targets = sorted({t for p in parameters for t in p.targets})
    if targets:
        resource["target"] = targets
    if modifier_codes(first.type):
        resource["modifier"] = modifier_codes(first.type)
    return resource


class ConformanceResources:
    def __init__(self, registry: SearchParameterRegistry, operations: list[dict]):
        self._operations = {d["id"]: d for d in operations}
        self._parameters: dict[str, list[SearchParameter]] = {}
        published = {p["url"]: p for p in custom_search_parameters()}
        self._published: dict[str, dict] = {}
        for resource_type in registry.resource_types:
            for parameter in registry.for_type(resource_type).values():
                self._parameters.setdefault(search_parameter_id(parameter), []).append(parameter)
                if parameter.url in published:
                    self._published[search_parameter_id(parameter)] = published[parameter.url]

    def operation_definition(self, fhir_id: str) -> dict:
        if fhir_id not in self._operations:
            raise NotFound(f"OperationDefinition/{fhir_id} is not known")
        return self._operations[fhir_id]

    def search_parameter(self, fhir_id: str) -> dict:
        if fhir_id not in self._parameters:
            raise NotFound(f"SearchParameter/{fhir_id} is not known")
        return self._published.get(fhir_id) or search_parameter_resource(self._parameters[fhir_id])

    def structure_definition(self, fhir_id: str) -> dict:
        found = self.structure_definitions_by_id.get(fhir_id)
        if found is None:
            raise NotFound(f"StructureDefinition/{fhir_id} is not known (this server holds US Core 6.1.0's)")
        return found

    @functools.cached_property
    def structure_definitions_by_id(self) -> dict[str, dict]:
        return {sd["id"]: sd for sd in package().of_type("StructureDefinition")}

    def all_of(self, resource_type: str) -> list[dict]:
        """Every OperationDefinition, SearchParameter or StructureDefinition served (for searches)."""
        if resource_type == "OperationDefinition":
            return list(self._operations.values())
        if resource_type == "SearchParameter":
            return [self.search_parameter(fhir_id) for fhir_id in sorted(self._parameters)]
        return list(self.structure_definitions_by_id.values())
