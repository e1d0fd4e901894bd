"""BERT (Devlin et al., 2018), read like the paper's boxes.

* **Input representation**: the vector of each token is the sum of three embeddings — the token
  (WordPiece) embedding, the segment embedding (sentence A or B) and a learned position
  embedding — followed by LayerNorm and dropout (:class:`BertEmbeddings`).
* **Encoder**: a stack of Transformer encoder layers. Each layer is multi-head self-attention and
  a position-wise feed-forward network, each wrapped as ``LayerNorm(x + Dropout(Sublayer(x)))``
  (post-LN, as in the paper) (:class:`BertLayer`). Attention is bidirectional: every token sees
  every other non-padding token. ``layer_norm_position="pre"`` wraps them instead as
  ``x + Dropout(Sublayer(LayerNorm(x)))`` with one more LayerNorm after the last layer (Xiong et
  al., 2020): the gradient reaches early layers undamped, so a short run can use a large learning
  rate without warm-up troubles, which is what a small time budget needs (Geiping & Goldstein's
  *Cramming*). ``use_bias=False`` drops the biases of the encoder's linear maps.
* **Pooler**: tanh(W·h_[CLS] + b), the sentence representation used by NSP and classification.
* **Heads**: masked LM (transform + decoder tied to the word embeddings) and next-sentence
  prediction for pre-training; one linear layer each for the four downstream families.

Parameter names equal Hugging Face's ``modeling_bert.py`` so checkpoints load both ways.
"""

from __future__ import annotations


from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plmkit.config import FieldRules, validate_fields
from plmkit.errors import PlmError
from plmkit.models.activations import ACTIVATIONS
from plmkit.models.attention import (MultiHeadAttention, PackedTokens, attention_bias, pack,
                                     unpack)
from plmkit.models.dropout import Dropout
from plmkit.models.prepacked import linear
from plmkit.models.pretrained import (MAX_LAYERS, PretrainedMixin, check_model_size,
                                      normalise_label_maps)

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    # "post" (the paper, Hugging Face's BertModel) or "pre" (LayerNorm before each sub-layer and
    # after the last layer; Hugging Face's RobertaPreLayerNorm, see plmkit.models.convert).
    layer_norm_position: str = "post"
    # Biases of the encoder's linear maps (Q, K, V, W^O, the two FFN layers); the heads keep theirs.
    use_bias: bool = True
    # Task heads
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    classifier_dropout: float | None = None
    problem_type: str | None = None

    rules: ClassVar[FieldRules] = FieldRules(
        positive=("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "max_position_embeddings", "type_vocab_size",
                  "layer_norm_eps", "num_labels"),
        non_negative=("initializer_range",),
        probabilities=("hidden_dropout_prob", "attention_probs_dropout_prob",
                       "classifier_dropout"),
        choices={"hidden_act": tuple(ACTIVATIONS), "position_embedding_type": ("absolute",),
                 "layer_norm_position": ("post", "pre"),
                 "problem_type": PROBLEM_TYPES},
        multiples=(("hidden_size", "num_attention_heads"),),
        token_ids=("pad_token_id",),
        at_most={"num_hidden_layers": MAX_LAYERS},
    )

    def __post_init__(self) -> None:
        validate_fields(self, self.rules)
        normalise_label_maps(self)

    def parameter_estimate(self) -> dict[str, int]:
        """Parameters of BertForPreTraining (the largest BERT) by the field that scales them."""
        h, inner = self.hidden_size, self.intermediate_size
        layer = 4 * h * h + 2 * h * inner + 9 * h + inner  # Q, K, V, W^O, FFN, two LayerNorms
        return {"vocab_size": self.vocab_size * (h + 1),  # embedding + MLM output bias
                "max_position_embeddings": self.max_position_embeddings * h,
                "type_vocab_size": self.type_vocab_size * h,
                "num_hidden_layers": self.num_hidden_layers * layer,
                "hidden_size": 2 * h * h + 7 * h + 2,  # pooler, MLM transform, NSP, LayerNorm
                "num_labels": self.num_labels * (h + 1)}


# The google small-BERT family (Turc et al., 2019) and BERT-base: L layers / H hidden.
BERT_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
    "mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    "small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "medium": dict(num_hidden_layers=8, hidden_size=512, num_attention_heads=8,
                   intermediate_size=2048),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                 intermediate_size=3072),
}


def bert_config(size: str = "base", *, max_parameters: int | None = None,
                **overrides: Any) -> BertConfig:
    """A named size from :data:`BERT_SIZES`, with any field overridden; refused when the result
    is too big to build (:func:`~plmkit.models.pretrained.check_model_size`)."""
    if size not in BERT_SIZES:
        raise PlmError(f"unknown model size {size!r}; choose one of {', '.join(BERT_SIZES)}",
                       field="model_size")
    config = BertConfig(**{**BERT_SIZES[size], **overrides})
    check_model_size(config, max_parameters=max_parameters)
    return config


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------
@dataclass
class BertModelOutput:
    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class BertPreTrainingOutput:
    """``prediction_logits`` is (batch, length, vocab) — or, when MLM labels are given and the
    model computes the decoder sparsely, (number of masked tokens, vocab) for the positions in
    ``masked_positions`` (a boolean (batch, length) mask), which is where the loss is taken."""

    loss: Tensor | None
    prediction_logits: Tensor
    seq_relationship_logits: Tensor | None = None
    mlm_loss: Tensor | None = None
    nsp_loss: Tensor | None = None
    masked_positions: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class TaskOutput:
    """Output of the downstream heads (classification, tagging, question answering)."""

    loss: Tensor | None
    logits: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


# --------------------------------------------------------------------------------------------
# Embeddings, encoder, pooler
# --------------------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    """E = LayerNorm(token + segment + position) with dropout — the paper's Figure 2."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size,
                                            padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.max_positions = config.max_position_embeddings
        # Set by the masked-LM models, whose decoder is this matrix: see _word_vectors.
        self.tied_to_decoder = False

    def _word_vectors(self, input_ids: Tensor) -> Tensor:
        """The token embeddings. Under a tied masked-LM decoder, the lookup's gradient is
        taken sparse on the CPU: the decoder's dense gradient of the same matrix arrives first
        and the looked-up rows are added into it, instead of a vocabulary-sized zero matrix
        being filled, scattered into and added (30k × 256 twice a step, ~2% of a mini step on
        AVX2). The parameter's ``.grad`` stays dense (optimisers and DDP see what they always
        see); only a graph with no decoder would leave it sparse, so only the tied models ask."""
        weight = self.word_embeddings.weight
        sparse = (self.tied_to_decoder and weight.requires_grad and torch.is_grad_enabled()
                  and weight.device.type == "cpu" and not torch.compiler.is_compiling())
        return F.embedding(input_ids, weight, self.word_embeddings.padding_idx, sparse=sparse)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        length = input_ids.size(1)
        if length > self.max_positions:
            raise PlmError(f"sequence of {length} tokens is longer than the model's "
                           f"max_position_embeddings ({self.max_positions}); truncate or window it",
                           field="max_position_embeddings")
        if position_ids is None:
            position_ids = torch.arange(length, device=input_ids.device)[None]
        embeddings = self._word_vectors(input_ids) + self.position_embeddings(position_ids)
        if token_type_ids is None:
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


def _layer_norm(config: BertConfig) -> nn.LayerNorm:
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class BertSelfOutput(nn.Module):
    """W^O, then the residual connection and LayerNorm: LayerNorm(x + Dropout(W^O·heads));
    pre-LN: x + Dropout(W^O·heads), the LayerNorm having come before the sub-layer."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, bias=config.use_bias)
        self.LayerNorm = _layer_norm(config) if config.layer_norm_position == "post" else None
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, residual: Tensor) -> Tensor:
        out = residual + self.dropout(linear(self.dense, hidden_states))
        return self.LayerNorm(out) if self.LayerNorm is not None else out


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        # HF calls the multi-head attention "self" (as in self-attention).
        self.self = MultiHeadAttention(config.hidden_size, config.num_attention_heads,
                                       dropout=config.attention_probs_dropout_prob,
                                       bias=config.use_bias)
        self.output = BertSelfOutput(config)
        # pre-LN: the norm in front of the sub-layer (HF RobertaPreLayerNorm's attention.LayerNorm)
        self.LayerNorm = _layer_norm(config) if config.layer_norm_position == "pre" else None

    def forward(self, hidden_states: Tensor, bias: Tensor | None,
                output_attentions: bool = False, packed: PackedTokens | None = None,
                ) -> tuple[Tensor, Tensor | None]:
        normed = self.LayerNorm(hidden_states) if self.LayerNorm is not None else hidden_states
        attended = self.self(normed, bias, return_probabilities=output_attentions,
                             packed=packed)
        return self.output(attended.context, hidden_states), attended.probabilities


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.use_bias)
        self.hidden_act = config.hidden_act  # by name: the packed kernel can fuse it
        # pre-LN: the feed-forward sub-layer's norm (HF RobertaPreLayerNorm's intermediate.LayerNorm)
        self.LayerNorm = _layer_norm(config) if config.layer_norm_position == "pre" else None

    def forward(self, hidden_states: Tensor) -> Tensor:
        if self.LayerNorm is not None:
            hidden_states = self.LayerNorm(hidden_states)
        return linear(self.dense, hidden_states, self.hidden_act)


class BertOutput(BertSelfOutput):
    """The second half of the feed-forward network, with its residual and LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        nn.Module.__init__(self)
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.use_bias)
        self.LayerNorm = _layer_norm(config) if config.layer_norm_position == "post" else None
        self.dropout = Dropout(config.hidden_dropout_prob)


class BertLayer(nn.Module):
    """One encoder layer: self-attention sub-layer, then feed-forward sub-layer (each module
    places its LayerNorm where ``layer_norm_position`` says)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states: Tensor, bias: Tensor | None,
                output_attentions: bool = False, packed: PackedTokens | None = None,
                ) -> tuple[Tensor, Tensor | None]:
        attended, probabilities = self.attention(hidden_states, bias, output_attentions, packed)
        return self.output(self.intermediate(attended), attended), probabilities


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden_states: Tensor, bias: Tensor | None, *,
                output_attentions: bool = False, output_hidden_states: bool = False,
                packed: PackedTokens | None = None, final_norm: nn.Module | None = None,
                ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """``packed``: ``hidden_states`` holds the real tokens only, (tokens, width); the
        states returned are unpacked again to (batch, length, width), zeros at padding.
        ``final_norm`` (pre-LN) is applied to the last layer's output before unpacking, so
        padding positions stay zero; ``all_states`` keep the layers' own outputs, as HF's."""
        full = (lambda states: unpack(states, packed)) if packed is not None else (lambda s: s)
        all_states = (full(hidden_states),) if output_hidden_states else None
        all_attentions: tuple[Tensor, ...] | None = () if output_attentions else None
        for layer in self.layer:
            hidden_states, probabilities = layer(hidden_states, bias, output_attentions, packed)
            if all_states is not None:
                all_states += (full(hidden_states),)
            if all_attentions is not None:
                all_attentions += (probabilities,)
        if final_norm is not None:
            hidden_states = final_norm(hidden_states)
        return full(hidden_states), all_states, all_attentions


class BertPooler(nn.Module):
    """tanh(W·h_[CLS] + b): the first token's final state stands for the whole input."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return torch.tanh(linear(self.dense, hidden_states[:, 0]))


# --------------------------------------------------------------------------------------------
# Shared base: initialisation and IO
# --------------------------------------------------------------------------------------------
class BertPreTrainedModel(PretrainedMixin, nn.Module):
    config_class: ClassVar[type] = BertConfig
    model_type: ClassVar[str] = "bert"
    base_model_prefix: ClassVar[str] = "bert"

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config

    def config_dict(self) -> dict[str, Any]:
        values = super().config_dict()
        if values.get("id2label") is None:
            values.pop("id2label", None)
            values.pop("label2id", None)
        else:
            values["id2label"] = {str(k): v for k, v in values["id2label"].items()}
        return values


@dataclass(frozen=True)
class ShapeBuckets:
    """A few fixed (rows, length) shapes to pad every batch up to, for a long-running server.

    oneDNN compiles a kernel per matrix shape and keeps up to 1,024; PyTorch's allocator, too,
    settles on the sizes it meets. A server that runs each batch at its own shape (rows × real
    tokens) meets a new shape with nearly every batch, so its memory climbs for minutes (MiniLM in
    bf16: 440 → 890 MB over 2,000 batches, 815 shapes) and a lone request pays for a new kernel.
    Padded to these buckets, the same batches use a few dozen shapes and memory stays level.
    Padding rows cost at most a third of a batch (the row buckets grow by 1.5× at most); a
    length is rounded up to a multiple of ``length_multiple``, never past the model's limit.
    """

    rows: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
    length_multiple: int = 16

    def __post_init__(self) -> None:
        if not self.rows or list(self.rows) != sorted(set(self.rows)) or self.rows[0] < 1:
            raise PlmError("shape buckets: rows must be increasing and ≥ 1", field="rows")
        if self.length_multiple < 1:
            raise PlmError("shape buckets: length_multiple must be ≥ 1",
                           field="length_multiple")

    def rows_for(self, rows: int) -> int:
        """The smallest bucket that holds ``rows``; past the largest, a multiple of it."""
        for bucket in self.rows:
            if bucket >= rows:
                return bucket
        largest = self.rows[-1]
        return -(-rows // largest) * largest

    def length_for(self, length: int, limit: int) -> int:
        return max(length, min(-(-length // self.length_multiple) * self.length_multiple, limit))


def _pad_to(tensor: Tensor | None, rows: int, length: int, fill: int = 0) -> Tensor | None:
    if tensor is None:
        return None
    padded = tensor.new_full((rows, length), fill)
    padded[: tensor.shape[0], : tensor.shape[1]] = tensor
    return padded


class BertModel(BertPreTrainedModel):
    """The encoder alone: embeddings → N layers → (pooler)."""

    hf_architecture = "BertModel"
    # A masked-LM checkpoint (HF's BertForMaskedLM, or ``--objective mlm``) has no pooler; it
    # starts fresh, as Hugging Face's loader does, and only pooled-output users train it.
    head_prefixes = ("pooler.",)

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        # pre-LN: the norm after the last layer (HF RobertaPreLayerNormModel's LayerNorm)
        self.LayerNorm = _layer_norm(config) if config.layer_norm_position == "pre" else None
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.skip_padding = True
        self.min_padding = 0.05
        # Fixed shapes for a server (plm serve sets them; packing is then off): see ShapeBuckets.
        self.shape_buckets: ShapeBuckets | None = None
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None, *,
                output_attentions: bool = False, output_hidden_states: bool = False,
                ) -> BertModelOutput:
        if (self.shape_buckets is not None and input_ids.dim() == 2
                and not torch.compiler.is_compiling()):
            return self._forward_bucketed(input_ids, attention_mask, token_type_ids,
                                          position_ids, output_attentions, output_hidden_states)
        return self._encode(input_ids, attention_mask, token_type_ids, position_ids,
                            output_attentions, output_hidden_states, allow_packing=True)

    def _encode(self, input_ids: Tensor, attention_mask: Tensor | None,
                token_type_ids: Tensor | None, position_ids: Tensor | None,
                output_attentions: bool, output_hidden_states: bool, *, allow_packing: bool
                ) -> BertModelOutput:
        embeddings = self.embeddings(input_ids, token_type_ids, position_ids)
        bias = attention_bias(attention_mask, embeddings.dtype)
        packed = self._packing(attention_mask, bias) if allow_packing else None
        states, all_states, attentions = self.encoder(
            pack(embeddings, packed) if packed is not None else embeddings, bias,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            packed=packed, final_norm=self.LayerNorm)
        pooled = self.pooler(states) if self.pooler is not None else None
        return BertModelOutput(states, pooled, all_states, attentions)

    def _forward_bucketed(self, input_ids: Tensor, attention_mask: Tensor | None,
                          token_type_ids: Tensor | None, position_ids: Tensor | None,
                          output_attentions: bool, output_hidden_states: bool
                          ) -> BertModelOutput:
        """Pad the batch to its :class:`ShapeBuckets` shape, run it without packing (one
        shape), cut the outputs back to the batch's own.

        Padding rows attend to their first position only (an all-masked row would be a softmax
        over nothing); padding positions are masked, so the real rows' outputs equal the
        unbucketed ones (up to the kernels' summation order)."""
        rows, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        to_rows = self.shape_buckets.rows_for(rows)
        to_length = self.shape_buckets.length_for(length, self.config.max_position_embeddings)
        if (to_rows, to_length) != (rows, length):
            attention_mask = _pad_to(attention_mask, to_rows, to_length)
            attention_mask[rows:, 0] = 1
            if position_ids is not None and position_ids.shape[0] != rows:
                position_ids = position_ids.expand(rows, -1)
            input_ids = _pad_to(input_ids, to_rows, to_length, self.config.pad_token_id)
            token_type_ids = _pad_to(token_type_ids, to_rows, to_length)
            position_ids = _pad_to(position_ids, to_rows, to_length)
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids,
                           output_attentions, output_hidden_states, allow_packing=False)

        def cut(states: Tensor) -> Tensor:
            return states[:rows, :length]

        return BertModelOutput(
            cut(out.last_hidden_state),
            out.pooler_output[:rows] if out.pooler_output is not None else None,
            tuple(map(cut, out.hidden_states)) if out.hidden_states is not None else None,
            tuple(a[:rows, :, :length, :length] for a in out.attentions)
            if out.attentions is not None else None)

    def _packing(self, attention_mask: Tensor | None, bias: Tensor | None) -> PackedTokens | None:
        """Run the token-wise parts on real tokens only when the batch has enough padding.

        ``skip_padding`` (default on) trades a gather before the first layer and a scatter
        after the last, plus one attention call per sequence
        (:func:`~plmkit.models.attention.packed_attention`), for the matrix multiplies and the
        masked attention scores of the padding positions; below ``min_padding`` (fraction of
        padding) there is too little padding to pay for them. Outputs at padding positions are
        then zeros (Hugging Face computes meaningless values there; no head reads them). Not used
        inside ``torch.compile``, whose graphs want static shapes.
        """
        if (not self.skip_padding or bias is None or attention_mask is None
                or attention_mask.dim() != 2 or torch.compiler.is_compiling()):
            return None
        real = int(attention_mask.count_nonzero())
        if real > (1.0 - self.min_padding) * attention_mask.numel():
            return None
        return PackedTokens.from_mask(attention_mask)


# --------------------------------------------------------------------------------------------
# Pre-training heads: masked LM and next sentence prediction
# --------------------------------------------------------------------------------------------
class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(self.activation(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """Transform, then a decoder whose weight *is* the word-embedding matrix (tied), plus a bias."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: Tensor) -> Tensor:
        return F.linear(self.transform(hidden_states), self.decoder.weight, self.bias)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.predictions(hidden_states)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)


class VocabularyCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (rows, vocabulary) logits, in fp32, its gradient written directly.

    Why not ``F.cross_entropy``: over a 30k vocabulary, its backward zeroes a rows × 30k tensor,
    scatters the targets into it and runs log-softmax's general backward over both. Knowing the
    gradient is softmax − one-hot, the backward here is one exponential of the saved
    log-probabilities and a subtraction at the targets: the same loss and gradient (tested) for
    less time in the masked-LM loss.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor) -> Tensor:  # type: ignore[override]
        log_probabilities = logits.float().log_softmax(dim=-1)
        loss = -log_probabilities.gather(1, targets[:, None]).mean()
        ctx.save_for_backward(log_probabilities, targets)
        ctx.input_dtype = logits.dtype
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        log_probabilities, targets = ctx.saved_tensors
        gradient = log_probabilities.exp()
        gradient[torch.arange(targets.numel(), device=targets.device), targets] -= 1.0
        return gradient.mul_(grad / targets.numel()).to(ctx.input_dtype), None


def masked_lm_logits(head: BertLMPredictionHead, states: Tensor, labels: Tensor | None,
                     sparse: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """MLM logits and loss; with ``sparse`` only at the masked positions.

    Only ~15% of positions carry a label, and the vocabulary projection (hidden × 30k) dominates
    the FLOPs of a small BERT, so decoding just those rows gives the same loss for a fraction of
    the work. Returns (logits, loss, masked_positions).
    """
    if labels is None:
        return head(states), None, None
    if not sparse:
        logits = head(states)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), labels.view(-1),
                               ignore_index=-100)
        return logits, loss, None
    masked = labels != -100
    logits = head(states[masked])
    loss = VocabularyCrossEntropy.apply(logits, labels[masked]) if logits.numel() else \
        states.sum() * 0.0
    return logits, loss, masked


class BertForPreTraining(BertPreTrainedModel):
    """BERT's pre-training model: masked LM (15% of tokens) + next sentence prediction."""

    hf_architecture = "BertForPreTraining"
    tied_weights = ("cls.predictions.decoder.weight",)

    def __init__(self, config: BertConfig, sparse_mlm: bool = True) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.sparse_mlm = sparse_mlm
        self.init_weights()

    def tie_weights(self) -> None:
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.bert.embeddings.tied_to_decoder = True

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None,
                next_sentence_label: Tensor | None = None, *, output_attentions: bool = False,
                output_hidden_states: bool = False) -> BertPreTrainingOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states)
        logits, mlm_loss, masked = masked_lm_logits(self.cls.predictions, out.last_hidden_state,
                                                    labels, self.sparse_mlm)
        nsp_logits = self.cls.seq_relationship(out.pooler_output)
        nsp_loss = None
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label.view(-1))
        losses = [x for x in (mlm_loss, nsp_loss) if x is not None]
        loss = sum(losses) if losses else None
        return BertPreTrainingOutput(loss, logits, nsp_logits, mlm_loss, nsp_loss, masked,
                                     out.hidden_states, out.attentions)


class BertForMaskedLM(BertPreTrainedModel):
    """Masked LM alone (no pooler, no NSP): what fill-mask uses."""

    hf_architecture = "BertForMaskedLM"
    tied_weights = ("cls.predictions.decoder.weight",)
    ignored_keys = ("cls.seq_relationship",)

    def __init__(self, config: BertConfig, sparse_mlm: bool = False) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.sparse_mlm = sparse_mlm
        self.init_weights()

    def tie_weights(self) -> None:
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.bert.embeddings.tied_to_decoder = True

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None, *,
                output_attentions: bool = False, output_hidden_states: bool = False,
                ) -> BertPreTrainingOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states)
        logits, loss, masked = masked_lm_logits(self.cls.predictions, out.last_hidden_state,
                                                labels, self.sparse_mlm)
        return BertPreTrainingOutput(loss, logits, None, loss, None, masked, out.hidden_states,
                                     out.attentions)


# --------------------------------------------------------------------------------------------
# Downstream heads: the seeds' four task families, each one added layer
# --------------------------------------------------------------------------------------------
class BertForSequenceClassification(BertPreTrainedModel):
    """Single sentence or sentence pair → pooled [CLS] → dropout → linear (softmax or MSE)."""

    hf_architecture = "BertForSequenceClassification"
    head_prefixes = ("classifier.", "bert.pooler.")

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config)
        dropout = config.classifier_dropout
        self.dropout = Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None, *,
                output_attentions: bool = False, output_hidden_states: bool = False) -> TaskOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states)
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = None
        if labels is not None:
            if self.config.problem_type == "regression" or self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.view(-1))
        return TaskOutput(loss, logits, hidden_states=out.hidden_states,
                          attentions=out.attentions)


class BertForTokenClassification(BertPreTrainedModel):
    """Token tagging (NER): every final hidden state → dropout → linear over the tag set."""

    hf_architecture = "BertForTokenClassification"
    head_prefixes = ("classifier.",)

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout
        self.dropout = Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None, *,
                output_attentions: bool = False, output_hidden_states: bool = False) -> TaskOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states)
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:  # -100 marks pieces after a word's first and special tokens
            loss = F.cross_entropy(logits.view(-1, self.num_labels).float(), labels.view(-1),
                                   ignore_index=-100)
        return TaskOutput(loss, logits, hidden_states=out.hidden_states,
                          attentions=out.attentions)


class BertForQuestionAnswering(BertPreTrainedModel):
    """Span QA: a start vector S and an end vector E dotted with every passage token."""

    hf_architecture = "BertForQuestionAnswering"
    head_prefixes = ("qa_outputs.",)

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        # The span loss is a softmax over *every* position, padding included (as in HF and
        # google-research/bert), so the padding states matter here: no packing.
        self.bert.skip_padding = False
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, start_positions: Tensor | None = None,
                end_positions: Tensor | None = None, *, output_attentions: bool = False,
                output_hidden_states: bool = False) -> TaskOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states)
        start_logits, end_logits = self.qa_outputs(out.last_hidden_state).unbind(-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            length = start_logits.size(1)  # positions outside the window are ignored, as in HF
            start = start_positions.clamp(0, length)
            end = end_positions.clamp(0, length)
            loss = (F.cross_entropy(start_logits.float(), start, ignore_index=length)
                    + F.cross_entropy(end_logits.float(), end, ignore_index=length)) / 2
        return TaskOutput(loss, None, start_logits, end_logits, out.hidden_states,
                          out.attentions)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def flops_per_token(config: BertConfig, sequence_length: int, masked_fraction: float = 0.15,
                    sparse_mlm: bool = True) -> float:
    """Forward+backward FLOPs per token of BertForPreTraining (≈ 6·params per token plus attention),
    used for model-FLOPs utilisation in the benchmarks."""
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = 2 * (4 * h * h + 2 * h * inter) + 2 * 2 * sequence_length * h
    mlm_rows = masked_fraction if sparse_mlm else 1.0
    head = 2 * mlm_rows * (h * h + h * config.vocab_size)
    return 3 * (layers * per_layer + head)


__all__ = [
    "BERT_SIZES", "BertConfig", "BertForMaskedLM", "BertForPreTraining",
    "BertForQuestionAnswering", "BertForSequenceClassification", "BertForTokenClassification",
    "BertModel", "BertModelOutput", "BertPreTrainingOutput", "ShapeBuckets", "TaskOutput", "bert_config",
    "count_parameters", "flops_per_token", "masked_lm_logits",
]

