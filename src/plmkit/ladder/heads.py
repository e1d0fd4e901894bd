"""How each generation's pre-trained network feeds a task: word windows of static vectors, the
frozen layers of a recurrent LM or biLM mixed the ELMo way, the fine-tuned GPT stack, and one
classification/tagging head on top of any of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from plmkit.errors import PlmError
from plmkit.models.attention import masked_mean
from plmkit.models.dropout import Dropout
from plmkit.models.elmo import ScalarMix, with_sentence_boundaries
from plmkit.models.pretrained import PretrainedMixin
from plmkit.models.rnn import split_layers


@dataclass
class HeadOutput:
    loss: Tensor | None
    logits: Tensor


class WindowEmbeddings(nn.Module):
    """Word vectors of w_{t−1}, w_t, w_{t+1}, concatenated (Collobert & Weston's window): how
    static embeddings (NNLM's C, word2vec) feed a tagger or a classifier.

    ``freeze=False`` is the era's other use ("non-static", Collobert et al. 2011, Kim 2014): the
    pre-trained vectors only initialise a lookup table the task keeps training.
    """

    def __init__(self, matrix: Tensor, freeze: bool = True) -> None:
        super().__init__()
        # Centred, then each vector to length √d (components of unit scale). Briefly trained
        # vectors share one dominant direction (mean cosine ≈ 0.98 for skip-gram after three
        # epochs on 1,500 Chinese sentences: Mu & Viswanath's "all-but-the-top" effect), and
        # raw norms range from ~0 (rare words) to large (frequent ones): a small head learns
        # nothing from either without this.
        matrix = matrix.float()
        known = matrix.abs().sum(1) > 0          # rows of words the model never saw stay zero
        matrix = torch.where(known[:, None], matrix - matrix[known].mean(0), matrix)
        norms = matrix.norm(dim=1, keepdim=True).clamp(min=1e-8)
        matrix = matrix / norms * matrix.shape[1] ** 0.5
        self.embeddings = nn.Embedding.from_pretrained(matrix, freeze=freeze)
        self.output_size = 3 * matrix.shape[1]

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        x = self.embeddings(input_ids) * attention_mask.unsqueeze(-1)
        before = F.pad(x, (0, 0, 1, 0))[:, :-1]
        after = F.pad(x, (0, 0, 0, 1))[:, 1:]
        return torch.cat([before, x, after], dim=-1)


class FrozenLayers(nn.Module):
    """A frozen pre-trained network read the ELMo way: all its layers, mixed by learned weights
    (:class:`~plmkit.models.elmo.ScalarMix`).

    The network never changes, so each sentence's layers are computed once and kept (keyed by
    its ids): the head's epochs then cost a scalar mix and a linear layer, not a biLM pass.
    """

    def __init__(self, num_layers: int, output_size: int) -> None:
        super().__init__()
        self.mix = ScalarMix(num_layers)
        self.output_size = output_size
        self.cache: dict[bytes, list[Tensor]] = {}

    def layers_of(self, input_ids: Tensor, attention_mask: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        lengths = attention_mask.sum(1).tolist()
        keys = [input_ids[i, :n].cpu().numpy().tobytes() for i, n in enumerate(lengths)]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            with torch.no_grad():
                layers = self.layers_of(input_ids[missing], attention_mask[missing])
            for row, i in enumerate(missing):
                self.cache[keys[i]] = [layer[row, :lengths[i]].clone() for layer in layers]
        time = input_ids.shape[1]
        stacked = []
        for j in range(len(self.mix.scalar_parameters)):
            padded = nn.utils.rnn.pad_sequence([self.cache[k][j] for k in keys],
                                               batch_first=True)
            stacked.append(F.pad(padded, (0, 0, 0, time - padded.shape[1])))
        return self.mix(stacked) * attention_mask.unsqueeze(-1).to(stacked[0].dtype)


class RecurrentFeatures(FrozenLayers):
    """A frozen LSTM LM: its embeddings and every layer's states (one direction only)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__(lm.config.num_layers + 1, lm.config.hidden_size)
        self.embeddings = lm.embeddings
        self.layers = nn.ModuleList(split_layers(lm.rnn))
        for parameter in [*self.embeddings.parameters(), *self.layers.parameters()]:
            parameter.requires_grad_(False)

    def layers_of(self, input_ids: Tensor, attention_mask: Tensor) -> list[Tensor]:
        self.layers.eval()
        states = [self.embeddings(input_ids)]
        for layer in self.layers:
            states.append(layer(states[-1])[0])
        return states


class ElmoFeatures(FrozenLayers):
    """A frozen ELMo biLM: [x; x], [→h1; ←h1], [→h2; ←h2] of every word (``<s>``/``</s>``
    added for the biLM and dropped from the features)."""

    def __init__(self, bilm: nn.Module) -> None:
        super().__init__(bilm.num_representation_layers, bilm.output_size)
        self.bilm = bilm
        for parameter in bilm.parameters():
            parameter.requires_grad_(False)

    def layers_of(self, input_ids: Tensor, attention_mask: Tensor) -> list[Tensor]:
        self.bilm.eval()
        ids, mask = with_sentence_boundaries(self.bilm.config, input_ids, attention_mask)
        return [layer[:, 1:-1] for layer in self.bilm.representation_layers(ids, mask)]


class WordsAndContext(nn.Module):
    """[x_k; ELMo_k]: a frozen network's mixed layers concatenated with a fine-tuned window of
    word vectors — how Peters et al. (2018, §3.3) add ELMo to a task model ("concatenate the ELMo
    vector with x_k"), the task keeping its own context-independent word representation.

    The word window is exactly the static generations' head input (:class:`WindowEmbeddings`,
    here initialised from the language model's own input embeddings), so a contextual row differs
    from a static one by what the frozen LM adds, which is the step the ladder measures.
    """

    def __init__(self, words: WindowEmbeddings, context: FrozenLayers) -> None:
        super().__init__()
        self.words, self.context = words, context
        self.output_size = words.output_size + context.output_size

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return torch.cat([self.words(input_ids, attention_mask),
                          self.context(input_ids, attention_mask)], dim=-1)


class GPTFeatures(nn.Module):
    """The GPT decoder stack, fine-tuned with the head (GPT-1's recipe)."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer
        self.output_size = transformer.config.n_embd

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.transformer(input_ids, attention_mask).last_hidden_state


@dataclass
class FeatureHeadConfig:
    num_labels: int = 2
    head: str = "classification"   # or "tagging"
    pool: str = "mean"             # classification: "mean" of the tokens, or the "last" one
    dropout: float = 0.1
    hidden_size: int = 0           # 0: linear; else one tanh layer (Collobert & Weston's tagger)

    def __post_init__(self) -> None:
        if self.head not in ("classification", "tagging"):
            raise PlmError(f"head must be classification or tagging, not {self.head!r}",
                           field="head")
        if self.pool not in ("mean", "last"):
            raise PlmError(f"pool must be mean or last, not {self.pool!r}", field="pool")


class FeatureHead(PretrainedMixin, nn.Module):
    """encoder → dropout → linear: per token (tagging) or on a pooled state (classification).

    Pooling is the mean of the token features, or the last token's for a left-to-right model
    (only it has read the whole sentence). The forward signature is the fine-tuning models', so
    the fine-tuning tasks (:class:`ClassificationTask`, :class:`TaggingTask`) drive it unchanged.
    """

    config_class: ClassVar[type] = FeatureHeadConfig
    model_type: ClassVar[str] = "plmkit_feature_head"

    def __init__(self, encoder: nn.Module, config: FeatureHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder, self.head, self.pool = encoder, config.head, config.pool
        self.dropout = Dropout(config.dropout)
        size = encoder.output_size
        self.hidden = None
        if config.hidden_size:
            self.hidden = nn.Sequential(nn.Linear(size, config.hidden_size), nn.Tanh())
            size = config.hidden_size
        self.classifier = nn.Linear(size, config.num_labels)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, labels: Tensor | None = None) -> HeadOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        features = self.dropout(self.encoder(input_ids, attention_mask))
        if self.head == "classification":
            if self.pool == "last":
                last = attention_mask.sum(1).clamp(min=1) - 1
                features = features[torch.arange(len(last)), last]
            else:
                features = masked_mean(features, attention_mask)
        if self.hidden is not None:
            features = self.hidden(features)
        logits = self.classifier(features)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                   labels.reshape(-1), ignore_index=-100)
        return HeadOutput(loss, logits)
