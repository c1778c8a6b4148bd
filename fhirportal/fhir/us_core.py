"""US Core 6.1.0 as the server implements it, read from HL7's package (``definitions/packages``): its
SearchParameters (indexed like FHIR R4's own), the profiles its ``us-core-server`` CapabilityStatement
lists per type, and that statement's search expectations — so that what the server advertises is what
the package says, never a hand copy."""

from __future__ import annotations

import functools

from fhirportal.definitions.packages import package

SERVER_STATEMENT = "http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server"
EXPECTATION = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-expectation"
COMBINATION = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-parameter-combination"


def search_parameters() -> list[dict]:
    """The package's SearchParameter resources, as published."""
    return package().of_type("SearchParameter")


@functools.cache
def server_statement() -> dict:
    return package().by_url[SERVER_STATEMENT]


def _expectation(element: dict) -> str | None:
    return next((e["valueCode"] for e in element.get("extension", []) if e.get("url") == EXPECTATION), None)


@functools.cache
def _resources() -> dict[str, dict]:
    return {entry["type"]: entry for entry in server_statement()["rest"][0]["resource"]}


def profiles(resource_type: str) -> list[str]:
    """The US Core profiles of ``resource_type`` (the statement's supportedProfile), in its order."""
    return list(_resources().get(resource_type, {}).get("supportedProfile", []))


def resource_entry(resource_type: str) -> dict:
    """The statement's entry for ``resource_type`` (empty if US Core says nothing of it)."""
    return _resources().get(resource_type, {})


def search_combinations(resource_type: str) -> list[tuple[str, tuple[str, ...]]]:
    """(expectation, the parameters required together) of every combination the statement lists."""
    found = []
    for extension in resource_entry(resource_type).get("extension", []):
        if extension.get("url") != COMBINATION:
            continue
        required = tuple(e["valueString"] for e in extension["extension"] if e["url"] == "required")
        found.append((_expectation(extension) or "MAY", required))
    return found


def search_expectations(resource_type: str) -> dict[str, str]:
    """Search parameter name -> expectation (SHALL, SHOULD, MAY) for ``resource_type``."""
    return {p["name"]: _expectation(p) or "MAY" for p in resource_entry(resource_type).get("searchParam", [])}
