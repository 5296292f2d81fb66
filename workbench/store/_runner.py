"""Run a model over documents with the recorder: states, predictions and losses per token."""

from __future__ import annotations

import hashlib
import inspect
import threading
from dataclasses import dataclass

import numpy as np

from workbench.config import settings
from workbench.store._layout import StoreError

KINDS = ("charlm", "classifier", "forecaster")


@dataclass
class Runner:
    """Everything a build worker needs to turn documents into columns.

    Attributes
    ----------
    model : nn.Module
    tokenizer : object or None
        ``encode(tokens) -> ids``.
    kind : str
        ``charlm`` (``model(ids, state) -> (logits, state)``, run in windows with carried
        state), ``classifier`` (``model(ids, lengths) -> logits``) or ``forecaster``
        (``model(values[batch, time, feature])``).
    names : list of str or None
        Recorder name filter.
    window : int
        Steps per window of a char LM.
    batch_size : int
        Documents run together.
    strategy : str
        Recorder strategy; ``auto`` is the recorder's own choice (on CPU its compiled
        whole-sequence kernel records a char LM's few-row windows about as fast as the plain
        forward), except where no C compiler built it: then char LMs use ``recover`` (the
        fused kernel runs layer by layer, all gates of a window come from one GEMM).
    dtype : str
        dtype of the recorded states handed back (the store's), cast once while copying
        each window out of the recorder's buffers.
    """

    model: object
    tokenizer: object
    kind: str
    names: object = None
    window: int = 256
    batch_size: int = 32
    strategy: str = "auto"
    dtype: str = "float32"

    # ------------------------------------------------------------------ helpers
    def encode(self, doc) -> np.ndarray:
        if self.kind == "forecaster":
            return np.full(len(doc), -1, dtype=np.int32)
        if self.tokenizer is None:
            raise StoreError(f"a {self.kind} model needs a tokenizer; pass (model, tokenizer)")
        return np.asarray(self.tokenizer.encode(list(doc.tokens)), dtype=np.int64)

    def _record(self, *args, strategy: str | None = None, half: bool = False):
        import contextlib

        import workbench
        from workbench.recorder._recorder import half_outputs

        strategy = strategy or self.strategy
        try:
            with half_outputs() if half else contextlib.nullcontext():
                return workbench.record(
                    self.model, *args, names=self.names, check="none", strategy=strategy
                )
        except Exception as err:  # noqa: BLE001 - fall back to the always-available path
            if strategy == "auto":
                raise
            if "strategy" not in str(err) and "recover" not in str(err):
                raise
            return workbench.record(self.model, *args, names=self.names, check="none")

    def probe(self, doc) -> dict[str, int]:
        """Recorded per-step names and their unit counts, from a few steps of ``doc``."""
        import torch

        short = (
            type(doc)(doc.doc_id, list(doc.tokens[:4]), {}, doc.label)
            if not hasattr(doc, "values") or doc.values is None
            else _cut(doc, 4)
        )
        with torch.no_grad():
            out = self.run([short])[0]
        return {k[len("states/") :]: v.shape[1] for k, v in out.items() if k.startswith("states/")}

    # ------------------------------------------------------------------ running
    def run(self, docs, stacked: bool = False, sink=None):
        """Columns per document.

        ``states/{name}`` ``[time, units]`` (in :attr:`dtype`), ``token_id``, ``prediction``,
        ``loss`` ``[time]``, ``doc_prediction`` / ``doc_loss`` scalars.

        With ``stacked=True`` returns ``(columns, states)`` instead: the per-document columns
        without states, and ``states[name]`` ``[sum of lengths, units]``, the documents' rows
        one after the other in the order given (no per-document copies to concatenate).

        With a ``sink`` (``put(name, doc, pos, value)`` and ``tick()``, such as
        :class:`~workbench.store._writer.ChunkSink`) the states go there instead and only the
        columns come back; ``tick()`` is called whenever more rows are final (after every
        char-LM window and every batch), so they can be written while the rest is computed.
        """
        import torch

        own = sink is None
        if own:
            sink = _Sink([len(d) for d in docs], np.dtype(self.dtype))
        with torch.no_grad():
            if self.kind == "charlm":
                out = self._run_batches(docs, self._charlm, sink)
            elif self.kind == "classifier":
                out = self._run_batches(docs, self._classifier, sink)
            elif self.kind == "forecaster":
                out = [self._forecaster(d, sink, i) for i, d in enumerate(docs)]
            else:
                raise StoreError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not own:
            return out
        if stacked:
            return out, sink.buffers
        for i, cols in enumerate(out):
            cols.update({f"states/{k}": v for k, v in sink.rows(i).items()})
        return out

    def _run_batches(self, docs, fn, sink):
        out: list = [None] * len(docs)
        order = sorted(range(len(docs)), key=lambda i: (-len(docs[i]), i))
        order = [i for i in order if len(docs[i]) > 0]
        for i in range(len(docs)):
            if len(docs[i]) == 0:
                out[i] = _empty()
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            for i, cols in zip(idx, fn([docs[i] for i in idx], sink, idx), strict=True):
                out[i] = cols
            sink.tick()
        return out

    def _padded(self, docs):
        import torch

        encoded = [self.encode(d) for d in docs]
        lengths = [len(e) for e in encoded]
        ids = torch.zeros(len(docs), max(lengths), dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.from_numpy(e)
        return ids, lengths, encoded

    def _charlm(self, docs, sink, idx):
        import torch

        ids, lengths, encoded = self._padded(docs)
        strategy = self.strategy
        if strategy == "auto":  # without the compiled kernels, recover records few rows faster
            from workbench._native import ckernel as _ckernel

            strategy = "auto" if _ckernel.load() is not None else "recover"
        preds = np.zeros((len(docs), ids.shape[1]), np.int32)
        losses = np.zeros((len(docs), ids.shape[1]), np.float32)
        state, n = None, len(docs)
        # a float16 store takes float16 states: the same rounding, half the bytes to copy
        half = settings().half_states and np.dtype(self.dtype) == np.float16
        for w in range(0, ids.shape[1], self.window):
            active = sum(1 for L in lengths if L > w)  # documents sorted longest first
            if active < n and _can_shrink(state, n):
                state, n = _shrink(state, active), active
            x = ids[:n, w : w + self.window]
            tr = self._record(x, state, strategy=strategy, half=half)
            logits, state = tr.output
            for name in tr.names:
                t = tr[name]
                if t.dim() == 3 and t.shape[:2] == x.shape:
                    for r in range(active):  # rows past a document's end are dropped
                        sink.put(name, idx[r], w, t[r, : lengths[r] - w])
            sink.tick()
            T = x.shape[1]
            logp = torch.log_softmax(logits.float(), dim=-1)
            nxt = torch.cat([ids[:n, w + 1 : w + 1 + T], ids.new_zeros(n, 1)], 1)[:, :T]
            losses[:n, w : w + T] = -logp.gather(-1, nxt.unsqueeze(-1)).squeeze(-1).numpy()
            preds[:n, w : w + T] = logits.argmax(-1).numpy()
        out = []
        for i, L in enumerate(lengths):
            row_loss = losses[i, :L].copy()
            row_loss[L - 1] = np.nan  # no next token inside the document
            out.append(
                dict(
                    token_id=encoded[i].astype(np.int32),
                    prediction=preds[i, :L].copy(),
                    loss=row_loss,
                    doc_prediction=np.int32(-1),
                    doc_loss=np.float32(np.nanmean(row_loss) if L > 1 else np.nan),
                )
            )
        return out

    def _classifier(self, docs, sink, idx):
        import torch

        ids, lengths, encoded = self._padded(docs)
        tr = self._record(ids, torch.tensor(lengths))
        logits = tr.output.float()
        logp = torch.log_softmax(logits, -1)
        out = []
        for i, L in enumerate(lengths):
            for k in tr.names:
                if tr[k].dim() == 3 and tr[k].shape[:2] == ids.shape:
                    sink.put(k, idx[i], 0, tr[k][i, :L])
            cols = {}
            label = docs[i].label
            cols.update(
                token_id=encoded[i].astype(np.int32),
                prediction=np.full(L, -1, np.int32),
                loss=np.full(L, np.nan, np.float32),
                doc_prediction=np.int32(int(logits[i].argmax())),
                doc_loss=np.float32(-float(logp[i, label]) if label is not None else np.nan),
            )
            out.append(cols)
        return out

    def _forecaster(self, doc, sink, i):
        import torch

        if len(doc) == 0:
            return _empty()
        x = torch.as_tensor(np.asarray(doc.values, dtype=np.float32))
        if x.dim() == 1:
            x = x[:, None]
        tr = self._record(x[None])
        for k in tr.names:
            if tr[k].dim() == 3 and tr[k].shape[1] == x.shape[0]:
                sink.put(k, i, 0, tr[k][0])
        cols = {}
        cols.update(
            token_id=np.full(len(doc), -1, np.int32),
            prediction=np.full(len(doc), -1, np.int32),
            loss=np.full(len(doc), np.nan, np.float32),
            doc_prediction=np.int32(-1),
            doc_loss=np.float32(np.nan),
        )
        return cols


def _empty():
    return {
        "token_id": np.zeros(0, np.int32),
        "prediction": np.zeros(0, np.int32),
        "loss": np.zeros(0, np.float32),
        "doc_prediction": np.int32(-1),
        "doc_loss": np.float32(np.nan),
    }


def _cut(doc, n):
    return type(doc)(doc.doc_id, list(doc.tokens[:n]), {}, doc.label, doc.values[:n])


# Buffers of finished segments, reused by the next one while a build runs (``pooling``):
# touching freshly mapped memory costs about twenty times the copy into it.
_POOL: list[np.ndarray] = []
_OWNED: dict[int, np.ndarray] = {}
_POOLING = False
_POOL_LOCK = threading.Lock()


def pooling(on: bool) -> None:
    """Turn buffer reuse on (a build starts) or off and drop the pool (it ends)."""
    global _POOLING
    with _POOL_LOCK:
        _POOLING = bool(on)
        if not on:
            _POOL.clear()
            _OWNED.clear()


_ALIGN = 4096  # page-aligned blocks can be written with O_DIRECT (see _writer.write_file)


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-order array whose data starts on a page boundary.

    Small pages, not touched here: the transposing copy's threads take the first faults of
    the chunk blocks in parallel. On this VM fresh memory costs about 1 ms per MB to touch
    (the host backs each page on first use); asking for huge pages and touching each block
    on one thread, as this did before, cost 4.7 ms per 4 MB block on the build's critical
    path (1.5 s of a 1M-token build).
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    full = np.empty(max(size, 1) + _ALIGN, np.uint8)
    off = (-full.ctypes.data) % _ALIGN
    return full[off : off + size].view(dtype).reshape(shape)


def take_buffer(shape: tuple[int, int], dtype) -> np.ndarray:
    """An uninitialised, page-aligned ``shape`` array, from the pool when one is big enough."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    with _POOL_LOCK:
        if _POOLING:
            fits = [b for b in _POOL if b.nbytes >= nbytes]
            if fits:
                raw = min(fits, key=lambda b: b.nbytes)
                del _POOL[next(i for i, b in enumerate(_POOL) if b is raw)]  # by identity
                return raw[:nbytes].view(dtype).reshape(shape)
            raw = aligned_empty((max(nbytes, 1),), np.uint8)
            _OWNED[id(raw.base)] = (raw.base, raw)  # views of raw lead back to raw.base
            return raw[:nbytes].view(dtype).reshape(shape)
    return aligned_empty(shape, dtype)


def release_buffers(arrays) -> None:
    """Hand the pooled buffers behind ``arrays`` back (their values must not be used again)."""
    with _POOL_LOCK:
        if not _POOLING:
            return
        for a in arrays:
            while isinstance(a, np.ndarray):
                hit = _OWNED.get(id(a))
                if hit is not None and hit[0] is a:
                    raw = hit[1]
                    if all(b is not raw for b in _POOL):
                        _POOL.append(raw)
                    break
                a = a.base


class _Sink:
    """Per-name ``[tokens, units]`` buffers holding documents' rows one after the other.

    Parameters
    ----------
    lengths : list of int
        Tokens of each document, in the order the rows are laid out.
    dtype : numpy.dtype
        dtype of the buffers; values are cast while they are copied in (one pass).
    """

    def __init__(self, lengths: list[int], dtype) -> None:
        self.starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        self.dtype = np.dtype(dtype)
        self.buffers: dict[str, np.ndarray] = {}

    def tick(self) -> None:
        """The rows put so far are final (nothing to do: they are read at the end)."""

    def put(self, name: str, doc: int, pos: int, value) -> None:
        """Copy ``value`` ``[time, units]`` (a torch tensor) into document ``doc`` at ``pos``."""
        import torch

        buf = self.buffers.get(name)
        if buf is None:
            buf = take_buffer((int(self.starts[-1]), value.shape[-1]), self.dtype)
            self.buffers[name] = buf
        a = int(self.starts[doc]) + pos
        dst = torch.from_numpy(buf[a : a + value.shape[0]])
        dst.copy_(value.detach())

    def rows(self, doc: int) -> dict[str, np.ndarray]:
        """Document ``doc``'s ``[time, units]`` rows of every name (views)."""
        a, b = int(self.starts[doc]), int(self.starts[doc + 1])
        return {k: v[a:b] for k, v in self.buffers.items()}


def _can_shrink(state, n: int) -> bool:
    """Only states made of ``[layer, batch, units]`` tensors (nn.LSTM / nn.GRU) are cut."""
    import torch

    if isinstance(state, tuple | list):
        return len(state) > 0 and all(_can_shrink(p, n) for p in state)
    return isinstance(state, torch.Tensor) and state.dim() == 3 and state.shape[1] == n


def _shrink(state, n: int):
    if isinstance(state, tuple | list):
        return type(state)(_shrink(p, n) for p in state)
    return state[:, :n]


def resolve(model_or_bundle, kind: str | None) -> tuple[object, object, str, dict]:
    """``(model, tokenizer, kind, info)`` from a Bundle, ``(model, tokenizer)`` or a module."""
    import torch.nn as nn

    info: dict = {}
    if hasattr(model_or_bundle, "model") and hasattr(model_or_bundle, "kind"):
        b = model_or_bundle
        model, tokenizer = b.model, b.tokenizer
        kind = kind or b.kind
        info = {"task": getattr(b, "task", None), "path": str(getattr(b, "path", "") or "")}
    elif isinstance(model_or_bundle, tuple | list) and len(model_or_bundle) == 2:
        model, tokenizer = model_or_bundle
    elif isinstance(model_or_bundle, nn.Module):
        model, tokenizer = model_or_bundle, None
    else:
        raise TypeError(
            "pass a workbench Bundle (workbench.load(path)), a (model, tokenizer) pair or an "
            f"nn.Module, got {type(model_or_bundle).__name__}"
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"the model must be a torch nn.Module, got {type(model).__name__}")
    if kind is None:
        params = inspect.signature(model.forward).parameters
        if "state" in params or "hidden" in params:
            kind = "charlm"
        elif "lengths" in params:
            kind = "classifier"
        else:
            raise StoreError(
                "cannot tell how to run this model; pass kind='charlm' (model(ids, state)), "
                "'classifier' (model(ids, lengths)) or 'forecaster' (model(values))"
            )
    if kind not in KINDS:
        raise StoreError(f"kind must be one of {KINDS}, got {kind!r}")
    model.eval()
    return model, tokenizer, kind, info


def model_fingerprint(model) -> str:
    """sha256 over parameter names, shapes and bytes (identifies the model a store came from)."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]
