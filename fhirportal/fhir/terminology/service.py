"""The terminology service: what profile validation, search and the terminology operations ask.

``Terminology`` answers from the content of ``content.load`` (read on first use, then kept);
``terminology()`` is the process's one instance. Errors are the typed ones of ``fhirportal.errors``:
``NotFound`` (unknown value set or code system), ``NotSupported`` (content this server does not
hold: the message says which), ``TooCostly`` (an expansion larger than one answer may be),
``BadRequest`` (a bad argument).
"""

from __future__ import annotations

import functools
import threading
import uuid

from fhirportal.errors import BadRequest, FhirError, NotFound, NotSupported, TooCostly
from fhirportal.store import clock
from fhirportal.store.indexing.normalize import fold

from .codesystem import CodeSystem
from .content import Content, load
from .expansion import Entry, Expander, system_name

# The most codes one $expand answers with: a larger expansion is paged (count, offset) or refused.
MAX_EXPANSION = 10_000
SUMMARY_ELEMENTS = ("url", "identifier", "version", "name", "title", "status", "experimental", "date",
                    "publisher", "description")


class Terminology:
    """FHIR R4 and US Core 6.1.0 terminology, in memory. ``max_expansion``: see ``MAX_EXPANSION``."""

    def __init__(self, *, max_expansion: int = MAX_EXPANSION, loader=load):
        self.max_expansion = max_expansion
        self._loader = loader
        self._lock = threading.Lock()
        self._content: Content | None = None
        self._expander: Expander | None = None

    @property
    def content(self) -> Content:
        if self._content is None:
            with self._lock:  # one load when the first requests of several threads arrive together
                if self._content is None:
                    self._expander = Expander(content := self._loader())
                    self._content = content
        return self._content

    @property
    def expander(self) -> Expander:
        self.content  # noqa: B018 (loads it)
        return self._expander

    # ------------------------------------------------------------------ finding things
    def value_set(self, url: str) -> dict:
        """The ValueSet of a canonical url (``url`` or ``url|version``); ``NotFound`` if unknown."""
        base, _, version = url.partition("|")
        value_set = self.content.value_sets.get(base)
        if value_set is None:
            raise NotFound(f"ValueSet {base} is not known to this server (it holds the FHIR R4 and US Core 6.1.0 "
                           f"value sets)", expression="url")
        if version and version != value_set.get("version"):
            raise NotFound(f"ValueSet {base} version {version} is not known to this server (it holds version "
                           f"{value_set.get('version')})", expression="url")
        return value_set

    def code_system(self, system: str, version: str | None = None) -> CodeSystem:
        """The CodeSystem of a url; ``NotFound`` if unknown (or of another version)."""
        found = self.content.code_systems.get(system)
        if found is None:
            raise NotFound(f"CodeSystem {system_name(system)} is not known to this server", expression="system")
        if version and found.version and version != found.version:
            raise NotFound(f"CodeSystem {system} version {version} is not known to this server (it holds version "
                           f"{found.version})", expression="version")
        return found

    def _with_content(self, system: str, version: str | None = None) -> CodeSystem:
        code_system = self.code_system(system, version)
        if code_system.content not in ("complete", "fragment", "example"):
            raise NotSupported(f"This server does not hold the concepts of {system_name(system)} (CodeSystem "
                               f"content: {code_system.content})")
        return code_system

    def resource(self, resource_type: str, fhir_id: str) -> dict | None:
        return self.content.by_id.get((resource_type, fhir_id))

    def resources(self, resource_type: str) -> list[dict]:
        return self.content.by_type.get(resource_type, [])

    # ------------------------------------------------------------------ value sets
    def entries(self, url: str) -> tuple[Entry, ...]:
        """Every code of the value set ``url``, abstract ones included (``NotSupported`` when the
        value set needs content this server does not hold)."""
        return self.expander.expansion(self.value_set(url))

    def expand(self, url: str, *, filter: str | None = None, count: int | None = None,
               offset: int | None = None) -> dict:
        """The value set with an ``expansion``: its codes whose code or display has every word of
        ``filter`` (case- and accent-insensitive), from ``offset`` (0), at most ``count``."""
        value_set = self.value_set(url)
        if count is not None and not 0 <= count <= self.max_expansion:
            raise BadRequest(f"count must be between 0 and {self.max_expansion}", expression="count")
        if offset is not None and offset < 0:
            raise BadRequest("offset must not be negative", expression="offset")
        entries = self.expander.expansion(value_set)
        if filter:
            words = fold(filter).split()
            entries = tuple(e for e in entries if _has_words(e, words))
        start = offset or 0
        if count is None and len(entries) - start > self.max_expansion:
            raise TooCostly(f"ValueSet {value_set['url']} expands to {len(entries)} codes; this server answers with "
                            f"at most {self.max_expansion} at once: ask for pages with count and offset")
        page = entries[start:] if count is None else entries[start:start + count]
        parameters = [{"name": "filter", "valueString": filter}] if filter else []
        if count is not None:
            parameters.append({"name": "count", "valueInteger": count})
        if offset is not None:
            parameters.append({"name": "offset", "valueInteger": offset})
        expansion = {"identifier": f"urn:uuid:{uuid.uuid4()}", "timestamp": clock.as_instant(clock.now()),
                     "total": len(entries), "offset": start}
        if parameters:
            expansion["parameter"] = parameters
        if page:
            expansion["contains"] = [e.to_fhir() for e in page]
        summary = {k: value_set[k] for k in SUMMARY_ELEMENTS if k in value_set}
        return {"resourceType": "ValueSet", "id": value_set["id"], **summary, "expansion": expansion}

    def contains(self, valueset_url: str, system: str, code: str) -> bool | None:
        """Is (system, code) a selectable code of the value set? None: this server cannot tell (an
        unknown value set, or one over content it does not hold that does not list the code)."""
        value_set = self.content.value_sets.get(valueset_url.partition("|")[0])
        if value_set is None:
            return None
        return self.expander.member(value_set, system, code)

    def in_expansion(self, url: str, system: str | None, code: str | None) -> bool | None:
        """Is (system, code) a selectable code of the expansion of the value set ``url`` (``url|version``)?
        None: this server cannot expand it (an unknown value set or version, content it does not hold)."""
        try:
            entries = self.entries(url)
        except FhirError:  # NotFound, NotSupported: the answer cannot be checked here
            return None
        return any(e.system == system and e.code == code and not e.abstract for e in entries)

    def validate_code(self, *, url: str | None = None, system: str | None = None, code: str,
                      display: str | None = None) -> tuple[bool, str]:
        """(True, the concept's display) or (False, why not) for a code in the value set ``url``, or
        else in the code system ``system``; a ``display`` must be the concept's display or one of its
        designations. ``NotSupported`` when this server cannot tell."""
        if not code:
            raise BadRequest("A code is needed", expression="code")
        if not system:
            raise BadRequest("The code needs its system", expression="system")
        listed = None
        if url is not None:
            value_set = self.value_set(url)
            member = self.expander.member(value_set, system, code)
            if member is None:
                self.entries(url)  # raises NotSupported with the reason
                raise NotSupported(f"This server cannot tell whether {system}|{code} is in ValueSet {url}")
            if not member:
                return False, f"The code {system}|{code} is not in the value set {value_set['url']}"
            listed = _listed_display(value_set, system, code)
        code_system = self.content.code_systems.get(system)
        if url is not None and (code_system is None or not code_system.complete):
            return True, listed or code  # the value set lists the code: nothing more to check here
        code_system = self._with_content(system)
        try:
            concept = self._concept(code_system, code)
        except NotFound as unknown:
            return False, unknown.message
        if display is not None and not _known_display(concept, display):
            return False, (f"The display '{display}' is not a display of {system}|{code} (the display is "
                           f"'{concept.get('display', '')}')")
        return True, concept.get("display") or code

    # ------------------------------------------------------------------ code systems
    def lookup(self, system: str, code: str, version: str | None = None,
               properties: list[str] | None = None) -> dict:
        """``$lookup``'s Parameters: name, version, display, designations and properties (all of them,
        or those named in ``properties``; ``parent`` and ``child`` give the hierarchy)."""
        code_system = self._with_content(system, version)
        concept = self._concept(code_system, code)
        parameters = [{"name": "name", "valueString": code_system.name}]
        if code_system.version:
            parameters.append({"name": "version", "valueString": code_system.version})
        parameters.append({"name": "display", "valueString": concept.get("display") or code})
        for designation in concept.get("designation", []):
            parts = [{"name": "value", "valueString": designation.get("value", "")}]
            if designation.get("language"):
                parts.insert(0, {"name": "language", "valueCode": designation["language"]})
            if designation.get("use"):
                parts.insert(len(parts) - 1, {"name": "use", "valueCoding": designation["use"]})
            parameters.append({"name": "designation", "part": parts})
        found = [("definition", "valueString", concept["definition"])] if concept.get("definition") else []
        found += list(code_system.properties(code))
        for name, key, value in found:
            if properties and name not in properties:
                continue
            parameters.append({"name": "property", "part": [{"name": "code", "valueCode": name},
                                                            {"name": "value", key: value}]})
        return {"resourceType": "Parameters", "parameter": parameters}

    def subsumes(self, system: str, code_a: str, code_b: str) -> str:
        """"equivalent" | "subsumes" (a is above b) | "subsumed-by" | "not-subsumed"."""
        code_system = self._hierarchy(system, code_a, "codeA")
        self._hierarchy(system, code_b, "codeB")
        return code_system.subsumes(code_a, code_b)

    def descendants(self, system: str, code: str) -> frozenset[str]:
        """The codes below ``code`` in its code system (not ``code`` itself)."""
        return self._hierarchy(system, code).descendants(code)

    def ancestors(self, system: str, code: str) -> frozenset[str]:
        """The codes above ``code`` in its code system (not ``code`` itself)."""
        return self._hierarchy(system, code).ancestors(code)

    def _hierarchy(self, system: str, code: str, name: str = "code") -> CodeSystem:
        code_system = self._with_content(system)
        self._concept(code_system, code, name)
        return code_system

    @staticmethod
    def _concept(code_system: CodeSystem, code: str, name: str = "code") -> dict:
        """The concept of ``code``: ``NotFound`` if the code system has no such code, ``NotSupported``
        if this server holds only part of the code system (an example or a fragment) and not it."""
        concept = code_system.concept(code)
        if concept is None:
            if not code_system.complete:
                raise NotSupported(f"This server holds only {code_system.content} content of {code_system.url}, "
                                   f"which does not list the code '{code}'")
            raise NotFound(f"The code '{code}' is not in the code system {code_system.url}", expression=name)
        return concept


def _has_words(entry: Entry, words: list[str]) -> bool:
    text = fold(f"{entry.code} {entry.display or ''}")
    return all(word in text for word in words)


def _listed_display(value_set: dict, system: str, code: str) -> str | None:
    for component in value_set.get("compose", {}).get("include", []):
        if component.get("system") == system:
            for concept in component.get("concept", []):
                if concept.get("code") == code and concept.get("display"):
                    return concept["display"]
    return None


def _known_display(concept: dict, display: str) -> bool:
    wanted = fold(display)
    known = [concept.get("display") or ""] + [d.get("value", "") for d in concept.get("designation", [])]
    return any(fold(text) == wanted for text in known)


@functools.cache
def terminology() -> Terminology:
    """The process's terminology (its content is read on first use)."""
    return Terminology()
