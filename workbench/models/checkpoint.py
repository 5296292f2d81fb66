"""Checkpoints: a folder with ``model.safetensors`` + ``config.json``. Never pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.models.architectures import build
from workbench.models.tokenizer import Tokenizer

SCHEMA = "workbench.checkpoint/1"
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the problem and the fix."""


@dataclass
class Bundle:
    """A loaded model with what it needs: tokenizer or scaling, and its metadata.

    Attributes
    ----------
    model : nn.Module
        In eval mode, ready for :func:`workbench.record` and :func:`workbench.explain`.
    kind : str
        ``charlm``, ``classifier``, ``forecaster``, ``g2p`` (an encoder-decoder), or ``keras``
        (a converted Keras model).
    task : str
        The corpus it was trained on (``python``, ``sentiment``, ``sunspots``, ``co2``,
        ``parens``) or a user name.
    tokenizer : Tokenizer or None
        For token models.
    config : dict
        Everything in ``config.json``.
    metrics : dict
        Held-out test metrics next to the baselines.
    path : Path or None
        Where it was loaded from.
    """

    model: nn.Module
    kind: str
    task: str
    tokenizer: Tokenizer | None
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def labels(self) -> list[str]:
        """Class names of a classifier."""
        return list(self.config.get("labels", []))

    def tokenize(self, text: str) -> list[str]:
        """Split text as the model was trained."""
        if self.tokenizer is None:
            raise CheckpointError(f"the {self.kind} model {self.task!r} takes series, not text")
        return self.tokenizer.tokenize(text)

    def encode(self, texts: list[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> ``(ids [batch, time], lengths [batch])``, padded with PAD = 0.

        Raises
        ------
        ValueError
            For an empty or whitespace-only text (a word model) or empty text (char model).
        """
        if isinstance(texts, str):
            texts = [texts]
        encoded = []
        for text in texts:
            tokens = self.tokenize(text)
            if not tokens:
                raise ValueError("the text is empty (no token to feed the model); type some text")
            encoded.append(self.tokenizer.encode(tokens))
        lengths = torch.tensor([len(e) for e in encoded])
        ids = torch.zeros(len(encoded), int(lengths.max()), dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.tensor(e)
        return ids, lengths


def save(
    path: str | Path,
    model: nn.Module,
    kind: str,
    task: str,
    arch: dict,
    tokenizer: Tokenizer | None = None,
    **config: Any,
) -> Path:
    """Write a checkpoint folder (weights as safetensors, everything else as JSON)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    body = {"schema": SCHEMA, "kind": kind, "task": task, "arch": arch, **config}
    if tokenizer is not None:
        body["tokenizer"] = tokenizer.to_json()
    (path / "config.json").write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path


def load(path: str | Path) -> Bundle:
    """Load a checkpoint folder written by :func:`save` (or a shipped model's name).

    Raises
    ------
    CheckpointError
        For a pickle file (with how to convert it), a missing folder or file, a config of
        another schema, or weights that do not match the architecture.
    """
    path = Path(path)
    if not path.exists() and str(path) in SHIPPED:
        path = shipped(str(path))
    if path.is_file():
        if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
            raise CheckpointError(
                f"{path} is a Keras model file; convert it once with `workbench convert {path} "
                "-o FOLDER` (no TensorFlow needed) and load that folder"
            )
        if path.suffix in _PICKLE_SUFFIXES or _looks_pickled(path):
            raise CheckpointError(
                f"{path} is a pickle (torch.save) file; workbench never unpickles (it can run "
                "arbitrary code). Convert it once with `workbench convert` (it loads with "
                "torch.load(weights_only=True) only) into a safetensors + JSON folder."
            )
        raise CheckpointError(
            f"{path} is a file; a checkpoint is a folder with model.safetensors and config.json"
        )
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint folder at {path}")
    for name in ("config.json", "model.safetensors"):
        if not (path / name).exists():
            raise CheckpointError(
                f"{path} has no {name}: a checkpoint needs config.json and "
                "model.safetensors (written by workbench train)"
            )
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}/config.json is not valid JSON ({exc})") from None
    if config.get("schema") != SCHEMA:
        raise CheckpointError(
            f"{path}/config.json has schema {config.get('schema')!r}; expected {SCHEMA!r}"
        )
    _check_config(path, config)
    from safetensors.torch import load_file

    try:
        model = build(config["kind"], **config["arch"])
    except TypeError as exc:
        raise CheckpointError(
            f"{path}/config.json: arch does not fit a {config['kind']} model ({exc})"
        ) from None
    try:
        state = load_file(str(path / "model.safetensors"))
    except Exception as exc:
        raise CheckpointError(f"{path}/model.safetensors is unreadable ({exc})") from None
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the architecture in config.json "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weight shapes do not match config.json ({exc})") from None
    tokenizer = Tokenizer.from_json(config["tokenizer"]) if "tokenizer" in config else None
    return Bundle(
        model.eval(),
        config["kind"],
        config["task"],
        tokenizer,
        config,
        config.get("metrics", {}),
        path,
    )


def _check_config(path: Path, config) -> None:
    """Refuse a ``config.json`` without the fields :func:`load` needs, naming the first."""
    from workbench.models.architectures import KINDS

    if not isinstance(config, dict):
        raise CheckpointError(f"{path}/config.json is not a JSON object")
    for key, want, types in (
        ("kind", f"one of {', '.join(KINDS)}", str),
        ("task", "the corpus or task name", str),
        ("arch", "the architecture's settings", dict),
    ):
        if not isinstance(config.get(key), types):
            got = "has no field" if key not in config else "has a wrong field"
            raise CheckpointError(
                f"{path}/config.json {got} {key!r} ({want}); write checkpoints with "
                "workbench train or workbench.models.checkpoint.save"
            )
    if config["kind"] not in KINDS:
        raise CheckpointError(
            f"{path}/config.json: kind {config['kind']!r} is not one of {', '.join(KINDS)}"
        )
    if "tokenizer" in config and not isinstance(config["tokenizer"], dict):
        raise CheckpointError(f"{path}/config.json: field 'tokenizer' is not an object")


def _looks_pickled(path: Path) -> bool:
    head = path.read_bytes()[:4]
    return head[:1] == b"\x80" or head[:2] == b"PK"


SHIPPED = (
    "python", "sentiment", "sunspots", "co2", "parens", "g2p", "python-gru", "python-rnn"
)  # fmt: skip
#: The shipped checkpoints, installed with the package (package data).
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def shipped(name: str) -> Path:
    """Folder of a shipped checkpoint (``workbench/models/shipped/NAME``, package data).

    Searched in ``$WORKBENCH_MODELS/NAME`` first (your own copy or retrained versions), then
    in the folder installed with the package.

    Raises
    ------
    CheckpointError
        If ``name`` is not shipped or the folder cannot be found.
    """
    from workbench.config import settings

    if name not in SHIPPED:
        raise CheckpointError(f"no shipped model {name!r}; shipped: {', '.join(SHIPPED)}")
    roots = [SHIPPED_DIR]
    if settings().models is not None:
        roots.insert(0, settings().models)
    for root in roots:
        if (root / name / "config.json").exists():
            return root / name
    raise CheckpointError(
        f"the shipped model {name!r} was not found under {', '.join(map(str, roots))}; "
        "reinstall the package (its wheel ships the checkpoints), point WORKBENCH_MODELS at a "
        "folder holding NAME/config.json, or train it with `workbench train`"
    )
