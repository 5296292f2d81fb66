"""A fused LSTM step for the CPU unroll: gate activations, cell and hidden in one pass.

Between two recurrent products the unroll used to run about ten element-wise PyTorch ops a
step (sigmoid, tanh, products, sums), each one a dispatch and a pass over the gates. This is
one small C function doing all of it in one pass, vectorised by the compiler, and sharing
PyTorch's OpenMP threads. It is compiled on first use with the system C compiler (about 0.3 s)
into ``~/.cache/workbench/kernels`` (or ``$WORKBENCH_CACHE/kernels``), keyed by its source, the
compiler flags and the CPU, and loaded with ctypes; nothing is downloaded. Without a compiler,
or with ``WORKBENCH_CKERNEL=0``, the unroll keeps its PyTorch ops (same results to float32
rounding).

The exponential is our own (Cody-Waite range reduction and a degree-6 polynomial), accurate to
about 1 ulp, so a sigmoid differs from ``torch.sigmoid`` by a few 1e-7 at most.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <math.h>

static inline float wb_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  float k = rintf(x * 1.44269504088896341f);
  float r = x - k * 0.693359375f;
  r = r + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)k + 127) << 23;
  float s;
  memcpy(&s, &bits, 4);
  return p * s;
}

static inline float wb_sigmoid(float x) { return 1.0f / (1.0f + wb_exp(-x)); }

/* An LSTM step for one row. Gate columns are ordered (i, f, o, g) and the g columns hold
   twice their pre-activation, so tanh(z) = 2 sigmoid(2z) - 1. Every entry point below runs
   these same row functions, so a step split in stages (to apply edits between them) gives
   bit for bit the values of the fused step. */
static inline void gates_row(long H, const float *xr, const float *restrict hr, float *gr) {
#pragma GCC ivdep
  for (long j = 0; j < 3 * H; ++j) gr[j] = wb_sigmoid(xr[j] + hr[j]);
#pragma GCC ivdep
  for (long j = 3 * H; j < 4 * H; ++j) gr[j] = 2.0f * wb_sigmoid(xr[j] + hr[j]) - 1.0f;
}

static inline float hidden_of(float o, float c) { return o * (2.0f * wb_sigmoid(2.0f * c) - 1.0f); }

static inline void cell_row(long H, const float *gr, const float *restrict cpr,
                            float *restrict cr, float *restrict hor) {
#pragma GCC ivdep
  for (long j = 0; j < H; ++j) {
    float cc = gr[H + j] * cpr[j] + gr[j] * gr[3 * H + j];
    cr[j] = cc;
    hor[j] = hidden_of(gr[2 * H + j], cc);
  }
}

static inline void hidden_row(long H, const float *gr, const float *restrict cr,
                              float *restrict hor) {
#pragma GCC ivdep
  for (long j = 0; j < H; ++j) hor[j] = hidden_of(gr[2 * H + j], cr[j]);
}

/* Rows [0, n) of one step; each [n, k] argument comes with its row stride (in floats).
   gx [n, 4H] input projection + biases;  hh [n, 4H] recurrent product h_prev @ W_hh^T
   g  [n, 4H] activated gates (may be gx itself)
   cp [n, H] previous cell;  c [n, H] new cell;  h [n, H] new hidden (before projection) */
void wb_lstm_step(long n, long H, const float *gx, long gxs, const float *hh, long hs,
                  float *g, long gs, const float *cp, long cps, float *c, long cs, float *h,
                  long hos, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long b = 0; b < n; ++b) {
    gates_row(H, gx + b * gxs, hh + b * hs, g + b * gs);
    cell_row(H, g + b * gs, cp + b * cps, c + b * cs, h + b * hos);
  }
}

/* The same step in stages: gates, then cell and hidden, then (after a cell edit) hidden. */
void wb_lstm_gates(long n, long H, const float *gx, long gxs, const float *hh, long hs,
                   float *g, long gs, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long b = 0; b < n; ++b) gates_row(H, gx + b * gxs, hh + b * hs, g + b * gs);
}

void wb_lstm_cell(long n, long H, const float *g, long gs, const float *cp, long cps,
                  float *c, long cs, float *h, long hos, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long b = 0; b < n; ++b) cell_row(H, g + b * gs, cp + b * cps, c + b * cs, h + b * hos);
}

void wb_lstm_hidden(long n, long H, const float *g, long gs, const float *c, long cs,
                    float *h, long hos, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long b = 0; b < n; ++b) hidden_row(H, g + b * gs, c + b * cs, h + b * hos);
}
"""

_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"]
_FLAGS += ["-shared", "-fPIC"]
_STATE: dict = {"lib": None, "tried": False, "error": None}


def _cpu_key() -> str:
    """The CPU's model and flags: ``-march=native`` code runs only where it was built."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"
    return Path(root) / "kernels"


def _compile(target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc/gcc) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "wb_lstm.c"
        src.write_text(_SOURCE)
        out = Path(tmp) / target.name
        proc = subprocess.run(
            [cc, *_FLAGS, "-o", str(out), str(src)], capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed: {proc.stderr.strip()[:500]}")
        os.replace(out, target)  # atomic: a reader never loads a half-written library


def load():
    """The compiled library, or None where it cannot be built (then the caller's ops run)."""
    if _STATE["tried"]:
        return _STATE["lib"]
    _STATE["tried"] = True
    if os.environ.get("WORKBENCH_CKERNEL", "1") == "0" or platform.system() != "Linux":
        return None
    import torch  # noqa: F401  (its OpenMP runtime must be loaded first: we share it)

    key = hashlib.sha256("\0".join([_SOURCE, *_FLAGS, _cpu_key()]).encode()).hexdigest()[:16]
    target = _cache_dir() / f"wb_lstm_{key}.so"
    try:
        if not target.exists():
            _compile(target)
        lib = ctypes.CDLL(str(target))
        ptr, i64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        for name, pairs in (("step", 6), ("gates", 3), ("cell", 4), ("hidden", 3)):
            fn = getattr(lib, f"wb_lstm_{name}")
            fn.argtypes = [i64, i64] + [ptr, i64] * pairs + [i32]
            fn.restype = None
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        _STATE["error"] = str(exc)
        return None
    _STATE["lib"] = lib
    return lib


@contextlib.contextmanager
def disabled():
    """Within the block the unroll uses PyTorch's ops (for comparisons and tests)."""
    lib, _STATE["lib"] = load(), None
    try:
        yield
    finally:
        _STATE["lib"] = lib


def lstm_step_fn():
    """The compiled library (``wb_lstm_step`` and its stages, see the C source) or None."""
    return load()
