"""An operation's input, read against the in-parameters of its OperationDefinition: from the query
string of a GET, or the Parameters body of a POST. Unknown names, values of the wrong type and
single-valued parameters given twice are a 400 naming the parameter."""

from __future__ import annotations

import re

from flask import Request

from fhirportal.errors import BadRequest

from ..negotiation import require_short_query, resource_body

# value[x] keys a string-like parameter may arrive in (clients differ on uri/string/code)
_STRINGS = ("valueUri", "valueString", "valueCode", "valueCanonical", "valueUrl", "valueId")
STRING_TYPES = frozenset({"uri", "string", "code", "canonical", "url", "id"})
COMPLEX_TYPES = frozenset({"Coding", "CodeableConcept"})
NOT_PARAMETERS = frozenset({"_format", "_pretty"})  # the response's format, not the operation's input


class OperationInput:
    """The values given, by parameter name; ``get`` for single-valued parameters, ``all`` for repeated."""

    def __init__(self, values: dict[str, list]):
        self.values = values

    def get(self, name: str, default=None):
        found = self.values.get(name)
        return found[0] if found else default

    def all(self, name: str) -> list:
        return list(self.values.get(name, []))

    def has(self, name: str) -> bool:
        return bool(self.values.get(name))


def _spec(definition: dict) -> dict[str, dict]:
    return {p["name"]: p for p in definition.get("parameter", []) if p.get("use") == "in"}


def _unknown(name: str, spec: dict[str, dict], operation: str) -> BadRequest:
    return BadRequest(f"${operation} has no parameter '{name}'; it takes {', '.join(sorted(spec))}", expression=name)


def _from_text(name: str, kind: str, text: str):
    if "\x00" in text:
        raise BadRequest(f"Parameter '{name}' contains a NUL character", expression=name)
    if kind == "integer":
        if not re.fullmatch(r"-?[0-9]{1,9}", text):
            raise BadRequest(f"Parameter '{name}' must be an integer, not '{text}'", expression=name)
        return int(text)
    if kind == "boolean":
        if text not in ("true", "false"):
            raise BadRequest(f"Parameter '{name}' must be true or false, not '{text}'", expression=name)
        return text == "true"
    if not text:
        raise BadRequest(f"Parameter '{name}' is empty", expression=name)
    return text


def _coding(name: str, value) -> dict:
    if not isinstance(value, dict) or not all(isinstance(value.get(k, ""), str) for k in ("system", "code",
                                                                                         "display", "version")):
        raise BadRequest(f"Parameter '{name}' must be a Coding (system, code, display as strings)", expression=name)
    return value


def _from_parameter(name: str, kind: str, parameter: dict):
    where = f"Parameters.parameter('{name}')"
    if kind in COMPLEX_TYPES:
        value = parameter.get(f"value{kind}")
        if kind == "Coding":
            return _coding(name, value)
        if not isinstance(value, dict) or not isinstance(value.get("coding", []), list):
            raise BadRequest(f"Parameter '{name}' must be a CodeableConcept", expression=where)
        return {"coding": [_coding(name, c) for c in value.get("coding", [])], "text": value.get("text")}
    keys = _STRINGS if kind in STRING_TYPES else (f"value{kind[0].upper()}{kind[1:]}",)
    key = next((k for k in keys if k in parameter), None)
    if key is None:
        raise BadRequest(f"Parameter '{name}' needs a value of type {kind} ({' or '.join(keys)})", expression=where)
    value = parameter[key]
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadRequest(f"Parameter '{name}' must be an integer", expression=where)
    if kind == "boolean" and not isinstance(value, bool):
        raise BadRequest(f"Parameter '{name}' must be true or false", expression=where)
    if kind not in ("integer", "boolean"):
        if not isinstance(value, str):
            raise BadRequest(f"Parameter '{name}' must be a string", expression=where)
        return _from_text(name, kind, value)
    return value


def operation_input(request: Request, definition: dict, max_query_bytes: int) -> OperationInput:
    """The in-parameters of ``definition`` that ``request`` gives (GET: query string; POST: a
    Parameters body)."""
    spec = _spec(definition)
    operation = definition.get("code", "")
    values: dict[str, list] = {}
    require_short_query(request, max_query_bytes)
    query = [(k, v) for k, v in request.args.items(multi=True) if k not in NOT_PARAMETERS]
    if request.method == "GET":
        for name, text in query:
            if name not in spec:
                raise _unknown(name, spec, operation)
            kind = spec[name].get("type", "string")
            if kind in COMPLEX_TYPES:
                raise BadRequest(f"Parameter '{name}' is a {kind}: send it in a POST Parameters body", expression=name)
            values.setdefault(name, []).append(_from_text(name, kind, text))
    else:
        if query:
            raise BadRequest(f"A POST to ${operation} takes its parameters in the Parameters body, not the query "
                             f"string ('{query[0][0]}')", expression=query[0][0])
        body = resource_body(request)
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise BadRequest(f"The body of a POST to ${operation} must be a Parameters resource",
                             expression="resourceType")
        parameters = body.get("parameter", [])
        if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
            raise BadRequest("Parameters.parameter must be a list of parameters", expression="Parameters.parameter")
        for parameter in parameters:
            name = parameter.get("name")
            if not isinstance(name, str) or name not in spec:
                raise _unknown(str(name), spec, operation)
            values.setdefault(name, []).append(_from_parameter(name, spec[name].get("type", "string"), parameter))
    for name, given in values.items():
        if spec[name].get("max", "1") == "1" and len(given) > 1:
            raise BadRequest(f"Parameter '{name}' is given {len(given)} times; ${operation} takes it once",
                             expression=name)
    return OperationInput(values)
