"""One call of a fused recurrent kernel, parsed into a description every path shares.

``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu`` (what ``nn.LSTM``, ``nn.GRU`` and
``nn.RNN`` call) and their ``*_cell`` siblings take positional arguments whose layout depends
on the kernel and on whether the input is packed. The recorder and LRP both read them through
:func:`parse_fused` / :func:`parse_cell` and give results back through :func:`pack_output`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: Fused kernels by mode, and the number of gate blocks in their weight rows.
GATE_BLOCKS = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


@dataclass
class RnnCall:
    """One call of the fused kernel, parsed.

    Attributes
    ----------
    mode : str
        ``"lstm"``, ``"gru"``, ``"rnn_tanh"`` or ``"rnn_relu"``.
    x : torch.Tensor
        ``[time, batch, feature]`` padded input (zeros past each length).
    batch_sizes : list of int or None
        Active rows per step for packed input (a non-increasing prefix), None if uniform.
    h0, c0 : torch.Tensor
        ``[layer * direction, batch, units]`` initial states (``c0`` None but for LSTM).
    params : list of torch.Tensor
        The module's flat weights, in its order.
    """

    mode: str
    x: torch.Tensor
    batch_sizes: list[int] | None
    h0: torch.Tensor
    c0: torch.Tensor | None
    params: list[torch.Tensor]
    has_biases: bool
    num_layers: int
    bidirectional: bool
    dropout: float = 0.0
    train: bool = False
    flat_index: torch.Tensor | None = field(default=None, repr=False)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def time(self) -> int:
        return self.x.shape[0]

    @property
    def batch(self) -> int:
        return self.x.shape[1]

    def layer_params(self, layer: int, direction: int) -> dict[str, torch.Tensor | None]:
        """Weights of one layer and direction, by role."""
        stride = len(self.params) // (self.num_layers * self.directions)
        p = self.params[(layer * self.directions + direction) * stride :][:stride]
        out = {"w_ih": p[0], "w_hh": p[1], "b_ih": None, "b_hh": None, "w_hr": None}
        rest = p[2:]
        if self.has_biases:
            out["b_ih"], out["b_hh"] = rest[0], rest[1]
            rest = rest[2:]
        if rest:
            out["w_hr"] = rest[0]
        return out

    def lengths(self) -> torch.Tensor:
        """``[batch]`` real lengths in kernel row order."""
        if self.batch_sizes is None:
            return torch.full((self.batch,), self.time, dtype=torch.long)
        bs = torch.tensor(self.batch_sizes)
        return (bs[None, :] > torch.arange(self.batch)[:, None]).sum(1)


@dataclass
class FusedCall:
    """A parsed fused-kernel call plus how to give its output back.

    Attributes
    ----------
    call : RnnCall
    flat : torch.Tensor or None
        Packed input: the padded ``[time * batch]`` row of each packed-data row.
    batch_first : bool
        The module's layout (padded input).
    """

    call: RnnCall
    flat: torch.Tensor | None
    batch_first: bool


def packed_flat_index(batch_sizes: list[int], batch: int) -> torch.Tensor:
    """Row index into a ``[time * batch]`` padded layout of each packed-data row."""
    return torch.cat([t * batch + torch.arange(n) for t, n in enumerate(batch_sizes)])


def is_packed(mode: str, args: tuple) -> bool:
    """Whether a fused call got packed data (``data, batch_sizes, hx, ...``)."""
    if mode == "lstm":  # padded: (input, [h0, c0], params, ...); packed: (data, sizes, ...)
        return isinstance(args[1], torch.Tensor)
    return not isinstance(args[2], list | tuple)  # padded: (input, h0, params, ...)


def parse_fused(mode: str, args: tuple) -> FusedCall:
    """Parse the positional arguments of ``torch._VF.{mode}``, padded or packed."""
    if is_packed(mode, args):
        data, batch_sizes, hx, params, has_biases, layers, dropout, train, bidir = args[:9]
        bs = [int(n) for n in batch_sizes.tolist()]
        T, B = len(bs), bs[0]
        flat = packed_flat_index(bs, B).to(data.device)
        x = data.new_zeros(T * B, data.shape[-1]).index_copy(0, flat, data).view(T, B, -1)
        batch_first = False
    else:
        inp, hx, params, has_biases, layers, dropout, train, bidir, batch_first = args[:9]
        x = inp.transpose(0, 1) if batch_first else inp
        bs, flat = None, None
    h0, c0 = (hx[0], hx[1]) if mode == "lstm" else (hx, None)
    call = RnnCall(
        mode=mode,
        x=x,
        batch_sizes=bs if bs is not None and min(bs) < bs[0] else None,
        h0=h0,
        c0=c0,
        params=list(params),
        has_biases=bool(has_biases),
        num_layers=int(layers),
        bidirectional=bool(bidir),
        dropout=float(dropout),
        train=bool(train),
    )
    return FusedCall(call, flat, bool(batch_first))


def parse_cell(mode: str, args: tuple) -> RnnCall:
    """Parse ``torch._VF.{mode}_cell(x, hx, w_ih, w_hh[, b_ih, b_hh])`` as a one-step call.

    ``x [batch, feature]`` becomes ``[1, batch, feature]``, states ``[1, batch, units]``.
    """
    x, hx, w_ih, w_hh = args[:4]
    b_ih = args[4] if len(args) > 4 else None
    b_hh = args[5] if len(args) > 5 else None
    h0, c0 = (hx[0], hx[1]) if mode == "lstm" else (hx, None)
    params = [w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else [])
    return RnnCall(
        mode, x[None], None, h0[None], None if c0 is None else c0[None], params,
        b_ih is not None, 1, False,
    )  # fmt: skip


def pack_output(fused: FusedCall, out, h_n, c_n) -> tuple:
    """The kernel's return value from time-major padded ``out`` and the final states."""
    call = fused.call
    if fused.flat is not None:
        out = out.reshape(call.time * call.batch, -1).index_select(0, fused.flat)
    elif fused.batch_first:
        out = out.transpose(0, 1).contiguous()
    return (out, h_n, c_n) if call.mode == "lstm" else (out, h_n)
