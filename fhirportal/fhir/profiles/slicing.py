"""Slicing: which slice each instance item belongs to, and the slices' own rules.

Discriminators compile into ``Test``s per slice (``compile_tests``):
- ``value`` / ``pattern``: the element the discriminator path names inside the slice carries a fixed[x]
  (the item's values there must equal it), a pattern[x] (must contain it) or a required binding (must
  be in the value set, through ``contains``); an extension slice typed by a profile is told by its url,
  the profile's canonical;
- ``type`` (on ``$this``): the item's type is one of the slice's types (a choice's ``valueQuantity``);
- ``exists``: the element is present when the slice requires it (min >= 1), absent when it prohibits it.
Not supported (listed in ``Profile.unsupported`` where a profile uses them, and then items are not
sliced there): the ``profile`` discriminator, ``type`` on a path other than ``$this``, paths with
functions (``resolve()``, ``extension(url)``, ``ofType()``).

``assign`` gives each item the slice it matches first (a ``None`` from ``contains`` leaves it
undecided: never an error, and counted as possibly in each slice it might be in), then checks each
slice's cardinality, ``rules: closed`` (an item in no slice), ``ordered`` (items in slice order) and
``openAtEnd`` (unsliced items only after the slices).
"""

from __future__ import annotations

import re
from typing import Any

from fhirportal.fhir.profiles import bindings, values
from fhirportal.fhir.profiles.issues import problem
from fhirportal.fhir.profiles.plan import Contains, Element, Slice, Test, Unsupported

STEP = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def compile_tests(element: Element, notes: list[Unsupported]) -> None:
    slicing = element.slicing
    if not slicing.slices:
        return
    reason = _unsupported_discriminator(slicing.discriminators)
    for slice_ in slicing.slices:
        if reason:
            break
        tests = []
        for kind, path in slicing.discriminators:
            steps = () if path == "$this" else tuple(path.split("."))
            test = _test(kind, steps, slice_.element)
            if test is None:
                reason = f"slice {slice_.element.slice_name}: nothing at {path} tells it apart ({kind})"
                break
            tests.append(test)
        slice_.tests = tuple(tests)
    if reason:
        slicing.supported = False
        notes.append(Unsupported(element.id, "slicing", f"{reason}: items are validated against {element.id}"))
        return
    tests = [s.tests[0] for s in slicing.slices if len(s.tests) == 1]
    if len(tests) == len(slicing.slices) and len({t.steps for t in tests}) == 1 and all(
            t.kind in ("value", "pattern") and t.expected[0] in ("fixed", "pattern")
            and isinstance(t.expected[1], str) for t in tests):
        lookup: dict[str, int] = {}
        for index, test in enumerate(tests):
            lookup.setdefault(test.expected[1], index)
        slicing.lookup = (tests[0].steps, lookup)


def _unsupported_discriminator(discriminators) -> str | None:
    if not discriminators:
        return "no discriminator"
    for kind, path in discriminators:
        if kind not in ("value", "pattern", "type", "exists"):
            return f"discriminator type {kind}"
        if path != "$this" and not all(STEP.match(step) for step in path.split(".")):
            return f"discriminator path {path}"
        if kind == "type" and path != "$this":
            return f"type discriminator on {path}"
    return None


def _test(kind: str, steps: tuple[str, ...], slice_element: Element) -> Test | None:
    target = slice_element
    for position, step in enumerate(steps):
        child = next((c for c in target.children if c.json_name == step), None)
        if child is None:
            if (step == "url" and position == len(steps) - 1 and "Extension" in target.types
                    and target.type_profiles and kind in ("value", "pattern")):
                # an extension slice typed by its definition: Extension.url is fixed to the canonical
                return Test(kind, steps, ("fixed", target.type_profiles[0].partition("|")[0]))
            return None
        target = child
    if kind == "type":
        return Test(kind, steps, frozenset(target.types)) if target.types else None
    if kind == "exists":
        if target.min >= 1:
            return Test(kind, steps, True)
        return Test(kind, steps, False) if target.max == 0 else None
    if target.fixed is not None:
        return Test(kind, steps, ("fixed", target.fixed[1]))
    if target.pattern is not None:
        return Test(kind, steps, ("pattern", target.pattern[1]))
    if target.binding is not None and len(target.types) == 1:
        return Test(kind, steps, ("binding", target.binding, target.types[0]))
    return None


def _at(value: Any, steps: tuple[str, ...]) -> list:
    found = [value]
    for step in steps:
        following = []
        for item in found:
            if isinstance(item, dict):
                child = item.get(step)
                if isinstance(child, list):
                    following.extend(child)
                elif child is not None:
                    following.append(child)
        found = following
    return found


def _passes(test: Test, value: Any, type_code: str | None, contains: Contains) -> bool | None:
    if test.kind == "type":
        return type_code in test.expected
    found = _at(value, test.steps)
    if test.kind == "exists":
        return bool(found) == test.expected
    how = test.expected[0]
    if how == "fixed":
        return any(values.equals(item, test.expected[1]) for item in found)
    if how == "pattern":
        return any(values.contains(item, test.expected[1]) for item in found)
    answers = [bindings.member(item, test.expected[2], test.expected[1], contains) for item in found]
    if True in answers:
        return True
    return None if None in answers else False


def belongs(slice_: Slice, value: Any, type_code: str | None, contains: Contains) -> bool | None:
    """Whether an item belongs to ``slice_``: every discriminator passes (None: cannot tell)."""
    result: bool | None = True
    for test in slice_.tests:
        passed = _passes(test, value, type_code, contains)
        if passed is False:
            return False
        if passed is None:
            result = None
    return result


def _first(slices: list[Slice], value: Any, type_code: str | None, contains: Contains, undecided: list) -> int | None:
    """The index of the first slice ``value`` belongs to; slices that cannot tell go to ``undecided``."""
    for index, slice_ in enumerate(slices):
        answer = belongs(slice_, value, type_code, contains)
        if answer:
            return index
        if answer is None:
            undecided.append(index)
    return None


def assign(element: Element, items: list[tuple[Any, str | None, str]], expression: str, contains: Contains,
           issues: list, minimums: bool = True) -> list[Element]:
    """The element each item is validated against (its slice, or ``element`` if in none); ``items`` are
    (value, type, expression); problems of the slicing itself are appended to ``issues`` (slice minimums
    only if ``minimums``: not when a problem already reported explains them)."""
    slicing = element.slicing
    slices = slicing.slices
    definite, possible = [0] * len(slices), [0] * len(slices)
    nodes: list[Element] = []
    highest, unsliced_before = -1, False
    for value, type_code, where in items:
        chosen, undecided = None, []
        if slicing.lookup is not None:
            steps, lookup = slicing.lookup
            chosen = min((lookup[found] for found in _at(value, steps) if isinstance(found, str) and found in lookup),
                         default=None)
        else:
            chosen = _first(slices, value, type_code, contains, undecided)
        if chosen is None:
            nodes.append(element)
            for index in undecided:
                possible[index] += 1
            if not undecided:
                unsliced_before = True
                if slicing.rules == "closed":
                    names = ", ".join(s.element.slice_name for s in slices)
                    issues.append(problem(where, f"matches none of the slices ({names})", element.profile,
                                          f"{element.id} slicing is closed", code="structure"))
            continue
        nodes.append(slices[chosen].element)
        definite[chosen] += 1
        name = slices[chosen].element.slice_name
        if slicing.ordered and chosen < highest:
            issues.append(problem(where, f"slice {name} is out of order", element.profile,
                                  f"{element.id} slicing is ordered", code="structure"))
        highest = max(highest, chosen)
        if slicing.rules == "openAtEnd" and unsliced_before:
            issues.append(problem(where, f"slice {name} after items in no slice", element.profile,
                                  f"{element.id} slicing is openAtEnd", code="structure"))
    for index, slice_ in enumerate(slices):
        sliced = slice_.element
        if minimums and definite[index] + possible[index] < sliced.min:
            issues.append(problem(expression, f"minimum {sliced.min} in slice {sliced.slice_name}, found "
                                  f"{definite[index]}", sliced.profile, _rule(sliced), code="required"))
        if sliced.max is not None and definite[index] > sliced.max:
            issues.append(problem(expression, f"maximum {sliced.max} in slice {sliced.slice_name}, found "
                                  f"{definite[index]}", sliced.profile, _rule(sliced), code="structure"))
    return nodes


def _rule(sliced: Element) -> str:
    return f"{sliced.slice_name} slice requires {sliced.cardinality()}"
