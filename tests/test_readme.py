"""The README's Python snippets run as written, in order, on the shipped models.

Each block gets a short set-up (the model and inputs the README leaves to the reader); the
store block runs on shorter documents and PCA instead of UMAP (:data:`SHRINK`, the only
edits), so that the test stays a few seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)

#: (README text, what the test runs instead): size only, never the API. The store keeps every
#: document of the README's corpus, each cut short (the first to 700 characters, for the
#: README's selection at 623-633; the others to 100).
SHORT = '_short(corpus("python", "test", max_tokens=300_000))'
SHRINK = [
    ('corpus("python", "test", max_tokens=300_000)', SHORT),
    ('method="umap"', 'method="pca"'),
    ("windows=1000, steps=256", "windows=8, steps=32"),
]

SETUP = {
    "trace = workbench.record(model, ids)": (
        "import workbench\n"
        "bundle = workbench.load('python')\n"
        "model = bundle.model\n"
        "ids, _ = bundle.encode(['def f(x):\\n    return x + 1\\n'])\n"
        "next_id, state = ids[:, :1], None\n"
    ),
    "from_text_folder(": (
        "import pathlib\n"
        "pathlib.Path('my_texts').mkdir()\n"
        "pathlib.Path('my_texts/a.txt').write_text('one text\\nand its second line\\n')\n"
        "pathlib.Path('my_texts/b.txt').write_text('another one\\n')\n"
        "pathlib.Path('reviews.csv').write_text('text,label\\ngood,pos\\nbad,neg\\nfine,pos\\n')\n"
        "pathlib.Path('load.csv').write_text('kw\\n' + '\\n'.join(str(i % 7) for i in range(50)))\n"
    ),
    "workbench.explain(": (
        "sentiment = workbench.load('sentiment')\n"
        "model = sentiment.model\n"
        "ids, lengths = sentiment.encode(['not bad at all', 'the ending drags on and on'])\n"
    ),
    "StateStore.build(": (
        "from workbench.data import Document\n"
        "def _cut(d, n):\n"
        "    return Document(d.doc_id, d.tokens[:n], {k: v[:n] for k, v in d.meta.items()})\n"
        "def _short(docs):\n"
        "    return [_cut(d, 700 if i == 0 else 100) for i, d in enumerate(docs)]\n"
    ),
    "memory.connectivity(": "",  # uses the store of the store block
    "workbench.report(": (
        "model = bundle.model\n"
        "ids, _ = bundle.encode(['def f(x):\\n    return x + 1\\n'])\n"
        "trace = workbench.record(model, ids)\n"
    ),
}


def _setup(block: str) -> str:
    found = [code for key, code in SETUP.items() if key in block]
    assert len(found) == 1, f"a README python block with no set-up here:\n{block[:300]}"
    return found[0]


@pytest.fixture(scope="module")
def namespace():
    return {"__name__": "readme"}  # shared: later blocks use what earlier ones defined


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")  # the blocks' relative paths land here


def test_every_block_has_a_set_up():
    assert len(BLOCKS) == len(SETUP)
    for block in BLOCKS:
        _setup(block)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, namespace, folder, monkeypatch):
    monkeypatch.chdir(folder)
    block = BLOCKS[index]
    for old, new in SHRINK:
        block = block.replace(old, new)
    code = compile(_setup(BLOCKS[index]) + block, f"README.md python block {index}", "exec")
    exec(code, namespace)
