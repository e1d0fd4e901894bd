"""The neural network language model of Bengio et al. (2003), as the seeds draw it.

Input: the n−1 previous words w_{t−n+1} … w_{t−1}. Each is looked up in one shared matrix C
(|V| × m) — the word embeddings, a by-product that word2vec later made the main product — and the
n−1 vectors are concatenated into x ((n−1)·m). Then

    y = b + W x + U tanh(d + H x),        P(w_t | context) = softmax(y)

with a tanh hidden layer (H, d: h units), its output weights U, the output bias b, and the
optional *direct connection* W from the embeddings straight to the output (the paper found it
speeds up learning; ``direct_connection=False`` drops it). Attribute names follow the formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from plmkit.config import FieldRules, validate_fields
from plmkit.errors import PlmError
from plmkit.models.dropout import Dropout
from plmkit.models.pretrained import PretrainedMixin


@dataclass
class LMOutput:
    """What the neural language models return: next-token logits, the mean cross-entropy (nats)
    when labels are given, and the recurrent state for models that carry one."""

    logits: Tensor
    loss: Tensor | None = None
    hidden: Any = None


def language_model_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy of next-token predictions (labels of ``ignore_index`` are skipped)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=ignore_index)


@dataclass
class NNLMConfig:
    vocab_size: int = 0
    context_size: int = 4        # n − 1 previous words
    embedding_size: int = 60     # m
    hidden_size: int = 100       # h
    direct_connection: bool = True
    dropout: float = 0.0
    init_range: float = 0.05

    rules: ClassVar[FieldRules] = FieldRules(
        positive=("vocab_size", "context_size", "embedding_size", "hidden_size"),
        non_negative=("init_range",), probabilities=("dropout",))

    def __post_init__(self) -> None:
        validate_fields(self, self.rules)

    def parameter_estimate(self) -> dict[str, int]:
        """C, H (+d), U, W and b, by the field that scales them."""
        window = self.context_size * self.embedding_size
        per_word = self.embedding_size + 1 + self.hidden_size + window * self.direct_connection
        return {"vocab_size": self.vocab_size * per_word,
                "context_size": (window + 1) * self.hidden_size}


class NNLM(PretrainedMixin, nn.Module):
    """y = b + W x + U tanh(d + H x) over the concatenated embeddings x of n−1 words."""

    config_class: ClassVar[type] = NNLMConfig
    model_type: ClassVar[str] = "nnlm"

    def __init__(self, config: NNLMConfig) -> None:
        super().__init__()
        self.config = config
        window = config.context_size * config.embedding_size
        self.C = nn.Embedding(config.vocab_size, config.embedding_size)
        self.H = nn.Linear(window, config.hidden_size)  # its bias is the paper's d
        self.U = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.W = (nn.Linear(window, config.vocab_size, bias=False)
                  if config.direct_connection else None)
        self.b = nn.Parameter(torch.zeros(config.vocab_size))
        self.dropout = Dropout(config.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = self.config.init_range
        for parameter in (self.C.weight, self.H.weight, self.U.weight):
            nn.init.uniform_(parameter, -r, r)
        nn.init.zeros_(self.H.bias)
        if self.W is not None:
            nn.init.zeros_(self.W.weight)

    def forward(self, input_ids: Tensor, labels: Tensor | None = None) -> LMOutput:
        """``input_ids``: (batch, n−1) previous words; ``labels``: (batch,) the next words."""
        if input_ids.shape[-1] != self.config.context_size:
            raise PlmError(f"the NNLM reads {self.config.context_size} previous words, got "
                           f"{input_ids.shape[-1]}", field="input_ids")
        x = self.dropout(self.C(input_ids).flatten(start_dim=-2))
        y = self.b + self.U(torch.tanh(self.H(x)))
        if self.W is not None:
            y = y + self.W(x)
        loss = language_model_loss(y, labels) if labels is not None else None
        return LMOutput(y, loss)


__all__ = ["NNLM", "NNLMConfig", "LMOutput", "language_model_loss"]
