"""The ladder: every generation of the lineage trained on the same data and measured side by side.

n-gram → NNLM → word2vec → LSTM → ELMo → GPT → BERT. Each generation is *pre-trained* on the same
unlabelled text — the Penn Treebank training split (capped by the budget) for English, and the
characters of People's Daily's NER training split for Chinese — with plmkit's own code, then
used on the same two downstream tasks the way its era used it:

=========  ========================================  ===========================================
generation pre-training                               downstream (polarity / NER)
=========  ========================================  ===========================================
ngram      Kneser-Ney 5-gram counts                  class-conditional KN bigram LMs + Bayes rule;
                                                     a bigram HMM tagger (Viterbi): counting only
nnlm       Bengio's NNLM (Trainer)                   its embeddings C initialise a fine-tuned
                                                     lookup table, ±1-word window, small tanh
                                                     head (Collobert et al. 2011)
word2vec   skip-gram with negative sampling          the same with the skip-gram vectors
lstm       2-layer LSTM LM, tied (Trainer)           [x; mix]: the static rows' fine-tuned word
                                                     window (from the LM's embeddings) beside
                                                     a learned scalar mix of the frozen layers
elmo       biLM, forward + backward (Trainer)        the same with the frozen biLM (Peters et
                                                     al. 2018: "[x_k; ELMo_k]"), tanh head
gpt        GPT decoder, causal LM (Trainer)          fine-tuned: last token / every token → linear
bert       BERT, MLM + NSP (Trainer)                 fine-tuned with ``plm finetune``'s recipe
=========  ========================================  ===========================================

Every generation shares one word vocabulary (the capped PTB training text, ``<unk>`` for the rest;
BERT's WordPiece vocabulary is the same word list), so the held-out perplexities — word-level,
``</s>`` predicted, PTB test split — are comparable between the n-gram, NNLM, LSTM, ELMo's
forward LM and GPT. BERT's masked-LM loss is not a left-to-right perplexity and word2vec is not a
language model: those cells are "—". Downstream numbers are dev-set metrics (polarity accuracy,
entity-level F1), the best of the per-epoch evaluations for every trained head.

``from_scratch`` adds a control after GPT and BERT: the same network from the same initial weights,
fine-tuned the same way without pre-training, so the table shows what pre-training adds at the
budget instead of assuming it.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from plmkit.errors import PlmError
from plmkit.models.attention import masked_mean
from plmkit.models.pretrained import PretrainedMixin

GENERATIONS = ("ngram", "nnlm", "word2vec", "lstm", "elmo", "gpt", "bert")
DESCRIPTIONS = {
    "ngram": "KN 5-gram; class LMs / HMM",
    "nnlm": "NNLM (Bengio 2003), C fine-tuned",
    "word2vec": "skip-gram NS, vectors fine-tuned",
    "lstm": "2-layer LSTM LM: [words; frozen scalar mix]",
    "elmo": "biLM: [words; frozen scalar mix]",
    "gpt": "GPT (3 layers), fine-tuned",
    "bert": "BERT (2 layers), fine-tuned",
    "gpt-scratch": "GPT, same fine-tuning, no pre-training",
    "bert-scratch": "BERT, same fine-tuning, no pre-training",
}
# ``from_scratch`` controls: the same network and fine-tuning from random weights, after the row
# they control
CONTROLS = {"gpt": "gpt-scratch", "bert": "bert-scratch"}
MAX_WORDS = 64      # polarity sentences are cut to this many words
MAX_CHARS = 100     # NER sentences are cut to this many characters
BLOCK = 128         # GPT/BERT context (NER sentences fit, so positions are all trained)
PRETRAINING_RECORD = "pretraining.json"  # beside a ladder BERT's weights: what made them
REUSABLE_BERTS = (("bert_en", "English"), ("bert_zh", "Chinese"))  # LadderConfig field, language


def masked_lm_summary(metrics: Path, sentences: Sequence[Sequence[str]],
                      last: int = 10) -> dict[str, float]:
    """Where a masked LM ended (its last ``last`` logged windows) beside ``unigram_loss``: the
    cross-entropy of guessing each masked token by its corpus frequency, the stage a masked LM
    sits at until it learns to read the context."""
    from plmkit.training.reporting import read_metrics

    counts = Counter(token for sentence in sentences for token in sentence)
    total = sum(counts.values())
    summary = {"unigram_loss": round(-sum(c / total * math.log(c / total)
                                          for c in counts.values()), 4)}
    records = [r for r in read_metrics(metrics) if "mlm_loss" in r][-last:] \
        if metrics.is_file() else []
    for key in ("mlm_loss", "mlm_accuracy"):
        if records:
            summary[key] = round(float(np.mean([r[key] for r in records])), 4)
    return summary


def pretraining_record(folder: str | Path) -> dict[str, Any]:
    """What a ladder BERT checkpoint records of its pre-training ({} for other checkpoints)."""
    from plmkit.config import load_json

    path = Path(folder) / PRETRAINING_RECORD
    return load_json(path) if path.is_file() else {}


def describe_pretraining(record: dict[str, Any]) -> str:
    """A :data:`PRETRAINING_RECORD` in one phrase: how long, and where the masked LM ended
    beside the frequency guess ("" when the record does not say)."""
    if not {"epochs", "sentences", "steps", "batch_size", "seconds"} <= set(record):
        return ""
    text = (f"{record['epochs']:g} passes over {record['sentences']:,} sentences "
            f"({record['steps']:,} updates of {record['batch_size']}), "
            f"{record['seconds'] / 60:.0f} min")
    if {"mlm_loss", "mlm_accuracy", "unigram_loss"} <= set(record):
        text += (f"; its masked LM ended at {record['mlm_loss']:.2f} nats (accuracy "
                 f"{record['mlm_accuracy']:.3f}) against {record['unigram_loss']:.2f} for "
                 "guessing by frequency")
    return text


# ------------------------------------------------------------------------------------- config
@dataclass
class LadderConfig:
    """What ``plm ladder`` runs. Data fields left as None use the built-in datasets."""

    generations: tuple[str, ...] = GENERATIONS
    budget: float = 1.0
    corpus: str = "ptb"                 # 'ptb' or a text file, one sentence per line
    test_corpus: str | None = None      # held-out text (ptb: its test split)
    polarity_train: str | None = None   # CSV text,label (default: Pang & Lee via plmkit.datasets)
    polarity_dev: str | None = None
    ner_train: str | None = None        # CoNLL, one character a line (default: People's Daily)
    ner_dev: str | None = None
    # Pre-train the English generations on the polarity training split's text too (its labels
    # unused), as the Chinese side pre-trains on the NER training split's characters: without
    # it 30% of the movie reviews' words (funny, boring, fun, entertaining…) are <unk> in a
    # vocabulary of Wall Street Journal text, and only the counting generation reads them.
    task_text: bool = True
    # The polarity task again with only this many labelled sentences (0: not measured): where
    # counting has too few examples and pre-trained representations should pay most.
    few_labels: int = 320
    # …averaged over this many different draws of those sentences: one draw of 320 moved a
    # generation's accuracy by 0.07 between budgets, more than the gaps the column is meant
    # to show.
    few_draws: int = 3
    # Add a row after GPT and BERT with the same network fine-tuned from random weights: what
    # pre-training adds at this budget (the seeds' claim), measured rather than assumed.
    from_scratch: bool = False
    # Reuse a pre-trained BERT (a checkpoint folder: config.json, model.safetensors, vocab.txt)
    # instead of pre-training one within the budget: the English one for polarity, the Chinese
    # one for NER. BERT's masked LM needs far more updates than the ladder's minutes give it
    # (see ``pretrain_bert``); its -scratch control then takes the checkpoint's architecture
    # and vocabulary.
    bert_en: str | None = None
    bert_zh: str | None = None
    seed: int = 42
    progress: bool = True

    def reused_berts(self) -> list[tuple[str, str, str]]:
        """(field, language, checkpoint folder) of each BERT given to reuse."""
        return [(name, language, getattr(self, name)) for name, language in REUSABLE_BERTS
                if getattr(self, name) is not None]

    def __post_init__(self) -> None:
        self.generations = tuple(self.generations)
        if not self.generations:
            raise PlmError("choose at least one generation", field="generations")
        unknown = [g for g in self.generations if g not in GENERATIONS]
        if unknown:
            raise PlmError(f"unknown generation(s) {', '.join(map(repr, unknown))}; choose from "
                           f"{', '.join(GENERATIONS)}", field="generations")
        if len(set(self.generations)) != len(self.generations):
            raise PlmError("a generation is listed twice", field="generations")
        if not (isinstance(self.budget, (int, float)) and math.isfinite(self.budget)
                and self.budget > 0):
            raise PlmError(f"budget must be a positive number, not {self.budget!r}",
                           field="budget")
        if not isinstance(self.few_labels, int) or self.few_labels < 0:
            raise PlmError(f"few_labels must be an integer ≥ 0, not {self.few_labels!r}",
                           field="few_labels")
        if not isinstance(self.few_draws, int) or self.few_draws < 1:
            raise PlmError(f"few_draws must be an integer ≥ 1, not {self.few_draws!r}",
                           field="few_draws")
        if self.corpus != "ptb" and self.test_corpus is None:
            raise PlmError("a corpus file needs a held-out file too (test_corpus)",
                           field="test_corpus")
        pairs = (("polarity_train", "polarity_dev"), ("ner_train", "ner_dev"))
        for a, b in pairs:
            if (getattr(self, a) is None) != (getattr(self, b) is None):
                raise PlmError(f"give both {a} and {b}, or neither", field=a)
        for name, _, folder in self.reused_berts():
            if "bert" not in self.generations:
                raise PlmError(f"{name} is given but the bert generation is not run",
                               field=name)
            for needed in ("config.json", "vocab.txt"):
                if not (Path(folder) / needed).is_file():
                    raise PlmError(f"not a BERT checkpoint folder: no {needed}", path=folder,
                                   field=name)


@dataclass
class Plan:
    """The budget turned into sizes. Dev and test sets do not scale: metrics stay comparable."""

    lm_sentences: int
    zh_sentences: int
    polarity_train: int
    ner_train: int
    # People's Daily's dev split has about 4,470 sentences; 300 left one standard error of
    # entity F1 near ±0.025, more than the gaps between generations. 2,000 bring it near ±0.01
    # for about 5% more time at budget 10.
    ner_dev: int = 2000
    task_sentences: int = 0  # polarity training sentences added to the English pre-training text
    few_labels: int = 0      # the few-label polarity run's training sentences (0: not run)
    few_draws: int = 1       # …and how many different draws of them are averaged
    polarity_dev: int = 0    # the dev sentences behind each polarity accuracy
    vocab_size: int = 5000   # the shared word vocabulary (the rest is <unk>): the softmax's cost
    head_epochs: int = 15    # a small head on frozen features: cheap, needs many updates
    finetune_epochs: int = 3
    # Nine characters in ten are tagged O: fine-tuning a whole transformer for 3 epochs leaves it
    # predicting O everywhere (entity F1 0), so taggers get as many passes as the frozen heads.
    tagging_epochs: int = 15
    word2vec_epochs: int = 3
    # Pre-training passes of the transformers (the recurrent LMs make one): one pass left GPT at
    # perplexity 311 where four reach 156, the LSTM's level (budget 3).
    gpt_epochs: float = 4.0
    # BERT at batch 8 and 1e-3: at 2e-3 or more its MLM stays at the unigram stage (accuracy
    # 0.04 after 4 passes over 4,500 Chinese sentences, 0.10 at 1e-3); larger batches, fewer
    # updates, do worse at the same cost.
    bert_epochs: float = 2.0
    bert_batch_size: int = 8
    bert_lr: float = 1e-3
    # Fine-tuning rates from probes at budget 3 (NER F1 / polarity): GPT 0.34 / 0.70 at 2e-3
    # against 0.31 / 0.64 at 5e-4; BERT 0.43 / 0.66 at 1e-3 and batch 16 against 0.33 / 0.66 at
    # 5e-4 and batch 32.
    gpt_finetune_lr: float = 2e-3
    bert_finetune_lr: float = 1e-3
    bert_finetune_batch_size: int = 16

    @classmethod
    def from_budget(cls, budget: float) -> Plan:
        def scaled(base: int, floor: int = 8) -> int:
            return max(floor, int(round(base * budget)))

        return cls(lm_sentences=scaled(4000), zh_sentences=scaled(1500),
                   polarity_train=scaled(1600), ner_train=scaled(1200),
                   word2vec_epochs=max(1, min(10, int(round(3 * budget)))))


@dataclass
class Row:
    """One generation's line of the table (None: not comparable / not measured)."""

    generation: str
    model: str
    perplexity: float | None
    polarity_accuracy: float | None
    ner_f1: float | None
    polarity_few_accuracy: float | None   # the mean over the draws
    parameters: int
    seconds: float
    polarity_few_draws: list[float] = field(default_factory=list)  # each draw's accuracy


# ------------------------------------------------------------------------------------- data
@dataclass
class LadderData:
    """Everything the generations share, read once."""

    lm_train: list[list[str]]
    lm_test: list[list[str]]
    zh_train: list[list[str]]
    polarity_train: list[tuple[str, str]]          # (text, label)
    polarity_dev: list[tuple[str, str]]
    ner_train: list[tuple[list[str], list[str]]]   # (characters, BIO tags)
    ner_dev: list[tuple[list[str], list[str]]]
    polarity_labels: list[str] = field(default_factory=list)
    ner_labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.polarity_labels = sorted({label for _, label in self.polarity_train})
        self.ner_labels = sorted({t for _, tags in self.ner_train + self.ner_dev for t in tags})
        if len(self.polarity_labels) < 2:
            raise PlmError("the polarity training data needs at least two labels",
                           field="polarity_train")


_PTB_TOKENS = re.compile(r"[a-z]+(?=n't)|n't"                # does n't, wo n't, ca n't
                         r"|'(?:s|re|ve|ll|m|d)(?![a-z])"     # it 's, they 're, i 'd
                         r"|[a-z]+|\d[\d.,]*")


def words_of(text: str) -> list[str]:
    """English text → PTB-style tokens: lower case, words only, numbers as ``N``, clitics split
    the Treebank's way (``doesn't`` → ``does n't``, ``it's`` → ``it 's``, ``won't`` →
    ``wo n't``); other apostrophes (quotes) are dropped.

    The split matters: kept whole, ``it's`` or ``doesn't`` are words PTB never wrote, so every
    pre-trained generation would read them as ``<unk>``.
    """
    words = _PTB_TOKENS.findall(text.lower())
    return ["N" if w[0].isdigit() else w for w in words][:MAX_WORDS]


def _pick(items: Sequence, subset: Sequence[int] | None) -> list:
    """``items`` at the ``subset`` positions (all of them for None)."""
    return list(items) if subset is None else [items[i] for i in subset]


def _take(items: list, count: int, seed: int) -> list:
    """A fixed random subset of ``count`` items (all of them when fewer), in corpus order."""
    if count >= len(items):
        return list(items)
    keep = np.sort(np.random.default_rng(seed).permutation(len(items))[:count])
    return [items[i] for i in keep]


def load_data(config: LadderConfig, plan: Plan) -> LadderData:
    from plmkit.data.lm import read_sentences
    from plmkit.data.tasks import read_conll, read_text_examples

    if config.corpus == "ptb":
        from plmkit.datasets import ptb

        splits = ptb()
        train_path, test_path = splits["train"], Path(config.test_corpus or splits["test"])
    else:
        train_path, test_path = Path(config.corpus), Path(str(config.test_corpus))
    for path in (train_path, test_path):
        if not Path(path).is_file():
            raise PlmError("corpus file not found", path=path)
    lm_train = _take(read_sentences(train_path), plan.lm_sentences, config.seed)
    lm_test = read_sentences(test_path)
    if config.polarity_train is None:
        from plmkit.datasets import polarity

        pol = polarity()
        pol_train, pol_dev = pol["train"], pol["dev"]
    else:
        pol_train, pol_dev = config.polarity_train, str(config.polarity_dev)
    if config.ner_train is None:
        from plmkit.datasets import people_daily_ner

        ner = people_daily_ner()
        ner_train_path, ner_dev_path = ner["train"], ner["dev"]
    else:
        ner_train_path, ner_dev_path = config.ner_train, str(config.ner_dev)

    def polarity_rows(path) -> list[tuple[str, str]]:
        return [(e.text, str(e.label)) for e in read_text_examples(path)]

    def ner_rows(path) -> list[tuple[list[str], list[str]]]:
        from plmkit.evaluation.tagging import is_entity_tag

        rows = []
        for sentence in read_conll(path):
            wrong = [t for t in sentence.tags or [None] if t is None or not is_entity_tag(t)]
            if wrong:
                raise PlmError(f"NER data needs a BIO tag column (O, B-X, I-X); found "
                               f"{wrong[0]!r}", path=path, line=sentence.line)
            rows.append((sentence.tokens[:MAX_CHARS], sentence.tags[:MAX_CHARS]))
        return rows

    ner_all = ner_rows(ner_train_path)
    if not ner_all:
        raise PlmError("no sentence in the NER training data", path=ner_train_path)
    return LadderData(
        lm_train=lm_train, lm_test=lm_test,
        zh_train=[chars for chars, _ in _take(ner_all, plan.zh_sentences, config.seed)],
        polarity_train=_take(polarity_rows(pol_train), plan.polarity_train, config.seed),
        polarity_dev=polarity_rows(pol_dev),
        ner_train=_take(ner_all, plan.ner_train, config.seed + 1),
        ner_dev=_take(ner_rows(ner_dev_path), plan.ner_dev, config.seed))


# ------------------------------------------------------------------------------------- heads
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
        from plmkit.models.elmo import ScalarMix

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
        from plmkit.models.rnn import split_layers

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
        from plmkit.models.elmo import with_sentence_boundaries

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
        self.dropout = nn.Dropout(config.dropout)
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


# ------------------------------------------------------------------------------------- runner
class Ladder:
    """Runs the chosen generations on one :class:`LadderData` and collects their rows."""

    def __init__(self, config: LadderConfig, data: LadderData, plan: Plan, work: Path,
                 log: Callable[[str], None]) -> None:
        self.config, self.data, self.plan, self.work, self.log = config, data, plan, work, log
        self.reused_seconds = 0.0  # a reused checkpoint's recorded pre-training time (this row)
        self._reused_sizes: dict[str, int] = {}  # reused checkpoint → encoder parameters
        from plmkit.data.lm import Vocabulary

        # the counting generation learns from the task's own words; the others see them through
        # their pre-trained vocabulary
        self.raw_polarity_words = ([words_of(t) for t, _ in data.polarity_train],
                                   [words_of(t) for t, _ in data.polarity_dev])
        if config.task_text:
            data.lm_train = data.lm_train + [w for w in self.raw_polarity_words[0] if w]
        self.vocab = Vocabulary.build(data.lm_train, max_size=plan.vocab_size)
        self.zh_vocab = Vocabulary.build(data.zh_train)
        # Every generation reads the same token streams: words outside the vocabulary are <unk>.
        data.lm_train = self.in_vocabulary(data.lm_train)
        data.lm_test = self.in_vocabulary(data.lm_test)
        self.polarity_words = tuple(map(self.in_vocabulary, self.raw_polarity_words))
        # the few-label runs' training sentences: fixed subsets, the same for every generation
        self.few_subsets = [
            np.sort(np.random.default_rng(config.seed + 2 + draw).permutation(
                len(data.polarity_train))[:plan.few_labels]).tolist()
            for draw in range(plan.few_draws if plan.few_labels else 0)]

    def in_vocabulary(self, sentences: list[list[str]]) -> list[list[str]]:
        known, unk = self.vocab.stoi, self.vocab.unk
        return [[w if w in known else unk for w in sentence] for sentence in sentences]

    # ---------------------------------------------------------------- shared pieces
    def training(self, name: str, *, epochs: float, lr: float, eval_every: int = 0,
                 optimizer: str = "adamw", max_steps: int = 0, max_grad_norm: float = 5.0,
                 **extra: Any):
        from plmkit.training.trainer import TrainingConfig

        return TrainingConfig(output_dir=str(self.work / name), num_epochs=epochs,
                              max_steps=max_steps, learning_rate=lr, optimizer=optimizer,
                              weight_decay=0.0, schedule="linear", warmup_ratio=0.05,
                              max_grad_norm=max_grad_norm, seed=self.config.seed, log_every=20,
                              eval_every=eval_every, save_every=0, keep_last=1,
                              progress=self.config.progress, plot=False, save_final=False,
                              **extra)

    def _features(self, task: str, vocab, subset: Sequence[int] | None = None
                  ) -> tuple[list[dict], list[dict], Any]:
        """(train, dev) feature dicts of a task in ``vocab``'s ids (``subset``: only these
        training examples), and the task object."""
        from plmkit.training.finetune import ClassificationTask, TaggingTask

        if task == "polarity":
            label2id = {label: i for i, label in enumerate(self.data.polarity_labels)}
            words_train, words_dev = self.polarity_words

            def encode(words: list[str], label: str, index: int) -> dict:
                ids = vocab.encode(words or ["<unk>"]).tolist()
                return {"input_ids": ids, "labels": label2id.get(label, 0), "example_index": index}

            train = [encode(w, lab, i) for i, (w, (_, lab)) in
                     enumerate(zip(words_train, self.data.polarity_train))]
            dev = [encode(w, lab, i) for i, (w, (_, lab)) in
                   enumerate(zip(words_dev, self.data.polarity_dev))]
            task = ClassificationTask(dict(enumerate(self.data.polarity_labels)))
            return _pick(train, subset), dev, task
        label2id = {label: i for i, label in enumerate(self.data.ner_labels)}

        def tagged(chars: list[str], tags: list[str], index: int) -> dict:
            return {"input_ids": vocab.encode(chars).tolist(),
                    "labels": [label2id[t] for t in tags],
                    "word_ids": list(range(len(chars))), "example_index": index}

        train = [tagged(c, t, i) for i, (c, t) in enumerate(self.data.ner_train)]
        dev = [tagged(c, t, i) for i, (c, t) in enumerate(self.data.ner_dev)]
        references = [tags for _, tags in self.data.ner_dev]
        return train, dev, TaggingTask(dict(enumerate(self.data.ner_labels)), references, "bio")

    def fit_head(self, name: str, task: str, encoder: nn.Module, vocab, *, pool: str = "mean",
                 lr: float = 1e-2, epochs: int | None = None, batch_size: int = 16,
                 hidden_size: int = 128, subset: Sequence[int] | None = None) -> float:
        """Train a FeatureHead through the Trainer; its best dev metric over the epochs.

        With ``subset`` (the few-label run) the epochs grow by the ratio of the full training set
        to the subset: the head gets as many updates as with every label, only less to learn from.
        """
        from plmkit.data.collate import Batches
        from plmkit.data.lm import PAD
        from plmkit.data.tasks import TaskCollator
        from plmkit.training.trainer import Trainer

        train, dev, task_object = self._features(task, vocab, subset)
        epochs = self._epochs(epochs or self.plan.head_epochs, subset)
        num_labels = (len(self.data.polarity_labels) if task == "polarity"
                      else len(self.data.ner_labels))
        head = "classification" if task == "polarity" else "tagging"
        torch.manual_seed(self.config.seed)
        model = FeatureHead(encoder, FeatureHeadConfig(num_labels, head, pool,
                                                       hidden_size=hidden_size))
        collate = TaskCollator(vocab.index(PAD))
        train_batches = Batches(train, batch_size, collate, shuffle=True, seed=self.config.seed,
                                lengths=[len(f["input_ids"]) for f in train])
        dev.sort(key=lambda f: -len(f["input_ids"]))  # results are keyed by example_index
        dev_batches = Batches(dev, 64, collate, shuffle=False)
        run = self.run_name(f"{name}-{task}", subset)
        metric = "eval_accuracy" if task == "polarity" else "eval_f1"
        training = self.training(run, epochs=epochs, lr=lr, metric_for_best=metric)
        trainer = Trainer(model, task_object, train_batches, training, eval_data=dev_batches)
        trainer.train()
        if trainer.state.best_metric is None:
            raise PlmError(f"{run}: the Trainer reported no {metric}")
        return float(trainer.state.best_metric)

    def log_pretraining(self, sentences: Sequence, vocab) -> None:
        language = "English" if vocab is self.vocab else "Chinese"
        self.log(f"  pre-training on {len(sentences):,} {language} sentences")

    def _epochs(self, epochs: float, subset: Sequence[int] | None) -> float:
        if subset is None:
            return epochs
        return epochs * len(self.data.polarity_train) / max(1, len(subset))

    def run_name(self, name: str, subset: Sequence[int] | None) -> str:
        """``name`` for the full training set, ``name-few2`` for the second few-label draw."""
        if subset is None:
            return name
        return f"{name}-few{self.few_subsets.index(list(subset)) + 1}"

    def both_polarities(self, measure: Callable[[Sequence[int] | None], float]
                        ) -> tuple[float, list[float]]:
        """``measure(subset)`` with every training label (``subset`` None), then with each
        few-label draw (none when not run): the one place every generation's polarity goes
        through."""
        full = measure(None)
        draws = []
        for number, subset in enumerate(self.few_subsets, 1):
            self.log(f"  polarity with {len(subset):,} labelled sentences "
                     f"(draw {number}/{len(self.few_subsets)})")
            draws.append(measure(subset))
        return full, draws

    def polarity(self, name: str, encoder: Callable[[], nn.Module], **head: Any
                 ) -> tuple[float, list[float]]:
        """A :class:`FeatureHead`'s polarity accuracy with every label and with each few-label
        draw (:meth:`both_polarities`); ``encoder`` builds a fresh encoder, since each run
        fine-tunes its own."""
        return self.both_polarities(lambda subset: self.fit_head(
            name, "polarity", encoder(), self.vocab, subset=subset, **head))

    # ---------------------------------------------------------------- generations
    def run(self, generation: str) -> Row:
        started = time.perf_counter()
        self.reused_seconds = 0.0
        method = getattr(self, f"run_{generation.replace('-', '_')}")
        perplexity, (polarity, draws), ner, parameters = method()
        return Row(generation, self.describe(generation), perplexity, polarity, ner,
                   float(np.mean(draws)) if draws else None, parameters,
                   time.perf_counter() - started + self.reused_seconds, draws)

    def describe(self, generation: str) -> str:
        """The table's model cell: says when BERT's pre-training was reused."""
        reused = [language for _, language, _ in self.config.reused_berts()]
        if generation == "bert" and reused:
            return f"BERT, fine-tuned; {' and '.join(reused)} pre-training reused"
        if generation == "bert-scratch" and reused:
            return f"BERT, same fine-tuning, no pre-training ({' and '.join(reused)}: " \
                   f"the reused checkpoint's network)"
        return DESCRIPTIONS[generation]

    def run_ngram(self) -> tuple:
        from plmkit.models.ngram import NgramLM

        self.log("  counting a Kneser-Ney 5-gram LM")
        lm = NgramLM.train(self.data.lm_train, 5, "kn")
        perplexity = lm.perplexity(self.data.lm_test).perplexity
        self.log("  polarity: class-conditional KN bigram LMs")
        train = list(zip(self.raw_polarity_words[0], (lab for _, lab in self.data.polarity_train)))
        dev = list(zip(self.raw_polarity_words[1], (lab for _, lab in self.data.polarity_dev)))
        polarity = self.both_polarities(lambda subset: ngram_classifier_accuracy(
            _pick(train, subset), dev, self.data.polarity_labels))
        self.log("  NER: bigram HMM tagger")
        ner = hmm_tagger_f1(self.data.ner_train, self.data.ner_dev)
        return perplexity, polarity, ner, int(sum(lm.num_ngrams()))

    def _train_lm(self, arch: str, sentences, vocab, name: str, **sizes: Any) -> nn.Module:
        from plmkit.training.tasks_lm import LMRecipe, default_optimization, train_language_model

        recipes = {"nnlm": LMRecipe("nnlm", batch_size=128, order=5),
                   "lstm": LMRecipe("lstm", batch_size=4, bptt=35),
                   "elmo": LMRecipe("elmo", batch_size=4, max_sentence_length=MAX_CHARS)}
        # Small batches: at a budget of minutes the number of updates is what is scarce; for
        # the same reason the Adam-trained NNLM gets 3× plm train-lm's rate.
        default = default_optimization(arch)
        lr = default.learning_rate * (3 if default.optimizer == "adam" else 1)
        torch.manual_seed(self.config.seed)
        training = self.training(name, epochs=1.0, lr=lr, optimizer=default.optimizer,
                                 max_grad_norm=default.max_grad_norm)
        model, _ = train_language_model(recipes[arch], sentences, vocab, training, **sizes)
        return model.eval()

    def _lm_perplexity(self, arch: str, model: nn.Module, key: str = "perplexity") -> float:
        from plmkit.training.tasks_lm import LMRecipe, evaluate_language_model

        recipe = LMRecipe(arch, batch_size=128 if arch == "nnlm" else 20, order=5)
        return evaluate_language_model(recipe, model, self.data.lm_test, self.vocab)[key]

    def run_nnlm(self) -> tuple:
        # without the direct connection W, which would double the cost of the softmax layer
        sizes = dict(embedding_size=64, hidden_size=128, direct_connection=False)
        self.log_pretraining(self.data.lm_train, self.vocab)
        lm = self._train_lm("nnlm", self.data.lm_train, self.vocab, "nnlm-en", **sizes)
        perplexity = self._lm_perplexity("nnlm", lm)
        polarity = self.polarity("nnlm", lambda: self._static(lm.C.weight))
        self.log_pretraining(self.data.zh_train, self.zh_vocab)
        zh = self._train_lm("nnlm", self.data.zh_train, self.zh_vocab, "nnlm-zh", **sizes)
        ner = self.fit_head("nnlm", "ner", self._static(zh.C.weight), self.zh_vocab)
        return perplexity, polarity, ner, lm.num_parameters()

    def _word2vec(self, sentences, vocab) -> Tensor:
        """Skip-gram vectors as a matrix in ``vocab``'s order (zeros for words it lacks)."""
        from plmkit.models.word2vec import Word2VecConfig
        from plmkit.training.tasks_lm import train_word2vec

        config = Word2VecConfig(arch="sg", vector_size=100, min_count=1, window=5,
                                epochs=self.plan.word2vec_epochs, workers=2,
                                seed=self.config.seed, batch_words=10000)
        run = train_word2vec(sentences, config, progress=self.config.progress)
        matrix = np.zeros((len(vocab), config.vector_size), dtype=np.float32)
        for index, word in enumerate(vocab.itos):
            if word in run.vectors:
                matrix[index] = run.vectors[word]
        return torch.from_numpy(matrix)

    @staticmethod
    def _static(matrix: Tensor) -> WindowEmbeddings:
        """Static vectors initialise a lookup table the task fine-tunes: frozen, these briefly
        trained vectors (smooth, one dominant direction) leave a small head predicting ``O``
        for every character within the budget, while fine-tuned ones also learn each word's
        identity."""
        return WindowEmbeddings(matrix.detach().clone(), freeze=False)

    def run_word2vec(self) -> tuple:
        self.log(f"  skip-gram on {len(self.data.lm_train):,} English sentences")
        english = self._word2vec(self.data.lm_train, self.vocab)
        polarity = self.polarity("word2vec", lambda: self._static(english))
        self.log(f"  skip-gram on {len(self.data.zh_train):,} Chinese sentences")
        chinese = self._word2vec(self.data.zh_train, self.zh_vocab)
        ner = self.fit_head("word2vec", "ner", self._static(chinese), self.zh_vocab)
        # input and output vectors (syn0, syn1neg) are both trained parameters
        return None, polarity, ner, 2 * english.numel()

    def _contextual(self, lm: nn.Module, context: FrozenLayers) -> WordsAndContext:
        return WordsAndContext(self._static(lm.embeddings.weight), context)

    def run_lstm(self) -> tuple:
        sizes = dict(embedding_size=128, hidden_size=128, num_layers=2, dropout=0.1,
                     tie_weights=True)
        self.log_pretraining(self.data.lm_train, self.vocab)
        lm = self._train_lm("lstm", self.data.lm_train, self.vocab, "lstm-en", **sizes)
        perplexity = self._lm_perplexity("lstm", lm)
        polarity = self.polarity("lstm", lambda: self._contextual(lm, RecurrentFeatures(lm)))
        self.log_pretraining(self.data.zh_train, self.zh_vocab)
        zh = self._train_lm("lstm", self.data.zh_train, self.zh_vocab, "lstm-zh", **sizes)
        ner = self.fit_head("lstm", "ner", self._contextual(zh, RecurrentFeatures(zh)),
                            self.zh_vocab)
        return perplexity, polarity, ner, lm.num_parameters()

    def run_elmo(self) -> tuple:
        sizes = dict(embedding_size=128, hidden_size=128, num_layers=2, dropout=0.1)
        self.log(f"  pre-training a biLM on {len(self.data.lm_train):,} English sentences")
        lm = self._train_lm("elmo", self.data.lm_train, self.vocab, "elmo-en", **sizes)
        perplexity = self._lm_perplexity("elmo", lm, "forward_perplexity")
        polarity = self.polarity("elmo", lambda: self._contextual(lm, ElmoFeatures(lm)))
        self.log(f"  pre-training a biLM on {len(self.data.zh_train):,} Chinese sentences")
        zh = self._train_lm("elmo", self.data.zh_train, self.zh_vocab, "elmo-zh", **sizes)
        ner = self.fit_head("elmo", "ner", self._contextual(zh, ElmoFeatures(zh)), self.zh_vocab)
        return perplexity, polarity, ner, lm.num_parameters()

    def _gpt(self, sentences, vocab, name: str, pretrain: bool = True) -> nn.Module:
        """A GPT causal LM on ``sentences`` (``pretrain=False``: left at its random weights)."""
        from plmkit.data.lm import EOS, PAD, encode_stream
        from plmkit.data.text_lm import lm_batches
        from plmkit.models.gpt import GPTLMHeadModel, gpt_config
        from plmkit.training.causal_lm import CausalLMTask
        from plmkit.training.trainer import Trainer

        torch.manual_seed(self.config.seed)
        config = gpt_config("nano", vocab_size=len(vocab), n_positions=BLOCK, n_embd=96,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            activation_function="gelu", eos_token_id=vocab.index(EOS),
                            bos_token_id=vocab.index(EOS), pad_token_id=vocab.index(PAD))
        model = GPTLMHeadModel(config)
        if not pretrain:
            return model.eval()
        self.log_pretraining(sentences, vocab)
        stream = encode_stream(sentences, vocab)
        block = max(2, min(BLOCK, (len(stream) - 1) // 2))
        batches = lm_batches(stream, block, 4, train=True, seed=self.config.seed)
        Trainer(model, CausalLMTask(), batches,
                self.training(name, epochs=self.plan.gpt_epochs, lr=2e-3)).train()
        return model.eval()

    def run_gpt(self, pretrain: bool = True) -> tuple:
        from plmkit.data.lm import encode_stream
        from plmkit.training.causal_lm import evaluate_lm

        name = "gpt" if pretrain else "gpt-scratch"
        lm = self._gpt(self.data.lm_train, self.vocab, f"{name}-en", pretrain)
        perplexity = None
        if pretrain:
            test = encode_stream(self.data.lm_test, self.vocab)
            perplexity = evaluate_lm(lm, test, BLOCK, 32)["perplexity"]
        parameters = lm.num_parameters()
        finetuning = dict(lr=self.plan.gpt_finetune_lr, batch_size=32, hidden_size=0)
        polarity = self.polarity(name, lambda: GPTFeatures(copy.deepcopy(lm.transformer)),
                                 pool="last", epochs=self.plan.finetune_epochs, **finetuning)
        zh = self._gpt(self.data.zh_train, self.zh_vocab, f"{name}-zh", pretrain)
        ner = self.fit_head(name, "ner", GPTFeatures(zh.transformer), self.zh_vocab,
                            epochs=self.plan.tagging_epochs, **finetuning)
        return perplexity, polarity, ner, parameters

    def run_gpt_scratch(self) -> tuple:
        return self.run_gpt(pretrain=False)

    def _bert(self, sentences, vocab, name: str, max_seq_length: int, pretrain: bool = True,
              reuse: str | None = None) -> tuple[Path, int]:
        """Pre-train a small BERT (MLM + NSP) whose WordPiece vocabulary is ``vocab``'s words
        (``pretrain=False``: saved at its random weights; ``reuse``: a pre-trained checkpoint
        folder to take instead)."""
        if reuse is not None:
            return self._reused_bert(Path(reuse), name, pretrain)
        from plmkit.data.collate import Batches
        from plmkit.data.lm import LM_SPECIALS
        from plmkit.data.shards import PretrainingDataset, collate_pretraining, prepare_pretraining
        from plmkit.models.bert import BertForPreTraining, bert_config
        from plmkit.tokenization import WordPieceTokenizer
        from plmkit.training.tasks import PretrainingTask
        from plmkit.training.trainer import Trainer

        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        words = list(dict.fromkeys(w.lower() for w in vocab.itos if w not in LM_SPECIALS))
        tokenizer = WordPieceTokenizer(specials + words, lowercase=True)
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        pad = tokenizer.pad_token_id
        torch.manual_seed(self.config.seed)
        model = BertForPreTraining(bert_config("tiny", vocab_size=tokenizer.vocab_size,
                                               pad_token_id=pad, max_position_embeddings=BLOCK))
        checkpoint = folder / "model"
        if pretrain:
            self.log_pretraining(sentences, vocab)
            corpus = folder / "corpus.txt"
            documents = [sentences[i:i + 20] for i in range(0, len(sentences), 20)]
            with open(corpus, "w", encoding="utf-8") as handle:
                for document in documents:
                    for sentence in document:
                        handle.write(" ".join("[UNK]" if w == "<unk>" else w
                                                 for w in sentence) + "\n")
                    handle.write("\n")
            shards = folder / "shards"
            prepare_pretraining(corpus, tokenizer, shards, max_seq_length=max_seq_length,
                                dupe_factor=1, seed=self.config.seed, progress=False)
            dataset = PretrainingDataset(shards, tokenizer, max_predictions_per_seq=20,
                                         dynamic_masking=True, seed=self.config.seed)
            batches = Batches(dataset, self.plan.bert_batch_size,
                              lambda rows: collate_pretraining(rows, pad),
                              seed=self.config.seed, lengths=dataset.lengths)
            training = self.training(f"{name}/run", epochs=self.plan.bert_epochs,
                                     lr=self.plan.bert_lr)
            started = time.perf_counter()
            result = Trainer(model, PretrainingTask(), batches, training).train()
            record = {"sentences": len(sentences), "epochs": self.plan.bert_epochs,
                      "steps": result.global_step, "batch_size": self.plan.bert_batch_size,
                      "learning_rate": self.plan.bert_lr, "max_seq_length": max_seq_length,
                      "seconds": round(time.perf_counter() - started, 1), "seed": self.config.seed,
                      **masked_lm_summary(folder / "run" / "metrics.jsonl", sentences)}
        model.save_pretrained(checkpoint)
        tokenizer.save_pretrained(checkpoint)
        if pretrain:
            (checkpoint / PRETRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n",
                                                         encoding="utf-8")
        return checkpoint, model.bert.num_parameters()

    def _reused_bert(self, source: Path, name: str, pretrain: bool) -> tuple[Path, int]:
        """The checkpoint itself, or (``pretrain=False``, the control) a model of its
        architecture and vocabulary at the ladder's seeded random weights: the initial weights
        the ladder's own pre-training starts from, so a checkpoint made by :func:`pretrain_bert`
        is compared with exactly where it began."""
        from plmkit.models.bert import BertForPreTraining
        from plmkit.tokenization import WordPieceTokenizer

        if pretrain:
            record = pretraining_record(source)
            self.reused_seconds += float(record.get("seconds", 0.0))
            summary = describe_pretraining(record)
            self.log(f"  reusing the pre-trained BERT in {source}"
                     + (f" ({summary})" if summary else ""))
            return source, self.reused_parameters(source)
        torch.manual_seed(self.config.seed)
        model = BertForPreTraining(BertForPreTraining.load_config(source))
        checkpoint = self.work / name / "model"
        model.save_pretrained(checkpoint, tokenizer=WordPieceTokenizer.from_pretrained(source))
        return checkpoint, model.bert.num_parameters()

    def reused_parameters(self, folder: str | Path) -> int:
        """The encoder parameters of a reused checkpoint, loading it once (the check before the
        first generation, then its row)."""
        from plmkit.models.bert import BertModel

        key = str(folder)
        if key not in self._reused_sizes:
            self._reused_sizes[key] = BertModel.from_pretrained(folder).num_parameters()
        return self._reused_sizes[key]

    def check_reused_berts(self) -> None:
        """Load every reused BERT before the first generation runs, and stop if its
        vocabulary misses most of its task's tokens: an English vocabulary given for the
        Chinese NER would fine-tune on [UNK] alone, an hour later."""
        from plmkit.tokenization import WordPieceTokenizer

        for name, _, folder in self.config.reused_berts():
            self.reused_parameters(folder)
            tokenizer = WordPieceTokenizer.from_pretrained(folder)
            # by running tokens, not distinct ones: a small vocabulary misses most rare words
            counts = (Counter(w for words in self.raw_polarity_words[0] for w in words)
                      if name == "bert_en" else
                      Counter(c for chars, _ in self.data.ner_train for c in chars))
            unknown = sum(n for t, n in counts.items()
                          if tokenizer.encode(t, add_special_tokens=False).ids
                          == [tokenizer.unk_token_id])
            share = unknown / max(1, sum(counts.values()))
            if share > 0.5:
                raise PlmError(f"its vocabulary misses {share:.0%} of the task's tokens "
                               f"(a checkpoint for the other language?)", path=folder, field=name)

    def _bert_finetune(self, checkpoint: Path, task: str,
                       subset: Sequence[int] | None = None, name: str = "bert") -> float:
        from plmkit.training.finetune import FinetuneConfig, TaskSettings, finetune

        run = self.run_name(f"{name}-{task}", subset)
        folder = self.work / f"{run}-data"
        folder.mkdir(parents=True, exist_ok=True)
        if task == "polarity":
            train, dev = folder / "train.csv", folder / "dev.csv"
            labelled = _pick(self.data.polarity_train, subset)
            for path, rows in ((train, labelled), (dev, self.data.polarity_dev)):
                with open(path, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(["text", "label"])
                    writer.writerows(rows)
            settings, metric = TaskSettings(task="classify", max_length=MAX_WORDS + 2), "accuracy"
        else:
            from plmkit.data.tasks import write_conll

            train, dev = folder / "train.txt", folder / "dev.txt"
            write_conll(train, self.data.ner_train)
            write_conll(dev, self.data.ner_dev)
            settings, metric = TaskSettings(task="tag", max_length=BLOCK), "f1"
        result = finetune(FinetuneConfig(
            task=settings.task, model=str(checkpoint), train=str(train), dev=str(dev),
            output_dir=str(self.work / run),
            epochs=self._epochs(self.plan.finetune_epochs if task == "polarity"
                                else self.plan.tagging_epochs, subset),
            eval_every=0, batch_size=self.plan.bert_finetune_batch_size,
            learning_rate=self.plan.bert_finetune_lr,
            warmup_ratio=0.1,
            seed=self.config.seed,
            progress=self.config.progress, plot=False, device="cpu", keep_last=1,
            settings=settings))
        return float(result.dev_metrics.get(metric, 0.0))

    def run_bert(self, pretrain: bool = True) -> tuple:
        name = "bert" if pretrain else "bert-scratch"
        english, parameters = self._bert(self.data.lm_train, self.vocab, f"{name}-en", MAX_WORDS,
                                         pretrain, self.config.bert_en)
        polarity = self.both_polarities(
            lambda subset: self._bert_finetune(english, "polarity", subset, name))
        chinese, _ = self._bert(self.data.zh_train, self.zh_vocab, f"{name}-zh", BLOCK, pretrain,
                                self.config.bert_zh)
        ner = self._bert_finetune(chinese, "ner", name=name)
        return None, polarity, ner, parameters

    def run_bert_scratch(self) -> tuple:
        return self.run_bert(pretrain=False)


# ------------------------------------------------------------------------------------- counting
def ngram_classifier_accuracy(train: Sequence[tuple[list[str], str]],
                              dev: Sequence[tuple[list[str], str]], labels: Sequence[str]) -> float:
    """Bayes rule over class-conditional KN bigram LMs: argmax_c log P(c) + log P(text | c).

    ``train`` and ``dev`` are (words, label) pairs."""
    from plmkit.models.ngram import NgramLM

    by_label = {label: [w for w, lab in train if lab == label] for label in labels}
    models = {label: NgramLM.train([s for s in sents if s] or [["<unk>"]], 2, "kn")
              for label, sents in by_label.items()}
    total = sum(len(s) for s in by_label.values())
    prior = {label: math.log10(max(1, len(by_label[label])) / total) for label in labels}
    correct = 0
    for words, gold in dev:
        scores = {label: prior[label] + models[label].sentence_logprob(words) for label in labels}
        correct += max(scores, key=scores.get) == gold
    return correct / max(1, len(dev))


def hmm_tagger_f1(train: Sequence[tuple[list[str], list[str]]],
                  dev: Sequence[tuple[list[str], list[str]]]) -> float:
    """A bigram hidden Markov model from counts (add-one transitions, add-0.1 emissions),
    decoded with Viterbi: the counting generation's tagger."""
    from plmkit.evaluation.tagging import entity_scores

    tags = sorted({t for _, ts in train for t in ts} | {"O"})
    index = {t: i for i, t in enumerate(tags)}
    chars = Counter(c for cs, _ in train for c in cs)
    vocab = {c: i for i, c in enumerate(chars)}
    unk = len(vocab)
    transition = np.ones((len(tags) + 1, len(tags)))  # row len(tags) is the start state
    emission = np.full((len(tags), unk + 1), 0.1)
    for cs, ts in train:
        previous = len(tags)
        for c, t in zip(cs, ts):
            transition[previous, index[t]] += 1
            emission[index[t], vocab[c]] += 1
            previous = index[t]
    log_t = np.log(transition / transition.sum(1, keepdims=True))
    log_e = np.log(emission / emission.sum(1, keepdims=True))
    predictions = []
    for cs, _ in dev:
        ids = [vocab.get(c, unk) for c in cs]
        if not ids:
            predictions.append([])
            continue
        score = log_t[len(tags)] + log_e[:, ids[0]]
        back = []
        for i in ids[1:]:
            candidates = score[:, None] + log_t[:len(tags)]
            back.append(candidates.argmax(0))
            score = candidates.max(0) + log_e[:, i]
        best = [int(score.argmax())]
        for pointers in reversed(back):
            best.append(int(pointers[best[-1]]))
        predictions.append([tags[i] for i in reversed(best)])
    return float(entity_scores([ts for _, ts in dev], predictions)["f1"])


# ------------------------------------------------------------------------------------- output
def _cell(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _parameters(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"


def markdown_table(rows: Sequence[Row], config: LadderConfig, plan: Plan) -> str:
    corpus = "PTB" if config.corpus == "ptb" else Path(config.corpus).name
    task = (f" + the {plan.task_sentences:,} polarity training sentences without their labels"
            if plan.task_sentences else "")
    few = f" | polarity, {plan.few_labels:,} labels" if plan.few_labels else ""
    lines = [
        f"| generation | model | {corpus} test perplexity | polarity accuracy{few} | "
        "NER entity F1 | parameters | train time (s) |",
        "|---|---|---:|---:|" + ("---:|" if few else "") + "---:|---:|---:|"]
    for row in rows:
        few_cell = f" | {_cell(row.polarity_few_accuracy, 3)}" if few else ""
        lines.append(f"| {row.generation} | {row.model} | {_cell(row.perplexity, 1)} | "
                     f"{_cell(row.polarity_accuracy, 3)}{few_cell} | {_cell(row.ner_f1, 3)} | "
                     f"{_parameters(row.parameters)} | {row.seconds:.0f} |")
    lines += [
        "",
        f"Budget {config.budget:g}: pre-training on {plan.lm_sentences:,} {corpus} sentences"
        f"{task} "
        f"(English, the {plan.vocab_size:,} most frequent words, the rest `<unk>`) and "
        f"{plan.zh_sentences:,} People's Daily sentences (Chinese characters); "
        f"polarity: {plan.polarity_train:,} training sentences"
        + (f" (and {plan.few_labels:,} of them, trained for as many updates: the mean over "
           f"{plan.few_draws} fixed draws, each in ladder.json)" if plan.few_labels else "")
        + ", accuracy on the dev split"
        + (f" (± {math.sqrt(0.25 / plan.polarity_dev):.3f} at most: one binomial standard error "
           f"on its {plan.polarity_dev:,} sentences)" if plan.polarity_dev else "")
        + "; NER: "
        f"{plan.ner_train:,} training sentences, entity F1 on {plan.ner_dev:,} dev sentences. "
        "Perplexity: word level, one shared vocabulary, `</s>` predicted; n-gram, NNLM and ELMo's "
        "forward LM read one sentence at a time, LSTM and GPT the running text. — = not a "
        "left-to-right language model"
        + (", or not pre-trained (the -scratch rows: the network of the row above, fine-tuned "
           "the same way from random weights)" if any(r.generation in CONTROLS.values()
                                                    for r in rows) else "")
        + ". Parameters: the English pre-trained model (n-gram: "
        "stored n-grams; word2vec: input + output vectors; BERT: encoder without heads). Time: "
        "everything of the row (both pre-trainings and every downstream run) on this machine."
        + _reused_note(config),
    ]
    return "\n".join(lines) + "\n"


def _reused_note(config: LadderConfig) -> str:
    notes = []
    for _, language, folder in config.reused_berts():
        summary = describe_pretraining(pretraining_record(folder))
        notes.append(f" BERT's {language} pre-training is reused from `{folder}`"
                     + (f": {summary}; counted in the row's time." if summary else
                        f" (it has no {PRETRAINING_RECORD}: its pre-training time is not "
                        "counted)."))
    return "".join(notes)


def plot_ladder(rows: Sequence[Row], path: Path, polarity_dev: int = 0) -> None:
    """One bar panel per measure. With ``polarity_dev`` (the dev sentences behind each
    accuracy), accuracies carry ±1 binomial standard error: on 400 sentences that is about
    ±2.3 points, the size of most gaps between generations. From-scratch controls are hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.generation for r in rows]
    x = np.arange(len(rows))
    panels = [("held-out perplexity (lower is better)", [r.perplexity for r in rows], None),
              ("polarity accuracy", [r.polarity_accuracy for r in rows], (0, 1)),
              ("polarity accuracy, few labels", [r.polarity_few_accuracy for r in rows], (0, 1)),
              ("NER entity F1", [r.ner_f1 for r in rows], (0, 1)),
              ("train time (s)", [r.seconds for r in rows], None)]

    def standard_errors(title: str, values: list) -> list[float] | None:
        if not polarity_dev or not title.startswith("polarity"):
            return None
        return [0.0 if v is None else math.sqrt(v * (1 - v) / polarity_dev) for v in values]

    panels = [panel for panel in panels if any(v is not None for v in panel[1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, values, limits) in zip(axes[0], panels):
        heights = [0.0 if v is None else v for v in values]
        errors = standard_errors(title, values)
        bars = ax.bar(x, heights, color=plt.cm.viridis(np.linspace(0.1, 0.9, len(rows))),
                      yerr=errors, capsize=3 if errors else 0, ecolor="0.4")
        for bar, row in zip(bars, rows):
            if row.generation in CONTROLS.values():  # a control, not a generation: hatched
                bar.set_hatch("//")
                bar.set_alpha(0.55)
        for bar, value in zip(bars, values):
            label = "—" if value is None else (f"{value:.0f}" if value >= 10 else f"{value:.2f}")
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, names, rotation=40, ha="right")
        ax.set_title(title, fontsize=10)
        if limits:
            # scores of [0, 1] zoomed to the band the rows fall in: 0.55 against 0.70 is the
            # story, and a full 0–1 axis flattens it (the bars carry their values)
            known = [v for v in values if v is not None]
            low = max(limits[0], math.floor((min(known) - 0.1) * 10) / 10)
            high = min(limits[1], math.ceil((max(known) + 0.05) * 10) / 10)
            ax.set_ylim(low, max(high, low + 0.1))
    fig.suptitle("The ladder: each generation on the same data")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(rows: Sequence[Row], config: LadderConfig, plan: Plan, output: Path) -> str:
    """ladder.md, ladder.json and ladder.png, all or nothing (the folder is swapped in)."""
    from plmkit._io import atomic_dir

    table = markdown_table(rows, config, plan)
    with atomic_dir(output) as folder:
        (folder / "ladder.md").write_text(table, encoding="utf-8")
        record = {"config": dataclasses.asdict(config), "plan": dataclasses.asdict(plan),
                  "rows": [dataclasses.asdict(r) for r in rows]}
        (folder / "ladder.json").write_text(json.dumps(record, indent=2) + "\n",
                                            encoding="utf-8")
        plot_ladder(rows, folder / "ladder.png", plan.polarity_dev)
    return table


# What a kept row (``resume``) depends on besides the plan: the data and settings every row
# shares, and a row's own inputs.
SHARED_SETTINGS = ("budget", "corpus", "test_corpus", "polarity_train", "polarity_dev",
                   "ner_train", "ner_dev", "task_text", "few_labels", "few_draws", "seed")
ROW_SETTINGS = {row: tuple(name for name, _ in REUSABLE_BERTS)
                for row in ("bert", "bert-scratch")}


def previous_rows(output: Path, config: LadderConfig, plan: Plan) -> dict[str, Row]:
    """The rows of an earlier run into ``output`` that this run may keep: all of them when
    it was made from the same data, sizes and seed (else an error: mixing them would compare
    generations on different data), except rows whose own inputs changed."""
    from plmkit.config import load_json

    path = output / "ladder.json"
    if not path.is_file():
        return {}
    record = load_json(path)
    old_config, old_plan = record.get("config", {}), record.get("plan", {})
    if not isinstance(old_config, dict) or not isinstance(old_plan, dict):
        raise PlmError("not a ladder record (config and plan should be objects)", path=path)
    settings = dataclasses.asdict(config)
    changed = ([k for k in SHARED_SETTINGS if old_config.get(k) != settings[k]]
               + [k for k, v in dataclasses.asdict(plan).items() if old_plan.get(k) != v])
    if changed:
        raise PlmError(f"made with other settings ({', '.join(changed)}): its rows cannot share "
                       "a table with this run's; leave out --resume or write elsewhere", path=path)
    rows = {}
    for number, values in enumerate(record.get("rows", []), 1):
        try:
            row = Row(**values)
        except TypeError:
            raise PlmError(f"row {number} is not a ladder row", path=path, field="rows") from None
        if all(old_config.get(k) == settings[k] for k in ROW_SETTINGS.get(row.generation, ())):
            rows[row.generation] = row
    return rows


def run_ladder(config: LadderConfig, output: str | Path | None = None,
               log: Callable[[str], None] | None = None, resume: bool = False) -> list[Row]:
    """Run the generations in lineage order; write the outputs to ``output`` if given.

    ``resume``: keep the rows an earlier run wrote into ``output`` (same data, sizes and seed)
    and run only the missing ones, e.g. a generation added later or one that crashed."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if resume and output is None:
        raise PlmError("resume needs the output folder of the earlier run", field="output")
    plan = Plan.from_budget(config.budget)
    data = load_data(config, plan)
    # A budget may ask for more than a dataset holds (polarity has 3,200 training sentences):
    # the table reports what was actually used.
    plan = dataclasses.replace(plan, lm_sentences=len(data.lm_train),
                               zh_sentences=len(data.zh_train),
                               polarity_train=len(data.polarity_train),
                               ner_train=len(data.ner_train), ner_dev=len(data.ner_dev),
                               polarity_dev=len(data.polarity_dev),
                               task_sentences=len(data.polarity_train) if config.task_text else 0,
                               few_labels=(config.few_labels
                                           if 0 < config.few_labels < len(data.polarity_train)
                                           else 0),
                               few_draws=config.few_draws)
    chosen = [g for g in GENERATIONS if g in config.generations]
    if config.from_scratch:
        chosen = [row for g in chosen for row in (g, CONTROLS.get(g)) if row]
    kept = previous_rows(Path(output), config, plan) if resume else {}  # type: ignore[arg-type]
    rows = []
    with tempfile.TemporaryDirectory(prefix="plm-ladder-") as tmp:
        ladder = Ladder(config, data, plan, Path(tmp), log)
        ladder.check_reused_berts()
        for number, generation in enumerate(chosen, 1):
            if generation in kept:
                log(f"ladder [{number}/{len(chosen)}] {generation}: kept from "
                    f"{Path(output) / 'ladder.json'}")  # type: ignore[arg-type]
                rows.append(kept[generation])
                continue
            log(f"ladder [{number}/{len(chosen)}] {generation}: {ladder.describe(generation)}")
            row = ladder.run(generation)
            log(f"ladder [{number}/{len(chosen)}] {generation}: perplexity "
                f"{_cell(row.perplexity, 1)}, polarity {_cell(row.polarity_accuracy, 3)}"
                + (f" ({plan.few_labels:,} labels: {_cell(row.polarity_few_accuracy, 3)})"
                   if plan.few_labels else "")
                + ", NER F1 "
                f"{_cell(row.ner_f1, 3)}, {row.seconds:.0f}s")
            rows.append(row)
    if output is not None:
        write_outputs(rows, config, plan, Path(output))
    return rows


def pretrain_bert(config: LadderConfig, language: str, output: str | Path,
                  epochs: float | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Pre-train the ladder's BERT for one language (``en`` or ``zh``) alone and save it to
    ``output``, for ``LadderConfig.bert_en`` / ``bert_zh`` (``plm ladder --bert-en/--bert-zh``).

    Why: in the ladder's minutes BERT's masked LM stays near the unigram stage, so its row
    measures a barely pre-trained network. This is the same recipe on the same data,
    vocabulary and seeded initial weights as the ladder's own BERT at ``config.budget``, for
    ``epochs`` passes instead of the plan's. The checkpoint records what made it
    (``pretraining.json``); the ladder adds that time to the BERT row's."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if language not in ("en", "zh"):
        raise PlmError(f"language must be en or zh, not {language!r}", field="language")
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise PlmError(f"epochs must be a positive number, not {epochs!r}", field="epochs")
    if (Path(output) / "ladder.json").exists():
        raise PlmError("this folder holds a ladder's results (ladder.json), which the checkpoint "
                       "would replace: choose another folder", path=output)
    plan = Plan.from_budget(config.budget)
    if epochs is not None:
        plan = dataclasses.replace(plan, bert_epochs=epochs)
    data = load_data(config, plan)
    from plmkit._io import atomic_dir

    with tempfile.TemporaryDirectory(prefix="plm-bert-") as tmp:
        ladder = Ladder(config, data, plan, Path(tmp), log)
        if language == "en":
            checkpoint, _ = ladder._bert(data.lm_train, ladder.vocab, "bert-en", MAX_WORDS)
        else:
            checkpoint, _ = ladder._bert(data.zh_train, ladder.zh_vocab, "bert-zh", BLOCK)
        with atomic_dir(output) as folder:
            shutil.copytree(checkpoint, folder, dirs_exist_ok=True)
            curve = Path(tmp) / f"bert-{language}" / "run" / "metrics.jsonl"
            if curve.is_file():
                from plmkit.training.reporting import plot_curves, read_metrics

                (folder / "metrics.jsonl").write_bytes(curve.read_bytes())
                guess = pretraining_record(folder).get("unigram_loss")
                plot_curves(read_metrics(curve), folder / "curves.png",
                            ["mlm_loss", "mlm_accuracy", "nsp_accuracy"],
                            title=f"the ladder's BERT ({language}), budget {config.budget:g}",
                            references={"mlm_loss": ("guessing by frequency", guess)}
                            if guess is not None else None)
    return Path(output)


__all__ = ["GENERATIONS", "CONTROLS", "LadderConfig", "Plan", "Row", "LadderData", "FeatureHead",
           "FeatureHeadConfig", "WindowEmbeddings", "FrozenLayers", "RecurrentFeatures",
           "ElmoFeatures", "WordsAndContext", "GPTFeatures", "load_data", "run_ladder",
           "pretrain_bert", "pretraining_record", "describe_pretraining", "masked_lm_summary",
           "previous_rows",
           "markdown_table",
           "plot_ladder", "write_outputs", "words_of",
           "ngram_classifier_accuracy", "hmm_tagger_f1"]
