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
from workbench.config import configure

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


def exactness(device: str, n: int, dtype=torch.float32, wavefront: bool = False) -> dict:
    """Worst error of each strategy against the float64 reference over ``n`` set-ups.

    ``wavefront``: only set-ups the wavefront schedule takes (uniform one-way stacks, >= 16
    steps).
    """
    rng = random.Random(0)
    worst = {"recover": 0.0, "unroll": 0.0, "output": 0.0, "plain_vs_ref": 0.0}
    failures = []
    for _ in range(n):
        cfg = random_config(rng)
        if wavefront:
            T = rng.randint(16, 120)
            cfg.update(packed=False, bidirectional=False, layers=rng.randint(2, 4), time=T,
                       lengths=[T] * cfg["batch"])  # fmt: skip
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
    from workbench.explainers import explain
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


def flat_weights(device: str) -> list[str]:
    """Kept per-layer flat buffers: cuDNN takes them without compacting, same numbers."""
    from workbench.recorder import _cudnn

    lines = []
    shapes = [
        ("lstm", dict(bias=True)),
        ("lstm", dict(bias=False)),
        ("lstm", dict(bias=True, proj_size=40)),
        ("lstm", dict(bias=False, bidirectional=True)),
        ("gru", dict(bias=True, bidirectional=True)),
        ("gru", dict(bias=False)),
    ]
    for mode, kw in shapes:
        torch.manual_seed(0)
        cls = nn.LSTM if mode == "lstm" else nn.GRU
        m = cls(24, 64, 3, **kw).to(device).eval()
        D = 2 if kw.get("bidirectional") else 1
        per = len(m._flat_weights) // (3 * D)
        params = m._flat_weights[per * D : per * D * 3]  # layers 1 and 2
        P = kw.get("proj_size") or 64
        x = torch.randn(30, 5, P * D, device=device)
        h0 = torch.randn(2 * D, 5, P, device=device)
        hx = [h0, torch.randn(2 * D, 5, 64, device=device)] if mode == "lstm" else h0
        fn = torch._VF.lstm if mode == "lstm" else torch._VF.gru
        args = (kw.get("bias", True), 2, 0.0, False, D == 2, False)
        with torch.no_grad():
            flat = _cudnn.layer_weights(params, mode, 2, D == 2, kw.get("bias", True))
            kept = _cudnn.layer_weights(params, mode, 2, D == 2, kw.get("bias", True)) is flat
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a compaction warning would fail here
                got = fn(x, hx, flat, *args)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = fn(x, hx, [q.clone() for q in params], *args)
            err = max(float((a - b).abs().max()) for a, b in zip(got, ref, strict=True))
            m.weight_ih_l1.data.add_(0.0)  # an in-place change: the buffer is made again
            again = _cudnn.layer_weights(params, mode, 2, D == 2, kw.get("bias", True))
        lines.append(f"   {mode} {kw}: kept={kept} remade_after_edit={again is not flat} "
                     f"max diff vs clones {err:.1e}")  # fmt: skip
    return lines


def graphs(device: str) -> list[str]:
    """CUDA graph replays against eager recordings: same numbers, fresh inputs and weights."""
    from workbench.recorder import _graphs

    lines = []
    shapes = [
        ("lstm", dict(bias=True), torch.float32),
        ("lstm", dict(bias=False, proj_size=48), torch.float32),
        ("gru", dict(bias=True), torch.float32),
        ("lstm", dict(bias=True), torch.float16),
        ("gru", dict(bias=False), torch.bfloat16),
    ]
    for mode, kw, dtype in shapes:
        torch.manual_seed(0)
        cls = nn.LSTM if mode == "lstm" else nn.GRU
        m = cls(40, 96, 3, batch_first=True, **kw).to(device, dtype).eval()
        worst, kept = 0.0, 0.0
        first = None
        for step in range(5):
            x = torch.randn(8, 70, 40, device=device, dtype=dtype)
            if step == 3:  # an in-place weight change between calls (through .data)
                m.weight_hh_l1.data.mul_(0.5)
            with configure(cuda_graphs=False):
                eager = workbench.record(m, x, strategy="recover")
            got = workbench.record(m, x, strategy="recover")
            for n in eager.names:
                worst = max(worst, float((eager[n].float() - got[n].float()).abs().max()))
            worst = max(worst, float((eager.output[0].float() - got.output[0].float()).abs().max()))
            if first is None:
                first = (got, {n: got[n].clone() for n in got.names})
        tr, copy = first
        kept = max(float((tr[n].float() - copy[n].float()).abs().max()) for n in tr.names)
        lines.append(f"   {mode} {kw} {str(dtype)[6:]}: graphs kept {len(_graphs._GRAPHS)}, "
                     f"max diff eager vs replay {worst:.1e}, "
                     f"first trace changed by {kept:.1e}")  # fmt: skip
        _graphs.clear()
    return lines


def reserve_vs_recover(device: str) -> list[str]:
    """Big set-ups: states read from cuDNN's reserve space against the layer-by-layer path."""

    lines = []
    torch.backends.cudnn.allow_tf32 = False
    setups = (
        (650, 2, 64, 100, torch.float32, True),
        (256, 3, 8, 300, torch.float32, False),
        (512, 2, 32, 50, torch.float16, True),
    )
    for units, layers, batch, steps, dtype, bias in setups:
        torch.manual_seed(0)
        m = nn.LSTM(units, units, layers, bias=bias).to(device, dtype).eval()
        x = torch.randn(steps, batch, units, device=device, dtype=dtype)
        with configure(cudnn_reserve=False):
            slow = workbench.record(m, x, strategy="recover")
        fast = workbench.record(m, x, strategy="recover")
        diff = max(float((slow[n].float() - fast[n].float()).abs().max()) for n in slow.names)
        meta = fast.meta["exactness"]["lstm"]
        lines.append(f"   LSTM {layers}x{units} {batch}x{steps} {str(dtype)[6:]} bias={bias}: "
                     f"source {meta.get('source', 'recovery')!r}, max diff vs recovery {diff:.1e}, "
                     f"self-check h {meta['max_abs_error_hidden']:.1e} "
                     f"c {meta['max_abs_error_cell']:.1e}")  # fmt: skip
    torch.backends.cudnn.allow_tf32 = True
    return lines


def ab(device: str) -> list[str]:
    """The GPU recording path before and after each change, interleaved in one process."""
    from workbench.bench.recorder import bench_case
    from workbench.recorder import _cudnn, _reserve, _wavefront

    torch.manual_seed(0)
    x = torch.randn(100, 64, 650, device=device)
    models = {
        "LSTM 2x650": nn.LSTM(650, 650, 2).to(device).eval(),
        "BiLSTM 2x650": nn.LSTM(650, 650, 2, bidirectional=True).to(device).eval(),
        "GRU 2x650": nn.GRU(650, 650, 2).to(device).eval(),
    }
    # label, kept flat weights, wavefront, chunks, CUDA graphs, reserve space
    variants = [("per-layer calls, cloned weights (before)", False, False, 4, False, False),
                ("per-layer calls, kept flat weights", True, False, 4, False, False),
                ("wavefront, 4 chunks, CUDA graph", True, True, 4, True, False),
                ("cuDNN reserve space, one call", True, True, 4, True, True)]  # fmt: skip
    lines = []
    runs = [0]
    real = _wavefront.recover

    def counted(*args, **kwargs):
        runs[0] += 1
        return real(*args, **kwargs)

    _wavefront.recover = counted
    for rnd in range(2):
        for name, model in models.items():
            for label, flat, wave, chunks, graphs, reserve in variants:
                if (name.startswith("Bi") and wave) or (name.startswith("GRU") and reserve):
                    continue  # paths these modules do not take
                _wavefront._CHUNKS = chunks
                switches = dict(cudnn_weights=flat, wavefront=wave, cuda_graphs=graphs,
                                cudnn_reserve=reserve)  # fmt: skip
                with configure(**switches):
                    r = bench_case(f"{name}, 64x100, {label}", model, x, 31)
                lines.append(f"   [{rnd}] {r.case:58s} plain {r.plain_s * 1e3:6.2f} ms  "
                             f"rec {r.record_s * 1e3:6.2f} ms  {r.ratio:5.2f}x  "
                             f"err {r.max_abs_error:.1e}")  # fmt: skip
    _wavefront._CHUNKS = 4
    _wavefront.recover = real
    lines.append(f"   reserve layouts checked: {_reserve._VERDICT} {_reserve._REASONS[:3]}")
    lines.append(f"   (the wavefront schedule ran {runs[0]} times)")
    # the floor: the per-layer cuDNN calls alone, against the whole forward
    lstm = models["LSTM 2x650"]
    h0 = torch.zeros(1, 64, 650, device=device)
    w = lstm._flat_weights
    layers = [_cudnn.layer_weights(w[4 * i : 4 * i + 4], "lstm", 1, False, True) for i in (0, 1)]

    def per_layer():
        inp = x
        for flat in layers:
            inp = torch._VF.lstm(inp, [h0, h0], flat, True, 1, 0.0, False, False, False)[0]

    def whole():
        lstm(x)

    with torch.no_grad():
        for label, fn in (("whole forward", whole), ("two per-layer calls", per_layer)):
            for _ in range(20):
                fn()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(50):
                fn()
            end.record()
            torch.cuda.synchronize()
            lines.append(f"   floor, LSTM 2x650 64x100, {label}: "
                         f"{start.elapsed_time(end) / 50:.2f} ms")  # fmt: skip
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--configs", type=int, default=60)
    p.add_argument("--profile", action="store_true", help="profile one recorded call")
    p.add_argument("--parts", default="exact,explain,bench", help="also: flat,ab")
    a = p.parse_args()
    parts = set(a.parts.split(","))
    if a.device == "cuda":
        print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__,
              "| cuDNN", torch.backends.cudnn.version())  # fmt: skip
    t0 = time.perf_counter()
    if "flat" in parts and a.device == "cuda":
        print("\n0. kept per-layer flat weights (cuDNN layout), layers 1-2 of 3:")
        print("\n".join(flat_weights(a.device)))
    if "exact" in parts:
        for tf32 in (True, False):
            if a.device == "cuda":
                torch.backends.cudnn.allow_tf32 = tf32
            print(f"\n1. exactness, {a.configs} random set-ups, float32, "
                  f"cudnn.allow_tf32={tf32}, max abs error vs the float64 reference:")  # fmt: skip
            print(_show(exactness(a.device, a.configs)))
        torch.backends.cudnn.allow_tf32 = True
        for dt in (torch.float16, torch.bfloat16):
            print(f"   {dt}:")
            print(_show(exactness(a.device, max(a.configs // 4, 2), dt)))
        print("   wavefront set-ups (uniform one-way stacks of 2-4 layers, 16-120 steps), "
              "float32, TF32 on: ")  # fmt: skip
        print(_show(exactness(a.device, a.configs, wavefront=True)))
        torch.backends.cudnn.allow_tf32 = False
        print("   the same, TF32 off:")
        print(_show(exactness(a.device, a.configs, wavefront=True)))
        torch.backends.cudnn.allow_tf32 = True
        from workbench.recorder import _reserve

        print(f"   reserve layouts checked: {_reserve._VERDICT} {_reserve._REASONS[:3]}")
        print("   cells (LSTMCell/GRUCell loop), hidden vs plain:",
              {k: f"{v:.1e}" for k, v in cells(a.device).items()})  # fmt: skip
        print(f"   ({time.perf_counter() - t0:.0f} s)")
    if "explain" in parts:
        print("\n2. explanations, shipped sentiment model, GPU vs CPU (max rel diff, GPU time):")
        for k, (rel, dt) in explanations(a.device).items():
            print(f"   {k:22s} {rel:.1e}  {dt * 1e3:.0f} ms")
    if "reserve" in parts and a.device == "cuda":
        print("\n1c. cuDNN reserve space vs layer-by-layer recovery (TF32 off):")
        print("\n".join(reserve_vs_recover(a.device)))
    if "graph" in parts and a.device == "cuda":
        print("\n1b. CUDA graph replay vs eager (3-layer stacks, 8 x 70, 5 calls, weights edited):")
        print("\n".join(graphs(a.device)))
    if "ab" in parts and a.device == "cuda":
        print("\n2a. A/B of the recording path's changes (medians of 31 interleaved pairs):")
        print("\n".join(ab(a.device)))
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
    if "bench" not in parts:
        return
    print("\n3. recording cost on the device (median ratio to the plain forward):")
    from workbench.bench.recorder import run_benchmarks

    for units, batch, steps in ((650, 64, 100), (1024, 256, 200)):
        for r in run_benchmarks(units, 2, batch, steps, 7, a.device, a.device == "cpu"):
            err = "-" if r.max_abs_error is None else f"{r.max_abs_error:.1e}"
            print(f"   {r.case:52s} plain {r.plain_s * 1e3:7.1f} ms  rec "
                  f"{r.record_s * 1e3:7.1f} ms  {r.ratio:5.2f}x  err {err}")  # fmt: skip
        if a.device == "cpu":
            break


if __name__ == "__main__":
    main()
