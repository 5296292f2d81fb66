"""Values derived from a module's tensors, kept between recordings while those tensors live."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable, Sequence
from typing import Any

import torch


class KeptWhileAlive:
    """A small cache whose entries are served only while their tensors are the same objects.

    An entry names the tensors it was made from; :meth:`get` returns it only while each of
    them is alive and is that very object (never matched by address alone, which a new module
    may reuse). Past ``keep`` entries the oldest is dropped. Thread-safe.

    Parameters
    ----------
    keep : int
        Entries kept at most.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._items: dict[Hashable, tuple[tuple, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, tensors: Sequence[torch.Tensor | None]) -> Any:
        """The value kept under ``key`` for these very ``tensors``, else None."""
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            if len(hit[0]) == len(tensors) and all(
                t is None if r is None else (t is not None and r() is t)
                for r, t in zip(hit[0], tensors, strict=True)
            ):
                return hit[1]
            del self._items[key]  # made from tensors that are gone
            return None

    def put(self, key: Hashable, tensors: Sequence[torch.Tensor | None], value: Any) -> Any:
        """Keep ``value`` under ``key`` for ``tensors``; returns ``value``."""
        refs = tuple(weakref.ref(t) if t is not None else None for t in tensors)
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (refs, value)
            while len(self._items) > self._keep:
                self._items.pop(next(iter(self._items)))
        return value

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
