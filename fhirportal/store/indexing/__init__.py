"""Search indexing: search-parameter definitions in, index rows out.

One module per kind of index (token, string, date, reference, quantity, number, uri), each a pure
function from the values a FHIRPath expression yields to rows of its index table.
"""

from .extract import IndexExtractor
from .registry import SearchParameter, SearchParameterRegistry

__all__ = ["IndexExtractor", "SearchParameter", "SearchParameterRegistry"]
