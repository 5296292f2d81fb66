"""GPU correctness and speed check: the recorder and explainers on CUDA (cuDNN) kernels.

Run on a machine with an NVIDIA GPU (CI never needs one)::

    PYTHONPATH=.:tests python demos/gpu_check.py            # cuda
    PYTHONPATH=.:tests python demos/gpu_check.py --device cpu --configs 5   # a dry run

1. Exactness: random nn.LSTM / nn.GRU set-ups (layers, directions, projections, packed uneven
   lengths, initial states) run through cuDNN, every recorded quantity compared with the
   float64 reference of ``tests/reference.py`` (numpy, straight from the equations), for both
   strategies ("recover" replays the fused kernel layer by layer; "unroll" steps the cell),
   plus the model output against the plain cuDNN forward; float16/bfloat16 runs too.
2. Explanations: the shipped sentiment model on the GPU against the CPU, per method, and
   LRP's conservation on the GPU.
3. Speed: ``workbench bench record`` on the GPU (ratio of recording to the plain forward).
"""

from __future__ import annotations

import argparse
import random
import time
import warnings

import numpy as np
import torch
from reference import run as reference
from torch import nn

import workbench

DIRS = ("fwd", "bwd")


def random_config(rng: random.Random) -> dict:
    mode = rng.choice(["lstm", "gru"])
    hidden = rng.randint(1, 48)
    batch = rng.randint(1, 8)
    T = rng.randint(1, 40)
    return dict(
        mode=mode,
        input_size=rng.randint(1, 24),
        hidden=hidden,
        layers=rng.randint(1, 3),
        bidirectional=rng.random() < 0.5,
        batch_first=rng.random() < 0.5,
        bias=rng.random() < 0.8,
        proj=rng.randint(1, hidden - 1)
        if mode == "lstm" and hidden > 1 and rng.random() < 0.3
        else 0,
        batch=batch,
        time=T,
        packed=rng.random() < 0.5,
        init_state=rng.random() < 0.5,
        lengths=[rng.randint(1, T) for _ in range(batch)],
        seed=rng.randint(0, 2**16),
    )


def exactness(device: str, n: int, dtype=torch.float32) -> dict:
    """Worst error of each strategy against the float64 reference over ``n`` set-ups."""
    rng = random.Random(0)
    worst = {"recover": 0.0, "unroll": 0.0, "output": 0.0, "plain_vs_ref": 0.0}
    failures = []
    for _ in range(n):
        cfg = random_config(rng)
        try:
            errs = _one(cfg, device, dtype)
        except Exception as err:  # noqa: BLE001 - report every failing set-up, go on
            failures.append(f"{type(err).__name__}: {err} | {cfg}")
            continue
        for k, v in errs.items():
            if v > worst[k]:
                worst[k] = v
                worst[k + "_cfg"] = {
                    c: cfg[c] for c in ("mode", "hidden", "layers", "bidirectional",
                                        "time", "packed", "init_state")
                }  # fmt: skip
    worst["failures"] = failures
    return worst


def _one(cfg, device, dtype):
    torch.manual_seed(cfg["seed"])
    cls = nn.LSTM if cfg["mode"] == "lstm" else nn.GRU
    kw = {"proj_size": cfg["proj"]} if cfg["proj"] else {}
    shape = dict(bias=cfg["bias"], batch_first=cfg["batch_first"])
    shape.update(bidirectional=cfg["bidirectional"], **kw)
    m = cls(cfg["input_size"], cfg["hidden"], cfg["layers"], **shape).eval()
    x = torch.randn(cfg["batch"], cfg["time"], cfg["input_size"])
    D = 2 if cfg["bidirectional"] else 1
    hout = cfg["proj"] or cfg["hidden"]
    h0 = torch.randn(cfg["layers"] * D, cfg["batch"], hout) if cfg["init_state"] else None
    c0 = torch.randn(cfg["layers"] * D, cfg["batch"], cfg["hidden"]) if cfg["init_state"] else None  # noqa: E501
    if dtype != torch.float32:  # the reference sees the same rounded weights and inputs
        m = m.to(dtype).float()
        x = x.to(dtype).float()
        h0 = None if h0 is None else h0.to(dtype).float()
        c0 = None if c0 is None else c0.to(dtype).float()
    lengths = cfg["lengths"] if cfg["packed"] else None
    ref = reference(m, x.numpy(), lengths, None if h0 is None else h0.numpy(),
                    None if c0 is None else c0.numpy())  # fmt: skip
    md = m.to(device=device, dtype=dtype)
    inp = (x if cfg["batch_first"] else x.transpose(0, 1)).to(device=device, dtype=dtype)
    if lengths is not None:
        inp = nn.utils.rnn.pack_padded_sequence(
            inp, torch.tensor(lengths), batch_first=cfg["batch_first"], enforce_sorted=False
        )
    args = (inp,)
    if h0 is not None:
        h0d, c0d = h0.to(device, dtype), c0.to(device, dtype)
        args = (inp, (h0d, c0d) if cfg["mode"] == "lstm" else h0d)
    T = max(lengths) if lengths else cfg["time"]
    with torch.no_grad():
        plain = md(*args)[0]
    if lengths is not None:
        plain_pad = nn.utils.rnn.pad_packed_sequence(plain, batch_first=True)[0]
    else:
        plain_pad = plain if cfg["batch_first"] else plain.transpose(0, 1)
    errs = {"plain_vs_ref": float(np.abs(plain_pad.double().cpu().numpy()
                                         - ref["output"][:, :T]).max())}  # fmt: skip
    for strategy in ("recover", "unroll"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tr = workbench.record(md, *args, strategy=strategy)
        e = 0.0
        for (layer, d, q), v in ((k, v) for k, v in ref.items() if k != "output"):
            got = tr[f"{cfg['mode']}.{layer}.{DIRS[d]}.{q}"].double().cpu().numpy()
            assert got.shape == (v.shape[0], T, v.shape[2]), (q, got.shape)
            e = max(e, float(np.abs(got - v[:, :T]).max()))
        errs[strategy] = e
        out = tr.output[0]
        a, b = (out.data, plain.data) if lengths is not None else (out, plain)
        errs["output"] = max(errs.get("output", 0.0), float((a - b).abs().max()))
    return errs


def _show(w: dict) -> str:
    head = {k: f"{v:.1e}" for k, v in w.items() if isinstance(v, float)}
    lines = [f"   {head}"]
    for k in ("recover", "unroll", "plain_vs_ref"):
        if k + "_cfg" in w:
            lines.append(f"     worst {k}: {w[k + '_cfg']}")
    for f in w["failures"][:5]:
        lines.append(f"     FAILED {f}")
    if len(w["failures"]) > 5:
        lines.append(f"     ... {len(w['failures'])} failures in all")
    return "\n".join(lines)


def cells(device: str) -> dict:
    """LSTMCell / GRUCell in a hand-written loop, recorded with ``Recorder``."""
    torch.manual_seed(0)
    errs = {}
    for cls, mode in ((nn.LSTMCell, "lstm"), (nn.GRUCell, "gru")):
        cell = cls(16, 32).to(device).eval()
        x = torch.randn(20, 4, 16, device=device)

        class Loop(nn.Module):
            def __init__(self, cell):
                super().__init__()
                self.cell = cell

            def forward(self, x):
                h = None
                outs = []
                for t in range(x.shape[0]):
                    h = self.cell(x[t], h)
                    outs.append(h[0] if isinstance(h, tuple) else h)
                return torch.stack(outs)

        model = Loop(cell)
        with torch.no_grad():
            plain = model(x)
        tr = workbench.record(model, x)
        hid = tr["cell.0.fwd.hidden"]  # [batch, time, units]
        errs[mode] = float((hid.transpose(0, 1) - plain).abs().max())
    return errs


def explanations(device: str) -> dict:
    from workbench.explain import explain
    from workbench.models.checkpoint import load

    bundle = load("sentiment")
    texts = [
        "a gripping , beautifully acted film with a script that never stops surprising",
        "dull , overlong and badly written ; i wanted my two hours back",
        "not bad at all , though the ending drags",
    ]
    ids, lengths = bundle.encode(texts)
    res = {}
    for method in ("integrated_gradients", "lrp", "saliency", "input_x_gradient", "occlusion"):
        cpu = explain(bundle.model.cpu(), ids, None, method, lengths=lengths)
        gm = bundle.model.to(device)
        t0 = time.perf_counter()
        gpu = explain(gm, ids.to(device), None, method, lengths=lengths.to(device))
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        a, b = cpu.attributions.float(), gpu.attributions.float().cpu()
        rel = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
        res[method] = (rel, dt)
        bundle.model.cpu()
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--configs", type=int, default=60)
    p.add_argument("--profile", action="store_true", help="profile one recorded call")
    a = p.parse_args()
    if a.device == "cuda":
        print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__,
              "| cuDNN", torch.backends.cudnn.version())  # fmt: skip
    t0 = time.perf_counter()
    for tf32 in (True, False):
        if a.device == "cuda":
            torch.backends.cudnn.allow_tf32 = tf32
        print(f"\n1. exactness, {a.configs} random set-ups, float32, cudnn.allow_tf32={tf32}, "
              "max abs error vs the float64 reference:")  # fmt: skip
        print(_show(exactness(a.device, a.configs)))
    torch.backends.cudnn.allow_tf32 = True
    for dt in (torch.float16, torch.bfloat16):
        print(f"   {dt}:")
        print(_show(exactness(a.device, max(a.configs // 4, 2), dt)))
    print("   cells (LSTMCell/GRUCell loop), hidden vs plain:",
          {k: f"{v:.1e}" for k, v in cells(a.device).items()})  # fmt: skip
    print(f"   ({time.perf_counter() - t0:.0f} s)")
    print("\n2. explanations, shipped sentiment model, GPU vs CPU (max rel diff, GPU time):")
    for k, (rel, dt) in explanations(a.device).items():
        print(f"   {k:22s} {rel:.1e}  {dt * 1e3:.0f} ms")
    if a.profile and a.device == "cuda":
        print("\n2b. where recording time goes (LSTM 2x650, 64x100, torch.profiler):")
        lstm = nn.LSTM(650, 650, 2).cuda().eval()
        x = torch.randn(100, 64, 650, device="cuda")
        for _ in range(3):
            workbench.record(lstm, x)
        torch.cuda.synchronize()
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        ) as prof:
            for _ in range(5):
                workbench.record(lstm, x)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15))
    print("\n3. recording cost on the device (median ratio to the plain forward):")
    from workbench.recorder._bench import run_benchmarks

    for units, batch, steps in ((650, 64, 100), (1024, 256, 200)):
        for r in run_benchmarks(units, 2, batch, steps, 7, a.device, a.device == "cpu"):
            err = "-" if r.max_abs_error is None else f"{r.max_abs_error:.1e}"
            print(f"   {r.case:52s} plain {r.plain_s * 1e3:7.1f} ms  rec "
                  f"{r.record_s * 1e3:7.1f} ms  {r.ratio:5.2f}x  err {err}")  # fmt: skip
        if a.device == "cpu":
            break


if __name__ == "__main__":
    main()
