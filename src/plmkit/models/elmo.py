"""ELMo (Peters et al. 2018): deep contextualised word representations from a biLM.

Pre-training: a **forward** language model reads the sentence left to right and predicts each next
word; a **backward** one reads right to left and predicts each previous word. They share the token
embeddings and the softmax layer (as in the paper) but have their own two LSTM layers each (with
projections back to the embedding size, and a residual connection around the second layer).

Feature-based use: for every token the biLM yields L+1 = 3 layers of representations — the token
embedding (duplicated to match the width) and the two LSTM layers, forward ⊕ backward — and a
downstream task learns how to mix them, ELMo_k = γ · Σ_j softmax(s)_j · h_{k,j}
(:class:`ScalarMix`), while the language models stay **frozen**. :class:`ElmoEncoder` packages that: ``features(ids)``
returns (batch, time, 2·embedding_size) for a tagger or a classifier.

Departure from the paper, documented: tokens are embedded from a word vocabulary (with ``<unk>``),
not by the character CNN, which mainly buys open-vocabulary input at a large compute cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from plmkit.config import FieldRules, config_from_dict, validate_fields
from plmkit.errors import PlmError
from plmkit.models.attention import masked_mean
from plmkit.models.dropout import Dropout
from plmkit.models.pretrained import MAX_LAYERS, PretrainedMixin


@dataclass
class ElmoConfig:
    vocab_size: int = 0
    embedding_size: int = 128   # token representation and LSTM projection size (512 in the paper)
    hidden_size: int = 512      # LSTM cell size (4096 in the paper)
    num_layers: int = 2
    dropout: float = 0.1
    residual: bool = True
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int = 3

    rules: ClassVar[FieldRules] = FieldRules(
        positive=("vocab_size", "embedding_size", "hidden_size", "num_layers"),
        probabilities=("dropout",), token_ids=("pad_token_id", "bos_token_id", "eos_token_id"),
        at_most={"num_layers": MAX_LAYERS})

    def __post_init__(self) -> None:
        validate_fields(self, self.rules)
        if self.hidden_size < self.embedding_size:
            raise PlmError("hidden_size must be ≥ embedding_size (the LSTM projects down to it)",
                           field="hidden_size")

    def parameter_estimate(self) -> dict[str, int]:
        """Shared embeddings and softmax, and 2·num_layers projected LSTMs."""
        d, h = self.embedding_size, self.hidden_size
        lstm = 4 * h * (2 * d + 2) + d * h * (h > d)  # W_ih, W_hh (projected), biases, W_hr
        return {"vocab_size": self.vocab_size * (2 * d + 1),
                "num_layers": 2 * self.num_layers * lstm}


@dataclass
class BiLMOutput:
    loss: Tensor | None
    forward_loss: Tensor | None
    backward_loss: Tensor | None
    layers: list[Tensor]          # L+1 tensors (batch, time, 2·embedding_size)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence within its own length; padding stays at the end."""
    batch, time = x.shape[:2]
    positions = torch.arange(time, device=x.device).expand(batch, time)
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)
    if x.dim() == 2:
        return x.gather(1, index)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class ElmoBiLM(PretrainedMixin, nn.Module):
    """Shared embeddings and softmax; forward and backward stacks of projected LSTMs."""

    config_class: ClassVar[type] = ElmoConfig
    model_type: ClassVar[str] = "elmo"

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__()
        self.config = config
        d, h = config.embedding_size, config.hidden_size
        self.embeddings = nn.Embedding(config.vocab_size, d, padding_idx=config.pad_token_id)
        self.forward_layers = nn.ModuleList(
            nn.LSTM(d, h, proj_size=d if h > d else 0, batch_first=True)
            for _ in range(config.num_layers))
        self.backward_layers = nn.ModuleList(
            nn.LSTM(d, h, proj_size=d if h > d else 0, batch_first=True)
            for _ in range(config.num_layers))
        self.dropout = Dropout(config.dropout)
        self.softmax = nn.Linear(d, config.vocab_size)

    @property
    def num_representation_layers(self) -> int:
        return self.config.num_layers + 1

    @property
    def output_size(self) -> int:
        return 2 * self.config.embedding_size

    def _run(self, layer: nn.LSTM, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = layer(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def directional_states(self, input_ids: Tensor, attention_mask: Tensor | None = None
                           ) -> tuple[Tensor, list[Tensor], list[Tensor], Tensor]:
        """Embeddings, forward layer outputs, backward layer outputs (in reading order), lengths."""
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        lengths = attention_mask.sum(1).clamp(min=1)
        embedded = self.embeddings(input_ids)
        forward_in, backward_in = embedded, reverse_padded(embedded, lengths)
        forward_states, backward_states = [], []
        for index, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            f = self._run(fwd, self.dropout(forward_in), lengths)
            b = self._run(bwd, self.dropout(backward_in), lengths)
            if self.config.residual and index > 0:
                f, b = f + forward_in, b + backward_in
            forward_states.append(f)
            backward_states.append(reverse_padded(b, lengths))
            forward_in, backward_in = f, b
        return embedded, forward_states, backward_states, lengths

    def representation_layers(self, input_ids: Tensor,
                              attention_mask: Tensor | None = None) -> list[Tensor]:
        """The L+1 layers, each (batch, time, 2·embedding_size): [x; x], [→h1; ←h1], …"""
        embedded, forward_states, backward_states, _ = self.directional_states(input_ids,
                                                                              attention_mask)
        layers = [torch.cat([embedded, embedded], dim=-1)]
        layers += [torch.cat([f, b], dim=-1) for f, b in zip(forward_states, backward_states)]
        return layers

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                compute_loss: bool = True) -> BiLMOutput:
        """``input_ids``: ``<s> w1 … wn </s>`` padded; the forward LM predicts w1 … </s>, the
        backward LM predicts <s> … wn, each from its own top layer."""
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        embedded, forward_states, backward_states, _ = self.directional_states(input_ids,
                                                                              attention_mask)
        layers = [torch.cat([embedded, embedded], dim=-1)]
        layers += [torch.cat([f, b], dim=-1) for f, b in zip(forward_states, backward_states)]
        if not compute_loss:
            return BiLMOutput(None, None, None, layers)
        mask = attention_mask.bool()
        next_labels = input_ids[:, 1:].masked_fill(~mask[:, 1:], -100)
        previous_labels = input_ids[:, :-1].masked_fill(~mask[:, :-1], -100)
        forward_logits = self.softmax(self.dropout(forward_states[-1][:, :-1]))
        backward_logits = self.softmax(self.dropout(backward_states[-1][:, 1:]))
        forward_loss = F.cross_entropy(forward_logits.flatten(0, 1).float(), next_labels.flatten())
        backward_loss = F.cross_entropy(backward_logits.flatten(0, 1).float(),
                                        previous_labels.flatten())
        return BiLMOutput((forward_loss + backward_loss) / 2, forward_loss, backward_loss, layers)


class ScalarMix(nn.Module):
    """γ · Σ_j softmax(s)_j · h_j: the task-specific weighting of the biLM's layers.

    γ is stored as ``scale`` (checkpoint loaders read ``*.gamma`` as a TF-era LayerNorm weight).
    """

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.scalar_parameters = nn.Parameter(torch.zeros(num_layers))
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, layers: list[Tensor]) -> Tensor:
        if len(layers) != len(self.scalar_parameters):
            raise PlmError(f"ScalarMix expects {len(self.scalar_parameters)} layers, got "
                           f"{len(layers)}")
        weights = torch.softmax(self.scalar_parameters, dim=0)
        return self.scale * sum(w * h for w, h in zip(weights, layers))


class ElmoEncoder(nn.Module):
    """A frozen biLM + learned scalar mix(es): contextual features for downstream models.

    ``features(input_ids, attention_mask)`` takes word ids *without* sentence boundaries (the
    encoder adds ``<s>``/``</s>`` for the biLM and strips them) and returns one tensor
    (batch, time, 2·embedding_size), or a list of ``num_output_representations`` of them (the
    paper uses separate mixes e.g. for the input and output of a task model).
    """

    def __init__(self, bilm: ElmoBiLM, num_output_representations: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.bilm = bilm
        for parameter in self.bilm.parameters():
            parameter.requires_grad_(False)
        self.mixes = nn.ModuleList(ScalarMix(bilm.num_representation_layers)
                                   for _ in range(num_output_representations))
        self.dropout = Dropout(dropout)

    @property
    def output_size(self) -> int:
        return self.bilm.output_size

    def train(self, mode: bool = True) -> ElmoEncoder:
        super().train(mode)
        self.bilm.eval()  # frozen: no dropout inside the language models either
        return self

    def _with_boundaries(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        return with_sentence_boundaries(self.bilm.config, input_ids, attention_mask)

    def features(self, input_ids: Tensor, attention_mask: Tensor | None = None
                 ) -> Tensor | list[Tensor]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ids, mask = self._with_boundaries(input_ids, attention_mask)
        with torch.no_grad():
            layers = self.bilm.representation_layers(ids, mask)
        layers = [layer[:, 1:-1] for layer in layers]  # drop <s> and </s>
        keep = attention_mask.unsqueeze(-1).to(layers[0].dtype)
        mixed = [self.dropout(mix(layers)) * keep for mix in self.mixes]
        return mixed[0] if len(mixed) == 1 else mixed

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None
                ) -> Tensor | list[Tensor]:
        return self.features(input_ids, attention_mask)


def with_sentence_boundaries(config: ElmoConfig, input_ids: Tensor,
                             attention_mask: Tensor) -> tuple[Tensor, Tensor]:
    """``w1 … wn`` (right-padded) → ``<s> w1 … wn </s>`` and its mask: what the biLM reads."""
    batch, time = input_ids.shape
    lengths = attention_mask.sum(1)
    ids = torch.full((batch, time + 2), config.pad_token_id, dtype=input_ids.dtype,
                     device=input_ids.device)
    ids[:, 0] = config.bos_token_id
    ids[:, 1:time + 1] = torch.where(attention_mask.bool(), input_ids,
                                     torch.full_like(input_ids, config.pad_token_id))
    ids[torch.arange(batch, device=ids.device), lengths + 1] = config.eos_token_id
    mask = (torch.arange(time + 2, device=ids.device).unsqueeze(0)
            < (lengths + 2).unsqueeze(1)).long()
    return ids, mask


# ------------------------------------------------------------------------------------- heads
@dataclass
class ElmoHeadConfig:
    """A task model on ELMo features: the biLM's config, the head's size and its kind."""

    num_labels: int = 2
    head: str = "tagging"          # "tagging" (per token) or "classification" (per sequence)
    dropout: float = 0.0
    bilm: dict[str, Any] = field(default_factory=dict)

    rules: ClassVar[FieldRules] = FieldRules(
        positive=("num_labels",), probabilities=("dropout",),
        choices={"head": ("tagging", "classification")})

    def __post_init__(self) -> None:
        validate_fields(self, self.rules)
        self.bilm_config()

    def bilm_config(self) -> ElmoConfig:
        """The biLM's config, checked like a top-level one (errors name ``bilm.FIELD``)."""
        try:
            return config_from_dict(ElmoConfig, self.bilm)
        except PlmError as exc:
            field = f"bilm.{exc.field}" if exc.field else "bilm"
            raise PlmError(exc.message, field=field) from None

    def parameter_estimate(self) -> dict[str, int]:
        bilm = self.bilm_config()
        parts = {f"bilm.{name}": count for name, count in bilm.parameter_estimate().items()}
        return {**parts, "num_labels": self.num_labels * (2 * bilm.embedding_size + 1) + 1}


@dataclass
class ElmoHeadOutput:
    logits: Tensor
    loss: Tensor | None = None


class ElmoForTask(PretrainedMixin, nn.Module):
    """Frozen biLM → ScalarMix → linear layer: a tagger (per token) or a classifier (mean of the
    token features). Only the mix and the head learn; the folder also holds the frozen biLM."""

    config_class: ClassVar[type] = ElmoHeadConfig
    model_type: ClassVar[str] = "elmo_task"

    def __init__(self, config: ElmoHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ElmoEncoder(ElmoBiLM(config.bilm_config()), dropout=config.dropout)
        self.classifier = nn.Linear(self.encoder.output_size, config.num_labels)

    @classmethod
    def embedding_rows(cls, config: ElmoHeadConfig) -> int | None:
        return config.bilm_config().vocab_size

    @classmethod
    def from_bilm(cls, bilm: ElmoBiLM, num_labels: int, head: str = "tagging",
                  dropout: float = 0.0) -> ElmoForTask:
        import dataclasses

        model = cls(ElmoHeadConfig(num_labels, head, dropout, dataclasses.asdict(bilm.config)))
        model.encoder.bilm.load_state_dict(bilm.state_dict())
        return model

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                labels: Tensor | None = None) -> ElmoHeadOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        features = self.encoder.features(input_ids, attention_mask)
        if self.config.head == "classification":
            logits = self.classifier(masked_mean(features, attention_mask))
        else:
            logits = self.classifier(features)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                   labels.reshape(-1), ignore_index=-100)
        return ElmoHeadOutput(logits, loss)


__all__ = ["ElmoConfig", "ElmoBiLM", "BiLMOutput", "ScalarMix", "ElmoEncoder", "ElmoHeadConfig",
           "ElmoForTask", "ElmoHeadOutput", "reverse_padded", "with_sentence_boundaries"]
