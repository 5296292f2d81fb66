"""Shared inputs of the report tests: a small trace and explanations with hostile tokens."""

import torch

from workbench.explainers._explanation import Explanation
from workbench.trace import Trace

EVIL = ["<script>alert(1)</script>", "\"'</textarea>", " ", "\n", "<img src=x onerror=alert(2)>"]
TOKENS = EVIL + list("abcdefg")


def small_trace(time: int = len(TOKENS), units: int = 8) -> Trace:
    g = torch.Generator().manual_seed(0)
    names = ("input_gate", "forget_gate", "cell_input", "output_gate", "cell", "hidden")
    tensors = {}
    for layer in (0, 1):
        for q in names:
            t = torch.rand(1, time, units, generator=g)
            tensors[f"rnn.{layer}.fwd.{q}"] = t if "gate" in q else 2 * t - 1
    tensors["attn.weights"] = torch.softmax(torch.randn(1, 2, time, time, generator=g), -1)
    return Trace(tensors, tokens=[TOKENS[:time]], meta={"max_abs_error": 1e-7})


def explanations(methods=("integrated_gradients", "lrp", "shap")) -> list[Explanation]:
    g = torch.Generator().manual_seed(1)
    n = len(TOKENS)
    return [
        Explanation(m, torch.randn(1, n, generator=g), None, torch.tensor([2]),
                    torch.tensor([1.25]), delta=torch.tensor([1e-3]), tokens=[TOKENS],
                    lengths=torch.tensor([n]))
        for m in methods
    ]  # fmt: skip
