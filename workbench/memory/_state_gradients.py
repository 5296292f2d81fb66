"""The loss's gradient with respect to the hidden and cell states ``k`` steps back.

The vanishing (or exploding) gradient made visible: for the loss of a window's last step,
``||dL / dh_{t-k}||`` and ``||dL / dc_{t-k}||`` per layer and lag. Each recorded state gets a
zero tensor added at every step through :func:`workbench.intervene` (the recurrence continues
from ``state + delta``, so the value is unchanged); the gradient with respect to ``delta`` is
the total derivative with respect to the state, for every step and layer in one backward.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.memory._bands import Curve, summarize
from workbench.memory._connectivity import _logits, score_of
from workbench.memory._windows import MAX_STEPS, MeasureError, bounded
from workbench.names import QuantityName

#: Windows per call are capped lower than connectivity's: the step-by-step recurrence keeps
#: every state's graph.
MAX_STATE_WINDOWS = 1000
_STATES = ("hidden", "cell")


def _state_units(module, ids) -> dict[str, int]:
    """Recorded hidden / cell state names -> their unit counts (one tiny recording)."""
    from workbench.recorder import record

    with torch.no_grad():
        trace = record(module, ids[:1, :2], check="none")
    out = {}
    for n in trace.names:
        q = QuantityName.parse(n)
        if q.layer is not None and q.quantity in _STATES:
            out[n] = int(trace[n].shape[-1])
    return out


def _adder(delta: torch.Tensor):
    def edit(value: torch.Tensor, step: int) -> torch.Tensor:
        return value + delta[step]

    return edit


def state_gradients(
    model, windows: torch.Tensor, *, batch: int = 100, band: str = "se"
) -> dict[str, Curve]:
    """``||dL/dstate_{t-k}||`` per lag for every layer's hidden and cell state.

    Parameters
    ----------
    model : nn.Module or Bundle
        A language model whose recurrent layers the recorder knows (LSTM, GRU, RNN, cells).
    windows : torch.Tensor
        ``[batch, steps + 1]`` ids; the loss is the cross-entropy of the last id after the
        first ``steps``.
    batch : int
        Windows per backward pass.
    band : {"se", "bootstrap"}

    Returns
    -------
    dict of str to Curve
        Recorded name (``rnn.0.fwd.cell`` ...) -> its curve over lags; ``curve.rate()`` is
        the growth (> 1) or decay (< 1) factor per step.
    """
    from workbench.recorder import intervene

    module = getattr(model, "model", model).eval()
    windows = torch.as_tensor(windows)
    if windows.dim() != 2 or windows.shape[1] < 2:
        raise MeasureError(f"windows must be ids [batch, steps + 1], got {tuple(windows.shape)}")
    bounded(windows.shape[0], "windows", 1, MAX_STATE_WINDOWS)
    steps = bounded(windows.shape[1] - 1, "steps", 1, MAX_STEPS)
    batch = bounded(batch, "batch", 1, MAX_STATE_WINDOWS)
    device = next(module.parameters()).device
    units = _state_units(module, windows[:, :-1].to(device))
    names = list(units)
    if not names:
        raise MeasureError("the model has no recorded hidden or cell state to differentiate")
    per_name: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for lo in range(0, windows.shape[0], batch):
        w = windows[lo : lo + batch].to(device)
        ids = w[:, :-1]
        deltas = {
            n: torch.zeros(steps, ids.shape[0], units[n], device=device, requires_grad=True)
            for n in names
        }
        with torch.enable_grad():
            trace = intervene(
                module,
                ids,
                edits={n: _adder(d) for n, d in deltas.items()},
                names=names[:1],
                grad=True,
            )
            loss = -score_of(_logits(trace.output), w[:, -1], "logprob").sum()
            grads = torch.autograd.grad(loss, list(deltas.values()), allow_unused=True)
        for n, g in zip(names, grads, strict=True):
            g = torch.zeros_like(deltas[n]) if g is None else g
            per_name[n].append(g.norm(dim=-1).T.flip(1).double().cpu().numpy())
    meta = {"steps": steps, "score": "loss"}
    return {n: summarize(n, np.concatenate(v), band, **meta) for n, v in per_name.items()}
