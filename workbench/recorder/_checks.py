"""Checks of what a recording is given: weights, token ids, empty batches, NaN results.

Each turns a failure deep inside the unroll (or a silently NaN trace) into one line that
names the problem and its fix.
"""

from __future__ import annotations

import threading
import warnings

import torch
from torch import nn

from workbench.recorder._call import GATE_BLOCKS
from workbench.recorder._names import RecordingError, Site

_SHOWN_IDS = 5


def check_weights(site: Site) -> None:
    """Refuse a module whose weights are on the ``meta`` device (shapes without values)."""
    if any(p.is_meta for p in site.module.parameters()):
        raise RecordingError(
            f"{site.name} has its weights on the 'meta' device (shapes only, no values): "
            "materialise them first (model.to_empty(device='cpu'), then load_state_dict)"
        )


def _id_check(path: str, module: nn.Embedding, thread: int):
    def hook(mod, args):
        if threading.get_ident() != thread or not args:
            return
        ids = args[0]
        if not isinstance(ids, torch.Tensor) or ids.is_meta or ids.is_floating_point():
            return
        if not ids.numel():
            return
        n = mod.num_embeddings
        low, high = int(ids.min()), int(ids.max())
        if low >= 0 and high < n:
            return
        bad = torch.unique(ids[(ids < 0) | (ids >= n)]).tolist()
        shown = ", ".join(map(str, bad[:_SHOWN_IDS])) + (" ..." if len(bad) > _SHOWN_IDS else "")
        raise RecordingError(
            f"token ids {shown} are outside the vocabulary of {path} ({n} ids, valid "
            f"0..{n - 1}): encode the input with the model's own tokenizer"
        )

    return hook


def guard_embeddings(model: nn.Module) -> list:
    """Hooks (to remove on exit) that refuse out-of-vocabulary ids with one clear line.

    Without them an out-of-range id fails inside ``nn.Embedding`` as
    ``IndexError: index out of range in self``, naming neither the ids nor the vocabulary.
    """
    thread = threading.get_ident()
    handles = []
    for path, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            name = path or type(model).__name__.lower()
            handles.append(module.register_forward_pre_hook(_id_check(name, module, thread)))
    return handles


def empty_call(site: Site, call) -> bool:
    """Whether a parsed fused-kernel call holds no rows (a batch of 0).

    Raises
    ------
    RecordingError
        On a sequence of length 0, which ``nn.LSTM`` / ``nn.GRU`` refuse as well.
    """
    if call.time == 0:
        raise RecordingError(
            f"the input of {site.name} has sequence length 0 (time = 0); nn.LSTM and nn.GRU "
            "refuse empty sequences: pass at least one step"
        )
    return call.batch == 0


def empty_recording(call, wanted: set) -> dict:
    """``(layer, direction, quantity) -> [0, time, units]`` empty tensors for a batch of 0."""
    gates = GATE_BLOCKS[call.mode]
    out = {}
    for layer, d, q in wanted:
        units = call.h0.shape[-1]  # the (projected) hidden state
        if q != "hidden":
            units = call.layer_params(layer, d)["w_ih"].shape[0] // gates
        out[(layer, d, q)] = call.x.new_zeros(0, call.time, units)
    return out


def warn_not_finite(site: Site) -> None:
    """Warn that a recording came out NaN, naming the parameters that hold NaN/inf."""
    bad = [n for n, p in site.module.named_parameters() if not torch.isfinite(p).all()]
    where = (
        f"its parameter{'s' if len(bad) > 1 else ''} {', '.join(bad)} "
        f"hold{'' if len(bad) > 1 else 's'} NaN/inf"
        if bad
        else "its input or initial state holds NaN/inf"
    )
    warnings.warn(
        f"the recorded states of {site.name} are NaN (exactness is nan): {where}",
        RuntimeWarning,
        stacklevel=4,
    )


def check_edit_reach(recorder, edits: dict) -> None:
    """Refuse a ready-made edit whose first step is past the last step its module ran.

    Such an edit changes nothing; without this the edited run would silently equal the
    unedited one. Edits without ``steps`` (user functions) are not checked.
    """
    for name, fn in edits.items():
        steps = getattr(fn, "steps", None)
        if steps is None:
            continue
        site = recorder._site_of(name)
        lengths = [x for x in recorder._lengths.get(site, []) if x.numel()]
        if lengths:
            ran = sum(int(x.max()) for x in lengths)
        else:
            ran = len(recorder._calls.get(site, []))
        if steps[0] >= ran:
            raise RecordingError(
                f"the edit of {name} starts at step {steps[0]} but {site} ran {ran} step"
                f"{'' if ran == 1 else 's'} (0..{ran - 1}): nothing would be edited; "
                "pass a start within the sequence"
            )
