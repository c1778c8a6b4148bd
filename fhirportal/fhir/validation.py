"""Validation on every write.

1. Structure and datatypes from the R4 structure table (``structure_check``); where it finds a
   problem, the fhir.resources models (R4B package, R4 wire format) say what it is.
2. What the models do not check: required code bindings (``status`` and the like) and the target
   types FHIR R4 allows for each Reference, walked from ``fhirportal/definitions/structure.json``.
3. References to this server must resolve to an existing, undeleted resource (one query per type).

Every problem becomes an ``Issue`` whose ``expression`` points at the element; all problems of a
resource are reported together as one 422.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pydantic

from fhir.resources.R4B import get_fhir_model_class
from fhirportal import definitions
from fhirportal.errors import BadRequest, Issue, Unprocessable
from fhirportal.store.indexing.reference import parse as parse_reference

from . import profile_check
from .structure_check import StructureCheck

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# (type, id, where) references -> the (type, id) pairs that exist (not deleted) on this server.
ExistenceCheck = Callable[[list[tuple[str, str, str]]], set[tuple[str, str]]]


def check_id(fhir_id: str, where: str = "id") -> None:
    if not ID_PATTERN.match(fhir_id):
        raise BadRequest(f"'{fhir_id}' is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)", expression=where)


def _location(resource_type: str, loc: tuple) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-"):
            path += f".{part}"
    return path


class ResourceValidator:
    def __init__(self, supported_types: Iterable[str], base_url: str, validate_references: bool = True):
        self.supported_types = frozenset(supported_types)
        self.base_url = base_url
        self.validate_references = validate_references
        self.structure = definitions.load("structure")
        self.structure_check = StructureCheck()

    # ------------------------------------------------------------ entry point
    def validate(self, body: dict, exists: ExistenceCheck, *, self_reference: tuple[str, str] | None = None,
                 profiles: list[str] | None = None) -> None:
        """422 with every problem: structure, the profiles the resource claims (or ``profiles``), bindings,
        reference targets, references that do not resolve."""
        resource_type = body.get("resourceType")
        if not isinstance(resource_type, str) or resource_type not in self.supported_types:
            raise Unprocessable(f"Resource type '{resource_type}' is not supported by this server",
                                expression="resourceType")
        issues = self._structure_issues(resource_type, body)
        if not issues:  # a profile's rules only on what is structurally a resource
            issues += profile_check.issues(body, profiles)
        references: list[tuple[str, str, str]] = []
        self._walk(resource_type, body, resource_type, issues, references)
        if self.validate_references:
            issues += self._reference_issues(references, exists, self_reference)
        if issues:
            summary = "; ".join(f"{i.expression}: {i.diagnostics}" for i in issues[:5])
            raise Unprocessable(f"{resource_type} is not valid: {summary}", issues=issues)

    # ------------------------------------------------------------ 1. models
    def _structure_issues(self, resource_type: str, body: dict) -> list[Issue]:
        """The R4 structure table's check first (``structure_check``: several times faster than the
        model library and at least as strict); only when it finds a problem do the models speak, and
        their verdict and words stand (they know the datatypes' rules best)."""
        found = self.structure_check.issues(body)
        if not found:
            return []
        try:
            model = get_fhir_model_class(resource_type)
        except ValueError:  # an R4 type R4B dropped: the structure table alone
            return found
        try:
            model.model_validate(body)
        except pydantic.ValidationError as exc:
            return [Issue(self._message(error), code="structure" if "missing" not in error["type"] else "required",
                          expression=_location(resource_type, error["loc"]))
                    for error in exc.errors(include_url=False)]
        except Exception:  # noqa: BLE001  (anything else the model library raises on hostile JSON)
            return found  # the structure table says where
        return []  # the table is stricter here than R4's datatypes as the models read them: they decide

    @staticmethod
    def _message(error: dict) -> str:
        if error["type"] == "extra_forbidden":
            return "Unknown element"
        return error["msg"]

    # ------------------------------------------------------------ 2. bindings and reference targets
    def _walk(self, type_key: str, node: dict, path: str, issues: list[Issue],
              references: list[tuple[str, str, str]]) -> None:
        elements = self.structure.get(type_key, {})
        for name, value in node.items():
            element = elements.get(name)
            if element is None or name == "contained":
                continue
            items = value if isinstance(value, list) else [value]
            for position, item in enumerate(items):
                where = f"{path}.{name}" + (f"[{position}]" if isinstance(value, list) else "")
                if "codes" in element:
                    self._check_binding(element, item, where, issues)
                if element.get("type") == "Reference" and isinstance(item, dict):
                    self._check_reference(element, item, where, issues, references)
                if isinstance(item, dict) and element.get("type") in self.structure:
                    self._walk(element["type"], item, where, issues, references)

    @staticmethod
    def _check_binding(element: dict, item, where: str, issues: list[Issue]) -> None:
        allowed = element["codes"]
        if isinstance(item, str):
            codes = [item]
        elif isinstance(item, dict) and "coding" in item:
            codes = [c.get("code") for c in item.get("coding", []) if isinstance(c, dict)]
            if codes and not any(code in allowed for code in codes):
                issues.append(Issue(f"None of the codes {codes} is in the required value set "
                                    f"{element.get('valueSet', '')}", code="code-invalid", expression=where))
            return
        elif isinstance(item, dict) and "code" in item:
            codes = [item.get("code")]
        else:
            return
        for code in codes:
            if code not in allowed:
                shown = ", ".join(allowed[:12]) + (", …" if len(allowed) > 12 else "")
                issues.append(Issue(f"'{code}' is not a code of the required value set "
                                    f"{element.get('valueSet', '')} ({shown})", code="code-invalid",
                                    expression=where))

    def _check_reference(self, element: dict, item: dict, where: str, issues: list[Issue],
                         references: list[tuple[str, str, str]]) -> None:
        reference = item.get("reference")
        if not isinstance(reference, str) or reference.startswith("#"):
            return
        if reference.startswith("urn:"):
            issues.append(Issue(f"'{reference}' can only be resolved inside a transaction Bundle",
                                code="not-found", expression=f"{where}.reference"))
            return
        target_type, target_id = parse_reference(reference, self.base_url)
        if target_id is None:
            if "://" not in reference:
                issues.append(Issue(f"'{reference}' is not a reference this server understands "
                                    "(use Type/id or an absolute URL)", code="value",
                                    expression=f"{where}.reference"))
            return  # an absolute URL to another server
        targets = element.get("targets") or ["Resource"]
        if "Resource" not in targets and target_type not in targets:
            issues.append(Issue(f"A reference to {target_type} is not allowed here; allowed: {', '.join(targets)}",
                                code="value", expression=f"{where}.reference"))
            return
        if target_type not in self.supported_types:
            issues.append(Issue(f"'{reference}' points at type {target_type}, which this server does not store",
                                code="not-found", expression=f"{where}.reference"))
            return
        references.append((target_type, target_id, f"{where}.reference"))

    # ------------------------------------------------------------ 3. existence
    @staticmethod
    def _reference_issues(references: list[tuple[str, str, str]], exists: ExistenceCheck,
                          self_reference: tuple[str, str] | None) -> list[Issue]:
        wanted = [(t, i, where) for t, i, where in references if (t, i) != self_reference]
        if not wanted:
            return []
        found = exists(wanted)
        return [Issue(f"{t}/{i} does not exist on this server", code="not-found", expression=where)
                for t, i, where in wanted if (t, i) not in found]
