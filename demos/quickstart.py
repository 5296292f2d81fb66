"""Quickstart of the Python API: record, filter, intervene, save.

Run with ``.venv/bin/python demos/quickstart.py`` after ``make demo`` or ``make test`` has
created the virtual environment. Uses only a freshly built model, so it runs anywhere.
"""

import torch
from torch import nn

import workbench
from workbench.recorder.edits import zero


class Classifier(nn.Module):
    """Embedding -> 2-layer bidirectional LSTM -> linear on the last step."""

    def __init__(self, vocab: int = 50, units: int = 32, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.rnn = nn.LSTM(16, units, 2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * units, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(self.embed(ids))
        return self.head(states[:, -1])


def main() -> None:
    torch.manual_seed(0)
    model = Classifier().eval()
    ids = torch.randint(0, 50, (4, 12))

    trace = workbench.record(model, ids)  # every gate, cell and hidden state
    print(trace.summary().to_string(index=False))
    print("exactness:", trace.meta["exactness"])

    cells = workbench.record(model, ids, names="rnn.*.fwd.cell")  # only what you need
    print("kept:", cells.names)

    edited = workbench.intervene(model, ids, edits={"rnn.0.fwd.cell": zero([3, 17], start=6)})
    print("logit change after ablating cells 3 and 17 from step 6:")
    print((edited.output - trace.output).abs().max(dim=1).values)

    trace.save("/tmp/quickstart-trace.safetensors")
    again = workbench.Trace.load("/tmp/quickstart-trace.safetensors")
    print("round trip:", again.names == trace.names)


if __name__ == "__main__":
    main()
