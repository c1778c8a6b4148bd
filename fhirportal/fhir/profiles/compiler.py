"""A StructureDefinition's snapshot compiled into a ``Profile``: its element tree (children by element
id, slices under the element they slice, ``contentReference`` elements sharing the children of the
element they name), each element reduced to the rules the validator checks.

Whatever the snapshot says that is not checked is listed in ``Profile.unsupported`` (never dropped
silently): ElementDefinition properties outside ``CHECKED`` and ``NOT_RULES``, reference targets and
type profiles that are not among the definitions given, discriminators that cannot be compiled,
invariants fhirpathpy cannot parse. Constraints whose key does not start with ``us-core-`` are the base
specification's and out of scope (FHIR R4's own invariants are not evaluated).
"""

from __future__ import annotations

from collections.abc import Mapping

from fhirportal.fhir.profiles import invariants, slicing
from fhirportal.fhir.profiles.plan import Element, Profile, Slice, Slicing, Unsupported

SYSTEM_TYPE = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
BASE_DEFINITION = "http://hl7.org/fhir/StructureDefinition/"
OWN_INVARIANTS = "us-core-"

# ElementDefinition properties the validator checks (fixed[x] and pattern[x] too).
CHECKED = frozenset({"id", "path", "min", "max", "type", "binding", "constraint", "slicing", "sliceName",
                     "contentReference"})
# Properties that describe rather than constrain an instance (or constrain the definition's own tooling).
NOT_RULES = frozenset({
    "short", "definition", "comment", "requirements", "alias", "mapping", "base", "isModifier",
    "isModifierReason", "isSummary", "mustSupport", "condition", "representation", "example",
    "meaningWhenMissing", "orderMeaning", "extension", "label", "code",
})


class CompileError(ValueError):
    """The snapshot is not a tree the compiler understands (an element whose parent is missing)."""


def compile_profile(definition: dict, definitions: Mapping[str, dict]) -> Profile:
    """Compile ``definition`` (a StructureDefinition with a snapshot); ``definitions`` are the other
    StructureDefinitions by canonical url (reference targets and extensions are resolved in them)."""
    name = definition.get("id") or definition["url"]
    notes: list[Unsupported] = []
    by_id: dict[str, Element] = {}
    root: Element | None = None
    references: list[tuple[Element, str]] = []
    for source in definition["snapshot"]["element"]:
        element = _element(source, name, definitions, notes)
        by_id[source["id"]] = element
        if root is None:
            root = element
            continue
        parent_id, _, last = source["id"].rpartition(".")
        step, _, slice_name = last.partition(":")
        if "/" in slice_name:
            notes.append(Unsupported(source["id"], "re-slicing", "a slice of a slice is not checked"))
        elif slice_name:
            sliced = by_id.get(f"{parent_id}.{step}")
            if sliced is not None and sliced.slicing is None and sliced.choice:  # R4: implied type slicing
                sliced.slicing = Slicing((("type", "$this"),), "open", False)
            if sliced is None or sliced.slicing is None:
                raise CompileError(f"{name}: slice {source['id']} has no sliced element before it")
            sliced.slicing.slices.append(Slice(element, ()))
        else:
            parent = by_id.get(parent_id)
            if parent is None:
                raise CompileError(f"{name}: element {source['id']} has no parent {parent_id}")
            parent.children.append(element)
        if "contentReference" in source:
            references.append((element, source["contentReference"]))
    if root is None:
        raise CompileError(f"{name}: the snapshot has no elements")
    for element, reference in references:
        target = by_id.get(reference.partition("#")[2])
        if target is None:
            notes.append(Unsupported(element.id, "contentReference", f"{reference} is not in the snapshot"))
        else:
            element.children = target.children
    for element in by_id.values():
        element.index_children()
        element.plain = not (element.fixed or element.pattern or element.binding or element.targets
                             or element.invariants or element.slicing or element.children or element.choice
                             or "Extension" in element.types)
    for element in by_id.values():
        if element.slicing is not None:
            slicing.compile_tests(element, notes)
    contexts = tuple((c.get("type", ""), c.get("expression", "")) for c in definition.get("context", []))
    return Profile(definition["url"], name, definition.get("version", ""), definition["type"], root, contexts, notes)


def _element(source: dict, profile: str, definitions: Mapping[str, dict], notes: list[Unsupported]) -> Element:
    element_id = source["id"]
    for key in source:
        if key not in CHECKED and key not in NOT_RULES and not key.startswith(("fixed", "pattern")):
            notes.append(Unsupported(element_id, f"ElementDefinition.{key}", "not checked"))
    step = element_id.rpartition(".")[2] if "." in element_id else element_id
    maximum = source.get("max", "*")
    element = Element(
        id=element_id, path=source["path"], name=step.partition(":")[0], profile=profile,
        min=int(source.get("min", 0)), max=None if maximum == "*" else int(maximum),
        types=tuple(_type_code(t) for t in source.get("type", [])), slice_name=source.get("sliceName"))
    for key, value in source.items():
        if key.startswith("fixed"):
            element.fixed = (key, value)
        elif key.startswith("pattern"):
            element.pattern = (key, value)
    binding = source.get("binding") or {}
    if binding.get("strength") == "required" and binding.get("valueSet"):
        element.binding = binding["valueSet"]
    element.targets = _targets(source, definitions, notes)
    element.type_profiles = _type_profiles(source, definitions, notes)
    element.invariants = tuple(_invariants(source, notes))
    if "slicing" in source:
        rules = source["slicing"]
        element.slicing = Slicing(
            tuple((d.get("type", ""), d.get("path", "")) for d in rules.get("discriminator", [])),
            rules.get("rules", "open"), bool(rules.get("ordered", False)))
    return element


def _type_code(source: dict) -> str:
    code = source["code"]
    if code.startswith(SYSTEM_TYPE):  # id, Extension.url: FHIRPath system types naming the FHIR type
        named = next((e.get("valueUrl") or e.get("valueUri") for e in source.get("extension", [])
                      if e.get("url") == FHIR_TYPE_EXTENSION), None)
        return named or code[len(SYSTEM_TYPE):].lower()
    return code


def resource_type_of(url: str, definitions: Mapping[str, dict]) -> str | None:
    """The resource type a profile (or a base definition's canonical) constrains, if known."""
    url = url.partition("|")[0]
    if url in definitions:
        return definitions[url].get("type")
    if url.startswith(BASE_DEFINITION):
        name = url[len(BASE_DEFINITION):]
        if name[:1].isupper() and name.isalnum():
            return name
    return None


def _targets(source: dict, definitions: Mapping[str, dict], notes: list[Unsupported]) -> frozenset[str] | None:
    types, unknown = set(), []
    for type_ in source.get("type", []):
        if type_["code"] == "canonical" and type_.get("targetProfile"):
            notes.append(Unsupported(source["id"], "canonical targetProfile",
                                     f"{', '.join(type_['targetProfile'])}: a canonical url does not say its type"))
        if type_["code"] != "Reference":
            continue
        for url in type_.get("targetProfile", []):
            resource_type = resource_type_of(url, definitions)
            if resource_type is None:
                unknown.append(url)
            else:
                types.add(resource_type)
    if unknown:
        notes.append(Unsupported(source["id"], "targetProfile outside the package",
                                 f"{', '.join(unknown)}: this element's reference targets are not checked"))
        return None
    if not types or types & {"Resource", "DomainResource"}:
        return None
    return frozenset(types)


def _type_profiles(source: dict, definitions: Mapping[str, dict], notes: list[Unsupported]) -> tuple[str, ...]:
    profiles = []
    for type_ in source.get("type", []):
        for url in type_.get("profile", []):
            profiles.append(url)
            if url.partition("|")[0] in definitions:
                continue
            if type_["code"] == "Extension":
                notes.append(Unsupported(source["id"], "extension definition outside the package",
                                         f"{url}: only its url and cardinality are checked"))
            else:
                notes.append(Unsupported(source["id"], "type profile outside the package",
                                         f"{url} on {type_['code']}: its rules are not checked"))
    return tuple(profiles)


def _invariants(source: dict, notes: list[Unsupported]):
    for constraint in source.get("constraint", []):
        key = constraint.get("key", "")
        if not key.startswith(OWN_INVARIANTS) or not constraint.get("expression"):
            continue
        try:
            yield invariants.compile_invariant(constraint)
        except Exception as exc:  # fhirpathpy's parser raises its own exception types
            notes.append(Unsupported(source["id"], "invariant", f"{key}: fhirpathpy cannot compile it: {exc}"))
