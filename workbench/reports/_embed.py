"""Safe embedding of data into HTML: JSON for script blocks, quantised state matrices."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def script_json(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    from plotly.utils import PlotlyJSONEncoder

    text = json.dumps(obj, cls=PlotlyJSONEncoder, sort_keys=True, separators=(",", ":"))
    return text.translate(_SCRIPT_ESCAPES)


def figure_spec(fig: Any) -> dict:
    """A plotly figure as ``{"data", "layout"}`` plain JSON (deterministic)."""
    spec = fig.to_plotly_json()
    return {"data": spec.get("data", []), "layout": spec.get("layout", {})}


def quantise(values: np.ndarray) -> dict:
    """``[time, units]`` floats as unit-major uint8 base64, with the range to undo it.

    Each value is recovered as ``lo + q * (hi - lo) / 255`` (error at most
    ``(hi - lo) / 510``).
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    q = np.rint((v - lo) / (hi - lo) * 255.0).clip(0, 255).astype(np.uint8)
    return {
        "time": int(v.shape[0]),
        "units": int(v.shape[1]),
        "lo": round(lo, 6),
        "hi": round(hi, 6),
        "q": base64.b64encode(np.ascontiguousarray(q.T).tobytes()).decode("ascii"),
    }
