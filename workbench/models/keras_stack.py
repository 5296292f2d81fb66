"""The PyTorch module a converted Keras model becomes: its layers in order, as torch modules.

A converted model is a chain of Keras layers (``Embedding``, ``LSTM``, ``GRU``, ``SimpleRNN``,
each optionally inside ``Bidirectional``; ``Dense``, ``Dropout``, ``Activation``), each one a
child module named after the Keras layer, so the recorder sees plain ``nn.LSTM`` / ``nn.GRU``
/ ``nn.RNN`` modules and names their quantities ``{keras layer}.0.{fwd|bwd}.{quantity}``.
:func:`workbench.models.architectures.build` makes it from the JSON layer list
(``kind="keras"``), which is how a converted checkpoint loads without pickle.
"""

from __future__ import annotations

import torch
from torch import nn

#: Keras activation name -> torch function (the ones with an exact torch equivalent).
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    "softplus": nn.functional.softplus,
    "softsign": nn.functional.softsign,
    "silu": nn.functional.silu,
    "swish": nn.functional.silu,
    "gelu": nn.functional.gelu,
    "elu": nn.functional.elu,
    "selu": nn.functional.selu,
    "exponential": torch.exp,
}
_RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_MERGE = {
    "concat": lambda f, b: torch.cat([f, b], dim=-1),
    "sum": lambda f, b: f + b,
    "mul": lambda f, b: f * b,
    "ave": lambda f, b: (f + b) / 2,
}


def _child(spec: dict) -> nn.Module:
    kind = spec["kind"]
    if kind == "embedding":
        return nn.Embedding(spec["vocab"], spec["dim"])
    if kind == "dense":
        return nn.Linear(spec["input"], spec["units"], bias=spec["bias"])
    if kind == "dropout":
        return nn.Dropout(spec["rate"])
    if kind == "activation":
        return nn.Identity()
    if kind in _RECURRENT:
        extra = {"nonlinearity": spec["nonlinearity"]} if kind == "rnn" else {}
        return _RECURRENT[kind](
            spec["input"],
            spec["units"],
            batch_first=True,
            bias=spec["bias"],
            bidirectional=spec["bidirectional"],
            **extra,
        )
    raise ValueError(f"unknown layer kind {kind!r} in a converted Keras model")


class KerasStack(nn.Module):
    """A chain of converted Keras layers.

    Parameters
    ----------
    layers : list of dict
        One dict per layer, in call order: ``kind`` (``embedding``, ``lstm``, ``gru``,
        ``rnn``, ``dense``, ``dropout``, ``activation``), ``name`` (the Keras layer name,
        the child module's name) and the layer's settings.
    """

    def __init__(self, layers: list[dict]) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a converted Keras model needs at least one layer")
        self.specs = [dict(s) for s in layers]
        for spec in self.specs:
            self.add_module(spec["name"], _child(spec))

    @property
    def takes_ids(self) -> bool:
        """Whether the input is token ids (the first layer is an embedding)."""
        return self.specs[0]["kind"] == "embedding"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (ids ``[batch, time]`` or ``[batch, time, feature]``) -> the model's output.

        With ``Embedding(mask_zero=True)``, id 0 is padding and must come after a sequence's
        tokens; the recurrent layers then run on packed sequences, as Keras skips masked
        steps.

        Returns
        -------
        torch.Tensor
            ``[batch, units]`` after a recurrent layer without ``return_sequences``,
            ``[batch, time, units]`` otherwise (as Keras returns it).

        Raises
        ------
        ValueError
            With a padding mask: padding before a token, or a sequence of padding only.
        """
        lengths = self._lengths(x) if self.specs[0].get("mask_zero") else None
        for spec in self.specs:
            module = getattr(self, spec["name"])
            kind = spec["kind"]
            if kind in _RECURRENT:
                x = self._recurrent(module, spec, x, lengths)
                if not spec["sequences"]:
                    lengths = None  # the time axis (and Keras's mask) ends here
            elif kind in ("dense", "activation"):
                x = ACTIVATIONS[spec["activation"]](module(x))
            else:
                x = module(x)
        return x

    @staticmethod
    def _lengths(ids: torch.Tensor) -> torch.Tensor:
        """Tokens per sequence of a ``mask_zero`` model (id 0 pads, at the end only)."""
        mask = ids != 0
        lengths = mask.sum(1)
        steps = torch.arange(ids.shape[1], device=ids.device)
        if not torch.equal(mask, steps[None, :] < lengths[:, None]):
            raise ValueError(
                "this model masks id 0 (Keras mask_zero=True): put the padding (id 0) after "
                "each sequence's tokens, not between or before them"
            )
        if bool((lengths == 0).any()):
            raise ValueError("a sequence holds padding only (id 0); give it a token")
        return lengths

    @staticmethod
    def _recurrent(
        module: nn.Module, spec: dict, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> torch.Tensor:
        if lengths is None:
            out, _ = module(x)
        else:
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(
                module(packed)[0], batch_first=True, total_length=x.shape[1]
            )
        units = spec["units"]
        if lengths is None:
            last = out[:, -1]
        else:
            index = (lengths - 1).to(out.device)[:, None, None].expand(-1, 1, out.shape[-1])
            last = out.gather(1, index)[:, 0]
        if not spec["bidirectional"]:
            if not spec["sequences"]:
                if lengths is not None and spec.get("zero_masked", False):
                    # Keras returns the (zeroed) output of the last step, masked or not
                    last = torch.where((lengths == x.shape[1]).to(out.device)[:, None], last, 0)
                return last
            if lengths is not None and not spec.get("zero_masked", False):
                # Keras holds the last output over masked steps (zero_output_for_mask=False)
                steps = torch.arange(x.shape[1], device=out.device)
                valid = (steps[None, :] < lengths.to(out.device)[:, None])[..., None]
                out = torch.where(valid, out, last[:, None, :])
            return out
        fwd, bwd = out[..., :units], out[..., units:]
        if not spec["sequences"]:  # Keras: each direction's last step (bwd ends at t = 0)
            fwd, bwd = last[..., :units], bwd[:, 0]
        return _MERGE[spec["merge"]](fwd, bwd)
