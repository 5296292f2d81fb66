"""``workbench convert``: a ``torch.save`` state_dict -> a safetensors + JSON checkpoint.

Pickle files can run arbitrary code when loaded, so :func:`workbench.load` refuses them. This
command is the one place that reads them, and only through ``torch.load(weights_only=True)``,
which unpickles nothing but tensors and plain containers: a whole pickled model (a class
instance) is refused with how to save its weights instead.

The architecture is read from the weight shapes (one of
:mod:`workbench.models.architectures`: ``charlm``, ``classifier``, ``forecaster``; fused or
residual LSTM/GRU, or the peephole cell), so the config written always builds.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import typer

_GATES = {4: "lstm", 3: "gru"}
_WRAPPERS = ("state_dict", "model_state_dict", "model", "weights")


class ConvertError(ValueError):
    """A file that cannot be converted; the message names the problem and the fix."""


def read_state_dict(src: str | Path) -> dict:
    """Tensors of a ``torch.save`` file, read with ``torch.load(weights_only=True)`` only.

    Parameters
    ----------
    src : str or Path
        A ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` file holding a state_dict (or a dict with
        one under ``state_dict`` / ``model_state_dict`` / ``model``).

    Returns
    -------
    dict of str to torch.Tensor
        With a ``module.`` prefix (``nn.DataParallel``) removed.

    Raises
    ------
    ConvertError
        A missing file, a whole pickled model, or a file holding no tensors.
    """
    import pickle

    import torch

    src = Path(src)
    if not src.is_file():
        raise ConvertError(f"no file at {src}; pass the file written by torch.save")
    try:
        obj = torch.load(str(src), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConvertError(
            f"{src} holds more than weights (a whole pickled model or other objects: {first}); "
            "workbench only reads tensors (torch.load(weights_only=True)), since unpickling can "
            "run arbitrary code. Where the model was trained, save its weights with "
            "torch.save(model.state_dict(), 'weights.pt') and convert that file."
        ) from None
    except Exception as exc:  # zip/pickle format errors
        raise ConvertError(
            f"{src} is not a torch.save file ({type(exc).__name__}: {exc}); pass the file "
            "written by torch.save(model.state_dict(), PATH)"
        ) from None
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ConvertError(
            f"{src} holds a {type(obj).__name__}, not a state_dict; save it with "
            "torch.save(model.state_dict(), PATH)"
        )
    state = {}
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            state[k[len("module.") :] if str(k).startswith("module.") else str(k)] = v
    if not state:
        raise ConvertError(f"{src} holds no tensors; save it with torch.save(model.state_dict())")
    return state


def _count(state: dict, pattern: str) -> int:
    """1 + the largest layer index matched by ``pattern`` in the keys of ``state``."""
    return 1 + max(int(m.group(1)) for k in state if (m := re.match(pattern, k)))


def _rnn_arch(state: dict, prefix: str) -> dict:
    """``arch, hidden, layers, input_size, bidirectional, residual`` of the ``prefix`` RNN."""
    if f"{prefix}.cells.0.linear.weight" in state:
        layers = _count(state, rf"{re.escape(prefix)}\.cells\.(\d+)\.")
        w = state[f"{prefix}.cells.0.linear.weight"]
        hidden = w.shape[0] // 4
        return dict(
            arch="peephole",
            hidden=hidden,
            layers=layers,
            input_size=w.shape[1] - hidden,
            bidirectional=False,
            residual=False,
        )
    residual = f"{prefix}.layers.0.weight_ih_l0" in state
    base = f"{prefix}.layers.0" if residual else prefix
    key = f"{base}.weight_ih_l0"
    if key not in state:
        raise ConvertError(
            f"no recurrent weights under {prefix!r} (expected {key}); convert handles the "
            "architectures of workbench.models.architectures. For another module, write its "
            "state_dict with safetensors.torch.save_file and record it with workbench.record"
        )
    w = state[key]
    hh = state[f"{base}.weight_hh_l0"]
    hidden = hh.shape[1]
    gates = w.shape[0] // hidden
    if gates not in _GATES or w.shape[0] != gates * hidden:
        raise ConvertError(f"{key} has shape {tuple(w.shape)}: not an LSTM or GRU layer")
    if residual:
        layers = _count(state, rf"{re.escape(prefix)}\.layers\.(\d+)\.")
    else:
        layers = _count(state, rf"{re.escape(prefix)}\.weight_ih_l(\d+)$")
    return dict(
        arch=_GATES[gates],
        hidden=hidden,
        layers=layers,
        input_size=w.shape[1],
        bidirectional=f"{base}.weight_ih_l0_reverse" in state,
        residual=residual,
    )


def infer_arch(state: dict, kind: str | None = None) -> tuple[str, dict]:
    """``(kind, arch)`` that :func:`workbench.models.architectures.build` accepts.

    Parameters
    ----------
    state : dict of str to torch.Tensor
    kind : {"charlm", "classifier", "forecaster"}, optional
        Inferred when omitted: an embedding with a head as wide as the vocabulary is a
        ``charlm``, another embedding a ``classifier``, no embedding a ``forecaster``.

    Raises
    ------
    ConvertError
        For weights that match none of the architectures.
    """
    if "head.weight" not in state:
        raise ConvertError(
            "no head.weight in the state_dict: convert handles the architectures of "
            "workbench.models.architectures (embed / rnn / head); keys found: "
            f"{', '.join(sorted(state)[:8])}"
        )
    head = state["head.weight"]
    embed = state.get("embed.weight")
    if kind is None:
        if embed is None:
            kind = "forecaster"
        elif "pool.proj.weight" in state or head.shape[0] != embed.shape[0]:
            kind = "classifier"
        else:
            kind = "charlm"
    if kind not in ("charlm", "classifier", "forecaster"):
        raise ConvertError(f"unknown kind {kind!r}; use charlm, classifier or forecaster")
    if kind != "forecaster" and embed is None:
        raise ConvertError(f"a {kind} has an embedding (embed.weight), this state_dict has none")
    rnn = _rnn_arch(state, "rnn")
    if kind == "charlm":
        if rnn["bidirectional"]:
            raise ConvertError("a charlm is unidirectional; this rnn has reverse weights")
        return kind, dict(
            vocab=int(embed.shape[0]),
            embed=int(embed.shape[1]),
            hidden=int(rnn["hidden"]),
            layers=int(rnn["layers"]),
            arch=rnn["arch"],
            dropout=0.0,
            residual=bool(rnn["residual"]),
        )
    if kind == "classifier":
        if rnn["arch"] == "peephole" or rnn["residual"]:
            raise ConvertError("a classifier has one fused nn.LSTM / nn.GRU under rnn")
        attention = "pool.proj.weight" in state
        if attention and state["pool.proj.weight"].shape[0] != 64:
            raise ConvertError("the classifier's attention pooling must have 64 units")
        return kind, dict(
            vocab=int(embed.shape[0]),
            embed=int(embed.shape[1]),
            hidden=int(rnn["hidden"]),
            classes=int(head.shape[0]),
            arch=rnn["arch"],
            layers=int(rnn["layers"]),
            bidirectional=bool(rnn["bidirectional"]),
            attention=attention,
            dropout=0.0,
        )
    if rnn["arch"] == "peephole" or rnn["residual"] or rnn["bidirectional"]:
        raise ConvertError("a forecaster has one unidirectional fused nn.LSTM / nn.GRU")
    return kind, dict(
        features=int(rnn["input_size"]),
        hidden=int(rnn["hidden"]),
        horizon=int(head.shape[0]),
        arch=rnn["arch"],
        layers=int(rnn["layers"]),
        dropout=0.0,
    )


def _read_vocab(path: Path, level: str):
    from workbench.models.tokenizer import PAD, UNK, Tokenizer

    if not path.is_file():
        raise ConvertError(f"no vocabulary file at {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        vocab = json.loads(text)
        vocab = vocab.get("vocab", vocab) if isinstance(vocab, dict) else vocab
    else:
        vocab = text.split("\n")
        if vocab and vocab[-1] == "":
            vocab = vocab[:-1]
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise ConvertError(f"{path}: a vocabulary is a JSON list of strings or one token a line")
    if vocab[:2] != [PAD, UNK]:
        raise ConvertError(f"{path}: the vocabulary must start with {PAD!r}, {UNK!r} (ids 0, 1)")
    return Tokenizer(vocab, level)


def convert_file(
    src: str | Path,
    out: str | Path,
    *,
    kind: str | None = None,
    task: str | None = None,
    vocab: str | Path | None = None,
    level: str = "char",
    labels: list[str] | None = None,
):
    """Convert a state_dict saved by ``torch.save`` into a checkpoint folder and load it.

    Parameters
    ----------
    src : str or Path
        The ``torch.save`` file (read with ``weights_only=True``).
    out : str or Path
        New checkpoint folder (``model.safetensors`` + ``config.json``).
    kind : str, optional
        ``charlm``, ``classifier`` or ``forecaster`` (inferred from the weights if omitted).
    task : str, optional
        Name stored in the config (default: the file's stem).
    vocab : str or Path, optional
        Token models: JSON list or one token per line, starting with ``<pad>``, ``<unk>``.
    level : {"char", "word"}
        How the vocabulary splits text.
    labels : list of str, optional
        Class names of a classifier.

    Returns
    -------
    Bundle
        The converted checkpoint, loaded back through :func:`workbench.load`.

    Raises
    ------
    ConvertError
    """
    from workbench.models.architectures import build
    from workbench.models.checkpoint import load, save

    src, out = Path(src), Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConvertError(f"{out} exists and is not empty; pass a new folder with -o")
    state = read_state_dict(src)
    kind, arch = infer_arch(state, kind)
    tokenizer = None
    if kind != "forecaster":
        if vocab is None:
            raise ConvertError(
                f"a {kind} reads token ids: pass its vocabulary with --vocab FILE (a JSON list "
                "or one token per line, starting with <pad>, <unk>)"
            )
        if level not in ("char", "word"):
            raise ConvertError(f"level must be char or word, got {level!r}")
        tokenizer = _read_vocab(Path(vocab), level)
        if len(tokenizer) != arch["vocab"]:
            raise ConvertError(
                f"the vocabulary has {len(tokenizer)} tokens, the embedding {arch['vocab']} rows"
            )
    if labels is not None and kind == "classifier" and len(labels) != arch["classes"]:
        raise ConvertError(f"{len(labels)} labels given for {arch['classes']} classes")
    model = build(kind, **arch)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConvertError(
            f"the weights do not fit the inferred {kind} {arch}: {str(exc).splitlines()[0]}"
        ) from None
    extra = {
        "converted_from": {
            "file": src.name,
            "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        }
    }
    if labels is not None:
        extra["labels"] = list(labels)
    save(out, model, kind, task or src.stem, arch, tokenizer, **extra)
    return load(out)


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def convert(
    src: Path = typer.Argument(
        ..., help="A torch.save state_dict, or a Keras model (.keras or .h5)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="New checkpoint folder."),
    kind: str = typer.Option(None, help="charlm, classifier or forecaster (default: inferred)."),
    task: str = typer.Option(None, help="Name stored in the config (default: file stem)."),
    vocab: Path = typer.Option(None, help="Token models: vocabulary (JSON list or lines)."),
    level: str = typer.Option("char", help="char or word: how the vocabulary splits text."),
    labels: str = typer.Option(None, help="Classifier: comma-separated class names."),
) -> None:
    """Convert a torch.save state_dict or a Keras model into a safetensors + JSON checkpoint."""
    from workbench.models._keras_convert import convert_keras_file

    names = [s.strip() for s in labels.split(",")] if labels else None
    try:
        if src.suffix.lower() in KERAS_SUFFIXES:
            bundle = convert_keras_file(src, out, task=task, vocab=vocab, level=level, labels=names)
        else:
            bundle = convert_file(
                src, out, kind=kind, task=task, vocab=vocab, level=level, labels=names
            )
    except ValueError as exc:  # ConvertError, CheckpointError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    n = sum(p.numel() for p in bundle.model.parameters())
    if bundle.kind != "keras":
        typer.echo(f"wrote {out}: {bundle.kind} {bundle.config['arch']} ({n:,} parameters)")
        return
    layers = " -> ".join(f"{s['keras_name']} ({s['kind']})" for s in bundle.model.specs)
    check = bundle.config["converted_from"]["checked_against_keras"]
    said = (
        f"matches Keras to {check['max_abs_diff']:.2g}"
        if "max_abs_diff" in check
        else f"not checked against Keras: {check['skipped']}"
    )
    typer.echo(f"wrote {out}: keras {layers} ({n:,} parameters); {said}")
