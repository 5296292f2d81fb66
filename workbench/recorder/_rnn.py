"""Exact evaluation of fused LSTM/GRU kernels with every gate and cell kept.

``torch._VF.lstm`` / ``torch._VF.gru`` (what ``nn.LSTM`` and ``nn.GRU`` call) return only
the last layer's outputs and the final states. Two strategies recover everything else:

``unroll``
    Evaluate the same equations step by step with the module's own parameters: the input
    projection of all steps in one GEMM, then per step one GEMM and a handful of in-place
    element-wise ops writing straight into the recorded buffers. On CPU this costs about as
    much as the fused kernel itself, and it is the only strategy that supports edits
    (interventions), because the recurrence must continue from the edited value.
``recover``
    Let the fused kernel run layer by layer (cuDNN on GPU), then recover all gates of a
    layer in one GEMM from the kernel's own hidden states and the cell state with a scan.
    Hidden states are the kernel's own; recomputing them from the recovered gates and cells
    gives the exactness error over every step.

Shapes inside this module are time-major ``[time, batch, units]``; rows are in the order the
kernel sees them (sorted by decreasing length for packed input).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from workbench._native import calibrate as _calibrate
from workbench._native import ckernel as _ckernel
from workbench._native import pages as _pages
from workbench.recorder import _gemm, _kept, _scan, sites
from workbench.recorder._call import RnnCall, packed_flat_index  # noqa: F401 (re-exported)

Edit = Callable[[torch.Tensor, int], torch.Tensor]
Key = tuple[int, int, str]  # (layer, direction, quantity)


def edit_value(fn: Edit, value: torch.Tensor, step: int, rows: torch.Tensor | None, batch: int):
    """Apply a user edit to ``value [active, units]`` of one step (out of place).

    The user function sees ``[batch, units]`` in the caller's batch order; ``rows`` maps kernel
    rows to caller rows (None when they are the same).
    """
    n = value.shape[0]
    if rows is None and n == batch:
        full = value
    else:
        idx = rows[:n] if rows is not None else torch.arange(n)
        full = value.new_zeros(batch, value.shape[1]).index_copy(0, idx, value)
    new = fn(full, step)
    if not isinstance(new, torch.Tensor) or new.shape != full.shape:
        got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
        raise ValueError(
            f"an edit must return a tensor shaped like its input {tuple(full.shape)} "
            f"[batch, units], got {got}"
        )
    new = new.to(value.dtype)
    if rows is None and n == batch:
        return new
    idx = rows[:n] if rows is not None else torch.arange(n)
    return new.index_select(0, idx)


# ---------------------------------------------------------------------------------------
# unroll, no autograd: in-place ops into preallocated buffers
# ---------------------------------------------------------------------------------------


def _lstm_perm(hidden: int, device) -> torch.Tensor:
    """Gate rows reordered (i, f, g, o) -> (i, f, o, g) so one sigmoid covers three gates."""
    h = hidden
    return torch.cat(
        [torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)]
    ).to(device)


def _tanh_(t: torch.Tensor) -> torch.Tensor:
    """In-place tanh as 2 * sigmoid(2x) - 1 (several times faster than tanh on CPU)."""
    return t.mul_(2).sigmoid_().mul_(2).sub_(1)


class _Steps:
    """Step order and active rows of one direction."""

    def __init__(self, call: RnnCall, direction: int) -> None:
        self.order = range(call.time) if direction == 0 else range(call.time - 1, -1, -1)
        self.sizes = call.batch_sizes
        self.batch = call.batch

    def active(self, t: int) -> int:
        return self.batch if self.sizes is None else self.sizes[t]


_WEIGHT_CACHE = _kept.KeptWhileAlive(8)


def _lstm_fast_weights(p):
    """Gate-reordered weights with the g rows doubled, cached per parameter and version.

    An entry is used only while the very tensors it was made from are alive (never matched by
    address, which a new module may reuse) and unchanged (same versions).
    """
    tensors = (p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    stamp = tuple((id(t), t.data_ptr(), t._version) if t is not None else None for t in tensors)
    hit = _WEIGHT_CACHE.get(id(p["w_ih"]), tensors)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    with torch.no_grad():
        H = p["w_ih"].shape[0] // 4
        perm = _lstm_perm(H, p["w_ih"].device)
        scale = torch.ones(4 * H, 1, dtype=p["w_ih"].dtype, device=p["w_ih"].device)
        scale[3 * H :] = 2.0  # g rows doubled: tanh(z) = 2 * sigmoid(2z) - 1
        w_ih = (p["w_ih"][perm] * scale).contiguous()
        w_hh = (p["w_hh"][perm] * scale).contiguous()
        w_hh_t = w_hh.t().contiguous()
        bias = None
        if p["b_ih"] is not None:
            bias = (p["b_ih"] + p["b_hh"])[perm] * scale[:, 0]
    result = (w_ih, w_hh_t, bias, w_hh)
    _WEIGHT_CACHE.put(id(p["w_ih"]), tensors, (stamp, result))
    return result


def _lstm_dir_fast(call, p, steps, out_view, edits, rows, h0, c0, half=False):
    x = call.x
    lib = _compiled(x)
    if lib is not None:  # one compiled call a step for the element-wise part
        return _lstm_dir_fused(lib, call, p, steps, out_view, edits, rows, h0, c0, half)
    T, B = call.time, call.batch
    H = p["w_ih"].shape[0] // 4
    w_ih, w_hh_t, bias, w_hh = _lstm_fast_weights(p)
    x2 = x.reshape(T * B, -1)
    dnn = _gemm.usable(x2, w_ih)  # oneDNN products (faster than MKL on some CPUs)
    w_hh_packed = _gemm.pack(w_hh, B) if dnn else None
    if dnn:
        G = _gemm.linear(x2, w_ih, bias).view(T, B, 4 * H)
    elif bias is not None:
        G = torch.addmm(bias, x2, w_ih.t()).view(T, B, 4 * H)
    else:
        G = torch.mm(x2, w_ih.t()).view(T, B, 4 * H)
    uniform = call.batch_sizes is None
    new = x.new_empty if uniform else x.new_zeros  # uniform: every entry gets written
    C = new(T, B, H)
    w_hr_t = p["w_hr"].t() if p["w_hr"] is not None else None
    Hraw = new(T, B, H) if w_hr_t is not None else out_view
    h, c = h0, c0
    if not uniform:
        h, c = h0.clone(), c0.clone()
    views = {
        "input_gate": slice(0, H),
        "forget_gate": slice(H, 2 * H),
        "output_gate": slice(2 * H, 3 * H),
        "cell_input": slice(3 * H, 4 * H),
    }
    gate_edits = [(q, f) for q, f in edits.items() if q in views]
    for t in steps.order:
        n = steps.active(t)
        g = G[t] if n == B else G[t, :n]
        hp, cp = (h, c) if n == B else (h[:n], c[:n])
        if dnn:
            g.add_(_gemm.linear_packed(hp, w_hh_packed, w_hh))
        else:
            g.addmm_(hp, w_hh_t)
        g.sigmoid_()
        gg = g[:, 3 * H :]
        gg.mul_(2).sub_(1)
        for q, fn in gate_edits:
            view = g[:, views[q]]
            view.copy_(edit_value(fn, view.clone(), t, rows, B))
        ct = C[t] if n == B else C[t, :n]
        torch.mul(g[:, H : 2 * H], cp, out=ct)
        ct.addcmul_(g[:, :H], gg)
        if "cell" in edits:
            ct.copy_(edit_value(edits["cell"], ct.clone(), t, rows, B))
        hr = Hraw[t] if n == B else Hraw[t, :n]
        torch.mul(ct, 2, out=hr)
        hr.sigmoid_().mul_(2).sub_(1)
        hr.mul_(g[:, 2 * H : 3 * H])
        h, c = _lstm_step_end(hr, ct, h, c, t, n, B, out_view, w_hr_t, edits, rows, uniform)
    if not uniform:
        _zero_padding(G, call.batch_sizes)
    return _lstm_record(G, C, out_view, H), h, c


_GATES = ("input_gate", "forget_gate", "output_gate", "cell_input")


def _compiled(x: torch.Tensor):
    """The compiled LSTM step library (``_ckernel``) where it applies, else None.

    It applies to float32 CPU inputs outside autograd (a float64 or autograd run keeps
    PyTorch's ops).
    """
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return None
    if torch.is_grad_enabled() and x.requires_grad:
        return None
    if not _calibrate.chosen().ckernel:  # measured per machine, WORKBENCH_CKERNEL forces
        return None
    return _ckernel.lstm_step_fn()


# Rows of input projection computed per product: 1-2 MB of output at a time stays in cache for
# the steps that read it, and oneDNN ran these sizes 1.4-2x faster than one product over all
# steps (2-core AMD EPYC: 460 vs 320 GFLOPS at 64 x 650, 445 vs 215 at 32 x 256).
_CHUNK_BYTES = 1_500_000


def _lstm_dir_fused(lib, call, p, steps, out_view, edits, rows, h0, c0, half=False):
    """:func:`_lstm_dir_fast` with the element-wise part of a step in one C call.

    The input projection runs a few steps at a time, just before those steps, into a scratch
    block the step kernel reads while it is still in cache; the kernel writes the activated
    gates, the cell and the hidden state straight into the trace's buffers. With gate or cell
    edits the step runs in three compiled stages instead, with the edits between them: the
    same arithmetic, so an edited run matches an unedited one bit for bit before the edit.
    """
    x = call.x
    T, B = call.time, call.batch
    H = p["w_ih"].shape[0] // 4
    w_ih, w_hh_t, bias, w_hh = _lstm_fast_weights(p)
    uniform = call.batch_sizes is None
    zero = not uniform  # uniform: every entry gets written
    w_hr_t = p["w_hr"].t() if p["w_hr"] is not None else None
    small = 0 < B <= _SEQ_ROWS and H % 16 == 0  # the compiled product (see wb_lstm_seq)
    seq = small and uniform and not edits and w_hr_t is None and T > 0
    half = half and seq and _ckernel.has_half()
    G = None if half else _pages.empty(T, B, 4 * H, like=x, zero=zero)
    C = _pages.empty(T, B, H, like=x, zero=zero)
    Hraw = _pages.empty(T, B, H, like=x, zero=zero) if w_hr_t is not None else out_view
    h, c = (h0, c0) if uniform else (h0.clone(), c0.clone())
    if h.stride(-1) != 1:
        h = h.contiguous()
    if c.stride(-1) != 1:
        c = c.contiguous()
    dnn = _gemm.usable(x, w_ih)
    wb = _seq_weights(w_hh_t, H) if small else None
    if seq:
        h16 = None
        if half:  # float16 copies of everything recorded (see ``_recorder.half_outputs``)
            h16 = [x.new_empty(T, B, k * H, dtype=torch.float16) for k in (4, 1, 1)]
        _lstm_seq(lib, x, w_ih, bias, wb, h, c, G, C, Hraw, steps.order[0] != 0, h16)
        last = (Hraw[steps.order[-1]], C[steps.order[-1]])
        if h16 is not None:
            return _lstm_record(h16[0], h16[1], h16[2], H), *last
        return _lstm_record(G, C, out_view, H), *last
    # a small batch computes like wb_lstm_seq (one input product, compiled recurrent ones)
    per = T if small else max(1, min(T, _CHUNK_BYTES // max(1, B * 4 * H * 4)))
    w_ih_packed = _gemm.pack(w_ih, per * B) if dnn and not small else None
    w_hh_packed = _gemm.pack(w_hh, B) if dnn and not small else None
    K = w_hh_t.shape[0]
    e = G.element_size()
    g_ptr, g_ts, c_ptr, c_ts = G.data_ptr(), G.stride(0) * e, C.data_ptr(), C.stride(0) * e
    r_ptr, r_ts, r_rs = Hraw.data_ptr(), Hraw.stride(0) * e, Hraw.stride(1)
    order = list(steps.order)
    threads = torch.get_num_threads() if B * H >= 32768 else 1  # smaller: one thread is faster
    i_of = {q: i for i, q in enumerate(_GATES)}
    gate_edits = [(q, fn) for q, fn in edits.items() if q in i_of]
    staged = bool(gate_edits) or "cell" in edits
    for k in range(0, T, per):
        block = order[k : k + per]
        lo = min(block)
        xs = x[lo : lo + len(block)].reshape(len(block) * B, -1)
        if w_ih_packed is not None and len(block) == per:
            P = _gemm.linear_packed(xs, w_ih_packed, w_ih, bias)
        else:
            P = _gemm.linear(xs, w_ih, bias)
        p_ptr = P.data_ptr()
        for t in block:
            n = steps.active(t)
            hp, cp = (h, c) if n == B else (h[:n], c[:n])
            if small:
                hh = x.new_empty(n, 4 * H)
                lib.wb_lstm_product(n, H, K, wb.data_ptr(), hp.data_ptr(), hp.stride(0),
                                    hh.data_ptr(), threads)  # fmt: skip
            elif w_hh_packed is not None:
                hh = _gemm.linear_packed(hp, w_hh_packed, w_hh)
            else:
                hh = torch.mm(hp, w_hh_t)
            gx, g_t = p_ptr + (t - lo) * B * 4 * H * e, g_ptr + t * g_ts
            cp_, cp_rs, c_t, h_t = cp.data_ptr(), cp.stride(0), c_ptr + t * c_ts, r_ptr + t * r_ts
            ct = C[t] if n == B else C[t, :n]
            if not staged:
                lib.wb_lstm_step(
                    n, H, gx, 4 * H, hh.data_ptr(), 4 * H, g_t, 4 * H, cp_, cp_rs, c_t, H, h_t,
                    r_rs, threads,
                )  # fmt: skip
            else:  # the same arithmetic in stages, with the edits between them
                lib.wb_lstm_gates(n, H, gx, 4 * H, hh.data_ptr(), 4 * H, g_t, 4 * H, threads)
                g = G[t] if n == B else G[t, :n]
                for q, fn in gate_edits:
                    view = g[:, i_of[q] * H : (i_of[q] + 1) * H]
                    view.copy_(edit_value(fn, view.clone(), t, rows, B))
                lib.wb_lstm_cell(n, H, g_t, 4 * H, cp_, cp_rs, c_t, H, h_t, r_rs, threads)
                if "cell" in edits:
                    ct.copy_(edit_value(edits["cell"], ct.clone(), t, rows, B))
                    lib.wb_lstm_hidden(n, H, g_t, 4 * H, c_t, H, h_t, r_rs, threads)
            hr = Hraw[t] if n == B else Hraw[t, :n]
            h, c = _lstm_step_end(hr, ct, h, c, t, n, B, out_view, w_hr_t, edits, rows, uniform)
    return _lstm_record(G, C, out_view, H), h, c


def _lstm_step_end(hr, ct, h, c, t, n, B, out_view, w_hr_t, edits, rows, uniform):
    """A step's hidden state ``hr`` projected and edited; the state the next step reads."""
    ht = hr
    if w_hr_t is not None:
        ht = out_view[t] if n == B else out_view[t, :n]
        ht.copy_(hr @ w_hr_t)
    if "hidden" in edits:
        ht.copy_(edit_value(edits["hidden"], ht.clone(), t, rows, B))
    if uniform:
        return ht, ct
    h[:n].copy_(ht)
    c[:n].copy_(ct)
    return h, c


def _lstm_record(G, C, out_view, H):
    rec = {q: G[:, :, i * H : (i + 1) * H] for i, q in enumerate(_GATES)}
    rec.update(cell=C, hidden=out_view)
    return rec


# Up to this many rows a whole sequence runs in one compiled call (``wb_lstm_seq``), its
# recurrent products included; above, oneDNN's product per step is faster.
_SEQ_ROWS = 16


def _seq_weights(w_hh_t: torch.Tensor, H: int) -> torch.Tensor:
    """``w_hh_t`` ``[K, 4H]`` in ``wb_lstm_seq``'s block layout ``[H / 16, K, 64]``, cached."""
    key = ("seq", w_hh_t.data_ptr(), w_hh_t._version, tuple(w_hh_t.shape))
    hit = _SEQ_CACHE.get(key, (w_hh_t,))
    if hit is not None:
        return hit
    K = w_hh_t.shape[0]
    wb = w_hh_t.view(K, 4, H // 16, 16).permute(2, 0, 1, 3).contiguous()
    return _SEQ_CACHE.put(key, (w_hh_t,), wb)


_SEQ_CACHE = _kept.KeptWhileAlive(8)


def _lstm_seq(lib, x, w_ih, bias, wb, h0, c0, G, C, Hh, reverse: bool, half=None) -> None:
    """A uniform sequence of a few rows in one C call (see ``wb_lstm_seq``).

    ``G`` ``[T, B, 4H]`` may be None when ``half`` (float16 gates, cell and hidden, contiguous)
    takes the recorded values instead.
    """
    import ctypes

    T, B, H = C.shape
    H4 = 4 * H
    P = _gemm.linear(x.reshape(T * B, -1), w_ih, bias)
    threads = min(torch.get_num_threads(), max(1, H // 64))
    ptrs = None if half is None else (ctypes.c_void_p * 3)(*(t.data_ptr() for t in half))
    lib.wb_lstm_seq(
        T, B, H, int(reverse), P.data_ptr(), B * H4, H4, wb.data_ptr(),
        h0.data_ptr(), h0.stride(0), c0.data_ptr(), c0.stride(0),
        None if G is None else G.data_ptr(), B * H4, H4, C.data_ptr(), C.stride(0),
        C.stride(1), Hh.data_ptr(), Hh.stride(0), Hh.stride(1),
        None if ptrs is None else ctypes.addressof(ptrs), threads,
    )  # fmt: skip


def _gru_dir_fast(call, p, steps, out_view, edits, rows, h0):
    x = call.x
    T, B = call.time, call.batch
    H = p["w_ih"].shape[0] // 3
    x2 = x.reshape(T * B, -1)
    dnn = _gemm.usable(x2, p["w_ih"])  # oneDNN products (faster than MKL on some CPUs)
    if p["b_ih"] is not None:
        bias = p["b_ih"].clone()
        bias[: 2 * H] += p["b_hh"][: 2 * H]
        b_hn = p["b_hh"][2 * H :]
    else:
        bias = b_hn = None
    if dnn:
        G = _gemm.linear(x2, p["w_ih"], bias).view(T, B, 3 * H)
    elif bias is not None:
        G = torch.addmm(bias, x2, p["w_ih"].t()).view(T, B, 3 * H)
    else:
        G = torch.mm(x2, p["w_ih"].t()).view(T, B, 3 * H)
    w_hh = p["w_hh"].contiguous()
    w_hh_packed = _gemm.pack(w_hh, B) if dnn else None
    w_hh_t = None if dnn else w_hh.t().contiguous()  # MKL's layout, only on that path
    ws_full = x.new_empty(B, 3 * H)
    uniform = call.batch_sizes is None
    h = h0 if uniform else h0.clone()
    views = {"reset_gate": slice(0, H), "update_gate": slice(H, 2 * H)}
    for t in steps.order:
        n = steps.active(t)
        g = G[t] if n == B else G[t, :n]
        hp = h if n == B else h[:n]
        ws = ws_full[:n]
        if dnn:
            ws.copy_(_gemm.linear_packed(hp, w_hh_packed, w_hh))
        else:
            torch.mm(hp, w_hh_t, out=ws)
        g[:, : 2 * H].add_(ws[:, : 2 * H]).sigmoid_()
        for q in ("reset_gate", "update_gate"):
            if q in edits:
                view = g[:, views[q]]
                view.copy_(edit_value(edits[q], view.clone(), t, rows, B))
        hn = ws[:, 2 * H :]
        if b_hn is not None:
            hn.add_(b_hn)
        hn.mul_(g[:, :H])
        nt = g[:, 2 * H :]
        _tanh_(nt.add_(hn))
        if "new_gate" in edits:
            nt.copy_(edit_value(edits["new_gate"], nt.clone(), t, rows, B))
        ht = out_view[t] if n == B else out_view[t, :n]
        torch.sub(hp, nt, out=ht)
        ht.mul_(g[:, H : 2 * H]).add_(nt)
        if "hidden" in edits:
            ht.copy_(edit_value(edits["hidden"], ht.clone(), t, rows, B))
        if uniform:
            h = ht
        else:
            h[:n].copy_(ht)
    if not uniform:
        _zero_padding(G, call.batch_sizes)
    rec = {q: G[:, :, s] for q, s in views.items()}
    rec.update(new_gate=G[:, :, 2 * H :], hidden=out_view)
    return rec, h, None


def _zero_padding(buf: torch.Tensor, batch_sizes: list[int]) -> None:
    for t, n in enumerate(batch_sizes):
        if n < buf.shape[1]:
            buf[t, n:] = 0


# ---------------------------------------------------------------------------------------
# unroll with autograd: functional ops, same equations
# ---------------------------------------------------------------------------------------


def _pad_rows(v: torch.Tensor, batch: int) -> torch.Tensor:
    return v if v.shape[0] == batch else F.pad(v, (0, 0, 0, batch - v.shape[0]))


def _carry(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    n = new.shape[0]
    return new if n == old.shape[0] else torch.cat([new, old[n:]])


def _lstm_dir_grad(call, p, steps, edits, rows, h0, c0):
    B = call.batch
    bias = None if p["b_ih"] is None else p["b_ih"] + p["b_hh"]
    xp = F.linear(call.x, p["w_ih"], bias)
    h, c = h0, c0
    seq = {q: [None] * call.time for q in _LSTM_Q}
    for t in steps.order:
        n = steps.active(t)
        z = xp[t, :n] + h[:n] @ p["w_hh"].t()
        zi, zf, zg, zo = z.chunk(4, 1)
        v = {
            "input_gate": torch.sigmoid(zi),
            "forget_gate": torch.sigmoid(zf),
            "cell_input": torch.tanh(zg),
            "output_gate": torch.sigmoid(zo),
        }
        for q in ("input_gate", "forget_gate", "cell_input", "output_gate"):
            if q in edits:
                v[q] = edit_value(edits[q], v[q], t, rows, B)
        v["cell"] = v["forget_gate"] * c[:n] + v["input_gate"] * v["cell_input"]
        if "cell" in edits:
            v["cell"] = edit_value(edits["cell"], v["cell"], t, rows, B)
        hid = v["output_gate"] * torch.tanh(v["cell"])
        if p["w_hr"] is not None:
            hid = hid @ p["w_hr"].t()
        if "hidden" in edits:
            hid = edit_value(edits["hidden"], hid, t, rows, B)
        v["hidden"] = hid
        for q in _LSTM_Q:
            seq[q][t] = _pad_rows(v[q], B)
        h, c = _carry(hid, h), _carry(v["cell"], c)
    return {q: torch.stack(s) for q, s in seq.items()}, h, c


def _gru_dir_grad(call, p, steps, edits, rows, h0):
    B = call.batch
    H = p["w_ih"].shape[0] // 3
    xp = F.linear(call.x, p["w_ih"], p["b_ih"])
    h = h0
    seq = {q: [None] * call.time for q in _GRU_Q}
    for t in steps.order:
        n = steps.active(t)
        hh = F.linear(h[:n], p["w_hh"], p["b_hh"])
        x_t = xp[t, :n]
        v = {
            "reset_gate": torch.sigmoid(x_t[:, :H] + hh[:, :H]),
            "update_gate": torch.sigmoid(x_t[:, H : 2 * H] + hh[:, H : 2 * H]),
        }
        for q in ("reset_gate", "update_gate"):
            if q in edits:
                v[q] = edit_value(edits[q], v[q], t, rows, B)
        v["new_gate"] = torch.tanh(x_t[:, 2 * H :] + v["reset_gate"] * hh[:, 2 * H :])
        if "new_gate" in edits:
            v["new_gate"] = edit_value(edits["new_gate"], v["new_gate"], t, rows, B)
        hid = (1 - v["update_gate"]) * v["new_gate"] + v["update_gate"] * h[:n]
        if "hidden" in edits:
            hid = edit_value(edits["hidden"], hid, t, rows, B)
        v["hidden"] = hid
        for q in _GRU_Q:
            seq[q][t] = _pad_rows(v[q], B)
        h = _carry(hid, h)
    return {q: torch.stack(s) for q, s in seq.items()}, h, None


_LSTM_Q = ("input_gate", "forget_gate", "cell_input", "output_gate", "cell", "hidden")
_GRU_Q = ("reset_gate", "update_gate", "new_gate", "hidden")


def unroll(
    call: RnnCall,
    wanted: set[Key],
    edits: dict[Key, Edit],
    rows: torch.Tensor | None,
    grad: bool,
    real_rest: Callable | None = None,
    half: bool = False,
):
    """Evaluate the kernel step by step, keeping the wanted quantities.

    Parameters
    ----------
    call : RnnCall
        The parsed kernel call.
    wanted : set of (layer, direction, quantity)
        What to keep.
    edits : dict of (layer, direction, quantity) to callable
        Replacements applied at each step; the recurrence continues from them.
    rows : torch.Tensor or None
        Kernel row -> caller row (packed input), for edits.
    grad : bool
        Use autograd-friendly functional ops instead of in-place buffers.
    real_rest : callable, optional
        ``real_rest(layer_input, first_layer) -> (output, h_n, c_n)`` runs the remaining
        layers with the fused kernel once nothing above is wanted or edited.
    half : bool
        Where the whole-sequence kernel runs, hand back float16 copies of what it records
        (``_recorder.half_outputs``); elsewhere the usual dtype.

    Returns
    -------
    output : torch.Tensor
        ``[time, batch, direction * units]`` last layer output (kernel row order, padded).
    h_n, c_n : torch.Tensor
        ``[layer * direction, batch, units]`` final states (``c_n`` None for GRU).
    recorded : dict
        (layer, direction, quantity) -> ``[time, batch, units]``.
    """
    D = call.directions
    eq = sites.equations(call.mode)
    top = max([k[0] for k in wanted] + [k[0] for k in edits] + [0])
    layer_input = call.x
    recorded: dict[Key, torch.Tensor] = {}
    hs, cs = [], []
    for layer in range(call.num_layers):
        if layer > top and real_rest is not None:
            layer_input, h_rest, c_rest = real_rest(layer_input, layer)
            _extend_states(hs, cs, h_rest, c_rest)
            break
        sub = RnnCall(**{**call.__dict__, "x": layer_input})
        outs = []
        out_buf = None
        for d in range(D):
            p = call.layer_params(layer, d)
            i = layer * D + d
            h0 = call.h0[i]
            c0 = call.c0[i] if call.c0 is not None else None
            e = {k[2]: f for k, f in edits.items() if k[:2] == (layer, d)}
            steps = _Steps(call, d)
            if eq is not None:  # a registered mode (nn.RNN ...): its own equations
                rec, h = eq.unroll_direction(sub, p, steps, e, rows, h0, edit_value)
                c = None
                outs.append(rec["hidden"])
            elif grad:
                fn = _lstm_dir_grad if call.mode == "lstm" else _gru_dir_grad
                args = (h0, c0) if call.mode == "lstm" else (h0,)
                rec, h, c = fn(sub, p, steps, e, rows, *args)
                outs.append(rec["hidden"])
            else:
                units = call.h0.shape[-1]
                if out_buf is None:
                    zero = call.batch_sizes is not None
                    out_buf = _pages.empty(
                        call.time, call.batch, D * units, like=layer_input, zero=zero
                    )
                view = out_buf[:, :, d * units : (d + 1) * units]
                if call.mode == "lstm":
                    rec, h, c = _lstm_dir_fast(sub, p, steps, view, e, rows, h0, c0, half)
                else:
                    rec, h, c = _gru_dir_fast(sub, p, steps, view, e, rows, h0)
            hs.append(h)
            if c is not None:
                cs.append(c)
            for q, v in rec.items():
                if (layer, d, q) in wanted:
                    recorded[(layer, d, q)] = v
        if eq is not None:
            layer_input = torch.cat(outs, -1) if D == 2 else outs[0]
        else:
            layer_input = torch.cat(outs, -1) if grad else out_buf
    h_n = torch.stack(hs)
    c_n = torch.stack(cs) if cs else None
    return layer_input, h_n, c_n, recorded


# ---------------------------------------------------------------------------------------
# recover: fused kernel per layer, gates in one GEMM, cell state by a scan
# ---------------------------------------------------------------------------------------


def recover(
    call: RnnCall, wanted: set[Key], run_layer: Callable, run_rest=None, check: bool = True
):
    """Let the fused kernel run layer by layer and recover the gates and cells.

    Parameters
    ----------
    run_layer : callable
        ``run_layer(layer_input, layer) -> (output, h_n, c_n)`` runs one layer (both
        directions) with the fused kernel; shapes time-major and padded.
    run_rest : callable, optional
        ``run_rest(layer_input, first) -> (output, h_n, c_n)`` runs layers ``first..`` in one
        fused call: used above the deepest layer anything is kept of (``names`` filters).
        Only the layers something is kept of are recovered, and a layer whose ``hidden`` alone
        is kept is the kernel's own output.
    check : bool
        Measure ``|o * tanh(c) - h|`` against the kernel's hidden states (False skips that
        pass over the states: ``check="none"``; the errors are then reported as 0).

    Returns
    -------
    output, h_n, c_n, recorded
        As :func:`unroll`.
    errors : dict
        ``{"hidden": max abs error, "cell": max abs error}`` of the recomputation.
    """
    T = call.time
    lengths = call.lengths().to(call.x.device)
    mask = None  # a uniform batch: every step is real, nothing to mask
    if call.batch_sizes is not None:
        mask = (torch.arange(T, device=call.x.device)[:, None] < lengths[None, :]).unsqueeze(-1)
    with _kernel_precision(call.x):
        return _recover(call, wanted, run_layer, lengths, mask, run_rest, check)


@contextlib.contextmanager
def _kernel_precision(x: torch.Tensor):
    """Recover in the precision the fused kernel ran in.

    cuDNN's recurrent kernels round float32 products to TF32 unless
    ``torch.backends.cudnn.allow_tf32`` is False (PyTorch's default is True); the recovery
    GEMMs then use TF32 too (3-6x faster on an H100; the gates stay within the kernel's own
    rounding, 1e-3, which the trace's exactness metadata reports). Elsewhere nothing changes.
    """
    if not (x.is_cuda and x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32):
        yield
        return
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def _extend_states(hs: list, cs: list, h_n: torch.Tensor, c_n: torch.Tensor | None) -> None:
    """Append the per-(layer, direction) final states ``[k, batch, units]`` of a fused call."""
    hs.extend(h_n.unbind(0))
    if c_n is not None:
        cs.extend(c_n.unbind(0))


def _recover(call, wanted, run_layer, lengths, mask, run_rest=None, check=True):
    D = call.directions
    layer_input = call.x
    recorded: dict[Key, torch.Tensor] = {}
    hs, cs = [], []
    errs_h, errs_c = [], []  # floats, or 0-d tensors read once at the end (no sync per layer)
    last = max((k[0] for k in wanted), default=-1)  # the deepest layer anything is kept of
    for layer in range(call.num_layers):
        if layer > last and run_rest is not None:  # nothing kept above: one fused call
            layer_input, h_n, c_n = run_rest(layer_input, layer)
            _extend_states(hs, cs, h_n, c_n)
            break
        out, h_n, c_n = run_layer(layer_input, layer)
        _extend_states(hs, cs, h_n, c_n)
        units = call.h0.shape[-1]
        for d in range(D):
            hid = out[:, :, d * units : (d + 1) * units]
            c_last = c_n[d] if c_n is not None else None
            args = (call, wanted, layer, d, layer_input, hid, c_last, lengths, mask, check)
            errs = recover_direction(*args, recorded)
            if errs is not None:
                errs_h.append(errs[0])
                errs_c.append(errs[1])
        layer_input = out
    h_n = torch.stack(hs)
    c_n = torch.stack(cs) if cs else None
    errors = {"hidden": _max_all(errs_h), "cell": _max_all(errs_c)}
    return layer_input, h_n, c_n, recorded, errors


def recover_direction(call, wanted, layer, d, layer_input, hid, c_last, lengths, mask, check,
                      recorded):  # fmt: skip
    """Recover what is kept of one direction of one layer into ``recorded``.

    Parameters
    ----------
    layer_input : torch.Tensor
        ``[time, batch, in]`` the layer's input (padded, time-major).
    hid : torch.Tensor
        ``[time, batch, units]`` the direction's hidden states from the fused kernel.
    c_last : torch.Tensor or None
        ``[batch, hidden]`` the kernel's final cell states (LSTM).

    Returns
    -------
    tuple or None
        ``(hidden error, cell error)`` (floats or 0-d tensors), None when nothing was
        recomputed.
    """
    keep = {k[2] for k in wanted if k[0] == layer and k[1] == d}
    if not keep:
        return None
    if keep == {"hidden"}:  # the kernel's own states: nothing to recover
        recorded[(layer, d, "hidden")] = hid * mask if mask is not None else hid
        return None
    i = layer * call.directions + d
    p = call.layer_params(layer, d)
    h_prev = _previous(hid, call.h0[i], lengths, d)
    e_c = 0.0
    eq = sites.equations(call.mode)
    if eq is not None:
        rec, e_h = eq.recover_direction(call.mode, layer_input, hid, h_prev, p, mask, check)
    elif call.mode == "lstm":
        rec, e_h = _recover_lstm(layer_input, hid, h_prev, p, call, d, i, mask, lengths, check)
        if check:
            rows = torch.arange(call.batch, device=hid.device)
            final = rec["cell"][_last_index(lengths, d), rows]
            e_c = (final - c_last).abs().max() if final.numel() else 0.0
    else:
        rec, e_h = _recover_gru(layer_input, hid, h_prev, p, mask, lengths, check)
    for q, v in rec.items():
        if q in keep:
            recorded[(layer, d, q)] = v
    return e_h, e_c


def _last_index(lengths: torch.Tensor, direction: int) -> torch.Tensor:
    """Step index holding each row's final state for a direction."""
    return (lengths - 1).clamp(min=0) if direction == 0 else torch.zeros_like(lengths)


def _previous(hid: torch.Tensor, h0: torch.Tensor, lengths: torch.Tensor, direction: int):
    """``h_{t-1}`` in the direction's own order, ``h0`` where the recurrence starts."""
    T = hid.shape[0]
    steps = torch.arange(T, device=hid.device)[:, None]
    if direction == 0:
        shifted = torch.cat([h0[None], hid[:-1]])
        return shifted
    shifted = torch.cat([hid[1:], torch.zeros_like(hid[:1])])
    starts = (steps + 1 >= lengths[None, :]).unsqueeze(-1)
    return torch.where(starts, h0[None].expand_as(hid), shifted)


def _recover_lstm(x, hid, h_prev, p, call, direction, i, mask, lengths, check=True):
    """Gates from one GEMM over all steps, cells by an in-place scan.

    ``mask`` is None for a uniform batch (every step real): no masking passes are needed;
    ``lengths`` ``[batch]`` are the rows' real lengths (on the states' device).
    """
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, hid, call.c0[i], *p.values())
    ):
        return _recover_lstm_grad(x, hid, h_prev, p, call, direction, i, mask, lengths)
    T, B = hid.shape[:2]
    H = p["w_ih"].shape[0] // 4
    bias = None
    if p["b_ih"] is not None:
        bias = p["b_ih"] + p["b_hh"]
    if _gemm.usable(x, h_prev, p["w_ih"]) and T * B:
        # one oneDNN product over [x, h_prev] and [W_ih, W_hh] (faster than MKL on some CPUs)
        xh = torch.cat([x.reshape(T * B, -1), h_prev.reshape(T * B, -1)], 1)
        w = torch.cat([p["w_ih"], p["w_hh"]], 1)
        z = _gemm.linear(xh, w, bias).view(T, B, 4 * H)
    else:
        z = F.linear(x, p["w_ih"], bias)  # [time, batch, 4 units], contiguous
        if T * B:
            z.view(T * B, 4 * H).addmm_(h_prev.reshape(T * B, -1), p["w_hh"].t())
    if _scan.available(z, hid):
        return _recover_lstm_fused(z, hid, p, call, direction, i, mask, lengths, check)
    z[..., : 2 * H].sigmoid_()
    z[..., 2 * H : 3 * H].tanh_()
    z[..., 3 * H :].sigmoid_()
    ig, fg, gg, og = z[..., :H], z[..., H : 2 * H], z[..., 2 * H : 3 * H], z[..., 3 * H :]
    C = torch.empty(T, B, H, dtype=x.dtype, device=x.device)
    c = call.c0[i]
    if direction == 0:
        for t in range(T):
            ct = C[t]
            torch.mul(fg[t], c, out=ct)
            c = ct.addcmul_(ig[t], gg[t])
    else:
        for t in range(T - 1, -1, -1):
            if mask is not None:
                start = (t + 1 >= lengths).unsqueeze(-1)
                c = torch.where(start, call.c0[i], c)
            elif t == T - 1:
                c = call.c0[i]
            ct = C[t]
            torch.mul(fg[t], c, out=ct)
            c = ct.addcmul_(ig[t], gg[t])
    if mask is not None:
        ig, fg, gg, og, C = (v * mask for v in (ig, fg, gg, og, C))
    err_h = 0.0
    if check and hid.numel():
        again = torch.tanh(C).mul_(og)
        if p["w_hr"] is not None:
            again = again @ p["w_hr"].t()
        again.sub_(hid)
        if mask is not None:
            again.mul_(mask)
        err_h = again.abs_().max().item()
    rec = {
        "input_gate": ig,
        "forget_gate": fg,
        "cell_input": gg,
        "output_gate": og,
        "cell": C,
        "hidden": hid * mask if mask is not None else hid,
    }
    return rec, err_h


def _recover_lstm_fused(z, hid, p, call, direction, i, mask, lengths, check=True):
    """GPU path of :func:`_recover_lstm`: gates and cells in one Triton kernel, no sync."""
    H = z.shape[-1] // 4
    against = hid if check and p["w_hr"] is None else None
    C, err = _scan.lstm_scan(z, call.c0[i], against, lengths, reverse=direction == 1)
    if not check:
        err = 0.0
    elif err is None:  # a projected layer: h = W_hr (o * tanh(c)), measured here
        again = (torch.tanh(C) * z[..., 3 * H :]) @ p["w_hr"].t() - hid
        if mask is not None:
            again = again * mask
        err = again.abs().max() if hid.numel() else 0.0
    rec = {
        "input_gate": z[..., :H],
        "forget_gate": z[..., H : 2 * H],
        "cell_input": z[..., 2 * H : 3 * H],
        "output_gate": z[..., 3 * H :],
        "cell": C,
        "hidden": hid * mask if mask is not None else hid,
    }
    return rec, err


def _max_all(values) -> float:
    """Largest of floats and 0-d tensors, with one device sync for all the tensors."""
    floats = [float(v) for v in values if not isinstance(v, torch.Tensor)]
    tensors = [v.detach().float().reshape(()) for v in values if isinstance(v, torch.Tensor)]
    worst = max(floats, default=0.0)
    if tensors:
        worst = max(worst, torch.stack([t.to(tensors[0].device) for t in tensors]).max().item())
    return worst


def _recover_lstm_grad(x, hid, h_prev, p, call, direction, i, mask, lengths):
    """Functional ops (autograd), same equations as :func:`_recover_lstm`."""
    T, B = hid.shape[:2]
    H = p["w_ih"].shape[0] // 4
    z = F.linear(x, p["w_ih"], p["b_ih"]) + F.linear(h_prev, p["w_hh"], p["b_hh"])
    zi, zf, zg, zo = z.chunk(4, -1)
    ig, fg, gg, og = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
    C = torch.empty(T, B, H, dtype=x.dtype, device=x.device)
    c = call.c0[i].clone()
    order = range(T) if direction == 0 else range(T - 1, -1, -1)
    for t in order:
        if direction == 1:
            start = (t + 1 >= lengths).unsqueeze(-1)
            c = torch.where(start, call.c0[i], c)
        c = fg[t] * c + ig[t] * gg[t]
        C[t] = c
    if mask is not None:
        ig, fg, gg, og, C = (v * mask for v in (ig, fg, gg, og, C))
    again = og * torch.tanh(C)
    if p["w_hr"] is not None:
        again = again @ p["w_hr"].t()
    diff = again - hid if mask is None else (again - hid) * mask
    err_h = diff.abs().max().item() if hid.numel() else 0.0
    rec = {
        "input_gate": ig,
        "forget_gate": fg,
        "cell_input": gg,
        "output_gate": og,
        "cell": C,
        "hidden": hid * mask if mask is not None else hid,
    }
    return rec, err_h


def _recover_gru(x, hid, h_prev, p, mask, lengths, check=True):
    H = p["w_ih"].shape[0] // 3
    xp = _gemm.linear(x, p["w_ih"], p["b_ih"])
    hp = _gemm.linear(h_prev, p["w_hh"], p["b_hh"])
    if _scan.available(xp, hid, h_prev):
        err_h = _scan.gru_gates(xp, hp, h_prev, hid, lengths)
        rec = {"reset_gate": xp[..., :H], "update_gate": xp[..., H : 2 * H]}
        rec["new_gate"] = xp[..., 2 * H :]
        rec["hidden"] = hid * mask if mask is not None else hid
        return rec, err_h
    r = torch.sigmoid(xp[..., :H] + hp[..., :H])
    z = torch.sigmoid(xp[..., H : 2 * H] + hp[..., H : 2 * H])
    n = torch.tanh(xp[..., 2 * H :] + r * hp[..., 2 * H :])
    if not check or not hid.numel():
        err_h = 0.0
    elif mask is None:
        err_h = ((1 - z) * n + z * h_prev - hid).abs().max()
    else:
        err_h = (((1 - z) * n + z * h_prev - hid) * mask).abs().max()
    if mask is None:  # a uniform batch
        return {"reset_gate": r, "update_gate": z, "new_gate": n, "hidden": hid}, err_h
    rec = {"reset_gate": r * mask, "update_gate": z * mask, "new_gate": n * mask}
    rec["hidden"] = hid * mask
    return rec, err_h
