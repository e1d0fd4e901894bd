"""GPT (Radford et al., 2018; GPT-2, 2019): a decoder-only causal language model.

Read like the seeds' GPT section:

* **Pre-training** is a one-directional language model: maximise Σ log P(w_i | w_1 … w_{i-1}).
  The model only ever looks left — every self-attention layer masks the future positions
  (the *causal* mask of :func:`plmkit.models.attention.attention_bias`) — so one forward pass
  over a block of text trains a next-token prediction at every position at once.
* **Input**: token embedding + learned position embedding (``wte`` + ``wpe``), dropout.
* **Blocks**: GPT-2's pre-LN Transformer decoder layer without cross-attention:
  ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``; a final LayerNorm (``ln_f``) closes the stack.
  (GPT-1 was post-LN like BERT; GPT-2 moved the LayerNorm to the input of each sub-block, which
  trains deeper stacks without warm-up tricks.)
* **Output**: the LM head is the token-embedding matrix itself (tied), so the same vectors read
  tokens in and write them out.
* **Fine-tuning** (GPT-1, §3.3): a task's input is rewritten into one token sequence —
  ``<start> text <extract>`` or ``<start> premise <delim> hypothesis <extract>`` — and the final
  state of the last token feeds one linear layer (:class:`GPTForSequenceClassification`, HF's
  ``score``).

Parameter names and the ``Conv1D`` layout (weights stored (in, out), as in OpenAI's TensorFlow
checkpoint) equal Hugging Face's ``modeling_gpt2.py``, so GPT-2 folders load both ways.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plmkit.config import FieldRules, config_from_dict, validate_fields
from plmkit.errors import PlmError
from plmkit.models.activations import ACTIVATIONS
from plmkit.models.attention import (KeyValueCache, attention_bias, heads_of_self_attention,
                                     merge_heads, scaled_dot_product_attention)
from plmkit.models.bert import PROBLEM_TYPES
from plmkit.models.dropout import Dropout
from plmkit.models.prepacked import packed_linear, packed_weights_of
from plmkit.models.pretrained import (HF_GENERIC_KEYS, MAX_LAYERS, PretrainedMixin,
                                      check_model_size, normalise_label_maps)


@dataclass
class GPTConfig:
    """GPT-2's hyper-parameters under GPT-2's own names (``n_embd``, ``n_layer`` …).

    The names are those of OpenAI's ``hparams.json`` and Hugging Face's ``GPT2Config``, so a
    ``config.json`` written by either loads here and ours loads there without translation.
    """

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # None → 4 · n_embd
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False
    bos_token_id: int | None = 50256
    eos_token_id: int | None = 50256
    pad_token_id: int | None = None
    # Sequence classification head
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    problem_type: str | None = None

    rules: ClassVar[FieldRules] = FieldRules(
        positive=("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner",
                  "layer_norm_epsilon", "num_labels"),
        non_negative=("initializer_range", "bos_token_id", "eos_token_id", "pad_token_id"),
        probabilities=("resid_pdrop", "embd_pdrop", "attn_pdrop"),
        choices={"activation_function": tuple(ACTIVATIONS), "problem_type": PROBLEM_TYPES},
        multiples=(("n_embd", "n_head"),),
        at_most={"n_layer": MAX_LAYERS},
    )

    def __post_init__(self) -> None:
        validate_fields(self, self.rules)
        if not self.scale_attn_weights or self.scale_attn_by_inverse_layer_idx:
            # Every GPT-2 checkpoint scales by 1/√d_k and nothing else, as the core does.
            raise PlmError("only GPT-2's 1/sqrt(d_k) attention scaling is supported",
                           field="scale_attn_weights")
        normalise_label_maps(self)

    def parameter_estimate(self) -> dict[str, int]:
        """Parameters of GPTLMHeadModel (head tied) by the field that scales them."""
        e, inner = self.n_embd, self.inner_size
        block = 4 * e * e + 2 * e * inner + 9 * e + inner  # c_attn, c_proj, MLP, two LayerNorms
        return {"vocab_size": self.vocab_size * e, "n_positions": self.n_positions * e,
                "n_layer": self.n_layer * block, "n_embd": 2 * e,
                "num_labels": self.num_labels * e}

    @property
    def inner_size(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


# minGPT's small family (nano/micro/mini) and the four released GPT-2 sizes.
GPT_SIZES: dict[str, dict[str, int]] = {
    "nano": dict(n_layer=3, n_head=3, n_embd=48),
    "micro": dict(n_layer=4, n_head=4, n_embd=128),
    "mini": dict(n_layer=6, n_head=6, n_embd=192),
    "baby": dict(n_layer=6, n_head=6, n_embd=384),  # nanoGPT's shakespeare_char model
    "small": dict(n_layer=12, n_head=12, n_embd=768),  # gpt2, 124M
    "medium": dict(n_layer=24, n_head=16, n_embd=1024),  # gpt2-medium, 350M
    "large": dict(n_layer=36, n_head=20, n_embd=1280),  # gpt2-large, 774M
    "xl": dict(n_layer=48, n_head=25, n_embd=1600),  # gpt2-xl, 1.5B
}


def gpt_config(size: str = "small", *, max_parameters: int | None = None,
               **overrides: Any) -> GPTConfig:
    """A named size from :data:`GPT_SIZES`, with any field overridden (e.g. ``vocab_size``);
    refused when the result is too big to build (:func:`check_model_size`)."""
    if size not in GPT_SIZES:
        raise PlmError(f"unknown model size {size!r}; choose one of {', '.join(GPT_SIZES)}",
                       field="size")
    values = {**GPT_SIZES[size], **overrides}
    vocab_size = values.get("vocab_size", GPTConfig.vocab_size)
    for key in ("bos_token_id", "eos_token_id"):  # GPT-2's <|endoftext|> is not in other vocabs
        if (key not in values and isinstance(vocab_size, int)
                and GPTConfig.__dataclass_fields__[key].default >= vocab_size):
            values[key] = None
    config = GPTConfig(**values)
    check_model_size(config, max_parameters=max_parameters)
    return config


# config.json keys of HF GPT-2 that we accept and ignore: the summary head of GPT2DoubleHeads,
# the long-gone n_ctx (always == n_positions), and generation settings.
GPT2_IGNORED_KEYS = (
    "n_ctx", "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
    "summary_first_dropout", "add_cross_attention", "task_specific_params", "attn_implementation",
    "_attn_implementation", "_attn_implementation_autoset",
)
# Names other configs use for the same fields (HF's attribute_map).
GPT2_ALIASES = {
    "hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
    "max_position_embeddings": "n_positions", "intermediate_size": "n_inner",
    "hidden_act": "activation_function", "layer_norm_eps": "layer_norm_epsilon",
}


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------
@dataclass
class GPTModelOutput:
    last_hidden_state: Tensor
    past_key_values: list[KeyValueCache] | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None  # per block: (batch, heads, query, key)


@dataclass
class CausalLMOutput:
    """``logits`` (batch, length, vocab); ``loss`` is the mean next-token cross-entropy."""

    loss: Tensor | None
    logits: Tensor
    past_key_values: list[KeyValueCache] | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    last_hidden_state: Tensor | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class SequenceClassifierOutput:
    loss: Tensor | None
    logits: Tensor
    last_hidden_state: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------
class Conv1D(nn.Module):
    """GPT-2's linear layer: y = x W + b with W stored as (in_features, out_features).

    OpenAI's original TensorFlow code wrote its projections as 1×1 convolutions, hence the name
    and the transposed layout; keeping both lets GPT-2 checkpoints load without any conversion.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        # at inference: through a copy packed once (plmkit.models.prepacked)
        out = packed_linear(x, self.weight.t(), self.bias, packed_weights_of(self))
        if out is not None:
            return out
        out = torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight)
        return out.view(*x.shape[:-1], self.weight.size(1))


def causal_bias(attention_mask: Tensor | None, dtype: torch.dtype, query_length: int,
                past_length: int, device: torch.device) -> tuple[Tensor | None, bool]:
    """The additive mask of causal self-attention, or ``(None, True)`` for the fused kernel.

    Without padding and without a cache, the fused kernel's own causal mask is the fastest path;
    one new token attending to its cache needs no mask at all (it may see every cached key).
    Only padding, or several new tokens after a cache, need the explicit (L × (past+L)) mask.
    """
    padded = attention_mask is not None and not bool(attention_mask.all())
    if not padded:
        if past_length == 0:
            return None, query_length > 1
        if query_length == 1:
            return None, False
        attention_mask = torch.ones(1, past_length + query_length, dtype=torch.long,
                                    device=device)
    return attention_bias(attention_mask, dtype, query_length=query_length, causal=True,
                          past_length=past_length), False


class GPTAttention(nn.Module):
    """Masked multi-head self-attention with GPT-2's fused ``c_attn`` (Q, K and V in one matrix).

    Not :class:`~plmkit.models.attention.MultiHeadAttention`: GPT-2 checkpoints store W^Q, W^K,
    W^V as one transposed ``c_attn`` matrix, so this module keeps that parameter and shares the
    core from the heads on (splitting, the key/value cache, scaled dot-product attention).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        self.attn_pdrop = config.attn_pdrop
        self.resid_dropout = Dropout(config.resid_pdrop)

    def forward(self, hidden_states: Tensor, bias: Tensor | None, is_causal: bool,
                cache: KeyValueCache | None = None,
                probabilities: list[Tensor] | None = None) -> Tensor:
        """``probabilities``: a list to append this layer's attention weights to (what the
        attention explorer draws); the fused kernel, which never forms them, runs otherwise."""
        queries, keys, values = heads_of_self_attention(
            *self.c_attn(hidden_states).split(self.n_embd, dim=2), self.n_head, cache)
        context, weights = scaled_dot_product_attention(
            queries, keys, values, bias, is_causal=is_causal,
            dropout=self.attn_pdrop if self.training else 0.0,
            return_probabilities=probabilities is not None)
        if probabilities is not None:
            probabilities.append(weights)
        return self.resid_dropout(self.c_proj(merge_heads(context)))


class GPTMLP(nn.Module):
    """Position-wise feed-forward network: c_proj(act(c_fc(x))), width 4·n_embd."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, config.inner_size)
        self.c_proj = Conv1D(config.inner_size, config.n_embd)
        self.act = ACTIVATIONS[config.activation_function]
        self.dropout = Dropout(config.resid_pdrop)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(hidden_states))))


class GPTBlock(nn.Module):
    """One pre-LN decoder block: x + Attn(LN₁(x)), then x + MLP(LN₂(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPTAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPTMLP(config)

    def forward(self, hidden_states: Tensor, bias: Tensor | None, is_causal: bool,
                cache: KeyValueCache | None = None,
                probabilities: list[Tensor] | None = None) -> Tensor:
        hidden_states = hidden_states + self.attn(self.ln_1(hidden_states), bias, is_causal, cache,
                                                  probabilities)
        return hidden_states + self.mlp(self.ln_2(hidden_states))


# --------------------------------------------------------------------------------------------
# Shared base: initialisation, config IO, embedding resize
# --------------------------------------------------------------------------------------------
class GPTPreTrainedModel(PretrainedMixin, nn.Module):
    config_class: ClassVar[type] = GPTConfig
    model_type: ClassVar[str] = "gpt2"
    base_model_prefix: ClassVar[str] = "transformer"

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config

    def init_weights(self) -> None:
        super().init_weights()
        # GPT-2: scale the residual projections by 1/√(2·n_layer) — two residual additions per
        # block — so the variance of the residual stream does not grow with depth.
        std = self.config.initializer_range / math.sqrt(2 * self.config.n_layer)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, std=std)

    # ------------------------------------------------------------------ config.json both ways
    def config_dict(self) -> dict[str, Any]:
        values = super().config_dict()
        if values.get("id2label") is None:
            for key in ("id2label", "label2id", "num_labels", "problem_type"):
                values.pop(key, None)
        else:
            values["id2label"] = {str(k): v for k, v in values["id2label"].items()}
        values["n_ctx"] = values["n_positions"]  # old transformers versions still read it
        values["tie_word_embeddings"] = True
        return values

    @classmethod
    def config_from_values(cls, values: dict[str, Any], path: Path, **overrides: Any):
        names = {f.name for f in dataclasses.fields(GPTConfig)}
        values = {GPT2_ALIASES.get(k, k): v for k, v in {**values, **overrides}.items()}
        ignore = tuple(k for k in (*HF_GENERIC_KEYS, *GPT2_IGNORED_KEYS) if k not in names)
        if "n_ctx" in values and "n_positions" not in values:
            values["n_positions"] = values["n_ctx"]
        return config_from_dict(GPTConfig, values, source=path, ignore=ignore)

    # ------------------------------------------------------------------ vocabulary growth
    def resize_token_embeddings(self, vocab_size: int) -> None:
        """Grow (or shrink) the vocabulary, e.g. to add GPT-1's start/delimiter/extract tokens.

        Existing rows are kept; new rows are drawn like the original initialisation.
        """
        base = self.get_base_model()
        old = base.wte
        if vocab_size == old.num_embeddings:
            return
        new = nn.Embedding(vocab_size, old.embedding_dim, device=old.weight.device,
                           dtype=old.weight.dtype)
        nn.init.normal_(new.weight, std=self.config.initializer_range)
        keep = min(vocab_size, old.num_embeddings)
        with torch.no_grad():
            new.weight[:keep] = old.weight[:keep]
        base.wte = new
        self.config.vocab_size = vocab_size
        self.tie_weights()

    def get_base_model(self) -> GPTModel:
        return self if isinstance(self, GPTModel) else getattr(self, self.base_model_prefix)


class GPTModel(GPTPreTrainedModel):
    """The decoder stack alone: (wte + wpe) → dropout → n_layer blocks → ln_f."""

    hf_architecture = "GPT2Model"

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(GPTBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.init_weights()

    def new_cache(self) -> list[KeyValueCache]:
        """One empty key/value cache per block, for incremental decoding."""
        return [KeyValueCache() for _ in self.h]

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None, token_type_ids: Tensor | None = None, *,
                past_key_values: list[KeyValueCache] | None = None, use_cache: bool = False,
                output_hidden_states: bool = False,
                output_attentions: bool = False) -> GPTModelOutput:
        """Run the stack over ``input_ids`` (batch, length).

        ``attention_mask`` (batch, past + length) marks real tokens with 1 and padding with 0.
        ``past_key_values`` holds the keys/values of earlier positions (from ``use_cache``);
        it is extended in place. Positions count from the end of the cache unless
        ``position_ids`` are given (left-padded batches pass ``cumsum(mask) - 1``).
        """
        batch, length = input_ids.shape
        past = past_key_values[0].length if past_key_values else 0
        if past + length > self.config.n_positions:
            raise PlmError(f"sequence of {past + length} tokens is longer than the model's context "
                           f"window n_positions={self.config.n_positions}; truncate it",
                           field="n_positions")
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=input_ids.device)[None]
        hidden = self.wte(input_ids) + self.wpe(position_ids)
        if token_type_ids is not None:  # GPT-2 embeds segment ids with the token table
            hidden = hidden + self.wte(token_type_ids)
        hidden = self.drop(hidden)
        bias, is_causal = causal_bias(attention_mask, hidden.dtype, length, past, hidden.device)
        caches = past_key_values
        if caches is None and use_cache:
            caches = self.new_cache()
        all_states: tuple[Tensor, ...] | None = (hidden,) if output_hidden_states else None
        attentions: list[Tensor] | None = [] if output_attentions else None
        for index, block in enumerate(self.h):
            hidden = block(hidden, bias, is_causal, caches[index] if caches else None, attentions)
            if all_states is not None:
                all_states += (hidden,)
        hidden = self.ln_f(hidden)
        if all_states is not None:  # HF's last entry is after ln_f
            all_states = all_states[:-1] + (hidden,)
        return GPTModelOutput(hidden, caches, all_states,
                              tuple(attentions) if attentions is not None else None)


def causal_lm_loss(logits: Tensor, labels: Tensor | None = None,
                   shift_labels: Tensor | None = None) -> Tensor:
    """Mean cross-entropy of next-token prediction; -100 marks positions without a target.

    ``labels`` are aligned with the inputs (HF's convention: position i predicts labels[i+1]);
    ``shift_labels`` are already the targets of each position (nanoGPT's ``x[1:]``), which
    spends no forward pass on a last position that has nothing to predict.
    """
    if shift_labels is None:
        assert labels is not None
        shift_labels = F.pad(labels[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                           shift_labels.reshape(-1), ignore_index=-100)


class GPTLMHeadModel(GPTPreTrainedModel):
    """GPT with its language-modelling head (tied to ``transformer.wte``)."""

    hf_architecture = "GPT2LMHeadModel"
    tied_weights = ("lm_head.weight",)

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.transformer = GPTModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        if hasattr(self, "lm_head"):
            self.lm_head.weight = self.transformer.wte.weight

    def new_cache(self) -> list[KeyValueCache]:
        return self.transformer.new_cache()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                labels: Tensor | None = None, *, shift_labels: Tensor | None = None,
                position_ids: Tensor | None = None, token_type_ids: Tensor | None = None,
                past_key_values: list[KeyValueCache] | None = None, use_cache: bool = False,
                output_hidden_states: bool = False, output_attentions: bool = False,
                logits_to_keep: int = 0) -> CausalLMOutput:
        """Logits of the next token at every position (or the last ``logits_to_keep``)."""
        out = self.transformer(input_ids, attention_mask, position_ids, token_type_ids,
                               past_key_values=past_key_values, use_cache=use_cache,
                               output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions)
        states = out.last_hidden_state
        if logits_to_keep:
            states = states[:, -logits_to_keep:]
        logits = self.lm_head(states)
        loss = None
        if labels is not None or shift_labels is not None:
            loss = causal_lm_loss(logits, labels, shift_labels)
        return CausalLMOutput(loss, logits, out.past_key_values, out.hidden_states,
                              out.last_hidden_state, out.attentions)


def last_token_index(input_ids: Tensor, attention_mask: Tensor | None,
                     pad_token_id: int | None) -> Tensor:
    """Index of each row's last real token (works for left and right padding)."""
    length = input_ids.size(1)
    if attention_mask is not None:
        real = attention_mask.to(torch.long)
    elif pad_token_id is not None:
        real = (input_ids != pad_token_id).to(torch.long)
    else:
        return torch.full((input_ids.size(0),), length - 1, dtype=torch.long,
                          device=input_ids.device)
    positions = torch.arange(length, device=input_ids.device)
    return (positions * real).argmax(-1)


class GPTForSequenceClassification(GPTPreTrainedModel):
    """GPT-1's classifier: the final state of the last token (``<extract>``) → linear ``score``.

    Because attention is causal, only the last position has read the whole input, so it plays
    the role BERT gives to [CLS]. Padding is found from ``attention_mask`` (or ``pad_token_id``),
    as HF does, so left- and right-padded batches both work.
    """

    hf_architecture = "GPT2ForSequenceClassification"
    head_prefixes = ("score.",)

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = GPTModel(config)
        self.score = nn.Linear(config.n_embd, config.num_labels, bias=False)
        nn.init.normal_(self.score.weight, std=config.initializer_range)

    def config_dict(self) -> dict[str, Any]:
        """Always name the labels (HF's LABEL_i when unnamed): HF sizes the head from id2label."""
        values = super().config_dict()
        if "id2label" not in values:
            values["id2label"] = {str(i): f"LABEL_{i}" for i in range(self.config.num_labels)}
            values["label2id"] = {f"LABEL_{i}": i for i in range(self.config.num_labels)}
        return values

    def lm_logits(self, hidden_states: Tensor) -> Tensor:
        """Next-token logits through the tied embeddings: GPT-1's auxiliary LM objective."""
        return F.linear(hidden_states, self.transformer.wte.weight)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                labels: Tensor | None = None, *, position_ids: Tensor | None = None,
                token_type_ids: Tensor | None = None,
                output_hidden_states: bool = False) -> SequenceClassifierOutput:
        out = self.transformer(input_ids, attention_mask, position_ids, token_type_ids,
                               output_hidden_states=output_hidden_states)
        last = last_token_index(input_ids, attention_mask, self.config.pad_token_id)
        pooled = out.last_hidden_state[torch.arange(input_ids.size(0), device=last.device), last]
        logits = self.score(pooled)
        loss = None
        if labels is not None:
            if self.config.problem_type == "regression" or self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss, logits, out.last_hidden_state, out.hidden_states)


def flops_per_token(config: GPTConfig, sequence_length: int) -> float:
    """Forward+backward FLOPs per token (≈ 6·N plus attention), as in the PaLM appendix."""
    h, layers = config.n_embd, config.n_layer
    matmul_params = layers * (4 * h * h + 2 * h * config.inner_size) + h * config.vocab_size
    return 6 * matmul_params + 12 * layers * h * sequence_length


__all__ = [
    "GPT_SIZES", "CausalLMOutput", "Conv1D", "GPTConfig", "GPTForSequenceClassification",
    "GPTLMHeadModel", "GPTModel", "GPTModelOutput", "SequenceClassifierOutput", "causal_bias",
    "causal_lm_loss", "flops_per_token", "gpt_config", "last_token_index",
]
