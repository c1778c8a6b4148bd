"""Must-support coverage of a profile: which of its must-support elements a set of resources claiming it
never fills.

A profile's must-support elements are the snapshot elements flagged ``mustSupport: true`` and those US Core
flags as additional USCDI requirements (the ``uscdi-requirement`` extension), backbone children and slices
included. Each becomes one or more ``Requirement``:

- a choice element whose types carry the ``elementdefinition-type-must-support`` flag needs each flagged
  type somewhere (``Observation.value[x]`` as Quantity, CodeableConcept and string); one without such flags
  is met by any of its types;
- a Reference whose target profiles carry the flag needs a reference to each flagged target's resource type
  somewhere (``CareTeam.participant.member`` to a Practitioner, a PractitionerRole and a RelatedPerson);
- a slice is met only by values the slice's discriminator accepts: ``value`` and ``pattern`` discriminators
  by the slice's fixed or pattern value (or, for a required binding, the codes of the value set as far as the
  package defines it: a value set outside the package accepts every code), ``type`` ones by the choice type.

An element counts as present when it has a value: an element that carries only a data-absent-reason
extension does not count (what Inferno's US Core kit calls "a Data Absent Reason does not count").

Two rules of US Core's own are applied (as the US Core test kit reads them): the ``component`` elements a
vital-sign profile inherits from the US Core Vital Signs profile are there for the panels (blood pressure, pulse
oximetry), which slice them, so a vital-sign profile that defines no component slices does not require
components; and a panel whose component slices are required (blood pressure: systolic and diastolic) carries
its values there, so its own ``value[x]`` is not required.

``missing(profile, resources)`` lists what no resource provides; ``requirements(profile)`` lists everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fhirportal.definitions.packages import package

TYPE_MUST_SUPPORT = "http://hl7.org/fhir/StructureDefinition/elementdefinition-type-must-support"
USCDI_REQUIREMENT = "http://hl7.org/fhir/us/core/StructureDefinition/uscdi-requirement"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
VITAL_SIGNS = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs"
BASE_PROFILE = "http://hl7.org/fhir/StructureDefinition/"


@dataclass(frozen=True)
class Requirement:
    element: str                # element id, e.g. "Observation.component:systolic.value[x].code"
    type: str | None = None     # the type alternative a choice element must show (e.g. "Quantity")
    target: str | None = None   # the resource type a Reference must point at (e.g. "Practitioner")

    def __str__(self) -> str:
        return self.element + (f" ({self.type})" if self.type else "") + (f" -> {self.target}" if self.target else "")


def _flagged(extensions) -> bool:
    return any(e.get("url") == TYPE_MUST_SUPPORT and e.get("valueBoolean") for e in extensions or [])


def is_must_support(element: dict) -> bool:
    return bool(element.get("mustSupport")) or any(
        e.get("url") == USCDI_REQUIREMENT and e.get("valueBoolean") for e in element.get("extension", []))


def _target_type(profile_url: str) -> str:
    if profile_url.startswith(BASE_PROFILE):
        return profile_url[len(BASE_PROFILE):]
    return package().by_url[profile_url]["type"]


def _element_requirements(element: dict) -> list[Requirement]:
    found = []
    for kind in element.get("type", []):
        type_flagged = _flagged(kind.get("extension"))
        targets = [_target_type(url) for url, meta in zip(kind.get("targetProfile", []),
                                                          kind.get("_targetProfile") or [], strict=False)
                   if meta and _flagged(meta.get("extension"))]
        for target in targets:
            found.append(Requirement(element["id"], kind["code"] if type_flagged else None, target))
        if type_flagged and not targets:
            found.append(Requirement(element["id"], kind["code"]))
    return found or [Requirement(element["id"])]


def _panel_components_only(profile: dict, element_id: str, elements: dict[str, dict]) -> bool:
    """A component element of a vital-sign profile that slices no components (see the module docstring)."""
    if profile.get("baseDefinition") != VITAL_SIGNS:
        return False
    root = profile["type"] + ".component"
    if element_id != root and not element_id.startswith(root + "."):
        return False
    return not any(key.startswith(root + ":") for key in elements)


def _panel_value(profile: dict, element_id: str, elements: dict[str, dict]) -> bool:
    """The value of a panel whose values are its required components (see the module docstring)."""
    root = profile["type"] + ".component:"
    required = any(key.startswith(root) and key.count(".") == 1 and element.get("min", 0) >= 1
                   for key, element in elements.items())
    return required and element_id.split(":")[0] == profile["type"] + ".value[x]"


def requirements(profile: dict) -> list[Requirement]:
    """Every must-support requirement of ``profile`` (a StructureDefinition with a snapshot)."""
    elements = {e["id"]: e for e in profile["snapshot"]["element"]}
    found: list[Requirement] = []
    for element in profile["snapshot"]["element"]:
        if "." in element["id"] and is_must_support(element) and \
                not _panel_components_only(profile, element["id"], elements) and \
                not _panel_value(profile, element["id"], elements):
            found.extend(_element_requirements(element))
    return list(dict.fromkeys(found))


def missing(profile: dict, resources: Iterable[dict]) -> list[Requirement]:
    """The requirements of ``profile`` that none of ``resources`` meets."""
    resources = list(resources)
    elements = {e["id"]: e for e in profile["snapshot"]["element"]}
    return [req for req in requirements(profile)
            if not any(meets(req, resource, elements) for resource in resources)]


# -- walking an element id through a resource -------------------------------------------------------------------

def meets(requirement: Requirement, resource: dict, elements: dict[str, dict]) -> bool:
    """Whether ``resource`` has a value for the requirement's element (of the right type and target)."""
    steps = requirement.element.split(".")  # US Core slice names contain no dots
    nodes = [resource]
    so_far = steps[0]
    for position, step in enumerate(steps[1:], start=1):
        name, _, slice_name = step.partition(":")
        base_id = f"{so_far}.{name}"
        so_far = f"{base_id}:{slice_name}" if slice_name else base_id
        last = position == len(steps) - 1
        wanted_type = requirement.type if last else None
        values, shadows = _children(nodes, name, elements.get(base_id), elements.get(so_far), wanted_type)
        if slice_name:
            kept = [i for i, v in enumerate(values) if _in_slice(v, elements[base_id], elements[so_far], elements)]
            values, shadows = [values[i] for i in kept], [shadows[i] for i in kept]
        if last:
            values = [v for v in values if _has_value(v)]
            if requirement.target:
                values = [v for v in values if isinstance(v, dict) and _reference_type(v) == requirement.target]
            return bool(values)
        nodes = [v for v in values if isinstance(v, dict)] + [s for s in shadows if isinstance(s, dict)]
        if not nodes:
            return False
    return _has_value(resource)


def _json_names(name: str, element: dict | None, slice_element: dict | None, wanted_type: str | None) -> list[str]:
    if not name.endswith("[x]"):
        return [name]
    stem = name[:-3]
    kinds = [wanted_type] if wanted_type else [k["code"] for k in (slice_element or element or {}).get("type", [])]
    return [stem + kind[0].upper() + kind[1:] for kind in kinds]


def _children(nodes: list[dict], name: str, element: dict | None, slice_element: dict | None,
              wanted_type: str | None) -> tuple[list, list]:
    """The values of ``name`` under ``nodes`` and, position by position, their ``_name`` shadows (where the
    extensions of a primitive live)."""
    values, shadows = [], []
    for node in nodes:
        for key in _json_names(name, element, slice_element, wanted_type):
            found, shadow = node.get(key), node.get("_" + key)
            found = found if isinstance(found, list) else ([] if found is None else [found])
            shadow = shadow if isinstance(shadow, list) else [shadow] * max(len(found), 1 if shadow else 0)
            for i in range(max(len(found), len(shadow))):
                values.append(found[i] if i < len(found) else None)
                shadows.append(shadow[i] if i < len(shadow) else None)
    return values, shadows


def _has_value(value) -> bool:
    if value is None or value == [] or value == {}:
        return False
    if isinstance(value, dict) and set(value) == {"extension"}:
        return not all(e.get("url") == DATA_ABSENT_REASON for e in value["extension"])
    return True


def _reference_type(reference: dict) -> str | None:
    parts = str(reference.get("reference", "")).split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-2] if len(parts) >= 2 else None


# -- slices -------------------------------------------------------------------------------------------------------

_FIXED = ("fixed", "pattern")


def _fixed_value(element: dict | None):
    for key, value in (element or {}).items():
        if key.startswith(_FIXED) and key not in ("fixed", "pattern"):
            return value
    return None


def _in_slice(value, base: dict, slice_element: dict, elements: dict[str, dict]) -> bool:
    if value is None:
        return False
    for discriminator in base.get("slicing", {}).get("discriminator", []):
        kind, path = discriminator["type"], discriminator["path"]
        if kind == "type":
            continue  # already chosen by the JSON name (valueQuantity, effectiveDateTime)
        if path == "$this":
            candidates, spec_element = [value], slice_element
        else:
            candidates = _values_at(value, path)
            spec_element = elements.get(f"{slice_element['id']}.{path}")
        expected = _fixed_value(spec_element)
        if expected is None and path == "url" and slice_element.get("type"):
            expected = slice_element["type"][0]["profile"][0]  # an extension slice: its extension's url
        if expected is not None:
            if not any(_matches(candidate, expected) for candidate in candidates):
                return False
            continue
        binding = (spec_element or {}).get("binding", {})
        if binding.get("strength") == "required" and binding.get("valueSet"):
            codes = _value_set_codes(binding["valueSet"])
            if codes is not None and not any(_coded_in(candidate, codes) for candidate in candidates):
                return False
            continue
        raise ValueError(f"cannot tell which values belong to slice {slice_element['id']}")
    return True


def _values_at(value, path: str) -> list:
    nodes = [value]
    for part in path.split("."):
        found = []
        for node in nodes:
            if isinstance(node, dict) and part in node:
                item = node[part]
                found.extend(item if isinstance(item, list) else [item])
        nodes = found
    return nodes


def _matches(value, pattern) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_matches(value.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else []
        return all(any(_matches(item, p) for item in items) for p in pattern)
    return value == pattern


ANY_CODE = None


def _value_set_codes(url: str) -> set[tuple[str, str | None]] | None:
    """The (system, code) pairs of a value set as the package defines it; (system, None) stands for every code
    of a system; None when some part is defined outside the package (then every code is accepted)."""
    value_set = package().by_url.get(url.split("|")[0])
    if value_set is None or "compose" not in value_set:
        return ANY_CODE
    codes: set[tuple[str, str | None]] = set()
    for include in value_set["compose"].get("include", []):
        for nested in include.get("valueSet", []):
            inner = _value_set_codes(nested)
            if inner is ANY_CODE:
                return ANY_CODE
            codes |= inner
        if "system" not in include:
            continue
        if include.get("filter"):
            codes.add((include["system"], None))
        elif include.get("concept"):
            codes |= {(include["system"], c["code"]) for c in include["concept"]}
        else:
            codes.add((include["system"], None))
    return codes


def _coded_in(value, codes: set[tuple[str, str | None]]) -> bool:
    codings = value.get("coding", []) if isinstance(value, dict) and "coding" in value else [value]
    return any(isinstance(c, dict) and ((c.get("system"), c.get("code")) in codes or (c.get("system"), None) in codes)
               for c in codings)
