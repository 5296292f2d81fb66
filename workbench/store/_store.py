"""StateStore: a corpus of recorded states on disk, with search, statistics and projections."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.names import is_gate
from workbench.store import search, stats
from workbench.store._layout import (
    MANIFEST_KEY,
    SCHEMA_VERSION,
    StateArray,
    StoreError,
    StoreIncompleteError,
)
from workbench.store._manifest import validate as validate_manifest


@dataclass
class DocumentView:
    """One document of a store: its tokens, meta tracks and lazy state slices.

    Attributes
    ----------
    index : int
    doc_id : str
    start, end : int
        Global token range ``[start, end)``.
    """

    store: StateStore
    index: int
    doc_id: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def tokens(self) -> list[str]:
        return self.store.tokens(self.start, self.end)

    @property
    def meta(self) -> dict[str, np.ndarray]:
        return {k: self.store.meta(k)[self.start : self.end] for k in self.store.meta_tracks}

    def states(self, name: str) -> np.ndarray:
        """``[time, units]`` states of this document."""
        return self.store.states(name).rows(self.start, self.end)


class StateStore:
    """States of a whole corpus on disk (zarr v3), searchable as in LSTMVis.

    Build one with :meth:`build` (or ``workbench record``), open it with :meth:`open`.

    Attributes
    ----------
    path : Path
    manifest : dict
        Schema version, model fingerprint, names and units, documents, meta tracks.
    """

    def __init__(self, path: Path, group, manifest: dict) -> None:
        self.path = Path(path)
        self._group = group
        self.manifest = manifest
        self._arrays: dict[str, StateArray] = {}
        self._cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ build / open
    @classmethod
    def build(cls, model, corpus, path, **kwargs) -> StateStore:
        """Record a corpus into a store at ``path`` (resumable) and open it.

        Parameters
        ----------
        model : Bundle, (nn.Module, tokenizer) or nn.Module
            A char LM (``model(ids, state) -> (logits, state)``, run over each document in
            windows of ``window`` steps with the state carried), a classifier
            (``model(ids, lengths)``) or a forecaster (``model(values)``).
        corpus : iterable of Document
            ``doc_id``, ``tokens``, ``meta`` tracks, ``label`` (``values`` for series).
        path : str or Path
            Empty or missing folder, or a store whose build was interrupted (it resumes).
        names : list of str, glob or callable, optional
            Recorder name filter (default: every gate, cell and hidden state).
        dtype : {"float16", "float32"}
        engine : None or "dask"
            ``dask`` runs the segments on a ``dask.distributed`` cluster (``client=`` or a
            local one with 2 worker processes), each writing its own chunks.
        chunk_tokens : int
            Tokens per chunk (default 8192).
        segment_tokens : int, optional
            Tokens per unit of work / commit (default 16 chunks).
        batch_size, window : int
            Documents run together; steps per char-LM window.
        strategy : str
            Recorder strategy (``auto``; ``recover`` lets the fused kernel run, faster for
            large models).
        progress : bool
            Show a progress bar with tokens/s.
        threads : int, optional
            torch threads of the local engine (default: torch's, every core; the chunk
            writer thread only issues file writes); the previous count is restored afterwards.

        Returns
        -------
        StateStore

        Raises
        ------
        StoreError
            Before anything is written: a size setting out of bounds, a store the disk
            cannot hold (the estimate and the free space), a corpus tokenized otherwise than
            the model reads (characters or words), a path holding something else.
        StoreBusyError
            Another process is building into ``path`` (the message names its pid).
        """
        from workbench.store._build import build

        return cls.open(build(model, corpus, path, **kwargs))

    @classmethod
    def open(cls, path, model=None) -> StateStore:
        """Open and validate a store.

        Parameters
        ----------
        path : str or Path
        model : nn.Module or Bundle, optional
            When given, the store must have been recorded from this model.

        Raises
        ------
        FileNotFoundError, StoreError, StoreIncompleteError
        """
        import zarr

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no store at {path}; build one with workbench record")
        meta_file = path / "zarr.json"
        try:
            attrs = json.loads(meta_file.read_text()).get("attributes", {})
        except (OSError, ValueError):
            attrs = {}
        manifest = attrs.get(MANIFEST_KEY)
        if manifest is None:
            raise StoreError(
                f"{path} is not a workbench state store (no manifest); "
                "build one with StateStore.build or `workbench record`"
            )
        if manifest.get("schema") != SCHEMA_VERSION:
            raise StoreError(
                f"{path} has store schema {manifest.get('schema')}, this workbench reads "
                f"schema {SCHEMA_VERSION}; rebuild the store with this version"
            )
        if manifest.get("status") != "complete":
            raise StoreIncompleteError(
                f"the build of {path} was interrupted ({len(list(path.glob('_progress/*')))} "
                f"of {len(manifest.get('segments', []))} segments done); run the same build "
                "command again to resume it"
            )
        validate_manifest(path, manifest)
        if model is not None:
            from workbench.store._runner import model_fingerprint

            module = getattr(model, "model", model)
            if model_fingerprint(module) != manifest["model"]["fingerprint"]:
                raise StoreError(
                    f"{path} was recorded from another model "
                    f"({manifest['model'].get('class')}, fingerprint "
                    f"{manifest['model']['fingerprint'][:8]}); record this model's own store"
                )
        return cls(path, zarr.open_group(str(path), mode="r"), manifest)

    # ------------------------------------------------------------------ basic facts
    def __repr__(self) -> str:
        return (
            f"StateStore({str(self.path)!r}, tokens={self.n_tokens:,}, docs={self.n_docs:,}, "
            f"names={len(self.names)})"
        )

    @property
    def names(self) -> list[str]:
        return list(self.manifest["names"])

    @property
    def n_tokens(self) -> int:
        return int(self.manifest["n_tokens"])

    @property
    def n_docs(self) -> int:
        return int(self.manifest["n_docs"])

    @property
    def doc_ids(self) -> list[str]:
        return list(self.manifest["doc_ids"])

    @property
    def meta_tracks(self) -> list[str]:
        """Per-token meta tracks; a classification store's document ``label`` is one too."""
        tracks = list(self.manifest["meta"])
        if "label" not in tracks and self._has_labels():
            tracks.append("label")
        return tracks

    def _has_labels(self) -> bool:
        if "docs/label" not in self._cache and "label" not in self._group["docs"]:
            return False
        labels = self._column("docs/label")
        return bool(labels.size) and bool((labels >= 0).all())

    @property
    def boundaries(self) -> np.ndarray:
        """``[docs + 1]`` document offsets in global token positions."""
        return self._column("docs/offsets").astype(np.int64)

    def _column(self, key: str) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = np.asarray(self._group[key][:])
        return self._cache[key]

    # ------------------------------------------------------------------ lazy slices
    def states(self, name: str) -> StateArray:
        """Lazy ``[tokens, units]`` array of one recorded quantity."""
        if name not in self.manifest["units"]:
            raise KeyError(f"{name!r} is not in this store; it holds {', '.join(self.names)}")
        if name not in self._arrays:
            self._arrays[name] = StateArray(
                self._group[f"states/{name}"], self.path / "states" / name
            )
        return self._arrays[name]

    __getitem__ = states

    def slice(self, start: int, end: int, names=None) -> dict[str, np.ndarray]:
        """``{name: [end - start, units]}`` states of the global token range."""
        self._check_range(start, end)
        return {n: self.states(n).rows(start, end) for n in (names or self.names)}

    def _check_range(self, start: int, end: int) -> None:
        if not 0 <= int(start) <= int(end) <= self.n_tokens:
            raise IndexError(f"range [{start}, {end}) outside the store's {self.n_tokens} tokens")

    def document(self, key) -> DocumentView:
        """A document by index or ``doc_id``."""
        if isinstance(key, str):
            try:
                key = self.doc_ids.index(key)
            except ValueError:
                raise KeyError(f"no document {key!r} in this store") from None
        i = int(key)
        if not 0 <= i < self.n_docs:
            raise IndexError(f"document {i} out of range [0, {self.n_docs})")
        b = self.boundaries
        return DocumentView(self, i, self.doc_ids[i], int(b[i]), int(b[i + 1]))

    def tokens(self, start: int = 0, end: int | None = None) -> list[str]:
        """Token strings of the global range."""
        end = self.n_tokens if end is None else end
        self._check_range(start, end)
        vocab = self.manifest["surface_vocab"]
        return [vocab[i] for i in self._column("tokens/surface")[start:end]]

    def meta(self, track: str) -> np.ndarray:
        """``[tokens]`` meta track (``label``: each token carries its document's label)."""
        if track == "label" and "label" not in self.manifest["meta"] and self._has_labels():
            if "meta/label" not in self._cache:
                per_doc = self._column("docs/label")
                self._cache["meta/label"] = np.repeat(per_doc, np.diff(self.boundaries))
            return self._cache["meta/label"]
        if track not in self.manifest["meta"]:
            raise KeyError(f"no meta track {track!r}; tracks: {', '.join(self.meta_tracks)}")
        return self._column(f"meta/{track}")

    def token_table(self, start: int = 0, end: int | None = None):
        """The token table as a pandas DataFrame.

        Columns: document, position, token, token id, prediction, loss, every meta track.
        """
        import pandas as pd

        end = self.n_tokens if end is None else end
        self._check_range(start, end)
        table = {
            "document": self._column("tokens/doc")[start:end],
            "position": self._column("tokens/position")[start:end],
            "token": self.tokens(start, end),
            "token_id": self._column("tokens/token_id")[start:end],
            "prediction": self._column("tokens/prediction")[start:end],
            "loss": self._column("tokens/loss")[start:end],
        }
        for t in self.meta_tracks:
            table[t] = self.meta(t)[start:end]
        return pd.DataFrame(table, index=pd.RangeIndex(start, end, name="step"))

    # ------------------------------------------------------------------ search
    def select_cells(
        self,
        name: str,
        doc,
        start: int,
        end: int,
        threshold: float = 0.3,
        pad=(1, 0),
        compat: str | None = None,
    ) -> np.ndarray:
        """LSTMVis brush selection on document ``doc`` (index or id), positions in the doc.

        ``compat="lstmvis"`` applies LSTMVis's rules (see :func:`search.select_cells`): the
        padding reads the flat stream, across the document's edges.
        """
        view = self.document(doc)
        states = self.states(name)
        lo, _hi = view.start, view.end
        if not 0 <= int(start) < int(end) <= len(view):
            raise search.SearchError(
                f"brush [{start}, {end}) lies outside document {view.doc_id!r} of {len(view)} "
                f"steps; use 0 <= start < end <= {len(view)}"
            )
        left, right = search._check_pad(pad)
        if compat == "lstmvis":
            g0, g1 = lo + int(start), lo + int(end)
            if g0 - left < 0 or g1 + right > self.n_tokens:
                return np.zeros(0, np.int64)  # LSTMVis: padding outside the stream
            window = states.rows(g0 - left, g1 + right)
            return search.select_cells(window, left, left + g1 - g0, threshold, pad, compat)
        a, b = max(start - left, 0), min(end + right, len(view))
        window = states.rows(lo + a, lo + b)
        return search.select_cells(window, start - a, end - a, threshold, pad, compat)

    def match(self, name: str, cells, threshold: float = 0.3, pad=(1, 0), **kwargs):
        """LSTMVis match over every document of the store (see :func:`search.match`).

        Keywords go to :func:`search.match` (``top_k``, ``compat="lstmvis"``, ``mode``, ...).
        """
        return search.match(
            self.states(name), cells, threshold, pad, boundaries=self.boundaries, **kwargs
        )

    def match_meta(self, matches) -> dict:
        """Meta tracks aggregated over matched spans (share inside a string, ...)."""
        return search.aggregate_meta(matches, {t: self.meta(t) for t in self.meta_tracks})

    # ------------------------------------------------------------------ statistics
    def saturation(self, names=None, low: float = 0.1, high: float = 0.9):
        """Gate saturation per unit for every gate name (DataFrame ``name, unit, left, right``)."""
        import pandas as pd

        gates = names or [n for n in self.names if is_gate(n)]
        frames = []
        for n in gates:
            left, right = stats.gate_saturation(self.states(n), low, high)
            frames.append(
                pd.DataFrame(
                    {"name": n, "unit": np.arange(left.size), "left": left, "right": right}
                )
            )
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def best_cells(
        self,
        name: str,
        tracks=None,
        top: int = 10,
        method: str = "auto",
        contrast: str | None = None,
        within: str | None = None,
        select_on=None,
        score_on=None,
    ):
        """Units of ``name`` ranked per meta track (see :func:`stats.best_cells`).

        Parameters
        ----------
        name : str
            A recorded quantity.
        tracks : str or list of str, optional
            Meta tracks (default: all). Bool tracks are ranked by AUC (in a store from before
            bool tracks, int32 tracks of 0s and 1s), others by Pearson r.
        contrast : str, optional
            A bool track: the negatives (``best_cells(n, "in_literal", contrast="is_code")``
            scores literal characters against code ones, leaving comments and docstrings out).
        within : str, optional
            A bool track: score only its steps (``"depth_paren", within="is_code"``).
        select_on, score_on : list of int or str, optional
            Documents (indices or ids) the units are chosen on and scored on; one given
            alone: the other is the rest of the store.

        Returns
        -------
        pandas.DataFrame
            ``track, rank, unit, method, score, strength, select_score``: ``score`` on the
            ``score_on`` documents, ``select_score`` on the ``select_on`` ones.
        """
        names = [tracks] if isinstance(tracks, str) else list(tracks or self.meta_tracks)
        meta = {t: self.meta(t) for t in names}
        extra = {k: None if v is None else self.meta(v) for k, v in
                 (("contrast", contrast), ("within", within))}  # fmt: skip
        if method == "auto":
            method = {t: self._track_method(t) for t in names}
        return stats.best_cells(
            self.states(name),
            meta,
            top=top,
            method=method,
            select=self._doc_steps(select_on),
            score=self._doc_steps(score_on),
            **extra,
        )

    def _track_method(self, track: str) -> str:
        """``auc`` for a bool track, ``corr`` otherwise.

        A store that holds no bool track comes from before flags were stored as bools (they
        were int32): there a track whose values are all 0 or 1 counts as bool.
        """
        kinds = self.manifest["meta"]
        if kinds.get(track) == "bool":
            return "auc"
        legacy = "bool" not in kinds.values() and kinds.get(track) == "int32"
        return "auc" if legacy and stats.is_binary(self.meta(track)) else "corr"

    def _doc_steps(self, docs) -> np.ndarray | None:
        """``[tokens]`` bools: the steps of the documents ``docs`` (indices or ids)."""
        if docs is None:
            return None
        mask = np.zeros(self.n_tokens, bool)
        b = self.boundaries
        for key in [docs] if isinstance(docs, (str, int)) else docs:
            if isinstance(key, str):
                i = self.doc_ids.index(key) if key in self.doc_ids else -1
            else:
                i = int(key)
            if not 0 <= i < self.n_docs:
                raise KeyError(f"no document {key!r} in this store ({self.n_docs} documents)")
            mask[b[i] : b[i + 1]] = True
        return mask

    def mean_response(self, name: str):
        """``(mean [surface token, units], count [surface token])`` per token string."""
        ids = self._column("tokens/surface")
        return stats.mean_response(
            self.states(name), ids, n_tokens=len(self.manifest["surface_vocab"])
        )

    def nmf(self, name: str, n_factors: int = 8, max_steps: int = 100_000):
        """NMF factors of one quantity (see :func:`stats.nmf_factors`)."""
        return stats.nmf_factors(self.states(name), n_factors, max_steps)

    # ------------------------------------------------------------------ LSTMVis
    def export(self, folder, format: str = "lstmvis", names=None) -> Path:
        """Write the store in another tool's format (``lstmvis``: an LSTMVis project)."""
        if format != "lstmvis":
            raise StoreError(f"unknown export format {format!r}; use 'lstmvis'")
        from workbench.store.lstmvis import export_lstmvis

        return export_lstmvis(self, folder, names=names)

    @classmethod
    def from_lstmvis(
        cls, folder, path, chunk_tokens: int = 8192, dtype: str | None = None
    ) -> StateStore:
        """Import an LSTMVis project (``lstm.yml`` folder) into a new store at ``path``.

        ``dtype`` (float16 / float32) defaults to the source's (see ``import_lstmvis``).
        """
        from workbench.store.lstmvis import import_lstmvis

        return import_lstmvis(folder, path, chunk_tokens=chunk_tokens, dtype=dtype)

    # ------------------------------------------------------------------ projection
    def projection(self, name: str, **kwargs):
        """Fitted (cached in the store) PCA + UMAP map of one quantity's states.

        See :class:`workbench.store.projection.Projection`.
        """
        from workbench.store.projection import project_store

        return project_store(self, name, **kwargs)
