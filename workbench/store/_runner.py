"""Run a model over documents with the recorder: states, predictions and losses per token."""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass

import numpy as np

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
        Recorder strategy.
    """

    model: object
    tokenizer: object
    kind: str
    names: object = None
    window: int = 256
    batch_size: int = 32
    strategy: str = "auto"

    # ------------------------------------------------------------------ helpers
    def encode(self, doc) -> np.ndarray:
        if self.kind == "forecaster":
            return np.full(len(doc), -1, dtype=np.int32)
        if self.tokenizer is None:
            raise StoreError(f"a {self.kind} model needs a tokenizer; pass (model, tokenizer)")
        return np.asarray(self.tokenizer.encode(list(doc.tokens)), dtype=np.int64)

    def _record(self, *args):
        import workbench

        try:
            return workbench.record(
                self.model, *args, names=self.names, check="none", strategy=self.strategy
            )
        except Exception as err:  # noqa: BLE001 - fall back to the always-available path
            if self.strategy == "auto":
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
    def run(self, docs) -> list[dict[str, np.ndarray]]:
        """Columns per document.

        ``states/{name}`` ``[time, units]`` float32, ``token_id``, ``prediction``, ``loss``
        ``[time]``, ``doc_prediction`` / ``doc_loss`` scalars.
        """
        import torch

        with torch.no_grad():
            if self.kind == "charlm":
                return self._run_batches(docs, self._charlm)
            if self.kind == "classifier":
                return self._run_batches(docs, self._classifier)
            if self.kind == "forecaster":
                return [self._forecaster(d) for d in docs]
        raise StoreError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def _run_batches(self, docs, fn):
        out: list = [None] * len(docs)
        order = sorted(range(len(docs)), key=lambda i: (-len(docs[i]), i))
        order = [i for i in order if len(docs[i]) > 0]
        for i in range(len(docs)):
            if len(docs[i]) == 0:
                out[i] = _empty()
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            for i, cols in zip(idx, fn([docs[i] for i in idx]), strict=True):
                out[i] = cols
        return out

    def _padded(self, docs):
        import torch

        encoded = [self.encode(d) for d in docs]
        lengths = [len(e) for e in encoded]
        ids = torch.zeros(len(docs), max(lengths), dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.from_numpy(e)
        return ids, lengths, encoded

    def _charlm(self, docs):
        import torch

        ids, lengths, encoded = self._padded(docs)
        per_name: dict[str, list] = {}
        preds, losses = [], []
        state, n = None, len(docs)
        for w in range(0, ids.shape[1], self.window):
            active = sum(1 for L in lengths if L > w)  # documents sorted longest first
            if active < n and _can_shrink(state, n):
                state, n = _shrink(state, active), active
            x = ids[:n, w : w + self.window]
            tr = self._record(x, state)
            logits, state = tr.output
            for name in tr.names:
                t = tr[name]
                if t.dim() == 3 and t.shape[:2] == x.shape:
                    per_name.setdefault(name, []).append(_pad_rows(t.float().numpy(), len(docs)))
            logp = torch.log_softmax(logits.float(), dim=-1)
            nxt = torch.cat([ids[:n, w + 1 : w + 1 + x.shape[1]], ids.new_zeros(n, 1)], 1)
            nxt = nxt[:, : x.shape[1]]
            loss = -logp.gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
            preds.append(_pad_rows(logits.argmax(-1).numpy(), len(docs)))
            losses.append(_pad_rows(loss.numpy(), len(docs)))
        pred = np.concatenate(preds, axis=1)
        loss = np.concatenate(losses, axis=1)
        states = {k: np.concatenate(v, axis=1) for k, v in per_name.items()}
        out = []
        for i, L in enumerate(lengths):
            cols = {f"states/{k}": v[i, :L] for k, v in states.items()}
            row_loss = loss[i, :L].astype(np.float32)
            row_loss[L - 1] = np.nan  # no next token inside the document
            cols.update(
                token_id=encoded[i].astype(np.int32),
                prediction=pred[i, :L].astype(np.int32),
                loss=row_loss,
                doc_prediction=np.int32(-1),
                doc_loss=np.float32(np.nanmean(row_loss) if L > 1 else np.nan),
            )
            out.append(cols)
        return out

    def _classifier(self, docs):
        import torch

        ids, lengths, encoded = self._padded(docs)
        tr = self._record(ids, torch.tensor(lengths))
        logits = tr.output.float()
        logp = torch.log_softmax(logits, -1)
        out = []
        for i, L in enumerate(lengths):
            cols = {
                f"states/{k}": tr[k][i, :L].float().numpy()
                for k in tr.names
                if tr[k].dim() == 3 and tr[k].shape[:2] == ids.shape
            }
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

    def _forecaster(self, doc):
        import torch

        if len(doc) == 0:
            return _empty()
        x = torch.as_tensor(np.asarray(doc.values, dtype=np.float32))
        if x.dim() == 1:
            x = x[:, None]
        tr = self._record(x[None])
        cols = {
            f"states/{k}": tr[k][0].float().numpy()
            for k in tr.names
            if tr[k].dim() == 3 and tr[k].shape[1] == x.shape[0]
        }
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


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    if a.shape[0] == rows:
        return a
    pad = np.zeros((rows - a.shape[0], *a.shape[1:]), a.dtype)
    return np.concatenate([a, pad], 0)


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
