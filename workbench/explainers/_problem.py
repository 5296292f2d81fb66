"""What every method needs: validated inputs, a forward pass from input space, a score.

Token ids are explained in the space of the model's embedding output: a forward hook on the
``nn.Embedding`` replaces its output by the (perturbed, interpolated or leaf) tensor that a
method supplies, so the user's model runs unmodified and nothing is written onto it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from workbench.explainers._explanation import ExplainError, OutputStep, Target

BASELINES = ("pad", "unk", "zero", "mean")


def find_embedding(model: nn.Module, path: str | None) -> tuple[str, nn.Embedding]:
    """The model's token embedding: the module at ``path``, or its only ``nn.Embedding``.

    Raises
    ------
    ExplainError
        If ``path`` names no module, or the model holds no (or several) ``nn.Embedding``.
    """
    if path is not None:
        try:
            module = model.get_submodule(path)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n]
            raise ExplainError(
                f"embedding={path!r} names no module of {type(model).__name__}; "
                f"modules: {', '.join(names[:15])}"
            ) from None
        return path, module
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    if not found:
        raise ExplainError(
            f"token ids were given but {type(model).__name__} holds no nn.Embedding. Pass "
            "embedding='module.path' naming the module that turns ids into vectors, or pass "
            "float inputs [batch, time, feature] instead of ids."
        )
    if len(found) > 1:
        raise ExplainError(
            f"{type(model).__name__} holds several nn.Embedding modules "
            f"({', '.join(n for n, _ in found)}); say which one reads the token ids with "
            "embedding='module.path'"
        )
    return found[0]


def _check_vocabulary(ids: torch.Tensor, embedding: nn.Module, path: str) -> None:
    """Refuse ids outside ``embedding``'s vocabulary, naming them and its size."""
    n = getattr(embedding, "num_embeddings", None)
    if n is None or not ids.numel() or (int(ids.min()) >= 0 and int(ids.max()) < n):
        return
    bad = torch.unique(ids[(ids < 0) | (ids >= n)]).tolist()
    shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
    raise ExplainError(
        f"token ids {shown} are outside the vocabulary of the embedding {path!r} ({n} ids, "
        f"valid 0..{n - 1}): encode the input with the model's own tokenizer"
    )


class Problem:
    """Validated inputs plus a way to run the model from input space.

    Parameters
    ----------
    model : nn.Module
        The unmodified model.
    inputs : torch.Tensor
        Token ids ``[batch, time]`` or float inputs ``[batch, time, feature]``.
    args, kwargs
        Other forward arguments, passed through (tensors whose first dimension is the batch
        are repeated along with the input when a method evaluates many variants at once).
    embedding : str, optional
        Module path of the embedding when ``inputs`` are ids.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        embedding: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ExplainError(f"expected a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(inputs, torch.Tensor):
            raise ExplainError(
                f"inputs must be a torch.Tensor (ids [batch, time] or floats "
                f"[batch, time, feature]), got {type(inputs).__name__}"
            )
        self.model = model
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.is_ids = not inputs.is_floating_point()
        if self.is_ids:
            if inputs.dim() != 2:
                raise ExplainError(
                    f"token ids must be [batch, time], got shape {tuple(inputs.shape)}"
                    + ("; add a batch dimension with ids[None]" if inputs.dim() == 1 else "")
                )
            self.embedding_path, self.embedding = find_embedding(model, embedding)
            self.ids = inputs.long()
            _check_vocabulary(self.ids, self.embedding, self.embedding_path)
            with torch.no_grad():
                x = self.embedding(self.ids)
            if not isinstance(x, torch.Tensor) or x.shape[:2] != self.ids.shape:
                raise ExplainError(
                    f"the embedding {self.embedding_path!r} must map ids [batch, time] to "
                    f"[batch, time, feature]; it returned {getattr(x, 'shape', type(x))}"
                )
            self.x = x.detach()
        else:
            if inputs.dim() != 3:
                raise ExplainError(
                    f"float inputs must be [batch, time, feature], got shape "
                    f"{tuple(inputs.shape)}"
                    + (
                        "; for one univariate series use x[None, :, None]"
                        if inputs.dim() == 1
                        else "; add the missing dimension (x[None] or x[..., None])"
                    )
                )
            if torch.isnan(inputs).any() or torch.isinf(inputs).any():
                raise ExplainError("inputs contain NaN or infinite values; clean them first")
            self.embedding_path, self.embedding, self.ids = None, None, None
            self.x = inputs.detach()
        if self.x.shape[0] == 0:
            raise ExplainError("inputs hold an empty batch (batch = 0)")
        if self.x.shape[1] == 0:
            raise ExplainError("inputs hold an empty sequence (time = 0): nothing to explain")
        self.lengths = self._find_lengths()
        if self.lengths is not None and int(self.lengths.min()) < 1:
            raise ExplainError(
                f"lengths hold {int(self.lengths.min())}: every sequence needs at least one "
                "token (an empty sequence has nothing to explain)"
            )
        t = torch.arange(self.time, device=self.x.device)
        self.mask = (
            t[None, :] < self.lengths.to(self.x.device)[:, None]
            if self.lengths is not None
            else torch.ones(self.batch, self.time, dtype=torch.bool, device=self.x.device)
        )

    # -- shapes --------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        """Number of sequences."""
        return int(self.x.shape[0])

    @property
    def time(self) -> int:
        """Padded sequence length."""
        return int(self.x.shape[1])

    def _find_lengths(self) -> torch.Tensor | None:
        cand = self.kwargs.get("lengths")
        if cand is None:
            for a in self.args:
                if (
                    isinstance(a, torch.Tensor)
                    and a.dim() == 1
                    and not a.is_floating_point()
                    and a.shape[0] == self.batch
                ):
                    cand = a
                    break
        if isinstance(cand, torch.Tensor) and cand.dim() == 1 and cand.shape[0] == self.batch:
            return cand.detach().long().cpu()
        return None

    # -- running the model ---------------------------------------------------------------
    def _expand(self, value: Any, rows: torch.Tensor | None) -> Any:
        if rows is None or not isinstance(value, torch.Tensor) or value.dim() == 0:
            return value
        if value.shape[0] != self.batch:
            return value
        return value.index_select(0, rows.to(value.device))

    def call_args(self, x: torch.Tensor, rows: torch.Tensor | None):
        """Positional and keyword arguments of the model for rows ``rows`` of the batch."""
        first = self._expand(self.ids, rows) if self.is_ids else x
        args = (first, *(self._expand(a, rows) for a in self.args))
        kwargs = {k: self._expand(v, rows) for k, v in self.kwargs.items()}
        return args, kwargs

    @contextlib.contextmanager
    def replaced(self, x: torch.Tensor):
        """Within the block, the embedding (if any) outputs ``x`` instead of its lookup."""
        if self.embedding is None:
            yield
            return

        def hook(module, args, output):
            if output.shape[:2] != x.shape[:2]:
                return output
            return x.to(output.dtype) if x.dtype != output.dtype else x

        handle = self.embedding.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def run(self, x: torch.Tensor, rows: torch.Tensor | None = None, model=None) -> Any:
        """The model's raw output for input-space values ``x`` ``[n, time, feature]``.

        ``rows`` (``[n]`` long) says which original sequence each row of ``x`` belongs to
        (default: ``x`` has the original batch).
        """
        args, kwargs = self.call_args(x, rows)
        with self.replaced(x):
            return (model or self.model)(*args, **kwargs)

    def rows_for(self, n_per: int) -> torch.Tensor:
        """Row index ``[batch * n_per]``: each sequence repeated ``n_per`` times in a block."""
        return torch.arange(self.batch).repeat_interleave(n_per)

    # -- baselines -----------------------------------------------------------------------
    def baseline(self, kind: Any, pad_id: int = 0, unk_id: int = 1) -> torch.Tensor:
        """Input-space reference ``[batch, time, feature]`` for a removed position.

        Parameters
        ----------
        kind : {"pad", "unk", "zero", "mean"}, int, float or torch.Tensor
            ``pad`` / ``unk``: the embedding of that token id (ids only); an int: the
            embedding of that id; ``zero``: zero vectors; ``mean``: the mean embedding over
            the vocabulary (ids) or each feature's mean over the real steps (series); a
            tensor: broadcast to the input shape.
        """
        x = self.x
        if isinstance(kind, torch.Tensor):
            try:
                return kind.to(x.dtype).to(x.device).expand_as(x).clone()
            except RuntimeError:
                raise ExplainError(
                    f"a baseline tensor of shape {tuple(kind.shape)} does not broadcast to "
                    f"the inputs {tuple(x.shape)}"
                ) from None
        if isinstance(kind, bool) or not isinstance(kind, (str, int, float)):
            raise ExplainError(f"baseline must be one of {BASELINES}, an id or a tensor")
        if isinstance(kind, float):
            return torch.full_like(x, kind)
        if kind == "zero":
            return torch.zeros_like(x)
        if self.is_ids:
            if kind == "mean":
                w = getattr(self.embedding, "weight", None)
                if w is None:
                    raise ExplainError("baseline='mean' needs an embedding with a weight")
                return w.detach().mean(0).to(x.dtype).expand_as(x).clone()
            if isinstance(kind, int):
                token = kind
            elif kind in ("pad", "unk"):
                token = pad_id if kind == "pad" else unk_id
            else:
                raise ExplainError(
                    f"unknown baseline {kind!r}; use one of {BASELINES}, a token id or a tensor"
                )
            n = getattr(self.embedding, "num_embeddings", None)
            if n is not None and not 0 <= token < n:
                raise ExplainError(f"baseline token id {token} is outside the vocabulary ({n})")
            with torch.no_grad():
                e = self.embedding(torch.full_like(self.ids, token))
            return e.detach().to(x.dtype)
        if kind == "mean":
            m = self.mask[..., None].to(x.dtype)
            mean = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
            return mean.expand_as(x).clone()
        raise ExplainError(
            f"baseline {kind!r} needs token ids; for float inputs use 'zero', 'mean', a "
            "number or a tensor"
        )


def select_output(output: Any) -> torch.Tensor:
    """The tensor of scores among what a model returned (first element of tuples)."""
    while isinstance(output, (tuple, list)):
        if not output:
            raise ExplainError("the model returned an empty tuple")
        output = output[0]
    if hasattr(output, "logits") and isinstance(output.logits, torch.Tensor):
        output = output.logits
    if not isinstance(output, torch.Tensor):
        raise ExplainError(
            f"the model returned {type(output).__name__}; expected a tensor (or a tuple whose "
            "first element is one)"
        )
    return output


class Scorer:
    """The explained score ``[n]``: an output logit or a recorded quantity.

    Parameters
    ----------
    problem : Problem
    target : None, int, sequence of int, torch.Tensor or Target
        ``None``: the predicted class (argmax) of classifiers, output 0 of regressors. An int
        picks that output for every sequence; a sequence/tensor gives one index per sequence.
        Outputs ``[batch, time, classes]`` (language models) are read at each sequence's last
        real step. A :class:`Target` explains a recorded quantity.
    """

    def __init__(self, problem: Problem, target: Any) -> None:
        self.problem = problem
        self.target = target
        self.recorded = isinstance(target, Target)
        self.step = None  # the output step an OutputStep target reads
        if self.recorded:
            self._check_recorded(target)
            self.index = None
        else:
            with torch.no_grad():
                out = select_output(problem.run(problem.x))
            if isinstance(target, OutputStep):
                out, target = self._at_step(out, target), target.token
            self.index = self._resolve(out, target)

    def _at_step(self, out: torch.Tensor, target: OutputStep) -> torch.Tensor:
        if out.dim() != 3:
            raise ExplainError(
                f"an OutputStep target needs a sequence output [batch, steps, classes]; the "
                f"model returned shape {tuple(out.shape)}"
            )
        T = int(out.shape[1])
        if not -T <= target.step < T:
            raise ExplainError(
                f"output step {target.step} is out of range: the output has {T} steps (0..{T - 1})"
            )
        self.step = target.step % T
        return out[:, self.step]

    # -- target resolution ---------------------------------------------------------------
    def _classes(self, out: torch.Tensor) -> int:
        if out.dim() == 1:
            return 1
        return int(out.shape[-1])

    def _resolve(self, out: torch.Tensor, target: Any) -> torch.Tensor:
        B = self.problem.batch
        if out.shape[0] != B:
            raise ExplainError(
                f"the model output has {out.shape[0]} rows for a batch of {B}; the batch must "
                "be the first dimension of the output"
            )
        if out.dim() > 3:
            raise ExplainError(f"cannot explain an output of shape {tuple(out.shape)}")
        C = self._classes(out)
        if target is None:
            if C == 1:
                return torch.zeros(B, dtype=torch.long)
            return self._last(out).argmax(-1).cpu()
        if isinstance(target, bool):
            raise ExplainError("target must be an int index, not a bool")
        if isinstance(target, int):
            idx = torch.full((B,), target, dtype=torch.long)
        else:
            try:
                raw = torch.as_tensor(target).flatten().cpu()
            except (TypeError, ValueError, RuntimeError):
                raise ExplainError(
                    f"target must be None, an int, one int per sequence or a workbench.Target, "
                    f"got {type(target).__name__}"
                ) from None
            if raw.dtype == torch.bool or raw.is_complex():
                raise ExplainError(f"target must hold integer indices, got {raw.dtype}")
            if raw.is_floating_point():
                frac = raw[~torch.isfinite(raw) | (raw != raw.round())]
                if frac.numel():
                    raise ExplainError(
                        f"target {float(frac[0])!r} is not an integer output index "
                        "(it is not truncated): pass an int"
                    )
            idx = raw.long()
            if idx.numel() == 1:
                idx = idx.expand(B).clone()
            if idx.numel() != B:
                raise ExplainError(f"{idx.numel()} targets given for a batch of {B}")
        bad = idx[(idx < 0) | (idx >= C)]
        if bad.numel():
            raise ExplainError(
                f"target {int(bad[0])} is out of range: the model has {C} output"
                f"{'s' if C > 1 else ''} (valid indices 0..{C - 1})"
            )
        return idx

    def _last(self, out: torch.Tensor) -> torch.Tensor:
        if out.dim() < 3:
            return out
        lengths = self.problem.lengths
        B, T = out.shape[:2]
        steps = (lengths - 1).clamp(max=T - 1) if lengths is not None else torch.full((B,), T - 1)
        return out[torch.arange(B, device=out.device), steps.to(out.device)]

    def _check_recorded(self, target: Target) -> None:
        from workbench.recorder import record

        args, kwargs = self.problem.call_args(self.problem.x, None)
        try:
            with torch.no_grad():
                trace = record(self.problem.model, *args, names=[target.name], **kwargs)
        except ValueError as err:
            raise ExplainError(f"cannot explain {target}: {err}") from None
        value = trace[target.name]
        U, T = int(value.shape[-1]), int(value.shape[1])
        for u in target.units():
            if not 0 <= u < U:
                raise ExplainError(
                    f"unit {u} is out of range for {target.name} ({U} units, 0..{U - 1})"
                )
        if target.step != -1 and not -T <= target.step < T:
            raise ExplainError(
                f"step {target.step} is out of range for {target.name} ({T} steps recorded)"
            )

    # -- scores --------------------------------------------------------------------------
    def rows_index(self, rows: torch.Tensor | None) -> torch.Tensor:
        """Per-row output index for an expanded batch."""
        return self.index if rows is None else self.index[rows]

    def from_output(self, out: Any, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``[n]`` from a raw model output."""
        out = select_output(out)
        idx = self.rows_index(rows).to(out.device)
        if out.dim() == 1:
            return out
        if out.dim() == 3 and self.step is not None:
            out = out[:, self.step]
        elif out.dim() == 3:
            lengths = self.problem.lengths
            T = out.shape[1]
            if lengths is not None:
                lens = lengths if rows is None else lengths[rows]
                steps = (lens - 1).clamp(max=T - 1).to(out.device)
            else:
                steps = torch.full((out.shape[0],), T - 1, device=out.device)
            out = out[torch.arange(out.shape[0], device=out.device), steps]
        return out.gather(1, idx[:, None])[:, 0]

    def __call__(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``[n]`` for input-space values ``x`` ``[n, time, feature]``."""
        if not self.recorded:
            return self.from_output(self.problem.run(x, rows), rows)
        from workbench.recorder import Recorder

        t = self.target
        with Recorder(self.problem.model, names=[t.name]) as rec:
            self.problem.run(x, rows)
        trace = rec.trace
        value = trace[t.name][..., t.units()].sum(-1)  # [n, time]
        n, T = value.shape
        if t.step == -1:
            steps = (trace.lengths_for(t.name) - 1).clamp(min=0, max=T - 1)
        else:
            steps = torch.full((n,), t.step % T, dtype=torch.long)
        return value[torch.arange(n, device=value.device), steps.to(value.device)]

    def describe(self) -> Any:
        """The target as stored in an Explanation."""
        if self.step is not None:
            return OutputStep(self.step, tuple(self.index.tolist()))
        return self.target if self.recorded else self.index.clone()
