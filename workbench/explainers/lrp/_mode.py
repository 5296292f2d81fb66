"""A torch-function mode that routes a model's operations to LRP rules during one forward.

The user's model runs unmodified; only the functions it calls are swapped, for the duration
of the ``with`` block: ``F.linear``/``addmm``/``matmul`` (epsilon rule), ``+``/``-`` and
``sum``/``mean`` (epsilon rule over the summed terms), the fused ``torch._VF.lstm`` /
``gru`` / ``rnn_tanh`` / ``rnn_relu`` kernels (padded and packed, parsed by the recorder's
:mod:`workbench.recorder._call`) and their ``*_cell`` kernels (Arras et al.;
signal-take-all for GRU; the epsilon rule through ``nn.RNN``'s one affine map),
activations and scaling by constants (relevance passes unchanged), ``sigmoid`` /
``softmax`` (gates and attention weights: treated as constants, they receive nothing, so
an attention context ``sum_j alpha_j k_j`` passes relevance to the values ``k_j`` by the
epsilon rule over the summed terms), lookups of constant ids (a decoder's fed-back tokens:
their vectors become leaves that collect relevance, :attr:`token_leaves`).
Everything else runs as usual; data movement (indexing, ``cat``, ``reshape``, packing)
conserves relevance under autograd by itself.
"""

from __future__ import annotations

import warnings

import torch
from torch.overrides import TorchFunctionMode

from workbench.explainers.lrp._rnn import GRULayerRule, LSTMLayerRule, RNNLayerRule
from workbench.explainers.lrp._rules import (
    AddRule,
    LinearRule,
    LRPError,
    MatmulRule,
    PassRule,
    SumRule,
)
from workbench.recorder._call import pack_output, parse_cell, parse_fused

_ADD = {"add", "__add__", "__radd__", "__iadd__", "add_"}
_SUB = {"sub", "subtract", "__sub__", "__isub__", "sub_"}
_MUL = {"mul", "multiply", "__mul__", "__rmul__", "__imul__", "mul_"}
_DIV = {"div", "divide", "true_divide", "__truediv__", "__itruediv__", "div_"}
_NEG = {"neg", "negative", "__neg__"}
_PASS = {
    "tanh",
    "relu",
    "relu_",
    "gelu",
    "elu",
    "selu",
    "celu",
    "leaky_relu",
    "silu",
    "mish",
    "softplus",
    "hardtanh",
    "relu6",
    "tanh_",
    "dropout",
    "alpha_dropout",
    "feature_dropout",
}
_GATE = {"sigmoid", "softmax", "_softmax", "sigmoid_"}
_NO_RULE = {
    "layer_norm",
    "batch_norm",
    "group_norm",
    "instance_norm",
    "exp",
    "log",
    "pow",
    "sqrt",
    "rsqrt",
    "__pow__",
    "reciprocal",
    "__rtruediv__",
    "einsum",
    "multi_head_attention_forward",
    "scaled_dot_product_attention",
    "log_softmax",
    "bilinear",
}
_PASSTHROUGH_OK = {
    "embedding",
    "__getitem__",
    "__setitem__",
    "cat",
    "concat",
    "stack",
    "reshape",
    "view",
    "flatten",
    "unflatten",
    "transpose",
    "permute",
    "squeeze",
    "unsqueeze",
    "narrow",
    "select",
    "index_select",
    "gather",
    "contiguous",
    "clone",
    "to",
    "float",
    "double",
    "flip",
    "split",
    "chunk",
    "unbind",
    "expand",
    "expand_as",
    "repeat",
    "masked_fill",
    "masked_fill_",
    "pad",
    "detach",
    "where",
    "max",
    "amax",
    "_pack_padded_sequence",
    "_pad_packed_sequence",
    "index_copy",
    "copy_",
    "new_zeros",
    "zeros_like",
    "type_as",
    "view_as",
    "reshape_as",
    "t",
    "mT",
    "T",
    "movedim",
    "swapaxes",
    "roll",
    "tile",
    "repeat_interleave",
    "take_along_dim",
    "index_put_",
    "cumsum",
    "__len__",
    "numel",
}


_FUSED = ("lstm", "gru", "rnn_tanh", "rnn_relu")
_CELLS = tuple(f"{k}_cell" for k in _FUSED)


def _requires_grad(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.requires_grad
    if isinstance(obj, (list, tuple)):
        return any(_requires_grad(o) for o in obj)
    return False


def _as_tensor(value, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _mark_zero(out: torch.Tensor, factor, name: str) -> torch.Tensor:
    """Mark the elements of a product with a constant that the constant makes 0.

    They do not depend on the input (a value times a zero attention weight, e.g. at
    padding); a sum over them gives the stabiliser's share to the other terms only.
    """
    if name in _DIV or not isinstance(factor, torch.Tensor) or factor.dim() == 0:
        return out
    zero = factor == 0
    if bool(zero.any()):
        out._lrp_constant = zero.expand(out.shape) if zero.shape != out.shape else zero
    return out


class LRPMode(TorchFunctionMode):
    """Swap the model's operations for LRP rules during one forward pass.

    Parameters
    ----------
    epsilon : float
        Stabiliser of the epsilon rule.
    bias_factor : float
        Share of bias and stabiliser redistributed to the lower units (1 conserves).

    Attributes
    ----------
    state_leaves : list of (torch.Tensor, int, torch.Tensor or None)
        Initial states made into leaves (they collect relevance), with their batch
        dimension and the batch order (sorted indices of a packed sequence) they are in.
    site : tuple or None
        ``(layer, direction, quantity)`` of a unit target (``quantity`` is ``"hidden"`` or
        ``"cell"``), read while :attr:`site_active` (the target's module is running).
    token_leaves : list of (torch.Tensor, torch.Tensor)
        ``(vectors, embedding weight)`` of every lookup of ids that do not depend on the
        input, in call order.
    captured : tuple or None
        ``(values [time, batch, units], batch order or None)`` of the unit target's quantity
        at every step, from the first run of its module.
    """

    def __init__(self, epsilon: float, bias_factor: float) -> None:
        super().__init__()
        self.eps = float(epsilon)
        self.bf = float(bias_factor)
        self.state_leaves: list[tuple[torch.Tensor, int, torch.Tensor | None]] = []
        self.sorted_indices: list[torch.Tensor | None] = []
        self.unruled: set[str] = set()
        self.site: tuple[int, int, str] | None = None
        self.site_active = False
        self.captured: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.token_leaves: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _GATE:
            return func(*args, **kwargs).detach()
        if name == "embedding":
            return self._embedding(func, args, kwargs)
        if not (_requires_grad(args) or _requires_grad(list(kwargs.values()))):
            return func(*args, **kwargs)
        handler = self._handler(name)
        if handler is not None:
            return handler(func, args, kwargs)
        if name in _NO_RULE:
            raise LRPError(
                f"LRP has no rule for {name} (used by the model on an input-dependent value); "
                "explain this model with integrated_gradients, occlusion, shap or lime"
            )
        out = func(*args, **kwargs)
        if (
            name not in _PASSTHROUGH_OK
            and isinstance(out, torch.Tensor)
            and out.is_floating_point()
            and out.requires_grad
        ):
            self.unruled.add(name)
        return out

    def _handler(self, name: str):
        if name in ("linear",):
            return self._linear
        if name == "addmm":
            return self._addmm
        if name in ("matmul", "__matmul__", "bmm", "mm"):
            return self._matmul
        if name in _ADD or name in _SUB or name == "__rsub__" or name == "rsub":
            return self._add
        if name in _MUL or name in _DIV:
            return self._mul
        if name in _NEG or name in _PASS:
            return self._pass
        if name in ("sum", "mean"):
            return self._sum
        if name in _FUSED:
            return self._rnn
        if name in _CELLS:
            return self._cell
        return None

    def _embedding(self, func, args, kwargs):
        """A lookup of constant ids (e.g. a decoder's fed-back tokens) becomes a leaf.

        Its vectors then collect the relevance that reaches them (the explained input's own
        lookup is replaced by the input and collects nothing here).
        """
        out = func(*args, **kwargs)
        if out.requires_grad or not out.is_floating_point():
            return out
        weight = kwargs.get("weight", args[1] if len(args) > 1 else None)
        leaf = out.detach().requires_grad_(True)
        self.token_leaves.append((leaf, weight))
        return leaf

    # -- affine maps ---------------------------------------------------------------------
    def _linear(self, func, args, kwargs):
        x, weight = args[0], kwargs.get("weight", args[1] if len(args) > 1 else None)
        bias = kwargs.get("bias", args[2] if len(args) > 2 else None)
        if _requires_grad(weight) or _requires_grad(bias):
            raise LRPError("LRP needs linear weights that do not depend on the input")
        return LinearRule.apply(x, weight, bias, self.eps, self.bf)

    def _addmm(self, func, args, kwargs):
        bias, x, wt = args[:3]
        if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
            raise LRPError("LRP has no rule for addmm with alpha/beta != 1")
        return LinearRule.apply(x, wt.t(), bias, self.eps, self.bf)

    def _matmul(self, func, args, kwargs):
        a, b = args[:2]
        if _requires_grad(a) and _requires_grad(b):
            raise LRPError(
                "LRP has no rule for a product of two input-dependent tensors (matmul); "
                "attention weights must come from softmax or sigmoid, which LRP treats as "
                "constants"
            )
        squeeze = None
        if a.dim() == 1:
            a, squeeze = a[None], -2
        if b.dim() == 1:
            b, squeeze = b[:, None], -1
        out = MatmulRule.apply(a, b, self.eps, self.bf)
        return out.squeeze(squeeze) if squeeze is not None else out

    # -- elementwise ---------------------------------------------------------------------
    def _add(self, func, args, kwargs):
        name = func.__name__
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        alpha = kwargs.get("alpha", 1)
        like = a if isinstance(a, torch.Tensor) else b
        a, b = _as_tensor(a, like), _as_tensor(b, like)
        if name in ("__rsub__", "rsub"):
            sa, sb = -1.0, float(alpha)
        elif name in _SUB:
            sa, sb = 1.0, -float(alpha)
        else:
            sa, sb = 1.0, float(alpha)
        return AddRule.apply(a, b, sa, sb, self.eps, self.bf)

    def _mul(self, func, args, kwargs):
        name = func.__name__
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        if _requires_grad(a) and _requires_grad(b):
            raise LRPError(
                f"LRP has no rule for {name} of two input-dependent tensors; products must "
                "have one factor from sigmoid/softmax (a gate, treated as constant) or a "
                "constant"
            )
        if name.startswith("__"):
            base = name.replace("__i", "__", 1) if name.startswith("__i") else name
        else:
            base = name[:-1] if name.endswith("_") else name
        op = getattr(torch.Tensor, base)
        if not _requires_grad(a):
            if name in _DIV:
                raise LRPError("LRP has no rule for dividing by an input-dependent tensor")
            a = _as_tensor(a, b)
            return _mark_zero(PassRule.apply(lambda x, c: op(c, x), b, a), a, name)
        extra = {k: v for k, v in kwargs.items() if k != "other"}
        return _mark_zero(PassRule.apply(lambda x, c: op(x, c, **extra), a, b), b, name)

    def _pass(self, func, args, kwargs):
        x, rest = args[0], args[1:]
        name = func.__name__
        if name.endswith("_") and not name.startswith("__"):
            func = getattr(torch, name[:-1], None) or getattr(torch.Tensor, name[:-1])
        return PassRule.apply(lambda t, *r: func(t, *r, **kwargs), x, *rest)

    def _sum(self, func, args, kwargs):
        x = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
        if isinstance(dim, torch.dtype) or kwargs.get("dtype") is not None:
            raise LRPError("LRP has no rule for sum/mean with a dtype argument")
        if isinstance(dim, list):
            dim = tuple(dim)
        constant = getattr(x, "_lrp_constant", None)
        mean = func.__name__ == "mean"
        return SumRule.apply(x, dim, bool(keepdim), mean, self.eps, self.bf, constant)

    # -- recurrent kernels ---------------------------------------------------------------
    def _leaf(self, h: torch.Tensor, batch_dim: int) -> torch.Tensor:
        if h.requires_grad:
            return h
        leaf = h.detach().clone().requires_grad_(True)
        order = self.sorted_indices[-1] if self.sorted_indices else None
        self.state_leaves.append((leaf, batch_dim, order))
        return leaf

    def _rnn(self, func, args, kwargs):
        kind = func.__name__
        fused = parse_fused(kind, args)
        call = fused.call
        active = None
        if call.batch_sizes is not None:
            lengths = call.lengths().to(call.x.device)
            active = torch.arange(call.time, device=call.x.device)[:, None] < lengths[None, :]
        if call.train and call.dropout > 0 and call.num_layers > 1:
            raise LRPError("call model.eval() before LRP: dropout between layers is on")
        D = call.directions
        stride = len(call.params) // (call.num_layers * D)
        if stride not in (2, 4):
            raise LRPError("LRP does not support LSTMs with proj_size (weight_hr)")
        h0 = self._leaf(call.h0, 1)
        c0 = self._leaf(call.c0, 1) if kind == "lstm" else None
        layer_in = call.x
        h_n, c_n = [], []
        for layer in range(call.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                w = call.layer_params(layer, d)
                weights = (w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"])
                rest = (active, d == 1, self.eps, self.bf)
                if kind == "lstm":
                    out, h, c, cells = LSTMLayerRule.apply(layer_in, h0[k], c0[k], *weights, *rest)
                    c_n.append(c)
                    self._capture(layer, d, out, cells)
                elif kind == "gru":
                    out, h = GRULayerRule.apply(layer_in, h0[k], *weights, *rest)
                    self._capture(layer, d, out, None)
                else:
                    relu = kind == "rnn_relu"
                    out, h = RNNLayerRule.apply(layer_in, h0[k], *weights, relu, *rest)
                    self._capture(layer, d, out, None)
                outs.append(out)
                h_n.append(h)
            layer_in = torch.cat(outs, -1) if D == 2 else outs[0]
        c_n = torch.stack(c_n) if kind == "lstm" else None
        return pack_output(fused, layer_in, torch.stack(h_n), c_n)

    def _capture(self, layer: int, d: int, out, cells) -> None:
        """Keep the unit target's values if this is its layer and direction."""
        if not self.site_active or self.captured is not None or self.site is None:
            return
        if self.site[:2] == (layer, d):
            values = cells if self.site[2] == "cell" else out
            order = self.sorted_indices[-1] if self.sorted_indices else None
            self.captured = (values, order)

    def _cell(self, func, args, kwargs):
        kind = func.__name__.removesuffix("_cell")
        call = parse_cell(kind, args)
        h0 = self._leaf(call.h0[0], 0)
        w = call.layer_params(0, 0)
        weights = (w["w_ih"], w["w_hh"], w["b_ih"], w["b_hh"])
        rest = (None, False, self.eps, self.bf)
        if kind == "lstm":
            c0 = self._leaf(call.c0[0], 0)
            _, h, c, _ = LSTMLayerRule.apply(call.x, h0, c0, *weights, *rest)
            return h, c
        if kind == "gru":
            _, h = GRULayerRule.apply(call.x, h0, *weights, *rest)
            return h
        _, h = RNNLayerRule.apply(call.x, h0, *weights, kind == "rnn_relu", *rest)
        return h

    def warn_unruled(self) -> None:
        """Warn once about input-dependent operations that ran without an LRP rule."""
        if self.unruled:
            warnings.warn(
                "LRP passed relevance through these operations as plain gradients (no rule): "
                f"{', '.join(sorted(self.unruled))}; relevance may not be conserved",
                stacklevel=3,
            )
