"""What the app serves: models (checkpoint bundles) and their corpus state stores."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

from workbench._cache import cache_root

DEMO_MODELS: tuple[str, ...] = (
    "python", "sentiment", "sunspots", "co2", "parens", "python-gru", "python-rnn"
)  # fmt: skip
# corpus tokens recorded into each demo store (test split, documents kept whole)
# (first run on 2 busy cores: about a minute in all, the python store most of it)
DEMO_TOKENS: dict[str, int | None] = {
    "python": 300_000,
    "sentiment": None,
    "sunspots": None,
    "co2": None,
    "parens": 100_000,
    "python-gru": 100_000,  # the Compare page's GRU and tanh RNN: the LSTM store's first
    "python-rnn": 100_000,  # documents (smaller, to keep the first start short)
}


def cache_dir() -> Path:
    """Folder for demo stores: ``$WORKBENCH_CACHE`` or ``~/.cache/workbench``."""
    return cache_root()


class AppContext:
    """Models and stores the app shows, loaded lazily and kept in memory.

    Parameters
    ----------
    models : dict of str to path, optional
        Name -> checkpoint folder. Default: the shipped demo models.
    stores : dict of str to path, optional
        Name -> store folder, for models of the same name. Missing demo stores are built
        into :func:`cache_dir` by :meth:`prepare`.
    corpus_tokens : dict of str to int, optional
        Overrides :data:`DEMO_TOKENS` (tests use small stores).
    """

    def __init__(self, models=None, stores=None, corpus_tokens=None, cache=None) -> None:
        from workbench.models.checkpoint import shipped

        if models is None:
            models = {name: shipped(name) for name in DEMO_MODELS}
        self.models: dict[str, Path] = {k: Path(v) for k, v in models.items()}
        self.stores: dict[str, Path] = {k: Path(v) for k, v in (stores or {}).items()}
        self.corpus_tokens = {**DEMO_TOKENS, **(corpus_tokens or {})}
        self.cache = Path(cache) if cache is not None else cache_dir()
        self._bundles: dict = {}
        self._opened: dict = {}
        self._memo: dict = {}
        self._lock = threading.RLock()
        self._key_locks: dict = {}
        self._local = threading.local()

    @classmethod
    def from_store(cls, store, model=None, cache=None) -> AppContext:
        """A context serving one store and its model.

        Parameters
        ----------
        store : str or Path
            A built state store folder.
        model : str or Path, optional
            The checkpoint folder (or shipped name) the store was recorded from; default: the
            checkpoint path the store's manifest remembers.

        Raises
        ------
        FileNotFoundError, ValueError
            With the fix (build the store, pass ``--model``).
        """
        from workbench.models.checkpoint import shipped
        from workbench.store import StateStore
        from workbench.store._layout import StoreError

        try:
            opened = StateStore.open(store)
        except StoreError as exc:
            raise ValueError(str(exc)) from None
        info = opened.manifest.get("model", {})
        if model is None:
            remembered = info.get("path")
            if not remembered or not Path(remembered).exists():
                raise ValueError(
                    f"the store {store} does not say where its model is; pass the checkpoint "
                    "folder it was recorded from with --model CHECKPOINT"
                )
            model = remembered
        path = Path(model)
        if not path.exists() and Path(str(model)).name == str(model):
            path = shipped(str(model))
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {model}; pass a checkpoint folder")
        from workbench.models.checkpoint import load

        bundle = load(path)
        try:  # the check StateStore.open does: the store must come from this very model
            opened = StateStore.open(store, model=bundle)
        except StoreError as exc:
            raise ValueError(
                f"{exc} (--model {model} does not match; pass the checkpoint the store was "
                "recorded from, or omit --model)"
            ) from None
        bundle.model.eval()
        name = info.get("task") or path.name
        ctx = cls(models={name: path}, stores={name: Path(store)}, cache=cache)
        ctx._opened[name] = opened
        ctx._bundles[name] = bundle
        return ctx

    def spec(self) -> dict:
        """What a worker process needs to rebuild this context (JSON-serialisable)."""
        return {
            "models": {k: str(v) for k, v in self.models.items()},
            "stores": {k: str(v) for k, v in self.stores.items()},
            "corpus_tokens": self.corpus_tokens,
            "cache": str(self.cache),
        }

    @classmethod
    def from_spec(cls, spec: dict) -> AppContext:
        """The context :meth:`spec` describes (in a worker process)."""
        return cls(**spec)

    def jobs(self):
        """The :class:`~workbench.app._jobs.Jobs` of this context.

        Long work with progress and cancel, shared by every worker of a server.
        """
        from workbench.app._jobs import Jobs

        if getattr(self, "_jobs", None) is None:
            self._jobs = Jobs(self.cache / "jobs", self.spec())
        return self._jobs

    @contextmanager
    def warming(self):
        """Mark this thread as warm-up.

        Its :meth:`cached` computations never make a request wait: a request that needs the
        same key computes it itself.
        """
        self._local.warming = True
        try:
            yield
        finally:
            self._local.warming = False

    def cached(self, key, compute):
        """``compute()`` once per ``key`` for the life of the app (pages' derived data).

        Thread-safe: concurrent requests for one key wait for a single computation; other
        keys are not held up. Warm-up (:meth:`warming`) takes no lock a request waits on.
        """
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        if getattr(self._local, "warming", False):
            value = compute()
            with self._lock:
                return self._memo.setdefault(key, value)
        with key_lock:
            if key not in self._memo:
                value = compute()
                with self._lock:
                    self._memo[key] = value
            return self._memo[key]

    def model_names(self) -> list[str]:
        """Names of the models served, in display order."""
        return list(self.models)

    def bundle(self, name: str):
        """The loaded :class:`~workbench.models.checkpoint.Bundle` (eval mode), cached."""
        if name not in self.models:
            raise KeyError(f"unknown model {name!r}; served: {', '.join(self.models)}")
        if name not in self._bundles:
            from workbench.models.checkpoint import load

            bundle = load(self.models[name])
            bundle.model.eval()
            self._bundles[name] = bundle
        return self._bundles[name]

    def corpus_name(self, name: str) -> str | None:
        """Shipped corpus the model was trained on (from its config), if any."""
        config = self.bundle(name).config
        return (config.get("data") or {}).get("corpus")

    def store_path(self, name: str) -> Path:
        """Where the store of model ``name`` lives (given, or in the cache)."""
        if name in self.stores:
            return self.stores[name]
        limit = self.corpus_tokens.get(name)
        key = f"{name}-{limit or 'all'}"
        version = self._corpus_version(name)
        return self.cache / "stores" / (key if version == 1 else f"{key}-v{version}")

    def _corpus_version(self, name: str) -> int:
        """:func:`workbench.data.corpus_version` of the corpus in the model's config (1: none).

        Read from the checkpoint's ``config.json`` (no weights loaded).
        """
        import json

        from workbench.data import CORPORA, corpus_version

        try:
            config = json.loads((self.models[name] / "config.json").read_text())
        except (KeyError, OSError, ValueError):
            return 1
        data = config.get("data") if isinstance(config, dict) else None
        corpus = data.get("corpus") if isinstance(data, dict) else None
        return corpus_version(corpus) if corpus in CORPORA else 1

    def store(self, name: str):
        """The opened :class:`~workbench.StateStore` of model ``name``, or None if unbuilt."""
        if name in self._opened:
            return self._opened[name]
        if name not in self.models and name not in self.stores:
            return None
        from workbench.store import StateStore
        from workbench.store._layout import StoreError

        path = self.store_path(name)
        if not path.exists():
            return None
        try:
            store = StateStore.open(path)
        except StoreError:  # unbuilt or interrupted: prepare() resumes it
            return None
        self._opened[name] = store
        return store

    def prepare(self, progress: bool = True) -> None:
        """Build (or resume) every missing demo store. Later starts take seconds.

        The builds run with one torch thread: the demo models' small per-step kernels gain
        nothing from more, and when other processes keep the cores busy, OpenMP threads
        waiting on each other made a 6,000-character build take 96 s instead of 1.2 s.
        """
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self._prepare(progress)
        finally:
            torch.set_num_threads(threads)

    def _prepare(self, progress: bool) -> None:
        from workbench.data import corpus
        from workbench.store import StateStore

        for name in self.models:
            if name in self.stores or self.store(name) is not None:
                continue
            corpus_name = self.corpus_name(name)
            if corpus_name is None:
                continue
            docs = corpus(corpus_name, "test", max_tokens=self.corpus_tokens.get(name))
            path = self.store_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            if progress:
                print(f"building the {name} store ({sum(len(d.tokens) for d in docs)} tokens)")
            StateStore.build(self.bundle(name), docs, path, progress=progress)
            self._opened.pop(name, None)
