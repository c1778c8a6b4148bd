"""``_list``: the resources a List has as its entries (``Observation?_list=42``).

A List is searched like any resource: a request sees a List's entries only if it may see the List, and
of those only what it may see of their own type (the search's visibility). The entries are the List's
``item`` reference index rows (``List.entry.item``), so a List of any length costs one subquery.
"""

from __future__ import annotations

from sqlalchemy import select, tuple_

from ..indexing.registry import SearchParameter
from ..schema import INDEX_TABLES, resource
from . import visibility as _visibility
from .aliases import alias

LIST_PARAMETER = SearchParameter(code="_list", type="special", expression="",
                                 url="http://hl7.org/fhir/R4/search.html#list", base="Resource")


def listed(criterion, res, visibility=None):
    """SQL condition: the row of ``res`` is an entry of one of the Lists ``criterion.values`` names."""
    lists = alias(resource)
    items = alias(INDEX_TABLES["reference"])
    entries = select(items.c.target_type, items.c.target_id).select_from(lists).join(
        items, items.c.pid == lists.c.pid).where(
        lists.c.resource_type == "List", lists.c.fhir_id.in_(list(criterion.values)), lists.c.deleted.is_(False),
        items.c.resource_type == "List", items.c.param == "item",
        _visibility.visible_clause(visibility, lists, ["List"]))
    return tuple_(res.c.resource_type, res.c.fhir_id).in_(entries)
