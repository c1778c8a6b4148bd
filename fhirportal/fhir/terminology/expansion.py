"""Value set expansion from ``compose`` (or a published ``expansion``), and membership of one code.

An expansion needs the content of every code system it takes codes from by filter or whole; an
enumerated ``concept`` list needs none (its displays come from the code system when this server has
it). A value set that needs content the server does not hold (SNOMED CT, LOINC, RxNorm, a value set
it does not know) cannot be expanded: ``NotSupported`` says which part and why. Membership of one
code (``Expander.member``) still answers where the value set's definition decides without that
content (a code enumerated in the value set, or of a system no part of it includes), and is None
("cannot tell here") otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhirportal.errors import NotSupported

from .codesystem import CodeSystem
from .content import Content

# Well-known systems this server holds no content of, named in the reasons it gives.
KNOWN_SYSTEMS = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://unitsofmeasure.org": "UCUM (a grammar, not a list)",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://hl7.org/fhir/sid/icd-9-cm": "ICD-9-CM",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "urn:ietf:bcp:47": "BCP 47 language tags (a grammar, not a list)",
    "urn:iso:std:iso:3166": "ISO 3166 country codes",
    "http://nucc.org/provider-taxonomy": "the NUCC provider taxonomy",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One code of an expansion."""

    system: str
    code: str
    display: str | None = None
    version: str | None = None
    abstract: bool = False
    inactive: bool = False

    def to_fhir(self) -> dict:
        item = {"system": self.system}
        if self.version:
            item["version"] = self.version
        item["code"] = self.code
        if self.display:
            item["display"] = self.display
        if self.abstract:
            item["abstract"] = True
        if self.inactive:
            item["inactive"] = True
        return item


def system_name(url: str) -> str:
    return f"{KNOWN_SYSTEMS[url]} ({url})" if url in KNOWN_SYSTEMS else url


def _strip_version(canonical: str) -> str:
    return canonical.split("|", 1)[0]


class Expander:
    """Expands the value sets of ``content`` (each once: the results are cached)."""

    def __init__(self, content: Content):
        self.content = content
        self._expansions: dict[str, tuple[Entry, ...]] = {}
        self._refusals: dict[str, str] = {}  # why a value set cannot be expanded here

    # ------------------------------------------------------------------ expansion
    def expansion(self, value_set: dict, stack: tuple[str, ...] = ()) -> tuple[Entry, ...]:
        """Every code of ``value_set`` (deduplicated, in definition order); ``NotSupported`` when it
        needs content this server does not hold."""
        url = value_set.get("url", "")
        if url in self._expansions:
            return self._expansions[url]
        if url in self._refusals:
            raise NotSupported(self._refusals[url])
        try:
            result = self._expand(value_set, url, stack)
        except NotSupported as refusal:
            if not stack:  # a refusal inside another expansion may depend on the path taken to it
                self._refusals[url] = refusal.message
            raise
        self._expansions[url] = result
        return result

    def _expand(self, value_set: dict, url: str, stack: tuple[str, ...]) -> tuple[Entry, ...]:
        if url in stack:
            raise NotSupported(f"ValueSet {url} includes itself (through {' -> '.join(stack)})")
        compose = value_set.get("compose")
        if compose:
            entries = self._compose(value_set, compose, stack + (url,))
        elif value_set.get("expansion", {}).get("contains") is not None:
            entries = list(_flatten(value_set["expansion"]["contains"]))
        else:
            raise NotSupported(f"ValueSet {url} has neither a compose nor an expansion")
        return tuple(_unique(entries))

    def _compose(self, value_set: dict, compose: dict, stack: tuple[str, ...]) -> list[Entry]:
        entries: list[Entry] = []
        for component in compose.get("include", []):
            entries.extend(self._component(value_set, component, stack))
        excluded: set[tuple[str, str]] = set()
        for component in compose.get("exclude", []):
            excluded.update((e.system, e.code) for e in self._component(value_set, component, stack))
        return [e for e in entries if (e.system, e.code) not in excluded]

    def _component(self, value_set: dict, component: dict, stack: tuple[str, ...]) -> list[Entry]:
        """The codes one include (or exclude) selects: its system part intersected with every value set
        it names."""
        parts: list[list[Entry]] = []
        system = component.get("system")
        if system:
            parts.append(self._system_part(value_set, component, system))
        for canonical in component.get("valueSet", []):
            imported = self.content.value_sets.get(_strip_version(canonical))
            if imported is None:
                raise NotSupported(f"ValueSet {value_set.get('url')} includes the value set {canonical}, which this "
                                   f"server does not hold")
            parts.append(list(self.expansion(imported, stack)))
        if not parts:
            return []
        result = parts[0]
        for other in parts[1:]:
            keep = {(e.system, e.code) for e in other}
            result = [e for e in result if (e.system, e.code) in keep]
        return result

    def _system_part(self, value_set: dict, component: dict, system: str) -> list[Entry]:
        code_system = self.content.code_systems.get(system)
        version = component.get("version") or (code_system.version if code_system else None)
        if component.get("concept"):
            entries = []
            for concept in component["concept"]:
                code = concept.get("code")
                if code_system is not None and code_system.complete and code_system.concept(code) is None:
                    continue  # not a code of that system
                display = concept.get("display") or (code_system.display(code) if code_system else None)
                entries.append(self._entry(code_system, system, version, code, display))
            return entries
        if code_system is None or not code_system.complete:
            what = "filters on" if component.get("filter") else "includes all of"
            held = "whose concepts this server does not hold"
            if code_system is not None and code_system.content != "not-present":
                held = f"of which this server holds only {code_system.content} content"
            raise NotSupported(f"ValueSet {value_set.get('url')} {what} {system_name(system)}, {held}")
        codes = None
        for condition in component.get("filter", []):
            selected = code_system.filter(condition.get("property", ""), condition.get("op", ""),
                                          str(condition.get("value", "")))
            codes = selected if codes is None else codes & selected
        ordered = code_system.order if codes is None else [c for c in code_system.order if c in codes]
        return [self._entry(code_system, system, version, code, code_system.display(code)) for code in ordered]

    @staticmethod
    def _entry(code_system: CodeSystem | None, system: str, version: str | None, code: str,
               display: str | None) -> Entry:
        if code_system is None:
            return Entry(system, code, display, version)
        return Entry(system, code, display, version, code_system.is_abstract(code), code_system.is_inactive(code))

    # ------------------------------------------------------------------ membership
    def member(self, value_set: dict, system: str, code: str, stack: tuple[str, ...] = ()) -> bool | None:
        """Is (system, code) a selectable code of ``value_set``? None: this server cannot tell."""
        try:
            entries = self.expansion(value_set)
        except NotSupported:
            return self._member_by_definition(value_set, system, code, stack)
        return any(e.system == system and e.code == code and not e.abstract for e in entries)

    def _member_by_definition(self, value_set: dict, system: str, code: str, stack: tuple[str, ...]) -> bool | None:
        url = value_set.get("url", "")
        compose = value_set.get("compose")
        if url in stack or not compose:
            return None
        stack = stack + (url,)
        included = _any(self._component_has(c, system, code, stack) for c in compose.get("include", []))
        if included is False:
            return False
        excluded = _any(self._component_has(c, system, code, stack) for c in compose.get("exclude", []))
        if excluded is True:
            return False
        return None if included is None or excluded is None else True

    def _component_has(self, component: dict, system: str, code: str, stack: tuple[str, ...]) -> bool | None:
        answers: list[bool | None] = []
        if component.get("system"):
            if component["system"] != system:
                return False
            code_system = self.content.code_systems.get(system)
            local = code_system is not None and code_system.complete
            if component.get("concept"):
                listed = any(c.get("code") == code for c in component["concept"])
                answers.append(listed and not (local and (code_system.concept(code) is None
                                                           or code_system.is_abstract(code))))
            elif not local:
                answers.append(None)
            else:
                try:
                    answers.append(any(e.code == code and not e.abstract
                                       for e in self._system_part({}, component, system)))
                except NotSupported:
                    answers.append(None)
        for canonical in component.get("valueSet", []):
            imported = self.content.value_sets.get(_strip_version(canonical))
            answers.append(None if imported is None else self.member(imported, system, code, stack))
        return _all(answers)


def _any(answers) -> bool | None:
    """Three-valued OR: True if any is True, False if all are False, else None."""
    unknown = False
    for answer in answers:
        if answer is True:
            return True
        unknown = unknown or answer is None
    return None if unknown else False


def _all(answers: list[bool | None]) -> bool | None:
    """Three-valued AND (of at least one answer)."""
    if not answers or any(a is False for a in answers):
        return False
    return None if any(a is None for a in answers) else True


def _flatten(contains: list[dict]):
    for item in contains:
        if item.get("code") and item.get("system"):
            yield Entry(item["system"], item["code"], item.get("display"), item.get("version"),
                        bool(item.get("abstract")), bool(item.get("inactive")))
        yield from _flatten(item.get("contains", []))


def _unique(entries):
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        key = (entry.system, entry.code)
        if key not in seen:
            seen.add(key)
            yield entry
