"""Per-unit memory time constants from recorded gates, and a model-free second estimate.

An LSTM cell keeps ``f`` of its value per step (``c_t = f_t * c_{t-1} + i_t * g_t``), so
with a typical forget value ``f`` a unit's memory decays as ``f^k = exp(-k / tau)``:
``tau = -1 / log(mean f)`` steps. PyTorch's GRU keeps ``z`` of its state
(``h_t = (1 - z_t) * n_t + z_t * h_{t-1}``), so its update gate plays the forget gate's part:
``tau = -1 / log(mean z)``. The autocorrelation of the cell state (hidden state for a GRU)
per unit gives a second estimate that does not read the gates: the lag at which it falls
below ``1 / e``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.memory._windows import MeasureError, bounded
from workbench.names import QuantityName

#: gate quantity -> the state whose memory it sets
KEEP_GATES = {"forget_gate": "cell", "update_gate": "hidden"}
MAX_TOKENS = 2_000_000
MAX_LAG = 512


@dataclass
class TimeScales:
    """Time constants of every unit of one layer.

    Attributes
    ----------
    name : str
        The gate read (``rnn.1.fwd.forget_gate``).
    tau : np.ndarray
        ``[units]`` ``-1 / log(mean gate)`` in steps (``inf`` for a gate that is always 1).
    tau_blocks : np.ndarray
        ``[block, units]`` the same per block of ``block_tokens`` consecutive tokens: its
        spread over the corpus.
    mean_gate : np.ndarray
        ``[units]``.
    tokens, block_tokens : int
        Tokens read, tokens per block.
    """

    name: str
    tau: np.ndarray
    tau_blocks: np.ndarray
    mean_gate: np.ndarray
    tokens: int
    block_tokens: int

    def ranked(self, top: int | None = None) -> np.ndarray:
        """Units ordered by ``tau``, longest memory first (``[top]`` unit indices)."""
        order = np.argsort(-self.tau, kind="stable")
        return order if top is None else order[:top]

    def quantiles(self, q=(0.1, 0.5, 0.9)) -> np.ndarray:
        """``[len(q), units]`` quantiles of ``tau`` over the blocks."""
        return np.quantile(self.tau_blocks, q, axis=0)


def tau_of(mean_gate: np.ndarray) -> np.ndarray:
    """``-1 / log(mean_gate)`` elementwise, ``inf`` where the gate is 1, ``0`` where it is 0."""
    g = np.clip(np.asarray(mean_gate, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return np.where(g >= 1.0, np.inf, -1.0 / np.log(np.where(g >= 1.0, 0.5, g)))


def keep_gates(names) -> list[str]:
    """The forget (LSTM) / update (GRU) gate names among recorded ``names``."""
    return [n for n in names if QuantityName.parse(n).quantity in KEEP_GATES]


def state_of(gate: str) -> str:
    """The state a keep gate sets the memory of (``rnn.0.fwd.forget_gate`` -> ``...cell``)."""
    q = QuantityName.parse(gate)
    if q.quantity not in KEEP_GATES:
        raise MeasureError(f"{gate} is no forget_gate or update_gate")
    return QuantityName.recurrent(q.module, q.layer, q.direction, KEEP_GATES[q.quantity]).format()


def time_scales(
    store, name: str, max_tokens: int = 200_000, block_tokens: int = 2000
) -> TimeScales:
    """Per-unit time constants of one layer from a store's recorded keep gate.

    Parameters
    ----------
    store : StateStore
    name : str
        A recorded ``forget_gate`` (LSTM) or ``update_gate`` (GRU), see :func:`keep_gates`.
    max_tokens : int
        Read at most this many tokens from the start of the corpus (capped at 2,000,000).
    block_tokens : int
        Tokens per block for the spread over the corpus.
    """
    if name not in store.names:
        gates = keep_gates(store.names)
        raise MeasureError(
            f"{name!r} is not in this store; its keep gates: {', '.join(gates) or 'none'}"
        )
    state_of(name)
    n = min(store.n_tokens, bounded(max_tokens, "max_tokens", 1, MAX_TOKENS))
    block_tokens = bounded(block_tokens, "block_tokens", 1, MAX_TOKENS)
    arr = store.states(name)
    sums, blocks = None, []
    for lo in range(0, n, block_tokens):
        x = np.asarray(arr.rows(lo, min(lo + block_tokens, n)), dtype=np.float64)
        s = x.sum(0)
        sums = s if sums is None else sums + s
        blocks.append(x.mean(0))
    mean = sums / n
    return TimeScales(name, tau_of(mean), tau_of(np.stack(blocks)), mean, n, block_tokens)


def autocorrelation(states: np.ndarray, boundaries=None, max_lag: int = 100) -> np.ndarray:
    """Autocorrelation per unit and lag, pairs inside one document only.

    Parameters
    ----------
    states : np.ndarray
        ``[time, units]``.
    boundaries : array of int, optional
        Document offsets ``[docs + 1]`` into ``time`` (pairs that cross one are left out).
    max_lag : int

    Returns
    -------
    np.ndarray
        ``[lag, units]`` for lags ``0 ... max_lag`` (lag 0 is 1), each unit centred and
        scaled by its mean and variance over all of ``states``.
    """
    x = np.asarray(states, dtype=np.float64)
    max_lag = bounded(max_lag, "max_lag", 1, MAX_LAG)
    x = x - x.mean(0)
    var = (x * x).mean(0)
    bounds = [0, len(x)] if boundaries is None else [int(v) for v in boundaries]
    # documents laid out with max_lag zero rows between them: no pair crosses one
    parts, pairs = [], np.zeros(max_lag + 1)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        parts += [x[lo:hi], np.zeros((max_lag, x.shape[1]))]
        pairs += np.maximum(hi - lo - np.arange(max_lag + 1), 0)
    padded = np.concatenate(parts)
    n = 1 << int(np.ceil(np.log2(2 * len(padded))))
    spec = np.fft.rfft(padded, n=n, axis=0)
    sums = np.fft.irfft(spec * spec.conj(), n=n, axis=0)[: max_lag + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / pairs[:, None] / np.where(var > 0, var, np.nan)
    out[pairs == 0] = np.nan
    return out


def efold_lag(acf: np.ndarray) -> np.ndarray:
    """``[units]`` first lag at which ``acf [lag, units]`` falls below ``1/e``.

    Linearly interpolated between lags; ``inf`` when it stays above within the lags measured.
    """
    below = acf < np.exp(-1)
    out = np.full(acf.shape[1], np.inf)
    for u in range(acf.shape[1]):
        idx = np.flatnonzero(below[:, u])
        if idx.size:
            k = idx[0]
            a, b = acf[k - 1, u], acf[k, u]
            out[u] = k - 1 + (a - np.exp(-1)) / (a - b) if a != b else k
    return out


def store_autocorrelation(store, gate: str, max_tokens: int = 100_000, max_lag: int = 100):
    """``[lag, units]`` autocorrelation of the state ``gate`` sets, over a store's first tokens."""
    state = state_of(gate)
    if state not in store.names:
        raise MeasureError(f"the store holds no {state} (record it to compare time scales)")
    n = min(store.n_tokens, bounded(max_tokens, "max_tokens", 2, MAX_TOKENS))
    b = store.boundaries
    b = np.concatenate([b[b < n], [n]])
    return autocorrelation(store.states(state).rows(0, n), b, max_lag)
