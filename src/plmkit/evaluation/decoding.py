"""Decoding: greedy search and batched beam search, over any step function.

A *stepper* is what the search talks to; it hides the model::

    stepper.step(tokens)                  # tokens: (rows, t) prefixes → log-probs (rows, vocab)
    stepper.reorder(rows, source_side)    # keep these rows (LongTensor), in this order

``reorder`` is how the search tells the model which hypotheses live on: beam search re-ranks the
beams of each source every step (``source_side=False``: only target-side state such as the
self-attention :class:`~plmkit.models.attention.KeyValueCache` moves) and, when a whole source is
finished or when a source is first expanded into its beams, drops or repeats rows of the source
side too (``source_side=True``: encoder output, cross-attention keys/values, padding mask).
:class:`EncoderDecoderStepper` adapts :class:`~plmkit.models.transformer.TransformerModel`; a
decoder-only model needs a stepper without a source side.

Both searches run every hypothesis of every sentence in lock-step (one batched forward pass per
step) and drop sentences from the batch as soon as they are finished.

**Beam search** keeps the k best prefixes per sentence by total log-probability. Each step it
looks at the 2k best one-token extensions: those ending in EOS among the first k become finished
hypotheses, scored ``log P(Y|X) / lp(|Y|)``; the first k that do not end become the new beams
(2k candidates always hold k that do not end: each beam has only one EOS). A sentence is done when
it has k finished hypotheses (the criterion of fairseq) or reaches its maximum length (its live
beams are then finished with EOS). Its best finished hypothesis is the translation.

**Length penalty**: raw log-probabilities favour short outputs. ``LengthPenalty(style="gnmt")``
divides by GNMT's ``lp(Y) = ((5 + |Y|) / 6)^α`` (Wu et al., 2016; Vaswani et al. use α = 0.6 with
k = 4); ``style="simple"`` divides by ``|Y|^α`` (α = 1: the mean log-probability per token).
``|Y|`` counts the generated tokens including EOS; α = 0 switches the penalty off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from plmkit.data.collate import pad_sequences
from plmkit.data.parallel import encode_texts


class Stepper(Protocol):
    def step(self, tokens: Tensor) -> Tensor: ...

    def reorder(self, rows: Tensor, source_side: bool) -> None: ...


@dataclass
class LengthPenalty:
    """``gnmt``: ((5 + |Y|) / 6)^α; ``simple``: |Y|^α. Scores are log P / penalty."""

    alpha: float = 0.6
    style: str = "gnmt"

    def __post_init__(self) -> None:
        if self.style not in ("gnmt", "simple"):
            raise ValueError(f"length penalty style must be 'gnmt' or 'simple', not {self.style!r}")

    def __call__(self, length: int) -> float:
        if self.alpha == 0.0:
            return 1.0
        if self.style == "gnmt":
            return ((5.0 + length) / 6.0) ** self.alpha
        return float(length) ** self.alpha


@dataclass
class Hypothesis:
    """A finished output: its tokens (without BOS/EOS), log P and length-normalised score."""

    tokens: list[int]
    log_probability: float
    score: float


class EncoderDecoderStepper:
    """Adapts an encoder–decoder model (``encode``, ``start_decoding``, ``decode_step``,
    ``reorder_state``) to the searches; encodes the sources once."""

    def __init__(self, model: nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None,
                 *, use_cache: bool = True) -> None:
        self.model = model
        encoder_hidden_states = model.encode(input_ids, attention_mask)
        self.state = model.start_decoding(encoder_hidden_states, attention_mask,
                                          use_cache=use_cache)

    def step(self, tokens: Tensor) -> Tensor:
        return self.model.decode_step(tokens, self.state)

    def reorder(self, rows: Tensor, source_side: bool) -> None:
        self.model.reorder_state(self.state, rows, source_side=source_side)


def _limits(max_length: int | Sequence[int] | Tensor, batch: int) -> list[int]:
    if isinstance(max_length, int):
        return [max_length] * batch
    limits = [int(x) for x in max_length]
    if len(limits) != batch:
        raise ValueError(f"{len(limits)} maximum lengths for {batch} sentences")
    return limits


@torch.no_grad()
def greedy_search(stepper: Stepper, batch_size: int, *, bos_token_id: int, eos_token_id: int,
                  max_length: int | Sequence[int] | Tensor, device: torch.device | str = "cpu",
                  ) -> list[list[int]]:
    """The most probable next token at every step, for ``batch_size`` sentences at once.

    ``max_length``: the most tokens per output counting its EOS (one number or one per
    sentence), as in :func:`beam_search`: an output that reaches ``max_length - 1`` tokens stops
    there, where EOS would be forced. Returns each sentence's tokens without BOS and EOS.
    """
    limit = torch.tensor(_limits(max_length, batch_size), device=device)
    outputs: list[list[int]] = [[] for _ in range(batch_size)]
    active = torch.arange(batch_size, device=device)  # original index of each live row
    tokens = torch.full((batch_size, 1), bos_token_id, dtype=torch.long, device=device)
    step = 0
    while active.numel():
        ended = (tokens[:, -1] == eos_token_id if step
                 else torch.zeros_like(active, dtype=torch.bool))
        done = ended | (limit[active] - 1 <= step)
        if bool(done.any()):
            for row in done.nonzero().flatten().tolist():
                generated = tokens[row, 1:].tolist()
                outputs[int(active[row])] = generated[:-1] if ended[row] else generated
            keep = (~done).nonzero().flatten()
            if not keep.numel():
                break
            stepper.reorder(keep, source_side=True)
            active, tokens = active[keep], tokens[keep]
        next_tokens = stepper.step(tokens).argmax(dim=-1)
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
        step += 1
    return outputs


@torch.no_grad()
def beam_search(stepper: Stepper, batch_size: int, *, bos_token_id: int, eos_token_id: int,
                max_length: int | Sequence[int] | Tensor, beam_size: int = 4,
                length_penalty: LengthPenalty | None = None, num_return: int = 1,
                device: torch.device | str = "cpu") -> list[list[Hypothesis]]:
    """Batched beam search; returns, per sentence, its ``num_return`` best hypotheses.

    The stepper starts with one row per sentence; they are expanded here to ``beam_size`` rows.
    """
    if beam_size < 1:
        raise ValueError("beam_size must be at least 1")
    if not 1 <= num_return <= beam_size:
        raise ValueError("num_return must be between 1 and beam_size")
    penalty = length_penalty or LengthPenalty()
    limits = torch.tensor(_limits(max_length, batch_size), device=device)
    k = beam_size
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    sources = torch.arange(batch_size, device=device)  # original index of each live sentence
    stepper.reorder(sources.repeat_interleave(k), source_side=True)
    tokens = torch.full((batch_size * k, 1), bos_token_id, dtype=torch.long, device=device)
    # Only the first beam of each sentence is real at the start; the others are copies.
    scores = torch.full((batch_size, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    step = 0
    while sources.numel():
        live = sources.numel()
        log_probs = stepper.step(tokens)
        vocab = log_probs.size(-1)
        candidates = scores[:, :, None] + log_probs.view(live, k, vocab)
        at_limit = limits[sources] <= step + 1
        if bool(at_limit.any()):  # the last allowed token must be EOS
            forced = torch.full_like(candidates[at_limit], float("-inf"))
            forced[..., eos_token_id] = candidates[at_limit][..., eos_token_id]
            candidates[at_limit] = forced
        top_scores, top_index = candidates.view(live, k * vocab).topk(2 * k, dim=1)
        top_beams, top_tokens = top_index // vocab, top_index % vocab
        step += 1
        ends = top_tokens == eos_token_id
        # Finish the hypotheses that end among the first k candidates.
        finishing = (ends[:, :k] & torch.isfinite(top_scores[:, :k])).nonzero().tolist()
        for group, rank in finishing:
            source = int(sources[group])
            if len(finished[source]) >= k:
                continue
            row = group * k + int(top_beams[group, rank])
            log_p = float(top_scores[group, rank])
            finished[source].append(Hypothesis(tokens[row, 1:].tolist(), log_p,
                                               log_p / penalty(step)))
        # The first k candidates that do not end are the new beams.
        rank_order = torch.arange(2 * k, device=device).expand(live, 2 * k)
        chosen = rank_order.masked_fill(ends, 4 * k).topk(k, dim=1, largest=False).values
        scores = top_scores.gather(1, chosen)
        beams = top_beams.gather(1, chosen)
        rows = (torch.arange(live, device=device)[:, None] * k + beams).flatten()
        tokens = torch.cat([tokens[rows], top_tokens.gather(1, chosen).reshape(-1, 1)], dim=1)
        stepper.reorder(rows, source_side=False)
        done = torch.tensor([len(finished[int(s)]) >= k for s in sources], device=device)
        done |= at_limit
        if bool(done.any()):
            keep = (~done).nonzero().flatten()
            keep_rows = (keep[:, None] * k + torch.arange(k, device=device)).flatten()
            if keep_rows.numel():
                stepper.reorder(keep_rows, source_side=True)
            sources, scores, tokens = sources[keep], scores[keep], tokens[keep_rows]
    return [sorted(hyps, key=lambda h: -h.score)[:num_return] for hyps in finished]


@torch.no_grad()
def translate_batch(model: nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None,
                    *, beam_size: int = 1, length_penalty: LengthPenalty | None = None,
                    max_length: int | Sequence[int] | None = None, extra_length: int = 50,
                    use_cache: bool = True) -> list[list[int]]:
    """Translate a padded batch of source ids with an encoder–decoder model.

    ``beam_size`` 1 is greedy search. Without ``max_length`` each sentence may have up to its
    source length + ``extra_length`` tokens (the paper's rule), within the model's positions.
    Returns token ids without BOS/EOS.
    """
    config = model.config
    was_training = model.training
    model.eval()
    try:
        cap = config.max_position_embeddings  # the decoder has no positions beyond
        if max_length is None:
            lengths = (attention_mask.sum(dim=1) if attention_mask is not None
                       else torch.full((input_ids.size(0),), input_ids.size(1)))
            max_length = [min(int(n) + extra_length, cap) for n in lengths]
        else:
            max_length = [min(n, cap) for n in _limits(max_length, input_ids.size(0))]
        stepper = EncoderDecoderStepper(model, input_ids, attention_mask, use_cache=use_cache)
        common = dict(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                      max_length=max_length, device=input_ids.device)
        if beam_size == 1:
            return greedy_search(stepper, input_ids.size(0), **common)
        best = beam_search(stepper, input_ids.size(0), beam_size=beam_size,
                           length_penalty=length_penalty, **common)
        return [hyps[0].tokens if hyps else [] for hyps in best]
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------------------------
# Text in, text out
# --------------------------------------------------------------------------------------------
@dataclass
class TranslationReport:
    sentences: int = 0
    empty: int = 0
    truncated: int = 0

    def warning(self) -> str | None:
        if not self.truncated:
            return None
        return (f"{self.truncated:,} of {self.sentences:,} source sentences were longer than the "
                "model's maximum and were truncated")


@torch.no_grad()
def translate_texts(model: nn.Module, tokenizer: Any, texts: Sequence[str], *,
                    beam_size: int = 4, length_penalty: LengthPenalty | None = None,
                    batch_size: int = 32, max_length: int | None = None,
                    use_cache: bool = True) -> tuple[list[str], TranslationReport]:
    """Translate sentences; the i-th output translates the i-th input.

    An empty (or blank) input gives an empty output, so files stay aligned line by line.
    Sentences longer than the model's positions are cut (counted in the report). Batches hold
    sentences of similar length (sorted), which wastes less work on padding.
    """
    config = model.config
    device = next(model.parameters()).device
    report = TranslationReport(sentences=len(texts))
    outputs = [""] * len(texts)
    keep = config.max_position_embeddings - 1  # room for EOS
    wanted = [i for i, text in enumerate(texts) if text.strip()]
    report.empty = len(texts) - len(wanted)
    encoded = encode_texts(tokenizer, [texts[i] for i in wanted]) if wanted else []
    sources = []
    for ids in encoded:
        if len(ids) > keep:
            report.truncated += 1
        sources.append([*ids[:keep], config.eos_token_id])
    order = sorted(range(len(sources)), key=lambda j: len(sources[j]))
    for begin in range(0, len(order), batch_size):
        chunk = order[begin: begin + batch_size]
        input_ids = pad_sequences([sources[j] for j in chunk], config.pad_token_id).to(device)
        attention_mask = torch.zeros_like(input_ids)
        for row, j in enumerate(chunk):
            attention_mask[row, : len(sources[j])] = 1
        generated = translate_batch(model, input_ids, attention_mask, beam_size=beam_size,
                                    length_penalty=length_penalty, max_length=max_length,
                                    use_cache=use_cache)
        for j, ids in zip(chunk, generated):
            outputs[wanted[j]] = tokenizer.decode(ids)
    return outputs, report


def sacre_bleu(hypotheses: Sequence[str], references: Sequence[str], *,
               tokenize: str = "13a") -> tuple[float, str]:
    """sacreBLEU corpus BLEU (0–100) of detokenised text against one reference each, and the
    score's full description (n-gram precisions, brevity penalty, lengths) to quote beside it.

    ``tokenize``: sacreBLEU's tokeniser — ``13a`` (the WMT default, fine for German), ``zh`` for
    Chinese, ``char`` for Japanese or Korean, ``intl`` for mixed scripts. The one place plmkit
    computes BLEU: during training (dev BLEU) and after it (test BLEU) alike.
    """
    import sacrebleu

    if not hypotheses:
        return 0.0, "BLEU = 0.00 (no sentence)"
    bleu = sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize)
    return float(bleu.score), str(bleu)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], *,
                tokenize: str = "13a") -> float:
    """sacreBLEU corpus BLEU (0–100); see :func:`sacre_bleu`."""
    return sacre_bleu(hypotheses, references, tokenize=tokenize)[0]


def evaluate_bleu(model: nn.Module, tokenizer: Any, pairs: Sequence[tuple[str, str]], *,
                  beam_size: int = 4, length_penalty: LengthPenalty | None = None,
                  batch_size: int = 32, tokenize: str = "13a") -> dict[str, Any]:
    """sacreBLEU of the model's translations of the sources against the raw target sentences."""
    hypotheses, report = translate_texts(model, tokenizer, [s for s, _ in pairs],
                                         beam_size=beam_size, length_penalty=length_penalty,
                                         batch_size=batch_size)
    references = [t for _, t in pairs]
    bleu, signature = sacre_bleu(hypotheses, references, tokenize=tokenize)
    exact = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references))
    return {"bleu": bleu, "bleu_signature": signature, "sentences": len(pairs),
            "exact_match": exact / max(1, len(pairs)), "truncated": report.truncated,
            "hypotheses": hypotheses}


__all__ = [
    "EncoderDecoderStepper", "Hypothesis", "LengthPenalty", "Stepper", "TranslationReport",
    "beam_search", "corpus_bleu", "evaluate_bleu", "greedy_search", "sacre_bleu",
    "translate_batch", "translate_texts",
]
