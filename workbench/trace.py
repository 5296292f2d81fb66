"""Trace: the named tensors one recording produced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from workbench.names import quantity

_SCHEMA = "workbench.trace/1"


class Trace:
    """Named tensors recorded from one run of a model.

    Every recurrent quantity is batch-first ``[batch, time, units]`` whatever the module's
    ``batch_first``; attention weights are ``[batch, heads, query, key]``. Steps past a
    sequence's length are zero, and :attr:`lengths` / :attr:`mask` say which steps are real.

    Parameters
    ----------
    tensors : dict of str to torch.Tensor
        Name -> tensor, in recording order.
    lengths : dict of str to torch.Tensor, optional
        Module name -> ``[batch]`` real lengths of the sequences it processed.
    sites : dict of str to str, optional
        Quantity name -> the module name it belongs to (keys of ``lengths``).
    output : Any, optional
        What the model returned.
    tokens : list of list of str, optional
        Token strings per sequence, ``[batch][time]``, for display.
    meta : dict, optional
        JSON-serialisable facts about the recording (exactness errors, strategy, ...).
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        lengths: dict[str, torch.Tensor] | None = None,
        sites: dict[str, str] | None = None,
        output: Any = None,
        tokens: list[list[str]] | None = None,
        meta: dict | None = None,
    ) -> None:
        self._tensors = dict(tensors)
        self._lengths = dict(lengths or {})
        self._sites = dict(sites or {})
        self.output = output
        self.tokens = tokens
        self.meta = dict(meta or {})

    # -- mapping interface -------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Recorded names, in recording order."""
        return list(self._tensors)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            wanted = quantity(str(name))
            close = [n for n in self._tensors if quantity(n) == wanted]
            hint = f" Did you mean one of {close[:5]}?" if close else ""
            raise KeyError(
                f"{name!r} was not recorded.{hint} Recorded: {len(self._tensors)} names, "
                f"see trace.names."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def items(self):
        """``(name, tensor)`` pairs."""
        return self._tensors.items()

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}: {tuple(t.shape)}" for n, t in list(self.items())[:4])
        more = f", ... (+{len(self) - 4})" if len(self) > 4 else ""
        return f"Trace({shapes}{more})"

    # -- lengths and masks -------------------------------------------------------------
    def site(self, name: str) -> str | None:
        """The module name that produced ``name``."""
        return self._sites.get(name)

    def lengths_for(self, name: str) -> torch.Tensor:
        """Real lengths ``[batch]`` of the sequences behind ``name``."""
        site = self._sites.get(name)
        if site in self._lengths:
            return self._lengths[site]
        t = self[name]
        return torch.full((t.shape[0],), t.shape[1], dtype=torch.long)

    @property
    def lengths(self) -> torch.Tensor:
        """Real lengths ``[batch]`` of the recorded sequences (of the first recorded module)."""
        if self._lengths:
            return next(iter(self._lengths.values()))
        if not self._tensors:
            raise ValueError("empty trace: nothing was recorded")
        return self.lengths_for(self.names[0])

    @property
    def mask(self) -> torch.Tensor:
        """``[batch, time]`` bool, True at real steps."""
        lengths = self.lengths
        time = max(
            (t.shape[1] for n, t in self.items() if self._sites.get(n) in self._lengths),
            default=int(lengths.max()) if lengths.numel() else 0,
        )
        return torch.arange(time)[None, :] < lengths[:, None]

    def mask_for(self, name: str) -> torch.Tensor:
        """``[batch, time]`` bool mask of the real steps of ``name``."""
        t = self[name]
        return torch.arange(t.shape[1])[None, :] < self.lengths_for(name)[:, None]

    # -- summaries ---------------------------------------------------------------------
    def summary(self):
        """One row per recorded name: shape, dtype and statistics over real steps.

        Returns
        -------
        pandas.DataFrame
            Columns ``name, shape, dtype, mean, std, min, max``.
        """
        import pandas as pd

        rows = []
        for name, t in self.items():
            values = t.detach()
            if values.dim() == 3 and name in self._sites:
                values = values[self.mask_for(name)]
            values = values.float()
            rows.append(
                {
                    "name": name,
                    "shape": "x".join(map(str, t.shape)),
                    "dtype": str(t.dtype).replace("torch.", ""),
                    "mean": values.mean().item() if values.numel() else float("nan"),
                    "std": values.std().item() if values.numel() > 1 else float("nan"),
                    "min": values.min().item() if values.numel() else float("nan"),
                    "max": values.max().item() if values.numel() else float("nan"),
                }
            )
        return pd.DataFrame(rows)

    def to(self, *args, **kwargs) -> Trace:
        """A copy with every tensor moved/cast by ``Tensor.to(*args, **kwargs)``."""
        return Trace(
            {n: t.to(*args, **kwargs) for n, t in self.items()},
            self._lengths,
            self._sites,
            self.output,
            self.tokens,
            self.meta,
        )

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the trace to one safetensors file (no pickle).

        The model output is saved when it is a tensor or a tuple/list of tensors.

        Returns
        -------
        pathlib.Path
            The written path.
        """
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {f"t/{n}": t.detach().contiguous().cpu() for n, t in self.items()}
        tensors.update({f"l/{s}": v.detach().cpu().contiguous() for s, v in self._lengths.items()})
        outputs = self.output if isinstance(self.output, (tuple, list)) else [self.output]
        saved_output = all(isinstance(o, torch.Tensor) for o in outputs) and self.output is not None
        if saved_output:
            for i, o in enumerate(outputs):
                tensors[f"o/{i}"] = o.detach().contiguous().cpu()
        header = {
            "schema": _SCHEMA,
            "names": self.names,
            "sites": self._sites,
            "tokens": self.tokens,
            "meta": self.meta,
            "output": (
                None
                if not saved_output
                else ("tuple" if isinstance(self.output, (tuple, list)) else "tensor")
            ),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={"workbench": json.dumps(header)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If ``path`` is not a regular file (a folder, FIFO or device) or not a
            workbench trace.
        """
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no trace file at {path}")
        if not path.is_file():  # a FIFO or device would block the read forever
            raise ValueError(f"{path} is not a regular file; pass a trace file written by save")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                data = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{path} is not a safetensors trace file ({exc})") from None
        if "workbench" not in metadata:
            raise ValueError(f"{path} is a safetensors file but not a workbench trace")
        header = json.loads(metadata["workbench"])
        if header.get("schema") != _SCHEMA:
            raise ValueError(f"{path}: unsupported trace schema {header.get('schema')!r}")
        tensors = {n: data[f"t/{n}"] for n in header["names"]}
        lengths = {k[2:]: v for k, v in data.items() if k.startswith("l/")}
        output = None
        if header["output"] == "tensor":
            output = data["o/0"]
        elif header["output"] == "tuple":
            output = tuple(data[f"o/{i}"] for i in range(sum(k.startswith("o/") for k in data)))
        return cls(tensors, lengths, header["sites"], output, header["tokens"], header["meta"])
