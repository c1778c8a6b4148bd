"""Required bindings: is a coded value in the bound value set? The answer comes from a ``contains``
callable (the terminology service): True, False, or None when it cannot tell (a value set it cannot
expand), which is never an error. A CodeableConcept is in the value set when one of its codings is
(none of them answering None); one without codings, like a Coding or Quantity without a code, is not.
Extensible, preferred and example bindings are not checked (they are not errors by definition)."""

from __future__ import annotations

from typing import Any

from fhirportal.fhir.profiles.issues import problem
from fhirportal.fhir.profiles.plan import Contains, Element
from fhirportal.fhir.profiles.values import show

CODED = frozenset({"code", "Coding", "CodeableConcept", "Quantity", "string", "uri"})


def member(value: Any, type_code: str | None, valueset: str, contains: Contains) -> bool | None:
    """Whether ``value`` (of type ``type_code``) is in ``valueset``: True, False or None (cannot tell)."""
    if type_code == "CodeableConcept":
        codings = value.get("coding") if isinstance(value, dict) else None
        if not isinstance(codings, list) or not codings:
            return False
        answers = [member(coding, "Coding", valueset, contains) for coding in codings]
        if True in answers:
            return True
        return None if None in answers else False
    if type_code in ("Coding", "Quantity"):
        if not isinstance(value, dict) or not isinstance(value.get("code"), str):
            return False
        system = value.get("system")
        return contains(valueset, system if isinstance(system, str) else None, value["code"])
    if type_code in ("code", "string", "uri"):
        return contains(valueset, None, value) if isinstance(value, str) else False
    return None


def check(element: Element, value: Any, type_code: str | None, expression: str, contains: Contains) -> list:
    """The issue of ``value`` not being in ``element``'s required value set, if it is not."""
    if type_code not in CODED or member(value, type_code, element.binding, contains) is not False:
        return []
    codes = _codes(value, type_code)
    what = (f"{' '.join(map(show, codes))} {'is' if len(codes) == 1 else 'are'} not in the value set {element.binding}"
            if codes else f"no code from the value set {element.binding}")
    return [problem(expression, what, element.profile, f"{element.id} has a required binding",
                    code="code-invalid")]


def _codes(value: Any, type_code: str | None) -> list[str]:
    def code_of(item):
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            return None
        return f"{item['system']}|{item['code']}" if isinstance(item.get("system"), str) else item["code"]

    if type_code == "CodeableConcept":
        codings = value.get("coding") if isinstance(value, dict) else None
        return [c for c in map(code_of, codings if isinstance(codings, list) else []) if c]
    if type_code in ("Coding", "Quantity"):
        return [c for c in [code_of(value)] if c]
    return [value] if isinstance(value, str) else []
