"""Memory over time: how far back a recurrent model's outputs depend on its inputs.

- :func:`connectivity`: gradient norm (and LRP relevance) of the output at step ``t`` with
  respect to the input at ``t - k``, per lag, averaged over windows with 95 % bands
  (Madsen 2019).
- :func:`state_gradients`: the loss's gradient with respect to each layer's hidden and cell
  state ``k`` steps back, and its growth or decay rate per step.
- :func:`time_scales`: per-unit time constants from forget (LSTM) / update (GRU) gates;
  :func:`autocorrelation`: a model-free estimate from the cell states.
- :func:`horizon`: the lag at which connectivity falls below a share of its peak.

Windows come from a store (:func:`from_store`) or token sequences (:func:`from_sequences`).
"""

from __future__ import annotations

from workbench import _lazy

_LAZY = {
    "Curve": "workbench.memory._bands",
    "summarize": "workbench.memory._bands",
    "horizon": "workbench.memory._bands",
    "rate": "workbench.memory._bands",
    "connectivity": "workbench.memory._connectivity",
    "input_gradients": "workbench.memory._connectivity",
    "lrp_relevance": "workbench.memory._connectivity",
    "state_gradients": "workbench.memory._state_gradients",
    "time_scales": "workbench.memory._time_scales",
    "TimeScales": "workbench.memory._time_scales",
    "autocorrelation": "workbench.memory._time_scales",
    "store_autocorrelation": "workbench.memory._time_scales",
    "efold_lag": "workbench.memory._time_scales",
    "keep_gates": "workbench.memory._time_scales",
    "tau_of": "workbench.memory._time_scales",
    "from_store": "workbench.memory._windows",
    "from_sequences": "workbench.memory._windows",
    "from_corpus": "workbench.memory._windows",
    "MeasureError": "workbench.memory._windows",
    "MAX_WINDOWS": "workbench.memory._windows",
    "MAX_STEPS": "workbench.memory._windows",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = _lazy.exports(__name__, _LAZY, globals())
