r"""LSTMVis project export and import (``lstm.yml``, HDF5 states, word ids, ``.dict``).

An exported project is for LSTMVis 2 (HendrikStrobelt/LSTMVis at e0628ca, API v2: its
``lstm_server.py`` and its browser client): one ``[tokens, units]`` float32 HDF5 dataset per
recorded quantity in ``states.h5`` (declared ``transform: none`` since the values are the real
activations; gates are ``unsigned``), the word-id sequence in ``train.h5`` with its
``words.dict`` ("token id" lines) and the meta tracks in ``meta.h5``. Every field of
``lstm.yml`` is one that server or client reads, in the form it reads: discrete meta tracks
list their values (``range: [0, 1, 2]``; the ``"0...3"`` form becomes a Python ``range`` that
the server's ``/info`` drops, and the client then fails), scalar tracks give ``[min, max]``.
LSTMVis's server shows and searches ``tanh(value)`` whatever ``transform`` says (its requests
default to ``tanh`` and its client never sends another). LSTMVis's corpus is one flat stream;
the document offsets and ids are kept in ``train.h5`` (``doc_offsets``, ``doc_ids``) for the
way back.

Token strings with white space cannot appear in a ``.dict`` line, so they are written as
visible symbols (space ``␣``, newline ``⏎``, tab ``⇥``, others and those symbols themselves
``\\uXXXX``) and read back.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from workbench.names import QuantityName, is_gate
from workbench.store._layout import MANIFEST_KEY, SCHEMA_VERSION, StoreError

__all__ = ["export_lstmvis", "import_lstmvis"]

_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥"}
_BACK = {v: k for k, v in _VISIBLE.items()}


def _escape(token: str) -> str:
    if token == "":
        return "\\u0000"
    out = []
    for ch in token:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ch.isspace() or not ch.isprintable() or ch == "\\" or ch in _BACK:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _unescape(text: str) -> str:
    if text == "\\u0000":
        return ""
    text = "".join(_BACK.get(ch, ch) for ch in text)  # a literal symbol was written \\uXXXX
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


def _lstmvis_type(name: str) -> str:
    q = QuantityName.parse(name).quantity
    return {"cell": "state", "hidden": "output"}.get(q, q)


def _layer(name: str) -> int:
    layer = QuantityName.parse(name).layer
    return 1 if layer is None else layer + 1


def export_lstmvis(store, folder, names=None, name: str | None = None) -> Path:
    """Write an LSTMVis project for a store.

    Parameters
    ----------
    store : StateStore
    folder : str or Path
        Project folder (created).
    names : list of str, optional
        Quantities to export (default all).
    name : str, optional
        Project name in ``lstm.yml``.

    Returns
    -------
    Path
        The folder.
    """
    import h5py
    import yaml

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StoreError(
            f"{folder} is a file; an LSTMVis export is a folder: pass a new or empty folder"
        )
    names = list(names or store.names)
    missing = [n for n in names if n not in store.manifest["units"]]
    if missing:
        raise StoreError(f"{missing[0]!r} is not in this store; it holds {', '.join(store.names)}")
    from workbench.store._limits import check_disk

    width = sum(int(store.manifest["units"][n]) for n in names) + 2 * len(store.meta_tracks) + 2
    needed = 4 * store.n_tokens * width + (1 << 20)  # float32 states, int64 words, meta
    check_disk(folder, needed, "the export")
    folder.mkdir(parents=True, exist_ok=True)
    block = 1 << 16
    with h5py.File(folder / "states.h5", "w") as f:
        for n in names:
            arr = store.states(n)
            ds = f.create_dataset(n, shape=arr.shape, dtype="float32", chunks=True)
            for a in range(0, arr.shape[0], block):
                ds[a : a + block] = arr.rows(a, a + block).astype(np.float32)
    vocab = store.manifest["surface_vocab"]
    with h5py.File(folder / "train.h5", "w") as f:
        f.create_dataset("words", data=store._column("tokens/surface").astype(np.int64))
        f.create_dataset("doc_offsets", data=store.boundaries)
        f.create_dataset(
            "doc_ids", data=np.array(store.doc_ids, dtype=object), dtype=h5py.string_dtype()
        )
    (folder / "words.dict").write_text(
        "".join(f"{_escape(t)} {i}\n" for i, t in enumerate(vocab)), encoding="utf-8"
    )
    meta_cfg = {}
    if store.meta_tracks:
        with h5py.File(folder / "meta.h5", "w") as f:
            for t in store.meta_tracks:
                values = store.meta(t)
                f.create_dataset(
                    t, data=values.astype(np.float32 if values.dtype.kind == "f" else np.int64)
                )
                meta_cfg[t] = {"file": "meta", "path": t, "type": "general", "vis": _vis(values)}
    config = {
        "name": name or store.path.name,
        "description": f"exported by workbench from {store.path.name} "
        f"({store.manifest['model'].get('class')})",
        "files": {"states": "states.h5", "train": "train.h5", "words": "words.dict"}
        | ({"meta": "meta.h5"} if meta_cfg else {}),
        "word_sequence": {"file": "train", "path": "words", "dict_file": "words"},
        "states": {
            "file": "states",
            "types": [
                {
                    "type": _lstmvis_type(n),
                    "layer": _layer(n),
                    "path": n,
                    "transform": "none",
                    **({"unsigned": True} if is_gate(n) else {}),
                }
                for n in names
            ],
        },
        **({"meta": meta_cfg} if meta_cfg else {}),
    }
    header = (
        "# LSTMVis 2 project (HendrikStrobelt/LSTMVis e0628ca, API v2) written by workbench.\n"
        "# LSTMVis shows and searches tanh(value) whatever 'transform' says; 'transform: none'\n"
        "# tells `workbench import` that the values are the raw activations.\n"
    )
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=None)
    (folder / "lstm.yml").write_text(header + text, encoding="utf-8")
    return folder


MAX_DISCRETE = 256  # distinct values listed for a discrete track; wider ones are scalar


def _vis(values: np.ndarray) -> dict:
    """The ``vis`` entry LSTMVis's client reads for a meta track: explicit lists only."""
    if values.dtype.kind in "biu":
        v = values.astype(np.int64)
        lo, hi = (int(v.min()), int(v.max())) if v.size else (0, 1)
        if hi - lo < MAX_DISCRETE:
            return {"type": "discrete", "range": list(range(lo, hi + 1))}
        return {"type": "scalar", "range": [float(lo), float(hi)]}
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return {"type": "scalar", "range": [lo, hi]}


def import_lstmvis(folder, path, chunk_tokens: int = 8192, dtype: str | None = None):
    """Read an LSTMVis project into a new store.

    LSTMVis applies ``tanh`` to states unless a type says ``transform: none``; the imported
    values are the ones LSTMVis shows (transformed). Without ``doc_offsets`` the corpus is
    one document.

    Parameters
    ----------
    folder : str or Path
        The project folder (with ``lstm.yml``).
    path : str or Path
        The new store.
    chunk_tokens : int
        Rows per chunk.
    dtype : {"float16", "float32"}, optional
        Store dtype. Default: the source's (float16 if every states dataset is float16,
        else float32; float64 narrows to float32, the widest a store holds).

    Returns
    -------
    StateStore
    """
    import h5py
    import yaml

    from workbench.store._limits import check_size
    from workbench.store._store import StateStore

    chunk_tokens = check_size("chunk_tokens", chunk_tokens)
    folder, path = Path(folder), Path(path)
    cfg_file = folder / "lstm.yml"
    if not cfg_file.exists():
        raise FileNotFoundError(f"no lstm.yml in {folder}; pass an LSTMVis project folder")
    cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    files = cfg.get("files", {})

    def h5(key):
        return h5py.File(folder / files[key], "r")

    ws = cfg["word_sequence"]
    with h5(ws["file"]) as f:
        words = np.asarray(f[ws["path"]][:]).astype(np.int64).ravel()
        offsets = np.asarray(f["doc_offsets"][:]) if "doc_offsets" in f else None
        doc_ids = (
            [s.decode() if isinstance(s, bytes) else str(s) for s in f["doc_ids"][:]]
            if "doc_ids" in f
            else None
        )
    n = words.size
    vocab_map: dict[int, str] = {}
    dict_file = folder / files[ws["dict_file"]]
    for line in dict_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            tok, idx = line.rsplit(maxsplit=1)
            vocab_map[int(idx)] = _unescape(tok)
    ids = sorted(vocab_map)
    vocab = [vocab_map[i] for i in ids]
    remap = np.full(max(ids) + 1, -1, np.int64)
    remap[ids] = np.arange(len(ids))
    if offsets is None:
        offsets = np.array([0, n])
    doc_ids = doc_ids or [f"doc{i}" for i in range(len(offsets) - 1)]
    if path.exists() and any(path.iterdir()):
        raise StoreError(f"{path} exists and is not empty; pick a new store path")
    default_file = cfg["states"].get("file")
    if dtype is None:
        kinds = set()
        for t in cfg["states"]["types"]:
            with h5(t.get("file", default_file)) as f:
                kinds.add(np.dtype(f[t["path"]].dtype))
        dtype = "float16" if kinds == {np.dtype(np.float16)} else "float32"
    if dtype not in ("float16", "float32"):
        raise StoreError(f"dtype must be float16 or float32, got {dtype!r}")
    created = not path.exists()
    try:
        _write_store(
            folder, path, cfg, h5, words, offsets, doc_ids, vocab, remap, chunk_tokens, dtype
        )
    except BaseException:  # nothing half-imported is left: a rerun starts clean
        if created:
            shutil.rmtree(path, ignore_errors=True)
        else:
            for child in path.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return StateStore.open(path)


def _write_store(folder, path, cfg, h5, words, offsets, doc_ids, vocab, remap, chunk_tokens,
                 dtype):  # fmt: skip
    """Create the store at ``path`` from the project's arrays (see :func:`import_lstmvis`)."""
    import zarr

    from workbench.store._build import TOKEN_COLUMNS, _fill
    from workbench.store._layout import create_column, create_states

    n = words.size
    default_file = cfg["states"].get("file")
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    units, names = {}, []
    for t in cfg["states"]["types"]:
        with h5(t.get("file", default_file)) as f:
            data = f[t["path"]]
            if data.shape[0] != n:
                raise StoreError(
                    f"states {t['path']!r} have {data.shape[0]} steps, the words {n}; "
                    "the project is inconsistent"
                )
            name = t["path"].strip("/").replace("/", ".")
            arr = create_states(group, name, n, int(data.shape[1]), chunk_tokens, dtype)
            for a in range(0, n, 1 << 16):
                block = np.asarray(data[a : a + (1 << 16)], dtype=np.float32)
                if t.get("transform", "tanh") == "tanh":
                    block = np.tanh(block)
                arr[a : a + block.shape[0]] = block.astype(dtype)
            units[name] = int(data.shape[1])
            names.append(name)
    doc_index = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)).astype(np.int32)
    positions = (np.arange(n) - np.repeat(offsets[:-1], np.diff(offsets))).astype(np.int32)
    cols = {
        "doc": doc_index,
        "position": positions,
        "surface": remap[words].astype(np.int32),
        "token_id": words.astype(np.int32),
    }
    for col, (dt, fill) in TOKEN_COLUMNS.items():
        arr = create_column(group, f"tokens/{col}", n, chunk_tokens, dt, fill)
        if col in cols:
            arr[:] = cols[col]
    meta_kinds = {}
    for track, info in (cfg.get("meta") or {}).items():
        if info.get("index", "self") != "self" or info.get("type", "general") != "general":
            continue
        with h5(info["file"]) as f:
            values = np.asarray(f[info["path"]][:]).ravel()
        if values.size != n:
            continue
        kind = "float32" if values.dtype.kind == "f" else "int32"
        create_column(group, f"meta/{track}", n, chunk_tokens, kind, _fill(kind))[:] = values
        meta_kinds[track] = kind
    nd = len(offsets) - 1
    create_column(group, "docs/offsets", nd + 1, nd + 1, "int64", 0)[:] = offsets
    for col, dt, fill in (
        ("label", "int32", -1),
        ("prediction", "int32", -1),
        ("loss", "float32", float("nan")),
    ):
        create_column(group, f"docs/{col}", nd, nd, dt, fill)
    group.attrs[MANIFEST_KEY] = {
        "schema": SCHEMA_VERSION,
        "status": "complete",
        "model": {
            "class": "imported",
            "fingerprint": "lstmvis:" + cfg.get("name", ""),
            "source": str(folder),
        },
        "kind": "imported",
        "corpus": {"fingerprint": None, "name": cfg.get("name")},
        "names": names,
        "units": units,
        "dtype": dtype,
        "chunk_tokens": chunk_tokens,
        "n_tokens": int(n),
        "n_docs": nd,
        "doc_ids": doc_ids,
        "segments": [],
        "surface_vocab": vocab,
        "vocab": vocab,
        "meta": meta_kinds,
    }
