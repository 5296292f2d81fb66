"""Keras layers -> the layer list of :class:`~workbench.models.keras_stack.KerasStack`.

Gate orders and bias layouts: a Keras ``LSTM`` keeps its gates as i, f, c, o in a kernel
``[input, 4 units]`` with one bias; ``nn.LSTM`` keeps i, f, g, o in ``[4 units, input]`` with
two biases (the second set to zero). A Keras ``GRU`` orders z, r, h, ``nn.GRU`` r, z, n, and
``reset_after=True`` (two biases, the recurrent one inside the reset product) is exactly
``nn.GRU``. Whatever has no PyTorch equivalent is refused, naming the layer and the setting.
"""

from __future__ import annotations

import keyword
from typing import Any

import numpy as np
from torch import nn

from workbench.models.keras_stack import _MERGE, ACTIVATIONS, KerasStack

SUPPORTED = ("Embedding", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Dense", "Dropout",
             "Activation", "InputLayer")  # fmt: skip
_RNN_KIND = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}
_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


class KerasConvertError(ValueError):
    """A Keras model with a part that has no PyTorch equivalent; the message names it."""


def _activation(value: Any) -> str:
    if isinstance(value, dict):  # {"class_name": "function", "config": "relu"} and kin
        value = value.get("config", value.get("class_name"))
    return "linear" if value in (None, "None") else str(value)


def _inbound(layer: dict) -> list[str]:
    """Names of the layers feeding ``layer`` in a functional config (Keras 2 and 3)."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if "keras_history" in obj:
                found.append(obj["keras_history"][0])
                return
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
                found.append(obj[0])  # Keras 2: [name, node, tensor, kwargs]
                return
            for v in obj:
                walk(v)

    walk(layer.get("inbound_nodes", []))
    return found


def layer_chain(config: dict) -> list[tuple[str, dict]]:
    """``(class_name, layer config)`` of each layer in call order (input layers left out).

    Raises
    ------
    KerasConvertError
        For a model other than a Sequential or a functional chain (one input, one output,
        each layer fed by the one before).
    """
    cls = config.get("class_name")
    body = config.get("config", {})
    layers = body.get("layers") if isinstance(body, dict) else None
    if cls == "Sequential" and isinstance(layers, list):
        return [
            (lay["class_name"], lay.get("config", {}))
            for lay in layers
            if lay.get("class_name") != "InputLayer"
        ]
    if cls not in ("Functional", "Model") or not isinstance(layers, list):
        raise KerasConvertError(
            f"the saved model is a {cls!r}; workbench converts Sequential and functional "
            "models (a subclassed keras.Model has no saved layer graph)"
        )
    by_name = {lay.get("name") or lay["config"]["name"]: lay for lay in layers}
    outputs = body.get("output_layers", [])
    if len(outputs) != 1 and not (len(outputs) == 3 and isinstance(outputs[0], str)):
        raise KerasConvertError(
            "the functional model has several outputs; convert one-output models"
        )
    name = outputs[0] if isinstance(outputs[0], str) else outputs[0][0]
    chain = []
    while by_name[name].get("class_name") != "InputLayer":
        lay = by_name[name]
        chain.append((lay["class_name"], lay.get("config", {})))
        inbound = _inbound(lay)
        if len(inbound) != 1:
            raise KerasConvertError(
                f"layer {name!r} ({lay['class_name']}) takes {len(inbound)} inputs; workbench "
                "converts chains of layers (each fed by the one before)"
            )
        name = inbound[0]
    if len(chain) + 1 != len(layers):
        raise KerasConvertError(
            "the functional model has branches (layers off the input-to-output chain); "
            "workbench converts chains of layers"
        )
    return chain[::-1]


def _refuse(name: str, cls: str, setting: str, why: str) -> KerasConvertError:
    return KerasConvertError(f"layer {name!r} ({cls}): {setting} {why}")


def _check_recurrent(name: str, cls: str, cfg: dict, *, inside: bool = False) -> None:
    """Refuse recurrent settings that nn.LSTM / nn.GRU / nn.RNN cannot reproduce."""
    if cls not in _RNN_KIND:
        raise _refuse(name, cls, "as the layer of a Bidirectional", "is not LSTM, GRU or SimpleRNN")
    if cfg.get("stateful"):
        raise _refuse(name, cls, "stateful=True", "carries state across calls; set stateful=False")
    if cfg.get("go_backwards") and not inside:
        raise _refuse(
            name, cls, "go_backwards=True", "outside Bidirectional has no nn.LSTM/GRU equivalent"
        )
    if cfg.get("return_state"):
        raise _refuse(name, cls, "return_state=True", "returns extra outputs; convert one output")
    if cfg.get("time_major"):
        raise _refuse(name, cls, "time_major=True", "is not supported; use batch-major inputs")
    act = _activation(cfg.get("activation", "tanh"))
    allowed = ("tanh", "relu") if cls == "SimpleRNN" else ("tanh",)
    if act not in allowed:
        raise _refuse(
            name, cls, f"activation={act!r}", f"has no PyTorch equivalent (only {allowed})"
        )
    if cls != "SimpleRNN":
        rec = _activation(cfg.get("recurrent_activation", "sigmoid"))
        if rec != "sigmoid":
            raise _refuse(
                name, cls, f"recurrent_activation={rec!r}",
                f"has no PyTorch equivalent (nn.{cls} uses sigmoid); retrain with 'sigmoid'",
            )  # fmt: skip
    if cls == "GRU" and not cfg.get("reset_after", True):
        raise _refuse(
            name, cls, "reset_after=False",
            "has no PyTorch equivalent (nn.GRU applies the reset gate after the recurrent "
            "product); retrain with reset_after=True",
        )  # fmt: skip


def _torch_rnn(cls: str, arrays: list[np.ndarray], bias: bool, units: int, suffix: str) -> dict:
    """The ``nn.LSTM/GRU/RNN`` layer-0 weights of one direction from Keras's arrays."""
    kernel, recurrent = arrays[0], arrays[1]
    perm = np.arange(kernel.shape[1])
    if cls == "GRU":  # Keras z, r, h -> torch r, z, n
        perm = np.concatenate([np.arange(units, 2 * units), np.arange(units), perm[2 * units :]])
    state = {
        f"weight_ih_l0{suffix}": kernel[:, perm].T,
        f"weight_hh_l0{suffix}": recurrent[:, perm].T,
    }
    if bias:
        b = arrays[2]
        if cls == "GRU":  # reset_after: [input bias, recurrent bias]
            state[f"bias_ih_l0{suffix}"] = b[0][perm]
            state[f"bias_hh_l0{suffix}"] = b[1][perm]
        else:
            state[f"bias_ih_l0{suffix}"] = b[perm]
            state[f"bias_hh_l0{suffix}"] = np.zeros_like(b)
    return state


def _expect(name: str, cls: str, arrays: list, n: int) -> None:
    if len(arrays) != n:
        raise KerasConvertError(
            f"layer {name!r} ({cls}): the file holds {len(arrays)} weight arrays, expected {n}"
        )


def _recurrent(name, cls, cfg, arrays, width, bidi=None):
    """Spec and state of an LSTM / GRU / SimpleRNN, optionally inside a Bidirectional."""
    units = int(cfg["units"])
    bias = bool(cfg.get("use_bias", True))
    per = 3 if bias else 2
    _expect(name, cls, arrays, per * (2 if bidi else 1))
    if width is not None and arrays[0].shape[0] != width:
        raise KerasConvertError(
            f"layer {name!r} ({cls}): its kernel takes {arrays[0].shape[0]} features, the "
            f"layer before gives {width}"
        )
    if arrays[0].shape[1] != _GATES[cls] * units:
        raise KerasConvertError(f"layer {name!r} ({cls}): kernel shape {arrays[0].shape}")
    state = _torch_rnn(cls, arrays[:per], bias, units, "")
    if bidi:
        state.update(_torch_rnn(cls, arrays[per:], bias, units, "_reverse"))
    spec = {
        "kind": _RNN_KIND[cls],
        "input": int(arrays[0].shape[0]),
        "units": units,
        "bias": bias,
        "bidirectional": bool(bidi),
        "sequences": bool(cfg.get("return_sequences", False)),
        "merge": bidi or "concat",
    }
    if cls == "SimpleRNN":
        spec["nonlinearity"] = _activation(cfg.get("activation", "tanh"))
    # with a padding mask, masked steps give zeros (Bidirectional forces it) or hold the last
    spec["zero_masked"] = bool(bidi) or bool(cfg.get("zero_output_for_mask", False))
    out = units * (2 if bidi == "concat" else 1)
    return spec, state, out


def _bidirectional(name, cfg, arrays, width):
    inner = cfg.get("layer", {})
    cls, icfg = inner.get("class_name"), inner.get("config", {})
    _check_recurrent(name, cls, icfg, inside=True)
    if icfg.get("go_backwards"):
        raise _refuse(
            name, "Bidirectional", "a forward layer with go_backwards=True", "is reversed twice"
        )
    back = cfg.get("backward_layer")
    if back:
        bcls, bcfg = back.get("class_name"), back.get("config", {})
        _check_recurrent(name, bcls, bcfg, inside=True)
        same = ("units", "use_bias", "return_sequences", "activation", "recurrent_activation")
        if bcls != cls or any(bcfg.get(k) != icfg.get(k) for k in same):
            raise _refuse(
                name, "Bidirectional", "a backward_layer unlike its forward layer",
                "has no nn.LSTM/GRU/RNN(bidirectional=True) equivalent",
            )  # fmt: skip
        if not bcfg.get("go_backwards"):
            raise _refuse(
                name,
                "Bidirectional",
                "a backward_layer with go_backwards=False",
                "runs forward twice",
            )
    merge = cfg.get("merge_mode", "concat")
    if merge not in _MERGE:
        raise _refuse(
            name,
            "Bidirectional",
            f"merge_mode={merge!r}",
            "returns two outputs; use concat, sum, mul or ave",
        )
    return _recurrent(name, cls, icfg, arrays, width, bidi=merge)


def convert_layers(chain, weights) -> tuple[list[dict], dict, dict]:
    """``(layer specs, state_dict as numpy, input description)`` of a layer chain.

    Raises
    ------
    KerasConvertError
        For a layer without a converter or a setting without a PyTorch equivalent.
    """
    specs: list[dict] = []
    state: dict[str, np.ndarray] = {}
    width = None
    taken = set(dir(KerasStack)) | set(vars(nn.Module())) | {"specs"}
    for index, (cls, cfg) in enumerate(chain):
        name = str(cfg.get("name", f"layer_{index}"))
        arrays = [np.asarray(a, dtype=np.float32) for a in weights.get(name, [])]
        if cls == "Embedding":
            if index:
                raise _refuse(name, cls, "after another layer", "cannot be converted; put it first")
            _expect(name, cls, arrays, 1)
            spec = {
                "kind": "embedding",
                "vocab": int(arrays[0].shape[0]),
                "dim": int(arrays[0].shape[1]),
                "mask_zero": bool(cfg.get("mask_zero", False)),
            }
            local, width = {"weight": arrays[0]}, spec["dim"]
        elif cls in _RNN_KIND:
            _check_recurrent(name, cls, cfg)
            spec, local, width = _recurrent(name, cls, cfg, arrays, width)
        elif cls == "Bidirectional":
            spec, local, width = _bidirectional(name, cfg, arrays, width)
        elif cls in ("Dense", "Activation"):
            act = _activation(cfg.get("activation"))
            if act not in ACTIVATIONS:
                raise _refuse(
                    name, cls, f"activation={act!r}", f"has no converter ({', '.join(ACTIVATIONS)})"
                )
            spec, local = {"kind": cls.lower(), "activation": act}, {}
            if cls == "Dense":
                bias = bool(cfg.get("use_bias", True))
                _expect(name, cls, arrays, 2 if bias else 1)
                kernel = arrays[0]
                if width is not None and kernel.shape[0] != width:
                    raise KerasConvertError(
                        f"layer {name!r} (Dense): takes {kernel.shape[0]} features, gets {width}"
                    )
                spec.update(input=int(kernel.shape[0]), units=int(kernel.shape[1]), bias=bias)
                local = {"weight": kernel.T} | ({"bias": arrays[1]} if bias else {})
                width = spec["units"]
        elif cls == "Dropout":
            spec, local = {"kind": "dropout", "rate": float(cfg.get("rate", 0.0))}, {}
        else:
            raise KerasConvertError(
                f"layer {name!r} ({cls}) has no converter; workbench converts "
                f"{', '.join(SUPPORTED[:-1])} (custom layers are refused)"
            )
        module = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
        if not module or module[0].isdigit() or keyword.iskeyword(module):
            module = f"layer_{module}"
        while module in taken:
            module = f"{module}_"
        taken.add(module)
        spec["name"] = module
        spec["keras_name"] = name
        specs.append(spec)
        state.update({f"{module}.{k}": np.ascontiguousarray(v) for k, v in local.items()})
    if not specs:
        raise KerasConvertError("the model has no layers to convert")
    return specs, state, {"ids": specs[0]["kind"] == "embedding", "features": specs[0].get("input")}
