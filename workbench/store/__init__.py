"""Corpus-scale state store: build, LSTMVis search, statistics, projections, LSTMVis I/O."""

from workbench.store._layout import StateArray, StoreError, StoreIncompleteError
from workbench.store._lock import StoreBusyError
from workbench.store._store import DocumentView, StateStore
from workbench.store.search import Matches, SearchError, match, select_cells

__all__ = [
    "DocumentView",
    "Matches",
    "SearchError",
    "StateArray",
    "StateStore",
    "StoreBusyError",
    "StoreError",
    "StoreIncompleteError",
    "match",
    "select_cells",
]
