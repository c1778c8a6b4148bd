"""The profiles the server knows (the StructureDefinitions of the loaded packages, by canonical url),
each compiled once per process on first use, and ``validate``: the issues of a resource against one of
them."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable

from fhirportal.definitions.packages import US_CORE, package
from fhirportal.errors import BadRequest, Issue
from fhirportal.fhir.profiles import invariants
from fhirportal.fhir.profiles.compiler import compile_profile
from fhirportal.fhir.profiles.issues import problem
from fhirportal.fhir.profiles.plan import Contains, Profile
from fhirportal.fhir.profiles.walker import Run, walk


class UnknownProfile(BadRequest):
    """A profile url that is not among the loaded StructureDefinitions."""

    code = "not-supported"

    def __init__(self, url: str):
        super().__init__(f"Profile {url} is not known to this server", expression="meta.profile")
        self.url = url


def cannot_tell(valueset: str, system: str | None, code: str) -> bool | None:
    """A ``contains`` that never knows: required bindings are then not checked."""
    return None


class ProfileRegistry:
    """StructureDefinitions with a snapshot, by canonical url; ``profile(url)`` compiles one
    the first time it is asked for (thread-safe) and keeps it for the life of the process."""

    def __init__(self, definitions: Iterable[dict]):
        self.definitions = {d["url"]: d for d in definitions
                            if d.get("resourceType") == "StructureDefinition" and d.get("snapshot")}
        self._compiled: dict[str, Profile] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_packages(cls, *names: str) -> ProfileRegistry:
        """The registry of the named packages (default: US Core 6.1.0)."""
        return cls(d for name in names or (US_CORE,) for d in package(name).of_type("StructureDefinition"))

    def urls(self) -> list[str]:
        return sorted(self.definitions)

    def profile(self, url: str) -> Profile:
        """The compiled profile of ``url`` (``url|version`` accepted when the version is the loaded one)."""
        compiled = self._compiled.get(url)
        if compiled is not None:
            return compiled
        canonical, _, version = url.partition("|")
        definition = self.definitions.get(canonical)
        if definition is None or (version and version != definition.get("version")):
            raise UnknownProfile(url)
        with self._lock:
            compiled = self._compiled.get(canonical)
            if compiled is None:
                compiled = self._compiled[canonical] = compile_profile(definition, self.definitions)
            self._compiled[url] = compiled
        return compiled

    def extension(self, url: str) -> Profile | None:
        """The compiled definition of an extension url, if one is loaded."""
        definition = self.definitions.get(url)
        return self.profile(url) if definition is not None and definition.get("type") == "Extension" else None

    def validate(self, resource: dict, profile_url: str, contains: Contains = cannot_tell) -> list[Issue]:
        """The problems of ``resource`` against the profile ``profile_url`` (errors and warnings; an empty
        list when it conforms). Raises ``UnknownProfile`` for a url that is not loaded."""
        profile = self.profile(profile_url)
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if resource_type != profile.type:
            return [problem(str(resource_type), f"is not a {profile.type}", profile.name,
                            f"the profile constrains {profile.type}", code="structure")]
        run = Run(resource, profile.root, contains, self.extension)
        try:
            run.issues.extend(invariants.check(profile.root, resource, resource_type, resource_type))
            walk(run, profile.root, resource, resource_type, resource_type)
        except RecursionError:
            return [problem(resource_type, "is nested too deeply to be validated", profile.name,
                            "the validator's depth", code="too-costly")]
        return list(dict.fromkeys(run.issues))


@functools.cache
def registry() -> ProfileRegistry:
    """The process's registry of the packages the server loads."""
    return ProfileRegistry.from_packages()


def validate(resource: dict, profile_url: str, contains: Contains = cannot_tell) -> list[Issue]:
    """``resource``'s problems against ``profile_url`` in the process's registry (see ``ProfileRegistry``)."""
    return registry().validate(resource, profile_url, contains)
