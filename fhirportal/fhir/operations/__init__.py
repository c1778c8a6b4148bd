"""FHIR operations (``$name``): one module per operation, each registered with its
OperationDefinition from ``capability/operations/`` so the CapabilityStatement and the router read
the same definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fhirportal.errors import BadRequest, Issue, MethodNotAllowed, NotFound


@dataclass(frozen=True)
class Operation:
    name: str  # without the '$'
    definition: dict  # the OperationDefinition resource
    handler: Callable  # handler(ctx, request, auth, resource_type, fhir_id) -> FhirResponse
    methods: tuple[str, ...] = ("POST",)

    @property
    def levels(self) -> set[str]:
        d = self.definition
        return {level for level, flag in (("system", d.get("system")), ("type", d.get("type")),
                                          ("instance", d.get("instance"))) if flag}

    @property
    def resource_types(self) -> list[str]:
        return list(self.definition.get("resource", []))


class OperationRegistry:
    def __init__(self):
        # by OperationDefinition id: several definitions may share a code at different levels
        # (the Bulk Data ``$export`` at system, Patient and Group level)
        self._operations: dict[str, Operation] = {}

    def register(self, operation: Operation) -> None:
        self._operations[operation.definition.get("id") or operation.name] = operation

    def __iter__(self):
        return iter(self._operations.values())

    def resolve(self, name: str, method: str, level: str, resource_type: str | None) -> Operation:
        def applies(op: Operation, at: str) -> bool:
            return op.name == name and at in op.levels and (
                resource_type is None or "Resource" in op.resource_types or resource_type in op.resource_types)

        operation = next((op for op in self if applies(op, level)), None)
        if operation is None:
            elsewhere = [at for at in ("system", "type", "instance") if any(applies(op, at) for op in self)]
            if elsewhere:  # the right operation at the wrong level: say how to call it
                on = resource_type or "|".join(sorted({t if t != "Resource" else "[type]" for op in self
                                                       if op.name == name for t in op.resource_types})) or "[type]"
                how = f"${name} {_how(name, on, elsewhere)}"
                raise BadRequest(f"{how}, not at {level} level", issues=[Issue(
                    f"{how}, not at {level} level", code="not-supported", expression=f"${name}")])
            where = f"{resource_type}/" if resource_type else ""
            raise NotFound(f"Operation ${name} is not defined at {level} level for {where or 'the system'}")
        if method not in operation.methods:
            raise MethodNotAllowed(f"${name} does not accept {method}", headers={"Allow": ", ".join(operation.methods)})
        return operation

    def definition(self, definition_id: str) -> dict:
        """The registered OperationDefinition of that id (its handler reads its parameters from it)."""
        return self._operations[definition_id].definition

    def for_type(self, resource_type: str) -> list[Operation]:
        return [op for op in self if "Resource" in op.resource_types or resource_type in op.resource_types]


def _url(name: str, resource_type: str, level: str) -> str:
    return {"system": f"[base]/${name}", "type": f"{resource_type}/${name}",
            "instance": f"{resource_type}/{{id}}/${name}"}[level]


def _how(name: str, resource_type: str, levels: list[str]) -> str:
    """How to call an operation that exists at ``levels``: e.g. "needs a Group id: Group/{id}/$export"."""
    if levels == ["instance"]:
        article = "an" if resource_type[:1] in "AEIOU" else "a"
        return f"needs {article} {resource_type} id: {_url(name, resource_type, 'instance')}"
    return "is called as " + " or ".join(_url(name, resource_type, at) for at in levels)
