"""Search over the index tables: criteria in, SQL ``WHERE`` clauses out."""

from .criteria import Criterion
from .query import build_where

__all__ = ["Criterion", "build_where"]
