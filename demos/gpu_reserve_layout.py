"""Where cuDNN's training reserve space keeps an LSTM's gates, cells and hidden states.

Run on a machine with an NVIDIA GPU (CI never needs one)::

    python demos/gpu_reserve_layout.py

For a few LSTM shapes it runs ``torch._cudnn_rnn(..., train=True)``, computes every quantity in
float64 from the equations, finds sample values in the reserve, infers an offset and strides
per (layer, quantity) and checks the whole ``[T, B, H]`` block through them. This is how
``workbench/recorder/_reserve.py``'s layout was found (H100, cuDNN 9.19); the recorder checks
it again on every call, so a cuDNN that lays things out otherwise only loses the fast path.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.backends.cudnn import rnn as cudnn_rnn

NAMES = ("zi", "zf", "zg", "zo", "i", "f", "g", "o", "c", "h")


def truth(m: nn.LSTM, x, h0, c0) -> list[dict]:
    """Per layer, ``{name: [T, B, H] float64}`` from the equations (z: pre-activations)."""
    inp, res = x.double(), []
    for layer in range(m.num_layers):
        wi = getattr(m, f"weight_ih_l{layer}").double()
        wh = getattr(m, f"weight_hh_l{layer}").double()
        b = getattr(m, f"bias_ih_l{layer}").double() + getattr(m, f"bias_hh_l{layer}").double()
        h, c = h0[layer].double(), c0[layer].double()
        q = {k: [] for k in NAMES}
        for t in range(x.shape[0]):
            z = inp[t] @ wi.T + h @ wh.T + b
            zi, zf, zg, zo = z.chunk(4, -1)
            i, f, g, o = zi.sigmoid(), zf.sigmoid(), zg.tanh(), zo.sigmoid()
            c = f * c + i * g
            h = o * c.tanh()
            for k, v in zip(NAMES, (zi, zf, zg, zo, i, f, g, o, c, h), strict=True):
                q[k].append(v)
        res.append({k: torch.stack(v) for k, v in q.items()})
        inp = res[-1]["h"]
    return res


def locate(R: torch.Tensor, Q: torch.Tensor) -> str:
    """Offset and strides of ``Q`` ``[T, B, H]`` inside the flat reserve ``R``, checked."""
    T, B, H = Q.shape
    points = [(0, 0, 0), (min(1, T - 1), 0, 0), (0, min(1, B - 1), 0), (0, 0, min(1, H - 1))]
    found = []
    for p in points:
        v = Q[p].item()
        hits = torch.nonzero((R - v).abs() < 2e-6 * max(1.0, abs(v))).flatten().tolist()
        if not hits:
            return "not found"
        found.append(hits[0])
    base = found[0]
    st, sb, su = (f - base for f in found[1:])
    idx = (
        base
        + torch.arange(T, device=R.device)[:, None, None] * st
        + torch.arange(B, device=R.device)[None, :, None] * sb
        + torch.arange(H, device=R.device)[None, None, :] * su
    )
    if idx.min() < 0 or idx.max() >= R.numel():
        return f"base {base}: strides do not fit"
    err = float((R[idx] - Q).abs().max())
    return f"base {base} strides t {st} b {sb} u {su}, whole block max err {err:.1e}"


def main() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for n_in, H, B, T, L in ((3, 4, 2, 3, 2), (5, 8, 3, 5, 2), (24, 64, 5, 30, 3)):
        torch.manual_seed(0)
        m = nn.LSTM(n_in, H, L).cuda()
        x = torch.randn(T, B, n_in, device="cuda")
        h0, c0 = torch.randn(L, B, H, device="cuda"), torch.randn(L, B, H, device="cuda")
        with torch.no_grad():
            out, _, _, reserve, _ = torch._cudnn_rnn(
                x, m._flat_weights, 4, None, h0, c0, cudnn_rnn.get_cudnn_mode("LSTM"), H, 0, L,
                False, 0.0, True, False, [], None,
            )  # fmt: skip
            R = reserve.view(torch.float32).double()
            n = T * B * H
            print(f"\nI={n_in} H={H} B={B} T={T} L={L}: reserve {R.numel()} floats; "
                  f"(2L-1)TBH + 4LTBH = {(2 * L - 1) * n + 4 * L * n}")  # fmt: skip
            for layer, q in enumerate(truth(m, x, h0, c0)):
                for k, v in q.items():
                    print(f"   layer {layer} {k:2s}: {locate(R, v)}")
    torch.manual_seed(0)
    m = nn.LSTM(650, 650, 2).cuda()
    x = torch.randn(100, 64, 650, device="cuda")
    h0 = c0 = torch.zeros(2, 64, 650, device="cuda")
    for train in (False, True, False, True):
        with torch.no_grad():
            for rep in range(60):
                if rep == 10:
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                torch._cudnn_rnn(
                    x, m._flat_weights, 4, None, h0, c0, cudnn_rnn.get_cudnn_mode("LSTM"), 650, 0,
                    2, False, 0.0, train, False, [], None,
                )  # fmt: skip
            torch.cuda.synchronize()
        print(f"2x650, 64 x 100, train={train}: {(time.perf_counter() - t0) / 50 * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
