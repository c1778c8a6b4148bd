"""Reading and searching the terminology resources (CodeSystem, ValueSet, ConceptMap) the server
holds in memory: ``GET [type]/{id}`` and ``GET [type]?url=&name=&status=&version=&_id=``.

Search semantics are FHIR's for the parameters' types: ``url`` a uri (exact; ``:below`` a prefix),
``name`` a string (starts with, case- and accent-insensitive; ``:exact``, ``:contains``),
``status``, ``version`` and ``_id`` tokens (exact; ``:not``). Comma = OR, repetition = AND. Unknown
parameters are a 400, or ignored (and left out of the self link) under ``handling=lenient`` (the
``Prefer`` header, else the server's ``FHIRPORTAL_SEARCH_HANDLING``), as for the stored types.
"""

from __future__ import annotations

from fhirportal.errors import BadRequest, NotFound

from .. import conformance_search
from . import terminology

TERMINOLOGY_TYPES = ("CodeSystem", "ConceptMap", "ValueSet")
SEARCH_PARAMETERS = conformance_search.SEARCH_PARAMETERS  # what the CapabilityStatement lists for them
SEARCH_PARAMETER_URLS = conformance_search.SEARCH_PARAMETER_URLS


def read(resource_type: str, fhir_id: str) -> dict:
    found = terminology().resource(resource_type, fhir_id)
    if found is None:
        raise NotFound(f"{resource_type}/{fhir_id} is not known (this server holds the FHIR R4 and US Core 6.1.0 "
                       f"terminology resources)")
    return found


def canonical_of(resource_type: str, fhir_id: str | None, given: str | None, name: str = "url") -> str | None:
    """The canonical an operation works on: the url of ``{resource_type}/{fhir_id}`` at instance level
    (a ``given`` one must then agree), else ``given``."""
    if fhir_id is None:
        return given
    url = read(resource_type, fhir_id)["url"]
    if given and given.partition("|")[0] != url:
        raise BadRequest(f"{resource_type}/{fhir_id} is {url}, not {given}", expression=name)
    return url


def search(resource_type: str, params: list[tuple[str, str]], base_url: str, count: int, *, strict: bool) -> dict:
    """A searchset Bundle of the matching terminology resources (``conformance_search.search``)."""
    return conformance_search.search(terminology().resources(resource_type), resource_type, params, base_url, count,
                                     strict=strict)
