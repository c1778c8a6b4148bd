"""Extensions defined in the loaded packages are validated against their definitions wherever they occur
(their url names the definition): the definition's fixed url, its value[x] types and bindings, its own
sub-extension slices (race's ombCategory, detailed, text). Here: where such an extension may be used,
from the definition's ``context`` (an element context names a type, a resource, an element path,
``Element`` for any element or ``Resource``/``DomainResource`` for a resource itself); contexts of other
kinds (fhirpath, extension) cannot be told here and allow any place."""

from __future__ import annotations

from fhirportal.fhir.profiles.issues import problem
from fhirportal.fhir.profiles.plan import Element, Profile


def context_allows(definition: Profile, parent: Element, parent_type: str | None, at_resource: bool) -> bool:
    if not definition.contexts:
        return True
    for kind, expression in definition.contexts:
        if kind != "element":
            return True
        if expression in (parent.path, parent_type):
            return True
        if expression == ("Resource" if at_resource else "Element") or (at_resource and expression == "DomainResource"):
            return True
    return False


def context_problem(definition: Profile, parent: Element, parent_type: str | None, where: str):
    allowed = ", ".join(expression for _, expression in definition.contexts)
    return problem(where, f"extension {definition.url} is not allowed on {parent_type or parent.path}",
                   definition.name, f"its context is {allowed}", code="structure")
