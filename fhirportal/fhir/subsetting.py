"""``_summary`` and ``_elements``: returning part of a resource, marked SUBSETTED.

Which elements are "summary" comes from the fhir.resources models' own metadata
(``summary_element_property``), the same source the validator uses.
"""

from __future__ import annotations

import json
from functools import cache

from fhir.resources.R4B import get_fhir_model_class

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "As requested, resource is not fully detailed."}
_ALWAYS = ("resourceType", "id", "meta")


@cache
def _element_flags(resource_type: str) -> dict[str, tuple[bool, bool]]:
    """JSON name -> (is summary, is mandatory) for a type's top-level elements."""
    flags = {}
    for name, info in get_fhir_model_class(resource_type).model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        json_name = info.alias or name
        flags[json_name] = (bool(extra.get("summary_element_property")), bool(extra.get("element_required")))
    return flags


def _mark(resource: dict) -> dict:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = tags + [SUBSETTED]
    resource["meta"] = meta
    return resource


def _base_name(key: str) -> str:
    return key[1:] if key.startswith("_") else key  # primitive extensions follow their element


def summary(resource: dict, mode: str) -> dict:
    if mode in ("false", "count"):
        return resource
    flags = _element_flags(resource["resourceType"])
    if mode == "data":
        kept = {k: v for k, v in resource.items() if k != "text"}
    elif mode == "text":
        kept = {k: v for k, v in resource.items()
                if k in _ALWAYS or k == "text" or flags.get(_base_name(k), (False, False))[1]}
    else:  # true
        kept = {k: v for k, v in resource.items()
                if k in _ALWAYS or any(flags.get(_base_name(k), (False, False)))}
    return _mark(kept)


def elements(resource: dict, names: list[str]) -> dict:
    flags = _element_flags(resource["resourceType"])
    wanted = {n.split(".")[-1] for n in names}
    kept = {k: v for k, v in resource.items()
            if k in _ALWAYS or _base_name(k) in wanted or flags.get(_base_name(k), (False, False))[1]}
    return _mark(kept)


def subset_text(content: str, summary_mode: str, element_names: list[str]) -> str | dict:
    """Stored JSON text as-is when nothing is asked, else the subsetted resource."""
    if summary_mode in ("false", "count") and not element_names:
        return content
    resource = json.loads(content)
    if element_names:
        return elements(resource, element_names)
    return summary(resource, summary_mode)
