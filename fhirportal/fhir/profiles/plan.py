"""The compiled form of a profile: its snapshot's element tree, built once per process.

An ``Element`` is one ElementDefinition reduced to the rules the validator checks, with its children
(the elements the snapshot expands below it) and a ``keys`` table from JSON property name to child, so
that walking an instance is a dictionary lookup per property. A ``Slicing`` holds the slices of a
sliced element, each with the discriminator tests that decide which instance items belong to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# (valueset_url, system, code) -> True (in the value set) / False (not) / None (cannot tell)
Contains = Callable[[str, str | None, str], bool | None]

# FHIR R4's primitive types: a choice property's suffix names one of these with a capital first letter
# (``valueDateTime``) or a complex type as it is (``valueQuantity``).
PRIMITIVE_TYPES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant", "integer",
    "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid", "xhtml",
})


def type_suffix(type_code: str) -> str:
    """The suffix a choice element's JSON name takes for ``type_code`` (``dateTime`` -> ``DateTime``)."""
    return type_code[:1].upper() + type_code[1:]


def type_of_suffix(suffix: str) -> str:
    """The type code a choice suffix names (``DateTime`` -> ``dateTime``, ``Quantity`` -> ``Quantity``)."""
    lowered = suffix[:1].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVE_TYPES else suffix


@dataclass(frozen=True)
class Invariant:
    """An ElementDefinition.constraint the validator evaluates (the profile's own ``us-core-*`` keys)."""

    key: str
    severity: str  # "error" | "warning"
    human: str
    expression: str
    evaluate: Callable[[Any, str], list]  # (value, its type) -> the expression's result
    compiled: bool  # evaluated by ``fhirpath`` (False: by fhirpathpy)


@dataclass(eq=False)
class Element:
    id: str  # ElementDefinition.id (with slice names): names the rule in diagnostics
    path: str  # ElementDefinition.path (no slice names)
    name: str  # the last step of the path as defined: "coding", "value[x]"
    profile: str  # the id of the StructureDefinition whose rule this is
    min: int
    max: int | None  # None: unbounded
    types: tuple[str, ...]  # FHIR type codes
    fixed: tuple[str, Any] | None = None  # ("fixedUri", value)
    pattern: tuple[str, Any] | None = None  # ("patternCodeableConcept", value)
    binding: str | None = None  # the value set of a required binding
    targets: frozenset[str] | None = None  # resource types a Reference may point at; None: not checked
    type_profiles: tuple[str, ...] = ()  # profiles on the type (extension definitions, SimpleQuantity)
    invariants: tuple[Invariant, ...] = ()
    slice_name: str | None = None
    slicing: Slicing | None = None
    children: list[Element] = field(default_factory=list)
    # JSON property (also "_name" for a primitive's extensions) -> (child, the type that property holds)
    keys: dict[str, tuple[Element, str | None]] = field(default_factory=dict)
    choices: list[Element] = field(default_factory=list)  # children that are choices, for unknown suffixes
    required: list[Element] = field(default_factory=list)  # children with min > 0 (or a slice with min > 0)

    plain: bool = False  # only counted: no rule of its own, no children, not an extension
    choice: bool = field(init=False)  # a choice element ("value[x]")
    json_name: str = field(init=False)  # the step without "[x]": a choice's JSON names start with it

    def __post_init__(self) -> None:
        self.choice = self.name.endswith("[x]")
        self.json_name = self.name[:-3] if self.choice else self.name

    def cardinality(self) -> str:
        return f"{self.min}..{'*' if self.max is None else self.max}"

    def index_children(self) -> None:
        """Build ``keys``, ``choices`` and ``required`` from ``children`` (once the tree is complete)."""
        self.keys, self.choices = {}, []
        for child in self.children:
            if child.choice:
                self.choices.append(child)
                for type_code in child.types:
                    key = child.json_name + type_suffix(type_code)
                    self.keys[key] = self.keys["_" + key] = (child, type_code)
            else:
                type_code = child.types[0] if len(child.types) == 1 else None
                self.keys[child.name] = self.keys["_" + child.name] = (child, type_code)
        self.required = [child for child in self.children if child.min > 0 or (
            child.slicing is not None and any(s.element.min > 0 for s in child.slicing.slices))]


@dataclass(frozen=True)
class Test:
    """One discriminator applied to one slice: does an instance item belong to the slice?

    ``kind`` is the discriminator type; ``steps`` the discriminator path (empty for ``$this``);
    ``expected`` what the slice requires there: for value/pattern ``("fixed" | "pattern", value)`` or
    ``("binding", valueset)``, for type the allowed type codes, for exists True/False.
    """

    kind: str
    steps: tuple[str, ...]
    expected: Any


@dataclass(eq=False)
class Slice:
    element: Element
    tests: tuple[Test, ...]


@dataclass(eq=False)
class Slicing:
    discriminators: tuple[tuple[str, str], ...]  # (type, path) as defined
    rules: str  # "open" | "closed" | "openAtEnd"
    ordered: bool
    slices: list[Slice] = field(default_factory=list)
    supported: bool = True  # False: a discriminator could not be compiled; items are not sliced
    # when every slice is told by one fixed string at the same path (extensions by url): (path, value -> slice)
    lookup: tuple[tuple[str, ...], dict[str, int]] | None = None


@dataclass(frozen=True)
class Unsupported:
    """Something in a profile the validator does not check, said out loud (see ``Profile.unsupported``)."""

    element: str
    construct: str
    detail: str


@dataclass(eq=False)
class Profile:
    url: str
    name: str  # the StructureDefinition's id, as diagnostics name the profile
    version: str
    type: str  # the resource type (or "Extension") it constrains
    root: Element
    contexts: tuple[tuple[str, str], ...] = ()  # an extension's (context type, expression)
    unsupported: list[Unsupported] = field(default_factory=list)


def elements(root: Element) -> Iterator[Element]:
    """Every element of a compiled tree once (children and slices; shared ``contentReference`` subtrees once)."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        element = pending.pop()
        if id(element) in seen:
            continue
        seen.add(id(element))
        yield element
        pending.extend(element.children)
        if element.slicing is not None:
            pending.extend(s.element for s in element.slicing.slices)
