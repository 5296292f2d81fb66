"""The Attention page's computation: decode one word with an encoder-decoder, bounded input.

Everything a user types is checked here and refused with one line naming the problem and
the fix (:class:`AttentionInputError`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

MAX_CHARS = 24  # longest word the page decodes (the training words' longest)
MAX_BEAM = 16
MAX_TOPK = 10


class AttentionInputError(ValueError):
    """Input the page cannot decode; the message is the one line shown."""


def is_seq2seq(path: Path) -> bool:
    """Whether the checkpoint folder holds an encoder-decoder (``kind`` ``g2p``)."""
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("kind") == "g2p"
    except (OSError, ValueError):
        return False


def models(ctx) -> dict[str, Path]:
    """Encoder-decoder checkpoints for the page: the served ones, else the shipped ``g2p``."""
    found = {n: p for n, p in ctx.models.items() if is_seq2seq(p)}
    if found:
        return found
    from workbench.models.checkpoint import CheckpointError, shipped

    try:
        return {"g2p": shipped("g2p")}
    except CheckpointError:
        return {}


def _int(value, what: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AttentionInputError(f"{what} must be a whole number from {low} to {high}") from None
    if isinstance(value, float) and not float(value).is_integer():
        raise AttentionInputError(f"{what} must be a whole number from {low} to {high}")
    if not low <= number <= high:
        raise AttentionInputError(f"{what} {number} is out of range: choose {low} to {high}")
    return number


def check_word(bundle, word) -> str:
    """The word lower-cased and stripped, or :class:`AttentionInputError`."""
    word = (word or "").strip().lower() if isinstance(word, str) else ""
    if not word:
        raise AttentionInputError("type a word (letters a-z and apostrophes), e.g. 'workbench'")
    if len(word) > MAX_CHARS:
        raise AttentionInputError(
            f"the word has {len(word)} characters; the model reads at most {MAX_CHARS}"
        )
    alphabet = set(bundle.tokenizer.vocab[2:])
    bad = sorted({c for c in word if c not in alphabet})
    if bad:
        shown = " ".join(repr(c) for c in bad[:5])
        raise AttentionInputError(
            f"{shown} {'is' if len(bad) == 1 else 'are'} not in the model's alphabet; use "
            "letters a-z and apostrophes only"
        )
    return word


def analyse(bundle, word, beam=4, topk=3) -> dict:
    """Greedy decoding with its attention, top-k per step, and the beam search of one word.

    Returns
    -------
    dict
        ``word``, ``chars`` (source tokens), ``phonemes`` (greedy output, ``</s>`` last),
        ``attention [steps, source]`` (list of lists), ``topk`` (per step a list of
        ``(phoneme, probability)``), ``beam`` (list of ``(phonemes, logprob, finished)``),
        ``beam_size``, ``beam_nodes`` (the tree, see
        :class:`~workbench.models.seq2seq.Beam`) and ``labels`` (phoneme of every id).
    """
    from workbench.models.seq2seq import BOS, EOS, beam_search

    word = check_word(bundle, word)
    beam = _int(beam, "beam size", 1, MAX_BEAM)
    topk = _int(topk, "top-k", 1, MAX_TOPK)
    model, phones = bundle.model, bundle.config["phonemes"]
    src = torch.tensor([bundle.tokenizer.encode(list(word))])
    lengths = torch.tensor([len(word)])
    with torch.no_grad():
        enc = model.encode(src, lengths)
        prev, state = torch.tensor([BOS]), enc.state
        out, attn, top = [], [], []
        for _ in range(model.max_steps):
            logits, state, alpha = model.step(prev, state, enc)
            probs = torch.softmax(logits[0], -1)
            p, i = probs.topk(topk)
            top.append([(phones[j], float(q)) for j, q in zip(i.tolist(), p.tolist(), strict=True)])
            prev = logits.argmax(-1)
            out.append(int(prev))
            attn.append(alpha[0].tolist())
            if int(prev) == EOS:
                break
        result = beam_search(model, src, lengths, beam=beam)
    return {
        "word": word,
        "chars": list(word),
        "phonemes": [phones[i] for i in out],
        "attention": attn,
        "topk": top,
        "beam": [([phones[i] for i in h.tokens], h.logprob, h.finished) for h in result.hypotheses],
        "beam_size": beam,
        "beam_nodes": result.nodes,
        "labels": list(phones),
    }
