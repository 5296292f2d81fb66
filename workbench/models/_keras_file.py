"""Read a saved Keras model without TensorFlow or Keras: its config and weights, with h5py.

Two formats: Keras 3 ``.keras`` (a zip holding ``config.json`` and ``model.weights.h5``) and
the legacy HDF5 ``.h5`` of ``model.save("model.h5")`` (Keras 2 and 3: the config in the
``model_config`` attribute, the weights under ``model_weights/<layer>``). Nothing is executed:
the config is JSON and the weights are arrays.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The largest config.json / weights file read from a .keras zip.
MAX_MEMBER_BYTES = 4 << 30


class KerasFileError(ValueError):
    """A file that is not a saved Keras model; the message names the problem and the fix."""


@dataclass
class KerasFile:
    """What a saved Keras model holds.

    Attributes
    ----------
    config : dict
        The model's saved config (``{"class_name": "Sequential" | "Functional", "config":
        {...}}``).
    weights : dict of str to list of numpy.ndarray
        Each layer's weights by layer name, in the layer's own order (a ``Bidirectional``:
        the forward layer's, then the backward layer's).
    format : {"keras", "h5"}
    keras_version : str or None
    """

    config: dict
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    format: str = "keras"
    keras_version: str | None = None


def _snake(name: str) -> str:
    """Keras's snake case of a class name (``SimpleRNN`` -> ``simple_rnn``)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _arrays_v3(group) -> list[np.ndarray]:
    """A layer's arrays in a Keras 3 weights file: its own vars, then cell, fwd, bwd layers."""
    import h5py

    out = []
    if "vars" in group:
        v = group["vars"]
        out += [np.asarray(v[k]) for k in sorted(v, key=int) if isinstance(v[k], h5py.Dataset)]
    order = ["cell", "forward_layer", "backward_layer"]
    others = sorted(k for k in group if k != "vars" and k not in order)
    for key in [k for k in order if k in group] + others:
        if isinstance(group[key], h5py.Group):
            out += _arrays_v3(group[key])
    return out


def _layer_list(config: dict) -> list[dict]:
    layers = config.get("config", {}).get("layers")
    if not isinstance(layers, list):
        raise KerasFileError(
            f"the saved model is a {config.get('class_name')!r}, not a Sequential or "
            "functional model with a layer list; workbench converts those two"
        )
    return layers


def _weights_v3(h5, config: dict) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays, matching the file's ``layers/<snake class name>[_n]`` groups."""
    root = h5.get("layers")
    if root is None:
        return {}
    by_attr = {}
    for key in root:
        vars_ = root[key].get("vars")
        if vars_ is not None and "name" in vars_.attrs:
            by_attr[_text(vars_.attrs["name"])] = key
    sequential = config.get("class_name") == "Sequential"
    used: dict[str, int] = {}
    out = {}
    for layer in _layer_list(config):
        if sequential and layer.get("class_name") == "InputLayer":
            continue  # Sequential.layers leaves its InputLayer out, the file too
        base = _snake(layer.get("class_name", ""))
        key = base if base not in used else f"{base}_{used[base]}"
        used[base] = used.get(base, 0) + 1
        name = layer.get("config", {}).get("name") or layer.get("name")
        key = by_attr.get(name, key)
        out[name] = _arrays_v3(root[key]) if key in root else []
    return out


def _read_keras_zip(src: Path) -> KerasFile:
    import h5py

    try:
        archive = zipfile.ZipFile(src)
    except zipfile.BadZipFile:
        raise KerasFileError(f"{src} is not a .keras file (not a zip archive)") from None
    with archive:
        names = set(archive.namelist())
        for need in ("config.json", "model.weights.h5"):
            if need not in names:
                raise KerasFileError(
                    f"{src} has no {need}: not a Keras 3 model file; save the model with "
                    "model.save('model.keras')"
                )
            if archive.getinfo(need).file_size > MAX_MEMBER_BYTES:
                raise KerasFileError(f"{src}: {need} is larger than {MAX_MEMBER_BYTES} bytes")
        try:
            config = json.loads(archive.read("config.json"))
        except json.JSONDecodeError as exc:
            raise KerasFileError(f"{src}: config.json is not valid JSON ({exc})") from None
        meta = {}
        if "metadata.json" in names:
            try:
                meta = json.loads(archive.read("metadata.json"))
            except json.JSONDecodeError:
                meta = {}
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
            weights = _weights_v3(h5, config)
    return KerasFile(config, weights, "keras", meta.get("keras_version"))


def _read_h5(src: Path) -> KerasFile:
    import h5py

    try:
        h5 = h5py.File(src, "r")
    except OSError as exc:
        raise KerasFileError(f"{src} is not an HDF5 file ({exc})") from None
    with h5:
        if "model_config" not in h5.attrs:
            raise KerasFileError(
                f"{src} holds weights only (no model_config): save the whole model with "
                "model.save('model.keras') or model.save('model.h5')"
            )
        try:
            config = json.loads(_text(h5.attrs["model_config"]))
        except json.JSONDecodeError as exc:
            raise KerasFileError(f"{src}: model_config is not valid JSON ({exc})") from None
        group = h5["model_weights"] if "model_weights" in h5 else h5
        weights = {}
        for name in group:
            layer = group[name]
            if not isinstance(layer, h5py.Group):
                continue
            names = [_text(n) for n in layer.attrs.get("weight_names", [])]
            weights[name] = [np.asarray(layer[n]) for n in names]
        version = h5.attrs.get("keras_version")
    return KerasFile(config, weights, "h5", _text(version) if version is not None else None)


def read(src: str | Path) -> KerasFile:
    """Read a ``.keras`` or ``.h5`` Keras model file (config and weights; nothing runs).

    Raises
    ------
    KerasFileError
        A missing file, another format, or a weights-only file.
    """
    src = Path(src)
    if not src.is_file():
        raise KerasFileError(f"no file at {src}; pass a model saved with model.save(PATH)")
    with src.open("rb") as fh:
        head = fh.read(8)
    if head[:2] == b"PK":
        return _read_keras_zip(src)
    if head == b"\x89HDF\r\n\x1a\n":
        return _read_h5(src)
    raise KerasFileError(
        f"{src} is neither a Keras 3 .keras zip nor an HDF5 .h5 file; save the model with "
        "model.save('model.keras')"
    )
