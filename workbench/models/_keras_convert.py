"""``workbench convert model.keras``: a saved Keras model -> a safetensors + JSON checkpoint.

The file is read by :mod:`workbench.models._keras_file` (h5py and the saved config, nothing
executed), its layers mapped by :mod:`workbench.models._keras_layers`; where Keras is
importable, the converted forward is checked against Keras's own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from workbench.models._convert import ConvertError, _read_vocab


def _keras_input(model, info: dict, steps: int | None, seed: int = 0):
    """A small random input for the converted model (ids or floats), as a numpy array."""
    import numpy as np

    rng = np.random.default_rng(seed)
    first, steps = model.specs[0], steps or 7
    if info["ids"]:
        if not first.get("mask_zero"):
            return rng.integers(0, first["vocab"], size=(2, steps)).astype("int32")
        ids = rng.integers(1, first["vocab"], size=(2, steps)).astype("int32")
        ids[1, max(1, steps // 2) :] = 0  # id 0 pads: a shorter second sequence
        return ids
    return rng.normal(size=(2, steps, first["input"])).astype("float32")


def check_against_keras(src: Path, model, info: dict) -> dict:
    """Compare the converted forward with Keras's own, where Keras is importable.

    Keras loads the file itself (``keras.saving.load_model``, safe mode; only after the
    conversion has accepted every layer) on its default backend, or torch when none is set.

    Returns
    -------
    dict
        ``max_abs_diff`` and ``keras_version``; or ``skipped`` with the reason.

    Raises
    ------
    ConvertError
        If the two outputs differ by more than 1e-4.
    """
    import importlib.util
    import os

    import numpy as np
    import torch

    if importlib.util.find_spec("keras") is None:
        return {"skipped": "keras is not installed"}
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras

        kmodel = keras.saving.load_model(str(src), compile=False)
        shape = tuple(kmodel.inputs[0].shape)
        x = _keras_input(model, info, shape[1] if len(shape) > 1 else None)
        want = np.asarray(keras.ops.convert_to_numpy(kmodel(x)), dtype=np.float64)
    except Exception as exc:  # a backend that does not load, a Keras that cannot read it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"skipped": f"keras could not run the file ({type(exc).__name__}: {first})"}
    with torch.no_grad():
        got = model(torch.from_numpy(x).long() if info["ids"] else torch.from_numpy(x))
    got = got.double().numpy()
    if got.shape != want.shape:
        raise ConvertError(f"the converted model returns {got.shape}, Keras {want.shape}")
    diff = float(np.abs(got - want).max())
    if not diff <= 1e-4:
        raise ConvertError(
            f"the converted model differs from Keras by {diff:.3g} on a random input; please "
            "report it with the model's config"
        )
    return {"max_abs_diff": diff, "keras_version": keras.__version__}


def convert_keras_file(
    src: str | Path,
    out: str | Path,
    *,
    task: str | None = None,
    vocab: str | Path | None = None,
    level: str = "char",
    labels: list[str] | None = None,
):
    """Convert a saved Keras model (``.keras`` or ``.h5``) into a checkpoint folder.

    The file is read with h5py and its saved config (no TensorFlow or Keras needed); the
    model becomes a :class:`~workbench.models.keras_stack.KerasStack` of ``nn.Embedding``,
    ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``, ``nn.Linear`` and ``nn.Dropout``. Where Keras is
    importable, the converted forward is checked against Keras's own. The Keras config is
    kept in the checkpoint's provenance (``converted_from.keras_config``).

    Parameters
    ----------
    src : str or Path
        The file written by ``model.save("model.keras")`` or ``model.save("model.h5")``.
    out : str or Path
        New checkpoint folder.
    task : str, optional
        Name stored in the config (default: the file's stem).
    vocab : str or Path, optional
        Embedding models: their vocabulary (JSON list or one token a line, ``<pad>``,
        ``<unk>`` first), so text can be encoded.
    level : {"char", "word"}
    labels : list of str, optional
        Names of the output units.

    Returns
    -------
    Bundle
        The converted checkpoint, loaded back through :func:`workbench.load` (kind ``keras``).

    Raises
    ------
    ConvertError
        For a file that is not a Keras model, or a layer or setting without a PyTorch
        equivalent (the message names the layer and the setting).
    """
    import torch

    from workbench.models import _keras_file
    from workbench.models._keras_layers import convert_layers, layer_chain
    from workbench.models.architectures import build
    from workbench.models.checkpoint import load, save

    src, out = Path(src), Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConvertError(f"{out} exists and is not empty; pass a new folder with -o")
    try:
        kfile = _keras_file.read(src)
        specs, state, info = convert_layers(layer_chain(kfile.config), kfile.weights)
    except ValueError as exc:
        raise ConvertError(f"{src}: {exc}") from None
    model = build("keras", layers=specs)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    model.eval()
    tokenizer = None
    if vocab is not None:
        if not info["ids"]:
            raise ConvertError("--vocab is for models that start with an Embedding layer")
        tokenizer = _read_vocab(Path(vocab), level)
        if len(tokenizer) != specs[0]["vocab"]:
            raise ConvertError(
                f"the vocabulary has {len(tokenizer)} tokens, the embedding {specs[0]['vocab']}"
            )
    check = check_against_keras(src, model, info)
    extra = {
        "converted_from": {
            "file": src.name,
            "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
            "format": kfile.format,
            "keras_version": kfile.keras_version,
            "keras_config": kfile.config,
            "checked_against_keras": check,
        },
        "input": info,
    }
    if labels is not None:
        extra["labels"] = list(labels)
    save(out, model, "keras", task or src.stem, {"layers": specs}, tokenizer, **extra)
    return load(out)
