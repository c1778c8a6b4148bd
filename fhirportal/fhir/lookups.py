"""The searches that conditional writes run inside their transaction, built once and, for a
transaction Bundle, before its write begins.

A conditional create (``ifNoneExist``), update or delete (criteria in the URL) and a conditional
reference (``Patient?identifier=…``) each search inside the write transaction, so that the match and
the write are one. On SQLite that transaction holds the one writers' turn, which every other write
waits for, and under load each millisecond of Python inside it is stretched by the other threads of
the process. Parsing the criteria and building the SQL does not depend on what the database holds,
so ``prepare`` does it before the turn; inside it only the statements run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from urllib.parse import parse_qsl

from fhirportal.errors import BadRequest, FhirError, Unprocessable

from .authorization import Authorization
from .context import FhirContext
from .search_params import parse_criteria

CONDITIONAL_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+\?.+")

# A conditional entry's criteria: where an error points, and the interaction whose visibility applies.
CONDITIONAL_ENTRIES = {"POST": ("ifNoneExist", "create"), "PUT": ("request.url", "update"),
                       "DELETE": ("Conditional delete", "delete")}


def conditional_criteria(ctx: FhirContext, resource_type: str, query: str, where: str):
    """Criteria of a conditional interaction: always strict (an ignored parameter would widen the match)."""
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if not pairs:
        raise BadRequest(f"{where} needs search criteria", expression=where)
    criteria, _ = parse_criteria(ctx.search_parameters, resource_type, pairs, strict=True)
    if not criteria:
        raise BadRequest(f"{where} needs search criteria, not only result parameters", expression=where)
    return criteria


class Lookups:
    """Criteria and statements of one request's conditional searches, each built once, within what
    ``auth`` may see (a conditional match only finds resources the interaction may see)."""

    def __init__(self, ctx: FhirContext, auth: Authorization):
        self.ctx = ctx
        self.auth = auth
        self._conditional: dict[tuple[str, str, str], tuple[list, object]] = {}
        self._references: dict[str, tuple[str, object]] = {}

    def conditional(self, resource_type: str, query: str, where: str, interaction: str):
        """(criteria, statement) of a conditional interaction's match: at most 2 ids (none/one/many)."""
        key = (resource_type, query, interaction)
        if key not in self._conditional:
            criteria = conditional_criteria(self.ctx, resource_type, query, where)
            statement = self.ctx.repository.ids_query(resource_type, criteria, limit=2,
                                                      visibility=self.auth.visibility(interaction))
            self._conditional[key] = criteria, statement
        return self._conditional[key]

    def reference(self, reference: str):
        """(type, statement) of a conditional reference's match, among what the token may search."""
        if reference not in self._references:
            resource_type, _, query = reference.partition("?")
            if resource_type not in self.ctx.resource_types:
                raise Unprocessable(f"Conditional reference '{reference}' names an unsupported type")
            criteria, _ = parse_criteria(self.ctx.search_parameters, resource_type,
                                         parse_qsl(query, keep_blank_values=True), strict=True)
            statement = self.ctx.repository.ids_query(resource_type, criteria, limit=2,
                                                      visibility=self.auth.visibility("search-type"))
            self._references[reference] = resource_type, statement
        return self._references[reference]

    def prepare(self, entries: Iterable) -> None:
        """Build, ahead of the write, the searches a transaction's entries will run. One that cannot be
        built is left for its entry, whose processing reports the error where it belongs."""
        for entry in entries:
            conditional = CONDITIONAL_ENTRIES.get(entry.method)
            query = entry.if_none_exist if entry.method == "POST" else (None if entry.fhir_id else entry.query)
            if conditional and query and entry.resource_type:
                _built(self.conditional, entry.resource_type, query, *conditional)
            for holder in reference_holders(entry.resource):
                if CONDITIONAL_REFERENCE.match(holder["reference"]):
                    _built(self.reference, holder["reference"])


def _built(build, *args) -> None:
    with suppress(FhirError):
        build(*args)


def reference_holders(node) -> Iterable[dict]:
    """Every element of ``node`` (a resource, or part of one) that holds a string ``reference``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield node
            else:
                yield from reference_holders(value)
    elif isinstance(node, list):
        for item in node:
            yield from reference_holders(item)
