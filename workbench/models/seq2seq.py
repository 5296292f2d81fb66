"""Encoder-decoder LSTM with additive (Bahdanau) attention, for grapheme-to-phoneme.

Encoder: character embedding -> bidirectional ``nn.LSTM``. Decoder: ``nn.LSTMCell`` fed the
previous phoneme's embedding and the attention context; the attention's query is the
decoder's previous hidden state (Bahdanau et al. 2015, eq. 6). The attention weights pass
through a :class:`workbench.HookPoint` as ``[batch, heads=1, query=1, key]`` per step, so a
recording holds ``attention.weights [batch, 1, steps, source]`` and :func:`workbench.intervene`
can replace them. The decoder's step loop is the time axis of ``cell.0.fwd.*``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from workbench.recorder import HookPoint

#: Target vocabulary ids every G2P model shares (then the phonemes).
PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


class AdditiveAttention(nn.Module):
    """``score(q, k) = v . tanh(W_q q + W_k k)``, softmax over unmasked keys."""

    def __init__(self, query: int, key: int, units: int) -> None:
        super().__init__()
        self.query = nn.Linear(query, units, bias=False)
        self.key = nn.Linear(key, units)
        self.score = nn.Linear(units, 1, bias=False)
        self.weights = HookPoint()

    def forward(
        self, q: torch.Tensor, keys: torch.Tensor, projected: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step.

        Parameters
        ----------
        q : [batch, query]
        keys : [batch, source, key]
        projected : [batch, source, units]
            ``self.key(keys)``, computed once per sequence.
        mask : [batch, source] bool
            True where a real character is.

        Returns
        -------
        context : [batch, key]
        alpha : [batch, source]
        """
        e = self.score(torch.tanh(projected + self.query(q)[:, None])).squeeze(-1)
        e = e.masked_fill(~mask, float("-inf"))
        b, s = e.shape
        alpha = self.weights(torch.softmax(e, dim=-1).view(b, 1, 1, s)).view(b, s)
        return (alpha[:, :, None] * keys).sum(1), alpha


@dataclass
class Encoded:
    """The encoder's output for a batch: keys, their projection, mask and the first state."""

    keys: torch.Tensor  # [batch, source, 2 * hidden]
    projected: torch.Tensor  # [batch, source, attn]
    mask: torch.Tensor  # [batch, source]
    state: tuple[torch.Tensor, torch.Tensor]  # decoder (h, c), each [batch, dec_hidden]


class G2P(nn.Module):
    """Characters -> phonemes: biLSTM encoder, LSTMCell decoder with additive attention.

    Parameters
    ----------
    src_vocab, tgt_vocab : int
        Character and phoneme vocabulary sizes (PAD = 0; the target's ``<s>`` = 2,
        ``</s>`` = 3).
    embed : int
        Character and phoneme embedding size.
    hidden : int
        Encoder units per direction.
    dec_hidden : int
        Decoder cell units.
    attn : int
        Attention units.
    dropout : float
    max_steps : int
        Most decoder steps when decoding without a target.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        embed: int = 64,
        hidden: int = 128,
        dec_hidden: int = 256,
        attn: int = 128,
        dropout: float = 0.0,
        max_steps: int = 32,
    ) -> None:
        super().__init__()
        self.max_steps = max_steps
        self.src_embed = nn.Embedding(src_vocab, embed, padding_idx=0)
        self.encoder = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, 2 * dec_hidden)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed, padding_idx=0)
        self.attention = AdditiveAttention(dec_hidden, 2 * hidden, attn)
        self.cell = nn.LSTMCell(embed + 2 * hidden, dec_hidden)
        self.proj = nn.Linear(dec_hidden + 2 * hidden, dec_hidden)
        self.head = nn.Linear(dec_hidden, tgt_vocab)
        self.drop = nn.Dropout(dropout)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> Encoded:
        """``src [batch, source]`` ids, ``lengths [batch]`` -> :class:`Encoded`."""
        x = self.drop(self.src_embed(src))
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h_n, _) = self.encoder(packed)
        keys, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        mask = torch.arange(src.shape[1], device=src.device)[None] < lengths[:, None].to(src.device)
        h, c = torch.tanh(self.bridge(torch.cat([h_n[0], h_n[1]], -1))).chunk(2, -1)
        return Encoded(keys, self.attention.key(keys), mask, (h.contiguous(), c.contiguous()))

    def step(self, prev: torch.Tensor, state, enc: Encoded):
        """One decoder step: ``prev [batch]`` ids -> ``(logits [batch, vocab], state, alpha)``."""
        h, c = state
        context, alpha = self.attention(h, enc.keys, enc.projected, enc.mask)
        x = torch.cat([self.drop(self.tgt_embed(prev)), context], -1)
        h, c = self.cell(x, (h, c))
        out = torch.tanh(self.proj(self.drop(torch.cat([h, context], -1))))
        return self.head(self.drop(out)), (h, c), alpha

    def forward(
        self,
        src: torch.Tensor,
        lengths: torch.Tensor,
        target: torch.Tensor | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Decoder logits for every step.

        Parameters
        ----------
        src : [batch, source] character ids (PAD = 0)
        lengths : [batch]
        target : [batch, steps] phoneme ids, optional
            Teacher forcing: step ``t`` is fed ``target[:, t - 1]`` (``<s>`` at step 0) and
            predicts ``target[:, t]``. Without it, greedy decoding feeds back the argmax.
        steps : int, optional
            Greedy decoding: the number of steps (default ``max_steps``; it stops early
            once every row has produced ``</s>``).

        Returns
        -------
        logits : [batch, steps, tgt_vocab]
        """
        enc = self.encode(src, lengths)
        b = src.shape[0]
        prev = torch.full((b,), BOS, dtype=torch.long, device=src.device)
        state, outs = enc.state, []
        n = target.shape[1] if target is not None else (steps or self.max_steps)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        for t in range(n):
            logits, state, _ = self.step(prev, state, enc)
            outs.append(logits)
            if target is not None:
                prev = target[:, t]
            else:
                prev = logits.argmax(-1)
                done = done | (prev == EOS)
                if steps is None and bool(done.all()):
                    break
        return torch.stack(outs, 1)


def decode(
    model: G2P, src: torch.Tensor, lengths: torch.Tensor, steps: int | None = None
) -> tuple[list[list[int]], torch.Tensor]:
    """Greedy decoding of a batch.

    Returns
    -------
    ids : list of list of int
        Phoneme ids per row, up to (without) ``</s>``.
    attention : [batch, steps, source]
        The attention of every step run (rows that ended early keep being decoded).
    """
    with torch.no_grad():
        enc = model.encode(src, lengths)
        b = src.shape[0]
        prev = torch.full((b,), BOS, dtype=torch.long)
        state, out, alphas = enc.state, [], []
        done = torch.zeros(b, dtype=torch.bool)
        for _ in range(steps or model.max_steps):
            logits, state, alpha = model.step(prev, state, enc)
            prev = logits.argmax(-1)
            out.append(prev)
            alphas.append(alpha)
            done = done | (prev == EOS)
            if bool(done.all()):
                break
    rows = torch.stack(out, 1).tolist()
    ids = [r[: r.index(EOS)] if EOS in r else r for r in rows]
    return ids, torch.stack(alphas, 1)


@dataclass
class Hypothesis:
    """One beam-search output: phoneme ids (without ``</s>``), total log-probability."""

    tokens: list[int]
    logprob: float
    finished: bool  # ended with ``</s>`` within the step limit


@dataclass
class Beam:
    """A beam search's outputs and its tree.

    Attributes
    ----------
    hypotheses : list of Hypothesis
        Finished ones, best first (the best unfinished one when none finished).
    nodes : list of dict
        The tree: every kept candidate as ``{"step", "token", "logprob", "parent",
        "finished"}``, ``parent`` the index of the node it extends (-1 at step 0).
    """

    hypotheses: list[Hypothesis]
    nodes: list[dict]

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]


def beam_search(
    model: G2P,
    src: torch.Tensor,
    lengths: torch.Tensor,
    beam: int = 4,
    max_steps: int | None = None,
) -> Beam:
    """Beam search of one word (``src [1, source]``), scores summed log-probabilities.

    Each step extends every live hypothesis by every phoneme or ``</s>`` (``<pad>``,
    ``<unk>`` and ``<s>`` excluded) and keeps the ``beam`` best candidates; a kept one that
    ends in ``</s>`` is finished. It stops when none is live, or when the best finished
    score is at least the best live one (a live score can only fall).

    Raises
    ------
    ValueError
        For ``beam < 1`` or a batch of more than one word.
    """
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam size must be an integer >= 1, got {beam!r}")
    if src.shape[0] != 1:
        raise ValueError("beam search takes one word at a time (src [1, source])")
    steps = max_steps or model.max_steps
    with torch.no_grad():
        enc = model.encode(src, lengths)
        live = [([], 0.0, -1)]  # tokens, logprob, node index
        state = enc.state
        nodes: list[dict] = []
        done: list[Hypothesis] = []
        for t in range(steps):
            k = len(live)
            rows = Encoded(
                enc.keys.expand(k, -1, -1),
                enc.projected.expand(k, -1, -1),
                enc.mask.expand(k, -1),
                state,
            )
            prev = torch.tensor([h[0][-1] if h[0] else BOS for h in live])
            logits, (h, c), _ = model.step(prev, state, rows)
            logp = torch.log_softmax(logits.double(), -1)
            logp[:, [PAD, UNK, BOS]] = -math.inf
            total = logp + torch.tensor([h_[1] for h_ in live], dtype=torch.float64)[:, None]
            flat = total.flatten()
            top = torch.topk(flat, min(beam, int(torch.isfinite(flat).sum()))).indices.tolist()
            keep, keep_rows = [], []
            for i in top:
                r, tok = divmod(i, logp.shape[1])
                tokens, lp, node = live[r][0] + [tok], float(flat[i]), len(nodes)
                nodes.append(
                    dict(step=t, token=tok, logprob=lp, parent=live[r][2], finished=tok == EOS)
                )
                if tok == EOS:
                    done.append(Hypothesis(tokens[:-1], lp, True))
                else:
                    keep.append((tokens, lp, node))
                    keep_rows.append(r)
            if not keep:
                break
            live = keep
            idx = torch.tensor(keep_rows)
            state = (h[idx], c[idx])
            if done and max(d.logprob for d in done) >= max(lp for _, lp, _ in live):
                break
    if not done:
        done = [Hypothesis(tokens, lp, False) for tokens, lp, _ in live]
    return Beam(sorted(done, key=lambda d: -d.logprob), nodes)
