"""The original encoder–decoder Transformer (Vaswani et al., 2017, "Attention Is All You Need").

Read like the paper's Figure 1, bottom to top:

* **Input embeddings**: a token embedding multiplied by √d_model (so that it is not drowned by the
  positional encoding, whose entries lie in [-1, 1]) plus a **positional encoding** — the paper's
  sinusoids ``PE(pos, 2i) = sin(pos / 10000^(2i/d))``, ``PE(pos, 2i+1) = cos(pos / 10000^(2i/d))``
  or, as an option, learned position embeddings — then dropout (:class:`TransformerEmbeddings`).
* **Encoder**: N identical layers, each multi-head self-attention then a position-wise
  feed-forward network ``FFN(x) = max(0, x W₁ + b₁) W₂ + b₂``. Each sub-layer is wrapped as
  ``LayerNorm(x + Dropout(Sublayer(x)))`` (post-LN, the paper) or, with ``norm_first``,
  ``x + Dropout(Sublayer(LayerNorm(x)))`` (pre-LN, which trains deep stacks without warm-up
  trouble and needs a final LayerNorm on each stack).
* **Decoder**: N layers of *masked* self-attention (position i sees positions ≤ i only, so the
  model cannot peek at the word it must predict), **encoder–decoder attention** (queries from the
  decoder, keys and values from the encoder output) and the FFN.
* **Output**: a linear layer to the vocabulary and a softmax. The paper shares one matrix between
  the source embedding, the target embedding and this pre-softmax projection (section 3.4):
  ``share_embeddings`` and ``tie_output`` switch these on (a joint source/target vocabulary is
  what makes the first one meaningful).

Incremental decoding keeps, per decoder layer, a :class:`~plmkit.models.attention.KeyValueCache` of
the self-attention keys/values of the tokens already produced, and the encoder keys/values of the
cross-attention projected once per source sentence (:meth:`TransformerModel.start_decoding`).

Attention is the one core of :mod:`plmkit.models.attention`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from plmkit.config import FieldRules, validate_fields
from plmkit.errors import PlmError
from plmkit.models.activations import ACTIVATIONS
from plmkit.models.attention import KeyValueCache, MultiHeadAttention, attention_bias
from plmkit.models.dropout import Dropout
from plmkit.models.prepacked import linear
from plmkit.models.pretrained import MAX_LAYERS, PretrainedMixin, check_model_size


@dataclass
class TransformerConfig:
    """Sizes and switches of the encoder–decoder Transformer (names from the paper).

    The token ids are those of the (joint) vocabulary the model was trained with: the decoder
    starts from ``bos_token_id`` and a translation ends at ``eos_token_id``.
    """

    vocab_size: int = 32000
    d_model: int = 512
    num_heads: int = 8
    d_ff: int = 2048
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dropout: float = 0.1            # P_drop: on every sub-layer output and on the embedding sums
    attention_dropout: float = 0.0  # on the attention probabilities (not in the paper)
    activation_dropout: float = 0.0  # inside the FFN, after the ReLU (not in the paper)
    activation: str = "relu"
    max_position_embeddings: int = 256
    positional_encoding: str = "sinusoidal"  # or "learned"
    norm_first: bool = False        # False: post-LN as in the paper; True: pre-LN
    share_embeddings: bool = True   # one embedding matrix for source and target tokens
    tie_output: bool = True         # the pre-softmax projection is the target embedding matrix
    scale_embeddings: bool = True   # multiply token embeddings by √d_model
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int = 3
    source_lang: str = ""
    target_lang: str = ""

    rules: ClassVar[FieldRules] = FieldRules(
        positive=("vocab_size", "d_model", "num_heads", "d_ff", "num_encoder_layers",
                  "num_decoder_layers", "max_position_embeddings", "layer_norm_eps"),
        probabilities=("dropout", "attention_dropout", "activation_dropout"),
        choices={"activation": tuple(ACTIVATIONS),
                 "positional_encoding": ("sinusoidal", "learned")},
        multiples=(("d_model", "num_heads"),),
        token_ids=("pad_token_id", "bos_token_id", "eos_token_id"),
        at_most={"num_encoder_layers": MAX_LAYERS, "num_decoder_layers": MAX_LAYERS},
    )

    def __post_init__(self) -> None:
        validate_fields(self, self.rules)

    def parameter_estimate(self) -> dict[str, int]:
        """Parameters of TransformerModel by the field that scales them."""
        d, ff = self.d_model, self.d_ff
        tables = 1 + (not self.share_embeddings) + (not self.tie_output)
        learned = self.positional_encoding == "learned"
        return {"vocab_size": tables * self.vocab_size * d,
                "max_position_embeddings": 2 * self.max_position_embeddings * d * learned,
                # self-attention (and cross-attention) with W^O, the FFN, a LayerNorm each
                "num_encoder_layers": self.num_encoder_layers * (4 * d * d + 2 * d * ff + 9 * d
                                                                 + ff),
                "num_decoder_layers": self.num_decoder_layers * (8 * d * d + 2 * d * ff + 15 * d
                                                                 + ff),
                "d_model": 4 * d * self.norm_first}


# Named sizes. "base" and "big" are the paper's Table 3; the others fit a 2-core CPU.
TRANSFORMER_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=64, num_heads=4, d_ff=256, num_encoder_layers=2, num_decoder_layers=2),
    "mini": dict(d_model=128, num_heads=4, d_ff=512, num_encoder_layers=2, num_decoder_layers=2),
    "small": dict(d_model=256, num_heads=4, d_ff=1024, num_encoder_layers=3,
                  num_decoder_layers=3),
    "medium": dict(d_model=512, num_heads=8, d_ff=2048, num_encoder_layers=3,
                   num_decoder_layers=3),
    "base": dict(d_model=512, num_heads=8, d_ff=2048, num_encoder_layers=6, num_decoder_layers=6,
                 dropout=0.1),
    "big": dict(d_model=1024, num_heads=16, d_ff=4096, num_encoder_layers=6,
                num_decoder_layers=6, dropout=0.3),
}


def transformer_config(size: str = "base", *, max_parameters: int | None = None,
                       **overrides: Any) -> TransformerConfig:
    """A named size of :data:`TRANSFORMER_SIZES` (``"base"``: the paper's), fields overridden;
    refused when the result is too big to build (:func:`check_model_size`)."""
    if size not in TRANSFORMER_SIZES:
        raise PlmError(f"unknown model size {size!r}; choose one of {', '.join(TRANSFORMER_SIZES)}",
                       field="size")
    config = TransformerConfig(**{**TRANSFORMER_SIZES[size], **overrides})
    check_model_size(config, max_parameters=max_parameters)
    return config


# --------------------------------------------------------------------------------------------
# Outputs and decoding state
# --------------------------------------------------------------------------------------------
@dataclass
class Seq2SeqOutput:
    """``logits`` is (batch, target_length, vocab), or (labelled positions, vocab) when labels
    are given: the loss needs only the positions that carry a label, so only those are projected
    onto the vocabulary. ``loss`` is label-smoothed; ``nll_loss`` is the plain cross-entropy per
    target token (what perplexity is taken from)."""

    loss: Tensor | None
    logits: Tensor
    nll_loss: Tensor | None = None
    encoder_last_hidden_state: Tensor | None = None
    # with ``output_attentions``: per layer (batch, heads, query, key), as Hugging Face names them
    encoder_attentions: tuple[Tensor, ...] | None = None
    decoder_attentions: tuple[Tensor, ...] | None = None
    cross_attentions: tuple[Tensor, ...] | None = None


@dataclass
class DecoderState:
    """What incremental decoding carries from one step to the next.

    ``self_attention``: one cache per decoder layer (grows by one position per step).
    ``cross_attention``: the encoder keys/values of each layer, projected once per source.
    ``encoder_bias``: the additive padding mask of the source, for cross-attention.
    """

    self_attention: list[KeyValueCache]
    cross_attention: list[tuple[Tensor, Tensor]]
    encoder_bias: Tensor | None
    encoder_hidden_states: Tensor
    encoder_attention_mask: Tensor | None = None
    steps: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def past_length(self) -> int:
        return self.self_attention[0].length if self.self_attention else self.steps


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------
def sinusoidal_positions(length: int, d_model: int, offset: int = 0) -> Tensor:
    """The paper's PE: sin on even dimensions, cos on odd ones, wavelengths 2π … 10000·2π.

    Each dimension is a sinusoid of a different frequency, so PE(pos + k) is a linear function
    of PE(pos): relative offsets are easy for attention to pick up.
    """
    positions = torch.arange(offset, offset + length, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                      * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(positions * rates)
    table[:, 1::2] = torch.cos(positions * rates[: d_model // 2])
    return table


class TransformerEmbeddings(nn.Module):
    """token_embedding · √d_model + positional encoding, then dropout.

    The token table is passed in (not owned) because source and target may share one.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.scale = math.sqrt(config.d_model) if config.scale_embeddings else 1.0
        self.max_positions = config.max_position_embeddings
        self.learned = config.positional_encoding == "learned"
        if self.learned:
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.d_model)
        else:
            # A buffer, not a parameter: not trained and not saved (it is a formula).
            self.register_buffer("positional_encoding",
                                 sinusoidal_positions(config.max_position_embeddings,
                                                      config.d_model),
                                 persistent=False)
        self.dropout = Dropout(config.dropout)

    def forward(self, input_ids: Tensor, token_embeddings: nn.Embedding,
                past_length: int = 0) -> Tensor:
        length = input_ids.size(1)
        end = past_length + length
        if end > self.max_positions:
            raise PlmError(f"sequence of {end} tokens is longer than the model's "
                           f"max_position_embeddings ({self.max_positions}); truncate it",
                           field="max_position_embeddings")
        embeddings = token_embeddings(input_ids) * self.scale
        if self.learned:
            positions = torch.arange(past_length, end, device=input_ids.device)
            embeddings = embeddings + self.position_embeddings(positions)
        else:
            embeddings = embeddings + self.positional_encoding[past_length:end].to(
                embeddings.dtype)
        return self.dropout(embeddings)


# --------------------------------------------------------------------------------------------
# Sub-layers
# --------------------------------------------------------------------------------------------
class AttentionSublayer(nn.Module):
    """Multi-head attention and its output projection W^O: MultiHead(Q,K,V) = Concat(heads)·W^O."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(config.d_model, config.num_heads,
                                            dropout=config.attention_dropout)
        self.output = nn.Linear(config.d_model, config.d_model)

    def forward(self, hidden_states: Tensor, bias: Tensor | None = None,
                probabilities: list[Tensor] | None = None, **kwargs: Any) -> Tensor:
        """``probabilities``: a list to append the attention weights to (only then are they
        formed; the fused kernel runs otherwise)."""
        attended = self.attention(hidden_states, bias,
                                  return_probabilities=probabilities is not None, **kwargs)
        if probabilities is not None:
            probabilities.append(attended.probabilities)
        return linear(self.output, attended.context)


class FeedForward(nn.Module):
    """FFN(x) = max(0, x·W₁ + b₁)·W₂ + b₂, the same at every position (a 1×1 convolution)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.linear1 = nn.Linear(config.d_model, config.d_ff)
        self.linear2 = nn.Linear(config.d_ff, config.d_model)
        self.activation_name = config.activation
        self.dropout = Dropout(config.activation_dropout)

    def forward(self, hidden_states: Tensor) -> Tensor:
        # (at inference the activation is fused into the first matrix multiply: prepacked.linear)
        inner = self.dropout(linear(self.linear1, hidden_states, self.activation_name))
        return linear(self.linear2, inner)


class Residual(nn.Module):
    """The residual connection and LayerNorm around one sub-layer, post-LN or pre-LN."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)
        self.norm_first = config.norm_first

    def forward(self, hidden_states: Tensor, sublayer: Any) -> Tensor:
        if self.norm_first:
            return hidden_states + self.dropout(sublayer(self.layer_norm(hidden_states)))
        return self.layer_norm(hidden_states + self.dropout(sublayer(hidden_states)))


class EncoderLayer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.self_attention = AttentionSublayer(config)
        self.self_attention_residual = Residual(config)
        self.feed_forward = FeedForward(config)
        self.feed_forward_residual = Residual(config)

    def forward(self, hidden_states: Tensor, bias: Tensor | None,
                probabilities: list[Tensor] | None = None) -> Tensor:
        hidden_states = self.self_attention_residual(
            hidden_states, lambda x: self.self_attention(x, bias, probabilities))
        return self.feed_forward_residual(hidden_states, self.feed_forward)


class DecoderLayer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.self_attention = AttentionSublayer(config)
        self.self_attention_residual = Residual(config)
        self.cross_attention = AttentionSublayer(config)
        self.cross_attention_residual = Residual(config)
        self.feed_forward = FeedForward(config)
        self.feed_forward_residual = Residual(config)

    def forward(self, hidden_states: Tensor, encoder_hidden_states: Tensor | None,
                encoder_bias: Tensor | None, *, cache: KeyValueCache | None = None,
                encoder_keys_values: tuple[Tensor, Tensor] | None = None,
                self_probabilities: list[Tensor] | None = None,
                cross_probabilities: list[Tensor] | None = None) -> Tensor:
        length = hidden_states.size(1)
        past = cache.length if cache is not None else 0
        # Masked self-attention. Without a cache the fused causal kernel does the masking; with
        # one, a single new query may see every cached key; several new queries need the mask
        # offset by the cached length.
        self_bias, is_causal = None, False
        if past == 0 and length > 1:
            is_causal = True
        elif length > 1:
            self_bias = attention_bias(None, hidden_states.dtype, query_length=length,
                                       causal=True, past_length=past,
                                       device=hidden_states.device)
        hidden_states = self.self_attention_residual(
            hidden_states,
            lambda x: self.self_attention(x, self_bias, self_probabilities, is_causal=is_causal,
                                          cache=cache))
        if encoder_keys_values is not None:
            cross = {"static_keys_values": encoder_keys_values}
        else:
            cross = {"key_value_states": encoder_hidden_states}
        hidden_states = self.cross_attention_residual(
            hidden_states, lambda x: self.cross_attention(x, encoder_bias, cross_probabilities,
                                                          **cross))
        return self.feed_forward_residual(hidden_states, self.feed_forward)


class TransformerEncoder(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_encoder_layers))
        # Pre-LN leaves the residual stream un-normalised; one LayerNorm closes the stack.
        self.final_layer_norm = (nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
                                 if config.norm_first else None)

    def forward(self, hidden_states: Tensor, bias: Tensor | None,
                attentions: list[Tensor] | None = None) -> Tensor:
        for layer in self.layers:
            hidden_states = layer(hidden_states, bias, attentions)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        return hidden_states


class TransformerDecoder(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_decoder_layers))
        self.final_layer_norm = (nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
                                 if config.norm_first else None)

    def forward(self, hidden_states: Tensor, encoder_hidden_states: Tensor | None,
                encoder_bias: Tensor | None, state: DecoderState | None = None,
                self_attentions: list[Tensor] | None = None,
                cross_attentions: list[Tensor] | None = None) -> Tensor:
        for index, layer in enumerate(self.layers):
            hidden_states = layer(
                hidden_states, encoder_hidden_states, encoder_bias,
                cache=state.self_attention[index] if state is not None else None,
                encoder_keys_values=state.cross_attention[index] if state is not None else None,
                self_probabilities=self_attentions, cross_probabilities=cross_attentions)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        return hidden_states


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def _attention_fields(maps: tuple[list[Tensor] | None, ...]) -> dict[str, Any]:
    names = ("encoder_attentions", "decoder_attentions", "cross_attentions")
    return {name: tuple(found) for name, found in zip(names, maps) if found is not None}


def label_smoothed_loss(logits: Tensor, targets: Tensor,
                        epsilon: float) -> tuple[Tensor, Tensor]:
    """(label-smoothed loss, plain NLL), both averaged over the targets.

    Label smoothing (Szegedy et al., 2016; the paper uses ε = 0.1) trains towards
    (1 − ε)·one_hot + ε·uniform: ``loss = (1 − ε)·NLL + ε·mean_v(−log p_v)``. It hurts perplexity
    (the model learns to be unsure) but improves BLEU. The uniform part spreads over the whole
    vocabulary, as ``torch.nn.functional.cross_entropy(label_smoothing=ε)`` does.
    """
    log_probs = logits.float().log_softmax(dim=-1)
    nll = -log_probs.gather(-1, targets[:, None]).squeeze(-1).mean()
    if epsilon == 0.0:
        return nll, nll
    smooth = -log_probs.mean(dim=-1).mean()
    return (1.0 - epsilon) * nll + epsilon * smooth, nll


class TransformerModel(PretrainedMixin, nn.Module):
    """Encoder–decoder Transformer with its output layer: source ids → target logits.

    ``forward(input_ids, attention_mask, decoder_input_ids, labels)`` is teacher forcing: the
    decoder reads the reference shifted right (``[BOS] y₁ … y_{n−1}``) and predicts
    ``y₁ … y_n [EOS]`` at every position at once. Generation goes through :meth:`encode`,
    :meth:`start_decoding` and :meth:`decode_step` (see :mod:`plmkit.evaluation.decoding`).
    """

    config_class: ClassVar[type] = TransformerConfig
    model_type: ClassVar[str] = "plmkit_transformer"
    hf_architecture: ClassVar[str] = "TransformerModel"

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.d_model,
                                       padding_idx=config.pad_token_id)
        self.target_embeddings = (None if config.share_embeddings else
                                  nn.Embedding(config.vocab_size, config.d_model,
                                               padding_idx=config.pad_token_id))
        self.source_positions = TransformerEmbeddings(config)
        self.target_positions = TransformerEmbeddings(config)
        self.encoder = TransformerEncoder(config)
        self.decoder = TransformerDecoder(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # An instance attribute: what is tied depends on the config.
        self.tied_weights = ("lm_head.weight",) if config.tie_output else ()
        self.init_weights()

    # ----------------------------------------------------------------------------- weights
    @property
    def decoder_embeddings(self) -> nn.Embedding:
        return self.embeddings if self.target_embeddings is None else self.target_embeddings

    def tie_weights(self) -> None:
        if self.config.tie_output:
            self.lm_head.weight = self.decoder_embeddings.weight

    def init_weights(self) -> None:
        """Xavier-uniform matrices, zero biases, N(0, d^-½) embeddings.

        With embeddings of standard deviation d^-½, scaling by √d gives unit-variance inputs, and
        the tied output projection starts with logits of unit scale. The query/key/value
        projections get Xavier scaled by 1/√2 — the bound Xavier gives the three stacked as one
        (3d × d) matrix, as ``torch.nn.MultiheadAttention`` initialises them; fairseq found it
        to converge better too: smaller initial attention logits keep the softmax soft.
        """
        super().init_weights()
        for module in self.modules():
            if isinstance(module, MultiHeadAttention):
                for projection in (module.query, module.key, module.value):
                    nn.init.xavier_uniform_(projection.weight, gain=2 ** -0.5)

    def init_matrix(self, weight: Tensor) -> None:
        nn.init.xavier_uniform_(weight)

    def embedding_std(self) -> float:
        return self.config.d_model ** -0.5

    # ----------------------------------------------------------------------------- passes
    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               attentions: list[Tensor] | None = None) -> Tensor:
        """The encoder output z = (z₁ … z_n), (batch, source_length, d_model). ``attentions``: a
        list each layer appends its self-attention weights to."""
        hidden_states = self.source_positions(input_ids, self.embeddings)
        return self.encoder(hidden_states, attention_bias(attention_mask, hidden_states.dtype),
                            attentions)

    def decode(self, decoder_input_ids: Tensor, encoder_hidden_states: Tensor,
               attention_mask: Tensor | None = None,
               self_attentions: list[Tensor] | None = None,
               cross_attentions: list[Tensor] | None = None) -> Tensor:
        """Decoder hidden states for a whole target prefix at once (no cache)."""
        hidden_states = self.target_positions(decoder_input_ids, self.decoder_embeddings)
        bias = attention_bias(attention_mask, hidden_states.dtype)
        return self.decoder(hidden_states, encoder_hidden_states, bias,
                            self_attentions=self_attentions, cross_attentions=cross_attentions)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                decoder_input_ids: Tensor | None = None, labels: Tensor | None = None, *,
                label_smoothing: float = 0.0, output_attentions: bool = False) -> Seq2SeqOutput:
        """Teacher forcing. ``labels`` (-100 at padding) give the loss; then logits are computed
        only at labelled positions. ``output_attentions``: every layer's encoder self-, decoder
        self- and cross-attention weights too (what the attention explorer draws)."""
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("give decoder_input_ids or labels")
            decoder_input_ids = self.shift_right(labels)
        maps: tuple[list[Tensor], ...] | tuple[None, ...] = (
            ([], [], []) if output_attentions else (None, None, None))
        encoder_hidden_states = self.encode(input_ids, attention_mask, maps[0])
        hidden_states = self.decode(decoder_input_ids, encoder_hidden_states, attention_mask,
                                    maps[1], maps[2])
        if labels is None:
            return Seq2SeqOutput(None, self.lm_head(hidden_states),
                                 encoder_last_hidden_state=encoder_hidden_states,
                                 **_attention_fields(maps))
        labelled = labels != -100
        logits = self.lm_head(hidden_states[labelled])
        targets = labels[labelled]
        if targets.numel() == 0:
            zero = hidden_states.sum() * 0.0
            return Seq2SeqOutput(zero, logits, zero, encoder_hidden_states,
                                 **_attention_fields(maps))
        loss, nll = label_smoothed_loss(logits, targets, label_smoothing)
        return Seq2SeqOutput(loss, logits, nll, encoder_hidden_states, **_attention_fields(maps))

    def shift_right(self, labels: Tensor) -> Tensor:
        """``y₁ … y_n [EOS]`` (−100 padded) → ``[BOS] y₁ … y_n`` (pad padded)."""
        shifted = labels.new_full(labels.shape, self.config.pad_token_id)
        shifted[:, 0] = self.config.bos_token_id
        shifted[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100,
                                                    self.config.pad_token_id)
        return shifted

    # ----------------------------------------------------------------------------- generation
    def start_decoding(self, encoder_hidden_states: Tensor, attention_mask: Tensor | None,
                       use_cache: bool = True) -> DecoderState:
        """Decoding state for a batch of encoded sources: with ``use_cache`` the cross-attention
        keys/values of every layer are projected here, once per source, and the self-attention
        caches start empty; without, every step re-runs the decoder on the whole prefix."""
        bias = attention_bias(attention_mask, encoder_hidden_states.dtype)
        if not use_cache:
            return DecoderState([], [], bias, encoder_hidden_states, attention_mask)
        cross = [layer.cross_attention.attention.project_keys_values(encoder_hidden_states)
                 for layer in self.decoder.layers]
        caches = [KeyValueCache() for _ in self.decoder.layers]
        return DecoderState(caches, cross, bias, encoder_hidden_states, attention_mask)

    def decode_step(self, tokens: Tensor, state: DecoderState) -> Tensor:
        """Log-probabilities of the next token, (rows, vocab).

        ``tokens`` is the whole prefix produced so far, (rows, length) starting with [BOS]. With a
        cache only the tokens not yet seen are fed (normally the last one); without, the whole
        prefix is decoded again — the reference the cache is tested against.
        """
        if state.self_attention:
            new = tokens[:, state.past_length:]
            hidden_states = self.target_positions(new, self.decoder_embeddings,
                                                  past_length=state.past_length)
            hidden_states = self.decoder(hidden_states, None, state.encoder_bias, state)
        else:
            hidden_states = self.target_positions(tokens, self.decoder_embeddings)
            hidden_states = self.decoder(hidden_states, state.encoder_hidden_states,
                                         state.encoder_bias)
        state.steps = tokens.size(1)
        return self.lm_head(hidden_states[:, -1]).float().log_softmax(dim=-1)

    @staticmethod
    def reorder_state(state: DecoderState, rows: Tensor, *, source_side: bool = False) -> None:
        """Keep decoding rows ``rows`` (beam search: the beams that survived a step).

        The target side (self-attention caches) always follows. The source side (encoder output,
        cross-attention keys/values, padding mask) follows only with ``source_side`` — needed when
        rows are first expanded into beams, not when beams of the same source are re-ranked.
        """
        for cache in state.self_attention:
            cache.reorder(rows)
        if source_side:
            state.cross_attention = [(k.index_select(0, rows), v.index_select(0, rows))
                                     for k, v in state.cross_attention]
            state.encoder_hidden_states = state.encoder_hidden_states.index_select(0, rows)
            if state.encoder_bias is not None:
                state.encoder_bias = state.encoder_bias.index_select(0, rows)
            if state.encoder_attention_mask is not None:
                state.encoder_attention_mask = state.encoder_attention_mask.index_select(0, rows)


__all__ = [
    "DecoderState", "Seq2SeqOutput", "TRANSFORMER_SIZES", "TransformerConfig",
    "TransformerEmbeddings", "TransformerModel", "label_smoothed_loss", "sinusoidal_positions",
    "transformer_config",
]
