"""``compat="lstmvis"`` and the export against the real LSTMVis server (opt-in).

Runs only where an LSTMVis checkout and a Python with its requirements are given:
``LSTMVIS_DIR=/path/to/LSTMVis LSTMVIS_PYTHON=/path/to/python pytest tests/test_lstmvis_server.py``
(HendrikStrobelt/LSTMVis at e0628ca; nothing of it is part of this project). The export is
served by its ``lstm_server.py`` on 127.0.0.1; ``/info`` must carry every meta range (its
client reads them), the client's selection rule on ``/context`` values and the ``/match``
rankings must equal compat mode's, rank by rank.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from test_store import SETTINGS, make_corpus, make_model

from workbench.store import StateStore
from workbench.store.search import select_cells

LSTMVIS_DIR = os.environ.get("LSTMVIS_DIR")
LSTMVIS_PYTHON = os.environ.get("LSTMVIS_PYTHON")
PORT = 8161
pytestmark = pytest.mark.skipif(
    not (LSTMVIS_DIR and LSTMVIS_PYTHON and Path(LSTMVIS_DIR, "lstm_server.py").exists()),
    reason="set LSTMVIS_DIR (an LSTMVis checkout) and LSTMVIS_PYTHON (its environment)",
)


def _get(path, **query):
    url = f"http://127.0.0.1:{PORT}/api/v2/{path}?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=300) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("lvs")
    store = StateStore.build(make_model(), make_corpus(n_docs=12, seed=2), root / "s", **SETTINGS)
    store.export(root / "data" / "proj", names=["rnn.0.fwd.cell"])
    proc = subprocess.Popen(
        [LSTMVIS_PYTHON, "lstm_server.py", "-dir", str(root / "data"), "--port", str(PORT),
         "--nodebug", "1"],
        cwd=LSTMVIS_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(120):
            try:
                info = _get("info")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the LSTMVis server did not answer /info")
        yield store, info
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _client_select(data, start, end, threshold, pad):
    """LSTMController.cellSelection on ``/context`` data (``[unit][step]``, local steps)."""
    lb, rb = start - pad[0], end + pad[1]
    sig = [1 if start <= v < end else 0 for v in range(lb, rb)]
    out = []
    for u, vec in enumerate(data):
        a = lb + len(vec) if lb < 0 else lb
        if [1 if v >= threshold else 0 for v in vec[a:rb]] == sig:
            out.append(u)
    return out


def test_info_carries_every_meta_range(served):
    store, info = served
    meta = info[0]["info"]["meta"]
    assert set(meta) == set(store.meta_tracks)
    for track in meta.values():
        assert isinstance(track["vis"]["range"], list) and track["vis"]["range"]


def test_selection_and_match_equal_lstmvis(served):
    store, _ = served
    name, source = "rnn.0.fwd.cell", "states::rnn.0.fwd.cell"
    rng = np.random.default_rng(0)
    compared = 0
    for trial in range(40):
        pos = int(rng.integers(1, store.n_tokens - 8))
        pad = [(1, 0), (1, 1), (0, 0)][trial % 3]
        ctx = _get("context", project="proj", source=source, pos=pos, left=3, right=20,
                   dims="states", activation=0.1)  # fmt: skip
        block = ctx["results"]["states"][0]
        b0 = pos - block["left"]
        cells = _client_select(block["data"], b0, b0 + 2, 0.1, pad)
        ours = select_cells(store.states(name), pos, pos + 2, 0.1, pad, compat="lstmvis")
        ours = ours.tolist()
        assert ours == cells, (pos, pad)
        if not cells:
            continue
        for mode in ("fast", "precise"):
            try:
                res = _get("match", project="proj", source=source,
                           cells=",".join(map(str, cells)), activation=0.1, left=1, right=1,
                           dims="states", constraints=f"{pad[0]},{pad[1]}",
                           mode=mode)["results"]  # fmt: skip
            except urllib.error.HTTPError as exc:
                # LSTMVis's IndexError on a right-constrained run ending the stream
                assert exc.code == 500 and pad[1] > 0
                continue
            want = [(r["pos"], r["factors"][2], r["factors"][6], r["factors"][5])
                    for r in res["rankingDetail"]]  # fmt: skip
            m = store.match(name, cells, 0.1, pad, compat="lstmvis", mode=mode)
            got = list(zip(m.start.tolist(), m.length.tolist(), m.intersection.tolist(),
                           m.union.tolist(), strict=True))  # fmt: skip
            assert got == want
            assert m.fuzzy_histogram.tolist() == res["fuzzyLengthHistogram"]
            compared += 1
    assert compared >= 4
