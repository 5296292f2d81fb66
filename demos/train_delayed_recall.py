"""Train the tiny delayed-recall LSTM shipped as the memory tests' fixture.

The task has a known lag: at every step ``t >= LAG`` the model must output the symbol it
read at ``t - LAG`` (symbols drawn uniformly, ids after PAD and UNK). Its connectivity over
lag must therefore peak at ``LAG``; ``tests/test_memory.py`` checks that it does.

Run (a few seconds on 2 CPU cores)::

    python demos/train_delayed_recall.py tests/fixtures/delayed_recall
"""

from __future__ import annotations

import sys

import torch

from workbench.models.architectures import CharLM
from workbench.models.checkpoint import save
from workbench.models.tokenizer import PAD, UNK, Tokenizer

LAG, SYMBOLS, STEPS = 6, 6, 24
VOCAB = SYMBOLS + 2  # PAD and UNK first, as every tokenizer has them
ARCH = {"vocab": VOCAB, "embed": 8, "hidden": 24, "layers": 1, "arch": "lstm"}


def batch(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids [n, STEPS]`` and their targets (``ids`` shifted by ``LAG``)."""
    ids = torch.randint(2, VOCAB, (n, STEPS), generator=gen)
    return ids, ids[:, : STEPS - LAG]


def train(steps: int = 600, seed: int = 0) -> tuple[CharLM, float]:
    """Adam on fresh batches; returns the model and its recall accuracy on new data."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = CharLM(**ARCH)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        ids, target = batch(64, gen)
        logits, _ = model(ids)
        loss = torch.nn.functional.cross_entropy(
            logits[:, LAG:].reshape(-1, VOCAB), target.reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    ids, target = batch(512, gen)
    with torch.no_grad():
        acc = (model(ids)[0][:, LAG:].argmax(-1) == target).float().mean().item()
    return model.eval(), acc


def main(out: str) -> None:
    torch.set_num_threads(1)
    model, acc = train()
    print(f"recall accuracy at lag {LAG}: {acc:.3f}")
    save(
        out,
        model,
        "charlm",
        "delayed_recall",
        ARCH,
        Tokenizer([PAD, UNK, *"abcdef"[:SYMBOLS]]),
        metrics={"recall_accuracy": acc},
        lag=LAG,
        steps=STEPS,
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/delayed_recall")
