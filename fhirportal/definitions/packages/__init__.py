"""FHIR NPM packages the server reads its implementation-guide content from, as published (the
``.tgz`` files beside this module; never hand-copied):

- ``hl7.fhir.us.core-6.1.0.tgz``: US Core 6.1.0 — StructureDefinitions (with snapshots),
  SearchParameters, the ``us-core-server`` CapabilityStatement, ValueSets, CodeSystems, examples.

``package(name)`` opens one (cached, read once per process): its conformance resources by type and
by canonical url; ``examples(name)`` its example resources by file name. Treat what they return as
read-only.
"""

from __future__ import annotations

import functools
import json
import tarfile
from dataclasses import dataclass, field
from importlib import resources

US_CORE = "hl7.fhir.us.core-6.1.0"


@dataclass
class Package:
    name: str
    version: str
    canonical: str
    resources: list[dict] = field(default_factory=list)  # the package's conformance resources

    def of_type(self, resource_type: str) -> list[dict]:
        return [r for r in self.resources if r.get("resourceType") == resource_type]

    @functools.cached_property
    def by_url(self) -> dict[str, dict]:
        return {r["url"]: r for r in self.resources if "url" in r}


def _read(name: str, wanted) -> dict[str, dict]:
    """The JSON files of the package ``name`` whose path (within ``package/``) ``wanted`` accepts."""
    found: dict[str, dict] = {}
    with resources.files(__name__).joinpath(f"{name}.tgz").open("rb") as raw, \
            tarfile.open(fileobj=raw, mode="r:gz") as archive:
        for member in archive:
            path = member.name.split("/")
            if member.isfile() and member.name.endswith(".json") and path[0] == "package" and wanted(path[1:]):
                found["/".join(path[1:])] = json.load(archive.extractfile(member))
    return found


@functools.cache
def package(name: str = US_CORE) -> Package:
    """The package ``name`` (its file name without ``.tgz``): its manifest and conformance resources
    (the files at its top level; not the ImplementationGuide)."""
    files = _read(name, lambda path: len(path) == 1 and not path[0].startswith(("ImplementationGuide-", ".")))
    manifest = files.pop("package.json")
    return Package(manifest["name"], manifest["version"], manifest.get("canonical", ""),
                   [content for content in files.values() if "resourceType" in content])


@functools.cache
def examples(name: str = US_CORE) -> dict[str, dict]:
    """The package's example resources by file name (e.g. ``Patient-example.json``)."""
    return {path.split("/")[1]: content for path, content in
            _read(name, lambda path: len(path) == 2 and path[0] == "example").items()}
