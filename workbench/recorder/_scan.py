"""Fused gate recovery on the GPU (Triton), for ``strategy="recover"``.

After the fused kernel has run a layer, every gate pre-activation is known from one GEMM; what
remains is the cell recurrence ``c_t = f_t * c_{t-1} + i_t * g_t``. Stepping it from Python costs
two kernel launches per step (launch-bound on a GPU: about 2 ms for 2 x 100 steps); here one
kernel walks the time axis for every ``(batch, unit)`` lane at once, activates the gates in
place, writes the cells, zeroes padded steps and measures ``|o * tanh(c) - h|`` against the
kernel's hidden states, all in one pass over memory.

:func:`gru_gates` does the same for a GRU layer (no scan: every gate follows from the
projections and ``h_{t-1}``): one pass instead of a dozen element-wise kernels.

Triton is optional: :func:`available` is False on CPU builds of PyTorch (no Triton), for CPU
tensors, and under autograd; callers then use the step loop.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def lstm_scan(
        z_ptr,  # [T, B, 4H] pre-activations in, activated gates out (in place)
        c_ptr,  # [T, B, H] cells out
        c0_ptr,  # [B, H]
        hid_ptr,  # [T, B, H] the kernel's hidden states (read when CHECK)
        len_ptr,  # [B] int32 real lengths
        err_ptr,  # [B * H] float32 max |o tanh(c) - h| per lane (written when CHECK)
        T,
        B,
        H,
        REVERSE: tl.constexpr,
        CHECK: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        lane = pid * BLOCK + tl.arange(0, BLOCK)
        live = lane < B * H
        b = lane // H
        h = lane % H
        length = tl.load(len_ptr + b, mask=live, other=0)
        c0 = tl.load(c0_ptr + lane, mask=live, other=0.0).to(tl.float32)
        c = c0
        err = tl.zeros([BLOCK], dtype=tl.float32)
        for s in range(0, T):
            if REVERSE:
                t = T - 1 - s
            else:
                t = s
            real = live & (t < length)
            zrow = z_ptr + (t * B + b) * (4 * H) + h
            zi = tl.load(zrow, mask=live, other=0.0).to(tl.float32)
            zf = tl.load(zrow + H, mask=live, other=0.0).to(tl.float32)
            zg = tl.load(zrow + 2 * H, mask=live, other=0.0).to(tl.float32)
            zo = tl.load(zrow + 3 * H, mask=live, other=0.0).to(tl.float32)
            ig = tl.sigmoid(zi)
            fg = tl.sigmoid(zf)
            gg = 2.0 * tl.sigmoid(2.0 * zg) - 1.0  # tanh
            og = tl.sigmoid(zo)
            if REVERSE:
                c = tl.where(t + 1 >= length, c0, c)  # the backward recurrence starts here
            c = fg * c + ig * gg
            zero = tl.zeros([BLOCK], dtype=tl.float32)
            dt = z_ptr.dtype.element_ty
            tl.store(zrow, tl.where(real, ig, zero).to(dt), mask=live)
            tl.store(zrow + H, tl.where(real, fg, zero).to(dt), mask=live)
            tl.store(zrow + 2 * H, tl.where(real, gg, zero).to(dt), mask=live)
            tl.store(zrow + 3 * H, tl.where(real, og, zero).to(dt), mask=live)
            tl.store(c_ptr + (t * B + b) * H + h, tl.where(real, c, zero).to(dt), mask=live)
            if CHECK:
                hk = tl.load(hid_ptr + (t * B + b) * H + h, mask=real, other=0.0).to(tl.float32)
                d = tl.abs(og * (2.0 * tl.sigmoid(2.0 * c) - 1.0) - hk)
                err = tl.maximum(err, tl.where(real, d, zero))
        if CHECK:
            tl.store(err_ptr + lane, err, mask=live)

    @triton.jit
    def gru_gates(
        xp_ptr,  # [T, B, 3H] W_ih x + b_ih in, activated gates r, z, n out (in place)
        hp_ptr,  # [T, B, 3H] W_hh h_{t-1} + b_hh
        hprev_ptr,  # [T, B, H] h_{t-1}
        hid_ptr,  # [T, B, H] the kernel's hidden states
        len_ptr,  # [B] int32 real lengths
        err_ptr,  # [programs] float32 max |(1 - z) n + z h_{t-1} - h| per program
        T,
        B,
        H,
        BLOCK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        k = pid * BLOCK + tl.arange(0, BLOCK)
        live = k < T * B * H
        h = k % H
        tb = k // H
        b = tb % B
        t = tb // B
        length = tl.load(len_ptr + b, mask=live, other=0)
        real = live & (t < length)
        g = tb * (3 * H) + h
        xr = tl.load(xp_ptr + g, mask=live, other=0.0).to(tl.float32)
        xz = tl.load(xp_ptr + g + H, mask=live, other=0.0).to(tl.float32)
        xn = tl.load(xp_ptr + g + 2 * H, mask=live, other=0.0).to(tl.float32)
        hr = tl.load(hp_ptr + g, mask=live, other=0.0).to(tl.float32)
        hz = tl.load(hp_ptr + g + H, mask=live, other=0.0).to(tl.float32)
        hn = tl.load(hp_ptr + g + 2 * H, mask=live, other=0.0).to(tl.float32)
        hprev = tl.load(hprev_ptr + k, mask=live, other=0.0).to(tl.float32)
        hk = tl.load(hid_ptr + k, mask=live, other=0.0).to(tl.float32)
        r = tl.sigmoid(xr + hr)
        z = tl.sigmoid(xz + hz)
        n = 2.0 * tl.sigmoid(2.0 * (xn + r * hn)) - 1.0  # tanh
        again = (1.0 - z) * n + z * hprev
        zero = tl.zeros([BLOCK], dtype=tl.float32)
        d = tl.where(real, tl.abs(again - hk), zero)
        dt = xp_ptr.dtype.element_ty
        tl.store(xp_ptr + g, tl.where(real, r, zero).to(dt), mask=live)
        tl.store(xp_ptr + g + H, tl.where(real, z, zero).to(dt), mask=live)
        tl.store(xp_ptr + g + 2 * H, tl.where(real, n, zero).to(dt), mask=live)
        tl.store(err_ptr + pid, tl.max(d, axis=0))

    return lstm_scan, gru_gates


def available(*tensors: torch.Tensor) -> bool:
    """Whether the fused scan can run for these tensors (CUDA, Triton importable, no autograd)."""
    if not tensors or not all(t.is_cuda for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    try:
        _kernel()
    except ImportError:
        return False
    return True


def lstm_scan(
    z: torch.Tensor,
    c0: torch.Tensor,
    hid: torch.Tensor | None,
    lengths: torch.Tensor,
    reverse: bool,
    block: int = 256,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Activate the gates of ``z`` in place and scan the cells.

    Parameters
    ----------
    z : torch.Tensor
        ``[time, batch, 4 * units]`` pre-activations (i, f, g, o blocks), contiguous; on
        return the activated gates, zero past each row's length.
    c0 : torch.Tensor
        ``[batch, units]`` initial cells.
    hid : torch.Tensor or None
        ``[time, batch, units]`` hidden states of the fused kernel, to measure the error of
        ``o * tanh(c)`` against (None when the layer has a projection: measured by the caller).
    lengths : torch.Tensor
        ``[batch]`` real lengths (``time`` for every row of a uniform batch).
    reverse : bool
        The backward direction (the recurrence starts at each row's last real step).

    Returns
    -------
    cells : torch.Tensor
        ``[time, batch, units]``, zero past each row's length.
    error : torch.Tensor or None
        0-d tensor, the largest ``|o * tanh(c) - h|`` over real steps (no device sync).
    """
    T, B, H4 = z.shape
    H = H4 // 4
    cells = torch.empty(T, B, H, dtype=z.dtype, device=z.device)
    if T * B * H == 0:
        return cells, None if hid is None else z.new_zeros((), dtype=torch.float32)
    check = hid is not None
    err = torch.empty(B * H, dtype=torch.float32, device=z.device) if check else cells
    grid = ((B * H + block - 1) // block,)
    _kernel()[0][grid](
        z,
        cells,
        c0.contiguous(),
        hid.contiguous() if check else cells,
        lengths.to(device=z.device, dtype=torch.int32),
        err,
        T,
        B,
        H,
        REVERSE=bool(reverse),
        CHECK=check,
        BLOCK=block,
    )
    return cells, err.max() if check else None


def gru_gates(
    xp: torch.Tensor,
    hp: torch.Tensor,
    h_prev: torch.Tensor,
    hid: torch.Tensor,
    lengths: torch.Tensor,
    block: int = 1024,
) -> torch.Tensor:
    """Activate a GRU layer's gates in place in ``xp`` and measure the hidden-state error.

    Parameters
    ----------
    xp, hp : torch.Tensor
        ``[time, batch, 3 * units]`` input and hidden projections with their biases (r, z, n
        blocks), contiguous; on return ``xp`` holds the gates r, z, n, zero past each row's
        length.
    h_prev, hid : torch.Tensor
        ``[time, batch, units]``: the previous and the kernel's own hidden states.
    lengths : torch.Tensor
        ``[batch]`` real lengths.

    Returns
    -------
    torch.Tensor
        0-d, the largest ``|(1 - z) * n + z * h_prev - h|`` over real steps (no device sync).
    """
    T, B, H3 = xp.shape
    n = T * B * (H3 // 3)
    if n == 0:
        return xp.new_zeros((), dtype=torch.float32)
    programs = (n + block - 1) // block
    err = torch.empty(programs, dtype=torch.float32, device=xp.device)
    _kernel()[1][(programs,)](
        xp,
        hp.contiguous(),
        h_prev.contiguous(),
        hid.contiguous(),
        lengths.to(device=xp.device, dtype=torch.int32),
        err,
        T,
        B,
        H3 // 3,
        BLOCK=block,
    )
    return err.max()
