"""Decode one typed word with a grapheme-to-phoneme model: greedy, top-k, beam, what-if.

Everything a user types is checked here and refused with one line naming the problem and
the fix (:class:`AttentionInputError`). The Attention page, the notebook widget
(``workbench.show(decode_word(...))``) and the report section
(:func:`workbench.reports.attention_section`) all use these results.
"""

from __future__ import annotations

import torch

MAX_CHARS = 24  # longest word the page decodes (the training words' longest)
MAX_BEAM = 16
MAX_TOPK = 10


class AttentionInputError(ValueError):
    """Input the page cannot decode; the message is the one line shown."""


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


def _greedy(bundle, word: str, topk: int = 1, force: tuple[int, int] | None = None) -> dict:
    """Greedy decoding of a checked word; ``force = (step, id)`` emits ``id`` at ``step``.

    Returns ``{"ids", "attention", "topk"}``: output ids (``</s>`` last when reached),
    the attention ``[steps, source]`` (lists) and the top-k ``(phoneme, probability)`` of
    every step (the model's own distribution, also at a forced step).
    """
    from workbench.models.seq2seq import BOS, EOS

    model, phones = bundle.model, bundle.config["phonemes"]
    src = torch.tensor([bundle.tokenizer.encode(list(word))])
    lengths = torch.tensor([len(word)])
    with torch.no_grad():
        enc = model.encode(src, lengths)
        prev, state = torch.tensor([BOS]), enc.state
        out, attn, top = [], [], []
        for t in range(model.max_steps):
            logits, state, alpha = model.step(prev, state, enc)
            probs = torch.softmax(logits[0], -1)
            p, i = probs.topk(topk)
            top.append([(phones[j], float(q)) for j, q in zip(i.tolist(), p.tolist(), strict=True)])
            prev = logits.argmax(-1)
            if force is not None and t == force[0]:
                prev = torch.tensor([force[1]])
            out.append(int(prev))
            attn.append(alpha[0].tolist())
            if int(prev) == EOS:
                break
    return {"ids": out, "attention": attn, "topk": top}


def decode_word(bundle, word, beam=4, topk=3) -> dict:
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
    from workbench.models.seq2seq import beam_search

    word = check_word(bundle, word)
    beam = _int(beam, "beam size", 1, MAX_BEAM)
    topk = _int(topk, "top-k", 1, MAX_TOPK)
    phones = bundle.config["phonemes"]
    greedy = _greedy(bundle, word, topk)
    src = torch.tensor([bundle.tokenizer.encode(list(word))])
    with torch.no_grad():
        result = beam_search(bundle.model, src, torch.tensor([len(word)]), beam=beam)
    return {
        "word": word,
        "chars": list(word),
        "phonemes": [phones[i] for i in greedy["ids"]],
        "attention": greedy["attention"],
        "topk": greedy["topk"],
        "beam": [([phones[i] for i in h.tokens], h.logprob, h.finished) for h in result.hypotheses],
        "beam_size": beam,
        "beam_nodes": result.nodes,
        "labels": list(phones),
    }


def what_if(bundle, word, step=None, phoneme=None) -> dict:
    """Greedy re-decoding of an edited word, optionally forcing ``phoneme`` at ``step``.

    Parameters
    ----------
    word : str
        The (edited) input word.
    step : int or None
        Decoder step to force (0 = the first phoneme); None or "" forces nothing.
    phoneme : str or None
        The phoneme (or ``</s>``) emitted at ``step``; the steps after it are decoded
        greedily from it.

    Returns
    -------
    dict
        ``word``, ``chars``, ``phonemes`` (``</s>`` last when reached), ``attention
        [steps, source]``, ``forced`` (the step or None) and ``original`` (the unforced
        greedy phonemes of the word).
    """
    from workbench.models.seq2seq import SPECIALS

    word = check_word(bundle, word)
    phones = bundle.config["phonemes"]
    plain = _greedy(bundle, word)
    original = [phones[i] for i in plain["ids"]]
    no_step = step is None or (isinstance(step, str) and not step.strip())
    no_phone = phoneme is None or (isinstance(phoneme, str) and not phoneme.strip())
    if no_step and no_phone:
        return {"word": word, "chars": list(word), "phonemes": original,
                "attention": plain["attention"], "forced": None, "original": original}  # fmt: skip
    if no_step or no_phone:
        raise AttentionInputError(
            "to force an output, give both the step and the phoneme (or clear both)"
        )
    t = _int(step, "step", 0, len(original) - 1)
    name = phoneme.strip().upper() if isinstance(phoneme, str) else ""
    allowed = [p for p in phones if p not in SPECIALS[:3]]
    if name.lower() == "</s>":
        name = "</s>"
    if name not in allowed:
        raise AttentionInputError(
            f"{phoneme!r} is not one of the model's phonemes; use ARPAbet without stress "
            f"digits, e.g. {', '.join(allowed[1:6])} (or </s> to end)"
        )
    forced = _greedy(bundle, word, force=(t, phones.index(name)))
    return {
        "word": word,
        "chars": list(word),
        "phonemes": [phones[i] for i in forced["ids"]],
        "attention": forced["attention"],
        "forced": t,
        "original": original,
    }


#: Methods "explain this output token" offers (registry names), and their bounds.
EXPLAIN_METHODS = ("integrated_gradients", "occlusion", "lrp", "saliency")
MAX_IG_STEPS = 256


def explain_output(bundle, word, step, methods=("integrated_gradients", "occlusion", "lrp"),
                   n_steps=32) -> dict:  # fmt: skip
    """Explain the greedy output phoneme at decoder ``step`` over the source characters.

    The word is decoded greedily; the model is then run teacher-forced on that output (so
    every perturbed input decodes the same steps) and step ``step``'s logit of its greedy
    phoneme is explained with each method (:class:`workbench.OutputStep`).

    Parameters
    ----------
    word : str
        The input word (checked as in :func:`check_word`).
    step : int
        Decoder step of the greedy output (0 = the first phoneme; ``</s>`` is a step too).
    methods : sequence of str
        Names from :data:`EXPLAIN_METHODS`.
    n_steps : int
        Integrated gradients' steps, 1 to :data:`MAX_IG_STEPS`.

    Returns
    -------
    dict
        ``word``, ``chars``, ``phonemes`` (greedy, ``</s>`` last when reached), ``step``,
        ``phoneme`` (the explained output) and ``explanations`` (method name ->
        :class:`workbench.Explanation`, ``attributions [1, source]``).
    """
    from workbench.explainers import OutputStep, explain

    word = check_word(bundle, word)
    if isinstance(methods, str):
        methods = [methods]
    methods = list(dict.fromkeys(methods or []))
    if not methods:
        raise AttentionInputError(f"choose at least one method: {', '.join(EXPLAIN_METHODS)}")
    bad = [m for m in methods if m not in EXPLAIN_METHODS]
    if bad:
        raise AttentionInputError(
            f"unknown method {bad[0]!r}; choose from {', '.join(EXPLAIN_METHODS)}"
        )
    n_steps = _int(n_steps, "integrated gradients steps", 1, MAX_IG_STEPS)
    phones = bundle.config["phonemes"]
    ids = _greedy(bundle, word)["ids"]
    t = _int(step, "step", 0, len(ids) - 1)
    src = torch.tensor([bundle.tokenizer.encode(list(word))])
    args = (torch.tensor([len(word)]), torch.tensor([ids]))
    out = {}
    for m in methods:
        settings = {"n_steps": n_steps} if m == "integrated_gradients" else {}
        out[m] = explain(bundle.model, src, OutputStep(t, ids[t]), m, forward_args=args,
                         embedding="src_embed", tokens=[list(word)], **settings)  # fmt: skip
    return {
        "word": word,
        "chars": list(word),
        "phonemes": [phones[i] for i in ids],
        "step": t,
        "phoneme": phones[ids[t]],
        "explanations": out,
    }
