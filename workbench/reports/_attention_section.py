"""Report section of an encoder-decoder's attention: the Attention page's views per word."""

from __future__ import annotations

from collections.abc import Sequence

from workbench import viz
from workbench.reports._sections import Section


def attention_section(
    bundle,
    words: Sequence[str],
    *,
    beam: int = 4,
    topk: int = 3,
    title: str = "Attention",
) -> Section:
    """A report section with the Attention page's views of each word.

    Parameters
    ----------
    bundle : workbench.models.checkpoint.Bundle
        A grapheme-to-phoneme model (``workbench.load("g2p")``).
    words : sequence of str
        Words to decode (at most 20; each checked as the page checks it).
    beam, topk : int
        Beam size (1-16) and phonemes listed per step (1-10).
    title : str

    Returns
    -------
    Section
        A table (word, greedy output, its top-k per step, beam best and its
        log-probability) and per word the attention matrix
        (:func:`workbench.viz.seq2seq_attention`) and the beam tree
        (:func:`workbench.viz.beam_tree`).

    Raises
    ------
    workbench.models.g2p_decode.AttentionInputError
        For a bad word, beam size or top-k (one line), or more than 20 words.
    """
    from workbench.models.g2p_decode import AttentionInputError, decode_word

    words = list(words)
    if not 1 <= len(words) <= 20:
        raise AttentionInputError(
            f"the attention section shows 1 to 20 words, got {len(words)}; pass fewer words"
        )
    rows, figures = [], []
    for word in words:
        r = decode_word(bundle, word, beam, topk)
        best = r["beam"][0]
        steps = "; ".join(" ".join(f"{p} {q:.2f}" for p, q in step) for step in r["topk"])
        rows.append([r["word"], " ".join(r["phonemes"][:-1]), steps, " ".join(best[0]),
                     f"{best[1]:.3f}"])  # fmt: skip
        figures.append(
            viz.seq2seq_attention(r["attention"], r["phonemes"], r["chars"],
                                  title=f"attention: {r['word']}")
        )  # fmt: skip
        figures.append(
            viz.beam_tree(r["beam_nodes"], r["labels"],
                          title=f"beam search of {r['word']}, size {r['beam_size']}")
        )  # fmt: skip
    text = [
        "Greedy decoding: each output phoneme's attention over the word's letters (rows: "
        "decoder steps, </s> last), the top phonemes of every step, and the beam search "
        f"(size {beam}) as a tree of the kept candidates (squares: finished)."
    ]
    table = {
        "columns": ["word", "greedy", f"top-{topk} per step", f"beam {beam} best", "log p"],
        "rows": rows,
    }
    return Section(title, text=text, table=table, figures=figures)
