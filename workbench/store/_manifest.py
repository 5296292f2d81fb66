"""A store's manifest checked against its arrays' own metadata when the store opens.

The manifest (``zarr.json`` attributes) says how many tokens, units and documents the store
holds and in which dtype; every reader trusts it. An edited or damaged manifest must not
open silently: each claim is compared with the ``zarr.json`` of the arrays it describes.
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.store._layout import StoreError

# field -> (type, what it must be), checked before the arrays
_FIELDS = {
    "names": (list, "a list of recorded names"),
    "units": (dict, "names -> unit counts"),
    "n_tokens": (int, "a token count"),
    "n_docs": (int, "a document count"),
    "doc_ids": (list, "a list of document ids"),
    "dtype": (str, "float16 or float32"),
    "chunk_tokens": (int, "tokens per chunk"),
    "meta": (dict, "meta track -> kind"),
    "surface_vocab": (list, "the token strings"),
}

# token-table columns checked where the store has them (synthetic bench stores hold a few)
_TOKEN_COLUMNS = ("doc", "position", "token_id", "surface", "prediction", "loss")


def validate(path: Path, manifest: dict) -> None:
    """Refuse a manifest that disagrees with the store's arrays (one line naming the field).

    Raises
    ------
    StoreError
    """
    for key, (kind, what) in _FIELDS.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            _refuse(path, key, value, f"it must be {what}")
    n, nd = manifest["n_tokens"], manifest["n_docs"]
    if n < 0 or nd < 0 or manifest["chunk_tokens"] < 1:
        _refuse(path, "n_tokens" if n < 0 else "n_docs" if nd < 0 else "chunk_tokens", None, "")
    if manifest["dtype"] not in ("float16", "float32"):
        _refuse(path, "dtype", manifest["dtype"], "it must be float16 or float32")
    if sorted(manifest["names"]) != sorted(manifest["units"]):
        _refuse(path, "names", manifest["names"], "they differ from the keys of 'units'")
    if len(manifest["doc_ids"]) != nd:
        _refuse(path, "n_docs", nd, f"'doc_ids' lists {len(manifest['doc_ids'])} documents")
    for name, units in manifest["units"].items():
        meta = _array_meta(path, f"states/{name}", "units")
        shape = meta.get("shape")
        if shape != [n, units]:
            key = "n_tokens" if shape and shape[1:] == [units] else "units"
            value = n if key == "n_tokens" else units
            _refuse(path, key, value, f"the array states/{name} is shaped {shape}")
        if meta.get("data_type") != manifest["dtype"]:
            _refuse(
                path, "dtype", manifest["dtype"], f"states/{name} holds {meta.get('data_type')}"
            )
        chunks = meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape", [])
        if chunks[:1] != [manifest["chunk_tokens"]]:
            _refuse(path, "chunk_tokens", manifest["chunk_tokens"], f"states/{name} has {chunks}")
    present = [f"tokens/{c}" for c in _TOKEN_COLUMNS if (path / "tokens" / c).is_dir()]
    for key, rows, field in (
        *((key, n, "n_tokens") for key in present),
        *((f"meta/{t}", n, "n_tokens") for t in manifest["meta"]),
        ("docs/offsets", nd + 1, "n_docs"),
    ):
        shape = _array_meta(path, key, field).get("shape")
        if shape != [rows]:
            _refuse(path, field, manifest[field], f"the array {key} is shaped {shape}")


def _array_meta(path: Path, key: str, field: str) -> dict:
    try:
        meta = json.loads((path / key / "zarr.json").read_text())
    except (OSError, ValueError):
        _refuse(path, field, None, f"the array {key} is missing or unreadable")
    return meta if isinstance(meta, dict) else {}


def _refuse(path: Path, field: str, value, why: str) -> None:
    shown = "" if value is None else f" ({_short(value)})"
    raise StoreError(
        f"{path}: manifest field {field!r}{shown} disagrees with the store"
        f"{' (' + why + ')' if why else ''}; the manifest was edited or the store damaged: "
        "rebuild it"
    )


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
