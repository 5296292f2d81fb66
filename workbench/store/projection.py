"""2-D maps of states: PCA to ~50 dimensions, then UMAP (umap-learn), cached in the store.

UMAP's numba kernels compile on first use on a machine (about 30 s on 2 cores). The
compilation is cached on disk (``NUMBA_CACHE_DIR``, default ``~/.cache/workbench/numba``, or
a folder under the temporary directory where that is not writable), so later processes load
it in a few seconds. One kernel cannot be cached: pynndescent's NN-descent loop calls
``numba.get_num_threads()`` in compiled code, so every new process compiles it again (about
15 s on 2 cores) before its first neighbour search of 4,096 points or more; :func:`fit` does
that in a thread while PCA runs. The progress messages say when compilation happens, and
:func:`warm_up` compiles in a background thread so an app can start the work early.

Settings that differ from umap-learn's defaults (``fit``'s keyword arguments override them):

- ``init="pca"``: umap-learn's spectral initialisation of the 100,000-state benchmark takes
  about 130 s on 2 cores (and gives up: "too small an eigengap", random start); a PCA start
  keeps the global layout as well (Kobak & Linderman, Nat. Biotechnol. 2021) in a second.
- above 10,000 points, ``n_epochs=100`` (umap-learn: 200) and a lighter nearest-neighbour
  search (NN-descent with 12 trees, 20 candidates, at most 6 rounds; umap-learn: 21, 60,
  17). On the benchmark's 100,000 states (PCA start both ways) the map takes 7.9 s instead
  of 14 s once compiled; the 15-NN recall of the search drops from 0.89 to 0.80, and the
  share of each state's 15 nearest PCA neighbours that are among its 15 nearest map
  neighbours stays 0.47 (0.47 with umap-learn's settings and spectral start on 30,000
  states too). ``fast=False`` keeps umap-learn's epochs and search.

A fitted map places new states with :meth:`Projection.transform` ("where does this sentence
land"): with UMAP's own ``transform`` while the fitted model is in memory, and, for a map
read back from a store (no pickled model is ever stored), by UMAP's initialisation rule for
new points: the membership-weighted mean of the map positions of the nearest sample points.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Projection", "fit", "project_store", "warm_up"]


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _numba_cache() -> str:
    """Set ``NUMBA_CACHE_DIR`` (unless set) to a persistent, writable folder; returns it.

    Call before numba is imported: numba reads the variable once, at import.
    """
    if not os.environ.get("NUMBA_CACHE_DIR"):
        home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        path = home / "workbench" / "numba"
        if not _writable(path):
            import tempfile

            path = Path(tempfile.gettempdir()) / f"workbench-numba-{os.getuid()}"
            _writable(path)
        os.environ["NUMBA_CACHE_DIR"] = str(path)
    return os.environ["NUMBA_CACHE_DIR"]


_FITTED_IN_PROCESS = False


def _import_umap():
    """Import umap-learn with numba's on-disk cache on for its kernels.

    umap-learn does not ask numba to cache its compiled functions, so every new process
    would compile them again (~40 s). While umap (and pynndescent) import, ``numba.njit`` and
    ``numba.jit`` default to ``cache=True``; the compiled code then lands in
    ``NUMBA_CACHE_DIR`` and later processes load it.
    """
    import sys

    if "umap" in sys.modules:
        return sys.modules["umap"]
    from workbench._extras import require

    require("umap")
    _numba_cache()
    import numba

    orig_njit, orig_jit = numba.njit, numba.jit

    def _cached(orig):
        def deco(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return orig(*args, **kwargs)

        return deco

    numba.njit, numba.jit = _cached(orig_njit), _cached(orig_jit)
    try:
        import umap
    finally:
        numba.njit, numba.jit = orig_njit, orig_jit
    return umap


def _say(progress, text: str) -> None:
    if progress is True:
        print(text, flush=True)
    elif callable(progress):
        progress(text)


@dataclass
class Projection:
    """A fitted PCA (+ UMAP) map of ``[time, units]`` states.

    Attributes
    ----------
    mean : np.ndarray
        ``[units]`` PCA centre.
    components : np.ndarray
        ``[feature, units]`` PCA axes (``feature`` = ``pca_dims``).
    sample : np.ndarray
        ``[point]`` global steps the map was fitted on.
    reduced : np.ndarray
        ``[point, feature]`` PCA coordinates of the sample.
    embedding : np.ndarray
        ``[point, 2]`` map positions of the sample.
    method : str
        ``umap`` or ``pca``.
    n_neighbors : int
    """

    mean: np.ndarray
    components: np.ndarray
    sample: np.ndarray
    reduced: np.ndarray
    embedding: np.ndarray
    method: str = "umap"
    n_neighbors: int = 15
    model: object = None

    def pca(self, states) -> np.ndarray:
        """``[time, feature]`` PCA coordinates."""
        x = np.asarray(states, dtype=np.float32)
        return (x - self.mean) @ self.components.T

    def transform(self, states) -> np.ndarray:
        """``[time, 2]`` map positions of new states ``[time, units]``."""
        z = self.pca(states)
        if self.method == "pca":
            return z[:, :2]
        if self.model is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Cannot cache compiled function")
                return np.asarray(self.model.transform(z), dtype=np.float32)
        return self._knn_place(z)

    def _knn_place(self, z: np.ndarray) -> np.ndarray:
        from sklearn.neighbors import NearestNeighbors

        k = min(self.n_neighbors, len(self.reduced))
        nn = NearestNeighbors(n_neighbors=k).fit(self.reduced)
        dist, idx = nn.kneighbors(z)
        # UMAP's smooth-kNN membership: exp(-(d - rho) / sigma), rho = nearest distance
        rho = dist[:, :1]
        sigma = np.maximum(dist.mean(axis=1, keepdims=True) - rho, 1e-8)
        w = np.exp(-np.maximum(dist - rho, 0) / sigma)
        w /= w.sum(axis=1, keepdims=True)
        return np.einsum("pk,pkd->pd", w, self.embedding[idx]).astype(np.float32)


def warm_up(background: bool = True, progress=None):
    """Compile UMAP's numba kernels now (in a thread by default) on a small random set."""

    def work():
        rng = np.random.default_rng(0)
        fit(rng.normal(size=(4200, 8)).astype(np.float32), pca_dims=8, progress=progress)

    if background:
        t = threading.Thread(target=work, name="workbench-umap-warmup", daemon=True)
        t.start()
        return t
    work()
    return None


_LARGE = 10_000  # points above which the fast settings apply (umap-learn's own cut)
_FAST_EPOCHS = 100
_FAST_KNN = {"n_trees": 12, "n_iters": 6, "max_candidates": 20}


def _umap_settings(n: int, n_neighbors: int, seed, fast: bool, umap_kwargs: dict) -> dict:
    kw = {"init": "pca", **umap_kwargs}
    if fast and n > _LARGE:
        kw.setdefault("n_epochs", _FAST_EPOCHS)
    return {"n_neighbors": n_neighbors, "random_state": seed, **kw}


_NN_DESCENT_FROM = 4096  # umap-learn searches neighbours exactly below this many points


def _compile_nn_descent() -> None:
    """Compile pynndescent's NN-descent loop on a tiny set (numba cannot cache it).

    ``nn_descent_internal`` calls ``numba.get_num_threads()`` in compiled code, which numba
    refuses to cache, so every new process compiles it again on its first neighbour search.
    """
    _import_umap()
    from pynndescent import NNDescent

    tiny = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot cache compiled function")
        NNDescent(tiny, n_neighbors=15, compressed=False, **_FAST_KNN)


def _fast_knn(z: np.ndarray, n_neighbors: int, seed):
    """``(indices, distances, index)`` of the ``n_neighbors`` nearest rows (NN-descent)."""
    from pynndescent import NNDescent

    index = NNDescent(
        z,
        n_neighbors=n_neighbors,
        metric="euclidean",
        random_state=seed,
        n_jobs=1 if seed is not None else -1,
        low_memory=True,
        compressed=False,
        **_FAST_KNN,
    )
    indices, distances = index.neighbor_graph
    return indices, distances, index


def fit(
    states,
    pca_dims: int = 50,
    method: str = "umap",
    n_neighbors: int = 15,
    sample_index=None,
    seed: int | None = None,
    progress=True,
    fast: bool = True,
    **umap_kwargs,
) -> Projection:
    """Fit a map of ``states [time, units]`` (all rows given).

    Parameters
    ----------
    states : array-like
        ``[time, units]``.
    pca_dims : int
        PCA dimensions kept before UMAP.
    method : {"umap", "pca"}
    n_neighbors : int
        UMAP neighbourhood size.
    sample_index : array-like, optional
        ``[time]`` global steps of the rows (stored with the map).
    seed : int, optional
        Fixes UMAP's randomness (forces one thread in umap-learn).
    progress : bool or callable
        Messages about what is happening (compilation, fitting).
    fast : bool
        Above 10,000 points, 100 epochs and a cheaper neighbour search (see the module
        notes); ``False`` keeps umap-learn's defaults. Either way ``init="pca"`` unless given.
    **umap_kwargs
        Passed to ``umap.UMAP`` (they override the settings above).
    """
    global _FITTED_IN_PROCESS
    from sklearn.decomposition import PCA

    x = np.asarray(states, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"need [time, units] states with >= 3 rows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("states hold NaN or inf; drop those steps before projecting")
    if method not in ("umap", "pca"):
        raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
    dims = int(min(pca_dims, x.shape[1], x.shape[0]))
    t0 = time.perf_counter()
    compiling = None
    if method == "umap" and x.shape[0] >= _NN_DESCENT_FROM and not _FITTED_IN_PROCESS:
        # the one kernel numba cannot cache compiles while PCA runs
        compiling = threading.Thread(target=_compile_nn_descent, daemon=True)
        compiling.start()
    _say(progress, f"PCA: {x.shape[0]:,} states x {x.shape[1]} units -> {dims} dimensions")
    pca = PCA(n_components=dims, random_state=0, svd_solver="auto").fit(x)
    z = pca.transform(x).astype(np.float32)
    index = np.arange(x.shape[0]) if sample_index is None else np.asarray(sample_index)
    if method == "pca":
        emb, model = z[:, :2].copy(), None
    else:
        cache = _numba_cache()
        if not _FITTED_IN_PROCESS:
            _say(
                progress,
                "UMAP: first use in this process: numba loads its kernels from the cache in "
                f"{cache} (compiling them the first time, about 30 s on 2 cores) and compiles "
                "the NN-descent loop, which it cannot cache (about 15 s)",
            )
        if compiling is not None:
            compiling.join()
        umap = _import_umap()
        k = int(min(n_neighbors, z.shape[0] - 1))
        kw = _umap_settings(z.shape[0], k, seed, fast, umap_kwargs)
        _say(progress, f"UMAP: fitting {z.shape[0]:,} points (n_neighbors={k})")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Cannot cache compiled function")
            if fast and z.shape[0] > _LARGE and "precomputed_knn" not in kw:
                kw["precomputed_knn"] = _fast_knn(z, k, seed)
            model = umap.UMAP(**kw)
            emb = model.fit_transform(z).astype(np.float32)
        _FITTED_IN_PROCESS = True
    _say(progress, f"projection done in {time.perf_counter() - t0:.1f} s")
    return Projection(
        mean=pca.mean_.astype(np.float32),
        components=pca.components_.astype(np.float32),
        sample=index.astype(np.int64),
        reduced=z,
        embedding=emb,
        method=method,
        n_neighbors=int(n_neighbors),
        model=model,
    )


def _sample_rows(
    arr, n_tokens: int, sample: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    if sample is None or sample >= n_tokens:
        idx = np.arange(n_tokens)
        return idx, np.asarray(arr.rows(0, n_tokens))
    idx = np.sort(np.random.default_rng(seed).choice(n_tokens, int(sample), replace=False))
    out = np.empty((idx.size, arr.shape[1]), arr.dtype)
    c = arr.chunk
    for k in np.unique(idx // c):
        sel = np.flatnonzero((idx >= k * c) & (idx < (k + 1) * c))
        block = arr.rows(k * c, (k + 1) * c)
        out[sel] = block[idx[sel] - k * c]
    return idx, out


def _key(name: str, method: str, sample, pca_dims: int, seed) -> str:
    return f"{name}|{method}|{sample}|{pca_dims}|{seed}"


def is_cached(store, name: str, sample: int | None = 100_000, method: str = "umap",
              pca_dims: int = 50, seed: int = 0) -> bool:  # fmt: skip
    """Whether :func:`project_store` with these arguments reads its map from the cache."""
    import zarr

    root = zarr.open_group(str(store.path), mode="r")
    return _key(name, method, sample, pca_dims, seed) in root.attrs.get(
        "workbench_projections", {})  # fmt: skip


def project_store(
    store,
    name: str,
    sample: int | None = 100_000,
    method: str = "umap",
    pca_dims: int = 50,
    refit: bool = False,
    seed: int = 0,
    progress=True,
    **kwargs,
) -> Projection:
    """Map of one quantity of a store, fitted once and cached under ``projections/``.

    The cache is keyed by name, method, sample size, dimensions and seed; ``refit=True``
    recomputes it.
    """
    import zarr

    key = _key(name, method, sample, pca_dims, seed)
    folder = store.path / "projections"
    meta_key = "workbench_projections"
    root = zarr.open_group(str(store.path), mode="r")
    cached = dict(root.attrs.get(meta_key, {}))
    slot = cached.get(key)
    if slot is not None and not refit:
        g = zarr.open_group(str(folder / slot), mode="r")
        _say(progress, f"projection of {name} read from the store cache")
        return Projection(
            mean=np.asarray(g["mean"][:]),
            components=np.asarray(g["components"][:]),
            sample=np.asarray(g["sample"][:]),
            reduced=np.asarray(g["reduced"][:]),
            embedding=np.asarray(g["embedding"][:]),
            method=method,
            n_neighbors=int(g.attrs.get("n_neighbors", 15)),
        )
    arr = store.states(name)
    idx, rows = _sample_rows(arr, store.n_tokens, sample, seed)
    proj = fit(
        rows, pca_dims=pca_dims, method=method, sample_index=idx, progress=progress, **kwargs
    )
    slot = f"p{len(cached):03d}"
    try:
        _cache(store.path, folder / slot, proj, key, {**cached, key: slot}, meta_key)
    except OSError as err:  # a read-only store: the map is still the caller's
        import shutil
        import warnings

        shutil.rmtree(folder / slot, ignore_errors=True)
        text = (
            f"the projection of {name} was not cached: {store.path} is not writable "
            f"({err.strerror or err}); it is computed again next time"
        )
        _say(progress, text)
        warnings.warn(text, RuntimeWarning, stacklevel=2)
    return proj


def _cache(root: Path, slot: Path, proj: Projection, key: str, cached: dict, meta_key: str):
    """Write ``proj`` into the store's cache folder ``slot`` and list it in ``root``'s attrs."""
    import zarr

    g = zarr.open_group(str(slot), mode="w", zarr_format=3)
    for field in ("mean", "components", "sample", "reduced", "embedding"):
        value = getattr(proj, field)
        g.create_array(field, shape=value.shape, dtype=value.dtype, overwrite=True)[...] = value
    g.attrs["n_neighbors"] = proj.n_neighbors
    g.attrs["key"] = key
    zarr.open_group(str(root), mode="r+").attrs[meta_key] = cached
