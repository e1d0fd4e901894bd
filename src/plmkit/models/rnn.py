"""Recurrent language models: Elman RNN and LSTM (the seeds' section 6).

The RNN reads one word at a time and keeps a state, h_t = tanh(U x_t + W h_{t−1} + b), so the
prediction o_t = V h_t + c can depend on the whole history — not only the last n−1 words of an
n-gram model or NNLM. Its gradients through time are products of W·tanh′ and vanish (or explode)
over long spans; the LSTM's additive cell state c_t = f ⊙ c_{t−1} + i ⊙ g is the fix. The cells
themselves are PyTorch's (``nn.RNN`` / ``nn.LSTM``); the language model around them is:

* embeddings → (dropout) → stacked recurrent layers (dropout between layers) → (dropout) →
  softmax layer: Zaremba et al. (2014) regularisation, dropout only on the non-recurrent
  connections, so the state carries information across time undisturbed;
* **tied embeddings** (Press & Wolf 2017, Inan et al. 2017): the softmax layer reuses the input
  embedding matrix (needs ``embedding_size == hidden_size``), fewer parameters, better perplexity;
* the state is an input and an output of ``forward``, so a caller can carry it across
  consecutive batches of a contiguous stream (truncated back-propagation through time; see
  ``plmkit.training.tasks_lm.StreamLMTask``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from plmkit.config import FieldRules, validate_fields
from plmkit.errors import PlmError
from plmkit.models.dropout import Dropout
from plmkit.models.nnlm import LMOutput, language_model_loss
from plmkit.models.pretrained import MAX_LAYERS, PretrainedMixin

CELLS = ("rnn", "lstm")


@dataclass
class RNNLMConfig:
    vocab_size: int = 0
    cell: str = "lstm"
    embedding_size: int = 200
    hidden_size: int = 200
    num_layers: int = 2
    dropout: float = 0.0
    tie_weights: bool = False
    init_range: float = 0.1

    rules: ClassVar[FieldRules] = FieldRules(
        positive=("vocab_size", "embedding_size", "hidden_size", "num_layers"),
        non_negative=("init_range",), probabilities=("dropout",), choices={"cell": CELLS},
        at_most={"num_layers": MAX_LAYERS})

    def __post_init__(self) -> None:
        validate_fields(self, self.rules)
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise PlmError("tied embeddings need embedding_size == hidden_size "
                           f"({self.embedding_size} ≠ {self.hidden_size})", field="tie_weights")

    def parameter_estimate(self) -> dict[str, int]:
        """Embeddings, the stacked cells (4 gates for an LSTM) and the softmax layer."""
        e, h, gates = self.embedding_size, self.hidden_size, 4 if self.cell == "lstm" else 1
        first = gates * h * (e + h + 2)
        return {"vocab_size": self.vocab_size * (e + 1 + h * (not self.tie_weights)),
                "num_layers": first + (self.num_layers - 1) * gates * h * (2 * h + 2)}


class RNNLanguageModel(PretrainedMixin, nn.Module):
    """Embeddings → RNN/LSTM layers → softmax, with carried state and optional tied weights."""

    config_class: ClassVar[type] = RNNLMConfig
    model_type: ClassVar[str] = "rnn_lm"

    def __init__(self, config: RNNLMConfig) -> None:
        super().__init__()
        self.config = config
        self.tied_weights = ("decoder.weight",) if config.tie_weights else ()
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        between = config.dropout if config.num_layers > 1 else 0.0
        if config.cell == "lstm":
            self.rnn: nn.Module = nn.LSTM(config.embedding_size, config.hidden_size,
                                          config.num_layers, dropout=between, batch_first=True)
        else:
            self.rnn = nn.RNN(config.embedding_size, config.hidden_size, config.num_layers,
                              nonlinearity="tanh", dropout=between, batch_first=True)
        self.dropout = Dropout(config.dropout)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.reset_parameters()
        self.tie_weights()

    def reset_parameters(self) -> None:
        """Uniform(−r, r) everywhere (Zaremba: r = 0.05 medium, 0.04 large), zero output bias."""
        r = self.config.init_range
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -r, r)
        nn.init.zeros_(self.decoder.bias)

    def tie_weights(self) -> None:
        if self.config.tie_weights:
            self.decoder.weight = self.embeddings.weight

    def forward(self, input_ids: Tensor, hidden: Any = None,
                labels: Tensor | None = None) -> LMOutput:
        """``input_ids``: (batch, time); ``hidden``: the state after the previous batch or None
        (zeros); ``labels``: (batch, time) next words. Returns logits and the new state."""
        x = self.dropout(self.embeddings(input_ids))
        outputs, hidden = self.rnn(x, hidden)
        logits = self.decoder(self.dropout(outputs))
        loss = language_model_loss(logits, labels) if labels is not None else None
        return LMOutput(logits, loss, hidden)


def split_layers(rnn: nn.RNNBase) -> list[nn.RNNBase]:
    """Single-layer copies (same weights) of a stacked ``nn.LSTM``/``nn.RNN``.

    PyTorch's stacked cell only returns the top layer's states; reading an LSTM LM the way ELMo
    reads its biLM — every layer, mixed by learned weights — needs the layers one by one.
    """
    extra = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
    layers = []
    for k in range(rnn.num_layers):
        single = type(rnn)(rnn.input_size if k == 0 else rnn.hidden_size, rnn.hidden_size, 1,
                           bias=rnn.bias, batch_first=rnn.batch_first, **extra)
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ())
        for name in names:
            getattr(single, f"{name}_l0").data.copy_(getattr(rnn, f"{name}_l{k}").data)
        layers.append(single.to(next(rnn.parameters()).device))
    return layers


def detach_hidden(hidden: Any) -> Any:
    """Cut the graph at a batch edge (truncated BPTT) but keep the values."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


__all__ = ["RNNLanguageModel", "RNNLMConfig", "detach_hidden", "split_layers", "CELLS"]
