"""The terminology content the server holds, read once: FHIR R4's CodeSystems, ValueSets and
ConceptMaps (``fhirportal/definitions/terminology.json.gz``, from ``tools/build_terminology.py``)
and US Core 6.1.0's CodeSystems and ValueSets (``fhirportal.definitions.packages``).

Canonical urls are unique across both. Resource ids are unique per type: US Core's
``CodeSystem/condition-category`` meets R4's of the same id, so a package resource whose id is taken
is served as ``<package short name>-<id>`` (``us-core-condition-category``); its url stays its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhirportal import definitions
from fhirportal.definitions import packages

from .codesystem import CodeSystem

TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
PACKAGE_TYPES = ("CodeSystem", "ValueSet")  # what the implementation guides add
PACKAGES = {packages.US_CORE: "us-core"}  # package -> the prefix of an id it would share with R4
DROPPED_ELEMENTS = ("text", "meta")


@dataclass
class Content:
    """The conformance resources by type (in url order), by (type, id) and by url."""

    by_type: dict[str, list[dict]] = field(default_factory=lambda: {t: [] for t in TYPES})
    by_id: dict[tuple[str, str], dict] = field(default_factory=dict)
    value_sets: dict[str, dict] = field(default_factory=dict)
    code_systems: dict[str, CodeSystem] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # url -> where it came from

    def add(self, resource: dict, source: str, id_prefix: str | None = None) -> None:
        kind, url = resource["resourceType"], resource["url"]
        if url in self.sources:
            raise ValueError(f"{kind} {url} from {source} is already loaded from {self.sources[url]}")
        if (kind, resource["id"]) in self.by_id:
            if id_prefix is None:
                raise ValueError(f"{kind}/{resource['id']} from {source} is already taken")
            resource = {**resource, "id": f"{id_prefix}-{resource['id']}"}
            if (kind, resource["id"]) in self.by_id:
                raise ValueError(f"{kind}/{resource['id']} from {source} is already taken")
        self.sources[url] = source
        self.by_type[kind].append(resource)
        self.by_id[(kind, resource["id"])] = resource
        if kind == "ValueSet":
            self.value_sets[url] = resource
        elif kind == "CodeSystem":
            self.code_systems[url] = CodeSystem(resource)


def load() -> Content:
    content = Content()
    table = definitions.load("terminology")
    for kind in TYPES:
        for resource in table[kind]:
            content.add(resource, "FHIR R4 4.0.1")
    for name, prefix in PACKAGES.items():
        package = packages.package(name)
        source = f"{package.name} {package.version}"
        for kind in PACKAGE_TYPES:
            for resource in sorted(package.of_type(kind), key=lambda r: r["url"]):
                content.add({k: v for k, v in resource.items() if k not in DROPPED_ELEMENTS}, source, prefix)
    return content
