"""Text generation from a causal language model: greedy and sampled decoding with a KV cache.

A GPT writes one token at a time: run the prompt, turn the last position's logits into a
distribution, pick a token, append it, repeat. The choices made at each step are the usual ones,
applied in Hugging Face's order:

1. **repetition penalty** (Keskar et al., 2019, CTRL): logits of tokens already present are divided
   by ``penalty`` when positive and multiplied when negative, so repeats become less likely;
2. **temperature**: logits / T — below 1 sharpens, above 1 flattens; ``T = 0`` means greedy
   (always the arg-max);
3. **top-k**: keep only the k most likely tokens;
4. **top-p** (nucleus, Holtzman et al., 2019): keep the smallest set of most likely tokens whose
   probability reaches p;

then sample from what is left. Stop at ``max_new_tokens`` or when a stop token is drawn.

**KV cache**: without it every step re-runs the whole prefix (O(n²) work for n tokens); with it
each step feeds only the new token and attends to the keys/values kept from earlier steps
(:class:`plmkit.models.attention.KeyValueCache`). Both give the same tokens.

**Context window**: a model with learned positions cannot see more than ``n_positions`` tokens. A
longer prompt is cut from the left (with a message); when generation fills the window, decoding
continues over a sliding window of the last ``n_positions`` tokens, as nanoGPT does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from plmkit.errors import PlmError

Notify = Callable[[str], None]


def notify_stderr(message: str) -> None:
    print(f"plmkit: {message}", file=sys.stderr)


@dataclass
class GenerationConfig:
    """How to pick each next token. Invalid values raise :class:`PlmError` naming the field."""

    max_new_tokens: int = 50
    temperature: float = 1.0  # 0 → greedy
    top_k: int = 0  # 0 → off
    top_p: float = 1.0  # 1 → off
    repetition_penalty: float = 1.0  # 1 → off
    stop_tokens: tuple[int, ...] = ()
    use_cache: bool = True
    seed: int | None = None
    pad_token_id: int = 0  # written into finished rows of a batch

    def __post_init__(self) -> None:
        self.stop_tokens = tuple(int(t) for t in self.stop_tokens)
        if self.max_new_tokens < 0:
            raise PlmError(f"max_new_tokens must be ≥ 0, not {self.max_new_tokens}",
                           field="max_new_tokens")
        if not self.temperature >= 0:  # also catches NaN
            raise PlmError(f"temperature must be ≥ 0 (0 = greedy), not {self.temperature}",
                           field="temperature")
        if self.top_k < 0:
            raise PlmError(f"top_k must be ≥ 0 (0 = off), not {self.top_k}", field="top_k")
        if not 0 < self.top_p <= 1:
            raise PlmError(f"top_p must be in (0, 1], not {self.top_p}", field="top_p")
        if not self.repetition_penalty > 0:
            raise PlmError(f"repetition_penalty must be > 0 (1 = off), not "
                           f"{self.repetition_penalty}", field="repetition_penalty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


# --------------------------------------------------------------------------------------------
# Logit processing: one small function per idea
# --------------------------------------------------------------------------------------------
def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty on tokens marked in ``seen`` (batch, vocab) bool."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row; the rest become -inf."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to ≥ p."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probabilities = sorted_logits.softmax(-1)
    mass_before = probabilities.cumsum(-1) - probabilities  # mass of strictly better tokens
    drop_sorted = mass_before >= p  # the first token always has mass_before 0 < p: kept
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_tokens(logits: Tensor, seen: Tensor, config: GenerationConfig,
                generator: torch.Generator | None) -> Tensor:
    """Pick one token per row from last-position ``logits`` (batch, vocab)."""
    logits = apply_repetition_penalty(logits.float(), seen, config.repetition_penalty)
    if config.greedy:
        return logits.argmax(-1)
    logits = logits / config.temperature
    logits = top_p_filter(top_k_filter(logits, config.top_k), config.top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


# --------------------------------------------------------------------------------------------
# The decoding loop
# --------------------------------------------------------------------------------------------
def truncate_left(input_ids: Tensor, attention_mask: Tensor, window: int,
                  notify: Notify | None) -> tuple[Tensor, Tensor]:
    """Cut a prompt longer than the context window from the left, saying so."""
    length = input_ids.size(1)
    if length <= window:
        return input_ids, attention_mask
    if notify is not None:
        notify(f"prompt of {length} tokens is longer than the model's context window "
               f"({window}); keeping its last {window} tokens")
    return input_ids[:, -window:], attention_mask[:, -window:]


def _positions(attention_mask: Tensor) -> Tensor:
    """Position of each token counting real tokens only, so left padding starts rows at 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _context_window(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    window = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings",
                                                             None)
    if not window:
        raise PlmError("the model does not say its context window (config.n_positions)")
    return int(window)


@torch.no_grad()
def stream_generate(model: nn.Module, input_ids: Tensor | Sequence[int],
                    config: GenerationConfig | None = None, *,
                    attention_mask: Tensor | None = None,
                    notify: Notify | None = notify_stderr) -> Iterator[Tensor]:
    """Yield the next token of every row, step by step: a (batch,) tensor per step.

    ``input_ids`` is one prompt (a list of ids) or a (batch, length) tensor; batched prompts of
    different lengths must be *left*-padded with ``attention_mask`` marking the real tokens.
    Rows that drew a stop token yield ``config.pad_token_id`` afterwards; the stream ends when
    every row has stopped or after ``max_new_tokens`` steps. The model needs GPT's interface:
    ``model(ids, attention_mask=, position_ids=, past_key_values=, use_cache=, logits_to_keep=)``.
    """
    config = config or GenerationConfig()
    if not isinstance(input_ids, Tensor):
        input_ids = torch.tensor([list(input_ids)], dtype=torch.long)
    if input_ids.dim() != 2 or input_ids.size(1) == 0:
        raise PlmError("the prompt is empty: give at least one token", field="prompt")
    device = next(model.parameters()).device
    input_ids = input_ids.to(device)
    mask = (torch.ones_like(input_ids) if attention_mask is None
            else attention_mask.to(device=device, dtype=torch.long))
    window = _context_window(model)
    context, mask = truncate_left(input_ids, mask, window, notify)
    batch = context.size(0)
    vocab = model.config.vocab_size
    seen = torch.zeros(batch, vocab, dtype=torch.long, device=device)
    seen.scatter_add_(1, context, mask)
    seen = seen > 0
    stops = torch.tensor(config.stop_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    generator = None
    if config.seed is not None and not config.greedy:
        generator = torch.Generator(device=device).manual_seed(config.seed)
    was_training = model.training
    model.eval()
    try:
        cache = None
        step_ids, step_mask = context, mask
        for _ in range(config.max_new_tokens):
            if config.use_cache and cache is not None:
                positions = _positions(mask)[:, -step_ids.size(1):]
                out = model(step_ids, attention_mask=mask, position_ids=positions,
                            past_key_values=cache, use_cache=True, logits_to_keep=1)
            else:  # first step, or no cache: run the whole (windowed) context
                out = model(context, attention_mask=mask, position_ids=_positions(mask),
                            use_cache=config.use_cache, logits_to_keep=1)
                cache = out.past_key_values
            chosen = next_tokens(out.logits[:, -1], seen, config, generator)
            chosen = torch.where(finished, torch.full_like(chosen, config.pad_token_id), chosen)
            yield chosen
            if stops.numel():
                finished |= torch.isin(chosen, stops)
                if bool(finished.all()):
                    return
            seen[torch.arange(batch, device=device), chosen] |= ~finished
            context = torch.cat([context, chosen[:, None]], dim=1)
            mask = torch.cat([mask, (~finished).long()[:, None]], dim=1)
            step_ids = chosen[:, None]
            if context.size(1) > window:  # slide the window: recompute over the last tokens
                context, mask = context[:, -window:], mask[:, -window:]
                cache = None
    finally:
        model.train(was_training)


def stream_tokens(model: nn.Module, prompt_ids: Sequence[int],
                  config: GenerationConfig | None = None, *,
                  notify: Notify | None = notify_stderr) -> Iterator[int]:
    """Generate from one prompt, yielding token ids as they are chosen (stop tokens excluded)."""
    config = config or GenerationConfig()
    stops = set(config.stop_tokens)
    for chosen in stream_generate(model, prompt_ids, config, notify=notify):
        token = int(chosen[0])
        if token in stops:
            return
        yield token


def generate(model: nn.Module, input_ids: Tensor | Sequence[int],
             config: GenerationConfig | None = None, *, attention_mask: Tensor | None = None,
             notify: Notify | None = notify_stderr, **overrides: Any) -> Tensor:
    """The prompt(s) followed by the generated tokens: (batch, prompt + new) long tensor.

    Keyword overrides build the config, e.g. ``generate(model, ids, temperature=0,
    max_new_tokens=20)``. The prompt part is as given (before any left truncation).
    """
    if config is None:
        config = GenerationConfig(**overrides)
    elif overrides:
        config = GenerationConfig(**{**config.__dict__, **overrides})
    if not isinstance(input_ids, Tensor):
        input_ids = torch.tensor([list(input_ids)], dtype=torch.long)
    steps = list(stream_generate(model, input_ids, config, attention_mask=attention_mask,
                                 notify=notify))
    if not steps:
        return input_ids.clone()
    new = torch.stack(steps, dim=1).to(input_ids.device)
    return torch.cat([input_ids, new], dim=1)


__all__ = [
    "GenerationConfig", "Notify", "apply_repetition_penalty", "generate", "next_tokens",
    "notify_stderr", "stream_generate", "stream_tokens", "top_k_filter", "top_p_filter",
    "truncate_left",
]
