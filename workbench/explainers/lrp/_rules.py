"""LRP rules as autograd functions: relevance flows in the place of gradients.

Each function's ``forward`` computes the ordinary value; its ``backward`` receives the
relevance of the output and returns the relevance of the inputs. Operations that only move
values around (indexing, slicing, ``cat``, ``reshape``, packing, ``where``, ``max``) conserve
relevance under ordinary autograd and need no rule.

The epsilon rule of an affine map ``z_j = sum_i z_i w_ij + b_j`` with ``N`` lower units::

    R_i = sum_j (z_i w_ij + bias_factor * (b_j + eps * sign(z_j)) / N)
                / (z_j + eps * sign(z_j)) * R_j          with sign(0) = +1
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LRPError(ValueError):
    """A model holds an operation for which LRP has no rule."""


def stabilise(z: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z + eps * sign(z), sign(z))`` with ``sign(0) = +1``."""
    s = (z >= 0).to(z.dtype) * 2 - 1
    return z + eps * s, s


def reduce_to(r: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast relevance back to an operand's ``shape``."""
    if r.shape == shape:
        return r
    while r.dim() > len(shape):
        r = r.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and r.shape[i] != 1:
            r = r.sum(i, keepdim=True)
    return r


def epsilon_affine(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    z: torch.Tensor,
    r: torch.Tensor,
    eps: float,
    bias_factor: float,
    n_lower: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Epsilon rule for ``z = x @ weight.T + bias`` (``weight [out, in]``).

    Returns ``(R_x, share)``: ``R_x`` without the bias share, and the bias/stabiliser share
    ``[..., 1]`` that every one of the ``n_lower`` lower units receives on top.
    """
    zs, s = stabilise(z, eps)
    q = r / zs
    rx = x * (q @ weight)
    b = eps * s if bias is None else bias + eps * s
    share = bias_factor * (b * q).sum(-1, keepdim=True) / n_lower
    return rx, share


class LinearRule(torch.autograd.Function):
    """``F.linear`` with the epsilon rule (N = input features)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, bias_factor):
        z = F.linear(x, weight, bias)
        ctx.save_for_backward(x, weight, bias, z)
        ctx.eps, ctx.bf = eps, bias_factor
        return z

    @staticmethod
    def backward(ctx, r):
        x, weight, bias, z = ctx.saved_tensors
        rx, share = epsilon_affine(x, weight, bias, z, r, ctx.eps, ctx.bf, x.shape[-1])
        return rx + share, None, None, None, None


class AddRule(torch.autograd.Function):
    """``z = sa * a + sb * b`` elementwise, with the epsilon rule.

    The operands that depend on the input are the lower units (N = 1 or 2); constant
    operands act as a bias.
    """

    @staticmethod
    def forward(ctx, a, b, sa, sb, eps, bias_factor):
        z = sa * a + sb * b
        ctx.save_for_backward(a, b, z)
        ctx.coef, ctx.eps, ctx.bf = (sa, sb), eps, bias_factor
        return z

    @staticmethod
    def backward(ctx, r):
        a, b, z = ctx.saved_tensors
        sa, sb = ctx.coef
        var = ctx.needs_input_grad[:2]
        n = max(1, sum(var))
        zs, s = stabilise(z, ctx.eps)
        q = r / zs
        const = sum(c * t for c, t, v in ((sa, a, var[0]), (sb, b, var[1])) if not v)
        share = ctx.bf * (const + ctx.eps * s) / n
        ra = reduce_to((sa * a + share) * q, a.shape) if var[0] else None
        rb = reduce_to((sb * b + share) * q, b.shape) if var[1] else None
        return ra, rb, None, None, None, None


class PassRule(torch.autograd.Function):
    """``z = fn(x, *rest)`` whose relevance passes unchanged to ``x``.

    For activations (tanh, ReLU ...), scaling by constants and negation.
    """

    @staticmethod
    def forward(ctx, fn, x, *rest):
        ctx.shape = x.shape
        ctx.n_rest = len(rest)
        return fn(x, *rest)

    @staticmethod
    def backward(ctx, r):
        return (None, reduce_to(r, ctx.shape), *([None] * ctx.n_rest))


class SumRule(torch.autograd.Function):
    """``z = x.sum(dim)`` or ``x.mean(dim)``: epsilon rule over the summed elements.

    ``constant`` (bool, broadcastable to ``x``), optional: elements that do not depend on
    the input whatever it is (a value times a zero attention weight, e.g. at padding); they
    are not lower units, so the stabiliser's share goes to the others only.
    """

    @staticmethod
    def forward(ctx, x, dim, keepdim, mean, eps, bias_factor, constant=None):
        dims = tuple(range(x.dim())) if dim is None else dim
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        dims = tuple(d % x.dim() for d in dims) if x.dim() else ()
        n = 1
        for d in dims:
            n *= x.shape[d]
        z = x.sum(dims, keepdim=True)
        if mean:
            z = z / n
        lower = torch.ones_like(x) if constant is None else (~constant).to(x.dtype).expand_as(x)
        ctx.save_for_backward(x, z, lower)
        ctx.n, ctx.mean, ctx.eps, ctx.bf, ctx.dims = n, mean, eps, bias_factor, dims
        return z if keepdim else z.squeeze(dims) if dims else z

    @staticmethod
    def backward(ctx, r):
        x, z, lower = ctx.saved_tensors
        r = r.reshape(z.shape)
        zs, s = stabilise(z, ctx.eps)
        q = r / zs
        contrib = x / ctx.n if ctx.mean else x
        count = lower.sum(ctx.dims, keepdim=True).clamp(min=1) if ctx.dims else lower
        rx = (contrib + ctx.bf * ctx.eps * s * lower / count) * q
        return rx, None, None, None, None, None, None


class MatmulRule(torch.autograd.Function):
    """``z = a @ b`` where one operand is constant: epsilon rule over the contracted axis."""

    @staticmethod
    def forward(ctx, a, b, eps, bias_factor):
        z = a @ b
        ctx.save_for_backward(a, b, z)
        ctx.eps, ctx.bf = eps, bias_factor
        return z

    @staticmethod
    def backward(ctx, r):
        a, b, z = ctx.saved_tensors
        zs, s = stabilise(z, ctx.eps)
        q = r / zs
        k = a.shape[-1]
        ra = rb = None
        if ctx.needs_input_grad[0]:
            share = ctx.bf * ctx.eps * (s * q).sum(-1, keepdim=True) / k
            ra = reduce_to(a * (q @ b.mT) + share, a.shape)
        if ctx.needs_input_grad[1]:
            share = ctx.bf * ctx.eps * (s * q).sum(-2, keepdim=True) / k
            rb = reduce_to(b * (a.mT @ q) + share, b.shape)
        return ra, rb, None, None
